"""``simulate power-users``: run the scripted power users against a target API and write the report."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

from simulation_assets.commands.common import UsageError, console, dagster_instance, iso_date, prepare_output

DEMO_ORDER = 60
DEFAULT_OUTPUT = "output/power_users"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``power-users`` sub-command."""
    p = sub.add_parser(
        "power-users",
        help="drive a target API with scripted power users; write simulation_report.json",
        description=(
            "Run the scripted power users (default: the five packaged personas, in parallel) against "
            "--base-url, or against the bundled reference API started on a free loopback port."
        ),
    )
    p.add_argument("--user", action="append", metavar="NAME", help="run only this persona (repeatable)")
    p.add_argument("--sequential", action="store_true", help="run personas one after another")
    p.add_argument("--base-url", default="", help="API to drive (default: start the reference target)")
    p.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        help=f"folder for simulation_report.json and simulation.log, or a .json file path (default {DEFAULT_OUTPUT})",
    )
    p.add_argument("--config", default="", help="scenario YAML (default: the packaged five personas)")
    p.add_argument(
        "--day", default="", help="simulated day YYYY-MM-DD for seeding and partitions (default: today)"
    )
    p.set_defaults(handler=run)


def _output_paths(output: str) -> tuple[Path, Path]:
    """Return (report file, log file) for a folder or a ``.json`` path; raise UsageError if unwritable."""
    if output.lower().endswith(".json"):
        target = Path(output).expanduser()
        folder = prepare_output(target.parent if str(target.parent) else ".")
        return folder / target.name, folder / "simulation.log"
    folder = prepare_output(output)
    return folder / "simulation_report.json", folder / "simulation.log"


def simulate(
    users: list[str] | None,
    sequential: bool,
    base_url: str,
    output: str,
    config: str = "",
    day: str = "",
    record: bool = True,
) -> dict[str, Any]:
    """Validate everything, run, write the report and log, record the run in Dagster; return the report."""
    from simulation_assets.core.power_users.config import ConfigError
    from simulation_assets.core.power_users.safety import SafetyError, check_scenario
    from simulation_assets.defs.power_users import write_report
    from simulation_assets.sinks.power_users_client import PowerUserTarget
    from simulation_assets.sinks.power_users_scenario import load_scenario

    if base_url and not re.match(r"^https?://[^/\s]+", base_url):
        raise UsageError(f"--base-url must be an http(s) URL such as http://127.0.0.1:8000, got {base_url!r}")
    run_day = iso_date("--day", day).isoformat() if day else dt.datetime.now(dt.UTC).date().isoformat()
    try:
        scenario = load_scenario(config or None)
        if users:
            for name in users:
                scenario.persona(name)
        check_scenario(scenario, os.environ)
    except (ConfigError, SafetyError) as exc:
        raise UsageError(str(exc)) from None
    report_path, log_path = _output_paths(output)
    target = PowerUserTarget(base_url=base_url)
    result = target.run(
        personas=users, day=run_day, sequential=sequential, log_path=log_path, scenario=scenario
    )
    write_report(report_path, result.report)
    if record:
        _record(result, run_day, scenario)
    console.print(result.summary, markup=False, highlight=False)
    coverage = result.report["edge_case_coverage"]
    run = result.report["run"]
    console.print(
        f"Edge cases: {coverage['triggered']}/{coverage['configured']} configured ones triggered"
        + (f" (missing: {', '.join(coverage['missing'])})" if coverage["missing"] else "")
        + f"; {run['requests']} requests in {run['duration_seconds']} s against {result.base_url}",
        markup=False,
        highlight=False,
    )
    console.print(f"Wrote {report_path} and {log_path}", markup=False, highlight=False)
    return result.report


def _record(result: Any, day: str, scenario: Any) -> None:
    """Store the run's tables and record materializations of the power-user assets in the local instance."""
    import dagster as dg

    from simulation_assets.defs.power_users import (
        check_results,
        persona_names,
        report_metadata,
        write_report,
        write_tables,
    )
    from simulation_assets.sinks.local_store import LocalParquetStore

    store = LocalParquetStore()
    write_tables(store, result.frames, day)
    write_report(store.root() / "power_users" / "reports" / day / "simulation_report.json", result.report)
    instance = dagster_instance()
    known = set(persona_names())
    meta = report_metadata(result.report)
    for persona in result.frames["users"]["user"].to_list():
        if persona in known:
            key = dg.MultiPartitionKey({"persona": persona, "day": day})
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key="power_user_runs",
                    partition=key,
                    description="recorded by `simulate power-users`",
                    metadata={"base_url": result.base_url},
                )
            )
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="power_user_report",
            partition=day,
            description="recorded by `simulate power-users`",
            metadata=meta,
        )
    )
    for check in check_results(result.report, scenario, "power_user_report"):
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("power_user_report"),
                check_name=check.check_name,
                passed=check.passed,
                metadata=check.metadata,
                partition=day,
            )
        )


def run(args: argparse.Namespace) -> int:
    """Handle ``simulate power-users``; exit 1 when no request got any HTTP answer."""
    report = simulate(args.user, args.sequential, args.base_url, args.output, args.config, args.day)
    s = report["simulation_summary"]
    unreachable = sum(e["error"].startswith("connection error") for e in report["errors_encountered"])
    if unreachable and unreachable == s["total_actions_completed"] + s["total_actions_failed"]:
        console.print(
            f"[bold red]error:[/] no request reached {report['run']['base_url']}; is the API running?"
        )
        return 1
    return 0


def run_demo(root: Path) -> None:
    """Demo step: the five personas against the reference target on loopback."""
    report = simulate(None, False, "", str(root / "power_users"))
    s = report["simulation_summary"]
    console.print(
        f"Power users demo: {s['total_users']} personas, {s['total_actions_completed']} actions, "
        f"{s['total_edge_cases_triggered']} edge cases -> {root / 'power_users'}"
    )
