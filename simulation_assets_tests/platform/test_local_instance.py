"""The local instance: created once under a lock, readable by Dagster's stock storage, cheaper to write."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from simulation_assets.sinks.local_instance import (
    _FORMER_INSTANCE_YAML,
    LocalSqliteStorage,
    ensure_local_instance,
    instance_yaml,
)

ROOT = Path(__file__).resolve().parents[2]
DAYS = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-11")


@dg.asset(
    partitions_def=DAYS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("has_rows", asset="daily_rows")],
)
def daily_rows(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"days": len(context.partition_keys)},
        check_results=[dg.AssetCheckResult(check_name="has_rows", passed=True)],
    )


def _range(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [daily_rows],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2026-03-01",
            "dagster/asset_partition_range_end": "2026-03-10",
        },
    )


def test_a_new_instance_uses_the_local_storage_and_the_stock_storage_reads_what_it_wrote(
    tmp_path: Path,
) -> None:
    os.environ["DAGSTER_HOME"] = str(tmp_path / "home")  # the autouse fixture restores it
    home = ensure_local_instance()
    assert (home / "dagster.yaml").read_text() == instance_yaml(home / "storage")
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.get_ref().storage_data.rehydrate(LocalSqliteStorage), LocalSqliteStorage)  # type: ignore[union-attr]
        result = _range(instance)
        assert result.success
    # The same files through Dagster's own SQLite storage, as an older `dagster dev` would read them.
    stock = tmp_path / "stock"
    stock.mkdir()
    (stock / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home / 'storage'}\n")
    with dg.DagsterInstance.from_config(str(stock)) as reader:
        assert reader.get_run_by_id(result.run_id).is_success  # type: ignore[union-attr]
        assert reader.get_materialized_partitions(dg.AssetKey("daily_rows")) == set(DAYS.get_partition_keys())
        key = dg.AssetCheckKey(dg.AssetKey("daily_rows"), "has_rows")
        executions = reader.event_log_storage.get_asset_check_execution_history(key, limit=20)
        assert executions and {e.run_id for e in executions} == {result.run_id}


def test_the_projects_dagster_yaml_is_the_instance_the_commands_create() -> None:
    assert (ROOT / "dagster.yaml").read_text() == instance_yaml()


def test_the_former_default_instance_is_moved_to_the_local_storage_and_a_custom_one_is_kept(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.environ["DAGSTER_HOME"] = str(home)
    (home / "dagster.yaml").write_text(_FORMER_INSTANCE_YAML.format(base=home / "storage"))
    ensure_local_instance()
    assert (home / "dagster.yaml").read_text() == instance_yaml(home / "storage")
    mine = tmp_path / "mine"
    mine.mkdir()
    os.environ["DAGSTER_HOME"] = str(mine)
    custom = f"storage:\n  sqlite:\n    base_dir: {mine / 'elsewhere'}\n"
    (mine / "dagster.yaml").write_text(custom)
    ensure_local_instance()
    assert (mine / "dagster.yaml").read_text() == custom and (mine / "elsewhere").is_dir()


_RUN_ONE = """
import dagster as dg
from simulation_assets.sinks.local_instance import ensure_local_instance
ensure_local_instance()

@dg.asset
def ping() -> None:
    return None

assert dg.materialize([ping], instance=dg.DagsterInstance.get()).success
"""


@pytest.mark.slow
def test_commands_started_together_in_an_empty_folder_all_succeed(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "fresh"), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _RUN_ONE], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    with dg.DagsterInstance.from_config(str(tmp_path / "fresh")) as instance:
        assert len(instance.get_runs()) == 3
