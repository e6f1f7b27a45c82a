"""``simulate hogflix`` for the lifecycle: outputs, determinism, and bad input."""

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from simulation_assets.cli import main


def test_simulate_hogflix_writes_personas_metrics_and_summary(tmp_path):
    out = tmp_path / "out"
    assert main(["hogflix", "--days", "4", "--seed", "5", "--traffic-days", "0", "--output", str(out)]) == 0
    metrics = pl.read_parquet(out / "daily_metrics.parquet")
    assert metrics.height == 4
    assert {"state_NEW", "state_ACTIVE", "state_CASUAL", "state_DORMANT", "state_CHURNED"} <= set(
        metrics.columns
    )
    assert {f"pattern_{p}" for p in ("DAILY", "REGULAR", "WEEKEND", "BINGE", "MONTHLY")} <= set(
        metrics.columns
    )
    personas = pl.read_parquet(out / "personas.parquet")
    assert personas["snapshot_date"].unique().to_list()[0].isoformat() == "2026-01-04"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["days"] == 4 and summary["seed"] == 5 and summary["final_personas"] == personas.height


def test_same_seed_gives_identical_files(tmp_path, monkeypatch):
    outputs = []
    for name in ("a", "b"):
        monkeypatch.setenv("SIMULATION_DATA_DIR", str(tmp_path / f"data_{name}"))
        out = tmp_path / name
        assert (
            main(["hogflix", "--days", "3", "--seed", "9", "--traffic-days", "0", "--output", str(out)]) == 0
        )
        outputs.append(out)
    for name in ("personas.parquet", "daily_metrics.parquet"):
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days"),
        (["--days", "-3"], "--days"),
        (["--days", "2", "--pool", "0"], "--pool"),
        (["--days", "2", "--start", "2026-02-30"], "--start"),
        (["--days", "2", "--seed", "-1"], "--seed"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main(["hogflix", *args, "--output", str(out)]) == 2
    assert message in capsys.readouterr().out
    assert not (out / "summary.json").exists()


def test_unwritable_output_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["hogflix", "--days", "2", "--output", str(blocker / "sub")]) == 2
    assert "not writable" in capsys.readouterr().out


def test_simulate_hogflix_records_one_run_per_range_and_runs_again_the_same_day(tmp_path):
    args = ["hogflix", "--days", "5", "--seed", "3", "--traffic-days", "0", "--output", str(tmp_path / "out")]
    assert main(args) == 0
    assert main(args) == 0  # the same day again, same instance: no error
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dagster_runs"] == [runs[0].run_id]  # the whole date range is one run
    personas = dg.AssetKey("hogflix_personas")
    assert instance.get_materialized_partitions(personas) == {f"2026-01-0{d}" for d in range(1, 6)}
    records = instance.fetch_materializations(personas, limit=20).records
    assert len(records) == 10 and {r.run_id for r in records} == {r.run_id for r in runs}
    evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(personas, "persona_ids_unique")]
    )[dg.AssetCheckKey(personas, "persona_ids_unique")]
    assert evaluation.run_id == runs[0].run_id
    assert summary["checks"]["hogflix_personas.persona_ids_unique"] is True


def test_a_start_in_the_future_simulates_like_any_other(tmp_path):
    start = dt.date.today() + dt.timedelta(days=40)
    out = tmp_path / "future"
    args = [
        "hogflix",
        "--days",
        "3",
        "--start",
        start.isoformat(),
        "--traffic-days",
        "0",
        "--output",
        str(out),
    ]
    assert main(args) == 0
    metrics = pl.read_parquet(out / "daily_metrics.parquet")
    assert metrics["date"].to_list() == [start + dt.timedelta(days=i) for i in range(3)]
    assert dg.DagsterInstance.get().get_materialized_partitions(dg.AssetKey("hogflix_personas")) == {
        (start + dt.timedelta(days=i)).isoformat() for i in range(3)
    }


def test_future_traffic_is_refused_for_posthog_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PH_PROJECT_API_KEY", "phc_test")
    start = dt.date.today() + dt.timedelta(days=10)
    out = tmp_path / "never"
    args = [
        "hogflix",
        "--days",
        "2",
        "--start",
        start.isoformat(),
        "--events",
        "posthog",
        "--output",
        str(out),
    ]
    assert main(args) == 2
    assert "ahead of now" in capsys.readouterr().out
    assert not (out / "summary.json").exists()
    assert not dg.DagsterInstance.get().get_runs()


def test_the_command_default_start_is_the_scenario_default():
    from simulation_assets.commands.hogflix import DEFAULT_START
    from simulation_assets.core.hogflix.config import DEFAULT_START_DATE

    assert DEFAULT_START == DEFAULT_START_DATE
