"""``simulate cleanup`` runs the ``hogflix_synthetic_cleanup`` asset: recorded in the instance, repeatable."""

from __future__ import annotations

import uuid

import dagster as dg
import duckdb

from simulation_assets.cli import main
from simulation_assets.core.hogflix.app_rows import app_rows
from simulation_assets.sinks.app_db import DuckDBAppDatabase
from simulation_assets_tests.hogflix_traffic.conftest import SEED


def test_simulate_cleanup_is_a_recorded_run_that_spares_real_rows_and_runs_again(
    tmp_path, day_traffic, capsys
):  # noqa: ANN001
    _, sessions, events = day_traffic
    path = tmp_path / "app.duckdb"
    db = DuckDBAppDatabase(duckdb_path=str(path))
    db.write(app_rows(sessions, events, SEED), sessions["partition_key"].unique().to_list())
    with duckdb.connect(str(path)) as con:  # a row of the real application: not synthetic
        con.execute(
            "INSERT INTO public.profiles (id, user_id, email, display_name, plan, is_synthetic) "
            "VALUES (?, ?, 'ada@example.com', 'Ada', 'Premium', false)",
            [str(uuid.uuid4()), str(uuid.uuid4())],
        )
    synthetic = db.count_synthetic()
    assert synthetic["watch_progress"] > 0

    assert main(["cleanup", "--dry-run", "--duckdb", str(path)]) == 0
    assert db.count_synthetic() == synthetic
    assert main(["cleanup", "--duckdb", str(path)]) == 0
    assert sum(db.count_synthetic().values()) == 0 and db.non_synthetic_rows() == 1
    assert main(["cleanup", "--duckdb", str(path)]) == 0  # again the same day: nothing left, no error
    assert "untouched" in capsys.readouterr().out

    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert len(runs) == 3 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    key = dg.AssetKey("hogflix_synthetic_cleanup")
    records = instance.fetch_materializations(key, limit=10).records
    assert [r.asset_materialization.metadata["dry_run"].value for r in reversed(records)] == [
        True,
        False,
        False,
    ]
    deleted = records[1].asset_materialization.metadata["rows_deleted"].value
    assert deleted == synthetic
    check = dg.AssetCheckKey(key, "only_synthetic_rows_deleted")
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
    assert latest.run_id == runs[0].run_id and latest.status.value == "SUCCEEDED"
