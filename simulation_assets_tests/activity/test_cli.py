"""``simulate activity``: fast-forward ticks with exports, and input errors that write nothing."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from simulation_assets.cli import main
from simulation_assets.defs.activity import TICK_TAG


def test_fast_forward_ticks_export_tables_and_continue_the_same_simulation(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["activity", "--ticks", "4", "--seed", "3", "--output", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["first_tick"], summary["last_tick"], summary["ticks"]) == (1, 4, 4)
    log = pl.read_parquet(out / "tick_log.parquet")
    assert log["tick"].to_list() == list(range(5))
    assert log["applied_at"].diff().drop_nulls().dt.total_seconds().to_list()[1:] == [30.0] * 3
    customers = pl.read_parquet(out / "customers.parquet")
    assert summary["customers"] == customers.height >= 12
    assert summary["api_calls"] == int(log["api_calls"].sum()) > 0
    interventions = pl.read_parquet(out / "interventions.parquet")
    assert summary["interventions_opened"] == interventions.height > 0
    assert pl.read_parquet(out / "monitor_checks.parquet")["tick"].to_list() == list(range(1, 5))
    assert "Activity: ticks 1-4" in capsys.readouterr().out

    assert main(["activity", "--ticks", "1", "--seed", "3", "--output", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["first_tick"] == 5

    # What the command ran is in the local instance the UI reads: runs, materializations, checks.
    instance = dg.DagsterInstance.get()
    runs = instance.get_run_records(filters=dg.RunsFilter(tags={TICK_TAG: "5"}))
    assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
    all_runs = instance.get_run_records()
    assert all_runs and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in all_runs)
    tick = instance.get_latest_materialization_event(dg.AssetKey("activity_tick"))
    assert tick is not None and tick.run_id == runs[0].dagster_run.run_id
    meta = tick.asset_materialization.metadata  # type: ignore[union-attr]
    assert meta["tick"].value == 5 and meta["dagster/row_count"].value == meta["customers"].value >= 12
    for asset, check in [
        ("activity_tick", "counters_never_decrease"),
        ("monitor_interventions", "no_duplicate_open_interventions"),
        ("monitor_interventions", "open_interventions_match_rules"),
    ]:
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey(asset), check)]
        )[dg.AssetCheckKey(dg.AssetKey(asset), check)]
        assert record.run_id == runs[0].dagster_run.run_id and record.status.value == "SUCCEEDED", (
            check,
            record,
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ticks", "0"], "--ticks must be a positive integer, got 0"),
        (["--ticks", "3", "--interval", "-1"], "--interval must be >= 0 seconds"),
        (["--dashboard", "--interval", "0"], "--interval must be > 0 with --dashboard"),
        (["--dashboard", "--port", "70000"], "--port must be between 1 and 65535"),
        (["--ticks", "3", "--max-ticks", "2"], "--max-ticks only applies to --dashboard"),
        (["--ticks", "3", "--seed", "-1"], "--seed must be a non-negative integer"),
    ],
)
def test_bad_input_exits_2_naming_the_option_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main(["activity", *args, "--output", str(out)]) == 2
    assert message in " ".join(capsys.readouterr().out.split())
    assert not out.exists()


def test_fast_forward_reads_the_tick_log_only_where_it_is_used(tmp_path, monkeypatch):
    """In the run (its chart) and for the export: not after each run (the clock's anchor comes with the
    last tick's number, ``head``)."""
    from simulation_assets.sinks.activity_store import ActivityStore

    reads: list[int | None] = []
    tick_log = ActivityStore.tick_log

    def counted(self, last=None):  # noqa: ANN001, ANN202
        reads.append(last)
        return tick_log(self, last)

    monkeypatch.setattr(ActivityStore, "tick_log", counted)
    assert main(["activity", "--ticks", "1", "--seed", "3", "--output", str(tmp_path / "out")]) == 0
    assert reads == [60, None]
