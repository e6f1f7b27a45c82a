"""``simulate hogflix``: run the persona lifecycle for a number of days and export the results."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shutil
import time
from pathlib import Path

import polars as pl

from simulation_assets.commands.common import (
    UsageError,
    chunks,
    console,
    dagster_instance,
    iso_date,
    materialize_range,
    positive_int,
    prepare_output,
    progress,
    write_json,
)
from simulation_assets.defs.partitions import DEFAULT_START_DATE

DEMO_ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``hogflix`` sub-command."""
    p = sub.add_parser("hogflix", help="simulate the HogFlix persona pool day by day")
    p.add_argument("--days", type=int, required=True, help="number of days to simulate (> 0)")
    p.add_argument("--pool", type=int, default=400, help="target persona pool (default 400, PERSONA_POOL)")
    p.add_argument("--seed", type=int, default=42, help="global random seed (default 42)")
    p.add_argument(
        "--start", default=DEFAULT_START_DATE, help=f"first day, YYYY-MM-DD (default {DEFAULT_START_DATE})"
    )
    p.add_argument("--output", default="output/hogflix", help="folder for the results")
    p.set_defaults(handler=run)


def simulate(days: int, pool: int, seed: int, start: dt.date, output: Path, quiet: bool = False) -> dict:
    """Materialize the lifecycle assets for ``days`` days from ``start``; write exports; return the summary."""
    from simulation_assets.defs.hogflix import HogflixSettings, build_defs
    from simulation_assets.sinks.local_store import LocalParquetStore

    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    end = start + dt.timedelta(days=days)
    try:
        settings = HogflixSettings(seed=seed, persona_pool=pool, start_date=start.isoformat())
        settings.lifecycle()
    except ValueError as exc:
        raise UsageError(f"invalid HogFlix configuration: {exc}") from None
    store = LocalParquetStore()
    defs = build_defs(start.isoformat(), end.isoformat())
    assets = list(defs.assets or [])
    resources = {"hogflix_settings": settings, "store": store}
    keys = [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]
    instance = dagster_instance()
    started = time.perf_counter()
    size = max(1, math.ceil(days / 20))
    with progress() as bar:
        task = bar.add_task(f"HogFlix lifecycle, pool {pool}", total=days, visible=not quiet)
        for part in chunks(keys, size):
            materialize_range(assets, resources, part[0], part[-1], instance)
            bar.advance(task, len(part))
    seconds = time.perf_counter() - started

    personas_src = store.path(settings.dataset("personas"), keys[-1])
    shutil.copyfile(personas_src, output / "personas.parquet")
    metrics = store.read_many(settings.dataset("daily_metrics"), keys).sort("date")
    metrics.write_parquet(output / "daily_metrics.parquet")
    last = pl.read_parquet(output / "personas.parquet")
    summary = {
        "command": "hogflix",
        "seed": seed,
        "persona_pool": pool,
        "start": keys[0],
        "end": keys[-1],
        "days": days,
        "scenario": settings.scenario(),
        "seconds": round(seconds, 3),
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
    write_json(output / "summary.json", summary)
    return summary


def run(args: argparse.Namespace) -> int:
    """Handle ``simulate hogflix``."""
    days = positive_int("--days", args.days)
    pool = positive_int("--pool", args.pool)
    start = iso_date("--start", args.start)
    output = prepare_output(args.output)
    summary = simulate(days, pool, args.seed, start, output)
    console.print(
        f"HogFlix: {summary['days']} days from {summary['start']} to {summary['end']} in {summary['seconds']} s; "
        f"pool {summary['pool_min']}-{summary['pool_max']}, signups {summary['signups_min']}-{summary['signups_max']}/day, "
        f"{summary['mean_active_today']} active/day, ACTIVE share {summary['mean_active_share']:.1%}"
    )
    console.print(f"Wrote {output}/personas.parquet, daily_metrics.parquet, summary.json")
    return 0


def run_demo(root: Path) -> None:
    """Demo step: 30 days at pool 400."""
    out = prepare_output(root / "hogflix")
    summary = simulate(30, 400, 42, dt.date.fromisoformat(DEFAULT_START_DATE), out)
    console.print(f"HogFlix demo: 30 days, pool {summary['pool_min']}-{summary['pool_max']} -> {out}")
