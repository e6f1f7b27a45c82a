"""HubSpot CRM: companies (every account plus prospects), contacts, deals, engagements and support tickets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.warehouse.generators.text import (
    FIRST_NAMES,
    JOB_TITLES,
    LAST_NAMES,
    NAME_NOUNS,
    NAME_WORDS,
    concat,
    pick_words,
    strings,
)
from simulation_assets.core.warehouse.sampling import (
    DAY,
    HOUR,
    NULL_TS,
    allocate,
    between,
    choice,
    exact_choice,
    growth_times,
    labels,
    local_index,
    to_seconds,
    ts,
    ts_nullable,
)

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse

# Mean lead score of a contact by lifecycle stage (project choice).
STAGE_SCORE = {"subscriber": 15, "lead": 30, "marketingqualifiedlead": 60, "salesqualifiedlead": 70,
               "opportunity": 75, "customer": 80, "evangelist": 85}  # fmt: skip
# Relative number of engagements a deal gets by stage: later stages see more activity.
STAGE_ENGAGEMENT = {"closedwon": 2.0, "closedlost": 1.0, "appointmentscheduled": 0.6, "qualifiedtobuy": 0.8,
                    "presentationscheduled": 1.0, "decisionmakerboughtin": 1.3, "contractsent": 1.6}  # fmt: skip


# How an engagement reached HubSpot (HubSpot's engagement "source"); the dirt profile adds CSV imports.
ENGAGEMENT_SOURCES = ("CRM_UI", "EMAIL_INTEGRATION")


def _code_of(names: dict[str, float], name: str) -> int:
    """Return the index of ``name`` among ``names`` (-1 when it is not configured)."""
    return list(names).index(name) if name in names else -1


def companies(wh: Warehouse) -> pl.DataFrame:
    """Every account as a customer company (created during its sales cycle) plus prospects."""
    spec, rng = wh.cfg.crm, wh.rng("hubspot_companies")
    table = wh.whole("accounts")
    n_accounts, n = table.height, wh.rows["hubspot_companies"]
    if n < n_accounts:
        raise ValueError("hubspot_companies must cover every account")
    prospects = n - n_accounts
    customer_created = wh.funnel_accounts[
        "company_created"
    ]  # before its lead's journey (generators/acquisition.py)
    prospect_created = growth_times(
        rng, prospects, wh.history_start, wh.history_end - 60 * DAY, wh.cfg.window.account_yoy_growth
    )
    industries = wh.cfg.accounts.industries
    prospect_industry = labels(exact_choice(rng, prospects, industries), industries)
    prospect_staff = np.clip(np.round(np.exp(rng.normal(3.3, 1.0, prospects))), 5, 500).astype(np.int32)
    stages = {k: v for k, v in spec.lifecycle_stages.items() if k != "customer"}
    total = sum(stages.values())
    prospect_stage = labels(choice(rng, prospects, {k: v / total for k, v in stages.items()}), stages)
    prospect_ids = np.arange(n_accounts + 1, n + 1)
    prospect_name = concat(
        strings(pick_words(rng, NAME_WORDS, prospects)),
        " ",
        strings(pick_words(rng, NAME_NOUNS["Bar"], prospects)),
    )
    return pl.DataFrame(
        {
            "company_id": np.arange(1, n + 1),
            "account_id": pl.concat(
                [table["account_id"], pl.Series(np.full(prospects, None), dtype=pl.Int64)]
            ),
            "name": pl.concat([table["account_name"], prospect_name]),
            "domain": pl.concat(
                [table["domain"], concat("prospect", pl.Series(prospect_ids), ".example.com")]
            ),
            "industry": pl.concat([table["industry"], prospect_industry]),
            "employee_count": pl.concat([table["employee_count"], pl.Series(prospect_staff)]),
            "lifecycle_stage": pl.concat([pl.Series(np.full(n_accounts, "customer")), prospect_stage]),
            "is_customer": np.arange(n) < n_accounts,
            "created_at": ts(np.concatenate([customer_created, prospect_created])),
        }
    )


def contact_layout(wh: Warehouse) -> tuple[np.ndarray, np.ndarray]:
    """Return (contacts per company, first contact index of each company): bigger companies have more."""
    table = wh.whole("hubspot_companies")
    n = wh.rows["hubspot_contacts"]
    weight = np.sqrt(table["employee_count"].to_numpy().astype(float))
    high = max(2, 10 * -(-n // table.height))
    counts = allocate(wh.rng("hubspot_contacts", 0, "layout"), n, weight, 1, high)
    return counts, np.cumsum(counts) - counts


def contacts(wh: Warehouse) -> pl.DataFrame:
    """Contacts laid out company by company, with lifecycle stage and a lead score that follows it."""
    spec, rng = wh.cfg.crm, wh.rng("hubspot_contacts")
    table = wh.whole("hubspot_companies")
    counts, _ = wh.contact_layout
    company, _ = local_index(counts)
    n = len(company)
    created = wh.funnel_contacts["created"]  # when marketing brought them in (generators/acquisition.py)
    is_customer = table["is_customer"].to_numpy()[company]
    # where a prospect's contact stands follows the acquisition funnel: an open deal makes an opportunity, a deal
    # a sales qualified lead, an MQL a marketing qualified lead; the others are subscribers or leads
    plan = wh.funnel_contacts
    mql, dealt, opened = (np.zeros(n, dtype=bool) for _ in range(3))
    mql[plan["mql"]["contact"]] = True
    dealt[plan["deal_contact"]] = True
    opened[plan["deal_contact"][plan["deal_open"]]] = True
    early = {k: v for k, v in spec.lifecycle_stages.items() if k in ("subscriber", "lead")} or {"lead": 1.0}
    early = {k: v / sum(early.values()) for k, v in early.items()}
    before = labels(choice(rng, n, early), early).to_numpy()
    stage = np.select(
        [is_customer, opened, dealt, mql],
        ["customer", "opportunity", "salesqualifiedlead", "marketingqualifiedlead"],
        before,
    )
    score_mean = pl.Series(stage).replace_strict(STAGE_SCORE, default=40, return_dtype=pl.Float64).to_numpy()
    score = np.clip(np.round(score_mean + 12 * rng.standard_normal(n)), 0, 100).astype(np.int32)
    first = pick_words(rng, FIRST_NAMES, n)
    last = pick_words(rng, LAST_NAMES, n)
    ids = np.arange(1, n + 1)
    email = concat(strings(first).str.to_lowercase(), ".", strings(last).str.to_lowercase(), pl.Series(ids), "@",
                   table["domain"].gather(company))  # fmt: skip
    return pl.DataFrame(
        {
            "contact_id": ids,
            "company_id": company + 1,
            "email": email,
            "first_name": strings(first),
            "last_name": strings(last),
            "job_title": labels(choice(rng, n, JOB_TITLES), JOB_TITLES),
            "lifecycle_stage": pl.Series(stage.astype(str)),
            "lead_score": score,
            "created_at": ts(created),
        }
    )


def deals(wh: Warehouse) -> pl.DataFrame:
    """Deals in the default pipeline, opened on MQLs (generators/acquisition.py): one won deal before every
    sales-led account, the others lost or (the latest) still open; 25 % of the closed ones won, amounts by
    company size."""
    spec, rng, n = wh.cfg.crm, wh.rng("hubspot_deals"), wh.rows["hubspot_deals"]
    table = wh.whole("hubspot_companies")
    plan = wh.funnel_contacts
    company, contact = plan["deal_company"], plan["deal_contact"]
    staff = table["employee_count"].to_numpy().astype(float)
    won, is_open = plan["deal_won"], plan["deal_open"]
    stage = np.where(won, "closedwon", "closedlost").astype(object)
    stage[is_open] = labels(choice(rng, int(is_open.sum()), spec.open_stages), spec.open_stages).to_numpy()
    amount = np.round(np.exp(rng.normal(np.log(staff[company] * 120.0), 0.5)), -1)
    return pl.DataFrame(
        {
            "deal_id": np.arange(1, n + 1),
            "company_id": company + 1,
            "contact_id": contact + 1,
            "deal_name": concat(table["name"].gather(company), " - annual plan"),
            "pipeline": np.full(n, "default"),
            "deal_stage": pl.Series(stage.astype(str)),
            "amount_usd": amount,
            "is_closed": ~is_open,
            "is_won": won,
            "created_at": ts(plan["deal_created"]),
            "close_date": ts_nullable(plan["deal_close"], ~is_open),
        }
    )


def engagements(wh: Warehouse) -> pl.DataFrame:
    """Calls, e-mails, meetings, notes and tasks on deals between their creation and close."""
    spec, rng, n = wh.cfg.crm, wh.rng("hubspot_engagements"), wh.rows["hubspot_engagements"]
    table = wh.whole("hubspot_deals")
    weight = table["deal_stage"].replace_strict(STAGE_ENGAGEMENT, return_dtype=pl.Float64).to_numpy()
    counts = rng.multinomial(n, weight / weight.sum())
    deal, _ = local_index(counts)
    created = to_seconds(table["created_at"])[deal]
    close = to_seconds(table["close_date"])[deal]
    end = np.where(close == NULL_TS, wh.history_end - 1, close)
    when = between(rng, created, end)
    kind = choice(rng, n, spec.engagement_types)
    minutes = np.select([kind == 1, kind == 2], [5 + rng.integers(0, 26, n), 30 + rng.integers(0, 31, n)], 0)
    company = table["company_id"].to_numpy()[deal]
    return pl.DataFrame(
        {
            "engagement_id": np.arange(1, n + 1),
            "deal_id": deal + 1,
            "contact_id": table["contact_id"].to_numpy()[deal],
            "company_id": company,
            "engagement_type": labels(kind, spec.engagement_types),
            "owner_id": (1 + company % 50).astype(np.int32),
            "occurred_at": ts(when),
            "duration_minutes": minutes.astype(np.int32),
            # how the engagement was logged: e-mails by the inbox integration, the rest in HubSpot itself
            "engagement_source": labels(
                (kind == _code_of(spec.engagement_types, "EMAIL")).astype(np.int8), ENGAGEMENT_SOURCES
            ),
        }
    )


def tickets(wh: Warehouse) -> pl.DataFrame:
    """Support tickets per account: more devices and poorer device uptime mean more tickets."""
    spec, rng, n = wh.cfg.crm, wh.rng("hubspot_tickets"), wh.rows["hubspot_tickets"]
    profile = wh.device_profile
    device_count = np.bincount(profile["account"], minlength=wh.rows["accounts"])
    uptime_factor = (
        1 + spec.ticket_uptime_sensitivity * (1 - wh.account_uptime) * 100
    )  # per point of downtime
    troubled = np.exp(
        -wh.cfg.health.ticket_sensitivity * wh.life_health
    )  # unhealthy accounts ask for more help
    acc_created, acc_end = wh.account_span
    years = np.maximum(acc_end - acc_created, DAY) / (365.25 * DAY)
    weight = np.maximum(device_count, 1) * uptime_factor * troubled * years
    counts = rng.multinomial(n, weight / weight.sum())
    account, _ = local_index(counts)
    created = between(rng, acc_created[account], acc_end[account] - DAY)
    reply = created + (rng.exponential(4.0, n) * HOUR).astype(np.int64) + 60
    closed = created < wh.history_end - 14 * DAY
    closed &= rng.random(n) < 0.97
    close = created + (rng.exponential(2.0, n) * DAY).astype(np.int64) + HOUR
    close = np.maximum(close, reply)
    category = labels(choice(rng, n, spec.ticket_categories), spec.ticket_categories)
    stage = np.where(closed, "closed", np.where(rng.random(n) < 0.5, "waiting_on_us", "waiting_on_contact"))
    return pl.DataFrame(
        {
            "ticket_id": np.arange(1, n + 1),
            "company_id": account + 1,
            "account_id": account + 1,
            "subject": concat(category.str.replace_all("_", " ").str.to_titlecase(), " request"),
            "category": category,
            "priority": labels(choice(rng, n, spec.ticket_priorities), spec.ticket_priorities),
            "pipeline_stage": stage,
            "created_at": ts(created),
            "first_reply_at": ts(reply),
            "closed_at": ts_nullable(close, closed),
            "archived": np.zeros(
                n, dtype=bool
            ),  # the dirt profile soft-deletes some (core/warehouse/dirt.py)
        }
    )
