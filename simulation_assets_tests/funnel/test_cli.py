"""``simulate funnel``: outputs on good input, exit code 2 and nothing written on bad input."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

from simulation_assets.cli import main
from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig, TransitionRates
from simulation_assets.core.funnel.montecarlo import TEMPLATE_KEYS
from simulation_assets.core.funnel.posthog import property_columns, to_posthog
from simulation_assets.core.funnel.schema import validate_frame
from simulation_assets.sinks.posthog_export import write_export
from simulation_assets_tests.hogflix_traffic.servers import PostHogServer


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--impressions", "-5"], "--impressions must be a non-negative integer"),
        (["--impressions", "1000", "--rate", "p_purchase=1.5"], "between 0 and 1"),
        (["--impressions", "1000", "--rate", "ctr=-0.1"], "between 0 and 1"),
        (["--impressions", "1000", "--rate", "p_bogus=0.1"], "NAME one of"),
        (["--impressions", "1000", "--p-cta", "1.5"], "p_cta=1.5 is invalid"),
        (["--impressions", "1000", "--rates", '{"p_login": 2}'], "p_login=2.0 is invalid"),
        (["--impressions", "1000", "--replicates", "0"], "--replicates must be a positive integer"),
        (["--impressions", "1000", "--days", "0"], "--days must be a positive integer"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, capsys, args, message) -> None:
    out = tmp_path / "out"
    code = main(["funnel", *args, "--output", str(out)])
    assert code == 2
    assert message in capsys.readouterr().out
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.xdist_group("funnel_cli")
def test_cli_writes_forecast_events_rates_and_models(tmp_path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "funnel",
            "--impressions",
            "100000",
            "--days",
            "1",
            "--replicates",
            "2000",
            "--seed",
            "3",
            "--rate",
            "p_purchase=0.12",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    forecast = json.loads((out / "forecast.json").read_text())
    assert set(TEMPLATE_KEYS) <= set(forecast)
    assert forecast["replicates"] == 2000 and forecast["impressions"] == 100000
    assert {"mean", "p5", "p50", "p95"} == set(forecast["percentiles"]["purchasers"])
    assert forecast["rates_source"] == "configured" and forecast["rates"]["p_purchase"] == 0.12
    assert set(TEMPLATE_KEYS) <= set(forecast["learned_rates_forecast"])
    events = pl.read_parquet(out / "events.parquet")
    assert events["timestamp"].min().date().isoformat() == "2026-01-01"
    assert validate_frame(events) == []
    rates = json.loads((out / "rates.json").read_text())
    assert rates["configured"]["p_purchase"] == 0.12
    assert all(v["within"] for v in rates["comparison"].values())
    models = json.loads((out / "models.json").read_text())
    assert {"signal", "shuffled"} == set(models) - {"days"}
    assert models["signal"]["purchase"]["roc_auc"] > models["shuffled"]["purchase"]["roc_auc"]


def test_cli_run_is_recorded_in_the_instance_with_its_checks_and_runs_again_the_same_day(tmp_path) -> None:
    args = ["funnel", "--impressions", "80000", "--days", "2", "--replicates", "500", "--seed", "3"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    assert main([*args, "--output", str(tmp_path / "b")]) == 0
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    for run in runs:
        checks = {
            e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        }
        assert {"events_match_taxonomy", "funnel_monotone", "identity_stitched"} <= set(checks)
        assert checks["events_match_taxonomy"] and checks["identity_stitched"] and checks["funnel_monotone"]
        assert len(checks) == 11
        materialized = [
            (e.dagster_event.asset_key.to_user_string(), e.dagster_event.partition)
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        ]
        daily = ("funnel_cohort_events",)  # no delivery is configured, Meta CAPI included
        learned = ("funnel_transition_rates", "funnel_forecast", "funnel_formulas", "funnel_models")
        assert sorted(materialized, key=str) == sorted(
            [(a, d) for a in daily for d in ("2026-01-01", "2026-01-02")] + [(a, None) for a in learned],
            key=str,
        )
    assert (tmp_path / "a" / "forecast.json").read_bytes() == (tmp_path / "b" / "forecast.json").read_bytes()


def test_rate_flags_name_every_transition_rate() -> None:
    from simulation_assets.commands.funnel import RATE_NAMES
    from simulation_assets.core.funnel.config import TransitionRates

    assert RATE_NAMES == tuple(TransitionRates.model_fields)


def test_the_funnel_command_module_imports_neither_dagster_nor_polars_nor_pydantic() -> None:
    code = (
        "import sys, simulation_assets.commands.funnel; "
        "print(sorted({'dagster', 'polars', 'pydantic', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_rates_learned_from_an_export_drive_the_whole_run(tmp_path) -> None:
    truth = TransitionRates(p_cta=0.4, p_signup=0.6, p_purchase=0.2)
    events = simulate_cohort_events(
        dt.date(2026, 1, 1), CohortConfig(rates=truth), 5, impressions=400_000
    ).events
    frame = to_posthog(events)
    export = write_export(frame, tmp_path / "export.parquet", property_columns=property_columns(frame))
    out = tmp_path / "out"
    args = ["funnel", "--impressions", "50000", "--days", "1", "--replicates", "500", "--rates", "learned"]
    assert main([*args, "--events", str(export), "--output", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rates_learned_from"] == str(export)
    used = summary["configured_rates"]
    for name in ("p_cta", "p_signup", "p_purchase"):
        assert abs(used[name] - getattr(truth, name)) < 0.06, (name, used[name])
    assert json.loads((out / "forecast.json").read_text())["rates"]["p_cta"] == used["p_cta"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rates", "learned"], "--rates learned needs --events EXPORT"),
        (["--rates", "learned", "--events", "/nowhere/export.parquet"], "no such file"),
        (["--events", "x.parquet"], "read by 'simulate funnel audit'"),
        (["--posthog"], "PH_PROJECT_API_KEY"),
    ],
)
def test_export_and_delivery_inputs_are_checked_before_anything_runs(
    tmp_path, capsys, monkeypatch, args, message
):  # noqa: ANN201
    monkeypatch.delenv("PH_PROJECT_API_KEY", raising=False)
    out = tmp_path / "out"
    assert main(["funnel", "--impressions", "1000", *args, "--output", str(out)]) == 2
    assert message in capsys.readouterr().out
    assert not out.exists() or not any(out.iterdir())


def test_posthog_flag_delivers_the_days_events_to_the_posthog_host(tmp_path, monkeypatch) -> None:
    with PostHogServer(failure_rate=0.1, seed=2) as server:
        monkeypatch.setenv("PH_PROJECT_API_KEY", "phc_cli")
        monkeypatch.setenv("PH_HOST", server.url)
        args = ["funnel", "--impressions", "30000", "--days", "1", "--replicates", "200", "--posthog"]
        assert main([*args, "--output", str(tmp_path / "out")]) == 0
    events = pl.read_parquet(tmp_path / "out" / "events.parquet")
    identify = events.filter(pl.col("event") == "login_success").height
    assert len(server.accepted) == events.height + identify  # January's events have all happened
    assert server.problems == [] and {e["uuid"] for e in server.accepted}.__len__() == len(server.accepted)
