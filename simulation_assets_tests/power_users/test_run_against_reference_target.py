"""The packaged personas against the reference target: edge cases, report shape, costs, log, summary."""

from __future__ import annotations

import re

import pytest

from simulation_assets.core.power_users.edge_cases import EDGE_CASES, SEED_LIST_EDGE_CASES
from simulation_assets.core.power_users.target_rules import TargetRules
from simulation_assets.sinks.power_users_scenario import load_scenario

pytestmark = pytest.mark.xdist_group("power_users")

SEED_TOP_LEVEL = [
    "simulation_summary",
    "cost_analysis",
    "user_results",
    "edge_cases_triggered",
    "errors_encountered",
]


def test_default_run_triggers_every_edge_case_of_the_seed_lists(default_run):
    result, _ = default_run
    triggered = set(result.report["edge_cases_triggered"])
    assert set(SEED_LIST_EDGE_CASES) <= triggered
    assert set(load_scenario().edge_cases()) == triggered == set(EDGE_CASES)
    assert result.report["edge_case_coverage"]["missing"] == []
    details = result.report["edge_case_details"]
    assert all(d["triggered"] and d["as_expected"] for d in details), [
        d for d in details if not (d["triggered"] and d["as_expected"])
    ]


@pytest.mark.parametrize(
    ("edge_case", "statuses"),
    [
        ("jwt_expiration_60min", "401"),
        ("session_timeout_30min", "401"),
        ("free_tier_hard_block_5of5", "402"),
        ("usage_limit_hard_block", "402"),
        ("free_tier_export_forbidden", "403"),
        ("stripe_payment_failure_insufficient_funds", "402"),
        ("downgrade_data_loss_warning", "409"),
        ("invalid_address_empty", "422"),
        ("invalid_address_typo", "422"),
        ("negative_purchase_price", "422"),
        ("division_by_zero", "422"),
        ("extreme_property_value_15m_plus", "422"),
        ("database_query_timeout", "0"),
        ("openai_service_unavailable", "503,503,200"),
    ],
)
def test_edge_case_records_the_status_it_got(default_run, edge_case, statuses):
    result, _ = default_run
    rows = [d for d in result.report["edge_case_details"] if d["edge_case"] == edge_case]
    assert rows and rows[0]["statuses"] == statuses


def test_rate_limit_burst_of_twenty_meets_429_but_paced_actions_do_not(default_run):
    result, _ = default_run
    requests = result.frames["requests"]
    burst = requests.filter(
        (requests["user"] == "Business-Development-Ben") & (requests["action_type"] == "view_account")
    )
    statuses = burst["status"].to_list()
    # the burst's 20 share one instant on the simulated clock the target's bucket (15) counts on
    burst_size = TargetRules().rate_limit_burst
    assert statuses.count(429) == 20 - burst_size and statuses.count(200) == burst_size + 1  # + a paced one
    others = requests.filter(requests["status"] == 429)
    assert others.height == statuses.count(429)  # no 429 outside the burst


def test_report_keeps_the_seed_structure_and_adds_latency_per_action(default_run):
    report = default_run[0].report
    assert list(report)[:5] == SEED_TOP_LEVEL
    assert set(report["simulation_summary"]) == {
        "total_users",
        "total_actions_completed",
        "total_actions_failed",
        "total_edge_cases_triggered",
        "conversions_achieved",
        "conversion_rate",
    }
    assert set(report["cost_analysis"]) == {
        "azure_openai_input_tokens",
        "azure_openai_output_tokens",
        "azure_openai_cost_usd",
        "stripe_transactions",
        "stripe_fees_usd",
        "total_cost_usd",
    }
    user_keys = {
        "name",
        "duration_seconds",
        "actions_completed",
        "actions_failed",
        "success_rate",
        "edge_cases",
        "conversion",
        "cost_usd",
    }
    assert [set(u) for u in report["user_results"]] == [user_keys] * 5
    assert [u["name"] for u in report["user_results"]] == [p.name for p in load_scenario().simulations]
    assert report["simulation_summary"]["total_users"] == 5
    assert report["simulation_summary"]["total_actions_failed"] == 0
    assert report["simulation_summary"]["conversions_achieved"] == 2
    assert report["simulation_summary"]["conversion_rate"] == "40.0%"
    assert all(re.fullmatch(r"\d+\.\d%", u["success_rate"]) for u in report["user_results"])
    errors = report["errors_encountered"]
    assert errors and all(set(e) == {"action", "error", "timestamp"} for e in errors)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["timestamp"]) for e in errors)
    assert {"action": "export_analyses", "error": "403 Forbidden"} in [
        {k: e[k] for k in ("action", "error")} for e in errors
    ]
    assert "timeout" in {e["error"] for e in errors}
    perf = report["action_performance"]
    assert {"login", "analyze_property", "checkout", "view_history"} <= set(perf)
    for row in perf.values():
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["requests"] > 0 and row["requests_per_second"] > 0


def test_costs_follow_token_stripe_and_hosting_prices(default_run):
    report = default_run[0].report
    cost = report["cost_analysis"]
    details = report["cost_details"]
    assert cost["stripe_transactions"] == 2  # Paula to elite ($149), Frank to starter ($69)
    assert details["stripe_fees_usd"] == pytest.approx(149 * 0.029 + 0.30 + 69 * 0.029 + 0.30, abs=1e-4)
    assert cost["stripe_fees_usd"] == "$6.92"
    expected_ai = (
        cost["azure_openai_input_tokens"] * 0.00015 / 1000
        + cost["azure_openai_output_tokens"] * 0.0006 / 1000
    )
    assert details["openai_usd"] == pytest.approx(expected_ai, abs=1e-6)
    assert details["hosting_usd"] == pytest.approx(7.0 / 30, abs=1e-4)
    assert details["total_usd"] == pytest.approx(
        expected_ai + details["stripe_fees_usd"] + 7.0 / 30, abs=1e-3
    )
    per_user = details["per_user"]
    assert per_user["Weekend-Warrior-Will"]["stripe_transactions"] == 0
    assert sum(u["total_usd"] for u in per_user.values()) == pytest.approx(details["total_usd"], abs=1e-3)
    # ~500 input / ~1,500 output tokens per analysis
    analyses = (
        default_run[0]
        .frames["requests"]
        .filter(
            (default_run[0].frames["requests"]["meter"] == "analysis")
            & (default_run[0].frames["requests"]["status"] == 200)
        )
    )
    assert 400 < cost["azure_openai_input_tokens"] / analyses.height < 700
    assert 1500 <= cost["azure_openai_output_tokens"] / analyses.height <= 1800


def test_console_summary_and_log_follow_the_seed_format(default_run):
    result, log = default_run
    lines = result.summary.splitlines()
    assert lines[0] == "=" * 80 and lines[1] == "PROPIQ POWER USER SIMULATION - RESULTS SUMMARY"
    assert "Portfolio-Manager-Paula:" in lines
    assert re.search(r"^  Actions: \d+ completed, 0 failed$", result.summary, re.M)
    assert "  Conversion: ✅ Yes" in lines and "  Conversion: ❌ No" in lines
    assert "TOTALS:" in lines and "  Conversions: 2/5 (40.0%)" in lines
    text = log.read_text()
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - INFO - \[Weekend-Warrior-Will\] POST /auth/login -> 200",
        text,
        re.M,
    )
    assert "EDGE CASE triggered: rate_limit_20_rapid_requests" in text
    assert text.count(" -> ") >= default_run[0].frames["requests"].height


def test_retry_waits_follow_the_shared_policy_and_repeat_with_the_seed(tmp_path):
    from simulation_assets.core.rng import stream
    from simulation_assets.sinks.http_retry import HttpRetry
    from simulation_assets.sinks.power_users_client import PowerUserTarget
    from simulation_assets.target.propiq import create_app
    from simulation_assets.target.server import LocalTarget

    # A bucket refilled at 1,000/s in real time: on the server's clock 20 rapid requests would have
    # to reach it within 5 ms to meet a 429; on the simulated clock the runner states they always do.
    log = tmp_path / "run.log"
    with LocalTarget(create_app(TargetRules(rate_limit_per_second=1000))) as target:
        result = PowerUserTarget(base_url=target.base_url).run(
            personas=["Business-Development-Ben"], day="2026-01-15", log_path=log, env={}
        )
    requests = result.frames["requests"]
    assert requests.filter(requests["status"] == 429).height == 20 - TargetRules().rate_limit_burst
    found = re.findall(r"analyze_property -> 503, retry (\d)/3 in ([\d.]+)s", log.read_text())
    waits = [(int(n), float(w)) for n, w in found]
    assert [n for n, _ in waits] == [1, 2]
    # the waits are the shared policy's, jittered by draws of the seed's stream for that request: the
    # same on every run (one run suffices: they are computed here from the seed)
    retried = requests.filter(requests["statuses"] == "503,503,200").row(0, named=True)
    settings = load_scenario().simulation_config
    draws = stream(
        settings.seed,
        "power_users",
        "backoff",
        "Business-Development-Ben",
        retried["action_index"],
        retried["request_index"],
    )
    policy = HttpRetry(backoff_seconds=settings.backoff_base_s, max_backoff_seconds=settings.backoff_max_s)
    for attempt, wait in waits:
        assert wait == pytest.approx(policy.wait_seconds(attempt, unit=float(draws.random())), abs=0.006)
