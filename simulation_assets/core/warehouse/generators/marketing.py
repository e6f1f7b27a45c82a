"""Marketing: campaigns, their daily performance, multi-touch attribution journeys and MQLs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.warehouse.generators import acquisition, health
from simulation_assets.core.warehouse.generators.text import concat, pick_words, strings
from simulation_assets.core.warehouse.sampling import (
    DAY,
    allocate,
    apportion,
    dates,
    exact_choice,
    growth_times,
    labels,
    local_index,
    ts,
    ts_nullable,
)

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse

OBJECTIVES = np.array(["awareness", "lead_generation", "retargeting", "webinar"])
# Mean daily budget by channel, in the order of ``Marketing.channels`` (project choice).
DAILY_BUDGET_USD = np.array([350.0, 250.0, 300.0, 60.0])


def campaign_layout(wh: Warehouse) -> dict[str, np.ndarray]:
    """Return each campaign's number of days, first day (epoch days) and first performance row."""
    rng = wh.rng("marketing_campaigns", 0, "layout")
    n, rows = wh.rows["marketing_campaigns"], wh.rows["campaign_performance"]
    window_days = (wh.history_end - wh.history_start) // DAY
    days = apportion(rows, 0.3 + 1.4 * rng.random(n))
    if days.max() > window_days:
        raise ValueError("campaign_performance rows exceed campaigns x window days")
    # campaigns start more often as the business grows (the accounts' yearly growth), so spend grows with it
    grown = growth_times(rng, n, wh.history_start, wh.history_end, wh.cfg.window.account_yoy_growth)
    position = (grown - wh.history_start) / (wh.history_end - wh.history_start)
    start_day = wh.history_start // DAY + (position * (window_days - days + 1)).astype(np.int64)
    return {"days": days, "start_day": start_day, "offset": np.cumsum(days) - days}


def campaigns(wh: Warehouse) -> pl.DataFrame:
    """Campaigns with the channel mix 40/30/20/10 %, an objective, dates and budgets."""
    spec, rng, n = wh.cfg.marketing, wh.rng("marketing_campaigns"), wh.rows["marketing_campaigns"]
    layout = wh.campaign_layout
    channel = exact_choice(rng, n, spec.channels)
    budget_mean = DAILY_BUDGET_USD[np.minimum(channel, 3)]
    daily = np.round(budget_mean * np.exp(0.4 * rng.standard_normal(n)), 2)
    objective = pick_words(rng, OBJECTIVES, n)
    start = layout["start_day"] * DAY
    names = concat(labels(channel, spec.channels), " ", strings(objective), " ", dates(start).dt.strftime("%Y-%m"),
                   " #", pl.Series(np.arange(1, n + 1)))  # fmt: skip
    return pl.DataFrame(
        {
            "campaign_id": np.arange(1, n + 1),
            "campaign_name": names,
            "channel": labels(channel, spec.channels),
            "objective": strings(objective),
            "start_date": dates(start),
            "end_date": dates(start + (layout["days"] - 1) * DAY),
            "daily_budget_usd": daily,
            "total_budget_usd": np.round(daily * layout["days"], 2),
        }
    )


def campaign_performance(wh: Warehouse) -> pl.DataFrame:
    """Daily spend, clicks, impressions and conversions per campaign, busier towards the holidays."""
    spec, rng = wh.cfg.marketing, wh.rng("campaign_performance")
    table = wh.whole("marketing_campaigns")
    layout = wh.campaign_layout
    campaign, offset = local_index(layout["days"])
    n = len(campaign)
    day = layout["start_day"][campaign] + offset
    channel = table["channel"].to_numpy()[campaign]
    ctr = pl.Series(channel).replace_strict(spec.ctr, return_dtype=pl.Float64).to_numpy()
    cpc = pl.Series(channel).replace_strict(spec.cpc_usd, return_dtype=pl.Float64).to_numpy()
    spend = table["daily_budget_usd"].to_numpy()[campaign] * (0.75 + 0.3 * rng.random(n))
    # the total spend of a day is planned (``daily_spend``) and shared by the campaigns running that day in
    # proportion to their budgets; sign-ups follow it
    slot = day - wh.history_start // DAY
    raw_total = np.bincount(slot, weights=spend, minlength=len(wh.daily_spend))
    spend = spend * wh.daily_spend[slot] / raw_total[slot]
    clicks = np.maximum(np.round(spend / (cpc * np.exp(0.2 * rng.standard_normal(n)))), 0).astype(np.int64)
    impressions = np.round(clicks / (ctr * np.exp(0.2 * rng.standard_normal(n)))).astype(np.int64)
    conversions = rng.binomial(clicks, 0.03).astype(np.int32)
    return pl.DataFrame(
        {
            "performance_id": np.arange(1, n + 1),
            "campaign_id": campaign + 1,
            "date": dates(day * DAY),
            "impressions": np.maximum(impressions, clicks),
            "clicks": clicks,
            "spend_usd": np.round(spend, 2),
            "conversions": conversions,
        }
    )


def campaigns_started_before(
    wh: Warehouse, rng: np.random.Generator, when: np.ndarray, subset: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (campaign index, time no earlier than its start) picking among recently started campaigns."""
    layout = wh.campaign_layout
    ids = np.arange(len(layout["start_day"])) if subset is None else subset
    start = layout["start_day"][ids] * DAY
    order = np.argsort(start, kind="stable")
    start_sorted = start[order]
    k = np.searchsorted(start_sorted, when, side="right")
    recent = max(1, round(0.16 * len(ids)))
    pick = np.maximum(
        k - 1 - (rng.random(len(when)) * np.minimum(np.maximum(k, 1), recent)).astype(np.int64), 0
    )
    chosen = ids[order[pick]]
    return chosen, np.maximum(when, layout["start_day"][chosen] * DAY)


def journey_layout(wh: Warehouse) -> tuple[np.ndarray, np.ndarray]:
    """Return (touchpoints per contact, first touchpoint index of each contact)."""
    rng = wh.rng("attribution_touchpoints", 0, "layout")
    n_contacts, n = wh.rows["hubspot_contacts"], wh.rows["attribution_touchpoints"]
    weight = np.exp(0.6 * rng.standard_normal(n_contacts))
    counts = allocate(rng, n, weight, 1, max(2, 8 * -(-n // n_contacts)))
    return counts, np.cumsum(counts) - counts


def attribution_touchpoints(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the journeys: ordered touches per contact with position-based weights summing to 1. A
    contact's touches fall between its journey's first and last touch (``acquisition.contact_plan``); each
    touch's channel follows that month's spend by channel, and an MQL's last touch is on the MQL's campaign."""
    spec = wh.cfg.marketing
    start, stop = wh.chunk_rows("attribution_touchpoints", k)
    rng, n = wh.rng("attribution_touchpoints", k), stop - start
    counts, offsets = wh.journey_layout
    plan = wh.funnel_contacts
    rows = np.arange(start, stop)
    contact = np.searchsorted(offsets, rows, side="right") - 1
    position = rows - offsets[contact]
    length = counts[contact]
    first, last = plan["first_touch"][contact], plan["last_touch"][contact]
    touched = first + ((position + rng.random(n)) / length * (last - first)).astype(np.int64)
    channel = acquisition.draw_channels(wh, rng, touched)
    campaign = acquisition.campaigns_of(wh, rng, touched, channel)
    mql_row = plan["mql_of_contact"][contact]
    closing = (mql_row >= 0) & (position == length - 1)  # the touch that turned the contact into an MQL
    touched = np.where(closing, last, touched)
    campaign = np.where(closing, plan["mql"]["campaign"][np.maximum(mql_row, 0)], campaign)
    first_w, last_w = spec.first_touch_weight, spec.last_touch_weight
    middle = (1 - first_w - last_w) / np.maximum(length - 2, 1)
    weight = np.select(
        [length == 1, length == 2, position == 0, position == length - 1],
        [1.0, 0.5, first_w + (1 - first_w - last_w) * (length == 2), last_w],
        middle,
    )
    table = wh.whole("marketing_campaigns")
    return pl.DataFrame(
        {
            "touchpoint_id": rows + 1,
            "contact_id": contact + 1,
            "campaign_id": campaign + 1,
            "channel": table["channel"].gather(campaign),
            "touch_position": (position + 1).astype(np.int32),
            "journey_length": length.astype(np.int32),
            "touched_at": ts(touched),
            "attribution_weight": weight,
        }
    )


def marketing_qualified_leads(wh: Warehouse) -> pl.DataFrame:
    """Every account's lead and other contacts that became MQLs right after their last touch, on its campaign;
    those sales opened a deal on are SQLs from that deal's creation."""
    rng, n = wh.rng("marketing_qualified_leads"), wh.rows["marketing_qualified_leads"]
    plan = wh.funnel_contacts
    mql = plan["mql"]
    campaign = mql["campaign"]
    converted = plan["sql_at"] < np.iinfo(np.int64).max
    table = wh.whole("marketing_campaigns")
    return pl.DataFrame(
        {
            "mql_id": np.arange(1, n + 1),
            "contact_id": mql["contact"] + 1,
            "campaign_id": campaign + 1,
            "source_channel": table["channel"].gather(campaign),
            "lead_score": np.clip(np.round(70 + 10 * rng.standard_normal(n)), 50, 100).astype(np.int32),
            "mql_at": ts(mql["at"]),
            "converted_to_sql": converted,
            "sql_at": ts_nullable(np.where(converted, plan["sql_at"], mql["at"]), converted),
        }
    )


def spend_plan(wh: Warehouse) -> np.ndarray:
    """Return the relative total marketing spend of every day of the window: yearly growth, busier towards the
    holidays, and a monthly push (an AR(1) in log space: budgets raised for a few months, then cut, inside
    each year's budget)."""
    spec = wh.cfg.marketing
    n_days = (wh.history_end - wh.history_start) // DAY
    day = wh.history_start // DAY + np.arange(n_days)
    years = np.arange(n_days) / 365.25
    month = dates(day * DAY).dt.month().to_numpy()
    season = 1.0 + 0.15 * np.cos((month - 11) / 12 * 2 * np.pi)
    months = len(health.month_edges(wh)) - 1
    shocks = wh.rng("campaign_performance", 0, "push").standard_normal(months)
    push = np.empty(months)
    push[0] = shocks[0]
    for m in range(1, months):
        push[m] = 0.6 * push[m - 1] + 0.8 * shocks[m]
    # the push moves budget between the months of a year, not across years: each year keeps its growth
    factor = np.exp(spec.spend_push_sigma * push)
    year = np.arange(months) // 12
    factor = factor / (np.bincount(year, weights=factor) / np.bincount(year))[year]
    monthly = factor[health.month_of(wh, day * DAY)]
    return (1 + wh.cfg.window.account_yoy_growth) ** years * season * monthly


def daily_spend(wh: Warehouse) -> np.ndarray:
    """Return the total marketing spend (USD) of every day of the window: the plan, on the days a campaign
    runs, scaled so that the total is what the campaigns' budgets give (x 0.9, the mean of the daily noise)."""
    layout = wh.campaign_layout
    campaign, offset = local_index(layout["days"])
    slot = layout["start_day"][campaign] + offset - wh.history_start // DAY
    plan = spend_plan(wh)
    active = np.bincount(slot, minlength=len(plan)) > 0
    budget = wh.whole("marketing_campaigns")["daily_budget_usd"].to_numpy()
    total = 0.9 * float((budget * layout["days"]).sum())
    return np.where(active, plan, 0.0) * total / max(float(plan[active].sum()), 1e-9)


def monthly_spend(wh: Warehouse) -> np.ndarray:
    """Return the marketing spend (USD) of every health month (``health.month_edges``)."""
    day = (wh.history_start // DAY + np.arange(len(wh.daily_spend))) * DAY
    months = len(health.month_edges(wh)) - 1
    return np.bincount(health.month_of(wh, day), weights=wh.daily_spend, minlength=months)


def signup_weights(wh: Warehouse) -> np.ndarray:
    """Return the relative number of new accounts of every health month: a share of them follows the spend of
    the months before it, spread by the acquisition funnel's lags (touchpoints -> MQLs -> deals take time,
    ``acquisition.signup_lag_shares``), the rest the growth curve."""
    spec = wh.cfg.marketing
    spend = monthly_spend(wh)
    shares = acquisition.signup_lag_shares(wh)
    lags = len(shares)
    padded = np.concatenate([np.full(lags - 1, spend[0]), spend])  # before the window: as in its first month
    lagged = sum(share * padded[lags - 1 - lag : len(padded) - lag] for lag, share in enumerate(shares))
    edges = health.month_edges(wh)
    years = (edges[:-1] + edges[1:]) / 2 / (365.25 * DAY) - wh.history_start / (365.25 * DAY)
    trend = (1 + wh.cfg.window.account_yoy_growth) ** years
    driven = spec.signups_from_spend
    return (1 - driven) * trend / trend.sum() + driven * lagged / max(lagged.sum(), 1e-9)
