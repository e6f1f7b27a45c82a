"""Each power-user check passes on a real run's tables and fails once the tables are corrupted."""

from __future__ import annotations

import polars as pl
import pytest

from simulation_assets.core.power_users import checks
from simulation_assets.core.power_users.costs import CostModel

pytestmark = pytest.mark.xdist_group("power_users")


@pytest.fixture
def tables(default_run) -> dict[str, pl.DataFrame]:
    return {name: frame.clone() for name, frame in default_run[0].frames.items()}


def _consistent(t: dict[str, pl.DataFrame]) -> checks.CheckOutcome:
    return checks.run_tables_consistent(t["requests"], t["attempts"], t["edges"], t["users"])


def test_run_tables_consistent_passes_on_a_real_run(tables):
    outcome = _consistent(tables)
    assert outcome.passed, outcome.metadata
    assert outcome.metadata["requests"] == tables["requests"].height > 100


def test_run_tables_consistent_fails_on_a_duplicated_request(tables):
    tables["requests"] = pl.concat([tables["requests"], tables["requests"].head(1)])
    outcome = _consistent(tables)
    assert not outcome.passed and outcome.metadata["duplicate_requests"] == 1


def test_run_tables_consistent_fails_when_an_attempt_is_lost(tables):
    lost_user = tables["attempts"]["user"][0]
    tables["attempts"] = tables["attempts"].slice(1)
    outcome = _consistent(tables)
    assert not outcome.passed and outcome.metadata["users_with_attempt_mismatch"] == lost_user


def test_run_tables_consistent_fails_on_rows_of_a_user_not_in_the_run(tables):
    stray = tables["edges"].head(2).with_columns(pl.lit("Nobody").alias("user"))
    tables["edges"] = pl.concat([tables["edges"], stray])
    outcome = _consistent(tables)
    assert not outcome.passed and outcome.metadata["rows_of_unknown_users"] == 2


def test_run_tables_consistent_fails_on_negative_tokens(tables):
    tables["requests"] = tables["requests"].with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(-500)
        .otherwise(pl.col("input_tokens"))
        .alias("input_tokens")
    )
    outcome = _consistent(tables)
    assert not outcome.passed and outcome.metadata["negative_values"] == 1


def test_run_tables_consistent_fails_on_an_empty_run(tables):
    empty = {name: frame.clear() for name, frame in tables.items()}
    assert not _consistent(empty).passed


def test_success_rate_fails_when_a_fifth_of_requests_miss_their_status(tables):
    assert checks.success_rate_above(tables["requests"], 0.9).passed
    worse = tables["requests"].with_columns((pl.col("ok") & (pl.int_range(pl.len()) % 5 != 0)).alias("ok"))
    outcome = checks.success_rate_above(worse, 0.9)
    assert not outcome.passed
    assert outcome.metadata["success_rate"] == pytest.approx(worse["ok"].mean(), abs=1e-4)
    assert outcome.metadata["success_rate"] < 0.81


def test_edge_case_check_fails_and_names_the_case_that_was_not_triggered(tables):
    assert checks.configured_edge_cases_triggered(tables["edges"], tables["users"]).passed
    edges = tables["edges"].with_columns(
        (pl.col("triggered") & (pl.col("edge_case") != "division_by_zero")).alias("triggered")
    )
    outcome = checks.configured_edge_cases_triggered(edges, tables["users"])
    assert not outcome.passed
    assert outcome.metadata["missing"] == "division_by_zero"
    assert outcome.metadata["triggered"] == outcome.metadata["configured"] - 1 == 47


def test_cost_check_fails_when_a_charge_blows_the_budget(tables):
    ok = checks.cost_within_budget(tables["requests"], tables["users"], CostModel(), 25.0)
    assert ok.passed and 7.0 < ok.metadata["total_usd"] < 7.5  # seed: ~$7.20 for the run
    pricey = tables["requests"].with_columns(
        pl.when(pl.col("payment_usd") > 0)
        .then(pl.col("payment_usd") * 10)
        .otherwise(0.0)
        .alias("payment_usd")
    )
    outcome = checks.cost_within_budget(pricey, tables["users"], CostModel(), 25.0)
    assert not outcome.passed and outcome.metadata["total_usd"] > 25.0
