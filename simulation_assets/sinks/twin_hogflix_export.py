"""HogFlix's own events as a PostHog export: the twin's worked example, its demo, round-trip tests and benchmark.

The events are made with HogFlix's core functions (lifecycle, sessions, events) day by day and written in
PostHog's export shapes, so the twin reads them as it would read a real product's export.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
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
    return pl.concat(list(hogflix_event_chunks(pool, days, seed, start, chunk_days=days)))


def hogflix_event_chunks(
    pool: int, days: int, seed: int = 1, start: dt.date = dt.date(2026, 1, 5), chunk_days: int = 7
) -> Iterator[pl.DataFrame]:
    """Yield the same events ``chunk_days`` days at a time (memory bounded for large pools)."""
    cfg, traffic = LifecycleConfig(persona_pool=pool), TrafficConfig()
    state = initial_state(cfg, seed, day_number(start))
    frames = []
    for i in range(days):
        state = step_day(state, day_number(start) + i, cfg, seed)
        frames.append(session_events(day_sessions(to_frame(state), seed, traffic), seed, traffic, str(i)))
        if len(frames) == chunk_days or i == days - 1:
            yield pl.concat(frames)
            frames = []


def write_hogflix_export_folder(pool: int, days: int, folder: Path, seed: int = 1) -> tuple[Path, int]:
    """Write HogFlix's events as a folder of weekly batch-export Parquet files; return (folder, rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = 0
    for n, chunk in enumerate(hogflix_event_chunks(pool, days, seed)):
        write_hogflix_export(chunk, folder / f"events-{n:03d}.parquet")
        rows += chunk.height
    return folder, rows


def write_hogflix_export(events: pl.DataFrame, path: Path, shape: WriteShape = "batch-parquet") -> Path:
    """Write HogFlix events as a PostHog export: properties are the columns HogFlix sends to PostHog,
    ``person_id`` the persona (PostHog's person, the same before and after ``$identify``)."""
    return write_export(
        events, path, shape, property_columns=PROPERTY_COLUMNS, person_id="persona_distinct_id"
    )
