"""The CLI, the Dagster assets, another base URL without simulation hooks, and target composition."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from simulation_assets.cli import main
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.power_users_client import PowerUserTarget
from simulation_assets.target.propiq import create_app
from simulation_assets.target.server import LocalTarget, build_app
from simulation_assets_tests.power_users.conftest import integration_resources, lean_scenario_file

# a group of its own (a second reference target on another worker): the Dagster and CLI tests
# take about as long as the rest of the power-user tests together
pytestmark = pytest.mark.xdist_group("power_users_cli")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--user", "Nobody"], "no persona named 'Nobody'"),
        (["--base-url", "ftp://example"], "--base-url must be an http(s) URL"),
        (["--day", "2026-13-01"], "--day must be a date"),
        (["--config", "/nonexistent/p.yaml"], "--config file /nonexistent/p.yaml not found"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys, argv, message):
    out = tmp_path / "out"
    assert main(["power-users", *argv, "--output", str(out)]) == 2
    assert message in capsys.readouterr().out
    assert not out.exists()


def test_cli_refuses_a_live_key(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", "pk_live_123")
    assert main(["power-users", "--output", str(tmp_path / "o")]) == 2
    assert "live Stripe key" in capsys.readouterr().out


def test_dagster_persona_partition_and_day_report_pass_their_checks(reference_target):
    from simulation_assets.defs.power_users import defs

    runs, report = defs.get_assets_def("power_user_runs"), defs.get_assets_def("power_user_report")
    resources = {
        "power_users_target": PowerUserTarget(base_url=reference_target.base_url),
        "store": LocalParquetStore(),
        **integration_resources(),
    }
    for persona in ("First-Time-Investor-Frank", "Weekend-Warrior-Will"):
        key = dg.MultiPartitionKey({"persona": persona, "day": "2026-02-02"})
        on_demand = {"ops": {"power_user_runs": {"config": {"follow_rhythm": False}}}}
        result = dg.materialize([runs], partition_key=key, resources=resources, run_config=on_demand)
        assert result.success
        assert all(c.passed for c in result.get_asset_check_evaluations())
    result = dg.materialize([report], partition_key="2026-02-02", resources=resources)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "success_rate_above_threshold": True,
        "configured_edge_cases_triggered": True,
        "cost_within_budget": True,
        "sessions_follow_rhythm": True,
        "active_users_match_frequency": True,
        "latency_p95_within_slo": True,
        "error_rate_within_slo": True,
        "arrival_rate_held": True,
    }
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["users"].value == 2 and meta["edge_cases_missing"].value == "none"
    assert "data:image/svg+xml;base64" in meta["cost_per_user"].value
    saved = LocalParquetStore().root() / "power_users" / "reports" / "2026-02-02" / "simulation_report.json"
    assert json.loads(saved.read_text())["cost_analysis"]["stripe_transactions"] == 1


def test_another_api_without_hooks_runs_unchanged_and_skips_harness_actions():
    async def health(request):
        return JSONResponse({"status": "ok"})

    async def anything(request):
        return PlainTextResponse("not here", status_code=404)

    other = Starlette(
        routes=[Route("/health", health), Route("/{path:path}", anything, methods=["GET", "POST"])]
    )
    with LocalTarget(other) as target:
        result = PowerUserTarget(base_url=target.base_url).run(personas=["Real-Estate-Agent-Rita"], env={})
    sent = set(result.frames["attempts"]["action_type"].to_list())
    assert "reset_user" not in sent and "login" in sent
    assert result.frames["users"]["actions_skipped"].to_list() == [1]
    assert result.report["simulation_summary"]["total_actions_failed"] > 0
    assert result.report["edge_case_coverage"]["missing"]
    assert {"action", "error", "timestamp"} == set(result.report["errors_encountered"][0])


def test_build_app_mounts_another_app_under_a_prefix_beside_propiq_at_root():
    async def hello(request):
        return JSONResponse({"app": "other", "path": request.url.path})

    other = Starlette(routes=[Route("/hello", hello)])
    app = build_app({"/": create_app, "/hogflix": lambda: other})
    with LocalTarget(app) as target:
        with httpx.Client(base_url=target.base_url) as client:
            assert client.get("/hogflix/hello").json()["app"] == "other"
            assert client.get("/health").json()["service"] == "propiq-reference"


def test_local_target_stops_at_once_when_its_clients_are_done():
    # uvicorn alone notices the stop on its next 0.1 s tick and then pauses 0.1 s more (>= 0.1 s
    # of every power-user run); best of three, so a busy machine does not decide the verdict.
    import time

    async def health(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/health", health)])
    stops = []
    for _ in range(3):
        target = LocalTarget(app).__enter__()
        with httpx.Client(base_url=target.base_url) as client:
            assert client.get("/health").text == "ok"
        started = time.perf_counter()
        target.__exit__(None, None, None)
        stops.append(time.perf_counter() - started)
        assert not target._thread.is_alive()
        with pytest.raises(httpx.ConnectError):  # the port is closed
            httpx.get(f"{target.base_url}/health")
    assert min(stops) < 0.09, stops
    # a client still connected: uvicorn's own shutdown closes its connection, and the server ends
    target = LocalTarget(app).__enter__()
    client = httpx.Client(base_url=target.base_url)
    assert client.get("/health").text == "ok"
    target.__exit__(None, None, None)
    assert not target._thread.is_alive()
    client.close()


def test_reference_target_refuses_to_start_with_a_live_key(monkeypatch):
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_abc")
    with pytest.raises(RuntimeError, match="live Stripe key"):
        create_app()


def test_fast_clock_expires_tokens_in_real_seconds():
    import time

    from simulation_assets.core.power_users.target_rules import TargetRules

    # 3,600 simulated seconds per real second: the 60-minute token lasts one real second. Only
    # bounds a loaded machine cannot break are asserted: a call answered within 1 s of sending the
    # login is 200 (the token was issued after that send), one sent 1 s after the login's answer is 401.
    email = "t@simulated.propiq.test"
    with (
        LocalTarget(create_app(TargetRules(clock_speed=3600))) as target,
        httpx.Client(base_url=target.base_url, timeout=30) as c,
    ):
        c.post("/sim/users/reset", json={"email": email, "password": "pw", "tier": "pro"})
        valid = None
        for _ in range(20):  # a login whose first call comes back within the second (load may delay some)
            sent = time.monotonic()
            token = c.post("/auth/login", json={"email": email, "password": "pw"}).json()
            answered = time.monotonic()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            first = c.get("/api/v1/account", headers=headers)
            if time.monotonic() < sent + 1.0:
                valid = first
                break
        assert valid is not None and valid.status_code == 200, valid
        time.sleep(max(0.0, answered + 1.05 - time.monotonic()))
        expired = c.get("/api/v1/account", headers=headers)
        assert expired.status_code == 401 and expired.json()["error"] == "token_expired"


def test_the_rate_limit_counts_on_the_clock_the_client_states():
    """A burst stamped at one simulated instant meets 429 however slowly it is sent; paced stamps refill."""
    import time

    from simulation_assets.core.power_users.config import SIMULATION_CLOCK_HEADER
    from simulation_assets.core.power_users.target_rules import TargetRules

    rules = TargetRules()  # 15 requests, refilled at 30/s
    email = "burst@simulated.propiq.test"
    with LocalTarget(create_app(rules)) as target, httpx.Client(base_url=target.base_url, timeout=30) as c:
        c.post("/sim/users/reset", json={"email": email, "password": "pw", "tier": "pro"})
        token = c.post("/auth/login", json={"email": email, "password": "pw"}).json()["access_token"]

        def account(clock: str | None) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            if clock is not None:
                headers[SIMULATION_CLOCK_HEADER] = clock
            return c.get("/api/v1/account", headers=headers).status_code

        # 20 requests one after the other, 10 ms apart in real time (0.2 s, time to refill 6), all
        # stamped at the same simulated instant: the bucket's 15, then 429s
        statuses = []
        for _ in range(20):
            statuses.append(account("1768471200.000"))
            time.sleep(0.01)
        assert statuses == [200] * rules.rate_limit_burst + [429] * (20 - rules.rate_limit_burst)
        assert account("1768471199.000") == 429  # an earlier stamp refills nothing
        # 0.25 simulated s later: 7.5 tokens back
        assert [account("1768471200.250") for _ in range(8)] == [200] * 7 + [429]
        # paced one simulated second apart, 40 requests sent as fast as possible never meet a 429
        assert {account(f"{1768471201 + k}.000") for k in range(40)} == {200}
        assert account("soon") == 400 and account("nan") == 400
        # without the header the server's own clock counts, from a full bucket
        assert [account(None) for _ in range(3)] == [200] * 3


def test_cli_exits_1_when_the_api_cannot_be_reached(tmp_path: Path, capsys):
    code = main(
        [
            "power-users",
            "--user",
            "Weekend-Warrior-Will",
            "--base-url",
            "http://127.0.0.1:9",
            "--config",
            str(lean_scenario_file(tmp_path)),  # fewer refused requests to back off from
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 1
    assert "no request reached http://127.0.0.1:9" in capsys.readouterr().out
    report = json.loads((tmp_path / "simulation_report.json").read_text())
    assert report["errors_encountered"][0]["error"].startswith("connection error: could not connect")


@pytest.mark.slow  # ~10 s on a quiet machine, 20-30 s under CI load
def test_cli_runs_twice_on_the_same_day_and_both_runs_are_in_the_instance(
    tmp_path: Path, reference_target, capsys
):
    users = ["--user", "Weekend-Warrior-Will", "--user", "Real-Estate-Agent-Rita", "--day", "2026-03-03"]
    # the two personas' rhythm and plans without the edge cases' waits (the default run covers those)
    users += ["--config", str(lean_scenario_file(tmp_path))]
    # first: no --base-url, so the run serves the reference target itself
    assert main(["power-users", *users, "--output", str(tmp_path / "first")]) == 0
    first = json.loads((tmp_path / "first" / "simulation_report.json").read_text())
    assert first["run"]["reference_target"] is True and first["run"]["base_url"].startswith(
        "http://127.0.0.1:"
    )
    assert first["run"]["mode"] == "parallel"
    # second: another API (the shared loopback target), one after another, into a named report file
    report_file = tmp_path / "results" / "my_simulation.json"
    argv = ["power-users", *users, "--base-url", reference_target.base_url, "--sequential"]
    assert main([*argv, "--output", str(report_file)]) == 0
    second = json.loads(report_file.read_text())
    assert second["run"]["mode"] == "sequential" and second["run"]["base_url"] == reference_target.base_url
    assert [u["name"] for u in second["user_results"]] == ["Real-Estate-Agent-Rita", "Weekend-Warrior-Will"]
    # the same seed and day: the second run sends what the first sent, one persona after the other
    assert second["simulation_summary"] == first["simulation_summary"]
    assert second["simulation_summary"]["total_actions_completed"] >= 4
    assert (tmp_path / "results" / "simulation.log").read_text().count("Weekend-Warrior-Will") > 3
    out = capsys.readouterr().out
    assert "PROPIQ POWER USER SIMULATION - RESULTS SUMMARY" in out and "Weekend-Warrior-Will:" in out
    assert "Sessions (simulated clock, local time):" in out
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    # one run per command: the personas' partitions, then the day's report in the same run
    assert len(runs) == 2 and all(r.is_success for r in runs)
    reports = instance.fetch_materializations(dg.AssetKey("power_user_report"), limit=10).records
    assert sorted(r.run_id for r in reports) == sorted(r.run_id for r in runs)
    assert {r.event_log_entry.dagster_event.partition for r in reports} == {"2026-03-03"}
    # Rita and Will are adjacent in the scenario: one run covers both partitions each time
    keys = {
        e.event_log_entry.dagster_event.partition
        for e in instance.fetch_materializations(dg.AssetKey("power_user_runs"), limit=100).records
    }
    assert keys == {"2026-03-03|Real-Estate-Agent-Rita", "2026-03-03|Weekend-Warrior-Will"}
    for asset, check in (
        ("power_user_runs", "run_tables_consistent"),
        ("power_user_report", "cost_within_budget"),
    ):
        executions = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(asset), check), limit=10
        )
        evaluated = [e for e in executions if e.status.value != "PLANNED"]
        assert len(evaluated) == 2 and len({e.run_id for e in evaluated}) == 2
        assert {e.status.value for e in evaluated} == {"SUCCEEDED"}


def test_a_target_reporting_negative_tokens_fails_the_blocking_check_and_the_run():
    from simulation_assets.defs.power_users import RUN_CHECKS, build_defs, persona_day_key

    async def health(request):
        return JSONResponse({"status": "ok"})

    async def anything(request):
        return JSONResponse({"access_token": "t", "tokens": {"input": -500, "output": 1500}})

    liar = Starlette(
        routes=[Route("/health", health), Route("/{path:path}", anything, methods=["GET", "POST"])]
    )
    runs = build_defs().get_assets_def("power_user_runs")
    with LocalTarget(liar) as target:
        result = dg.materialize(
            [runs],
            partition_key=persona_day_key("Real-Estate-Agent-Rita", "2026-02-03"),
            resources={
                "power_users_target": PowerUserTarget(base_url=target.base_url),
                "store": LocalParquetStore(),
                **integration_resources(),
            },
            # as the command's run: the day's report in the same run, which broken tables must not reach
            run_config={"ops": {"power_user_runs": {"config": {"report": True}}}},
            raise_on_error=False,
        )
    assert not result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["run_tables_consistent"].passed is False and checks["run_tables_consistent"].blocking
    assert checks["run_tables_consistent"].metadata["negative_values"].value > 0
    materialized = {e.materialization.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == {dg.AssetKey("power_user_runs")}
    assert len(checks) == len(RUN_CHECKS)  # none of the report's


def test_a_day_report_depends_on_every_persona_run_of_that_day():
    from simulation_assets.defs.power_users import build_defs

    defs = dg.Definitions.merge(build_defs(), dg.Definitions(resources={"store": LocalParquetStore()}))
    graph = defs.resolve_asset_graph()
    report, runs = defs.get_assets_def("power_user_report"), defs.get_assets_def("power_user_runs")
    mapping = graph.get_partition_mapping(report.key, runs.key)
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        report.partitions_def.subset_with_partition_keys(["2026-02-02"]),
        report.partitions_def,
        runs.partitions_def,
    ).partitions_subset
    assert sorted(upstream.get_partition_keys()) == sorted(
        f"2026-02-02|{p}"
        for p in (
            "Portfolio-Manager-Paula",
            "First-Time-Investor-Frank",
            "Real-Estate-Agent-Rita",
            "Weekend-Warrior-Will",
            "Business-Development-Ben",
        )
    )


def test_the_reference_api_in_a_child_process_keeps_uvicorn_out_of_its_parent_and_stops_with_it() -> None:
    """A load run serves the API from a child; its parent never imports uvicorn, Starlette or the app,
    and a parent that dies (its end of the child's stdin closes) leaves no server behind."""
    import subprocess
    import sys

    probe = (
        "import json, sys, urllib.request\n"
        "from simulation_assets.target.process import TargetProcess\n"
        "with TargetProcess() as target:\n"
        "    status = urllib.request.urlopen(target.base_url + '/health', timeout=10).status\n"
        "print(json.dumps([status, [m for m in ('uvicorn', 'starlette', 'jwt') if m in sys.modules]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [200, []]

    import signal

    from simulation_assets.target.process import TargetProcess

    # A parent that ignores SIGTERM (its child inherits that through exec) is left no server either.
    for ignored in (False, True):
        before = signal.signal(signal.SIGTERM, signal.SIG_IGN) if ignored else None
        try:
            orphan = TargetProcess().start()
        finally:
            if before is not None:
                signal.signal(signal.SIGTERM, before)
        assert orphan._proc is not None and orphan._proc.stdin is not None
        orphan._proc.stdin.close()  # what the parent's death does
        try:
            assert orphan._proc.wait(timeout=30) is not None
        finally:
            orphan._proc.kill()


def test_the_reference_apis_tokens_are_pyjwts_hs256_tokens_made_without_it() -> None:
    import subprocess
    import sys

    import jwt

    from simulation_assets.target.propiq.state import sign_token, verify_token

    secret, claims = (
        "s" * 64,
        {"sub": "a@simulated.propiq.test", "sid": "x1", "typ": "access", "exp_min": 61.5},
    )
    token = sign_token(claims, secret)
    assert token == jwt.encode(claims, secret, algorithm="HS256")  # byte for byte
    assert verify_token(jwt.encode(claims, secret, algorithm="HS256"), secret) == claims
    assert jwt.decode(token, secret, algorithms=["HS256"]) == claims
    head, body, signature = token.split(".")
    forged = jwt.encode({**claims, "sub": "b@simulated.propiq.test"}, secret, algorithm="HS256").split(".")[1]
    unsigned = jwt.encode(claims, None, algorithm="none")
    for bad in (
        f"{head}.{forged}.{signature}",
        sign_token(claims, "t" * 64),
        unsigned,
        "a.b",
        "",
        "ä.b.c",
        7,
    ):
        assert verify_token(bad, secret) is None  # type: ignore[arg-type]
    assert verify_token(sign_token([1, 2], secret), secret) is None  # type: ignore[arg-type]
    probe = "import sys, simulation_assets.target.propiq.app; print(sorted({'jwt', 'cryptography'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]  # the reference API loads neither
