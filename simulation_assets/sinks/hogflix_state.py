"""Which HogFlix scenario runs, and reading its state back: settings, stored persona days, traffic.

Every HogFlix asset (lifecycle, traffic, browser tier) and the commands that
run them share this module: ``HogflixSettings`` names the scenario (seed, pool,
first day, config overrides) and where its data lives in the store;
``load_state_before`` returns the pool at the end of the day before a given
day, from the store or replayed deterministically; ``persona_table`` joins a
stored day with the identity registry; ``TrafficReader`` returns
persona days, sessions and events of half-hour windows, stored or recomputed
the same way the assets compute them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from simulation_assets.core.config_base import scenario_key
from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import DEFAULT_START_DATE, LifecycleConfig
from simulation_assets.core.hogflix.events import session_events
from simulation_assets.core.hogflix.frames import (
    IDENTITY_SCHEMA,
    PERSONA_DAY_SCHEMA,
    day_frame,
    from_frame,
    metrics_columns,
    new_identities,
    with_identities,
)
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.metrics import METRICS_INPUT_COLUMNS, daily_metrics, metrics_row
from simulation_assets.core.hogflix.persona_state import PersonaState, day_date, day_number
from simulation_assets.core.hogflix.sessions import (
    SESSION_SCHEMA,
    WINDOW_MS,
    day_sessions,
    window_sessions,
    window_start_ms,
)
from simulation_assets.core.hogflix.traffic_config import TrafficConfig
from simulation_assets.sinks.config_files import load_config
from simulation_assets.sinks.local_store import LocalParquetStore

# What a range run builds of a day whose table it does not store: the key column (for its checks).
DAY_SUMMARY_COLUMNS = ("persona_number",)


class HogflixSettings(dg.ConfigurableResource):
    """Which HogFlix scenario to simulate: seed, pool size, first day and optional overrides."""

    # Environment variables that configure it when the definitions are built (see sinks/config_files.py).
    ENV: ClassVar[dict[str, str]] = {
        "seed": "SIMULATION_SEED",
        "persona_pool": "PERSONA_POOL",
        "start_date": "HOGFLIX_START_DATE",
        "config_path": "HOGFLIX_CONFIG",
    }

    seed: int = 42
    persona_pool: int = 400
    start_date: str = Field(default=DEFAULT_START_DATE, description="First simulated day (pool genesis).")
    config_path: str = Field(default="", description="Optional YAML file with LifecycleConfig overrides.")
    checkpoint_days: int = Field(
        default=14,
        ge=1,
        description=(
            "A day's full persona table is stored on the days whose number (days since 1970-01-01) is a "
            "multiple of this and on the last day of each run; the other days are replayed from the "
            "stored day before them when read (1: every day stored)."
        ),
    )

    def lifecycle(self) -> LifecycleConfig:
        """Return the validated lifecycle config (file overrides, then ``persona_pool``)."""
        return load_config(
            LifecycleConfig,
            self.config_path or None,
            source="HOGFLIX_CONFIG",
            overrides={"persona_pool": self.persona_pool},
        )

    def stores_table(self, day: int) -> bool:
        """Return whether ``day``'s full table is stored even when it is not the last day of a run."""
        return day % self.checkpoint_days == 0

    def genesis_day(self) -> int:
        """Return the day number of the first simulated day."""
        return day_number(dt.date.fromisoformat(self.start_date))

    def scenario(self) -> str:
        """Return a short key naming this scenario in the store (seed, start, full config)."""
        payload = {
            # 2: day tables without identity strings + the identity registry (persona_table);
            # 3: full day tables stored on checkpoint days and at the end of a run, the rest replayed;
            # 4: persona tables carry lapsed_today and the daily metrics the lapse rule's exposure;
            # 5: checkpoint days' tables in Arrow IPC files (dataset checkpoints), the run's last day in Parquet
            "layout": 5,
            "seed": self.seed,
            "start": self.start_date,
            "config": self.lifecycle().model_dump(mode="json"),
        }
        return scenario_key(f"seed{self.seed}-pool{self.persona_pool}", payload)

    def dataset(self, name: str) -> str:
        """Return the store dataset name of ``name`` within this scenario."""
        return f"hogflix/{self.scenario()}/{name}"


class HogflixTrafficSettings(dg.ConfigurableResource):
    """Overrides of the traffic numbers (``TrafficConfig``) from an optional YAML file."""

    ENV: ClassVar[dict[str, str]] = {"config_path": "HOGFLIX_TRAFFIC_CONFIG"}

    config_path: str = Field(default="", description="Optional YAML file with TrafficConfig overrides.")

    def traffic(self) -> TrafficConfig:
        """Return the validated traffic config."""
        return load_config(TrafficConfig, self.config_path or None, source="HOGFLIX_TRAFFIC_CONFIG")


def _identities(settings: HogflixSettings) -> str:
    return settings.dataset("identities")


def write_day(
    settings: HogflixSettings, store: LocalParquetStore, state: PersonaState, first_number: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Store the day of ``state``: the identity rows of its signups (personas numbered from
    ``first_number``, the pool's ``next_number`` before the step), then the day's table; return both.

    The identities go first, so a stored day always has the registry it needs. Both writes replace
    their partition with the same deterministic rows, so re-materializing a day is idempotent.
    """
    ids, frame = new_identities(state, first_number), day_frame(state)
    _store_day(settings, store, day_date(state.day).isoformat(), ids, frame)
    return frame, ids


def _store_day(
    settings: HogflixSettings,
    store: LocalParquetStore,
    key: str,
    ids: pl.DataFrame,
    frame: pl.DataFrame,
    checkpoint: bool = False,
) -> None:
    store.write(_identities(settings), key, ids, bulk=True)
    if checkpoint:
        store.write_ipc(_checkpoints(settings), key, frame)
    else:
        store.write(settings.dataset("personas"), key, frame, bulk=True)


def _checkpoints(settings: HogflixSettings) -> str:
    return settings.dataset("checkpoints")


def stored_day_file(settings: HogflixSettings, store: LocalParquetStore, key: str) -> Path | None:
    """Return the file that stores the table of day ``key``, or None when the day is not stored (readers
    replay it).

    A run's last day is stored in Parquet (dataset ``personas``: what a user opens); a checkpoint day
    inside a run (``HogflixSettings.checkpoint_days``) in an uncompressed Arrow IPC file (dataset
    ``checkpoints``): the same table, ~8x less CPU to write at a million personas (0.08 vs 0.62 s), ~4x
    the bytes (190 vs 43 MB), kept only for this module to replay the days after it from. The Parquet
    file wins when both exist.
    """
    for path in (store.path(settings.dataset("personas"), key), store.ipc_path(_checkpoints(settings), key)):
        if path.exists():
            return path
    return None


def stored_day_table(
    settings: HogflixSettings, store: LocalParquetStore, key: str, columns: Iterable[str] | None = None
) -> pl.DataFrame | None:
    """Return the stored table of day ``key`` (``PERSONA_DAY_SCHEMA``; ``columns``: only those, in the
    schema's order) from its file (``stored_day_file``), or None when it is not stored."""
    path = stored_day_file(settings, store, key)
    if path is None:
        return None
    names = None if columns is None else [k for k in PERSONA_DAY_SCHEMA if k in set(columns)]
    return (
        pl.read_parquet(path, columns=names)
        if path.suffix == ".parquet"
        else pl.read_ipc(path, columns=names)
    )


def stored_day_keys(settings: HogflixSettings, store: LocalParquetStore) -> list[str]:
    """Return the days whose table is stored (Parquet or checkpoint), sorted."""
    return sorted(
        {*store.partitions(settings.dataset("personas")), *store.ipc_partitions(_checkpoints(settings))}
    )


def day_is_stored(settings: HogflixSettings, store: LocalParquetStore, key: str) -> bool:
    """Return whether the table of day ``key`` is stored (``stored_day_file``), not replayed."""
    return stored_day_file(settings, store, key) is not None


class DayWriter:
    """Stores the days of a range run (``write_day``) in a background thread, one day at a time, while the
    caller steps the next day: the Parquet encoding of a day (most of a day's CPU at a million personas)
    runs beside the next day's step instead of before it. Use as a context manager; leaving it waits for
    the last write (and raises what a write raised).

    A day's tables may share memory with the pool they were made from, so ``write`` returns only once
    the day before is on disk: the pool of two days back, whose buffers the next step reuses
    (``step_day(recycle=...)``), has then been written.
    """

    def __init__(self, settings: HogflixSettings, store: LocalParquetStore) -> None:
        self.settings = settings
        self.store = store
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hogflix-day-writer")
        self._pending: Future | None = None

    def write(
        self, state: PersonaState, first_number: int, table: bool = True, checkpoint: bool = False
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Build the day's tables of ``state`` (as ``write_day``), wait for the day before to be stored,
        start storing this one; return the day's table and its signups' identity rows.

        ``table`` False: store only the identity rows (readers replay the day, see ``DayTables``) and
        return only the day's ``persona_number`` column. ``checkpoint``: store the table as a checkpoint
        (Arrow IPC, see ``stored_day_table``) instead of Parquet."""
        ids = new_identities(state, first_number)
        frame = day_frame(state) if table else day_frame(state, DAY_SUMMARY_COLUMNS)
        self.wait()
        key = day_date(state.day).isoformat()
        if table:
            self._pending = self._thread.submit(
                _store_day, self.settings, self.store, key, ids, frame, checkpoint
            )
        else:
            self.store.write(_identities(self.settings), key, ids, bulk=True)
        return frame, ids

    def wait(self) -> None:
        """Return once every day handed to ``write`` is stored (raising what storing it raised)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> DayWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()
        finally:
            self._thread.shutdown(wait=True)


def identities_through(settings: HogflixSettings, store: LocalParquetStore, key: str) -> pl.DataFrame:
    """Return the identity registry (``IDENTITY_SCHEMA``) of every persona who signed up by the day
    ``key`` (the burn-in's pool included), sorted by ``persona_number``."""
    return identities_between(settings, store, "", key)


def identities_between(
    settings: HogflixSettings, store: LocalParquetStore, after: str, key: str
) -> pl.DataFrame:
    """Return the identity rows of the signup days after ``after`` (a day key, "" for all) up to ``key``,
    sorted by ``persona_number`` (the days' files are already in that order: no copy then)."""
    dataset = _identities(settings)
    frames = [store.read(dataset, k) for k in store.partitions(dataset) if after < k <= key]
    frame = concat_frames(frames, IDENTITY_SCHEMA)
    numbers = frame["persona_number"].to_numpy()
    return frame.sort("persona_number") if (np.diff(numbers) <= 0).any() else frame


def persona_table(settings: HogflixSettings, store: LocalParquetStore, key: str) -> pl.DataFrame:
    """Return the full persona table (``PERSONA_SCHEMA``) of the day ``key``: its day table (stored, or
    replayed from the stored day before it: ``DayTables``) joined with the identity registry."""
    day = DayTables(settings, store).table(key)
    return with_identities(day, identities_through(settings, store, key))


class DayTables:
    """The day tables (``PERSONA_DAY_SCHEMA``) of one scenario, stored or replayed.

    Only some days' tables are stored (``HogflixSettings.checkpoint_days`` and the last day of each
    run); another day is the deterministic step of the day before, so its table is computed from the
    last stored day before it, and equals the table a run storing every day would have written. Days
    read in rising order are replayed from the one before (a single step each); the identity rows of
    a replayed day's signups are stored if absent (the same rows its run stored).
    """

    def __init__(self, settings: HogflixSettings, store: LocalParquetStore) -> None:
        self.settings = settings
        self.store = store
        self._last: tuple[PersonaState, int] | None = None  # the last replayed pool and its first new number

    def stored(self, key: str) -> bool:
        """Return whether the table of day ``key`` is stored (not replayed)."""
        return day_is_stored(self.settings, self.store, key)

    def table(self, key: str, columns: Iterable[str] | None = None) -> pl.DataFrame:
        """Return the table of day ``key`` (``columns``: only those, in the schema's order)."""
        wanted = None if columns is None else set(columns)
        stored = stored_day_table(self.settings, self.store, key, wanted)
        if stored is not None:
            return stored
        state, _ = self.replayed(day_number(dt.date.fromisoformat(key)))
        return day_frame(state, wanted)

    def replayed(self, day: int) -> tuple[PersonaState, int]:
        """Return the pool at the end of ``day`` computed from the day before (stored or replayed), and
        the number of its first signup (its signups are the personas numbered from there on)."""
        if self._last is not None and self._last[0].day == day:
            return self._last
        if self._last is not None and self._last[0].day == day - 1:
            before = self._last[0]
        else:
            before = load_state_before(self.settings, self.store, day)
        first = before.next_number
        # Never stepped with ``recycle``: the pool before stays as it was (its tables may still be read).
        state = step_day(before, day, self.settings.lifecycle(), self.settings.seed)
        key = day_date(day).isoformat()
        if not self.store.exists(_identities(self.settings), key):
            self.store.write(_identities(self.settings), key, new_identities(state, first), bulk=True)
        self._last = (state, first)
        return self._last


def burned_in(settings: HogflixSettings, store: LocalParquetStore) -> PersonaState:
    """Return the pool before the scenario's first day: the burn-in (150 days of the ordinary rules,
    minutes at a million personas) is computed once per scenario, stored, and read back after that.

    It is stored like any day: its day table, and its pool's identities under the day before the first
    day; a day stepped from the stored pool equals a day stepped from the computed pool.
    """
    dataset, key = settings.dataset("burn_in"), settings.start_date
    before = day_date(settings.genesis_day() - 1).isoformat()
    if store.exists(dataset, key) and store.exists(_identities(settings), before):
        state = from_frame(store.read(dataset, key))
        state.identity = store.read(_identities(settings), before)
        return state
    state = initial_state(settings.lifecycle(), settings.seed, settings.genesis_day())
    store.write(_identities(settings), before, new_identities(state, 0), bulk=True)
    store.write(dataset, key, day_frame(state), bulk=True)
    return state


def load_state_before(settings: HogflixSettings, store: LocalParquetStore, day: int) -> PersonaState:
    """Return the pool at the end of ``day - 1``: from the store, or rebuilt from the first day.

    Rebuilding replays the same deterministic steps a backfill would, so a day
    materialized alone equals the same day inside a backfill; the identities of
    the replayed days' signups are stored on the way (the same rows their days
    store), so every later day finds its registry. A pool read from a stored
    day has an empty identity registry (``persona_table`` joins it back).
    """
    cfg, seed, genesis = settings.lifecycle(), settings.seed, settings.genesis_day()
    if day < genesis:
        raise ValueError(f"{day_date(day)} is before the first simulated day {settings.start_date}")
    if day == genesis:
        return burned_in(settings, store)
    previous = day_date(day - 1).isoformat()
    stored = stored_day_table(settings, store, previous)
    if stored is not None:
        return from_frame(stored)
    written = [k for k in stored_day_keys(settings, store) if k < previous]
    state = (
        from_frame(stored_day_table(settings, store, written[-1])) if written else burned_in(settings, store)
    )
    older = None  # the pool of two days back: its buffers take the next day's columns
    for d in range(state.day + 1, day):
        first = state.next_number
        state, older = step_day(state, d, cfg, seed, recycle=older), state
        key = day_date(d).isoformat()
        if not store.exists(_identities(settings), key):  # else: the same rows, stored by the day's run
            store.write(_identities(settings), key, new_identities(state, first), bulk=True)
    return state


# Daily metrics rows of persona days computed in this process, by (scenario, day): the metrics asset of
# the same run takes its row from here instead of reading the day's table back from its file (the row
# is the same: the table is deterministic). One small row per day; the oldest go first.
_DAY_METRICS: dict[tuple[str, str], pl.DataFrame] = {}
_DAY_METRICS_KEPT = 4096


def remember_day_metrics(settings: HogflixSettings, state: PersonaState) -> None:
    """Compute the daily metrics row of the pool ``state``'s day now, from its arrays in memory."""
    key = day_date(state.day).isoformat()
    cfg = settings.lifecycle()
    row = metrics_row(
        metrics_columns(state), day_date(state.day), cfg.pattern_assignment_day, cfg.churn_after_inactive_days
    )
    while len(_DAY_METRICS) >= _DAY_METRICS_KEPT:
        _DAY_METRICS.pop(next(iter(_DAY_METRICS)))
    _DAY_METRICS[(settings.scenario(), key)] = row


def day_metrics(
    settings: HogflixSettings, store: LocalParquetStore, key: str, tables: DayTables | None = None
) -> pl.DataFrame:
    """Return the daily metrics row of the day ``key``: the one computed in this run while the day was
    in memory, or else computed from the day's table (``tables``: stored, only the columns it needs
    read, or replayed; pass one ``DayTables`` for a run of days so each is replayed from the last)."""
    row = _DAY_METRICS.pop((settings.scenario(), key), None)
    if row is not None:
        return row
    days = tables or DayTables(settings, store)
    return _metrics_row(settings, days.table(key, METRICS_INPUT_COLUMNS).select(METRICS_INPUT_COLUMNS), key)


def _metrics_row(settings: HogflixSettings, columns: pl.DataFrame, key: str) -> pl.DataFrame:
    """Return ``daily_metrics`` of day ``key``'s persona columns under the scenario's lifecycle."""
    cfg = settings.lifecycle()
    return daily_metrics(
        columns, dt.date.fromisoformat(key), cfg.pattern_assignment_day, cfg.churn_after_inactive_days
    )


def concat_frames(frames: Iterable[pl.DataFrame], schema: dict) -> pl.DataFrame:
    """Return the non-empty ``frames`` stacked, or an empty frame of ``schema``."""
    parts = [f for f in frames if not f.is_empty()]
    return pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame(schema=schema)


# Persona days computed (not read) in this process, by (scenario, date): the same deterministic
# table, so the four half-hourly assets of a run do not each replay the lifecycle.
_COMPUTED_PERSONAS: dict[tuple[str, dt.date], pl.DataFrame] = {}


class TrafficReader:
    """Reads (or, when absent, recomputes) persona days, sessions and events for a range of windows.

    A half-hourly run may come before the daily run that stores the day's persona
    table; the table is then computed from the last stored day with the same
    deterministic step, so it equals what the daily asset will store.
    """

    def __init__(self, settings: HogflixSettings, traffic: TrafficConfig, store: LocalParquetStore) -> None:
        self.settings = settings
        self.traffic = traffic
        self.store = store
        self.traits = settings.lifecycle().traits
        self._personas: dict[dt.date, pl.DataFrame] = {}
        self._day_sessions: dict[dt.date, pl.DataFrame] = {}
        self._registry: tuple[str, pl.DataFrame] | None = None  # identities through a day key
        self._days = DayTables(settings, store)  # days not stored: replayed, each from the day before

    def _identities(self, key: str) -> pl.DataFrame:
        """Return an identity registry covering every signup up to the day ``key`` (maybe more): read once
        per reader and extended by the later days' files, not re-read for each day."""
        if self._registry is not None and self._registry[0] >= key:
            return self._registry[1]
        if self._registry is None:
            registry = identities_through(self.settings, self.store, key)
        else:
            later = identities_between(self.settings, self.store, self._registry[0], key)
            registry = concat_frames([self._registry[1], later], IDENTITY_SCHEMA)
        self._registry = (key, registry)
        return registry

    def personas(self, date: dt.date, keep: bool = True) -> pl.DataFrame | None:
        """Return the persona table of ``date`` (None before the first simulated day); ``keep``: hold it
        for the next call (the sessions of a day need it once: a million-persona table is ~0.4 GB)."""
        if date in self._personas:
            return self._personas[date]
        if date < dt.date.fromisoformat(self.settings.start_date):
            return None
        cache_key = (self.settings.scenario(), date)
        day = stored_day_table(self.settings, self.store, date.isoformat())
        if day is not None:
            frame = with_identities(day, self._identities(date.isoformat()))
        elif cache_key in _COMPUTED_PERSONAS:
            frame = _COMPUTED_PERSONAS[cache_key]
        else:
            state, first = self._days.replayed(day_number(date))
            frame = with_identities(day_frame(state), self._replayed_registry(date, state, first))
            if len(_COMPUTED_PERSONAS) >= 8:
                _COMPUTED_PERSONAS.pop(next(iter(_COMPUTED_PERSONAS)))
            _COMPUTED_PERSONAS[cache_key] = frame
        if keep:
            self._personas[date] = frame
        return frame

    def _visitors(self, date: dt.date) -> pl.DataFrame | None:
        """Return the rows of ``date``'s persona table with a session that day (the rows ``day_sessions``
        reads, in the table's order), with their identities: from a stored day only those rows are
        joined with the registry (a fifth of the pool), not the whole table."""
        if date in self._personas or date < dt.date.fromisoformat(self.settings.start_date):
            return self.personas(date)
        visit = pl.col("active_today") & pl.col("session_start_at").is_not_null()
        day = stored_day_table(self.settings, self.store, date.isoformat())
        if day is None:
            if (self.settings.scenario(), date) in _COMPUTED_PERSONAS:
                return self.personas(date, keep=False)
            # A day between stored ones: replayed, and only its visitors' rows joined (as below).
            state, first = self._days.replayed(day_number(date))
            visited = day_frame(state).filter(visit)
            return with_identities(visited, self._replayed_registry(date, state, first))
        return with_identities(day.filter(visit), self._identities(date.isoformat()))

    def _replayed_registry(self, date: dt.date, state: PersonaState, first: int) -> pl.DataFrame:
        """Return an identity registry covering the replayed pool ``state`` of ``date`` (whose signups are
        numbered from ``first``): the stored registry through the day before, and the day's signups."""
        before = self._identities((date - dt.timedelta(days=1)).isoformat())
        # The registry may already reach past today (a later day read first): add only newer numbers.
        top = int(before["persona_number"].max()) if before.height else -1
        return concat_frames([before, new_identities(state, max(first, top + 1))], IDENTITY_SCHEMA)

    def sessions_of_day(self, date: dt.date) -> pl.DataFrame:
        """Return every session of ``date`` (computed from its persona table, once per reader)."""
        if date not in self._day_sessions:
            personas = self._visitors(date)
            self._day_sessions[date] = (
                pl.DataFrame(schema=SESSION_SCHEMA)
                if personas is None
                else day_sessions(personas, self.settings.seed, self.traffic, self.traits)
            )
        return self._day_sessions[date]

    def window_sessions(self, key: str) -> pl.DataFrame:
        """Sessions starting in window ``key`` (a signup's visit may spill over from the day before)."""
        start = window_start_ms(key)
        date = dt.datetime.fromtimestamp(start / 1000, dt.UTC).date()
        days = [self.sessions_of_day(date - dt.timedelta(days=1)), self.sessions_of_day(date)]
        return window_sessions(days, start, start + WINDOW_MS)

    def stored_or_sessions(self, key: str) -> pl.DataFrame:
        """Return the stored sessions of window ``key``, or compute them."""
        dataset = self.settings.dataset("sessions")
        if self.store.exists(dataset, key):
            return self.store.read(dataset, key)
        return self.window_sessions(key)

    def stored_or_events(self, key: str) -> pl.DataFrame:
        """Return the stored events of window ``key``, or compute them from its sessions."""
        dataset = self.settings.dataset("events")
        if self.store.exists(dataset, key):
            return self.store.read(dataset, key)
        return self.events(key, self.stored_or_sessions(key))

    def events(self, key: str, sessions: pl.DataFrame) -> pl.DataFrame:
        """Return the events of window ``key``'s ``sessions`` (the same as ``hogflix_events`` writes)."""
        return session_events(sessions, self.settings.seed, self.traffic, key, self.traits)
