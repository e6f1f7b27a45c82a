"""Round trips: a twin fitted on an export it has never seen meets every fidelity target and the privacy test.

Two exports unlike each other: HogFlix's own events (made by the project's HogFlix core, written as a
PostHog batch export with a JSON ``properties`` column and ``$session_id``), and the synthetic B2B tool of
``synthetic.py`` written as a generic table (other names, other classes, other flows, no session id)
read through a column mapping. Both are small, so each bound is the target or the two-sample 95 %
critical value if larger (``fidelity`` module doc); benchmarks/twin.py measures the same on 5,000+ users
against the fixed targets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.twin import checks
from simulation_assets.core.twin.example import synthetic_events
from simulation_assets.core.twin.fidelity import (
    FidelityReport,
    compare,
    session_value_comparisons,
    tv_distance,
)
from simulation_assets.core.twin.fit import fit, prepare
from simulation_assets.core.twin.generate import Generator, as_export_rows
from simulation_assets.core.twin.privacy import copied_identifiers, dcr_test
from simulation_assets.core.twin.spec import TwinSpec
from simulation_assets.sinks.posthog_export import ColumnMapping
from simulation_assets.sinks.twin_hogflix_export import hogflix_events, write_hogflix_export
from simulation_assets.sinks.twin_source import load_for_fit
from simulation_assets_tests.twin.conftest import CFG


def _round_trip(path: Path, mapping: ColumnMapping | None) -> tuple[FidelityReport, dict, dict]:
    loaded = load_for_fit(path, mapping, CFG)
    spec = fit(loaded.prepared, loaded.property_sample, loaded.key_stats, CFG, path.name)
    gen, g = Generator(spec), spec.document.generation
    frame = pl.concat(
        [gen.day(g.start + dt.timedelta(days=i)) for i in range(g.days)], how="diagonal_relaxed"
    )
    twin_rows = as_export_rows(frame)
    twin = prepare(twin_rows, CFG)
    report = compare(loaded.prepared, twin)
    users, days = int(spec.document.properties.get("sample_users", 0)), spec.document.source.days
    report.comparisons.extend(session_value_comparisons(frame, spec.tables, users, g.start, days)[2])
    privacy = dcr_test(loaded.prepared, twin)
    outcomes = {
        "ks": checks.per_user_distributions_ks(report),
        "tv": checks.profiles_tv(report),
        "retention": checks.retention_within_points(report),
        "tstr": checks.tstr_auc_gap(report),
        "carried": checks.carried_values_kept(report),
        "versions": checks.version_mix_followed(report),
        "dcr": checks.dcr_not_closer_than_holdout(privacy),
        "identifiers": checks.no_identifiers_copied(
            copied_identifiers(loaded.export.frame("none"), twin_rows)
        ),
    }
    table = {c.name: (c.value, c.bound) for c in report.comparisons}
    return report, {k: o.passed for k, o in outcomes.items()}, table


# Figures of HogFlix the twin does not reproduce within the bounds at this size (docs/twin.md, "What the
# twin misses"): each measured statistic must stay below the number here, so a regression still fails.
HOGFLIX_KNOWN_MISSES = {
    "active_days": 0.13,
    "gap_hours": 0.14,
    "session_duration": 0.11,
    "top_paths": 0.07,
    "retention_weeks_1_8": 0.10,
}


@pytest.fixture(scope="module")
def hogflix_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six weeks of HogFlix at a persona pool of 600 (about 640 users, 430k events)."""
    events = hogflix_events(600, 42, seed=3)
    return write_hogflix_export(events, tmp_path_factory.mktemp("hogflix") / "events.parquet")


def test_hogflix_round_trip_meets_the_targets_but_its_known_misses(hogflix_export: Path) -> None:
    report, passed, table = _round_trip(hogflix_export, None)
    assert report.real_users > 600
    failing = {c.name for c in report.comparisons if not c.passed}
    assert failing <= set(HOGFLIX_KNOWN_MISSES), table
    assert all(table[name][0] <= limit for name, limit in HOGFLIX_KNOWN_MISSES.items()), table
    held = {k: v for k, v in passed.items() if k not in ("ks", "tv", "retention")}
    assert held == dict.fromkeys(held, True), table  # train on twin, values carried on, privacy, identifiers
    assert report.by_name("carried_values").detail["rows_judged"] > 40
    assert report.by_name("tstr_churn_auc").detail["auc_real"] > 0.7


def test_a_differently_built_export_through_a_column_mapping_meets_every_target(tmp_path: Path) -> None:
    # A warehouse table: its own column names, epoch-millisecond times, no uuid, properties as columns.
    frame = (
        synthetic_events(users=700, days=56, seed=23)
        .drop("uuid")
        .with_columns(pl.col("timestamp").dt.epoch("ms"))
        .rename({"distinct_id": "account", "timestamp": "at_ms", "event": "action"})
    )
    path = tmp_path / "table.parquet"
    frame.write_parquet(path)
    mapping = ColumnMapping(user_id="account", timestamp="at_ms", event="action")
    report, passed, table = _round_trip(path, mapping)
    assert report.real_users == 700
    assert passed == dict.fromkeys(passed, True), table


def test_days_of_several_sessions_keep_their_hours(tmp_path: Path) -> None:
    # Workers and hobbyists visit 1 + Poisson(1.2) times an active day, at hours drawn independently: a
    # day of three sessions starts early, and the last visits come late in the day but not after midnight.
    frame = synthetic_events(users=3000, days=42, seed=31, extra_sessions=1.2)
    path = tmp_path / "several.parquet"
    frame.write_parquet(path)
    loaded = load_for_fit(path, None, CFG)
    spec = fit(loaded.prepared, loaded.property_sample, loaded.key_stats, CFG, path.name)

    def hour_tv(spec_used: TwinSpec) -> float:
        """The report's hour-of-week TV (sessions by hour of the week; both sides cover the same days)."""
        gen, g = Generator(spec_used), spec_used.document.generation
        days = [gen.day(g.start + dt.timedelta(days=i)) for i in range(g.days)]
        twin = prepare(as_export_rows(pl.concat(days, how="diagonal_relaxed")), CFG)
        hours = [
            np.bincount(p.sessions["hour_of_week"].to_numpy(), minlength=168) for p in (loaded.prepared, twin)
        ]
        return tv_distance(*hours)

    with_day_shape = hour_tv(spec)
    assert with_day_shape <= 0.05
    # The same spec without the day's shape (first hours not tilted by the day's sessions, gaps the same
    # share of the day's clock whatever the sessions still to come): the later sessions run into the night.
    tables = dict(spec.tables)
    tables["first_hour_tilt"] = tables["first_hour_tilt"].clear()
    tables["day_gap_shares"] = tables["day_gap_shares"].filter(pl.col("left") < 0)
    flat = hour_tv(dataclasses.replace(spec, tables=tables))
    assert flat > 0.05 and flat > 2 * with_day_shape, (flat, with_day_shape)
