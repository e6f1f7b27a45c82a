"""Page views and feature events come from one session flow per chunk: it is computed once for both tables,
in the calling process, in worker processes and in one Dagster step, and the bytes do not change."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from simulation_assets.core.warehouse.generate import Warehouse
from simulation_assets.core.warehouse.generators import usage
from simulation_assets.sinks.warehouse_parquet import bundles, chunk_path, write_chunks


def test_chunks_of_one_flow_are_bundled_and_other_jobs_keep_their_order() -> None:
    jobs = [
        ("page_views", 0),
        ("page_views", 1),
        ("tap_events", 3),
        ("feature_usage", 1),
        ("feature_usage", 0),
    ]
    assert bundles(jobs) == [
        [("page_views", 0), ("feature_usage", 0)],
        [("page_views", 1), ("feature_usage", 1)],
        [("tap_events", 3)],
    ]


def test_writing_both_tables_computes_each_chunks_flow_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    views = usage._views  # noqa: SLF001

    def counted(wh: Warehouse, k: int, session: dict) -> dict:
        calls.append(k)
        return views(wh, k, session)

    monkeypatch.setattr(usage, "_views", counted)
    jobs = [("page_views", 2), ("page_views", 3), ("feature_usage", 2), ("feature_usage", 3)]
    write_chunks(42, "dev", tmp_path, jobs, warehouse=Warehouse(42, "dev"))
    assert calls == [2, 3]  # was [2, 3, 2, 3]: the generator keeps the flow of its last chunk only
    # the same values as each table generated on its own
    alone = Warehouse(42, "dev")
    for table, k in jobs:
        assert pl.read_parquet(chunk_path(tmp_path, table, k)).equals(alone.chunk(table, k)), (table, k)


def _materialize(tmp_path: Path, tables: list[str]) -> dg.ExecuteInProcessResult:
    from simulation_assets.defs import warehouse as wh
    from simulation_assets.sinks.local_store import LocalParquetStore

    store = LocalParquetStore(root_dir=str(tmp_path))
    settings = wh.WarehouseSettings(seed=42, config_path="")
    asset = wh.table_asset("page_views")
    assert asset is wh.table_asset("feature_usage") and len(asset.keys) == 2
    return dg.materialize(
        [asset],
        partition_key=dg.MultiPartitionKey({"env": "dev", "part": "04"}),
        resources={"store": store, "warehouse_settings": settings},
        instance=dg.DagsterInstance.ephemeral(),
        selection=[wh.table_key(t) for t in tables],
    )


def test_one_dagster_step_writes_both_tables_or_either_alone(tmp_path: Path) -> None:
    from simulation_assets.defs import warehouse as wh

    both = _materialize(tmp_path / "both", ["page_views", "feature_usage"])
    assert both.success
    events = {e.asset_key: e.materialization.metadata for e in both.get_asset_materialization_events()}
    assert set(events) == {wh.table_key("page_views"), wh.table_key("feature_usage")}
    assert events[wh.table_key("page_views")]["written_with"].value == "feature_usage"
    assert events[wh.table_key("page_views")]["rows"].value == 25_000
    alone = _materialize(tmp_path / "alone", ["feature_usage"])
    assert alone.success
    assert {e.asset_key for e in alone.get_asset_materialization_events()} == {wh.table_key("feature_usage")}
    root = wh.WarehouseSettings(seed=42, config_path="").files_root
    from simulation_assets.sinks.local_store import LocalParquetStore

    a = chunk_path(root(LocalParquetStore(root_dir=str(tmp_path / "both")), "dev"), "feature_usage", 4)
    b = chunk_path(root(LocalParquetStore(root_dir=str(tmp_path / "alone")), "dev"), "feature_usage", 4)
    assert a.read_bytes() == b.read_bytes()
    assert not chunk_path(b.parent.parent, "page_views", 4).exists()


def test_the_command_runs_the_shared_step_for_the_wanted_table_only() -> None:
    from simulation_assets.commands.warehouse import _generation_runs
    from simulation_assets.defs import warehouse as wh

    [(label, defs, partition)] = _generation_runs("qa", ["page_views"])
    [asset] = [d for d in defs if not isinstance(d, dg.AssetChecksDefinition)]
    assert asset.keys == {wh.table_key("page_views")} and partition == ("qa|00", "qa|09")
    [(_, defs, _)] = _generation_runs("qa", ["page_views", "feature_usage"])
    assert {k for d in defs if not isinstance(d, dg.AssetChecksDefinition) for k in d.keys} == {
        wh.table_key("page_views"),
        wh.table_key("feature_usage"),
    }
