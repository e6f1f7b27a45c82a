"""The lifecycle assets through Dagster: partitions, backfill equivalence, idempotency, checks, schedule."""

import datetime as dt

import dagster as dg
import polars as pl

from simulation_assets.defs.hogflix import build_defs
from simulation_assets.defs.resources import shared_resources
from simulation_assets.sinks.hogflix_state import HogflixSettings, persona_table
from simulation_assets.sinks.local_store import LocalParquetStore

START = "2026-01-01"


def _assets():
    defs = build_defs(START, "2026-03-01")
    return [a for a in defs.assets if a.key.path[0] in ("hogflix_personas", "hogflix_daily_metrics")]


def _resources(root, seed=3):
    return {
        "hogflix_settings": HogflixSettings(seed=seed, persona_pool=400, start_date=START),
        "store": LocalParquetStore(root_dir=str(root)),
    }


def _range(first, last):
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def _personas_path(root, key, seed=3):
    settings = HogflixSettings(seed=seed, persona_pool=400, start_date=START)
    return LocalParquetStore(root_dir=str(root)).path(settings.dataset("personas"), key)


def _table(root, key, seed=3):
    """The full persona table of a stored day (the day's table joined with the identities)."""
    settings = HogflixSettings(seed=seed, persona_pool=400, start_date=START)
    return persona_table(settings, LocalParquetStore(root_dir=str(root)), key)


def test_a_range_backfill_is_one_run_with_a_materialization_per_day(tmp_path):
    result = dg.materialize(_assets(), resources=_resources(tmp_path), tags=_range(START, "2026-01-10"))
    assert result.success
    personas = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path == ["hogflix_personas"]
    ]
    assert sorted(e.partition for e in personas) == [f"2026-01-{d:02d}" for d in range(1, 11)]
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["persona_ids_unique"] and checks["pool_within_band"] and checks["signups_within_band"]
    # The realism checks run on every materialization and report their figures, even on ten days.
    assert (
        checks["depth_by_pattern"] and checks["satisfaction_effects"] and checks["payments_follow_the_plans"]
    )
    meta = {c.check_name: c.metadata for c in result.get_asset_check_evaluations()}
    depth = meta["depth_by_pattern"]["videos_per_visit"].data
    assert 5 <= depth["DAILY"] <= 10 and depth["NEW"] > 3
    assert meta["payments_follow_the_plans"]["charges"].value > 100
    metrics = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path == ["hogflix_daily_metrics"]
    ][-1].materialization.metadata
    assert {"engagement_by_state", "session_depth_trend", "plan_mix_and_changes"} <= set(metrics)
    assert metrics["session_depth_trend"].value.startswith(
        "![session depth trend](data:image/svg+xml;base64,"
    )


def test_a_partition_computed_alone_equals_the_same_partition_in_a_backfill(tmp_path):
    backfill, alone = tmp_path / "backfill", tmp_path / "alone"
    assert dg.materialize(_assets(), resources=_resources(backfill), tags=_range(START, "2026-01-08")).success
    assert dg.materialize(_assets(), resources=_resources(alone), partition_key="2026-01-08").success
    a = _personas_path(backfill, "2026-01-08").read_bytes()
    b = _personas_path(alone, "2026-01-08").read_bytes()
    assert a == b
    # The day computed alone replayed days 1-7 and stored their signups' identities on the way.
    assert _table(alone, "2026-01-08").equals(_table(backfill, "2026-01-08"))


def test_rematerializing_a_partition_replaces_it(tmp_path):
    resources = _resources(tmp_path)
    assert dg.materialize(_assets(), resources=resources, partition_key="2026-01-03").success
    first = _personas_path(tmp_path, "2026-01-03").read_bytes()
    assert dg.materialize(_assets(), resources=resources, partition_key="2026-01-03").success
    assert _personas_path(tmp_path, "2026-01-03").read_bytes() == first
    store = LocalParquetStore(root_dir=str(tmp_path))
    settings = resources["hogflix_settings"]
    assert store.partitions(settings.dataset("personas")) == ["2026-01-03"]
    metrics = store.read_many(settings.dataset("daily_metrics"), ["2026-01-03"])
    assert metrics.height == 1
    frame = _table(tmp_path, "2026-01-03")
    assert frame["distinct_id"].n_unique() == frame.height


def test_the_next_day_continues_from_the_stored_previous_day(tmp_path):
    resources = _resources(tmp_path)
    assert dg.materialize(_assets(), resources=resources, tags=_range(START, "2026-01-04")).success
    assert dg.materialize(_assets(), resources=resources, partition_key="2026-01-05").success
    day4 = _table(tmp_path, "2026-01-04")
    day5 = _table(tmp_path, "2026-01-05")
    survivors = day4.filter(~pl.col("marked_for_cleanup"))["distinct_id"]
    assert set(survivors) <= set(day5["distinct_id"])
    joined = day4.join(day5, on="distinct_id", suffix="_next")
    assert (joined["days_since_signup_next"] == joined["days_since_signup"] + 1).all()


def test_definitions_have_the_daily_0715_schedule_and_the_stateful_job():
    defs = dg.Definitions.merge(build_defs(START), dg.Definitions(resources=shared_resources()))
    schedule = defs.resolve_schedule_def("hogflix_daily_0715_utc")
    assert schedule.cron_schedule == "15 7 * * *"
    assert schedule.execution_timezone in (None, "UTC")
    job = defs.resolve_job_def("hogflix_daily_lifecycle")
    assert job.partitions_def is not None


def test_each_day_records_its_own_row_count_and_the_assets_declare_their_columns(tmp_path):
    result = dg.materialize(_assets(), resources=_resources(tmp_path), tags=_range(START, "2026-01-03"))
    counts = {
        e.partition: e.materialization.metadata["dagster/row_count"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["hogflix_personas"]
    }
    for key, rows in counts.items():
        assert rows == _table(tmp_path, key).height  # stored or replayed (days between checkpoints)
    assert len(counts) == 3
    for asset in _assets():
        schema = asset.metadata_by_key[asset.key]["dagster/column_schema"]
        assert "date" in [c.name for c in schema.columns] or "persona_number" in [
            c.name for c in schema.columns
        ]


def test_the_burn_in_is_computed_once_per_scenario_then_read_back(tmp_path):
    from simulation_assets.core.hogflix.frames import to_frame
    from simulation_assets.core.hogflix.lifecycle import step_day
    from simulation_assets.sinks.hogflix_state import load_state_before

    settings = HogflixSettings(seed=3, persona_pool=400, start_date=START)
    store = LocalParquetStore(root_dir=str(tmp_path))
    genesis = settings.genesis_day()
    computed = load_state_before(settings, store, genesis)
    path = store.path(settings.dataset("burn_in"), START)
    written = path.stat().st_mtime_ns
    stored = load_state_before(settings, store, genesis)
    assert path.stat().st_mtime_ns == written  # read, not recomputed
    cfg = settings.lifecycle()
    assert to_frame(step_day(stored, genesis, cfg, 3)).equals(to_frame(step_day(computed, genesis, cfg, 3)))
    # The first day materialized through the asset reads the same burn-in and stores the same day.
    assert dg.materialize(_assets(), resources=_resources(tmp_path), partition_key=START).success
    assert path.stat().st_mtime_ns == written
    assert _table(tmp_path, START).equals(to_frame(step_day(computed, genesis, cfg, 3)))
    # Another scenario (another seed) has its own burn-in.
    other = HogflixSettings(seed=4, persona_pool=400, start_date=START)
    load_state_before(other, store, genesis)
    assert store.exists(other.dataset("burn_in"), START) and other.dataset("burn_in") != settings.dataset(
        "burn_in"
    )


def test_a_day_stores_no_identity_strings_and_each_identity_once_on_its_signup_day(tmp_path):
    from simulation_assets.core.hogflix.frames import PERSONA_DAY_SCHEMA, to_frame
    from simulation_assets.core.hogflix.lifecycle import step_day
    from simulation_assets.core.hogflix.persona_state import day_number
    from simulation_assets.sinks.hogflix_state import burned_in

    resources = _resources(tmp_path)
    assert dg.materialize(_assets(), resources=resources, tags=_range(START, "2026-01-04")).success
    settings, store = resources["hogflix_settings"], resources["store"]
    day = pl.read_parquet(_personas_path(tmp_path, "2026-01-04"))
    assert day.schema == pl.Schema(PERSONA_DAY_SCHEMA)
    assert not {"distinct_id", "email", "user_id", "profile_id", "source"} & set(day.columns)
    ids = settings.dataset("identities")
    # The burn-in's pool under the day before the first day, then each day's signups and nobody else.
    assert store.partitions(ids) == ["2025-12-31", "2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    for key in store.partitions(ids)[1:]:
        signed_up = _table(tmp_path, key).filter(pl.col("signed_up_today"))
        stored = store.read(ids, key)
        assert (
            2 <= stored.height <= 5 and stored["distinct_id"].to_list() == signed_up["distinct_id"].to_list()
        )
    everyone = pl.concat([store.read(ids, k) for k in store.partitions(ids)])
    assert everyone["persona_number"].n_unique() == everyone.height
    # Joined back, the stored days equal the full tables of the same steps in memory.
    state = burned_in(settings, store)
    for d in range(1, 5):
        state = step_day(state, day_number(dt.date(2026, 1, d)), settings.lifecycle(), 3)
        assert _table(tmp_path, f"2026-01-{d:02d}").equals(to_frame(state))
    # Re-materializing a day rewrites the same identity rows.
    before = store.path(ids, "2026-01-03").read_bytes()
    assert dg.materialize(_assets(), resources=resources, partition_key="2026-01-03").success
    assert store.path(ids, "2026-01-03").read_bytes() == before
    # The traffic's reader keeps one registry, read once and extended: any order of days gives the same
    # tables, and a day it computes (not stored yet) equals the day the asset then stores.
    from simulation_assets.core.hogflix.traffic_config import TrafficConfig
    from simulation_assets.sinks.hogflix_state import TrafficReader

    reader = TrafficReader(settings, TrafficConfig(), store)
    for key in ("2026-01-04", "2026-01-02", "2026-01-05"):
        table = reader.personas(dt.date.fromisoformat(key))
        if key != "2026-01-05":
            assert table.equals(_table(tmp_path, key))
    assert dg.materialize(_assets(), resources=resources, partition_key="2026-01-05").success
    assert table.equals(_table(tmp_path, "2026-01-05"))
    # A fresh reader computes a stored day's sessions from its visitors' rows alone (joined with the
    # registry, not the whole table): the same sessions as from the full table.
    from simulation_assets.core.hogflix.sessions import day_sessions

    fresh = TrafficReader(settings, TrafficConfig(), store)
    for key in ("2026-01-03", "2026-01-05"):
        date = dt.date.fromisoformat(key)
        expected = day_sessions(
            _table(tmp_path, key), settings.seed, TrafficConfig(), settings.lifecycle().traits
        )
        assert expected.height > 50 and fresh.sessions_of_day(date).equals(expected)
        assert date not in fresh._personas  # nothing held for the next call


def test_metrics_computed_in_memory_in_the_run_equal_the_ones_from_the_stored_days(tmp_path):
    """A run of both assets computes each day's metrics while the day is in memory; the rows equal
    the ones computed from the stored files (metrics materialized on their own, another run)."""
    from simulation_assets.sinks import hogflix_state

    result = dg.materialize(_assets(), resources=_resources(tmp_path), tags=_range(START, "2026-01-04"))
    assert result.success and not hogflix_state._DAY_METRICS  # every remembered row was taken
    personas_only = [a for a in _assets() if a.key.path[0] == "hogflix_personas"]
    alone = dg.materialize(
        _assets(), resources=_resources(tmp_path), partition_key="2026-01-05", selection=personas_only
    )
    assert alone.success and not hogflix_state._DAY_METRICS  # no metrics in the run: none computed
    settings, store = _resources(tmp_path)["hogflix_settings"], _resources(tmp_path)["store"]
    in_run = store.read_many(settings.dataset("daily_metrics"), ["2026-01-02", "2026-01-04"])
    metrics_only = [a for a in _assets() if a.key.path[0] == "hogflix_daily_metrics"]
    alone = dg.materialize(
        metrics_only, resources=_resources(tmp_path), tags=_range("2026-01-02", "2026-01-04"),
        selection=metrics_only,
    )  # fmt: skip
    assert alone.success
    from_files = store.read_many(settings.dataset("daily_metrics"), ["2026-01-02", "2026-01-04"])
    assert in_run.equals(from_files)
