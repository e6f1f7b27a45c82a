"""Benchmark: Monte Carlo funnel forecast and event-level cohorts.

Measured side by side in one process:
  (a) the vectorized forecast: ``replicates`` cohorts of ``impressions`` each (exact binomial chains),
  (b) the tracking plan's template logic as a per-impression Python loop, one cohort of the same size,
  (c) event-level cohorts: canonical events generated per second (and validated per second).
Prints the ratios and writes benchmarks/results/funnel.json.

Targets: (a) 10,000 replicates of 1,000,000 impressions in about a second; (a) per replicate at
least 1000x faster than (b).

    .venv/bin/python benchmarks/funnel.py [--impressions 1000000] [--replicates 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulation_assets.core.funnel.cohort import simulate_cohort_events  # noqa: E402
from simulation_assets.core.funnel.config import CohortConfig, TransitionRates  # noqa: E402
from simulation_assets.core.funnel.montecarlo import simulate_replicates  # noqa: E402
from simulation_assets.core.funnel.schema import validate_frame  # noqa: E402
from simulation_assets.core.rng import stream  # noqa: E402
from simulation_assets_tests.funnel.template_reference import reference_cohort  # noqa: E402


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=1_000_000)
    parser.add_argument("--replicates", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--template-runs", type=int, default=3)
    parser.add_argument("--event-days", type=int, default=3)
    args = parser.parse_args()
    rates = TransitionRates()

    vec_s, samples = _timed(
        lambda: simulate_replicates(args.impressions, rates, args.replicates, rng=stream(1, "bench")),
        args.repeats,
    )
    rng = random.Random(1)
    tpl_s, tpl = _timed(lambda: reference_cohort(args.impressions, rates, rng), args.template_runs)
    per_rep_vec = vec_s / args.replicates
    speedup = tpl_s / per_rep_vec

    cfg = CohortConfig()
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=d) for d in range(args.event_days)]
    simulate_cohort_events(days[0], cfg, 1, impressions=50_000)  # warm-up (imports, caches)
    start, cpu = time.perf_counter(), time.process_time()
    frames = [simulate_cohort_events(d, cfg, 1, impressions=args.impressions).events for d in days]
    gen_s, gen_cpu = time.perf_counter() - start, time.process_time() - cpu
    n_events = sum(f.height for f in frames)
    start = time.perf_counter()
    problems = [validate_frame(f) for f in frames]
    val_s = time.perf_counter() - start

    result = {
        "impressions": args.impressions,
        "replicates": args.replicates,
        "vectorized_seconds": round(vec_s, 4),
        "vectorized_replicates_per_second": round(args.replicates / vec_s, 1),
        "template_seconds_per_replicate": round(tpl_s, 4),
        "speedup_per_replicate": round(speedup, 1),
        "template_purchasers_example": tpl["purchasers"],  # type: ignore[index]
        "vectorized_purchasers_mean": float(samples["purchasers"].mean()),  # type: ignore[index]
        "event_days": args.event_days,
        "events": n_events,
        "events_seconds": round(gen_s, 3),
        "events_per_second": round(n_events / gen_s),
        "events_per_cpu_second": round(n_events / gen_cpu),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "validation_rows_per_second": round(n_events / val_s),
        "validation_problems": sum(len(p) for p in problems),
    }
    print(
        f"forecast: {args.replicates:,} replicates x {args.impressions:,} impressions in {vec_s:.3f} s "
        f"({args.replicates / vec_s:,.0f} replicates/s)"
    )
    print(f"template loop: {tpl_s:.3f} s per replicate -> vectorized is {speedup:,.0f}x faster per replicate")
    print(
        f"event-level cohorts: {n_events:,} canonical events in {gen_s:.2f} s = {n_events / gen_s:,.0f} events/s; "
        f"frame validation {n_events / val_s:,.0f} rows/s"
    )
    print(f"  ({n_events / gen_cpu:,.0f} events per CPU-second; 1-min load average {os.getloadavg()[0]:.1f})")
    out = ROOT / "benchmarks" / "results" / "funnel.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
