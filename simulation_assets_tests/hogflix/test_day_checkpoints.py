"""Day tables stored on checkpoint days and at the end of a run; the days between replayed when read."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl

from simulation_assets.core.hogflix.persona_state import day_number
from simulation_assets.core.hogflix.traffic_config import TrafficConfig
from simulation_assets.defs.hogflix import build_defs
from simulation_assets.sinks.hogflix_state import (
    DayTables,
    HogflixSettings,
    TrafficReader,
    day_metrics,
    persona_table,
    stored_day_keys,
    stored_day_table,
)
from simulation_assets.sinks.local_store import LocalParquetStore

START, LAST = "2026-01-01", "2026-01-12"
KEYS = [(dt.date(2026, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(12)]


def _assets(names=("hogflix_personas", "hogflix_daily_metrics")):
    return [a for a in build_defs(START, "2026-03-01").assets if a.key.path[0] in names]


def _run(
    root, checkpoint_days: int, first=START, last=LAST, names=("hogflix_personas", "hogflix_daily_metrics")
):
    settings = HogflixSettings(seed=5, persona_pool=400, start_date=START, checkpoint_days=checkpoint_days)
    store = LocalParquetStore(root_dir=str(root))
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    result = dg.materialize(
        _assets(names), resources={"hogflix_settings": settings, "store": store}, tags=tags
    )
    assert result.success
    return settings, store, result


def test_a_range_run_stores_checkpoint_days_and_its_last_day_and_the_rest_read_back_the_same(tmp_path):
    every, store_all, _ = _run(tmp_path / "every", 1)
    weekly, store_weekly, result = _run(tmp_path / "weekly", 7)
    # Same scenario (the cadence changes what is stored, not what a day is): one store layout.
    assert every.scenario() == weekly.scenario()
    expected = [k for k in KEYS if day_number(dt.date.fromisoformat(k)) % 7 == 0 or k == LAST]
    assert stored_day_keys(weekly, store_weekly) == expected
    assert len(expected) == 3  # two checkpoints and the last day: 9 of the 12 days are not stored
    assert stored_day_keys(every, store_all) == KEYS
    # The run's last day in Parquet, the checkpoints inside the run in Arrow IPC files.
    assert store_weekly.partitions(weekly.dataset("personas")) == [LAST]
    assert store_weekly.ipc_partitions(weekly.dataset("checkpoints")) == expected[:-1]
    assert store_all.ipc_partitions(every.dataset("checkpoints")) == KEYS[:-1]
    summary = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["hogflix_personas"] and e.partition is None
    ]
    assert not summary or summary[-1]["tables_stored"].value == 3
    # A stored day has the bytes it has when every day is stored.
    for key in expected[:-1]:
        a = store_weekly.ipc_path(weekly.dataset("checkpoints"), key).read_bytes()
        assert a == store_all.ipc_path(every.dataset("checkpoints"), key).read_bytes(), key
    a = store_weekly.path(weekly.dataset("personas"), LAST).read_bytes()
    assert a == store_all.path(every.dataset("personas"), LAST).read_bytes()
    # Every day, stored or replayed, reads back as the same persona table; the identities of every
    # day were stored by the run (a replay finds them, it does not need to write them).
    ids = store_weekly.partitions(weekly.dataset("identities"))
    assert set(KEYS) <= set(ids)
    for key in KEYS:
        assert persona_table(weekly, store_weekly, key).equals(persona_table(every, store_all, key)), key
    assert stored_day_keys(weekly, store_weekly) == expected  # reading stored nothing
    # The daily metrics of both runs are the same rows.
    m_all = store_all.read_many(every.dataset("daily_metrics"), KEYS)
    m_weekly = store_weekly.read_many(weekly.dataset("daily_metrics"), KEYS)
    assert m_all.height == 12 and m_weekly.equals(m_all)


def test_days_read_in_any_order_and_metrics_computed_from_replayed_days_equal_stored_ones(tmp_path):
    every, store_all, _ = _run(tmp_path / "every", 1, names=("hogflix_personas",))
    weekly, store_weekly, _ = _run(tmp_path / "weekly", 7)  # metrics from the pools' arrays in memory
    tables = DayTables(weekly, store_weekly)
    in_memory = store_weekly.read_many(weekly.dataset("daily_metrics"), KEYS)
    for key in ["2026-01-10", "2026-01-03", "2026-01-04", "2026-01-11", "2026-01-02", "2026-01-09"]:
        assert not tables.stored(key)
        want = stored_day_table(every, store_all, key)
        assert tables.table(key).equals(want), key
        assert tables.table(key, ["state", "persona_number"]).equals(
            want.select("state", "persona_number")
        )  # schema order
        # Metrics computed from the replayed day (no in-memory row of a run) equal the stored day's.
        from_table = day_metrics(weekly, store_weekly, key, tables)
        assert from_table.equals(day_metrics(every, store_all, key))
        # ... and equal the row the run computed from the pool's arrays.
        assert from_table.equals(in_memory.filter(pl.col("date") == dt.date.fromisoformat(key))), key


def test_traffic_of_a_day_between_checkpoints_equals_the_traffic_of_the_stored_day(tmp_path):
    every, store_all, _ = _run(tmp_path / "every", 1, names=("hogflix_personas",))
    weekly, store_weekly, _ = _run(tmp_path / "weekly", 7, names=("hogflix_personas",))
    traffic = TrafficConfig()
    date = dt.date(2026, 1, 10)  # not stored; nor is the day before
    a, b = TrafficReader(weekly, traffic, store_weekly), TrafficReader(every, traffic, store_all)
    assert not a._days.stored(date.isoformat())
    for key in ("2026-01-10-00:00", "2026-01-10-19:30"):
        sessions = a.window_sessions(key)
        assert sessions.equals(b.window_sessions(key)), key
        assert a.events(key, sessions).equals(b.events(key, sessions)), key
    assert a.personas(date).equals(b.personas(date))
    assert a.personas(date).height == b.personas(date).height > 0


def test_a_one_day_run_after_a_range_resumes_from_its_last_day_and_equals_every_day_stored(tmp_path):
    every, store_all, _ = _run(tmp_path / "every", 1, last="2026-01-13")
    weekly, store_weekly, _ = _run(tmp_path / "weekly", 7)
    _run(tmp_path / "weekly", 7, first="2026-01-13", last="2026-01-13")
    key = "2026-01-13"
    a = store_weekly.path(weekly.dataset("personas"), key).read_bytes()
    assert a == store_all.path(every.dataset("personas"), key).read_bytes()
    # A day far from any stored day, run alone, replays from the last stored day before it.
    _run(tmp_path / "weekly", 7, first="2026-01-20", last="2026-01-20")
    _run(tmp_path / "every", 1, first="2026-01-14", last="2026-01-20")
    got = pl.read_parquet(store_weekly.path(weekly.dataset("personas"), "2026-01-20"))
    assert got.equals(pl.read_parquet(store_all.path(every.dataset("personas"), "2026-01-20")))
