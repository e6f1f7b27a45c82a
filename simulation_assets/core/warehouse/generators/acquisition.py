"""Where accounts come from: marketing spend -> touchpoints -> MQLs -> deals -> accounts, with lags.

The accounts' creation months follow the marketing spend convolved with the funnel's total lag
(``signup_lag_shares``), then every account is traced back through the funnel: its company's first
contact is its lead, whose journey of touches ends in an MQL on the channel of its last touch (drawn
by the channels' share of that month's spend); a sales-led account (one per won deal) had a deal
opened after that MQL and won shortly before the account was created, a self-serve one signed up
a few days after the MQL. The other contacts enter the CRM at times that follow the spend; some of
them become MQLs too, and sales opens the remaining (lost and open) deals on some of those.

Everything here is drawn once per environment from its own streams, so the CRM and marketing
tables that read it agree with each other and with the accounts, chunk by chunk in any order:
``account_plan`` (per account, needed by the companies) and ``contact_plan`` (per contact, MQL
and deal, needed by contacts, touchpoints, MQLs and deals).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulation_assets.core.warehouse.config import WarehouseConfig
from simulation_assets.core.warehouse.generators import health
from simulation_assets.core.warehouse.sampling import DAY, MONTH, local_index, to_seconds

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse


def deal_counts(n_deals: int, cfg: WarehouseConfig) -> dict[str, int]:
    """Return how many deals are open, closed and won (exact shares of the configuration)."""
    n_open = round(cfg.crm.open_share * n_deals)
    closed = n_deals - n_open
    return {"open": n_open, "closed": closed, "won": round(cfg.crm.win_rate * closed)}


def stage_lags(cfg: WarehouseConfig, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw ``n`` of every funnel lag, in days."""
    a = cfg.acquisition
    return {
        "company": 30 * rng.random(n),  # company in the CRM before its first contact
        "contact": 2 * rng.random(n),  # contact created, then touched
        "journey": a.journey_days * (0.25 + 0.75 * rng.random(n)),  # first to last touch
        "touch": rng.exponential(a.touch_to_mql_days, n),  # last touch to MQL
        "to_deal": rng.exponential(a.mql_to_deal_days, n),
        "cycle": np.exp(rng.normal(np.log(a.deal_cycle_days), a.deal_cycle_sigma, n)),
        "to_account": rng.exponential(a.won_to_account_days, n),
        "to_signup": rng.exponential(a.mql_to_signup_days, n),
    }


def sales_share(rows: dict[str, int], cfg: WarehouseConfig) -> float:
    """Return the share of accounts that come from a won deal (the rest signed up on their own)."""
    return min(deal_counts(rows["hubspot_deals"], cfg)["won"] / max(rows["accounts"], 1), 1.0)


def mean_lag_days(cfg: WarehouseConfig, share_of_sales: float) -> float:
    """Return the mean days from the spend that bought a journey's touches (its middle) to the account."""
    a = cfg.acquisition
    middle = a.journey_days * (0.25 + 0.75 / 2) / 2
    cycle = a.deal_cycle_days * np.exp(a.deal_cycle_sigma**2 / 2)
    sales = a.mql_to_deal_days + cycle + a.won_to_account_days
    return float(
        middle + a.touch_to_mql_days + share_of_sales * sales + (1 - share_of_sales) * a.mql_to_signup_days
    )


def lag_months(cfg: WarehouseConfig, share_of_sales: float = 0.5) -> int:
    """Return the funnel's mean lag in whole months (the lag at which a check correlates spend and sign-ups)."""
    return round(mean_lag_days(cfg, share_of_sales) * DAY / MONTH)


def signup_lag_shares(wh: Warehouse) -> np.ndarray:
    """Return the share of sign-ups that come 0, 1, 2, ... months after the spend that bought their touches."""
    rng = wh.rng("accounts", 0, "funnel_lags")
    n = 20_000
    lag = stage_lags(wh.cfg, rng, n)
    sales = rng.random(n) < sales_share(wh.rows, wh.cfg)
    after = np.where(sales, lag["to_deal"] + lag["cycle"] + lag["to_account"], lag["to_signup"])
    total = lag["journey"] * rng.random(n) + lag["touch"] + after
    months = np.minimum((total * DAY / MONTH).astype(np.int64), 11)
    counts = np.bincount(months, minlength=12).astype(np.float64)
    return counts[: int(np.flatnonzero(counts)[-1]) + 1] / n


def channel_month_shares(wh: Warehouse) -> np.ndarray:
    """Return each health month's share of spend by channel (months x channels, in ``marketing.channels``
    order); a month without spend takes the window's overall shares."""
    perf = wh.whole("campaign_performance")
    channels = list(wh.cfg.marketing.channels)
    codes = {name: i for i, name in enumerate(channels)}
    channel = wh.whole("marketing_campaigns")["channel"].replace_strict(codes).to_numpy()
    months = len(health.month_edges(wh)) - 1
    month = health.month_of(wh, to_seconds(perf["date"]))
    cell = month * len(channels) + channel[perf["campaign_id"].to_numpy() - 1]
    spend = np.bincount(cell, weights=perf["spend_usd"].to_numpy(), minlength=months * len(channels))
    spend = spend.reshape(months, len(channels))
    overall = spend.sum(axis=0)
    if overall.sum() <= 0:
        overall = np.array(list(wh.cfg.marketing.channels.values()))
    total = spend.sum(axis=1, keepdims=True)
    return np.where(total > 0, spend / np.maximum(total, 1e-12), overall / overall.sum())


def draw_channels(wh: Warehouse, rng: np.random.Generator, when: np.ndarray) -> np.ndarray:
    """Return a channel per time, drawn by the channels' share of that month's spend."""
    cdf = np.cumsum(wh.funnel_channel_shares, axis=1)
    cdf[:, -1] = 1.0
    rows = cdf[health.month_of(wh, when)]
    return np.minimum((rows < rng.random(len(when))[:, None]).sum(axis=1), cdf.shape[1] - 1)


def _recent(rng: np.random.Generator, start: np.ndarray, when: np.ndarray) -> np.ndarray:
    """Return, per time, the index of one of the campaigns (``start`` sorted) started most recently before it
    (among the last ~16 % started), or -1 when none had started."""
    k = np.searchsorted(start, when, side="right")
    recent = max(1, round(0.16 * len(start)))
    pick = k - 1 - (rng.random(len(when)) * np.minimum(np.maximum(k, 1), recent)).astype(np.int64)
    return np.where(k > 0, np.maximum(pick, 0), -1)


def campaigns_of(
    wh: Warehouse, rng: np.random.Generator, when: np.ndarray, channel: np.ndarray
) -> np.ndarray:
    """Return a campaign (index) per touch: one of the channel's recently started campaigns; if the channel had
    none yet, any channel's; before the first campaign, the first one."""
    layout = wh.campaign_layout
    start = layout["start_day"] * DAY
    codes = {name: i for i, name in enumerate(wh.cfg.marketing.channels)}
    campaign_channel = wh.whole("marketing_campaigns")["channel"].replace_strict(codes).to_numpy()
    out = np.full(len(when), -1, dtype=np.int64)
    for c in range(len(codes)):
        rows = np.flatnonzero(channel == c)
        ids = np.flatnonzero(campaign_channel == c)
        if not len(rows) or not len(ids):
            continue
        ids = ids[np.argsort(start[ids], kind="stable")]
        pick = _recent(rng, start[ids], when[rows])
        out[rows] = np.where(pick >= 0, ids[np.maximum(pick, 0)], -1)
    missing = np.flatnonzero(out < 0)
    if len(missing):
        order = np.argsort(start, kind="stable")
        pick = _recent(rng, start[order], when[missing])
        out[missing] = order[np.maximum(pick, 0)]
    return out


def spend_times(wh: Warehouse, u: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Return times in [low, high] at quantiles ``u`` of the daily spend over that stretch (days without spend
    keep a little weight): contacts enter the CRM when the money is spent."""
    spend = wh.daily_spend
    weight = spend + 1e-3 * max(float(spend.mean()), 1e-9)
    cumulative = np.concatenate([[0.0], np.cumsum(weight)])
    edges = wh.history_start + np.arange(len(cumulative), dtype=np.int64) * DAY
    lo = np.clip(low, edges[0], edges[-1])
    hi = np.clip(np.maximum(high, lo), edges[0], edges[-1])
    a, b = np.interp(lo, edges, cumulative), np.interp(hi, edges, cumulative)
    t = np.interp(a + u * (b - a), cumulative, edges).astype(np.int64)
    return np.clip(t, lo, hi)


def account_plan(wh: Warehouse) -> dict[str, np.ndarray]:
    """Trace every account back through the funnel (arrays per account, epoch seconds).

    Lags are drawn per stage and shrunk for accounts created so early that the whole chain would start before
    the window. Sales-led accounts (as many as won deals) have a deal created after the MQL and won before the
    account; self-serve ones signed up after the MQL.
    """
    created, _ = wh.account_span
    n = len(created)
    won = deal_counts(wh.rows["hubspot_deals"], wh.cfg)["won"]
    if won > n:
        raise ValueError(f"{won} won deals but only {n} accounts: every won deal becomes an account")
    rng = wh.rng("hubspot_deals", 0, "accounts")
    sales = np.zeros(n, dtype=bool)
    sales[rng.permutation(n)[:won]] = True
    lag = stage_lags(wh.cfg, rng, n)
    after_mql = np.where(sales, lag["to_deal"] + lag["cycle"] + lag["to_account"], lag["to_signup"])
    before = lag["company"] + lag["contact"] + lag["journey"] + lag["touch"] + after_mql
    scale = np.minimum(1.0, (created - wh.history_start) / DAY / np.maximum(before, 1e-9))

    def back(t: np.ndarray, days: np.ndarray) -> np.ndarray:
        return t - (scale * days * DAY).astype(np.int64)

    close = back(created, np.where(sales, lag["to_account"], 0.0))
    deal_created = back(close, np.where(sales, lag["cycle"], 0.0))
    mql = np.where(sales, back(deal_created, lag["to_deal"]), back(created, lag["to_signup"]))
    last_touch = back(mql, lag["touch"])
    first_touch = back(last_touch, lag["journey"])
    lead_created = back(first_touch, lag["contact"])
    company_created = back(lead_created, lag["company"])
    channel = draw_channels(wh, rng, last_touch)
    campaign = campaigns_of(wh, rng, last_touch, channel)
    return {
        "sales": sales, "close": close, "deal_created": deal_created, "mql": mql, "last_touch": last_touch,
        "first_touch": first_touch, "lead_created": lead_created, "company_created": company_created,
        "campaign": campaign,
    }  # fmt: skip


def contact_plan(wh: Warehouse) -> dict[str, np.ndarray]:
    """Every contact's creation and journey, the MQLs (sorted by contact) and the deals (sorted by creation)."""
    cfg, a = wh.cfg, wh.cfg.acquisition
    plan = wh.funnel_accounts
    counts, offsets = wh.contact_layout
    company, _ = local_index(counts)
    n = len(company)
    n_acc = len(plan["sales"])
    rng = wh.rng("hubspot_contacts", 0, "funnel")
    end = wh.history_end
    company_created = to_seconds(wh.whole("hubspot_companies")["created_at"])[company]
    # contacts enter the CRM when the money is spent, after their company; a journey of touches follows
    created = spend_times(wh, rng.random(n), company_created, np.maximum(company_created, end - 30 * DAY))
    lag = stage_lags(cfg, rng, n)
    # journeys run up to the window's end (the touchpoints stay fresh)
    first = np.minimum(created + (lag["contact"] * DAY).astype(np.int64), end - DAY)
    first = np.maximum(first, created)
    last = np.maximum(np.minimum(first + (lag["journey"] * DAY).astype(np.int64), end - 1), first)
    lead = offsets[:n_acc]
    created[lead], first[lead], last[lead] = plan["lead_created"], plan["first_touch"], plan["last_touch"]
    # MQLs: every account's lead, plus other contacts right after their last touch
    n_mql = wh.rows["marketing_qualified_leads"]
    if n_mql < n_acc:
        raise ValueError(f"{n_mql} MQLs cannot cover the leads of {n_acc} accounts")
    pool = np.setdiff1d(np.flatnonzero(last <= end - 4 * DAY), lead)  # room for an MQL and a deal after it
    if len(pool) < n_mql - n_acc:
        raise ValueError(
            f"{len(pool)} contacts cannot give the {n_mql - n_acc} MQLs beside the accounts' leads"
        )
    extra = np.sort(rng.choice(pool, size=n_mql - n_acc, replace=False))
    extra_mql = np.minimum(last[extra] + (lag["touch"][extra] * DAY).astype(np.int64), end - 3 * DAY)
    extra_mql = np.maximum(extra_mql, last[extra])
    extra_channel = draw_channels(wh, rng, last[extra])
    extra_campaign = campaigns_of(wh, rng, last[extra], extra_channel)
    who = np.concatenate([lead, extra])
    order = np.argsort(who, kind="stable")
    mql = {
        "contact": who[order],
        "at": np.concatenate([plan["mql"], extra_mql])[order],
        "campaign": np.concatenate([plan["campaign"], extra_campaign])[order],
    }
    # deals: one won deal per sales-led account, the lost and open ones on other MQLs sales accepted
    counts_of = deal_counts(wh.rows["hubspot_deals"], cfg)
    won = counts_of["won"]
    others = wh.rows["hubspot_deals"] - won
    n_sql = int(np.clip(round(a.mql_to_sql * n_mql) - won, 0, len(extra)))
    if others and not n_sql:
        n_sql = min(len(extra), others)
    if others and not n_sql:
        raise ValueError("lost and open deals need MQLs besides the accounts' leads")
    sql = np.sort(rng.choice(len(extra), size=min(n_sql, others), replace=False))
    per = (
        1 + rng.multinomial(others - len(sql), np.full(len(sql), 1 / len(sql)))
        if len(sql)
        else np.zeros(0, int)
    )
    owner, k = local_index(per)
    gap = (a.redeal_days[0] + (a.redeal_days[1] - a.redeal_days[0]) * rng.random(len(owner))) * DAY
    gap = np.where(k == 0, (rng.exponential(a.mql_to_deal_days, len(owner)) * DAY), gap).astype(np.int64)
    run = np.cumsum(gap)
    run -= np.repeat(
        run[np.cumsum(per) - per] - gap[np.cumsum(per) - per], per
    )  # cumulative within a contact
    base = extra_mql[sql][owner]
    other_created = base + run
    late = other_created > end - 2 * DAY
    other_created[late] = base[late] + (rng.random(int(late.sum())) * (end - 2 * DAY - base[late])).astype(
        np.int64
    )
    cycle = (np.exp(rng.normal(np.log(a.deal_cycle_days), a.deal_cycle_sigma, len(owner))) * DAY).astype(
        np.int64
    )
    other_close = np.minimum(other_created + cycle, end - 1)
    sales = np.flatnonzero(plan["sales"])
    deal_contact = np.concatenate([lead[sales], extra[sql][owner]])
    deal_created = np.concatenate([plan["deal_created"][sales], other_created])
    deal_close = np.concatenate([plan["close"][sales], other_close])
    is_won = np.arange(len(deal_contact)) < len(sales)
    # the open deals are the latest of those not won
    not_won = np.flatnonzero(~is_won)
    is_open = np.zeros(len(deal_contact), dtype=bool)
    is_open[not_won[np.argsort(-deal_created[not_won], kind="stable")[: counts_of["open"]]]] = True
    by_time = np.argsort(deal_created, kind="stable")
    # an MQL was accepted by sales (an SQL) when its first deal was opened
    first_deal = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_deal, deal_contact, deal_created)
    return {
        "created": created, "first_touch": first, "last_touch": last, "mql": mql,
        "sql_at": first_deal[mql["contact"]],
        "deal_contact": deal_contact[by_time], "deal_company": company[deal_contact[by_time]],
        "deal_created": deal_created[by_time], "deal_close": deal_close[by_time],
        "deal_won": is_won[by_time], "deal_open": is_open[by_time],
        "mql_of_contact": _mql_index(n, mql["contact"]),
    }  # fmt: skip


def _mql_index(n: int, contacts: np.ndarray) -> np.ndarray:
    """Return, per contact, the row of its MQL (-1 when it never became one)."""
    out = np.full(n, -1, dtype=np.int64)
    out[contacts] = np.arange(len(contacts))
    return out
