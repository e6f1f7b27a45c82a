"""The traffic assets materialize as Dagster runs: checks pass, re-runs are identical, PostHog gets every event."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import psycopg
import pytest

from simulation_assets.cli import main
from simulation_assets.defs.hogflix import build_defs, hogflix_resources
from simulation_assets.sinks.app_db import DuckDBAppDatabase, PostgresAppDatabase
from simulation_assets.sinks.hogflix_state import HogflixSettings
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.posthog_events import PostHogEvents
from simulation_assets_tests.hogflix_traffic.servers import PostHogServer

START, END = "2026-03-01", "2026-03-03"


def _run(names: list[str], first: str, last: str, resources: dict) -> dg.ExecuteInProcessResult:
    defs = build_defs(START, END)
    assets = [a for a in defs.assets if a.key.to_user_string() in names]  # type: ignore[union-attr]
    return dg.materialize(
        assets,
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
    )


@pytest.fixture
def resources(tmp_path, monkeypatch: pytest.MonkeyPatch) -> dict:  # noqa: ANN001
    monkeypatch.setenv("PH_PROJECT_API_KEY", "phc_test")
    res = {
        "hogflix_settings": HogflixSettings(seed=7, persona_pool=400, start_date=START),
        "store": LocalParquetStore(),
        **hogflix_resources(),
    }
    res["hogflix_app_db"] = DuckDBAppDatabase(duckdb_path=str(tmp_path / "app.duckdb"))
    return res


def test_evening_windows_materialize_with_passing_checks_and_reach_posthog(resources: dict) -> None:
    names = ["hogflix_sessions", "hogflix_events", "hogflix_app_rows", "hogflix_flixbuddy_conversations"]
    with PostHogServer(failure_rate=0.1) as server:
        resources["hogflix_posthog"] = PostHogEvents(
            mode="posthog", host=server.url, api_key="phc_test", batch_size=100, backoff_seconds=0.01
        )
        result = _run(names, "2026-03-01-19:00", "2026-03-01-21:30", resources)
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks and all(checks.values()), checks
        store, settings = resources["store"], resources["hogflix_settings"]
        keys = store.partitions(settings.dataset("events"))
        assert len(keys) == 6
        events = store.read_many(settings.dataset("events"), keys)
        assert events.height > 500
        assert sorted(e["uuid"] for e in server.accepted) == sorted(events["uuid"].to_list())
        first = events.sort("uuid")
        _run(["hogflix_events"], "2026-03-01-19:00", "2026-03-01-21:30", resources)  # re-run: same bytes
        again = store.read_many(settings.dataset("events"), keys).sort("uuid")
        assert first.equals(again)
        assert len({e["uuid"] for e in server.accepted}) == events.height  # re-sent uuids dedupe in PostHog
    counts = resources["hogflix_app_db"].table_counts()
    assert counts["video_ratings"] == (events["event"] == "video_rated").sum()
    sessions = resources["store"].read_many(resources["hogflix_settings"].dataset("sessions"), keys)
    assert counts["profiles"] == sessions["user_id"].n_unique()  # no 00:00 window: only the visitors so far


def test_daily_traffic_summary_and_cleanup_pass_their_checks(resources: dict) -> None:
    _run(["hogflix_personas"], START, "2026-03-02", resources)
    result = _run(["hogflix_traffic_daily", "hogflix_churn_cleanup"], START, "2026-03-02", resources)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "sessions_per_day_in_range": True,
        "events_per_day_in_range": True,
        "event_uuids_unique_per_day": True,
        "genre_affinity_effect": True,
        "sessions_follow_the_persona": True,
        "cleanup_touched_only_synthetic": True,
    }
    daily = resources["store"].read_many(
        resources["hogflix_settings"].dataset("traffic_daily"), [START, "2026-03-02"]
    )
    assert daily["sessions"].is_between(30, 150).all() and daily["events"].is_between(5_000, 10_000).all()


@pytest.mark.postgres
@pytest.mark.xdist_group("hogflix_postgres")
def test_cli_writes_events_sessions_and_app_tables_to_postgres(tmp_path, monkeypatch, postgres_dsn) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    database = PostgresAppDatabase(dsn=postgres_dsn)
    database.ensure_schema()
    with psycopg.connect(postgres_dsn) as con:  # the real application's own orphan: none of our business
        con.execute(
            "INSERT INTO public.video_ratings (id, user_id, video_id, rating, created_at, is_synthetic) "
            "VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 4, now(), false)"
        )
    args = ["hogflix", "--days", "1", "--start", START, "--output", str(out), "--app-db", "postgres"]
    code = main([*args, "--dsn", postgres_dsn])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checks"] and all(summary["checks"].values()), summary["checks"]
    runs = dg.DagsterInstance.get().get_runs()  # lifecycle, half-hourly traffic, daily traffic: three runs
    assert {r.run_id for r in runs} == set(summary["dagster_runs"]) and len(runs) == 3
    traffic = summary["traffic"]
    assert 30 <= traffic["sessions_per_day"]["min"] and traffic["events_per_day"]["max"] <= 10_000
    events = pl.read_parquet(out / "events.parquet")
    assert events.height == traffic["events_total"] and events["uuid"].n_unique() == events.height
    assert pl.read_parquet(out / "sessions.parquet").height == traffic["sessions_per_day"]["min"]
    ratings = pl.read_parquet(out / "app" / "video_ratings.parquet")
    assert ratings.height == (events["event"] == "video_rated").sum()
    assert database.table_counts()["video_ratings"] == ratings.height + 1  # ours plus the real one
    assert main(args) == 2  # postgres without a DSN: bad input
    assert main(["hogflix", "--days", "2", "--events", "posthog", "--output", str(out)]) == 2  # no API key
    assert main(["hogflix", "--days", "2", "--traffic-days", "3", "--output", str(out)]) == 2
