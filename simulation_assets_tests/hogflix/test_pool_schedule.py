"""Dynamic pool scaling: a target pool that moves over a date range, followed by the lifecycle and its checks."""

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

START = dt.date(2026, 3, 1)


def _days(n: int) -> dt.date:
    return START + dt.timedelta(days=n)


def test_the_target_moves_linearly_between_dated_points_and_yaml_dates_parse():
    cfg = LifecycleConfig(pool_schedule={"2026-04-01": 400, "2026-06-30": 600, "2026-07-30": 500})
    assert cfg.pool_target(dt.date(2026, 3, 1)) == 400  # before the first point: persona_pool
    assert cfg.pool_target(dt.date(2026, 4, 1)) == 400
    assert cfg.pool_target(dt.date(2026, 5, 16)) == 500  # halfway through the 90-day ramp
    assert cfg.pool_target(dt.date(2026, 7, 15)) == 550
    assert cfg.pool_target(dt.date(2027, 1, 1)) == 500  # after the last point: stays
    day = cfg.for_date(dt.date(2026, 6, 30))
    assert day.persona_pool == 600 and day.pool_range == (570, 630) and day.signup_range == (3, 8)
    assert LifecycleConfig().for_date(START) == LifecycleConfig()  # no schedule: the same config
    with pytest.raises(ValueError):
        LifecycleConfig(pool_schedule={"2026-04-01": 0})


def test_the_pool_follows_a_rising_target_inside_the_moving_band():
    cfg = LifecycleConfig(pool_schedule={_days(30): 400, _days(120): 600})
    state = initial_state(cfg, 42, day_number(START))
    rows = []
    for day in range(day_number(START), day_number(_days(180))):
        state = step_day(state, day, cfg, 42)
        rows.append(daily_metrics(day_frame(state), day_date(day)))
    metrics = pl.concat(rows)
    pool = checks.pool_within_band(metrics, cfg)
    assert pool.passed and pool.metadata["band"] == "380-420 .. 570-630", pool.metadata
    assert checks.signups_within_band(metrics, cfg).passed
    assert (
        metrics["pool_size"][:30].is_between(380, 420).all()
        and metrics["pool_size"][-30:].is_between(570, 630).all()
    )
    active = (metrics["state_ACTIVE"] / metrics["pool_size"])[-60:].mean()
    assert 0.60 <= active <= 0.70
    # The same days checked against a constant 400 are far outside: the schedule is what moved the pool.
    assert not checks.pool_within_band(metrics, LifecycleConfig()).passed
