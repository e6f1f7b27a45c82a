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


def test_tables_subset_writes_only_those_files_and_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAGEN_ENV", "dev")
    out = tmp_path / "out"
    assert (
        main(
            [
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
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["tables"]) == {"devices", "tap_events"}
    assert summary["tables"]["tap_events"] == {"rows": 500_000, "expected_rows": 500_000, "seconds": pytest.approx(
        summary["tables"]["tap_events"]["seconds"]), "files": 40}  # fmt: skip
    assert (out / "devices.parquet").exists() and len(list((out / "tap_events").glob("part-*.parquet"))) == 40
    assert not (out / "accounts.parquet").exists()
    assert summary["checks"]["failed"] == []
    assert summary["load"]["target"] == "duckdb"
    # The command's work shows in the Dagster instance the UI reads: tables, loaded tables, checks.
    from simulation_assets.commands.common import dagster_instance

    instance = dagster_instance()
    written = instance.get_latest_materialization_event(dg.AssetKey(["warehouse", "devices"]))
    loaded = instance.get_latest_materialization_event(dg.AssetKey(["warehouse_raw", "tap_events"]))
    assert written is not None and written.dagster_event.partition == "dev"
    assert loaded is not None and loaded.dagster_event.partition == "dev"
    assert loaded.asset_materialization.metadata["dagster/row_count"].value == 500_000
    records = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    )
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    assert len(evaluations) == summary["checks"]["total"] > 0
    assert all(e.passed and e.partition == "dev" for e in evaluations)


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
    assert dg.MultiPartitionKey({"env": "prod", "chunk": "39"}) in taps.get_partition_keys()
    # dbt models sit downstream of the loaded raw tables, and dbt tests are checks
    stg = graph.get(dg.AssetKey(["warehouse_dbt", "stg_iot__tap_events"]))
    assert dg.AssetKey(["warehouse_raw", "tap_events"]) in stg.parent_keys
    checks = {k.name for k in graph.asset_check_keys}
    assert "tap_events_no_orphan_foreign_keys" in checks and "charge_totals_match_paid_invoices" in checks
    assert any(name.startswith("unique_stg_app__accounts") for name in checks)
    assert wh.warehouse_load.op.pool == "warehouse_load"
    from simulation_assets.commands.warehouse import RAW_PREFIX

    assert RAW_PREFIX == wh.RAW_PREFIX


def test_a_chunk_partition_materializes_alone(tmp_path: Path) -> None:
    from simulation_assets.defs import warehouse as wh
    from simulation_assets.sinks.local_store import LocalParquetStore

    store = LocalParquetStore(root_dir=str(tmp_path))
    settings = wh.WarehouseSettings(seed=42, config_path="")
    asset = next(a for a in wh.TABLE_ASSETS if a.key == wh.table_key("tap_events"))
    result = dg.materialize(
        [asset],
        partition_key=dg.MultiPartitionKey({"env": "dev", "chunk": "07"}),
        resources={"store": store, "warehouse_settings": settings},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["rows"].value == 12_500
    path = settings.files_root(store, "dev") / "tap_events" / "part-00007.parquet"
    assert path.exists()
