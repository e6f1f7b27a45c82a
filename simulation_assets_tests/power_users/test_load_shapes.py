"""Load shapes: their levels, Poisson arrivals, the time series, SLO checks, and loads against loopback servers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from pydantic import TypeAdapter, ValidationError

from simulation_assets.core.power_users import checks
from simulation_assets.core.power_users.config import parse_scenario
from simulation_assets.core.power_users.report import ATTEMPT_SCHEMA, LOAD_SCHEMA
from simulation_assets.core.power_users.shapes import (
    LoadShape,
    arrival_times,
    day_profile,
    level_at,
    paced_times,
    requested_per_second,
)
from simulation_assets.core.power_users.timeseries import open_rate, time_series
from simulation_assets.core.rng import stream
from simulation_assets.sinks.power_users_client import PowerUserTarget
from simulation_assets.sinks.power_users_scenario import load_scenario
from simulation_assets.sinks.power_users_session import SessionOptions
from simulation_assets_tests.power_users.conftest import integration_resources

pytestmark = pytest.mark.xdist_group("power_users")

SHAPE = TypeAdapter(LoadShape)


@pytest.mark.parametrize(
    ("spec", "times", "levels"),
    [
        ({"kind": "constant", "rate": 50, "duration_s": 30}, [0, 15, 30], [50, 50, 50]),
        ({"kind": "ramp", "start": 5, "end": 105, "duration_s": 100}, [0, 50, 100], [5, 55, 105]),
        (
            {"kind": "step", "start": 20, "step": 20, "every_s": 10, "steps": 3},
            [5, 15, 25, 39],
            [20, 40, 60, 80],
        ),
        (
            {"kind": "spike", "base": 10, "peak": 200, "at_s": 20, "for_s": 5, "duration_s": 60},
            [10, 21, 24.9, 26, 59],
            [10, 200, 200, 10, 10],
        ),
        ({"kind": "soak", "rate": 30, "duration_s": 3600}, [0, 1800, 3600], [30, 30, 30]),
    ],
)
def test_each_shape_kind_has_its_level_over_time(spec, times, levels):
    assert level_at(SHAPE.validate_python(spec), np.array(times)) == pytest.approx(levels)


def test_shapes_refuse_impossible_plans():
    with pytest.raises(ValidationError, match="the spike ends at 65 s, after duration_s 60"):
        SHAPE.validate_python(
            {"kind": "spike", "base": 1, "peak": 9, "at_s": 60, "for_s": 5, "duration_s": 60}
        )
    with pytest.raises(ValidationError, match="the last step reaches -20"):
        SHAPE.validate_python({"kind": "step", "start": 20, "step": -20, "every_s": 5, "steps": 2})
    with pytest.raises(ValidationError, match="kind"):
        SHAPE.validate_python({"kind": "wave", "duration_s": 5})
    data = {"simulation_config": {"load_shapes": {"x": {"kind": "ramp", "start": 1, "duration_s": 5}}}}
    data["simulations"] = load_scenario().model_dump(mode="json", by_alias=True)["simulations"]
    with pytest.raises(ValueError, match=r"simulation_config\.load_shapes\.x\.ramp\.end"):
        parse_scenario(data)


def test_arrivals_follow_the_rate_and_add_up_to_the_requested_count():
    ramp = SHAPE.validate_python({"kind": "ramp", "start": 0, "end": 400, "duration_s": 60})
    times = arrival_times(ramp, stream(7, "a"))
    assert len(times) == 12_000 and np.all(np.diff(times) >= 0) and 0 <= times[0] and times[-1] <= 60
    counts, _ = np.histogram(times, bins=np.arange(0, 61))
    expected = requested_per_second(ramp)
    assert expected.sum() == pytest.approx(12_000)
    # per-second counts scatter like Poisson counts around the ramp: chi-square over 60 bins
    chi2 = float((((counts - expected) ** 2) / np.maximum(expected, 1)).sum())
    assert chi2 < 100
    assert counts[:10].sum() < counts[-10:].sum() / 5
    half = arrival_times(ramp, stream(7, "b"), share=0.5)
    assert len(half) == 6_000
    assert np.array_equal(arrival_times(ramp, stream(7, "a")), times)


def test_paced_arrivals_are_users_sending_together_once_every_pace():
    """``arrivals: paced`` is Locust's constant_throughput: ceil(level * pace) users in step, in bursts."""
    stairs = SHAPE.validate_python(
        {"kind": "step", "start": 40, "step": 40, "every_s": 6, "steps": 4, "arrivals": "paced"}
    )
    times = arrival_times(stairs, stream(7, "a"))  # no dice: the same plan for any stream
    assert np.array_equal(times, arrival_times(stairs, stream(8, "b"))) and len(times) == 3_600
    bursts, sizes = np.unique(times.round(6), return_counts=True)
    assert bursts.tolist() == list(range(30))  # every user joined on a whole second: one burst a second
    assert sizes.tolist() == [40] * 6 + [80] * 6 + [120] * 6 + [160] * 6 + [200] * 6
    assert requested_per_second(stairs).tolist() == sizes.tolist()  # the plan is what is requested
    assert len(arrival_times(stairs, stream(7, "a"), share=0.5)) == 1_800
    # 2 users, 3 more from 2 s to 3.5 s (two sends each: at 2 and 3), then the last to join leave first
    spike = SHAPE.validate_python(
        {"kind": "spike", "base": 2, "peak": 5, "at_s": 2, "for_s": 1.5, "duration_s": 5, "arrivals": "paced"}
    )
    assert paced_times(spike).tolist() == [0, 0, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4]
    # 10 requests/s at a pace of 0.5 s: 5 users, each sending twice a second
    fast = SHAPE.validate_python(
        {"kind": "constant", "rate": 10, "duration_s": 2, "arrivals": "paced", "pace_s": 0.5}
    )
    assert paced_times(fast).round(6).tolist() == [t / 2 for t in range(4) for _ in range(5)]
    assert SHAPE.validate_python({"kind": "constant", "rate": 1, "duration_s": 1}).arrivals == "poisson"
    with pytest.raises(ValidationError, match="arrivals"):
        SHAPE.validate_python({"kind": "constant", "rate": 1, "duration_s": 1, "arrivals": "uniform"})


def test_the_day_shape_is_busiest_in_us_working_hours():
    scenario = load_scenario().populated(100)
    profile = day_profile([p.rhythm() for p in scenario.simulations], dt.date(2026, 1, 14))
    assert profile.argmax() in range(15, 24)  # 10:00-18:00 New York is 15:00-23:00 UTC
    assert profile[6:12].max() < 0.05 * profile.max()  # 01:00-07:00 New York
    day = SHAPE.validate_python({"kind": "day", "peak": 60, "duration_s": 240}).with_profile(profile)
    assert level_at(day, [240 * (profile.argmax() + 0.5) / 24])[0] == pytest.approx(60)


def _attempts(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ATTEMPT_SCHEMA, orient="row")


def _plan(seconds: int, rate: float, start: float = 1000.0) -> pl.DataFrame:
    return pl.DataFrame(
        [("A", "s", "open", int(start) + k, rate, 0.0) for k in range(seconds)],
        schema=LOAD_SCHEMA,
        orient="row",
    )


def test_latency_counts_from_the_scheduled_send_not_from_when_the_generator_got_round_to_it():
    # 10 requests due every 0.1 s, but the generator only sent each 0.5 s late; the API took 10 ms
    rows = [
        ("u", "view_account", 200, 10.0, 1000 + 0.1 * i, 1000.5 + 0.1 * i, 1000.51 + 0.1 * i, True)
        for i in range(10)
    ]
    series = time_series(_attempts(rows), _plan(1, 10.0))
    assert series["answered"].to_list() == [10, 0]  # by the second they were due
    assert series["sent"].to_list() == [5, 5]  # by the second they actually left
    assert series["p50_ms"][0] == pytest.approx(510.0, abs=1)  # not the 10 ms service time
    outcome = checks.latency_p95_within_slo(_attempts(rows), p95_ms=100)
    assert not outcome.passed and outcome.metadata["p95_ms"] == pytest.approx(510.0, abs=1)
    on_time = [(u, a, s, ms, due, due, due + 0.01, load) for u, a, s, ms, due, _, _, load in rows]
    assert checks.latency_p95_within_slo(_attempts(on_time), p95_ms=100).passed


def test_arrival_rate_check_fails_when_the_generator_falls_behind():
    plan = _plan(10, 50.0)
    on_time = [
        ("u", "x", 200, 5.0, 1000 + i / 50, 1000 + i / 50, 1000.005 + i / 50, True) for i in range(500)
    ]
    assert open_rate(_attempts(on_time), plan)["achieved_ratio"] == pytest.approx(1.0, abs=0.01)
    assert checks.arrival_rate_held(_attempts(on_time), plan, 0.02).passed
    # the same 500 arrivals squeezed out over 12 s instead of 10: 20 % short of the requested rate
    late = [
        (u, a, s, ms, due, 1000 + (due - 1000) * 1.2, 1000 + (due - 1000) * 1.2 + 0.005, ld)
        for u, a, s, ms, due, _, _, ld in on_time
    ]
    outcome = checks.arrival_rate_held(_attempts(late), plan, 0.02)
    assert not outcome.passed and outcome.metadata["achieved_ratio"] == pytest.approx(10 / 12, abs=0.01)
    assert checks.arrival_rate_held(
        _attempts(late), plan.clear(), 0.02
    ).passed  # no open load: nothing to hold


def test_error_rate_check_fails_above_its_slo(default_run):
    requests = default_run[0].frames["requests"]
    assert checks.error_rate_within_slo(requests, 0.01).passed
    broken = requests.with_columns((pl.col("ok") & (pl.int_range(pl.len()) % 20 != 0)).alias("ok"))
    outcome = checks.error_rate_within_slo(broken, 0.01)
    assert not outcome.passed and outcome.metadata["error_rate"] == pytest.approx(0.05, abs=0.01)


def _quick(**shapes) -> object:
    data = load_scenario().model_dump(mode="json", by_alias=True, exclude={"population"})
    data["simulation_config"]["load_shapes"] = shapes
    return parse_scenario(data)


def test_an_open_ramp_holds_its_rate_against_the_reference_target(reference_target):
    scenario = _quick(ramp={"kind": "ramp", "start": 20, "end": 100, "duration_s": 3})
    lines: list[str] = []
    result = PowerUserTarget(base_url=reference_target.base_url).run(
        scenario=scenario, env={}, users=20, options=SessionOptions(shape="ramp", progress=lines.append)
    )
    load = result.report["load"]
    assert load["model"] == "open" and load["sent"] == 180 and load["requested"] == pytest.approx(180)
    # the 2 % target is the benchmark's (long runs); a 3 s test on a shared machine allows 10 %
    assert abs(load["achieved_ratio"] - 1) <= 0.10 and load["error_rate"] == 0
    series = result.report["time_series"]
    assert [row["t_s"] for row in series][:3] == [0, 1, 2]
    assert [round(row["requested"]) for row in series][:3] == [33, 60, 87]
    assert sum(row["sent"] for row in series) == 180
    assert lines and "req/s" in lines[0] and "p95" in lines[0]
    kinds = set(result.frames["attempts"].filter(pl.col("load"))["action_type"].to_list())
    assert kinds == {"view_account", "analyze_property", "use_calculator", "view_pricing", "view_history"}
    assert checks.arrival_rate_held(result.frames["attempts"], result.frames["load"], 0.10).passed
    assert checks.run_tables_consistent(
        result.frames["requests"], result.frames["attempts"], result.frames["edges"], result.frames["users"]
    ).passed


def test_the_day_shape_runs_at_the_personas_rhythm_of_that_day(reference_target):
    # 24 hours in 4 s: each second is 6 hours (UTC); the US working day falls in the last two
    scenario = _quick(day={"kind": "day", "peak": 60, "duration_s": 4})
    result = PowerUserTarget(base_url=reference_target.base_url).run(
        scenario=scenario, day="2026-01-14", env={}, users=10, options=SessionOptions(shape="day")
    )
    requested = [row["requested"] for row in result.report["time_series"]][:4]
    profile = day_profile([p.rhythm() for p in scenario.populated(10).simulations], dt.date(2026, 1, 14))
    day = SHAPE.validate_python({"kind": "day", "peak": 60, "duration_s": 4}).with_profile(profile)
    assert requested == pytest.approx(requested_per_second(day).tolist(), abs=0.01)
    assert requested[1] < requested[3] / 3 and max(requested) == max(requested[2:])
    load = result.report["load"]
    assert load["sent"] == round(sum(requested)) and load["error_rate"] == 0


def test_arrivals_sent_in_one_wake_up_each_keep_their_own_scheduled_time(reference_target):
    """The scheduler sends every arrival due by a wake-up at once; latency still counts from each one's schedule.

    Poisson arrivals at 300/s: ~14 % come within the scheduler's 0.5 ms of the one before and leave
    in the same wake-up (the same send time) though each was due at its own time. Paced arrivals:
    a burst of 30 users due at one instant leaves in one wake-up.
    """
    scenario = _quick(
        poisson={"kind": "constant", "rate": 300, "duration_s": 2},
        paced={"kind": "constant", "rate": 30, "duration_s": 3, "arrivals": "paced"},
    )
    target = PowerUserTarget(base_url=reference_target.base_url)
    result = target.run(scenario=scenario, env={}, users=20, options=SessionOptions(shape="poisson"))
    rows = result.frames["attempts"].filter(pl.col("load"))
    assert rows.height == 600 and rows["scheduled_s"].n_unique() == 600  # each arrival its own due time
    assert (rows["started_s"] - rows["scheduled_s"]).min() >= -0.0005 - 1e-6  # never sent earlier than that
    batched = rows.filter(pl.len().over("started_s") > 1)
    assert batched.height >= 10  # several arrivals left in one wake-up ...
    groups = batched.group_by("started_s").agg(pl.col("scheduled_s").n_unique().alias("dues"), pl.len())
    assert (groups["dues"] == groups["len"]).all()  # ... each with its own due time
    load = result.report["load"]
    from_schedule = np.percentile((rows["ended_s"] - rows["scheduled_s"]).to_numpy() * 1000.0, 50)
    assert load["latency_ms"]["p50"] == pytest.approx(from_schedule, abs=0.01)

    result = target.run(scenario=scenario, env={}, users=20, options=SessionOptions(shape="paced"))
    rows = result.frames["attempts"].filter(pl.col("load"))
    assert result.report["load"]["sent"] == 90 and result.report["load"]["requested"] == pytest.approx(90)
    dues = rows["scheduled_s"].unique().sort().to_list()
    assert len(dues) == 3 and np.diff(dues) == pytest.approx([1.0, 1.0])  # three bursts, a second apart
    sends = rows.group_by("scheduled_s").agg(pl.col("started_s").n_unique()).sort("scheduled_s")["started_s"]
    # the first burst also opens connections for the 10 arrivals beyond the 20 users' own (a task
    # each); then every burst finds its 30 connections idle and leaves in one wake-up
    assert sends[0] <= 11 and sends[1:].to_list() == [1, 1]
    latency = (rows["ended_s"] - rows["scheduled_s"]) * 1000.0
    assert latency.n_unique() > 10 and latency.min() >= 0  # one due time, each answer its own latency


def test_a_load_encodes_each_request_once_per_user_variant_and_again_after_a_new_token():
    """Arrivals reuse an encoded request only where it repeats: never across ``{i}``, vary items or tokens."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from simulation_assets.target.server import LocalTarget

    tokens: list[str] = []
    limits: list[int] = []
    calc_tokens: list[int] = []

    async def login(request: Request) -> JSONResponse:
        tokens.append(f"t{len(tokens) + 1}")
        return JSONResponse({"access_token": tokens[-1]})

    async def view_history(request: Request) -> JSONResponse:
        limits.append(int(request.query_params["limit"]))
        return JSONResponse({"items": []})

    async def calculator(request: Request) -> JSONResponse:
        token = request.headers["authorization"].removeprefix("Bearer ")
        calc_tokens.append(int(token[1:]))
        if token == "t1":  # the first user's first token has run out
            return JSONResponse({"error": "token_expired"}, status_code=401)
        # otherwise echo the price as the "error" of an expected 409, which the request rows keep
        return JSONResponse({"error": str((await request.json())["purchase_price"])}, status_code=409)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/auth/login", login, methods=["POST"]),
            Route("/api/v1/history", view_history),
            Route("/api/v1/calculator", calculator, methods=["POST"]),
            Route("/health", health),
        ]
    )
    prices = [100000, 250000, 400000]
    data = load_scenario().model_dump(mode="json", by_alias=True, exclude={"population"})
    data["simulation_config"]["load_shapes"] = {"flat": {"kind": "constant", "rate": 100, "duration_s": 2}}
    data["simulation_config"]["load_tasks"] = [
        {"type": "view_history", "params": {"limit": "{i}"}, "expected_status": 200},
        {"type": "use_calculator", "vary": {"purchase_price": prices}, "expected_status": [401, 409]},
    ]
    with LocalTarget(app) as target:
        result = PowerUserTarget(base_url=target.base_url).run(
            scenario=parse_scenario(data), env={}, users=5, options=SessionOptions(shape="flat")
        )
    rows = result.frames["requests"].filter(pl.col("action_index") >= 0)
    calc = rows.filter((pl.col("action_type") == "use_calculator") & (pl.col("status") == 409))
    assert calc.height > 50 and calc["error"].to_list() == [str(prices[i % 3]) for i in calc["request_index"]]
    history = rows.filter(pl.col("action_type") == "view_history")["request_index"]
    assert sorted(limits) == sorted(history) and len(set(limits)) == len(limits)  # {i}: never reused
    expired = calc_tokens.count(1)  # sent before the user's new login came back
    assert 1 <= expired <= 3 and len(tokens) == 5 + expired
    assert sum(t > 5 for t in calc_tokens) >= 10  # the user's later requests carry its new token


@pytest.mark.slow
def test_a_closed_model_holds_two_thousand_concurrent_users_in_one_process(monkeypatch):
    import httpx

    from simulation_assets.target.process import TargetProcess

    scenario = _quick(
        crowd={"kind": "constant", "model": "closed", "users": 2000, "think_s": 60, "duration_s": 10}
    )
    pricing_only = [t for t in scenario.simulation_config.load_tasks if t.type == "view_pricing"]
    scenario = scenario.model_copy(
        update={
            "simulation_config": scenario.simulation_config.model_copy(update={"load_tasks": pricing_only})
        }
    )
    # the API holds each request until 2,000 are held together (at most 9 s): each user sends once
    monkeypatch.setenv("CROWD_SIZE", "2000")
    with TargetProcess(app="simulation_assets_tests.power_users.crowd_app:app") as target:
        result = PowerUserTarget(base_url=target.base_url).run(
            scenario=scenario, env={}, users=2000, options=SessionOptions(shape="crowd")
        )
        held = httpx.get(f"{target.base_url}/stats").json()
    assert result.frames["users"].height == 2000 and held["logins"] == 2000
    assert held["max"] == 2000  # every virtual user had a request in flight at the same moment
    assert result.report["load"]["sent"] >= 2000 and result.report["load"]["error_rate"] == 0


@pytest.mark.slow  # ~10 s on a quiet machine, 20-30 s under CI load
def test_a_load_shape_runs_from_the_cli_with_its_time_series_and_slo_checks(
    tmp_path: Path, reference_target, capsys
):
    import yaml

    from simulation_assets.cli import main

    data = load_scenario().model_dump(mode="json", by_alias=True, exclude={"population"})
    data["simulation_config"]["load_shapes"] = {
        "spike": {"kind": "spike", "base": 20, "peak": 120, "at_s": 1, "for_s": 1, "duration_s": 3}
    }
    data["simulation_config"]["slo"]["rate_tolerance"] = 0.10  # a 3 s load on a shared machine
    config = tmp_path / "quick.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    argv = ["power-users", "--config", str(config), "--shape", "spike", "--users", "100"]
    assert (
        main(
            [
                *argv,
                "--base-url",
                reference_target.base_url,
                "--day",
                "2026-02-10",
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "o" / "simulation_report.json").read_text())
    assert report["load"]["shapes"] == ["spike"] and report["load"]["sent"] == 160
    assert report["simulation_summary"]["total_users"] == 100  # --users 100: the seed's hundred users
    peak = max(report["time_series"], key=lambda r: r["requested"])
    assert peak["t_s"] == 1 and peak["requested"] == pytest.approx(120, abs=1)
    out = capsys.readouterr().out
    assert "t=   1.0s" in out and "Load spike (open model): 160 requests" in out
    instance = dg.DagsterInstance.get()
    for check in ("latency_p95_within_slo", "error_rate_within_slo", "arrival_rate_held"):
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("power_user_report"), check), limit=5
        )
        assert [e.status.value for e in history if e.status.value != "PLANNED"] == ["SUCCEEDED"]
    runs = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("power_user_runs"), "arrival_rate_held"), limit=5
    )
    evaluation = [e for e in runs if e.status.value != "PLANNED"][0].event.dagster_event.event_specific_data
    assert evaluation.passed and abs(evaluation.metadata["achieved_ratio"].value - 1) <= 0.10


def test_a_load_split_across_dagster_runs_by_persona_is_merged_by_the_day_report(
    tmp_path: Path, reference_target
):
    import yaml

    from simulation_assets.defs.power_users import build_defs, persona_day_key
    from simulation_assets.sinks.local_store import LocalParquetStore

    data = load_scenario().model_dump(mode="json", by_alias=True, exclude={"population"})
    data["simulation_config"]["load_shapes"] = {"flat": {"kind": "constant", "rate": 100, "duration_s": 2}}
    data["simulation_config"]["slo"]["p95_ms"] = 5000  # the machine is shared: a generous latency objective
    config = tmp_path / "shards.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    defs = build_defs(str(config))
    resources = {
        "power_users_target": PowerUserTarget(base_url=reference_target.base_url, scenario_path=str(config)),
        "store": LocalParquetStore(),
        **integration_resources(),
    }
    shard = {"ops": {"power_user_runs": {"config": {"shape": "flat", "users": 10}}}}
    sent = []
    for persona in ("Portfolio-Manager-Paula", "Business-Development-Ben"):  # two of five shards, two runs
        result = dg.materialize(
            [defs.get_assets_def("power_user_runs")],
            partition_key=persona_day_key(persona, "2026-02-20"),
            resources=resources,
            run_config=shard,
        )
        sent.append(result.get_asset_materialization_events()[0].materialization.metadata["load_sent"].value)
    assert sent == [40, 40]  # each shard sends its 2 users' fifth of the 200 arrivals
    result = dg.materialize(
        [defs.get_assets_def("power_user_report")], partition_key="2026-02-20", resources=resources
    )
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["load_sent"].value == 80 and meta["users"].value == 4
    assert "data:image/svg+xml;base64" in meta["load_time_series"].value
    report = json.loads(
        (LocalParquetStore().root() / "power_users/reports/2026-02-20/simulation_report.json").read_text()
    )
    assert sum(row["requested"] for row in report["time_series"]) == pytest.approx(80, abs=0.5)
    assert {c.check_name for c in result.get_asset_check_evaluations() if c.passed} >= {
        "error_rate_within_slo",
        "latency_p95_within_slo",
    }
