"""Fixtures of the HogFlix traffic tests: one simulated day at pool 400, computed once."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.events import session_events
from simulation_assets.core.hogflix.frames import to_frame
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.persona_state import day_number
from simulation_assets.core.hogflix.sessions import day_sessions
from simulation_assets.core.hogflix.traffic_config import TrafficConfig

SEED = 42
START = dt.date(2026, 3, 1)


@pytest.fixture(scope="session")
def persona_days() -> list[pl.DataFrame]:
    """Persona tables of three consecutive days at pool 400."""
    cfg = LifecycleConfig()
    state = initial_state(cfg, SEED, day_number(START))
    out = []
    for i in range(3):
        state = step_day(state, day_number(START) + i, cfg, SEED)
        out.append(to_frame(state))
    return out


@pytest.fixture(scope="session")
def day_traffic(persona_days: list[pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(personas, sessions, events) of the second day, events generated per 30-minute window."""
    cfg = TrafficConfig()
    personas = persona_days[1]
    sessions = day_sessions(personas, SEED, cfg)
    events = pl.concat(
        [
            session_events(g, SEED, cfg, key)
            for (key,), g in sessions.group_by("partition_key", maintain_order=True)
        ]
    )
    return personas, sessions, events
