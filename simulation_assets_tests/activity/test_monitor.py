"""The four monitor rules: when each intervention opens, when it closes, and that none is opened twice."""

from __future__ import annotations

import polars as pl

from simulation_assets.core.activity.config import ActivityConfig
from simulation_assets.core.activity.monitor import desired_interventions, duplicate_open, reconcile
from simulation_assets.core.activity.schema import INTERVENTION_SCHEMA
from simulation_assets_tests.activity.helpers import AT, pool

CFG = ActivityConfig()
NONE_OPEN = pl.DataFrame(schema=INTERVENTION_SCHEMA)


def _apply(open_: pl.DataFrame, result) -> pl.DataFrame:  # noqa: ANN001
    """Return the intervention table after a check (closed rows replaced, opened rows appended)."""
    kept = open_.filter(~pl.col("intervention_id").is_in(result.closed["intervention_id"].implode()))
    return pl.concat([kept, result.closed, result.opened])


def _types(frame: pl.DataFrame) -> list[tuple[str, str]]:
    return sorted(zip(frame["customer_name"], frame["type"]))


def test_error_debugging_opens_above_ten_percent_and_not_at_ten():
    customers = pl.concat([pool(1, error_rate=0.1000001), pool(1, error_rate=0.10)]).with_columns(
        pl.Series("name", ["Hot Co", "Edge Co"]), pl.Series("customer_id", ["a", "b"])
    )
    result = reconcile(customers, NONE_OPEN, CFG, 3, 1, AT)
    assert _types(result.opened) == [("Hot Co", "Error Debugging")]
    assert result.opened["reason"][0] == "error rate 10.0% > 10.0%"
    assert result.opened["opened_tick"][0] == 3 and result.opened["status"][0] == "open"


def test_error_debugging_closes_when_the_rate_is_back_under_the_threshold():
    sick = pool(1, error_rate=0.182)
    opened = reconcile(sick, NONE_OPEN, CFG, 1, 1, AT)
    table = _apply(NONE_OPEN, opened)
    healed = sick.with_columns(pl.lit(0.021).alias("error_rate"))
    result = reconcile(healed, table, CFG, 2, 2, AT)
    assert result.opened.height == 0
    closed = result.closed.row(0, named=True)
    assert closed["type"] == "Error Debugging" and closed["status"] == "closed"
    assert closed["close_reason"] == "error rate back to 2.1%"
    assert (closed["opened_tick"], closed["closed_tick"], closed["closed_check"]) == (1, 2, 2)


def test_onboarding_check_in_opens_after_two_ticks_stuck_and_clears_on_the_first_api_call():
    waiting = pool(1, stage="ONBOARDING")  # stage_since_tick 0, no calls
    assert reconcile(waiting, NONE_OPEN, CFG, 1, 1, AT).opened.height == 0  # 1 tick: not stuck yet
    opened = reconcile(waiting, NONE_OPEN, CFG, 2, 2, AT)
    assert opened.opened["type"].to_list() == ["Onboarding Check In"]
    assert opened.opened["reason"][0] == "onboarding for 2 ticks without an API call"
    table = _apply(NONE_OPEN, opened)
    still = reconcile(waiting, table, CFG, 5, 3, AT)
    assert still.opened.height == 0 and still.closed.height == 0
    first_call = waiting.with_columns(
        pl.lit("ACTIVE").alias("stage"), pl.lit(12).cast(pl.Int64).alias("total_api_calls")
    )
    cleared = reconcile(first_call, table, CFG, 6, 4, AT)
    assert cleared.closed["close_reason"].to_list() == ["first API call made"]


def test_upsell_on_increasing_and_retention_on_declining_usage_of_active_customers_only():
    customers = pl.concat(
        [
            pool(1, trend="increasing"),
            pool(1, trend="declining"),
            pool(1, trend="stable"),
            pool(1, stage="ONBOARDING", trend="increasing", stage_since_tick=1),
        ]
    ).with_columns(pl.Series("name", ["Up", "Down", "Flat", "Trial"]), pl.Series("customer_id", list("udft")))
    desired = desired_interventions(customers, 1, CFG)
    assert _types(desired) == [("Down", "Retention Outreach"), ("Up", "Upsell Suggestion")]
    table = _apply(NONE_OPEN, reconcile(customers, NONE_OPEN, CFG, 1, 1, AT))
    flipped = customers.with_columns(
        pl.Series("usage_trend", ["stable", "increasing", "stable", "increasing"])
    )
    result = reconcile(flipped, table, CFG, 2, 2, AT)
    assert _types(result.opened) == [("Down", "Upsell Suggestion")]
    assert sorted(result.closed["close_reason"]) == ["usage now increasing", "usage now stable"]


def test_a_rule_that_keeps_holding_never_opens_a_second_intervention():
    customers = pool(30, trend="increasing", error_rate=0.3)
    table = NONE_OPEN
    for check in range(1, 6):
        result = reconcile(customers, table, CFG, check, check, AT)
        assert result.opened.height == (60 if check == 1 else 0)
        assert result.closed.height == 0
        table = _apply(table, result)
    assert table.height == 60 and duplicate_open(table).height == 0


def test_intervention_ids_name_customer_type_and_check():
    result = reconcile(
        pool(1, error_rate=0.5).with_columns(pl.lit("c1").alias("customer_id")), NONE_OPEN, CFG, 4, 9, AT
    )
    assert result.opened["intervention_id"].to_list() == ["c1:error-debugging:9"]


def test_duplicate_open_finds_pairs_with_two_open_rows():
    opened = reconcile(pool(2, error_rate=0.5), NONE_OPEN, CFG, 1, 1, AT).opened
    again = opened.head(1).with_columns(pl.lit("dup").alias("intervention_id"))
    dups = duplicate_open(pl.concat([opened, again]))
    assert dups.height == 1 and dups["open_count"][0] == 2
