"""Per-partition cost of the fan-out units, each in a fresh process: wall seconds and peak RSS.

A deployed run is a fresh Python process (a container or a pod), so every case here is one:
the process imports the code location, materializes one partition with ``dg.materialize`` and
exits; the parent reads its wall time and peak resident memory from ``os.wait4``. The asset's own
compute time is reported next to it. Results go to benchmarks/results/deploy_capacity.json and
feed the capacity table of deploy/README.md.

    .venv/bin/python benchmarks/deploy_capacity.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "deploy_capacity.json"

CHILD = r"""
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
spec = json.loads(sys.argv[1])
t0 = time.perf_counter()
import dagster as dg
from simulation_assets.definitions import defs
imported = time.perf_counter() - t0
if spec.get("assets"):
    assets = [defs.resolve_assets_def(dg.AssetKey.from_user_string(k)) for k in spec["assets"]]
    key = spec.get("partition")
    if isinstance(key, dict):
        key = dg.MultiPartitionKey(key)
    tags = {}
    if spec.get("range"):
        tags = {"dagster/asset_partition_range_start": spec["range"][0],
                "dagster/asset_partition_range_end": spec["range"][1]}
        key = None
    t1 = time.perf_counter()
    result = dg.materialize(
        assets, partition_key=key, tags=tags,
        instance=dg.DagsterInstance.ephemeral(), selection=[dg.AssetKey.from_user_string(k) for k in spec["assets"]],
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    assert result.success
    ran = time.perf_counter() - t1
    steps = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.all_events
             if e.event_type_value == "STEP_SUCCESS"}
else:
    ran, steps = 0.0, {}
print("RESULT " + json.dumps({"import_s": imported, "run_s": ran, "steps": steps}))
"""


def run_case(spec: dict, env: dict[str, str], timeout: float = 900) -> dict:
    """Run one case in a fresh process; return wall seconds, peak RSS (MiB) and the child's timings."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            raise TimeoutError(spec)
        time.sleep(0.05)
    wall = time.perf_counter() - started
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{spec['name']} failed:\n{err[-3000:]}")
    child = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    return {
        "name": spec["name"],
        "wall_s": round(wall, 2),
        "import_s": round(child["import_s"], 2),
        "run_s": round(child["run_s"], 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),  # Linux reports KiB
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "steps_s": {k: round(v, 2) for k, v in child.get("steps", {}).items()},
    }


def cases(quick: bool, day: str, first_day: str) -> list[dict]:
    chunk = lambda table, env: {  # noqa: E731
        "name": f"warehouse {table} {env} chunk 00",
        "assets": [f"warehouse/{table}"],
        "partition": {"env": env, "part": "00"},
    }
    found = [
        {"name": "import only (per-run overhead)"},
        chunk("tap_events", "dev"),
        chunk("tap_events", "qa"),
        chunk("tap_events", "prod"),
        chunk("page_views", "prod"),
        {"name": "warehouse devices prod (unchunked)", "assets": ["warehouse/devices"], "partition": "prod"},
        {
            "name": "hogflix persona chain, 7 days in one run",
            "assets": ["hogflix_personas"],
            "range": [first_day, day],
        },
        {
            "name": "hogflix half-hourly window (sessions, events, app rows, FlixBuddy)",
            "assets": [
                "hogflix_sessions",
                "hogflix_events",
                "hogflix_app_rows",
                "hogflix_flixbuddy_conversations",
            ],
            "partition": f"{day}-12:00",
        },
        {
            "name": "hogflix one day of 48 windows in one run",
            "assets": [
                "hogflix_sessions",
                "hogflix_events",
                "hogflix_app_rows",
                "hogflix_flixbuddy_conversations",
            ],
            "range": [f"{day}-00:00", f"{day}-23:30"],
        },
        {
            "name": "power user persona x day",
            "assets": ["power_user_runs"],
            "partition": {"persona": "Weekend-Warrior-Will", "day": day},
        },
    ]
    if not quick:
        found.insert(5, chunk("feature_usage", "prod"))
        found.insert(6, chunk("user_sessions", "prod"))
    return found


WORKERS = (1, 4, 8, 16)


def project(results: list[dict]) -> dict:
    """Project a PROD warehouse backfill and a 1-year HogFlix backfill onto N workers.

    A worker is one run at a time on one dedicated core, so a run costs its measured CPU seconds
    (import + compute; wall time on this shared machine is inflated by other load).
    """
    from simulation_assets.core.warehouse import schema
    from simulation_assets.core.warehouse.config import row_counts

    by = {r["name"]: r for r in results}
    overhead = by["import only (per-run overhead)"]["cpu_s"]
    prod = row_counts("prod")

    def per_row(name: str, rows: int) -> float:
        return max(by[name]["cpu_s"] - overhead, 0.0) / rows

    tap_row = per_row("warehouse tap_events prod chunk 00", prod["tap_events"] // 40)
    others = [
        per_row(f"warehouse {t} prod chunk 00", prod[t] // schema.table(t).chunks)
        for t in ("page_views", "feature_usage", "user_sessions")
        if f"warehouse {t} prod chunk 00" in by
    ]
    other_row = sum(others) / len(others)
    small = by["warehouse devices prod (unchunked)"]["cpu_s"]
    runs = []
    for t in schema.TABLES:
        rows = prod[t.name] // t.chunks
        cost = overhead + rows * (tap_row if t.name == "tap_events" else other_row)
        runs += [max(cost, small if t.chunks == 1 else cost)] * t.chunks
    runs.sort(reverse=True)

    def makespan(costs: list[float], n: int) -> float:
        lanes = [0.0] * n
        for c in costs:  # longest first onto the least loaded worker
            lanes[lanes.index(min(lanes))] += c
        return max(lanes)

    warehouse = {
        "partitions": len(runs),
        "rows": sum(prod.values()),
        "cpu_s_total": round(sum(runs)),
        "wall_s_by_workers": {n: round(makespan(runs, n)) for n in WORKERS},
    }
    chain = by["hogflix persona chain, 7 days in one run"]
    chain_day = max(chain["cpu_s"] - overhead, 0.0) / 7
    day_run = by["hogflix one day of 48 windows in one run"]
    window_run = by["hogflix half-hourly window (sessions, events, app rows, FlixBuddy)"]
    day_compute = max(day_run["cpu_s"] - overhead, 0.0)
    events_day = day_run.get("steps_s", {}).get("hogflix_events", 0.0)
    chain_year = 365 * chain_day
    hogflix = {
        "persona_chain_s": round(chain_year),
        "traffic_run_per_day_cpu_s": round(day_run["cpu_s"], 1),
        "traffic_run_per_window_cpu_s": round(window_run["cpu_s"], 1),
        # one run per day (48 windows): 365 independent runs after the chain; the posthog pool (2)
        # bounds the events steps
        "wall_s_by_workers_day_runs": {
            n: round(chain_year + max(makespan([day_run["cpu_s"]] * 365, n), 365 * events_day / min(n, 2)))
            for n in WORKERS
        },
        # one run per window: 17,520 runs, each paying the import
        "wall_s_by_workers_window_runs": {
            n: round(chain_year + makespan([window_run["cpu_s"]] * 17_520, n)) for n in (1, 16)
        },
        # the whole range as one run (single_run policy): no fan-out
        "wall_s_single_run": round(chain_year + overhead + 365 * day_compute),
    }
    return {"per_run_overhead_cpu_s": overhead, "warehouse_prod": warehouse, "hogflix_one_year": hogflix}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer warehouse tables")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text")
    parser.add_argument("--project", action="store_true", help="only recompute projections from the JSON")
    args = parser.parse_args()
    if args.project:
        saved = json.loads(RESULTS.read_text())
        saved["projection"] = project(saved["cases"])
        RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
        print(json.dumps(saved["projection"], indent=2))
        return 0
    first_day = (dt.date.today() - dt.timedelta(days=8)).isoformat()
    day = (dt.date.today() - dt.timedelta(days=2)).isoformat()
    # --only reruns some cases and keeps the others from the last run.
    kept = json.loads(RESULTS.read_text())["cases"] if args.only and RESULTS.exists() else []
    results = [r for r in kept if args.only not in r["name"]]
    with tempfile.TemporaryDirectory(prefix="deploy-capacity-") as tmp:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(Path(tmp) / "home"),
            "SIMULATION_DATA_DIR": str(Path(tmp) / "data"),
            "HOGFLIX_START_DATE": first_day,
            "PYTHONWARNINGS": "ignore",
        }
        Path(env["DAGSTER_HOME"]).mkdir()
        for spec in cases(args.quick, day, first_day):
            if args.only and args.only not in spec["name"]:
                continue
            load = os.getloadavg()[0]
            row = run_case(spec, env) | {"load_avg_1m": round(load, 1)}
            results.append(row)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps({"cases": results, "cpus": os.cpu_count()}, indent=2) + "\n")
            print(
                f"{row['name']:<70} wall {row['wall_s']:7.2f} s  import {row['import_s']:5.2f} s  "
                f"run {row['run_s']:7.2f} s  peak {row['peak_rss_mib']:6d} MiB  (load {load:.1f})",
                flush=True,
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    saved = {"cases": results, "cpus": os.cpu_count()}
    names = {r["name"] for r in results}
    if {c["name"] for c in cases(args.quick, day, first_day)} <= names:
        saved["projection"] = project(results)
        print(json.dumps(saved["projection"], indent=2))
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
