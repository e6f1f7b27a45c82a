"""Benchmark: the activity tick, vectorized, against a per-customer Python loop and the cost of its random draws.

Measured side by side in one process:
  (a) ``step_tick`` on ``--customers`` customers (all five behaviours, the events and the tick-log row),
  (b) numpy drawing the ten uniforms per customer a tick consumes (the floor),
  (c) the same five behaviours as a per-customer Python loop returning a state frame and the event messages
      (on ``--loop-customers``, scaled per customer),
  (d) a full tick plus monitor check through the DuckDB store, for the default pool and for ``--store-customers``.
Prints the ratios and writes benchmarks/results/activity_tick.json.

    .venv/bin/python benchmarks/activity_tick.py [--customers 1000000] [--loop-customers 50000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulation_assets.core.activity.config import ActivityConfig  # noqa: E402
from simulation_assets.core.activity.customers import initial_customers, step_tick  # noqa: E402
from simulation_assets.core.rng import stream  # noqa: E402
from simulation_assets.sinks.activity_backends import DuckDBActivityStore  # noqa: E402

AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _timed(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loop_tick(rows: list[dict], cfg: ActivityConfig, rng: random.Random, tick: int) -> list[str]:
    """The five behaviours one customer at a time (the straightforward script a simulator starts as)."""
    mult = dict(zip(("declining", "stable", "increasing"), cfg.trend_call_multiplier))
    change = dict(zip(("declining", "stable", "increasing"), cfg.trend_change_probability))
    low, high = int(cfg.api_calls_per_tick.low), int(cfg.api_calls_per_tick.high)
    events = []
    for c in rows:
        stage = c["stage"]
        if stage == "NEW" and rng.random() < cfg.subscribe_probability:
            c["stage"], c["plan"], c["stage_since_tick"] = "ONBOARDING", "trial", tick
            events.append(f"📝 {c['name']}: started a trial, onboarding begins")
        elif stage == "ONBOARDING" and rng.random() < cfg.first_call_probability:
            calls = rng.randint(low, high)
            c["stage"], c["stage_since_tick"] = "ACTIVE", tick
            c["total_api_calls"] += calls
            events.append(f"🎉 {c['name']}: first API call, onboarding complete")
        elif stage == "ACTIVE":
            if rng.random() < cfg.api_call_probability:
                calls = max(1, round(rng.randint(low, high) * mult[c["usage_trend"]]))
                c["total_api_calls"] += calls
                c["last_api_call_at"] = AT
                events.append(f"📞 {c['name']}: +{calls} API calls (total: {c['total_api_calls']})")
            if rng.random() < cfg.error_spike_probability:
                before = c["error_rate"]
                c["error_rate"] = min(
                    before + rng.uniform(cfg.error_spike_size.low, cfg.error_spike_size.high),
                    cfg.max_error_rate,
                )
                events.append(f"🚨 {c['name']}: error rate spike {before:.1%} → {c['error_rate']:.1%}")
            elif c["error_rate"] > cfg.baseline_error_rate.high and rng.random() < cfg.error_fix_probability:
                c["error_rate"] = rng.uniform(cfg.baseline_error_rate.low, cfg.baseline_error_rate.high)
            if rng.random() < change[c["usage_trend"]]:
                c["usage_trend"] = (
                    "stable" if c["usage_trend"] != "stable" else rng.choice(["increasing", "declining"])
                )
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--loop-customers", type=int, default=50_000)
    parser.add_argument("--store-customers", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    cfg = ActivityConfig(initial_customers=args.customers)
    pool = initial_customers(cfg, 1, AT)
    vec_s = _timed(lambda: step_tick(pool, 1, cfg, 1, AT), args.repeats)
    draw_s = _timed(lambda: stream(1, "activity", "tick", 1).random((args.customers, 10)), args.repeats)

    rows = initial_customers(ActivityConfig(initial_customers=args.loop_customers), 1, AT).to_dicts()
    # The loop has to hand the same outputs on: a state frame and the event messages.
    loop_s = _timed(
        lambda: (pl.DataFrame(rows), pl.DataFrame({"message": loop_tick(rows, cfg, random.Random(1), 1)})),
        args.repeats,
    )
    loop_per_customer = loop_s / args.loop_customers
    vec_per_customer = vec_s / args.customers

    store_small_s, store_large_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n, sink in (
            (ActivityConfig().initial_customers, store_small_s),
            (args.store_customers, store_large_s),
        ):
            store = DuckDBActivityStore(duckdb_path=f"{tmp}/bench-{n}.duckdb")
            store_cfg = ActivityConfig(initial_customers=n)
            store.start(store_cfg, 1, AT)
            for tick in range(1, 6):
                start = time.perf_counter()
                store.apply_tick(store_cfg, 1, AT + dt.timedelta(seconds=30 * tick))
                store.run_monitor(store_cfg, "bench")
                sink.append(time.perf_counter() - start)

    result = {
        "customers": args.customers,
        "vectorized_tick_s": round(vec_s, 4),
        "vectorized_ns_per_customer": round(vec_per_customer * 1e9, 1),
        "uniform_draws_s": round(draw_s, 4),
        "tick_over_draws": round(vec_s / draw_s, 2),
        "loop_customers": args.loop_customers,
        "loop_ns_per_customer": round(loop_per_customer * 1e9, 1),
        "vectorized_speedup_over_loop": round(loop_per_customer / vec_per_customer, 1),
        "duckdb_tick_and_check_s_default_pool": round(statistics.median(store_small_s), 4),
        "duckdb_tick_and_check_s_large_pool": round(statistics.median(store_large_s), 4),
        "store_customers": args.store_customers,
    }
    print(
        f"vectorized tick, {args.customers:,} customers: {vec_s:.3f} s ({result['vectorized_ns_per_customer']} ns/customer)"
    )
    print(
        f"  numpy draws of its 10 uniforms/customer: {draw_s:.3f} s -> tick is {result['tick_over_draws']}x the draws"
    )
    print(
        f"per-customer Python loop: {result['loop_ns_per_customer']} ns/customer -> vectorized is "
        f"{result['vectorized_speedup_over_loop']}x faster"
    )
    print(
        f"DuckDB store, tick + monitor check: {result['duckdb_tick_and_check_s_default_pool'] * 1000:.0f} ms "
        f"(default pool of 12), {result['duckdb_tick_and_check_s_large_pool'] * 1000:.0f} ms ({args.store_customers:,} customers)"
    )
    out = ROOT / "benchmarks" / "results" / "activity_tick.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
