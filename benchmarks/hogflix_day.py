"""Benchmark: one HogFlix day end to end through the assets, at a million personas by default.

Each phase runs in a process of its own (so its peak memory is its own), on one temporary store:

  floor      numpy drawing 10 uniforms per persona (median of --repeats): the target's unit; measured
             again last (floor_end), and the ratios use the smaller of the two (the floor swings with
             the machine's load: 0.03 s CPU when quiet, 0.3 s at load 15)
  kernel     ``step_day`` alone (median of --repeats), from the first day's stored pool
  first_day  ``hogflix_personas`` + ``hogflix_daily_metrics`` for the first day: the 150-day burn-in
             is computed and stored
  reused     the first day again in a new process: the stored burn-in is read back
  day        the next day (the previous day stored): personas + metrics through the assets, in a fresh
             process (as a Dagster run launched on its own: Dagster's first run pays its lazy imports)
  day_warm   the same day materialized again in a process that has already run it once (a long-lived
             process; re-materializing replaces the day with the same rows)
  day_core   the same work without Dagster: read the previous day, step, write (the day's table and
             its signups' identities), metrics, write
  range      ``--range-days`` days (from the day after NEXT) as one run, in a fresh process (a backfill
             is one run), beside range_short, its first ``--range-short`` days as one run the same way:
             the per-day cost inside a run is their difference over the days between. Both runs pay
             the run's own cost and their first days' first touches of memory (page faults: the
             process grows to its working set over the first 2-3 days), so the difference is what
             each further day of a long backfill costs; the range run also times each of its days at
             ``hogflix_personas``' progress record and reports their mean from its third day to the last
             but one (with the defaults 13 days holding one of the fortnightly checkpoint tables; steadier on a
             shared machine than a difference of two runs)
  traffic    that day's sessions and events, all 48 half-hour windows in one run through the assets
             (events generated and written window by window; parquet sink, no network)

Prints wall and CPU seconds (CPU of all the process's threads: steadier on a shared machine), the
ratio of each to the floor and each phase's peak RSS, and writes
benchmarks/results/hogflix_day.json. Report the load average with the figures (the machine is shared).

    .venv/bin/python benchmarks/hogflix_day.py [--personas 1000000] [--repeats 3] [--skip-traffic]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START = "2026-03-01"
NEXT = "2026-03-02"
PHASES = (
    "floor", "first_day", "kernel", "reused", "day", "day_warm", "day_core", "range_short", "range", "traffic",
    "floor_end",
)  # fmt: skip
RANGE_START = "2026-03-03"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _settings(personas: int):  # noqa: ANN202
    from simulation_assets.sinks.hogflix_state import HogflixSettings

    return HogflixSettings(seed=42, persona_pool=personas, start_date=START)


def _materialize(
    names: tuple[str, ...], first: str, last: str, personas: int, root: str
) -> tuple[float, float]:
    import dagster as dg

    from simulation_assets.defs.hogflix import build_defs, hogflix_resources
    from simulation_assets.sinks.app_db import DuckDBAppDatabase
    from simulation_assets.sinks.local_store import LocalParquetStore

    os.environ.setdefault("PH_PROJECT_API_KEY", "phc_benchmark")
    defs = build_defs(START, "2026-03-31")
    assets = [a for a in defs.assets if a.key.to_user_string() in names]  # type: ignore[union-attr]
    resources = {
        **hogflix_resources(),
        "hogflix_settings": _settings(personas),
        "store": LocalParquetStore(root_dir=root),
        "hogflix_app_db": DuckDBAppDatabase(duckdb_path=str(Path(root) / "app.duckdb")),
    }
    started, cpu = time.perf_counter(), time.process_time()
    result = dg.materialize(
        assets,
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if not result.success:
        raise SystemExit(f"materializing {names} failed")
    return seconds, cpu


class _DayMarks(logging.Handler):
    """Notes the process's CPU and wall clocks each time ``hogflix_personas`` reports a day done (its
    progress log), so a range run gives each of its days' cost from inside the run."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[float, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "asset", None) == "hogflix_personas":
            self.marks.append((time.process_time(), time.perf_counter()))

    def steady(self, skip: int = 2) -> dict:
        """Return the mean CPU and wall seconds between consecutive days, after the first ``skip`` days
        (which pay the process's first touches of memory) and before the last (which stores its full
        table and the run's summary: a cost per run, not per day), with the median beside them. Each
        day's background write of a stored day before it runs inside an interval, so the mean carries
        the checkpoint tables' writes (``HogflixSettings.checkpoint_days``)."""
        gaps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(self.marks, self.marks[1:])][skip:-1]
        if not gaps:
            return {}
        return {
            "days": len(gaps),
            "cpu_seconds": round(statistics.mean(g[0] for g in gaps), 4),
            "seconds": round(statistics.mean(g[1] for g in gaps), 4),
            "cpu_median": round(statistics.median(g[0] for g in gaps), 4),
            "cpu_each": [round(g[0], 3) for g in gaps],
        }


def run_phase(
    phase: str, personas: int, repeats: int, root: str, range_days: tuple[int, int] = (3, 17)
) -> dict:
    """Run one phase in this process; return its seconds and peak RSS."""
    import numpy as np
    import polars as pl

    lifecycle = ("hogflix_personas", "hogflix_daily_metrics")
    if phase in ("floor", "floor_end"):
        g = np.random.default_rng(0)
        times, cpus = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            g.random((10, personas))
            times.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        seconds, cpu = statistics.median(times), statistics.median(cpus)
    elif phase == "kernel":
        from simulation_assets.core.hogflix.frames import from_frame
        from simulation_assets.core.hogflix.lifecycle import step_day
        from simulation_assets.core.hogflix.persona_state import day_number
        from simulation_assets.sinks.local_store import LocalParquetStore

        settings = _settings(personas)
        store = LocalParquetStore(root_dir=root)
        state = from_frame(store.read(settings.dataset("personas"), START))
        cfg, day = settings.lifecycle(), day_number(dt.date.fromisoformat(NEXT))
        times, cpus = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            step_day(state, day, cfg, settings.seed)
            times.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        seconds, cpu = statistics.median(times), statistics.median(cpus)
    elif phase in ("first_day", "reused"):
        seconds, cpu = _materialize(lifecycle, START, START, personas, root)
    elif phase == "day":
        seconds, cpu = _materialize(lifecycle, NEXT, NEXT, personas, root)
    elif phase in ("range", "range_short"):
        days = range_days[1] if phase == "range" else range_days[0]
        last = (dt.date.fromisoformat(RANGE_START) + dt.timedelta(days=days - 1)).isoformat()
        marks = _DayMarks()
        progress = logging.getLogger("simulation_assets.progress")
        progress.addHandler(marks)
        progress.setLevel(logging.INFO)
        seconds, cpu = _materialize(lifecycle, RANGE_START, last, personas, root)
        return {
            "seconds": round(seconds, 4),
            "cpu_seconds": round(cpu, 4),
            "peak_rss_mb": round(_peak_mb(), 1),
            "steady_days": marks.steady(),
        }
    elif phase == "day_warm":
        _materialize(lifecycle, NEXT, NEXT, personas, root)
        seconds, cpu = _materialize(lifecycle, NEXT, NEXT, personas, root)
    elif phase == "day_core":
        # The same day's work without Dagster's run machinery: read yesterday, step, write, metrics.
        from simulation_assets.core.hogflix.frames import from_frame
        from simulation_assets.core.hogflix.lifecycle import step_day
        from simulation_assets.core.hogflix.metrics import METRICS_INPUT_COLUMNS, daily_metrics
        from simulation_assets.core.hogflix.persona_state import day_number
        from simulation_assets.sinks.hogflix_state import HogflixSettings, write_day
        from simulation_assets.sinks.local_store import LocalParquetStore

        settings, store = _settings(personas), LocalParquetStore(root_dir=root)
        cfg, date = settings.lifecycle(), dt.date.fromisoformat(NEXT)
        # Another scenario's folder (another seed) for the output, so the "day" phase's files stay.
        target = HogflixSettings(seed=43, persona_pool=personas, start_date=START)
        started, cpu = time.perf_counter(), time.process_time()
        state = from_frame(store.read(settings.dataset("personas"), START))
        first = state.next_number
        write_day(target, store, step_day(state, day_number(date), cfg, settings.seed), first)
        columns = pl.read_parquet(
            store.path(target.dataset("personas"), NEXT), columns=list(METRICS_INPUT_COLUMNS)
        )
        store.write(
            target.dataset("daily_metrics"), NEXT, daily_metrics(columns, date, cfg.pattern_assignment_day)
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    elif phase == "traffic":
        seconds, cpu = _materialize(
            ("hogflix_sessions", "hogflix_events"), f"{NEXT}-00:00", f"{NEXT}-23:30", personas, root
        )
        events = Path(root) / _settings(personas).dataset("events")
        rows = pl.scan_parquet(str(events / f"{NEXT}-*.parquet")).select(pl.len()).collect().item()
        return {
            "seconds": round(seconds, 4),
            "cpu_seconds": round(cpu, 4),
            "peak_rss_mb": round(_peak_mb(), 1),
            "events": rows,
        }
    else:
        raise SystemExit(f"unknown phase {phase!r}; valid: {PHASES}")
    return {"seconds": round(seconds, 4), "cpu_seconds": round(cpu, 4), "peak_rss_mb": round(_peak_mb(), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--personas", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-traffic", action="store_true")
    parser.add_argument(
        "--range-days", type=int, default=17, help="days of the range phase (one run): 3 + two whole weeks"
    )
    parser.add_argument("--range-short", type=int, default=3, help="days of the range_short phase")
    parser.add_argument("--phases", help="comma-separated phases to run (default: all but range*)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "hogflix_day.json"))
    args = parser.parse_args()
    if args.phase:
        days = (args.range_short, args.range_days)
        print(json.dumps(run_phase(args.phase, args.personas, args.repeats, args.root, days)))
        return
    phases = [
        "floor",
        "first_day",
        "kernel",
        "reused",
        "day",
        "day_warm",
        "day_core",
        "traffic",
    ]  # kernel reads the first day
    if args.phases:
        phases = [p for p in PHASES if p in args.phases.split(",")]
    if args.skip_traffic and "traffic" in phases:
        phases.remove("traffic")
    if "floor_end" not in phases:
        phases.append("floor_end")
    results: dict[str, dict] = {}
    # --root keeps the store (and its stored burn-in) for a later run; by default a temporary one.
    with tempfile.TemporaryDirectory(prefix="hogflix-day-") as tmp:
        root = args.root or tmp
        env = {**os.environ, "DAGSTER_HOME": root}
        for phase in phases:
            out = subprocess.run(
                [sys.executable, __file__, "--phase", phase, "--personas", str(args.personas),
                 "--repeats", str(args.repeats), "--root", root, "--range-days", str(args.range_days),
                 "--range-short", str(args.range_short)],
                check=True, capture_output=True, text=True, env=env,
            )  # fmt: skip
            results[phase] = json.loads(out.stdout.strip().splitlines()[-1])
            r, floor = (
                results[phase],
                min(
                    (results[k] for k in ("floor", "floor_end") if k in results),
                    key=lambda f: f["cpu_seconds"],
                ),
            )
            print(
                f"{phase:>10}: {r['seconds']:8.3f} s wall ({r['seconds'] / floor['seconds']:7.1f} x floor), "
                f"{r['cpu_seconds']:8.3f} s CPU ({r['cpu_seconds'] / max(floor['cpu_seconds'], 1e-9):7.1f} x), "
                f"peak RSS {r['peak_rss_mb']:8.1f} MB",
                flush=True,
            )
    floor = min(results["floor"], results["floor_end"], key=lambda f: f["cpu_seconds"])
    summary = {
        "personas": args.personas,
        "load_average": os.getloadavg(),
        "phases": results,
        "cpu_ratios_to_floor": {
            k: round(v["cpu_seconds"] / floor["cpu_seconds"], 1) for k, v in results.items()
        },
        "wall_ratios_to_floor": {k: round(v["seconds"] / floor["seconds"], 1) for k, v in results.items()},
        "target": "a day end to end (personas + metrics) <= 10 x floor",
    }
    if "day" in results:
        summary["day_meets_target"] = results["day"]["cpu_seconds"] <= 10 * floor["cpu_seconds"]
    if "range" in results and "range_short" in results and args.range_days > args.range_short:
        per_day = {
            k: (results["range"][k] - results["range_short"][k]) / (args.range_days - args.range_short)
            for k in ("seconds", "cpu_seconds")
        }
        summary["per_day_in_range"] = {
            "days": args.range_days,
            "short_days": args.range_short,
            "seconds": round(per_day["seconds"], 4),
            "cpu_seconds": round(per_day["cpu_seconds"], 4),
            "cpu_x_floor": round(per_day["cpu_seconds"] / floor["cpu_seconds"], 1),
            "peak_rss_mb": results["range"]["peak_rss_mb"],
            "meets_target": per_day["cpu_seconds"] <= 10 * floor["cpu_seconds"],
        }
        print(
            f"per day inside a run (its days {args.range_short + 1}-{args.range_days}): "
            f"{json.dumps(summary['per_day_in_range'])}"
        )
    if results.get("range", {}).get("steady_days"):
        steady = results["range"]["steady_days"]
        summary["per_day_in_range_steady"] = {
            **steady,
            "cpu_x_floor": round(steady["cpu_seconds"] / floor["cpu_seconds"], 1),
            "meets_target": steady["cpu_seconds"] <= 10 * floor["cpu_seconds"],
        }
        print(
            f"per day inside the {args.range_days}-day run, mean between its days (days 4 to the last but one): "
            f"{json.dumps(summary['per_day_in_range_steady'])}"
        )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    print(
        json.dumps({k: summary.get(k) for k in ("cpu_ratios_to_floor", "day_meets_target", "load_average")})
    )


if __name__ == "__main__":
    main()
