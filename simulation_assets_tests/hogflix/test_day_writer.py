"""Range runs store each day in the background (``DayWriter``) while the next day is stepped."""

from __future__ import annotations

import datetime as dt
import time

import polars as pl
import pytest

from simulation_assets.core.hogflix.frames import day_frame
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.persona_state import day_number
from simulation_assets.sinks.hogflix_state import (
    DayWriter,
    HogflixSettings,
    load_state_before,
    stored_day_keys,
    stored_day_table,
)
from simulation_assets.sinks.local_store import LocalParquetStore

START = "2026-01-01"


class SlowStore(LocalParquetStore):
    """A store whose day tables take a while to write (so the next day is stepped meanwhile); it fails
    on the day named ``fail_on``."""

    fail_on: str = ""

    def write(self, dataset: str, partition: str, frame: pl.DataFrame, bulk: bool = False):  # noqa: ANN201
        if dataset.endswith("/personas"):
            time.sleep(0.05)
            if partition == self.fail_on:
                raise OSError(f"disk full writing {partition}")
        return super().write(dataset, partition, frame, bulk)

    def write_ipc(self, dataset: str, partition: str, frame: pl.DataFrame):  # noqa: ANN201
        time.sleep(0.05)
        return super().write_ipc(dataset, partition, frame)


def _run(settings: HogflixSettings, store: LocalParquetStore, days: int) -> list[pl.DataFrame]:
    """Step ``days`` days from the first as the asset does (recycled buffers, background writes)."""
    genesis = day_number(dt.date.fromisoformat(START))
    state, older, frames = load_state_before(settings, store, genesis), None, []
    with DayWriter(settings, store) as writer:
        for day in range(genesis, genesis + days):
            first = state.next_number
            state, older = step_day(state, day, settings.lifecycle(), settings.seed, recycle=older), state
            # every other day a checkpoint (Arrow IPC), the others in Parquet
            frame, signed_up = writer.write(state, first, checkpoint=day % 2 == 1)
            state.identity = signed_up
            frames.append(frame)
    return frames


def test_days_stored_in_the_background_equal_the_days_stepped_one_by_one(tmp_path):
    settings = HogflixSettings(seed=3, persona_pool=400, start_date=START)
    store = SlowStore(root_dir=str(tmp_path))
    _run(settings, store, 6)
    # The same days stepped plainly (no recycled buffers, nothing in the background).
    state = load_state_before(settings, store, day_number(dt.date.fromisoformat(START)))
    for offset in range(6):
        state = step_day(state, state.day + 1, settings.lifecycle(), settings.seed)
        key = (dt.date.fromisoformat(START) + dt.timedelta(days=offset)).isoformat()
        stored = stored_day_table(settings, store, key)
        # A day's table shares memory with its pool: had the next steps reused that pool's buffers before
        # the table was written, the file would hold a later day's numbers.
        assert stored.equals(day_frame(state)), key
        assert store.exists(settings.dataset("identities"), key)


def test_a_failed_background_write_fails_the_run_and_keeps_the_days_before(tmp_path):
    settings = HogflixSettings(seed=3, persona_pool=400, start_date=START)
    store = SlowStore(root_dir=str(tmp_path), fail_on="2026-01-03")
    with pytest.raises(OSError, match="disk full writing 2026-01-03"):
        _run(settings, store, 6)
    assert stored_day_keys(settings, store) == ["2026-01-01", "2026-01-02"]
