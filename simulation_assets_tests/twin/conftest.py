"""Fixtures of the twin tests: a small export unlike HogFlix, its fitted spec and a generated twin (computed once)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.twin.config import FitConfig
from simulation_assets.core.twin.example import synthetic_events
from simulation_assets.core.twin.fit import Prepared, fit, prepare
from simulation_assets.core.twin.generate import Generator, as_export_rows
from simulation_assets.core.twin.spec import TwinSpec
from simulation_assets.sinks.posthog_export import ColumnMapping, write_export
from simulation_assets.sinks.twin_source import LoadedExport, load_for_fit

CFG = FitConfig()
# The column names of the tests' own small exports (a generic table: account, at_ms, action).
ACCOUNT_MAP = ColumnMapping(user_id="account", timestamp="at_ms", event="action")


def fit_file(
    path: Path, cfg: FitConfig, mapping: ColumnMapping | None = ACCOUNT_MAP
) -> tuple[Prepared, TwinSpec]:
    """Read the export at ``path`` and fit it: its prepared users and sessions, and the spec."""
    loaded = load_for_fit(path, mapping, cfg)
    return loaded.prepared, fit(loaded.prepared, loaded.property_sample, loaded.key_stats, cfg, path.name)


@pytest.fixture(scope="session")
def synthetic_frame() -> pl.DataFrame:
    return synthetic_events(users=600, days=70, seed=7)


@pytest.fixture(scope="session")
def synthetic_csv(synthetic_frame: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic product as the UI's CSV export (flattened properties.*, no $session_id)."""
    return write_export(synthetic_frame, tmp_path_factory.mktemp("export") / "events.csv", "csv")


@pytest.fixture(scope="session")
def loaded(synthetic_csv: Path) -> LoadedExport:
    return load_for_fit(synthetic_csv, None, CFG)


@pytest.fixture(scope="session")
def spec(loaded: LoadedExport) -> TwinSpec:
    return fit(loaded.prepared, loaded.property_sample, loaded.key_stats, CFG, "events.csv")


def generate_all(spec: TwinSpec) -> pl.DataFrame:
    gen = Generator(spec)
    g = spec.document.generation
    days = [gen.day(g.start + dt.timedelta(days=i)) for i in range(g.days)]
    return pl.concat(days, how="diagonal_relaxed")


def with_keys(loaded: LoadedExport, sample: pl.DataFrame, types: dict[str, str]) -> LoadedExport:
    """Return ``loaded`` with ``sample`` as its property sample and key statistics for ``types`` (key: DuckDB
    type) on every one of its events, as if the export's rows had carried those keys."""
    stats = pl.DataFrame(
        [
            {"event": e, "key": key, "rows": 1000, "event_rows": 1000, "share": 1.0, "types": kind}
            for e in sample["event"].unique().to_list()
            for key, kind in types.items()
        ],
        schema=loaded.key_stats.schema,
    )
    return dataclasses.replace(loaded, property_sample=sample, key_stats=pl.concat([loaded.key_stats, stats]))


def twin_days(spec: TwinSpec, days: int = 14) -> pl.DataFrame:
    """Return the twin's events of the spec's first ``days`` days."""
    gen = Generator(spec)
    start = spec.document.generation.start
    return pl.concat([gen.day(start + dt.timedelta(days=d)) for d in range(days)])


def block_sessions(
    active: np.ndarray,
    g: np.random.Generator,
    start: dt.date,
    video_share: np.ndarray,
    end: np.ndarray,
    page: list[tuple[str, float]],
    watch: list[tuple[str, float]],
    opening: float | None = None,
) -> pl.DataFrame:
    """Return one session per active (user, day) of ``active`` as a generic table (account, at_ms, action).

    A session (between 9:00 and 20:00) may open with an ``open`` event (``opening`` seconds before the
    next), then is blocks: a video block (``watch``'s events, with a user's ``video_share``) or a page
    block (``page``'s); after each block it ends with the user's chance ``end``. Each event is followed by
    a lognormal gap around its own seconds.
    """
    s_user, s_day = np.nonzero(active)
    base = (start - dt.date(1970, 1, 1)).days
    clock = (base + s_day) * 86_400_000 + (g.uniform(9, 20, s_user.size) * 3_600_000).astype(np.int64)
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def emit(idx: np.ndarray, name: str, gap_s: float) -> None:
        rows.append((s_user[idx], clock[idx].copy(), np.full(idx.size, name)))
        clock[idx] += (g.lognormal(np.log(gap_s), 0.3, idx.size) * 1000).astype(np.int64)

    live = np.arange(s_user.size)
    if opening is not None:
        emit(live, "open", opening)
    while live.size:
        video = g.random(live.size) < video_share[s_user[live]]
        for idx, recipe in ((live[~video], page), (live[video], watch)):
            for name, gap_s in recipe:
                emit(idx, name, gap_s)
        live = live[g.random(live.size) >= end[s_user[live]]]
    user, t, event = (np.concatenate(x) for x in zip(*rows, strict=True))
    return pl.DataFrame({"account": np.char.add("u", user.astype(str)), "at_ms": t, "action": event}).sort(
        "at_ms"
    )


def prepared_twin(spec: TwinSpec, cfg: FitConfig) -> Prepared:
    """Generate the spec's whole twin and prepare it as the fit prepares an export."""
    return prepare(as_export_rows(generate_all(spec)), cfg)


@pytest.fixture(scope="session")
def twin_frame(spec: TwinSpec) -> pl.DataFrame:
    return generate_all(spec)


@pytest.fixture(scope="session")
def twin_prepared(twin_frame: pl.DataFrame) -> Prepared:
    return prepare(as_export_rows(twin_frame), CFG)
