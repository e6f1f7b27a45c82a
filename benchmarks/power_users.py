"""Power-user runner vs Locust: request rate and latency against the same reference target, same run.

The reference target is served in its own process (``simulate target serve`` on a free loopback
port). Then, in alternating rounds, the same number of users hit the same endpoint for the same
duration with (a) this project's runner (httpx client on its HTTP/1.1 transport, one asyncio loop),
(b) ``locust --headless`` with ``HttpUser`` (Locust's standard user class) and (c) with
``FastHttpUser``. Prints requests/s, error rate, p50/p95/p99 latency and client CPU per request
(medians over the rounds), the ratios, and writes
``benchmarks/results/power_users.json``. A second measurement runs the runner and each Locust
class at the same time against the target ("same window"), which cancels the second-to-second
load changes of a shared machine. The target runs on the last CPU and every client on the others
(``--no-pin`` leaves placement to the scheduler).

    .venv/bin/python benchmarks/power_users.py [--users 10] [--duration 8] [--rounds 3] [--path /api/v1/pricing] [--no-pin]
    .venv/bin/python benchmarks/power_users.py --shape [--start 40 --step 40 --every 6 --steps 4] [--rounds 3]

``--shape`` runs one load shape with the runner's open model and with Locust's ``LoadTestShape``
instead (``benchmarks/power_users_shape.py``; results in ``benchmarks/results/power_users_shape.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "power_users.json"
LOCUST = Path(sys.executable).with_name("locust")
CLIENT_CPUS: set[int] | None = None  # set by main(); Locust runs on the same CPUs as the runner

LOCUSTFILE = """
from locust import FastHttpUser, HttpUser, constant, task

PATH = {path!r}


class StandardUser(HttpUser):
    wait_time = constant(0)

    @task
    def hit(self):
        self.client.get(PATH)


class FastUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def hit(self):
        self.client.get(PATH)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_split(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """Return (target CPUs, client CPUs): the last CPU for the target, the others for the clients.

    Every client then meets the same placement; left to the scheduler, a client and the target
    were often packed onto one core on the reference machine, which halved one tool's rate and
    not another's from one run to the next.
    """
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def _pinned(cpus: set[int] | None):  # noqa: ANN202
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def start_target(port: int, cpus: set[int] | None = None) -> subprocess.Popen:
    """Start ``simulate target serve`` on 127.0.0.1:``port`` (on ``cpus``) and wait for /health."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulation_assets.cli", "target", "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_pinned(cpus),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("reference target did not start")


def run_runner(base_url: str, users: int, duration: float, path: str) -> dict:
    """Measure the project's runner (same client and transport as scenario runs)."""
    from simulation_assets.sinks.power_users_http import run_async
    from simulation_assets.sinks.power_users_load import load_loop

    before = resource.getrusage(resource.RUSAGE_SELF)
    out = run_async(load_loop(base_url, users, duration, path))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lat = np.array(out["latencies_ms"])
    return {
        "requests": out["requests"],
        "errors": out["errors"],
        "requests_per_second": out["requests"] / out["seconds"],
        "error_rate": out["errors"] / max(out["requests"], 1),
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "client_cpu_us_per_request": cpu / max(out["requests"], 1) * 1e6,
    }


def _locust_command(
    locustfile: Path, user_class: str, users: int, seconds: int, base_url: str, csv_prefix: Path
) -> list[str]:
    """Return a headless Locust command: ``users`` users spawned at once, CSV stats under ``csv_prefix``."""
    return [
        str(LOCUST), "-f", str(locustfile), user_class, "--headless", "-u", str(users), "-r", str(users),
        "-t", f"{seconds}s", "-H", base_url, "--only-summary", "--csv", str(csv_prefix), "--loglevel", "ERROR",
    ]  # fmt: skip


def _locust_process() -> dict:
    """Return how a Locust process is started: quiet, on the clients' CPUs."""
    return {
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
        "env": {**os.environ, "PYTHONWARNINGS": "ignore"},
        "preexec_fn": _pinned(CLIENT_CPUS),
    }


def run_locust(base_url: str, users: int, duration: float, user_class: str, locustfile: Path) -> dict:
    """Run ``locust --headless`` for ``duration`` seconds and read its aggregated CSV row."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "stats"
        subprocess.run(
            _locust_command(locustfile, user_class, users, int(duration), base_url, prefix)
            + ["--stop-timeout", "2"],
            check=False,
            timeout=duration + 60,
            **_locust_process(),
        )
        with open(f"{prefix}_stats.csv", newline="") as fh:
            row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    count, failures = int(row["Request Count"]), int(row["Failure Count"])
    return {
        "requests": count,
        "errors": failures,
        "requests_per_second": float(row["Requests/s"]),
        "error_rate": failures / max(count, 1),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
        # includes Locust's start-up (imports, gevent patching): an upper bound
        "client_cpu_us_per_request": cpu / max(count, 1) * 1e6,
    }


def head_to_head(
    base_url: str, users: int, duration: float, path: str, user_class: str, locustfile: Path
) -> dict:
    """Run this runner and Locust against the target at the same time; return both rates in that window.

    On a shared machine the load from other processes changes from second to second; measured in the
    same window, both clients meet the same conditions. Locust runs first (its start-up takes a few
    seconds), the runner starts once every Locust user is spawned, and Locust's rate is read from its
    per-second history over the runner's window.
    """
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "h2h"
        history = Path(f"{prefix}_stats_history.csv")
        proc = subprocess.Popen(
            _locust_command(locustfile, user_class, users, int(duration) + 8, base_url, prefix)
            + ["--csv-full-history"],
            **_locust_process(),
        )
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                rows = _aggregated(history)
                if any(int(r["User Count"]) == users for r in rows):
                    break
                time.sleep(0.2)
            time.sleep(1.0)
            start = time.time()
            runner = run_runner(base_url, users, duration, path)
            end = time.time()
            proc.wait(timeout=duration + 60)
        finally:
            if proc.poll() is None:
                proc.kill()
        rows = [r for r in _aggregated(history) if start <= int(r["Timestamp"]) + 0.5 <= end]
    if len(rows) < 2:
        raise RuntimeError("Locust's history does not cover the runner's window; raise --duration")
    first, last = rows[0], rows[-1]
    seconds = int(last["Timestamp"]) - int(first["Timestamp"])
    count = int(last["Total Request Count"]) - int(first["Total Request Count"])
    failures = int(last["Total Failure Count"]) - int(first["Total Failure Count"])
    return {
        "runner_requests_per_second": runner["requests_per_second"],
        "runner_error_rate": runner["error_rate"],
        "locust_requests_per_second": count / seconds,
        "locust_error_rate": failures / max(count, 1),
        "window_seconds": seconds,
    }


def _aggregated(history: Path) -> list[dict]:
    if not history.exists():
        return []
    with history.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if r.get("Name") == "Aggregated"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement (<= 60)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds, medians reported (<= 7)")
    parser.add_argument("--path", default="/api/v1/pricing")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place target and clients")
    shape = parser.add_argument_group("--shape: one load shape, runner vs Locust LoadTestShape")
    shape.add_argument("--shape", action="store_true", help="compare on a staircase of arrival rates instead")
    shape.add_argument("--start", type=float, default=40.0, help="first stair, requests/s")
    shape.add_argument("--step", type=float, default=40.0, help="requests/s added per stair")
    shape.add_argument("--every", type=float, default=6.0, help="seconds per stair")
    shape.add_argument("--steps", type=int, default=4, help="stairs after the first")
    args = parser.parse_args()
    duration, rounds = min(args.duration, 60.0), min(max(args.rounds, 1), 7)
    global CLIENT_CPUS
    target_cpus, CLIENT_CPUS = cpu_split(not args.no_pin)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    target = start_target(port, target_cpus)
    if CLIENT_CPUS:
        os.sched_setaffinity(0, CLIENT_CPUS)
    print(
        f"target on CPUs {sorted(target_cpus) if target_cpus else 'any'}, clients on {sorted(CLIENT_CPUS or []) or 'any'}"
    )
    if args.shape:
        from power_users_shape import compare

        args.rounds = rounds
        try:
            return compare(base_url, args, LOCUST, _locust_process(), RESULTS.parent)
        finally:
            target.terminate()
            target.wait(timeout=10)
    tools: dict[str, list[dict]] = {"runner": [], "locust_httpuser": [], "locust_fasthttpuser": []}
    duels: dict[str, list[dict]] = {"httpuser": [], "fasthttpuser": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            locustfile = Path(tmp) / "locustfile.py"
            locustfile.write_text(LOCUSTFILE.format(path=args.path))
            measure = {
                "runner": lambda: run_runner(base_url, args.users, duration, args.path),
                "locust_httpuser": lambda: run_locust(
                    base_url, args.users, duration, "StandardUser", locustfile
                ),
                "locust_fasthttpuser": lambda: run_locust(
                    base_url, args.users, duration, "FastUser", locustfile
                ),
            }
            for r in range(rounds):
                # Alternate the order so no tool always runs first (warm-up) or last.
                order = list(measure) if r % 2 == 0 else list(reversed(measure))
                for name in order:
                    tools[name].append(measure[name]())
                for name, runs in tools.items():
                    m = runs[-1]
                    print(
                        f"round {r + 1} {name:<20} {m['requests_per_second']:>8.0f} req/s  "
                        f"errors {m['error_rate']:.2%}  p50 {m['p50_ms']:.1f} ms  p95 {m['p95_ms']:.1f} ms  "
                        f"p99 {m['p99_ms']:.1f} ms  client CPU {m['client_cpu_us_per_request']:.0f} us/req",
                        flush=True,
                    )
            for r in range(rounds):
                for label, user_class in (("httpuser", "StandardUser"), ("fasthttpuser", "FastUser")):
                    h = head_to_head(base_url, args.users, duration, args.path, user_class, locustfile)
                    duels[label].append(h)
                    print(
                        f"same window {r + 1} runner {h['runner_requests_per_second']:>8.0f} req/s vs Locust "
                        f"{label} {h['locust_requests_per_second']:>8.0f} req/s "
                        f"(errors {h['runner_error_rate']:.2%} / {h['locust_error_rate']:.2%})",
                        flush=True,
                    )
    finally:
        target.terminate()
        target.wait(timeout=10)
    median = {
        name: {k: statistics.median(run[k] for run in runs) for k in runs[0]} for name, runs in tools.items()
    }
    ratios = {
        "runner_vs_locust_httpuser": median["runner"]["requests_per_second"]
        / median["locust_httpuser"]["requests_per_second"],
        "runner_vs_locust_fasthttpuser": median["runner"]["requests_per_second"]
        / median["locust_fasthttpuser"]["requests_per_second"],
    }
    print()
    print(f"{'tool':<22}{'req/s':>10}{'err %':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}")
    for name, m in median.items():
        print(
            f"{name:<22}{m['requests_per_second']:>10.0f}{100 * m['error_rate']:>8.2f}"
            f"{m['p50_ms']:>9.1f}{m['p95_ms']:>9.1f}{m['p99_ms']:>9.1f}{m['client_cpu_us_per_request']:>12.0f}"
        )
    for label, runs in duels.items():
        ratios[f"same_window_runner_vs_locust_{label}"] = statistics.median(
            h["runner_requests_per_second"] / h["locust_requests_per_second"] for h in runs
        )
    print()
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    verdict = {}
    for label in ("httpuser", "fasthttpuser"):
        verdict[label] = ratios[f"runner_vs_locust_{label}"] >= 1.0 and (
            median["runner"]["error_rate"] <= median[f"locust_{label}"]["error_rate"]
        )
        print(
            f"target >= 1x Locust {label} at equal or lower error rate: {'met' if verdict[label] else 'NOT met'}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "users": args.users,
                "duration_s": duration,
                "rounds": rounds,
                "path": args.path,
                "cpu_count": os.cpu_count(),
                "target_cpus": sorted(target_cpus) if target_cpus else None,
                "client_cpus": sorted(CLIENT_CPUS) if CLIENT_CPUS else None,
                "median": median,
                "rounds_detail": tools,
                "same_window": duels,
                "ratios": ratios,
                "target_met": verdict,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
