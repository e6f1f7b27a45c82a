"""The command line contract and the Dagster shape of the warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from simulation_assets.cli import main
from simulation_assets.core.warehouse import schema


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "staging"], "--env must be one of dev, qa, prod"),
        (["--tables", "accounts,unicorns"], "unknown table(s) in --tables: unicorns"),
        (["--load", "postgres", "--dsn", "postgresql://nobody@127.0.0.1:1/x"], "bad --dsn"),
        (["--load", "oracle"], "--load must be one of duckdb, postgres"),
        (["--dsn", "x.duckdb"], "--dsn needs --load"),
    ],
)
def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["warehouse", "--output", str(out), *args]) == 2
    assert message in capsys.readouterr().out.replace("\n", " ")
    assert not out.exists() or not any(out.iterdir())


def _warehouse_runs(instance: dg.DagsterInstance, summary: dict) -> list[dg.DagsterRun]:
    runs = [instance.get_run_by_id(r["run_id"]) for r in summary["runs"]]
    assert all(run is not None for run in runs)
    return runs  # type: ignore[return-value]


def test_tables_subset_runs_the_table_and_load_assets_and_the_instance_holds_those_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAGEN_ENV", "dev")
    out = tmp_path / "out"
    args = [
        "warehouse",
        "--seed",
        "5",
        "--output",
        str(out),
        "--tables",
        "devices,tap_events",
        "--load",
        "duckdb",
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["tables"]) == {"devices", "tap_events"}
    assert summary["tables"]["tap_events"] == {"rows": 500_000, "expected_rows": 500_000, "seconds": pytest.approx(
        summary["tables"]["tap_events"]["seconds"]), "files": 40}  # fmt: skip
    assert (out / "devices.parquet").exists() and len(list((out / "tap_events").glob("part-*.parquet"))) == 40
    assert not (out / "accounts.parquet").exists()
    assert summary["checks"]["failed"] == []
    assert summary["load"]["target"] == "duckdb"
    # What the command ran are real runs of the assets, read back from the instance the UI reads.
    from simulation_assets.commands.common import dagster_instance

    instance = dagster_instance()
    runs = _warehouse_runs(instance, summary)
    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 3  # devices; tap events; load
    assert runs[1].tags["dagster/asset_partition_range_start"] == "dev|00"
    assert runs[1].tags["dagster/asset_partition_range_end"] == "dev|39"
    taps = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["warehouse", "tap_events"])), limit=100
    ).records
    assert {r.event_log_entry.dagster_event.partition for r in taps} == {f"dev|{k:02d}" for k in range(40)}
    assert {r.run_id for r in taps} == {runs[1].run_id}
    # each chunk partition carries its own standard row count and the schema's columns
    for record in taps:
        metadata = record.asset_materialization.metadata
        assert metadata["dagster/row_count"].value == 12_500
        columns = metadata["dagster/column_schema"].schema.columns
        assert [c.name for c in columns] == schema.table("tap_events").column_names
        assert columns[0].constraints.unique and not columns[0].constraints.nullable
    loaded = instance.get_latest_materialization_event(dg.AssetKey(["warehouse_raw", "tap_events"]))
    assert loaded is not None and loaded.run_id == runs[2].run_id and loaded.dagster_event.partition == "dev"
    assert loaded.asset_materialization.metadata["dagster/row_count"].value == 500_000
    records = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    )
    evaluations = {
        (r.run_id, r.event_log_entry.dagster_event.event_specific_data.check_name) for r in records
    }
    assert (runs[1].run_id, "rows_match_spec") in evaluations
    assert (runs[2].run_id, "tap_events_no_orphan_foreign_keys") in evaluations
    assert len(evaluations) == summary["checks"]["total"]
    assert all(r.event_log_entry.dagster_event.event_specific_data.passed for r in records)


def test_the_command_runs_twice_the_same_day_on_the_same_instance(tmp_path: Path) -> None:
    args = ["warehouse", "--env", "dev", "--tables", "accounts,stripe_events", "--load", "duckdb"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    from simulation_assets.commands.common import dagster_instance

    instance = dagster_instance()
    runs = instance.get_runs()
    assert len(runs) == 6 and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    checks = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    )
    second = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert len(checks) == 2 * second["checks"]["total"]


def test_every_table_is_an_asset_and_big_tables_fan_out_into_chunk_partitions() -> None:
    from simulation_assets.defs import warehouse as wh
    from simulation_assets.sinks.local_store import LocalParquetStore

    full = dg.Definitions.merge(wh.defs, dg.Definitions(resources={"store": LocalParquetStore()}))
    graph = full.resolve_asset_graph()
    for spec in schema.TABLES:
        node = graph.get(wh.table_key(spec.name))
        assert node.group_name == "warehouse"
        keys = node.partitions_def.get_partition_keys()
        assert len(keys) == 3 * spec.chunks, spec.name
    taps = graph.get(wh.table_key("tap_events")).partitions_def
    assert isinstance(taps, dg.MultiPartitionsDefinition)
    assert dg.MultiPartitionKey({"env": "prod", "part": "39"}) in taps.get_partition_keys()
    # dbt models sit downstream of the loaded raw tables, and dbt tests are checks
    stg = graph.get(dg.AssetKey(["warehouse_dbt", "stg_iot__tap_events"]))
    assert dg.AssetKey(["warehouse_raw", "tap_events"]) in stg.parent_keys
    checks = {k.name for k in graph.asset_check_keys}
    assert "tap_events_no_orphan_foreign_keys" in checks and "charge_totals_match_paid_invoices" in checks
    assert any(name.startswith("unique_stg_app__accounts") for name in checks)
    assert wh.warehouse_load.op.pool == "warehouse_load"
    # the integrity checks block what is built downstream of the loaded tables; distributions do not
    specs = {spec.name: spec for spec in wh.warehouse_raw_checks.check_specs}
    assert specs["tap_events_no_orphan_foreign_keys"].blocking and specs["stripe_charges_row_count"].blocking
    assert not specs["accounts_tier_mix"].blocking
    assert all(next(iter(c.check_specs)).blocking for c in wh.TABLE_CHECKS)


def test_a_chunk_partition_materializes_alone(tmp_path: Path) -> None:
    from simulation_assets.defs import warehouse as wh
    from simulation_assets.sinks.local_store import LocalParquetStore

    store = LocalParquetStore(root_dir=str(tmp_path))
    settings = wh.WarehouseSettings(seed=42, config_path="")
    asset = wh.table_asset("tap_events")
    check = next(
        c for c in wh.TABLE_CHECKS if wh.table_key("tap_events") in {k.asset_key for k in c.check_keys}
    )
    result = dg.materialize(
        [asset, check],
        partition_key=dg.MultiPartitionKey({"env": "dev", "part": "07"}),
        resources={"store": store, "warehouse_settings": settings},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["measured"].value == 12_500
    path = settings.files_root(store, "dev") / "tap_events" / "part-00007.parquet"
    assert path.exists()


def test_rows_match_spec_fails_on_a_chunk_file_cut_short(tmp_path: Path) -> None:
    import polars as pl

    from simulation_assets.defs import warehouse as wh
    from simulation_assets.sinks.local_store import LocalParquetStore

    store = LocalParquetStore(root_dir=str(tmp_path))
    settings = wh.WarehouseSettings(seed=42, config_path="")
    check = next(
        c for c in wh.TABLE_CHECKS if wh.table_key("device_health") in {k.asset_key for k in c.check_keys}
    )
    asset = wh.table_asset("device_health")
    key = dg.MultiPartitionKey({"env": "dev", "part": "02"})
    resources = {"store": store, "warehouse_settings": settings}
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([asset, check], partition_key=key, resources=resources, instance=instance).success
    path = settings.files_root(store, "dev") / "device_health" / "part-00002.parquet"
    pl.read_parquet(path).head(100).write_parquet(path)
    # the check's body, on the file as it now is (Dagster cannot run a check alone on one partition)
    evaluation = wh.written_rows_check(settings, store, "device_health", "dev", [2])
    assert not evaluation.passed and evaluation.metadata["measured"].value == 100
    assert "chunk 3 of device_health" in (evaluation.description or "")


def test_the_dbt_asset_retries_only_failures_that_can_be_transient() -> None:
    from simulation_assets.defs import warehouse_dbt as wd

    assert wd.warehouse_dbt_models.op.retry_policy is None  # no blanket re-runs of `dbt build`
    failed_test = "Failure in test unique_stg_app__accounts_account_id (models/staging/app/_app__models.yml)"
    locked = 'IO Error: Could not set lock on file "dev.duckdb": Conflicting lock is held in python'
    refused = 'connection to server at "127.0.0.1", port 5432 failed: Connection refused'
    assert isinstance(wd.dbt_failure(failed_test, 0), dg.Failure)
    assert wd.dbt_failure(failed_test, 0).allow_retries is False
    assert isinstance(wd.dbt_failure(locked, 0), dg.RetryRequested)
    assert isinstance(wd.dbt_failure(refused, 1), dg.RetryRequested)
    assert [wd.dbt_failure(locked, n).seconds_to_wait for n in (0, 1)] == [2.0, 4.0]  # waits double
    assert isinstance(wd.dbt_failure(refused, 2), dg.Failure)  # attempts exhausted


def _dbt_attempts(tmp_path: Path, hold_lock: bool) -> tuple[bool, int]:
    """Run one dbt model against a DuckDB file without raw tables; return (success, step attempts)."""
    import duckdb

    from simulation_assets.defs import warehouse as wh
    from simulation_assets.sinks.warehouse_database import DuckDBDatabase

    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    lock = duckdb.connect(str(path)) if hold_lock else None  # another process's write lock, as dbt sees it
    try:
        result = dg.materialize(
            [wh.warehouse_dbt_models],
            partition_key="dev",
            selection=[dg.AssetKey(["warehouse_dbt", "stg_app__accounts"])],
            resources={
                "warehouse_dbt": wh.DBT_RESOURCE,
                "warehouse_database": DuckDBDatabase(duckdb_file=str(path)),
            },  # fmt: skip
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    finally:
        if lock is not None:
            lock.close()
    restarts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
    return result.success, 1 + len(restarts)


def test_a_deterministic_dbt_failure_runs_dbt_once(tmp_path: Path) -> None:
    assert _dbt_attempts(tmp_path, hold_lock=False) == (False, 1)  # the raw table is missing: no re-run


@pytest.mark.slow
def test_a_locked_warehouse_is_tried_again_then_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulation_assets.defs import warehouse_dbt as wd

    # the attempts are what is tested, not the 2 s and 4 s waits between them (dbt_failure's own test)
    monkeypatch.setattr(wd, "STEP_RETRY_DELAY_SECONDS", 0.0)
    assert _dbt_attempts(tmp_path, hold_lock=True) == (False, 3)
