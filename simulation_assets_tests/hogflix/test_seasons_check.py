"""The seasons check judges what a window can show: the weekly season on any month or more, the holidays
when a window around them separates their multipliers from the day-to-day noise, the yearly wave over a
year. Each part passes on the simulator's data and fails on data without the structure (days shuffled,
or the season multipliers switched off)."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from simulation_assets.core.hogflix import checks
from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.frames import day_frame
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.metrics import daily_metrics
from simulation_assets.core.hogflix.persona_state import day_date, day_number


def _metrics(cfg: LifecycleConfig, start: dt.date, days: int, seed: int = 42) -> pl.DataFrame:
    # day_frame: the persona columns daily_metrics reads, without joining the identities to them
    state = initial_state(cfg, seed, day_number(start))
    rows = []
    for day in range(day_number(start), day_number(start) + days):
        state = step_day(state, day, cfg, seed)
        rows.append(daily_metrics(day_frame(state), day_date(day), cfg.pattern_assignment_day))
    return pl.concat(rows)


def _seasons_off(cfg: LifecycleConfig) -> LifecycleConfig:
    return cfg.model_copy(update={"seasons": cfg.seasons.model_copy(update={"enabled": False})})


def _shuffled(metrics: pl.DataFrame) -> pl.DataFrame:
    order = list(range(metrics.height))
    random.Random(1).shuffle(order)
    return metrics.with_columns(metrics["date"].gather(order))


def test_weekends_are_deeper_and_shuffled_days_fail() -> None:
    cfg = LifecycleConfig()
    metrics = _metrics(cfg, dt.date(2026, 3, 1), 90)
    outcome = checks.seasons_show(metrics, cfg)
    m = outcome.metadata
    assert outcome.passed, m
    assert m["weekend_lift"] > 1.12 and m["weekend_lift_t"] >= 3, m  # measured 1.22, t 7.7
    by_day = m["videos_per_persona_by_weekday"]
    assert min(by_day["Sat"], by_day["Sun"]) > max(by_day["Mon"], by_day["Tue"], by_day["Wed"])
    # March to May holds no holiday and too little of the yearly wave: reported, not judged.
    assert m["holidays"] == {} and not m["holidays_judged"] and not m["yearly_judged"]
    failed = checks.seasons_show(_shuffled(metrics), cfg)
    assert not failed.passed and failed.metadata["failures"][0].startswith("weekend lift"), failed.metadata
    # A window shorter than min_days reports the lift without judging it.
    assert checks.seasons_show(_shuffled(metrics).head(20), cfg).passed


def test_the_holidays_show_and_fail_when_switched_off() -> None:
    cfg = LifecycleConfig(persona_pool=4000)  # at 400 the holiday response's error is ~0.2: reported only
    start = dt.date(2025, 11, 20)
    outcome = checks.seasons_show(_metrics(cfg, start, 70), cfg)
    m = outcome.metadata
    assert outcome.passed and m["holidays_judged"], m
    assert set(m["holidays"]) == {"2025-12-25", "2025-12-26", "2025-12-31", "2026-01-01"}
    assert m["holiday_response"] >= 0.5 and m["holidays"]["2025-12-31"]["measured"] < 0.95, m
    failed = checks.seasons_show(_metrics(_seasons_off(cfg), start, 70), cfg)
    assert not failed.passed and failed.metadata["holidays_judged"], failed.metadata
    assert any(f.startswith("holiday response") for f in failed.metadata["failures"])


@pytest.mark.slow
def test_the_yearly_wave_shows_over_a_year_and_fails_when_switched_off() -> None:
    cfg = LifecycleConfig(persona_pool=2000)
    start = dt.date(2025, 3, 1)
    metrics = _metrics(cfg, start, 365)
    outcome = checks.seasons_show(metrics, cfg)
    m = outcome.metadata
    assert outcome.passed and m["yearly_judged"] and m["yearly_response"] >= 0.6, m  # measured 1.03 +/- 0.09
    failed = checks.seasons_show(_metrics(_seasons_off(cfg), start, 365), cfg)
    assert not failed.passed and any(f.startswith("yearly response") for f in failed.metadata["failures"])
    shuffled = checks.seasons_show(_shuffled(metrics), cfg)
    assert not shuffled.passed, shuffled.metadata
