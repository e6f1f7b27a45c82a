"""The acquisition funnel: spend -> touchpoints -> MQLs -> deals -> accounts, record by record and in its checks.

``FUNNEL_CASES`` are the corruptions that make each funnel check fail; test_checks.py runs them with
every other check's case on the same DEV tables.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from simulation_assets.core.warehouse.check_types import CheckResult
from simulation_assets.core.warehouse.checks import run_checks
from simulation_assets.core.warehouse.config import WarehouseConfig
from simulation_assets.core.warehouse.generate import Warehouse
from simulation_assets.core.warehouse.generators.acquisition import (
    deal_counts,
    lag_months,
    mean_lag_days,
    signup_lag_shares,
)
from simulation_assets.core.warehouse.structure import structure_checks


def shuffled(table: str, column: str, key: str) -> list[str]:
    """SQL that deals ``column``'s values out to the rows of ``table`` in a pseudo-random order."""
    return [
        f"UPDATE raw.{table} AS t SET {column} = s.v FROM (SELECT a.{key} AS k, b.{column} AS v "
        f"FROM (SELECT {key}, row_number() OVER (ORDER BY {key}) AS r FROM raw.{table}) a "
        f"JOIN (SELECT {column}, row_number() OVER (ORDER BY hash(CAST({key} AS VARCHAR) || '~')) AS r "
        f"FROM raw.{table}) b ON a.r = b.r) s WHERE t.{key} = s.k"
    ]


def _reversed(table: str, column: str) -> list[str]:
    """The column's timeline mirrored inside the window: what grew now shrinks."""
    return [
        f"UPDATE raw.{table} SET {column} = TIMESTAMP '2026-01-01' - ({column} - TIMESTAMP '2021-01-01') "
        f"- INTERVAL 1 DAY"
    ]


def trend_only_signups(copies: int = 0) -> list[str]:
    """Sign-up times that keep the growth but not the months' swings: every account at its own rank on one smooth
    40 %/yr exponential curve. With ``copies``, that many extra copies of every account are added on the curve
    (new ids) and the originals keep their times: DEV's 100 accounts become enough to measure the swings."""
    span = "(exp(ln(1.4) * 4.67) - 1)"  # the window's sign-up months, 2021-01 to 2025-08

    def curve(rank: str, n: str) -> str:
        return (f"TIMESTAMP '2021-01-01' + to_microseconds(CAST(ln(1 + ({rank} - 0.5) / {n} * {span}) / ln(1.4) "
                f"* 365.25 * 86400e6 AS BIGINT))")  # fmt: skip

    if copies:
        rank = "row_number() OVER (ORDER BY g.i, a.account_id)"
        return [
            f"INSERT INTO raw.accounts SELECT a.* REPLACE (a.account_id + 1000 * g.i AS account_id, "
            f"{curve(rank, '(count(*) OVER ())')} AS created_at) FROM raw.accounts a, range(1, {copies + 1}) g(i)"
        ]
    rank = "row_number() OVER (ORDER BY created_at, account_id)"
    return [
        f"UPDATE raw.accounts AS t SET created_at = s.c FROM (SELECT account_id, {curve(rank, 'count(*) OVER ()')} "
        f"AS c FROM raw.accounts) s WHERE t.account_id = s.account_id"
    ]


def funnel_cases() -> list[tuple[str, list[str]]]:
    return [
        # sign-ups whose months no longer follow the spend: the accounts' timeline mirrored
        ("signups_follow_spend_at_lag", _reversed("accounts", "created_at")),
        # 1,100 more sign-ups that grow along the trend only: measured, and the swings are gone
        ("signups_follow_monthly_spend_swings", trend_only_signups(copies=11)),
        # MQL channels dealt out at random: the overall mix stays exact, each month's is lost
        (
            "mqls_follow_monthly_channel_mix",
            shuffled("marketing_qualified_leads", "source_channel", "mql_id"),
        ),
        ("touchpoints_follow_marketing_spend", _reversed("attribution_touchpoints", "touched_at")),
        ("mqls_follow_channel_spend", ["UPDATE raw.marketing_qualified_leads SET source_channel = 'email'"]),
        # MQLs of random contacts: no touch of theirs just before
        ("touched_contacts_become_mqls", shuffled("marketing_qualified_leads", "contact_id", "mql_id")),
        # deals opened on random contacts
        ("mqls_become_deals", shuffled("hubspot_deals", "contact_id", "deal_id")),
        # won at random among the deals
        ("won_deals_become_accounts", shuffled("hubspot_deals", "is_won", "deal_id")),
        # accounts created at random times
        ("accounts_trace_back_to_mqls", shuffled("accounts", "created_at", "account_id")),
    ]


@pytest.fixture(scope="module")
def tables(dev_warehouse: Warehouse) -> dict[str, pl.DataFrame]:
    names = ("accounts", "hubspot_companies", "hubspot_contacts", "hubspot_deals", "marketing_qualified_leads",
             "attribution_touchpoints", "marketing_campaigns")  # fmt: skip
    return {name: dev_warehouse.whole(name) for name in names}


def test_every_sales_led_account_has_one_won_deal_after_its_leads_mql_and_before_it_signed_up(
    tables: dict[str, pl.DataFrame],
) -> None:
    deals, accounts = tables["hubspot_deals"], tables["accounts"]
    won = deals.filter(pl.col("is_won"))
    counts = deal_counts(250, WarehouseConfig())
    assert won.height == counts["won"] == 50 and deals.filter(~pl.col("is_closed")).height == counts["open"]
    chain = (
        won.join(tables["hubspot_companies"].select("company_id", "account_id"), on="company_id")
        .join(accounts.select("account_id", pl.col("created_at").alias("account_at")), on="account_id")
        .join(tables["marketing_qualified_leads"].select("contact_id", "mql_at", "sql_at"), on="contact_id")
    )
    assert chain.height == 50 and chain["account_id"].n_unique() == 50  # one won deal per sales-led account
    assert (chain["mql_at"] <= chain["created_at"]).all()
    assert (chain["sql_at"] <= chain["created_at"]).all()
    assert (chain["created_at"] <= chain["close_date"]).all()
    assert (chain["close_date"] <= chain["account_at"]).all()
    lag_days = (chain["account_at"] - chain["mql_at"]).dt.total_days()
    assert 30 < lag_days.median() < 150  # MQL -> deal (~12 d) + sales cycle (~45 d) + signing (~5 d)


def test_every_deal_is_opened_on_an_mql_after_it_and_sqls_are_the_mqls_with_deals(
    tables: dict[str, pl.DataFrame],
) -> None:
    deals, mqls = tables["hubspot_deals"], tables["marketing_qualified_leads"]
    joined = deals.join(mqls.select("contact_id", "mql_at"), on="contact_id", how="left")
    assert joined["mql_at"].null_count() == 0
    assert (joined["created_at"] >= joined["mql_at"]).all()
    first_deal = deals.group_by("contact_id").agg(pl.col("created_at").min().alias("first"))
    both = mqls.join(first_deal, on="contact_id", how="left")
    assert (both["converted_to_sql"] == both["first"].is_not_null()).all()
    assert (
        both.filter(pl.col("converted_to_sql"))["sql_at"] == both.filter(pl.col("converted_to_sql"))["first"]
    ).all()
    assert mqls["converted_to_sql"].mean() == pytest.approx(
        WarehouseConfig().acquisition.mql_to_sql, abs=0.01
    )
    # the open deals are the newest ones not won
    open_deals = deals.filter(~pl.col("is_closed"))
    lost = deals.filter(pl.col("is_closed") & ~pl.col("is_won"))
    assert open_deals["created_at"].min() >= lost["created_at"].max()


def test_every_account_comes_from_its_leads_mql_which_ends_a_journey_on_its_campaign(
    tables: dict[str, pl.DataFrame],
) -> None:
    companies, contacts = tables["hubspot_companies"], tables["hubspot_contacts"]
    lead = contacts.group_by("company_id").agg(pl.col("contact_id").min())
    chain = (
        tables["accounts"].select("account_id", pl.col("created_at").alias("account_at"))
        .join(companies.select("company_id", "account_id", pl.col("created_at").alias("company_at")), on="account_id")
        .join(lead, on="company_id")
        .join(contacts.select("contact_id", pl.col("created_at").alias("contact_at")), on="contact_id")
        .join(tables["marketing_qualified_leads"], on="contact_id")
    )  # fmt: skip
    assert chain.height == 100
    assert (chain["company_at"] <= chain["contact_at"]).all() and (
        chain["contact_at"] <= chain["mql_at"]
    ).all()
    assert (chain["mql_at"] <= chain["account_at"]).all()
    last = (
        tables["attribution_touchpoints"].sort("touch_position").group_by("contact_id")
        .agg(pl.col("campaign_id").last().alias("last_campaign"), pl.col("touched_at").last().alias("last_at"),
             pl.col("touched_at").first().alias("first_at"))
    )  # fmt: skip
    mqls = tables["marketing_qualified_leads"].join(last, on="contact_id")
    assert (mqls["campaign_id"] == mqls["last_campaign"]).all()
    assert (mqls["last_at"] <= mqls["mql_at"]).all() and (mqls["first_at"] <= mqls["last_at"]).all()
    campaigns = tables["marketing_campaigns"].select(
        "campaign_id", pl.col("channel").alias("campaign_channel")
    )
    assert (mqls.join(campaigns, on="campaign_id").select(pl.col("source_channel") == pl.col("campaign_channel"))
            .to_series().all())  # fmt: skip


def test_the_signup_lag_comes_from_the_stages() -> None:
    cfg = WarehouseConfig()
    shares = signup_lag_shares(Warehouse(42, "dev"))
    assert shares.sum() == pytest.approx(1.0)
    mean_days = float((np.arange(len(shares)) + 0.5) @ shares) * 30.44
    assert mean_days == pytest.approx(mean_lag_days(cfg, 0.5), rel=0.15)
    assert lag_months(cfg) == 2
    slower = cfg.model_copy(
        update={"acquisition": cfg.acquisition.model_copy(update={"deal_cycle_days": 200.0})}
    )
    assert lag_months(slower) > 2


def _detrended_lag_correlations(cfg: WarehouseConfig) -> np.ndarray:
    """Correlations of QA's monthly spend and new accounts k = 0..5 months later, both as log deviations from
    their own linear trend (the shared growth removed, so only the timing is left)."""
    from simulation_assets.core.warehouse.generators import health, marketing

    wh = Warehouse(42, "qa", cfg)
    spend = marketing.monthly_spend(wh)
    signups = np.bincount(health.month_of(wh, wh.account_span[0]), minlength=len(spend)).astype(float)
    last = int(health.month_of(wh, np.array([wh.history_end - cfg.window.min_tenure_days * 86_400]))[0])

    def detrended(x: np.ndarray) -> np.ndarray:
        y = np.log(np.maximum(x[:last], 1e-9))
        k = np.arange(len(y))
        return y - np.polyval(np.polyfit(k, y, 1), k)

    s, a = detrended(spend), detrended(signups)
    return np.array([np.corrcoef(s[: len(s) - lag], a[lag:])[0, 1] for lag in range(6)])


def test_signups_answer_the_spend_at_the_funnels_lag_and_a_slower_funnel_moves_it() -> None:
    cfg = WarehouseConfig()
    corr = _detrended_lag_correlations(cfg)
    # measured (seed 42): 0.50, 0.63, 0.66, 0.47, 0.19, -0.20 -- the peak at the funnel's mean lag of 2 months
    assert int(np.argmax(corr)) == lag_months(cfg) == 2 and corr[2] > corr[0] + 0.1, corr
    # MQLs two months after the last touch (mean lag 4 months): the peak moves later, the same month's link fades
    slower = cfg.model_copy(
        update={"acquisition": cfg.acquisition.model_copy(update={"touch_to_mql_days": 60.0})}
    )
    later = _detrended_lag_correlations(slower)  # measured: 0.10, 0.37, 0.56, 0.60, 0.41, 0.13
    assert lag_months(slower) == 4 and int(np.argmax(later)) >= 3 and later[0] < corr[0] - 0.25, later


def test_a_prospects_contact_stands_where_the_funnel_left_it(tables: dict[str, pl.DataFrame]) -> None:
    contacts = tables["hubspot_contacts"].join(
        tables["hubspot_companies"].select("company_id", "is_customer"), on="company_id"
    )
    deals = tables["hubspot_deals"]
    open_deal = set(deals.filter(~pl.col("is_closed"))["contact_id"])
    any_deal = set(deals["contact_id"])
    mqls = set(tables["marketing_qualified_leads"]["contact_id"])
    expected = [
        "customer" if customer else "opportunity" if c in open_deal else "salesqualifiedlead" if c in any_deal
        else "marketingqualifiedlead" if c in mqls else "before"
        for c, customer in zip(contacts["contact_id"], contacts["is_customer"])
    ]  # fmt: skip
    stage = [s if s not in ("subscriber", "lead") else "before" for s in contacts["lifecycle_stage"]]
    assert stage == expected
    # lead scores follow the stage: MQLs score higher than contacts before it
    by_stage = dict(contacts.group_by("lifecycle_stage").agg(pl.col("lead_score").mean()).iter_rows())
    assert by_stage["marketingqualifiedlead"] > by_stage["lead"] + 15, by_stage


def _funnel_db(wh: Warehouse) -> duckdb.DuckDBPyConnection:
    """The funnel's tables of ``wh`` in schema ``raw`` of an in-memory DuckDB."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    for name in ("accounts", "campaign_performance", "marketing_campaigns", "marketing_qualified_leads"):
        con.register("frame", wh.whole(name).with_columns(pl.col(pl.Categorical).cast(pl.String)).to_arrow())
        con.execute(f"CREATE TABLE raw.{name} AS SELECT * FROM frame")
        con.unregister("frame")
    return con


def _measure(con: duckdb.DuckDBPyConnection, *names: str) -> dict[str, CheckResult]:
    present = {"accounts", "campaign_performance", "marketing_campaigns", "marketing_qualified_leads"}
    checks = [c for c in structure_checks(present, WarehouseConfig()) if c.name in names]
    return {r.name: r for r in run_checks(checks, lambda sql: con.execute(sql).fetchall())}


GROWTH_ONLY = ("signups_follow_marketing_spend", "signups_follow_spend_at_lag")


def test_qa_signups_follow_the_spends_monthly_swings_not_only_its_growth() -> None:
    con = _funnel_db(Warehouse(42, "qa"))
    names = (*GROWTH_ONLY, "signups_follow_monthly_spend_swings")
    before = _measure(con, *names)
    # measured (seed 42): 0.632 detrended; 0.965 and 0.970 with the growth left in
    assert before["signups_follow_monthly_spend_swings"].value == pytest.approx(0.632, abs=0.01)
    assert all(r.passed for r in before.values()), before
    for sql in trend_only_signups():
        con.execute(sql)
    after = _measure(con, *names)
    # sign-ups on a smooth growth curve: the correlations that keep the growth still pass (they cannot tell),
    # the detrended one falls to about zero and fails
    assert [after[n].passed for n in GROWTH_ONLY] == [True, True], after
    swings = after["signups_follow_monthly_spend_swings"]
    assert not swings.passed and abs(float(swings.value)) < 0.2, swings  # measured -0.14


def test_dev_has_too_few_signups_to_measure_the_swings_and_says_so(dev_warehouse: Warehouse) -> None:
    [result] = _measure(_funnel_db(dev_warehouse), "signups_follow_monthly_spend_swings").values()
    assert result.passed and result.value is None
    assert "not measured: fewer than 1,000 sign-ups" in result.description


@pytest.mark.parametrize(("env", "figure"), [("dev", 0.960), ("qa", 0.919)])
def test_mql_channels_follow_each_months_spend_mix_not_only_the_overall_one(env: str, figure: float) -> None:
    con = _funnel_db(Warehouse(42, env))
    names = ("mqls_follow_channel_spend", "mqls_follow_monthly_channel_mix")
    before = _measure(con, *names)
    assert before["mqls_follow_monthly_channel_mix"].value == pytest.approx(figure, abs=0.01)
    assert all(r.passed for r in before.values()), before
    for sql in shuffled("marketing_qualified_leads", "source_channel", "mql_id"):
        con.execute(sql)
    after = _measure(con, *names)
    # channels dealt out at random: the overall shares are unchanged (that check still passes), the months' lost
    assert after["mqls_follow_channel_spend"].passed
    monthly = after["mqls_follow_monthly_channel_mix"]
    assert not monthly.passed and abs(float(monthly.value)) < 0.1, monthly  # measured -0.01 / -0.02


def test_a_null_figure_passes_only_where_the_check_says_why_it_cannot_be_measured() -> None:
    from dataclasses import replace

    from simulation_assets.core.warehouse.check_types import Check
    from simulation_assets.core.warehouse.checks import evaluate

    plain = Check("x", "accounts", "structure", "SELECT NULL", band=(0.3, 1.0))
    assert not evaluate(plain, [(None,)]).passed  # a NULL from broken SQL or empty tables fails
    small = replace(plain, unmeasured="too few rows")
    result = evaluate(small, [(None,)])
    assert result.passed and result.value is None and "not measured: too few rows" in result.description
    assert not evaluate(small, [(0.1,)]).passed and evaluate(small, [(0.5,)]).passed
