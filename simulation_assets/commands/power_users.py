"""``simulate power-users``: run the scripted power users against a target API and write the report."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

from simulation_assets.commands.common import (
    QUIET_RUN_CONFIG,
    UsageError,
    console,
    dagster_instance,
    iso_date,
    prepare_output,
)

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


def _persona_blocks(names: list[str], chosen: list[str]) -> list[list[str]]:
    """Split ``chosen`` into runs of personas adjacent in ``names`` (each block is one Dagster run)."""
    positions = sorted(names.index(n) for n in dict.fromkeys(chosen))
    blocks: list[list[str]] = []
    for pos in positions:
        if blocks and names.index(blocks[-1][-1]) == pos - 1:
            blocks[-1].append(names[pos])
        else:
            blocks.append([names[pos]])
    return blocks


def simulate(
    users: list[str] | None,
    sequential: bool,
    base_url: str,
    output: str,
    config: str = "",
    day: str = "",
) -> dict[str, Any]:
    """Materialize ``power_user_runs`` and the day's ``power_user_report`` in the local instance.

    Validates everything first; writes the day report and the runs' log to ``output``; returns the
    report and the runs' connection-error and request counts under ``cli``.
    """
    import dagster as dg

    from simulation_assets.core.power_users.config import ConfigError
    from simulation_assets.core.power_users.safety import SafetyError, check_scenario
    from simulation_assets.defs.power_users import (
        REPORT,
        RUNS,
        build_defs,
        persona_day_key,
        power_user_days,
        power_users_target,
    )
    from simulation_assets.sinks.local_store import LocalParquetStore
    from simulation_assets.sinks.power_users_scenario import load_scenario
    from simulation_assets.sinks.power_users_store import read_report, report_path, write_report

    if base_url and not re.match(r"^https?://[^/\s]+", base_url):
        raise UsageError(f"--base-url must be an http(s) URL such as http://127.0.0.1:8000, got {base_url!r}")
    run_day = iso_date("--day", day).isoformat() if day else dt.datetime.now(dt.UTC).date().isoformat()
    try:
        valid_days = power_user_days().get_partition_keys()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if run_day not in valid_days:
        raise UsageError(
            f"--day must be between {valid_days[0]} and {valid_days[-1]} (the run partitions), got {run_day}"
        )
    if config:
        scenario_path, source = str(Path(config).expanduser().resolve()), "--config"
    else:
        scenario_path, source = os.environ.get("POWER_USERS_SCENARIO", ""), "POWER_USERS_SCENARIO"
    try:
        scenario = load_scenario(scenario_path or None, source=source)
        chosen = [scenario.persona(name).name for name in users] if users else []
        check_scenario(scenario, os.environ)
    except (ConfigError, SafetyError) as exc:
        raise UsageError(str(exc)) from None
    report_file, log_file = _output_paths(output)
    names = [p.name for p in scenario.simulations]
    definitions = build_defs(scenario_path or None)
    resources = {
        "power_users_target": power_users_target(
            **{k: v for k, v in {"base_url": base_url, "scenario_path": scenario_path}.items() if v}
        ),
        "store": LocalParquetStore(),
    }
    run_config = {**QUIET_RUN_CONFIG, "ops": {RUNS: {"config": {"sequential": sequential}}}}
    instance = dagster_instance()
    logs, requests, unreachable = [], 0, 0
    for block in _persona_blocks(names, chosen or names):
        keys = [persona_day_key(p, run_day) for p in block]
        extent: dict[str, Any] = (
            {"partition_key": keys[0]}
            if len(keys) == 1
            else {
                "tags": {
                    "dagster/asset_partition_range_start": keys[0],
                    "dagster/asset_partition_range_end": keys[-1],
                }
            }
        )
        result = dg.materialize(
            [definitions.get_assets_def(RUNS)],
            resources=resources,
            instance=instance,
            run_config=run_config,
            raise_on_error=True,
            **extent,
        )
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        logs.append(Path(str(meta["simulation_log"].value)))
        requests += int(meta["dagster/row_count"].value)
        unreachable += int(meta["connection_errors"].value)
    dg.materialize(
        [definitions.get_assets_def(REPORT)],
        partition_key=run_day,
        resources=resources,
        instance=instance,
        run_config=QUIET_RUN_CONFIG,
        raise_on_error=True,
    )
    report = read_report(report_path(LocalParquetStore(), run_day))
    write_report(report_file, report)
    log_file.write_text("".join(p.read_text(encoding="utf-8") for p in logs if p.exists()), encoding="utf-8")
    from simulation_assets.core.power_users.report import console_summary

    console.print(
        console_summary(report, scenario.simulation_config.product_name), markup=False, highlight=False
    )
    coverage = report["edge_case_coverage"]
    run = report["run"]
    console.print(
        f"Edge cases: {coverage['triggered']}/{coverage['configured']} configured ones triggered"
        + (f" (missing: {', '.join(coverage['missing'])})" if coverage["missing"] else "")
        + f"; {run['requests']} requests in {run['duration_seconds']} s against {run['base_url']}",
        markup=False,
        highlight=False,
    )
    console.print(f"Wrote {report_file} and {log_file}", markup=False, highlight=False)
    return {**report, "cli": {"requests": requests, "connection_errors": unreachable}}


def run(args: argparse.Namespace) -> int:
    """Handle ``simulate power-users``; exit 1 when no request of this invocation got any HTTP answer."""
    report = simulate(args.user, args.sequential, args.base_url, args.output, args.config, args.day)
    cli = report["cli"]
    if cli["connection_errors"] and cli["connection_errors"] == cli["requests"]:
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
