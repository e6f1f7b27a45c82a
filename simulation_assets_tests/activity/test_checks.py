"""Every activity check passes on real simulator output and fails on data corrupted the way it guards against."""

from __future__ import annotations

import polars as pl

from simulation_assets.core.activity.checks import (
    counters_never_decrease,
    no_duplicate_open_interventions,
    open_interventions_match_rules,
)
from simulation_assets.core.activity.config import ActivityConfig
from simulation_assets.core.activity.customers import genesis_summary, initial_customers, step_tick
from simulation_assets.core.activity.monitor import reconcile
from simulation_assets.core.activity.schema import INTERVENTION_SCHEMA, TICK_SCHEMA, conform
from simulation_assets_tests.activity.helpers import AT, pool

CFG = ActivityConfig()


def _ticks(n: int) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """Return the customer states after ticks 0..n and the tick log of a real run."""
    states = [initial_customers(CFG, 11, AT)]
    log = [genesis_summary(states[0], 11, AT)]
    for tick in range(1, n + 1):
        result = step_tick(states[-1], tick, CFG, 11, AT)
        states.append(result.customers)
        log.append(result.summary)
    return states, conform(pl.DataFrame(log), TICK_SCHEMA)


def _monitor(customers: pl.DataFrame, ticks: int) -> pl.DataFrame:
    """Return every intervention after running the monitor on ``customers`` at each of ``ticks`` checks."""
    rows = pl.DataFrame(schema=INTERVENTION_SCHEMA)
    for check in range(1, ticks + 1):
        result = reconcile(customers, rows.filter(pl.col("status") == "open"), CFG, check, check, AT)
        rows = pl.concat(
            [rows.join(result.closed, on="intervention_id", how="anti"), result.closed, result.opened]
        )
    return rows


def test_counters_never_decrease_passes_on_a_real_run() -> None:
    states, log = _ticks(6)
    outcome = counters_never_decrease(states[0], states[-1], log)
    assert outcome.passed and outcome.metadata["ticks_checked"] == 7
    assert outcome.metadata["customers_with_fewer_calls"] == outcome.metadata["customers_missing"] == 0


def test_counters_never_decrease_fails_when_a_customer_loses_calls_or_vanishes() -> None:
    states, log = _ticks(3)
    fewer = states[-1].with_columns(
        pl.when(pl.col("customer_no") == 0)
        .then(0)
        .otherwise(pl.col("total_api_calls"))
        .alias("total_api_calls")
    )
    before = states[0].with_columns(
        pl.when(pl.col("customer_no") == 0)
        .then(10)
        .otherwise(pl.col("total_api_calls"))
        .alias("total_api_calls")
    )
    outcome = counters_never_decrease(before, fewer, log)
    assert not outcome.passed and outcome.metadata["customers_with_fewer_calls"] == 1
    gone = counters_never_decrease(states[0], states[-1].filter(pl.col("customer_no") != 1), log)
    assert not gone.passed and gone.metadata["customers_missing"] == 1


def test_counters_never_decrease_fails_when_the_tick_log_total_goes_down() -> None:
    states, log = _ticks(4)
    dropped = log.with_columns(
        pl.when(pl.col("tick") == 3).then(0).otherwise(pl.col("total_api_calls")).alias("total_api_calls")
    )
    outcome = counters_never_decrease(states[-1], states[-1], dropped)
    assert not outcome.passed and outcome.metadata["tick_log_total_drops"] == 1


def test_no_duplicate_open_interventions_fails_on_a_second_open_row_of_one_type() -> None:
    rows = _monitor(pool(6, error_rate=0.3), 3)
    assert no_duplicate_open_interventions(rows).passed
    twin = (
        rows.filter(pl.col("status") == "open").head(1).with_columns(pl.lit("dup").alias("intervention_id"))
    )
    outcome = no_duplicate_open_interventions(pl.concat([rows, twin]))
    assert not outcome.passed and outcome.metadata["duplicate_pairs"] == 1


def test_open_interventions_match_rules_passes_after_the_monitor_and_fails_on_missing_or_stale_ones() -> None:
    customers = pl.concat([pool(4, error_rate=0.3), pool(3, trend="declining")])
    rows = _monitor(customers, 2)
    outcome = open_interventions_match_rules(customers, rows, CFG, 2)
    assert outcome.passed and outcome.metadata["rules_holding"] == 7

    missing = open_interventions_match_rules(
        customers, rows.filter(pl.col("type") != "Error Debugging"), CFG, 2
    )
    assert not missing.passed and missing.metadata["missing_interventions"] == 4
    assert missing.metadata["missing_by_type"] == {"Error Debugging": 4}

    recovered = customers.with_columns(pl.lit(0.01).alias("error_rate"))  # rates fell, nothing was closed
    stale = open_interventions_match_rules(recovered, rows, CFG, 2)
    assert not stale.passed and stale.metadata["stale_interventions"] == 4
