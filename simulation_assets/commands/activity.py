"""``simulate activity``: tick the customer activity simulator, or serve its live dashboard while ticking.

Every tick is one Dagster run of ``activity_tick`` + ``monitor_interventions`` recorded in the
local instance, so the UI shows each tick's events, interventions and check results.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import time
from pathlib import Path

from simulation_assets.commands.common import (
    QUIET_RUN_CONFIG,
    InterruptWatch,
    UsageError,
    console,
    dagster_instance,
    prepare_output,
    progress,
    run_resources,
    write_json,
)

DEMO_ORDER = 30
DEFAULT_PORT = 8765
# Fast-forward splits the ticks over about this many Dagster runs (each run costs ~0.5-3 s here).
FAST_FORWARD_RUNS = 3
FAST_FORWARD_MAX_TICKS_PER_RUN = 100


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``activity`` sub-command."""
    p = sub.add_parser(
        "activity",
        help="real-time customer activity with a proactive monitor (ticks, or a live dashboard)",
        description=(
            "Apply activity ticks (--ticks T) and export the results, or serve the live dashboard "
            "while ticking (--dashboard). State lives in the activity store: DuckDB by default, "
            "PostgreSQL with ACTIVITY_STORE=postgres and ACTIVITY_DATABASE_URL."
        ),
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--ticks", type=int, help="number of ticks to apply (> 0)")
    mode.add_argument(
        "--dashboard", action="store_true", help="serve the dashboard and tick in the background"
    )
    p.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between ticks: 0 fast-forwards with a simulated 30 s clock "
        "(default 0 with --ticks, 30 with --dashboard)",
    )
    p.add_argument("--seed", type=int, default=42, help="global random seed (default 42)")
    p.add_argument(
        "--reset", action="store_true", help="start a new simulation: delete the store's activity rows"
    )
    p.add_argument("--output", default="output/activity", help="folder for the exports of --ticks")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"dashboard port (default {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1)")
    p.add_argument(
        "--max-ticks", type=int, default=None, help="with --dashboard: stop ticking after this many ticks"
    )
    p.set_defaults(handler=run)


def _settings(seed: int):  # noqa: ANN202
    from simulation_assets.defs.activity import ActivitySettings
    from simulation_assets.sinks.activity_backends import activity_store_from_env
    from simulation_assets.sinks.config_files import from_env, resolved

    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    try:
        settings = resolved(from_env(ActivitySettings, seed=seed))
        cfg = settings.config()
        store = resolved(activity_store_from_env())
        store.location()  # a PostgreSQL store without a DSN says so here
    except ValueError as exc:
        raise UsageError(f"invalid activity configuration: {exc}") from None
    return settings, cfg, store


class DagsterTicker:
    """Applies ticks as Dagster runs (tick asset + monitor) in the local instance."""

    def __init__(self, settings: object, store: object) -> None:
        from simulation_assets.defs.activity import defs  # built once, when the module was imported

        self.assets = list(defs.assets or [])
        self.resources = {"activity_settings": settings, "activity_store": store}
        self.instance = dagster_instance()
        self.store = store

    def tick(self, at: dt.datetime | None = None, ticks: int = 1, row: bool = True) -> dict:
        """Apply the store's next ``ticks`` ticks from ``at`` (default: now) with the monitor after each.

        Returns the tick-log row of the last tick (with ``row``; else an empty dict, without reading it).
        """
        import dagster as dg

        from simulation_assets.defs.activity import SIMULATION_TAG, TICK_TAG, tick_run_config

        last, simulation, _at = self.store.head()  # type: ignore[attr-defined]
        tick = last + 1
        dg.materialize(
            self.assets,  # type: ignore[arg-type]
            resources=run_resources(self.resources),
            instance=self.instance,
            run_config={**QUIET_RUN_CONFIG, **tick_run_config(tick, at.isoformat() if at else "", ticks)},
            tags={SIMULATION_TAG: simulation, TICK_TAG: str(tick)},
            raise_on_error=True,
        )
        if not row:
            return {}
        log = self.store.tick_log(last=1)  # type: ignore[attr-defined]
        return log.to_dicts()[0]


def _validate(args: argparse.Namespace) -> float:
    interval = args.interval if args.interval is not None else (30.0 if args.dashboard else 0.0)
    if interval < 0:
        raise UsageError(f"--interval must be >= 0 seconds, got {interval}")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.ticks is not None and args.ticks <= 0:
        raise UsageError(f"--ticks must be a positive integer, got {args.ticks}")
    if args.dashboard:
        if not 1 <= args.port <= 65535:
            raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
        if interval == 0:
            raise UsageError("--interval must be > 0 with --dashboard (the dashboard ticks in real time)")
        if args.max_ticks is not None and args.max_ticks <= 0:
            raise UsageError(f"--max-ticks must be a positive integer, got {args.max_ticks}")
    elif args.max_ticks is not None:
        raise UsageError("--max-ticks only applies to --dashboard; use --ticks T instead")
    return interval


def simulate(
    ticks: int, interval: float, seed: int, output: Path, reset: bool = False, quiet: bool = False
) -> dict:
    """Apply ``ticks`` ticks (each a Dagster run), export the store's tables to ``output``; return the summary."""
    settings, cfg, store = _settings(seed)
    # Fast-forward keeps one connection to the store for the whole command (opening the DuckDB file
    # costs ~20-30 ms of CPU, six times a tick before); ticks on the clock hold it for each tick only,
    # so that between ticks other processes (a dashboard) can open the file.
    with store.held() if interval == 0 else contextlib.nullcontext():
        return _simulate(ticks, interval, seed, output, reset, quiet, settings, cfg, store)


def _simulate(
    ticks: int,
    interval: float,
    seed: int,
    output: Path,
    reset: bool,
    quiet: bool,
    settings: object,
    cfg: object,
    store: object,
) -> dict:
    from simulation_assets.sinks.activity_store import utc_now

    with store.held():  # type: ignore[attr-defined]
        if reset:
            store.reset()  # type: ignore[attr-defined]
        store.start(cfg, seed)  # type: ignore[attr-defined]
        last, _simulation, anchor = store.head()  # type: ignore[attr-defined]
        first = last + 1
    ticker = DagsterTicker(settings, store)
    started = time.perf_counter()
    with progress(min_total=2) as bar:  # one tick: its summary line, no bar
        task = bar.add_task("Activity ticks", total=ticks, visible=not quiet and interval == 0)
        if interval == 0:
            # Fast-forward: a simulated clock, tick_seconds apart; a few ticks per Dagster run.
            size = min(FAST_FORWARD_MAX_TICKS_PER_RUN, max(1, math.ceil(ticks / FAST_FORWARD_RUNS)))
            done = 0
            with InterruptWatch() as interrupts:  # a Ctrl-C during a run stops the loop after it
                while done < ticks:
                    count = min(size, ticks - done)
                    at = anchor + dt.timedelta(seconds=cfg.tick_seconds * (done + 1))  # type: ignore[attr-defined]
                    ticker.tick(at, ticks=count, row=False)  # the export reads the whole log once
                    done += count
                    bar.advance(task, count)
                    interrupts.check()
        else:
            for i in range(ticks):
                beat = time.monotonic()
                with store.held():  # type: ignore[attr-defined]
                    row = ticker.tick(utc_now())
                console.print(
                    f"🔄 tick {row['tick']}: {row['customers']} customers, +{row['api_calls']} API calls, "
                    f"{row['error_spikes']} spikes, {row['error_fixes']} fixes, "
                    f"{row['trend_changes']} trend changes"
                )
                if i + 1 < ticks:
                    time.sleep(max(0.0, interval - (time.monotonic() - beat)))
    seconds = time.perf_counter() - started
    with store.held():  # type: ignore[attr-defined]
        return export(store, output, seed, first, ticks, seconds, interval)


def export(
    store: object, output: Path, seed: int, first: int, ticks: int, seconds: float, interval: float
) -> dict:
    """Write the store's tables as Parquet and a JSON summary to ``output``; return the summary."""
    customers = store.customers()  # type: ignore[attr-defined]
    log = store.tick_log()  # type: ignore[attr-defined]
    interventions = store.interventions()  # type: ignore[attr-defined]
    files = {
        "customers": customers,
        "tick_log": log,
        "events": store.events(),  # type: ignore[attr-defined]
        "interventions": interventions,
        "monitor_checks": store.monitor_checks(),  # type: ignore[attr-defined]
    }
    for name, frame in files.items():
        frame.write_parquet(output / f"{name}.parquet")
    applied = log.filter(log["tick"] >= first)
    by_type = {}
    for row in interventions.group_by("type", "status").len().sort("type", "status").to_dicts():
        by_type.setdefault(row["type"], {})[row["status"]] = row["len"]
    summary = {
        "command": "activity",
        "seed": seed,
        "store": store.location(),  # type: ignore[attr-defined]
        "first_tick": first,
        "last_tick": int(log["tick"].max()),
        "ticks": ticks,
        "interval_seconds": interval,
        "seconds": round(seconds, 3),
        "customers": customers.height,
        "customers_by_stage": {
            r["stage"]: r["len"] for r in customers.group_by("stage").len().sort("stage").to_dicts()
        },
        "api_calls": int(applied["api_calls"].sum()),
        "new_customers": int(applied["new_customers"].sum()),
        "error_spikes": int(applied["error_spikes"].sum()),
        "error_fixes": int(applied["error_fixes"].sum()),
        "trend_changes": int(applied["trend_changes"].sum()),
        "first_api_calls": int(applied["first_api_calls"].sum()),
        "interventions_opened": interventions.height,
        "interventions_open": interventions.filter(interventions["status"] == "open").height,
        "interventions_closed": interventions.filter(interventions["status"] == "closed").height,
        "interventions_by_type": by_type,
        "files": {name: f"{name}.parquet" for name in files},
    }
    write_json(output / "summary.json", summary)
    return summary


def serve_dashboard(
    port: int, host: str, interval: float, seed: int, reset: bool = False, max_ticks: int | None = None
) -> None:
    """Serve the dashboard on ``host:port`` and apply a tick every ``interval`` seconds until interrupted."""
    import uvicorn

    from simulation_assets.activity_dashboard.app import create_app
    from simulation_assets.activity_dashboard.ticker import Ticker

    settings, cfg, store = _settings(seed)
    if reset:
        store.reset()
    store.start(cfg, seed)
    dagster_ticker = DagsterTicker(settings, store)
    ticker = Ticker(lambda: dagster_ticker.tick(), interval, max_ticks=max_ticks)
    app = create_app(store, cfg, seed, ticker=ticker, refresh_seconds=min(2.0, max(0.5, interval / 2)))
    console.print(
        f"Activity dashboard on [bold]http://{host}:{port}/[/] · a tick every {interval:g} s · "
        f"store {store.location()} · Ctrl+C to stop"
    )
    ticker.start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        ticker.stop(timeout=15.0)  # let a tick in progress finish, so its Dagster run is not left running


def _tick_range(first: int, last: int) -> str:
    return f"tick {last}" if first == last else f"ticks {first}-{last}"


def run(args: argparse.Namespace) -> int:
    """Handle ``simulate activity``."""
    interval = _validate(args)
    if args.dashboard:
        serve_dashboard(args.port, args.host, interval, args.seed, reset=args.reset, max_ticks=args.max_ticks)
        return 0
    output = prepare_output(args.output)
    summary = simulate(args.ticks, interval, args.seed, output, reset=args.reset)
    console.print(
        f"Activity: {_tick_range(summary['first_tick'], summary['last_tick'])} in {summary['seconds']} s; "
        f"{summary['customers']} customers, +{summary['api_calls']} API calls, {summary['error_spikes']} error spikes, "
        f"{summary['new_customers']} new customers; interventions {summary['interventions_open']} open, "
        f"{summary['interventions_closed']} closed"
    )
    console.print(
        f"Wrote {output}/customers, tick_log, events, interventions, monitor_checks (.parquet), summary.json"
    )
    return 0


def run_demo(root: Path) -> None:
    """Demo step: a fresh simulation of 20 fast-forwarded ticks."""
    out = prepare_output(root / "activity")
    summary = simulate(20, 0.0, 42, out, reset=True)
    console.print(
        f"Activity demo: 20 ticks, {summary['interventions_opened']} interventions opened, "
        f"{summary['interventions_closed']} closed -> {out}"
    )
