"""One load shape, run by this project's runner and by Locust's ``LoadTestShape``, against the same target.

The shape is a staircase of arrival rates (Locust's classic stages shape): ``--start`` requests/s,
``--step`` more every ``--every`` seconds, ``--steps`` times. The runner sends it as an open-model
load twice: with Poisson arrivals at the rate (its default, ``runner``) and with paced users
(``arrivals: paced``, ``runner_paced``: as many users as requests per second, each sending once a
second, as Locust's ``constant_throughput(1)`` users do); latency from the scheduled send. Locust gets the same rate as
a ``LoadTestShape`` whose user count follows the shape, each ``FastHttpUser`` held at one request
per second by ``constant_throughput(1)``, which is how Locust asks for an arrival rate
(``locust_loadtestshape``), and again with exponential waits averaging a second, whose
superposition is the runner's Poisson arrival process (``locust_poisson``). All hit
``GET --path`` on the reference target served in its own process (pinned to the last CPU; the
clients to the others). Reported per tool: requested vs achieved arrivals and rate, latency
p50/p95/p99 (the runner's from the schedule and from the send; Locust's from the send), errors,
the load generator's CPU per 1,000 requests, and how often it went to sleep waiting (voluntary
context switches per 1,000 requests: each sleep and wake-up is kernel work, most of a light load's
cost).

CPU is counted the same way for both tools, each in a process of its own on the same CPUs:
``load_cpu`` is the generator process's CPU (user + system, every thread) from the start of the
load to its end, measured inside the process (the runner: around its load, after the users' logins;
Locust: from its ``test_start`` to its ``test_stop`` event), so neither tool's start-up counts;
``process_cpu`` is the whole child process from exec to exit as the kernel reports it (``wait4``):
interpreter start-up, imports (the runner's import Dagster, which its sinks use), the users'
logins, the load and the report or CSV files. The CPU target is judged on ``load_cpu``; both are
reported.

    .venv/bin/python benchmarks/power_users.py --shape [--start 40 --step 40 --every 6 --steps 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RESULTS_NAME = "power_users_shape.json"

SHAPE_LOCUSTFILE = """
import json
import math
import random
import resource
import time

import numpy as np
from locust import FastHttpUser, LoadTestShape, constant_throughput, events, task

PATH = {path!r}
TIMES = np.array({times!r})
LEVELS = np.array({levels!r})
DURATION = {duration!r}
CPU_FILE = {cpu_file!r}
_CPU = {{}}


@events.test_start.add_listener
def _load_started(**kwargs):
    _CPU["start"] = time.process_time()
    _CPU["sleeps"] = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


@events.test_stop.add_listener
def _load_stopped(**kwargs):
    with open(CPU_FILE, "w") as fh:
        sleeps = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - _CPU["sleeps"]
        json.dump({{"load_cpu_s": time.process_time() - _CPU["start"], "sleeps": sleeps}}, fh)


_RNG = random.Random(7)


class ShapedUser(FastHttpUser):
    {wait}

    @task
    def hit(self):
        self.client.get(PATH)


class StairShape(LoadTestShape):
    def tick(self):
        t = self.get_run_time()
        if t >= DURATION:
            return None
        return (max(1, math.ceil(float(np.interp(t, TIMES, LEVELS)))), 1000)
"""


# The runner's arrival processes: Poisson (its default) and paced users (Locust's constant_throughput)
RUNNER_ARRIVALS = {"runner": "poisson", "runner_paced": "paced"}

# How each Locust variant's users wait between requests (the LoadTestShape sets users = requests/s).
LOCUST_WAITS = {
    # Locust's way to ask for an arrival rate: each user holds one request a second. Users started
    # together stay in step, so their requests leave in bursts (few wake-ups, queueing at the target).
    "locust_loadtestshape": "wait_time = constant_throughput(1.0)",
    # exponential waits averaging one second: together the users send Poisson arrivals, the
    # runner's arrival process, so both tools wake up as often
    "locust_poisson": "def wait_time(self):\n        return _RNG.expovariate(1.0)",
}


def shape_spec(start: float, step: float, every: float, steps: int) -> dict:
    """Return the scenario-file spec of the staircase."""
    return {"kind": "step", "start": start, "step": step, "every_s": every, "steps": steps}


def _child(command: list[str], process: dict) -> float:
    """Run ``command`` as a child process; return its whole CPU time (user + system, seconds)."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(command, **{**process, "stderr": errors})
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own figures, not all children's
        except BaseException:
            proc.kill()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(command[:3])} exited with {proc.returncode}:\n{tail}")
    return usage.ru_utime + usage.ru_stime


def run_runner_shape(base_url: str, spec: dict, path: str, process: dict) -> dict:
    """Run ``spec`` as an open-model load with this project's runner in a child process; return its figures.

    ``spec["arrivals"]`` picks the runner's arrival process (Poisson, or paced users).
    """
    if path != "/api/v1/pricing":
        raise ValueError("the runner's shape benchmark sends view_pricing (GET /api/v1/pricing)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runner.json"
        command = [sys.executable, __file__, "--url", base_url, "--spec", json.dumps(spec), "--out", str(out)]
        process_cpu = _child(command, process)
        result = json.loads(out.read_text())
    load, run = result["load"], result["run"]
    sent = load["sent"]
    return {
        "requested": load["requested"],
        "sent": sent,
        "requested_per_second": load["requested_per_second"],
        "achieved_per_second": load["achieved_per_second"],
        "achieved_ratio": load["achieved_ratio"],
        "error_rate": load["error_rate"],
        "p50_ms": load["latency_ms"]["p50"],
        "p95_ms": load["latency_ms"]["p95"],
        "p99_ms": load["latency_ms"]["p99"],
        "service_p95_ms": load["service_latency_ms"]["p95"],
        "load_cpu_s": run["load_generator_cpu_seconds"],
        "process_cpu_s": process_cpu,
        "load_cpu_ms_per_1000_requests": run["load_generator_cpu_seconds"] / max(sent, 1) * 1e6,
        "sleeps_per_1000_requests": run["load_generator_sleeps_per_1000_requests"],
        "process_cpu_ms_per_1000_requests": process_cpu / max(sent, 1) * 1e6,
    }


def _runner_child(url: str, spec: dict, out: Path) -> None:
    """In the child: run the shape with the runner (20 users, view_pricing only), write its report."""
    from simulation_assets.core.power_users.config import parse_scenario
    from simulation_assets.sinks.power_users_client import PowerUserTarget
    from simulation_assets.sinks.power_users_scenario import load_scenario
    from simulation_assets.sinks.power_users_session import SessionOptions

    data = load_scenario().model_dump(mode="json", by_alias=True, exclude={"population"})
    data["simulation_config"]["load_shapes"] = {"bench": spec}
    data["simulation_config"]["load_tasks"] = [{"type": "view_pricing", "expected_status": 200}]
    # a connection per paced user, as each Locust user has its own (Poisson arrivals need ~20)
    data["simulation_config"]["max_connections"] = 256
    result = PowerUserTarget(base_url=url).run(
        scenario=parse_scenario(data), env={}, users=20, options=SessionOptions(shape="bench")
    )
    out.write_text(json.dumps({"load": result.report["load"], "run": result.report["run"]}))


def run_locust_shape(
    base_url: str,
    spec: dict,
    path: str,
    locust: Path,
    process: dict,
    requested: float,
    duration: float,
    wait: str = LOCUST_WAITS["locust_loadtestshape"],
) -> dict:
    """Run the staircase as a Locust ``LoadTestShape`` whose users wait ``wait``; return its figures."""
    from simulation_assets.core.power_users.shapes import Step

    points = Step.model_validate(spec).points()
    with tempfile.TemporaryDirectory() as tmp:
        locustfile = Path(tmp) / "shape_locustfile.py"
        cpu_file = Path(tmp) / "load_cpu.json"
        locustfile.write_text(
            SHAPE_LOCUSTFILE.format(
                path=path,
                times=[p[0] for p in points],
                levels=[p[1] for p in points],
                duration=duration,
                cpu_file=str(cpu_file),
                wait=wait,
            )
        )
        prefix = Path(tmp) / "shape"
        process_cpu = _child(
            [str(locust), "-f", str(locustfile), "--headless", "--host", base_url, "--csv", str(prefix)]
            + ["--only-summary", "--stop-timeout", "2", "--loglevel", "ERROR"],
            process,
        )
        measured = json.loads(cpu_file.read_text())
        load_cpu, sleeps = measured["load_cpu_s"], measured["sleeps"]
        with open(f"{prefix}_stats.csv", newline="") as fh:
            row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    count, failures = int(row["Request Count"]), int(row["Failure Count"])
    achieved = count / duration
    return {
        "requested": requested,
        "sent": count,
        "requested_per_second": requested / duration,
        "achieved_per_second": achieved,
        "achieved_ratio": achieved / (requested / duration),
        "error_rate": failures / max(count, 1),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
        "service_p95_ms": float(row["95%"]),
        "load_cpu_s": load_cpu,
        "process_cpu_s": process_cpu,
        "load_cpu_ms_per_1000_requests": load_cpu / max(count, 1) * 1e6,
        "sleeps_per_1000_requests": sleeps / max(count, 1) * 1e3,
        "process_cpu_ms_per_1000_requests": process_cpu / max(count, 1) * 1e6,
    }


def compare(base_url: str, args, locust: Path, process: dict, results_dir: Path) -> int:  # noqa: ANN001
    """Run both runner and both Locust variants ``args.rounds`` times (rotating order); print and write the results.

    The CPU target is judged like for like: paced runner vs Locust's constant_throughput users,
    Poisson runner vs Locust's exponential waits; the runner's default vs Locust's is reported too.
    """
    from simulation_assets.core.power_users.shapes import Step, requested_per_second

    spec = shape_spec(args.start, args.step, args.every, args.steps)
    shape = Step.model_validate(spec)
    requested, duration = float(requested_per_second(shape).sum()), shape.duration
    runs: dict[str, list[dict]] = {name: [] for name in (*RUNNER_ARRIVALS, *LOCUST_WAITS)}

    def locust_variant(wait: str):  # noqa: ANN202
        return lambda: run_locust_shape(base_url, spec, args.path, locust, process, requested, duration, wait)

    def runner_variant(arrivals: str):  # noqa: ANN202
        return lambda: run_runner_shape(base_url, {**spec, "arrivals": arrivals}, args.path, process)

    measure = {
        **{name: runner_variant(arrivals) for name, arrivals in RUNNER_ARRIVALS.items()},
        **{name: locust_variant(wait) for name, wait in LOCUST_WAITS.items()},
    }
    print(f"shape: {spec} ({duration:g} s, {requested:.0f} requests)", flush=True)
    load_averages: list[float] = []
    for r in range(args.rounds):
        names = list(measure)
        order = names[r % len(names) :] + names[: r % len(names)]
        load_averages.append(os.getloadavg()[0])
        for name in order:
            runs[name].append(measure[name]())
            m = runs[name][-1]
            print(
                f"round {r + 1} {name:<22} sent {m['sent']:>6} of {m['requested']:.0f}  "
                f"rate {m['achieved_per_second']:.1f}/{m['requested_per_second']:.1f} ({m['achieved_ratio']:.3f})  "
                f"p50 {m['p50_ms']:.1f} p95 {m['p95_ms']:.1f} p99 {m['p99_ms']:.1f} ms  "
                f"errors {m['error_rate']:.2%}  CPU per 1000 req: load {m['load_cpu_ms_per_1000_requests']:.0f} ms, "
                f"process {m['process_cpu_ms_per_1000_requests']:.0f} ms  "
                f"sleeps per 1000 req {m['sleeps_per_1000_requests']:.0f}  (load average {load_averages[-1]:.1f})",
                flush=True,
            )
    median = {name: {k: statistics.median(m[k] for m in ms) for k in ms[0]} for name, ms in runs.items()}
    cpu = {name: m["load_cpu_ms_per_1000_requests"] for name, m in median.items()}

    def within(name: str) -> bool:
        return abs(median[name]["achieved_ratio"] - 1) <= 0.02

    def round_ratio(ours: str, theirs: str) -> float:
        """The median over rounds of the two tools' load CPU ratio (each round: the same conditions)."""
        return statistics.median(
            a["load_cpu_ms_per_1000_requests"] / b["load_cpu_ms_per_1000_requests"]
            for a, b in zip(runs[ours], runs[theirs])
        )

    # like for like: each runner arrival process against the Locust users that send the same one
    pairs = {"runner_paced": "locust_loadtestshape", "runner": "locust_poisson"}
    verdict: dict[str, bool] = {f"{name}_within_2pct": within(name) for name in median}
    for ours, theirs in pairs.items():
        verdict[f"rate_{ours}_vs_{theirs}_met"] = within(ours) or not within(theirs)
        verdict[f"cpu_{ours}_vs_{theirs}_met"] = cpu[ours] <= cpu[theirs]
    # and the runner's default (Poisson) against Locust's default (constant_throughput)
    verdict["cpu_runner_vs_locust_loadtestshape_met"] = cpu["runner"] <= cpu["locust_loadtestshape"]
    ratios = {}
    for ours in RUNNER_ARRIVALS:
        for theirs in LOCUST_WAITS:
            ratios[f"load_cpu_{ours}_vs_{theirs}"] = cpu[ours] / cpu[theirs]
            ratios[f"load_cpu_{ours}_vs_{theirs}_median_of_rounds"] = round_ratio(ours, theirs)
    ratios["process_cpu_runner_vs_locust_loadtestshape"] = (
        median["runner"]["process_cpu_ms_per_1000_requests"]
        / median["locust_loadtestshape"]["process_cpu_ms_per_1000_requests"]
    )
    print()
    print(
        f"{'tool':<24}{'achieved/requested':>20}{'p50':>8}{'p95':>8}{'p99':>8}{'err %':>7}"
        f"{'load CPU ms/1000':>18}{'process CPU ms/1000':>21}{'sleeps/1000':>13}"
    )
    for name, m in median.items():
        print(
            f"{name:<24}{m['achieved_ratio']:>20.3f}{m['p50_ms']:>8.1f}{m['p95_ms']:>8.1f}{m['p99_ms']:>8.1f}"
            f"{100 * m['error_rate']:>7.2f}{m['load_cpu_ms_per_1000_requests']:>18.0f}"
            f"{m['process_cpu_ms_per_1000_requests']:>21.0f}{m['sleeps_per_1000_requests']:>13.0f}"
        )
    print(f"ratios: { {k: round(v, 3) for k, v in ratios.items()} }")
    print(f"verdict: {verdict}  (load average {statistics.median(load_averages):.1f}, median of rounds)")
    out = results_dir / RESULTS_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "shape": spec,
                "duration_s": duration,
                "requested": requested,
                "path": args.path,
                "rounds": args.rounds,
                "cpu_count": os.cpu_count(),
                "load_average_per_round": load_averages,
                "load_average": statistics.median(load_averages),
                "median": median,
                "rounds_detail": runs,
                "ratios": ratios,
                "verdict": verdict,
            },
            indent=2,
            default=lambda v: float(v) if isinstance(v, np.floating) else str(v),
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":  # the runner's child process (see run_runner_shape)
    parser = argparse.ArgumentParser(description="run the shape with the runner; write its report")
    parser.add_argument("--url", required=True)
    parser.add_argument("--spec", required=True, help="the shape, as JSON")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    _runner_child(args.url, json.loads(args.spec), args.out)
