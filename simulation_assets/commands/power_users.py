"""``simulate power-users``: materialize the power-user runs and the day's report; write the report.

The command is a front to the Dagster assets ``power_user_runs`` and ``power_user_report``: it
checks the input, runs them in-process in the local instance and copies the report and log out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulation_assets.commands.common import (
    QUIET_RUN_CONFIG,
    UsageError,
    console,
    dagster_instance,
    iso_date,
    prepare_output,
    run_resources,
)

DEMO_ORDER = 60
DEFAULT_OUTPUT = "output/power_users"


@dataclass
class PowerUsersRequest:
    """What ``simulate power-users`` was asked to do (validated by :func:`simulate`)."""

    personas: list[str] = field(default_factory=list)
    sequential: bool = False
    base_url: str = ""
    output: str = DEFAULT_OUTPUT
    config: str = ""
    day: str = ""
    days: int = 1
    users: int = 0
    rhythm: bool = False
    pace: str = "simulated"
    shape: str = ""
    notify_url: str = ""
    wandb: bool = False


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``power-users`` sub-command."""
    p = sub.add_parser(
        "power-users",
        help="drive a target API with scripted power users; write simulation_report.json",
        description=(
            "Run the scripted power users (default: the five packaged personas, in parallel) against "
            "--base-url, or against the bundled reference API started on a free loopback port. One day "
            "gives every user a session on demand; --days N (or --rhythm) follows each persona's "
            "usage_frequency, so weekly users come once a week."
        ),
    )
    p.add_argument("--user", action="append", metavar="NAME", help="run only this persona (repeatable)")
    p.add_argument("--users", type=int, default=0, metavar="N", help="clone the personas into N users")
    p.add_argument("--sequential", action="store_true", help="run users one after another")
    p.add_argument("--base-url", default="", help="API to drive (default: start the reference target)")
    p.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        help=f"folder for simulation_report.json and simulation.log, or a .json file path (default {DEFAULT_OUTPUT})",
    )
    p.add_argument("--config", default="", help="scenario YAML (default: the packaged five personas)")
    p.add_argument("--day", default="", help="day YYYY-MM-DD (the last one with --days; default: today)")
    p.add_argument("--days", type=int, default=1, metavar="N", help="run N days ending at --day (default 1)")
    p.add_argument(
        "--rhythm",
        action="store_true",
        help="sessions only on each user's active days (implied by --days > 1)",
    )
    p.add_argument(
        "--shape",
        default="",
        metavar="NAME",
        help="run a load shape of the scenario (constant, ramp, step, spike, soak, day, users_2000) instead",
    )
    p.add_argument(
        "--notify-url",
        default="",
        metavar="URL",
        help="post each Stripe event to this Slack-compatible webhook (env POWER_USERS_SLACK_WEBHOOK_URL)",
    )
    p.add_argument(
        "--wandb",
        action="store_true",
        help="log every analysis to Weights & Biases (offline unless WANDB_API_KEY)",
    )
    p.add_argument(
        "--pace",
        default="simulated",
        help="think times: 'simulated' (default, fast), 'real' (slept; sessions wait for their start) or x60",
    )
    p.set_defaults(handler=run)
    c = sub.add_parser(
        "power-users-cleanup",
        help="count, then with --delete remove, the simulated users in the target's database",
        description=(
            "Counts the users on @simulated.propiq.test in the target's PostgreSQL database (--dsn, or "
            "$POWER_USERS_TARGET_DSN) or in the reference target at --base-url; deletes them only with --delete."
        ),
    )
    c.add_argument("--delete", action="store_true", help="delete after counting (default: dry run)")
    c.add_argument("--dsn", default="", help="PostgreSQL DSN of the target's database")
    c.add_argument("--table", default="users", help="users table (default users)")
    c.add_argument("--email-column", default="email", help="e-mail column (default email)")
    c.add_argument("--base-url", default="", help="without a DSN: the reference target to clean")
    c.set_defaults(handler=run_cleanup)


def _output_paths(output: str) -> tuple[Path, Path]:
    """Return (report file, log file) for a folder or a ``.json`` path; raise UsageError if unwritable."""
    if output.lower().endswith(".json"):
        target = Path(output).expanduser()
        folder = prepare_output(target.parent if str(target.parent) else ".")
        return folder / target.name, folder / "simulation.log"
    folder = prepare_output(output)
    return folder / "simulation_report.json", folder / "simulation.log"


def integrations(request: PowerUsersRequest) -> dict[str, Any]:
    """Return the webhook and W&B resources: the flags, else the environment."""
    from simulation_assets.sinks.config_files import from_env
    from simulation_assets.sinks.power_users_notify import StripeEventWebhook
    from simulation_assets.sinks.power_users_wandb import WandbAnalysisLog

    webhook = {"url": request.notify_url} if request.notify_url else {}
    wandb = {"enabled": True} if request.wandb else {}
    return {
        "power_users_webhook": from_env(
            StripeEventWebhook, {"url": "POWER_USERS_SLACK_WEBHOOK_URL"}, **webhook
        ),
        "power_users_wandb": from_env(WandbAnalysisLog, {"enabled": "POWER_USERS_WANDB"}, **wandb),
    }


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


def _extent(first: str, last: str) -> dict[str, Any]:
    """Return the ``materialize`` arguments of one partition key or of the range [first, last]."""
    if first == last:
        return {"partition_key": first}
    return {"tags": {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}}


def _validated_days(request: PowerUsersRequest) -> list[str]:
    from simulation_assets.defs.power_users import power_user_days

    if request.days < 1:
        raise UsageError(f"--days must be a positive integer, got {request.days}")
    last = iso_date("--day", request.day) if request.day else dt.datetime.now(dt.UTC).date()
    wanted = [(last - dt.timedelta(days=n)).isoformat() for n in range(request.days - 1, -1, -1)]
    try:
        # the first and last day, not the list of every day since the start date (~3 ms a command)
        days = power_user_days()
        first, last_key = days.get_first_partition_key(), days.get_last_partition_key()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    outside = [d for d in wanted if first is None or last_key is None or not first <= d <= last_key]
    if outside:
        raise UsageError(
            f"--day/--days must stay between {first} and {last_key} (the run partitions), got {outside[0]}"
        )
    return wanted


def _validated(request: PowerUsersRequest) -> tuple[Any, str, list[str]]:
    """Return (scenario with its population, scenario path, days) or raise UsageError naming the input."""
    from simulation_assets.core.power_users.config import ConfigError
    from simulation_assets.core.power_users.rhythm import parse_pace
    from simulation_assets.core.power_users.safety import SafetyError, check_scenario
    from simulation_assets.sinks.power_users_scenario import load_scenario

    if request.base_url and not re.match(r"^https?://[^/\s]+", request.base_url):
        raise UsageError(
            f"--base-url must be an http(s) URL such as http://127.0.0.1:8000, got {request.base_url!r}"
        )
    if request.notify_url and not re.match(r"^https?://[^/\s]+", request.notify_url):
        raise UsageError(f"--notify-url must be an http(s) URL, got {request.notify_url!r}")
    if request.users < 0:
        raise UsageError(
            f"--users must be 0 (one user per persona) or a positive integer, got {request.users}"
        )
    try:
        parse_pace(request.pace)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None
    days = _validated_days(request)
    if request.config:
        path, source = str(Path(request.config).expanduser().resolve()), "--config"
    else:
        path, source = os.environ.get("POWER_USERS_SCENARIO", ""), "POWER_USERS_SCENARIO"
    try:
        scenario = load_scenario(path or None, source=source)
        for name in request.personas:
            scenario.persona(name)
        if request.shape:
            scenario.load_shape(request.shape)
        scenario = scenario.populated(request.users or None)
        check_scenario(scenario, os.environ)
    except (ConfigError, SafetyError) as exc:
        raise UsageError(str(exc)) from None
    return scenario, path, days


def simulate(request: PowerUsersRequest) -> dict[str, Any]:
    """Materialize ``power_user_runs`` and ``power_user_report`` in the local instance; write the report.

    Validates everything first; copies the last day's report (and each day's, with several days)
    and the runs' log to ``output``; returns the report with the runs' request and connection-error
    counts under ``cli``.
    """
    import dagster as dg

    from simulation_assets.core.power_users.report import console_summary
    from simulation_assets.core.power_users.sessions_report import sessions_table
    from simulation_assets.defs.power_users import (
        RUNS,
        build_defs,
        persona_day_key,
        power_users_target,
    )
    from simulation_assets.sinks.local_store import LocalParquetStore
    from simulation_assets.sinks.power_users_store import read_report, report_path, write_report

    scenario, scenario_path, days = _validated(request)
    report_file, log_file = _output_paths(request.output)
    names = scenario.archetypes()
    definitions = build_defs(scenario_path or None)
    explicit = {"base_url": request.base_url, "scenario_path": scenario_path}
    resources = {
        "power_users_target": power_users_target(**{k: v for k, v in explicit.items() if v}),
        "store": LocalParquetStore(),
        **integrations(request),
    }
    follow = request.rhythm or request.days > 1
    config = {
        "sequential": request.sequential,
        "follow_rhythm": follow,
        "pace": request.pace,
        "users": request.users,
        "shape": request.shape,
        "live_progress": bool(request.shape),
    }
    instance = dagster_instance()
    logs, requests, unreachable = [], 0, 0
    blocks = _persona_blocks(names, request.personas or names)
    for n, block in enumerate(blocks):
        # The last run also materializes the days' report (power_user_report) with its checks: its
        # personas complete what this command runs, and a run of its own would repeat a run's set-up.
        last = {"report": n == len(blocks) - 1}
        result = dg.materialize(
            [definitions.get_assets_def(RUNS)],
            resources=run_resources(resources),
            instance=instance,
            run_config={**QUIET_RUN_CONFIG, "ops": {RUNS: {"config": {**config, **last}}}},
            raise_on_error=True,
            **_extent(persona_day_key(block[0], days[0]), persona_day_key(block[-1], days[-1])),
        )
        meta = next(
            m for m in result.asset_materializations_for_node(RUNS) if m.asset_key == dg.AssetKey(RUNS)
        ).metadata
        logs.append(Path(str(meta["simulation_log"].value)))
        requests += int(meta["dagster/row_count"].value)
        unreachable += int(meta["connection_errors"].value)
    store = LocalParquetStore()
    reports = {day: read_report(report_path(store, day)) for day in days}
    if len(days) > 1:
        for day, day_report in reports.items():
            write_report(report_file.with_name(f"{report_file.stem}_{day}.json"), day_report)
    report = reports[days[-1]]
    write_report(report_file, report)
    log_file.write_text("".join(p.read_text(encoding="utf-8") for p in logs if p.exists()), encoding="utf-8")
    _print(report, reports, scenario.simulation_config.product_name, console_summary, sessions_table)
    console.print(f"Wrote {report_file} and {log_file}", markup=False, highlight=False)
    return {**report, "cli": {"requests": requests, "connection_errors": unreachable}}


def _print(report: dict, reports: dict[str, dict], product: str, summary: Any, sessions: Any) -> None:
    from simulation_assets.core.power_users.timeseries import load_line

    out = {"markup": False, "highlight": False}
    console.print(summary(report, product), **out)
    if report.get("load"):
        console.print(load_line(report), **out)
    else:
        console.print(sessions(report), **out)
    for day, day_report in reports.items():
        if len(reports) > 1:
            active = [s["name"] for s in day_report["sessions"] if s["active"]]
            console.print(f"{day}: {len(active)} of {len(day_report['sessions'])} users in session", **out)
    coverage, run = report["edge_case_coverage"], report["run"]
    console.print(
        f"Edge cases: {coverage['triggered']}/{coverage['configured']} configured ones triggered"
        + (f" (missing: {', '.join(coverage['missing'])})" if coverage["missing"] else "")
        + f"; {run['requests']} requests in {run['duration_seconds']} s against {run['base_url']}",
        **out,
    )


def run(args: argparse.Namespace) -> int:
    """Handle ``simulate power-users``; exit 1 when no request of this invocation got any HTTP answer."""
    report = simulate(
        PowerUsersRequest(
            personas=args.user or [],
            sequential=args.sequential,
            base_url=args.base_url,
            output=args.output,
            config=args.config,
            day=args.day,
            days=args.days,
            users=args.users,
            rhythm=args.rhythm,
            pace=args.pace,
            shape=args.shape,
            notify_url=args.notify_url,
            wandb=args.wandb,
        )
    )
    cli = report["cli"]
    if cli["connection_errors"] and cli["connection_errors"] == cli["requests"]:
        console.print(
            f"[bold red]error:[/] no request reached {report['run']['base_url']}; is the API running?"
        )
        return 1
    return 0


def run_cleanup(args: argparse.Namespace) -> int:
    """Handle ``simulate power-users-cleanup``: materialize ``power_user_cleanup`` in the local instance."""
    import dagster as dg

    from simulation_assets.defs.power_users import build_defs
    from simulation_assets.sinks.config_files import from_env
    from simulation_assets.sinks.power_users_cleanup import TargetUserCleanup

    explicit = {
        "dsn": args.dsn,
        "base_url": args.base_url,
        "table": args.table,
        "email_column": args.email_column,
    }
    cleanup = from_env(
        TargetUserCleanup,
        {"dsn": "POWER_USERS_TARGET_DSN", "base_url": "POWER_USERS_BASE_URL"},
        **{k: v for k, v in explicit.items() if v},
    )
    try:
        from simulation_assets.sinks.config_files import resolved

        resolved(cleanup).validate_config()
    except ValueError as exc:
        raise UsageError(f"power-users-cleanup: {exc}") from None
    result = dg.materialize(
        [build_defs().get_assets_def("power_user_cleanup")],
        resources=run_resources({"power_users_cleanup": cleanup}),
        instance=dagster_instance(),
        run_config={**QUIET_RUN_CONFIG, "ops": {"power_user_cleanup": {"config": {"delete": args.delete}}}},
        raise_on_error=True,
    )
    meta = {
        k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()
    }
    verb = "deleted" if args.delete else "would delete (dry run; --delete to remove them)"
    console.print(
        f"{meta['matched']} simulated users in {meta['where']}: {meta['deleted'] if args.delete else meta['matched']} "
        f"{verb}; {meta['other_users_kept']} other users left alone",
        markup=False,
        highlight=False,
    )
    return 0


def run_demo(root: Path) -> None:
    """Demo step: the five personas against the reference target on loopback."""
    report = simulate(PowerUsersRequest(output=str(root / "power_users")))
    s = report["simulation_summary"]
    console.print(
        f"Power users demo: {s['total_users']} personas, {s['total_actions_completed']} actions, "
        f"{s['total_edge_cases_triggered']} edge cases -> {root / 'power_users'}"
    )
