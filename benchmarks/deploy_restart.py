"""Repeat the deployment test's daemon restart many times and count what each restart did to the runs.

Each trial runs simulation_assets_tests/deploy/test_daemon_on_postgres.py once in a fresh process
(throwaway PostgreSQL, gRPC code server, a real daemon on deploy/dagster.yaml; the daemon gets a
SIGTERM while the backfill's runs are being launched and is started again) and reads the run
records the harness keeps in ``evidence.json``. A trial is *clean* when every backfill chunk ran
exactly once and no run of the deployment failed. For the others it records which run failed,
why (the run's engine events), and the retries that followed (``dagster/retry_number``, parent
run). ``--busy N`` keeps N extra busy-looping processes on the CPUs for the whole loop.
``--checkout DIR`` (repeatable) runs the trials of several copies of the repository in turn, e.g.
the configuration before and after a change, so that both see the same load.

    .venv/bin/python benchmarks/deploy_restart.py --trials 10 --busy 2 [--checkout DIR ...]

Results are appended to benchmarks/results/deploy_restart.json.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "deploy_restart.json"
TEST = "simulation_assets_tests/deploy/test_daemon_on_postgres.py"


def _trial(index: int, checkout: Path, basetemp: Path) -> dict:
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            TEST,
            f"--basetemp={basetemp}",
        ],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    evidence_files = sorted(basetemp.glob("deployment*/evidence.json"))
    evidence = json.loads(evidence_files[0].read_text()) if evidence_files else {"runs": []}
    runs = evidence.get("runs", [])
    backfill = evidence.get("notes", {}).get("backfill")
    chunk_runs = [r for r in runs if r["backfill"] == backfill and backfill]
    per_chunk = collections.Counter(r["partition"] for r in chunk_runs)
    failed = [r for r in runs if r["status"] == "FAILURE"]
    failed_ids = {r["run_id"] for r in failed}
    retries = [r for r in runs if r["retry_number"]]
    return {
        "trial": index,
        "checkout": str(checkout),
        "passed": proc.returncode == 0,
        "pytest": summary,
        "failed_tests": [
            line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR", "E   "))
        ][:12],
        "wall_s": round(time.monotonic() - started),
        "load_1m": round(os.getloadavg()[0], 1),
        "chunk_runs": len(chunk_runs),
        "chunks_run_twice": sorted(p for p, n in per_chunk.items() if n > 1),
        "failed_runs": [
            {k: r.get(k) for k in ("run_id", "job", "partition", "backfill", "events", "failure")}
            for r in failed
        ],
        "retries": [
            {k: r.get(k) for k in ("run_id", "job", "partition", "retry_number", "parent_run_id", "status")}
            for r in retries
        ],
        "every_retry_has_a_failed_parent": all(r["parent_run_id"] in failed_ids for r in retries),
        "dequeue_errors": [p for p in evidence.get("daemon_problems", []) if "dequeuing run" in p],
        "clean": proc.returncode == 0 and not failed and all(n == 1 for n in per_chunk.values()),
        "evidence": str(evidence_files[0]) if evidence_files else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--busy", type=int, default=0, help="extra busy-looping processes during the loop")
    parser.add_argument("--checkout", type=Path, action="append", help="repository copy to test (repeatable)")
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkout or [ROOT]]

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    folder = Path(tempfile.mkdtemp(prefix="deploy-restart-"))
    trials = []
    started = time.time()
    try:
        for index in range(args.trials):
            for number, checkout in enumerate(checkouts):
                trial = _trial(index, checkout, folder / f"trial{index}-{number}")
                trials.append(trial)
                print(
                    f"{checkout.name} trial {index}: clean={trial['clean']} ({trial['pytest']})"
                    f" twice={trial['chunks_run_twice']}"
                    f" failed={[(r['job'], r['partition']) for r in trial['failed_runs']]}"
                    f" retries={len(trial['retries'])} load={trial['load_1m']}",
                    flush=True,
                )
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    for checkout in checkouts:
        mine = [t for t in trials if t["checkout"] == str(checkout)]
        config = yaml.safe_load((checkout / "deploy" / "dagster.yaml").read_text())
        loads = [t["load_1m"] for t in mine]
        summary = {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "checkout": str(checkout),
            "run_coordinator": config["run_coordinator"]["config"],
            "max_concurrent_runs": config["concurrency"]["runs"]["max_concurrent_runs"],
            "busy_processes": args.busy,
            "trials": len(mine),
            "passed": sum(t["passed"] for t in mine),
            "clean": sum(t["clean"] for t in mine),
            "with_a_chunk_run_twice": sum(bool(t["chunks_run_twice"]) for t in mine),
            "with_a_failed_run": sum(bool(t["failed_runs"]) for t in mine),
            "every_retry_has_a_failed_parent": all(t["every_retry_has_a_failed_parent"] for t in mine),
            "load_1m_range": [min(loads, default=None), max(loads, default=None)],
            "mean_trial_s": round(sum(t["wall_s"] for t in mine) / max(len(mine), 1)),
            "wall_s": round(time.time() - started),
            "not_clean": [t for t in mine if not t["clean"]],
        }
        print(json.dumps({k: v for k, v in summary.items() if k != "not_clean"}, indent=1))
        history.append(summary)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(history, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
