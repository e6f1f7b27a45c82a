"""``simulate hogflix``: run the persona lifecycle and its traffic for a number of days and export the results.

The command materializes the same assets the Dagster UI does, in-process and
recorded in the local instance: the lifecycle over the whole date range as one
run (the progress bar follows its days), then, for the traffic days, the
half-hourly traffic assets over all their windows as one run and the daily
traffic summary and churn cleanup as another.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simulation_assets.commands.common import (
    UsageError,
    console,
    dagster_instance,
    iso_date,
    materialize_range,
    positive_int,
    prepare_output,
    progress,
    write_json,
)
from simulation_assets.commands.hogflix_browser import (
    add_browser_arguments,
    check_browser_arguments,
    run_browser_tier,
)

DEMO_ORDER = 10
LIFECYCLE_ASSETS = ("hogflix_personas", "hogflix_daily_metrics")
TRAFFIC_ASSETS = ("hogflix_sessions", "hogflix_events", "hogflix_app_rows", "hogflix_flixbuddy_conversations")
DAILY_TRAFFIC_ASSETS = ("hogflix_traffic_daily", "hogflix_churn_cleanup")
PROGRESS_LOGGER = "simulation_assets.progress"
# The default first day; equals core.hogflix.config.DEFAULT_START_DATE (a test pins it), kept here so
# that building the parser imports nothing beyond the standard library.
DEFAULT_START = "2026-01-01"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``hogflix`` sub-command."""
    p = sub.add_parser("hogflix", help="simulate the HogFlix persona pool and its traffic day by day")
    p.add_argument("--days", type=int, required=True, help="number of days to simulate (> 0)")
    p.add_argument("--pool", type=int, default=400, help="target persona pool (default 400, PERSONA_POOL)")
    p.add_argument("--seed", type=int, default=42, help="global random seed (default 42)")
    p.add_argument("--start", default=DEFAULT_START, help=f"first day, YYYY-MM-DD (default {DEFAULT_START})")
    p.add_argument("--output", default="output/hogflix", help="folder for the results")
    p.add_argument(
        "--traffic-days",
        type=int,
        default=None,
        help="simulate sessions and events for the last N days only (default: every day; 0: lifecycle only)",
    )
    p.add_argument(
        "--events",
        choices=("parquet", "posthog"),
        default=os.environ.get("HOGFLIX_EVENTS_SINK", "parquet"),
        help="parquet (default) or posthog: also deliver to $PH_HOST with $PH_PROJECT_API_KEY",
    )
    p.add_argument(
        "--app-db",
        choices=("duckdb", "postgres"),
        default=os.environ.get("HOGFLIX_APP_DB", "duckdb"),
        help="duckdb (default: OUTPUT/app.duckdb) or postgres (DSN from --dsn or $HOGFLIX_APP_DB_DSN)",
    )
    p.add_argument(
        "--dsn", default="", help="PostgreSQL DSN of the app database (default $HOGFLIX_APP_DB_DSN)"
    )
    add_browser_arguments(p)
    p.set_defaults(handler=run)


def _check_posthog_horizon(posthog: object, last_day: dt.date) -> None:
    """Refuse, before anything runs, traffic PostHog would not accept: events more than 23 h ahead of now.

    Future days simulate like any other with the Parquet events sink (a forecast, a load test for next
    month); PostHog itself clamps or drops events dated that far ahead, so they are not sent there.
    """
    if getattr(posthog, "mode", "") != "posthog":
        return
    horizon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=posthog.max_future_hours)  # type: ignore[attr-defined]
    last_moment = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), dt.UTC)
    if last_moment > horizon:
        raise ValueError(
            f"--events posthog: the traffic runs to {last_day.isoformat()}, more than "
            f"{posthog.max_future_hours:g} h ahead of now, and PostHog does not accept events dated that far "  # type: ignore[attr-defined]
            "ahead; simulate future days with --events parquet, or end the range by tomorrow"
        )


def _resources(
    settings: object,
    output: Path,
    traffic_days: int,
    events: str,
    app_db: str,
    dsn: str,
    last_traffic_day: dt.date,
) -> dict:
    """Return the resources of the run: settings and store, plus the traffic sinks when traffic is simulated.

    Each sink is bound to its environment variables (``from_env``) and read now (``resolved``), so a
    missing secret is a usage error before anything runs.
    """
    from simulation_assets.sinks.local_store import LocalParquetStore

    resources: dict[str, object] = {"hogflix_settings": settings, "store": LocalParquetStore()}
    if not traffic_days:
        return resources
    from simulation_assets.sinks.app_db import DSN_ENV_VAR, app_database
    from simulation_assets.sinks.config_files import from_env, resolved
    from simulation_assets.sinks.flixbuddy import FlixBuddyClient
    from simulation_assets.sinks.hogflix_state import HogflixTrafficSettings
    from simulation_assets.sinks.posthog_events import PostHogEvents
    from simulation_assets.sinks.supabase_auth import SupabaseAuthAdmin

    try:
        database = app_database(app_db, str(output / "app.duckdb"), dsn or os.environ.get(DSN_ENV_VAR, ""))
        database.validate_config()
        posthog = resolved(from_env(PostHogEvents, mode=events))
        posthog.validate_config()
        _check_posthog_horizon(posthog, last_traffic_day)
        resources.update(
            hogflix_traffic=resolved(from_env(HogflixTrafficSettings)),
            hogflix_posthog=posthog,
            hogflix_app_db=database,
            hogflix_auth=resolved(from_env(SupabaseAuthAdmin)),
            hogflix_flixbuddy=resolved(from_env(FlixBuddyClient)),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return resources


class _Advance(logging.Handler):
    """Moves a progress-bar task on each record the assets log for its asset."""

    def __init__(self, advance: dict[str, object]) -> None:
        super().__init__(logging.INFO)
        self.advance = advance

    def emit(self, record: logging.LogRecord) -> None:
        step = self.advance.get(getattr(record, "asset", ""))
        if step is not None:
            step(getattr(record, "partitions", 1))  # type: ignore[operator]


@contextmanager
def _following(advance: dict[str, object]) -> Iterator[None]:
    """Let the assets of the runs started inside move the bar's tasks (see ``PROGRESS`` in defs)."""
    logger = logging.getLogger(PROGRESS_LOGGER)
    handler = _Advance(advance)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _check_outcomes(results: list) -> dict[str, bool]:
    """Return ``{asset.check: passed}`` of the runs' check evaluations."""
    out = {}
    for result in results:
        for evaluation in result.get_asset_check_evaluations():
            out[f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"] = evaluation.passed
    return out


def simulate(
    days: int,
    pool: int,
    seed: int,
    start: dt.date,
    output: Path,
    quiet: bool = False,
    traffic_days: int | None = None,
    events: str = "parquet",
    app_db: str = "duckdb",
    dsn: str = "",
) -> dict:
    """Materialize lifecycle and traffic assets for ``days`` days from ``start``; write exports; return the summary."""
    from simulation_assets.core.hogflix.sessions import day_window_keys
    from simulation_assets.defs.hogflix import hogflix_assets
    from simulation_assets.sinks.config_files import from_env, resolved
    from simulation_assets.sinks.hogflix_state import HogflixSettings, persona_table

    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    traffic_days = days if traffic_days is None else traffic_days
    if not 0 <= traffic_days <= days:
        raise UsageError(f"--traffic-days must be between 0 and --days ({days}), got {traffic_days}")
    end = start + dt.timedelta(days=days)
    try:
        settings = resolved(
            from_env(HogflixSettings, seed=seed, persona_pool=pool, start_date=start.isoformat())
        )
        settings.lifecycle()
    except ValueError as exc:
        raise UsageError(f"invalid HogFlix configuration: {exc}") from None
    resources = _resources(settings, output, traffic_days, events, app_db, dsn, end - dt.timedelta(days=1))
    store = resources["store"]
    assets = hogflix_assets(start.isoformat(), end.isoformat(), traffic=bool(traffic_days))
    by_name = {a.key.to_user_string(): a for a in assets}
    keys = [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]
    traffic_keys = keys[days - traffic_days :]
    windows = [k for d in traffic_keys for k in day_window_keys(dt.date.fromisoformat(d))]
    if app_db == "duckdb" and traffic_days:
        (output / "app.duckdb").unlink(missing_ok=True)  # this run's own database, rebuilt each time
    instance = dagster_instance()
    started = time.perf_counter()
    results = []
    with progress(min_total=2) as bar:  # one day: its summary line, no bar
        lifecycle = bar.add_task(f"HogFlix lifecycle, pool {pool}", total=days, visible=not quiet)
        traffic = bar.add_task(
            "HogFlix traffic (30-min windows)", total=len(windows), visible=not quiet and bool(windows)
        )
        advance = {
            "hogflix_personas": lambda n: bar.advance(lifecycle, n),
            "hogflix_sessions": lambda n: bar.advance(traffic, n),
        }
        with _following(advance):
            run = [by_name[n] for n in LIFECYCLE_ASSETS]
            results.append(materialize_range(run, resources, keys[0], keys[-1], instance))
            if windows:
                run = [by_name[n] for n in TRAFFIC_ASSETS]
                results.append(materialize_range(run, resources, windows[0], windows[-1], instance))
                run = [by_name[n] for n in DAILY_TRAFFIC_ASSETS]
                results.append(materialize_range(run, resources, traffic_keys[0], traffic_keys[-1], instance))
    seconds = time.perf_counter() - started

    persona_table(settings, store, keys[-1]).write_parquet(output / "personas.parquet")
    metrics = store.read_many(settings.dataset("daily_metrics"), keys).sort("date")
    metrics.write_parquet(output / "daily_metrics.parquet")
    import polars as pl

    last = pl.read_parquet(output / "personas.parquet")
    checks = _check_outcomes(results)
    summary = {
        "command": "hogflix",
        "seed": seed,
        "persona_pool": pool,
        "start": keys[0],
        "end": keys[-1],
        "days": days,
        "scenario": settings.scenario(),
        "seconds": round(seconds, 3),
        "dagster_runs": [r.run_id for r in results],
        "checks": checks,
        "final_personas": last.height,
        "final_state_counts": {
            r["state"]: r["len"] for r in last.group_by("state").len().sort("state").to_dicts()
        },
        "pool_min": int(metrics["pool_size"].min()),
        "pool_max": int(metrics["pool_size"].max()),
        "signups_min": int(metrics["new_signups"].min()),
        "signups_max": int(metrics["new_signups"].max()),
        "mean_active_today": round(float(metrics["active_today"].mean()), 2),
        "mean_active_share": round(float((metrics["state_ACTIVE"] / metrics["pool_size"]).mean()), 4),
        "files": {"personas": "personas.parquet", "daily_metrics": "daily_metrics.parquet"},
    }
    if traffic_keys:
        summary["traffic"] = _export_traffic(settings, store, resources, traffic_keys, output)
        summary["files"].update(summary["traffic"].pop("files"))
    write_json(output / "summary.json", summary)
    return summary


def _export_traffic(settings, store, resources: dict, days: list[str], output: Path) -> dict:  # noqa: ANN001
    """Write events, sessions, FlixBuddy chats and app tables of ``days`` to ``output``; return figures."""
    from simulation_assets.core.hogflix.app_rows import APP_TABLES
    from simulation_assets.core.hogflix.sessions import day_window_keys

    windows = [k for d in days for k in day_window_keys(dt.date.fromisoformat(d))]
    events = store.read_many(settings.dataset("events"), windows)
    sessions = store.read_many(settings.dataset("sessions"), windows)
    flixbuddy = store.read_many(settings.dataset("flixbuddy"), windows)
    per_day = store.read_many(settings.dataset("traffic_daily"), days).sort("date")
    cleanup = store.read_many(settings.dataset("cleanup"), days)
    events.write_parquet(output / "events.parquet")
    sessions.write_parquet(output / "sessions.parquet")
    flixbuddy.write_parquet(output / "flixbuddy_conversations.parquet")
    per_day.write_parquet(output / "traffic_daily.parquet")
    app_dir = output / "app"
    app_dir.mkdir(exist_ok=True)
    db = resources["hogflix_app_db"]
    table_rows = {}
    for table in APP_TABLES:
        frame = db.read_table(table)
        frame.write_parquet(app_dir / f"{table}.parquet")
        table_rows[table] = frame.height
    return {
        "traffic_days": len(days),
        "events_sink": resources["hogflix_posthog"].mode,
        "app_database": db.backend,
        "sessions_per_day": _stats(per_day["sessions"]),
        "events_per_day": _stats(per_day["events"]),
        "flixbuddy_chats_per_day": _stats(per_day["flixbuddy_chats"]),
        "support_tickets_per_day": _stats(per_day["support_tickets"]),
        "events_total": events.height,
        "app_rows": table_rows,
        "users_cleaned": cleanup.height,
        "files": {
            "events": "events.parquet",
            "sessions": "sessions.parquet",
            "flixbuddy_conversations": "flixbuddy_conversations.parquet",
            "traffic_daily": "traffic_daily.parquet",
            "app_tables": "app/<table>.parquet",
            **({"app_database": "app.duckdb"} if db.backend == "duckdb" else {}),
        },
    }


def _stats(series) -> dict[str, float]:  # noqa: ANN001 (a polars Series)
    return {"min": int(series.min()), "mean": round(float(series.mean()), 1), "max": int(series.max())}


def run(args: argparse.Namespace) -> int:
    """Handle ``simulate hogflix``."""
    days = positive_int("--days", args.days)
    pool = positive_int("--pool", args.pool)
    start = iso_date("--start", args.start)
    browser = check_browser_arguments(args)
    output = prepare_output(args.output)
    summary = simulate(
        days,
        pool,
        args.seed,
        start,
        output,
        traffic_days=args.traffic_days,
        events=args.events,
        app_db=args.app_db,
        dsn=args.dsn,
    )
    console.print(
        f"HogFlix: {summary['days']} days from {summary['start']} to {summary['end']} in {summary['seconds']} s; "
        f"pool {summary['pool_min']}-{summary['pool_max']}, signups {summary['signups_min']}-{summary['signups_max']}/day, "
        f"{summary['mean_active_today']} active/day, ACTIVE share {summary['mean_active_share']:.1%}"
    )
    if "traffic" in summary:
        t = summary["traffic"]
        console.print(
            f"Traffic: {t['sessions_per_day']['mean']} sessions/day ({t['sessions_per_day']['min']}-"
            f"{t['sessions_per_day']['max']}), {t['events_per_day']['mean']} events/day "
            f"({t['events_per_day']['min']}-{t['events_per_day']['max']}), "
            f"{t['flixbuddy_chats_per_day']['mean']} FlixBuddy chats/day, {t['users_cleaned']} churned users "
            f"cleaned; events -> {t['events_sink']}, app rows -> {t['app_database']}"
        )
    failed = sorted(name for name, passed in summary["checks"].items() if not passed)
    if failed:
        console.print(f"[bold yellow]checks that failed (see the Dagster UI):[/] {', '.join(failed)}")
    if browser.share and "traffic" in summary:
        traffic_days = days if args.traffic_days is None else args.traffic_days
        keys = [(start + dt.timedelta(days=i)).isoformat() for i in range(days - traffic_days, days)]
        run_browser_tier(browser, args.seed, pool, start, keys, args.events, output, dagster_instance())
    console.print(f"Wrote {output}: " + ", ".join(sorted(summary["files"].values())) + ", summary.json")
    return 0


def run_demo(root: Path) -> None:
    """Demo step: 30 days at pool 400, with sessions and events on the last 3 days."""
    out = prepare_output(root / "hogflix")
    summary = simulate(30, 400, 42, dt.date.fromisoformat(DEFAULT_START), out, traffic_days=3)
    t = summary["traffic"]
    console.print(
        f"HogFlix demo: 30 days, pool {summary['pool_min']}-{summary['pool_max']}; traffic on the last 3: "
        f"{t['sessions_per_day']['mean']} sessions/day, {t['events_per_day']['mean']} events/day -> {out}"
    )
