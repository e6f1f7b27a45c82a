"""Benchmark: HogFlix browser sessions in headless Chromium, one context at a time vs a pool.

The same planned sessions (a share of one simulated day at pool 400) are played against the
reference web app on loopback (a) with one browser context at a time and (b) with a pool of
``--concurrency`` contexts, each run from fresh persona storage. Prints sessions per minute,
events per second received by the capture endpoint, how much faster than real time the sessions
are replayed (simulated seconds per real second), and the pool's speed-up; writes
benchmarks/results/hogflix_browser.json.

    .venv/bin/python benchmarks/hogflix_browser.py [--share 0.06] [--concurrency 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulation_assets.core.hogflix.sessions import day_window_keys  # noqa: E402
from simulation_assets.core.hogflix.traffic_config import TrafficConfig  # noqa: E402
from simulation_assets.defs.hogflix_browser import select_browser_sessions  # noqa: E402
from simulation_assets.sinks.browser_bot import BrowserBot  # noqa: E402
from simulation_assets.sinks.hogflix_state import HogflixSettings, TrafficReader  # noqa: E402
from simulation_assets.sinks.local_store import LocalParquetStore  # noqa: E402
from simulation_assets.target.server import LocalTarget, build_app  # noqa: E402
from simulation_assets.webapp.app import WebAppConfig, create_app, require_sdk  # noqa: E402
from simulation_assets.webapp.capture import CaptureLog  # noqa: E402


def _play(items: list, concurrency: int, work: Path) -> dict:
    log = CaptureLog()
    bot = BrowserBot(concurrency=concurrency)
    with LocalTarget(app=build_app({"/hogflix": lambda: create_app(WebAppConfig(), log)})) as target:
        started = time.perf_counter()
        report = bot.run(target.base_url + "/hogflix", items, work / "state", work / "shots")
        seconds = time.perf_counter() - started
    simulated = sum(max((s["at_ms"] for s in i.steps), default=0) for i in items) / 1000
    return {
        "concurrency": concurrency,
        "sessions": len(report.sessions),
        "failed": sum(not s.ok for s in report.sessions),
        "steps": sum(s.steps for s in report.sessions),
        "pages": sum(s.pages for s in report.sessions),
        "events": len(log.events),
        "seconds": round(seconds, 2),
        "sessions_per_minute": round(60 * len(report.sessions) / seconds, 2),
        "events_per_second": round(len(log.events) / seconds, 1),
        "simulated_seconds_per_real_second": round(simulated / seconds, 1),
        "max_concurrent": report.max_concurrent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", type=float, default=0.06)
    parser.add_argument("--concurrency", type=int, default=3)
    args = parser.parse_args()
    require_sdk()
    work = Path(tempfile.mkdtemp(prefix="hogflix-browser-bench-"))
    os.environ["SIMULATION_DATA_DIR"] = str(work / "data")
    settings = HogflixSettings(seed=42, persona_pool=400, start_date="2026-01-01")
    reader = TrafficReader(settings, TrafficConfig(), LocalParquetStore())
    items = []
    for key in day_window_keys(dt.date(2026, 1, 1)):
        items += select_browser_sessions(
            reader.window_sessions(key), reader.stored_or_events(key), args.share, 42, TrafficConfig().host
        )
    print(f"{len(items)} browser sessions ({args.share:.0%} of 2026-01-01 at pool 400)")
    one = _play(items, 1, work / "one")
    pool = _play(items, args.concurrency, work / "pool")
    result = {"share": args.share, "one_context": one, "pool": pool,
              "pool_speedup": round(one["seconds"] / pool["seconds"], 2)}  # fmt: skip
    for row in (one, pool):
        print(
            f"contexts {row['concurrency']}: {row['sessions']} sessions ({row['failed']} failed), {row['pages']} pages, "
            f"{row['events']} events in {row['seconds']} s -> {row['sessions_per_minute']} sessions/min, "
            f"{row['events_per_second']} events/s, {row['simulated_seconds_per_real_second']}x real time"
        )
    print(f"pool of {args.concurrency} vs one context: {result['pool_speedup']}x")
    out = ROOT / "benchmarks" / "results" / "hogflix_browser.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
