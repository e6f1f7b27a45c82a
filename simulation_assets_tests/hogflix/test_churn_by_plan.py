"""Churn by plan: lapsed personas 30+ days away churn at the plans' configured multipliers, judged where a
window separates them from noise (a pool of 4,000 over 120 days) and failing without the multipliers."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from simulation_assets.core.hogflix import checks
from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.frames import day_frame
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.metrics import daily_metrics
from simulation_assets.core.hogflix.persona_state import day_date, day_number

START = day_number(dt.date(2026, 3, 1))
CFG = LifecycleConfig(persona_pool=4_000)
FLAT = CFG.model_copy(update={"churn_by_plan": {"Premium": 1.0, "Standard": 1.0, "Basic": 1.0}})


def _metrics(cfg: LifecycleConfig, days: int = 120, seed: int = 42) -> pl.DataFrame:
    state = initial_state(cfg, seed, START)
    rows = []
    for day in range(START, START + days):
        state = step_day(state, day, cfg, seed)
        rows.append(daily_metrics(day_frame(state), day_date(day), cfg.pattern_assignment_day))
    return pl.concat(rows)


@pytest.fixture(scope="module")
def runs() -> dict[str, pl.DataFrame]:
    return {"configured": _metrics(CFG), "flat": _metrics(FLAT)}


def test_lapsed_personas_churn_by_their_plans_multiplier(runs) -> None:  # noqa: ANN001
    outcome = checks.churn_follows_the_plan(runs["configured"], CFG)
    m = outcome.metadata
    assert outcome.passed and m["judged"], m
    # Measured (seed 42): 1.10 +/- 0.13; Premium 186, Standard 242, Basic 304 churns per 1,000 at-risk days.
    assert 0.7 <= m["response"] <= 1.4 and m["response_standard_error"] <= 0.15
    rate = m["churn_per_1000_at_risk_days"]
    assert rate["Premium"] < rate["Standard"] < rate["Basic"]
    assert min(m["inactivity_churns"].values()) >= 500


def test_the_check_fails_when_every_plan_churns_alike(runs) -> None:  # noqa: ANN001
    # The same pool with the multipliers at 1.0, judged against the configured 0.8 / 1.0 / 1.25.
    outcome = checks.churn_follows_the_plan(runs["flat"], CFG)
    assert outcome.metadata["judged"] and not outcome.passed, outcome.metadata
    assert abs(outcome.metadata["response"]) < 0.4  # measured -0.06 +/- 0.13


def test_a_small_window_is_reported_not_judged(runs) -> None:  # noqa: ANN001
    # A month of this pool is too little to tell: the figures are reported and the check passes.
    outcome = checks.churn_follows_the_plan(runs["flat"].head(30), CFG)
    assert outcome.passed and not outcome.metadata["judged"]
    assert outcome.metadata["response_standard_error"] > 0.15
    # Metrics written before the at-risk columns existed: nothing to judge.
    old = runs["flat"].select(pl.exclude("^lapsed_.*$"))
    assert checks.churn_follows_the_plan(old, CFG).metadata["judged"] is False
