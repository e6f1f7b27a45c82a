"""HogFlix's own events, made with the project's core functions and written in PostHog's export shapes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.event_frame import PROPERTY_COLUMNS
from simulation_assets.core.hogflix.events import session_events
from simulation_assets.core.hogflix.frames import to_frame
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.persona_state import day_number
from simulation_assets.core.hogflix.sessions import day_sessions
from simulation_assets.core.hogflix.traffic_config import TrafficConfig
from simulation_assets.sinks.posthog_export import WriteShape, write_export


def hogflix_events(pool: int, days: int, seed: int = 1, start: dt.date = dt.date(2026, 1, 5)) -> pl.DataFrame:
    """Return ``days`` days of HogFlix events at persona pool ``pool`` (lifecycle, sessions, events)."""
    cfg, traffic = LifecycleConfig(persona_pool=pool), TrafficConfig()
    state = initial_state(cfg, seed, day_number(start))
    frames = []
    for i in range(days):
        state = step_day(state, day_number(start) + i, cfg, seed)
        frames.append(session_events(day_sessions(to_frame(state), seed, traffic), seed, traffic, str(i)))
    return pl.concat(frames)


def write_hogflix_export(events: pl.DataFrame, path: Path, shape: WriteShape = "batch-parquet") -> Path:
    """Write HogFlix events as a PostHog export: properties are the columns HogFlix sends to PostHog,
    ``person_id`` the persona (PostHog's person, the same before and after ``$identify``)."""
    return write_export(
        events, path, shape, property_columns=PROPERTY_COLUMNS, person_id="persona_distinct_id"
    )
