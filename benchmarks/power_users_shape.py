"""One load shape, run by this project's runner and by Locust's ``LoadTestShape``, against the same target.

The shape is a staircase of arrival rates (Locust's classic stages shape): ``--start`` requests/s,
``--step`` more every ``--every`` seconds, ``--steps`` times. The runner sends it as an open-model
load (Poisson arrivals at the rate; latency from the scheduled send). Locust gets the same rate as
a ``LoadTestShape`` whose user count follows the shape, each ``FastHttpUser`` held at one request
per second by ``constant_throughput(1)``, which is how Locust asks for an arrival rate. Both hit
``GET --path`` on the reference target served in its own process (pinned to the last CPU; the
clients to the others). Reported per tool: requested vs achieved arrivals and rate, latency
p50/p95/p99 (the runner's from the schedule and from the send; Locust's from the send), errors,
and client CPU per 1,000 requests (Locust's includes its start-up: an upper bound).

    .venv/bin/python benchmarks/power_users.py --shape [--start 40 --step 40 --every 6 --steps 4] [--rounds 2]
"""

from __future__ import annotations

import csv
import json
import os
import resource
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np

RESULTS_NAME = "power_users_shape.json"

SHAPE_LOCUSTFILE = """
import math

import numpy as np
from locust import FastHttpUser, LoadTestShape, constant_throughput, task

PATH = {path!r}
TIMES = np.array({times!r})
LEVELS = np.array({levels!r})
DURATION = {duration!r}


class ShapedUser(FastHttpUser):
    wait_time = constant_throughput(1.0)  # one request a second per user: users = requests/s

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


def shape_spec(start: float, step: float, every: float, steps: int) -> dict:
    """Return the scenario-file spec of the staircase."""
    return {"kind": "step", "start": start, "step": step, "every_s": every, "steps": steps}


def run_runner_shape(base_url: str, spec: dict, path: str) -> dict:
    """Run ``spec`` as an open-model load with this project's runner; return its figures."""
    from simulation_assets.core.power_users.config import parse_scenario
    from simulation_assets.sinks.power_users_client import PowerUserTarget
    from simulation_assets.sinks.power_users_scenario import load_scenario
    from simulation_assets.sinks.power_users_session import SessionOptions

    data = load_scenario().model_dump(mode="json", by_alias=True, exclude={"population"})
    data["simulation_config"]["load_shapes"] = {"bench": spec}
    data["simulation_config"]["load_tasks"] = [{"type": "view_pricing", "expected_status": 200}]
    scenario = parse_scenario(data)
    if path != "/api/v1/pricing":
        raise ValueError("the runner's shape benchmark sends view_pricing (GET /api/v1/pricing)")
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = PowerUserTarget(base_url=base_url).run(
        scenario=scenario, env={}, users=20, options=SessionOptions(shape="bench")
    )
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load = result.report["load"]
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
        # the whole run: the load and the 20 users' logins before it (an upper bound)
        "client_cpu_ms_per_1000_requests": cpu / max(sent, 1) * 1e6,
    }


def run_locust_shape(
    base_url: str, spec: dict, path: str, locust: Path, process: dict, requested: float, duration: float
) -> dict:
    """Run the staircase as a Locust ``LoadTestShape``; return the same figures from its CSV stats."""
    from simulation_assets.core.power_users.shapes import Step

    points = Step.model_validate(spec).points()
    with tempfile.TemporaryDirectory() as tmp:
        locustfile = Path(tmp) / "shape_locustfile.py"
        locustfile.write_text(
            SHAPE_LOCUSTFILE.format(
                path=path, times=[p[0] for p in points], levels=[p[1] for p in points], duration=duration
            )
        )
        prefix = Path(tmp) / "shape"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [str(locust), "-f", str(locustfile), "--headless", "--host", base_url, "--csv", str(prefix)]
            + ["--only-summary", "--stop-timeout", "2", "--loglevel", "ERROR"],
            check=False,
            timeout=duration + 120,
            **process,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(f"{prefix}_stats.csv", newline="") as fh:
            row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
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
        "client_cpu_ms_per_1000_requests": cpu / max(count, 1) * 1e6,  # includes Locust's start-up
    }


def compare(base_url: str, args, locust: Path, process: dict, results_dir: Path) -> int:  # noqa: ANN001
    """Run both tools ``args.rounds`` times (alternating order), print the table, write the JSON."""
    from simulation_assets.core.power_users.shapes import Step, requested_per_second

    spec = shape_spec(args.start, args.step, args.every, args.steps)
    shape = Step.model_validate(spec)
    requested, duration = float(requested_per_second(shape).sum()), shape.duration
    runs: dict[str, list[dict]] = {"runner": [], "locust_loadtestshape": []}
    measure = {
        "runner": lambda: run_runner_shape(base_url, spec, args.path),
        "locust_loadtestshape": lambda: run_locust_shape(
            base_url, spec, args.path, locust, process, requested, duration
        ),
    }
    print(f"shape: {spec} ({duration:g} s, {requested:.0f} requests)", flush=True)
    for r in range(args.rounds):
        order = list(measure) if r % 2 == 0 else list(reversed(measure))
        for name in order:
            runs[name].append(measure[name]())
            m = runs[name][-1]
            print(
                f"round {r + 1} {name:<22} sent {m['sent']:>6} of {m['requested']:.0f}  "
                f"rate {m['achieved_per_second']:.1f}/{m['requested_per_second']:.1f} ({m['achieved_ratio']:.3f})  "
                f"p50 {m['p50_ms']:.1f} p95 {m['p95_ms']:.1f} p99 {m['p99_ms']:.1f} ms  "
                f"errors {m['error_rate']:.2%}  CPU {m['client_cpu_ms_per_1000_requests']:.0f} ms/1000 req",
                flush=True,
            )
    median = {name: {k: statistics.median(m[k] for m in ms) for k in ms[0]} for name, ms in runs.items()}
    ours, theirs = median["runner"], median["locust_loadtestshape"]
    within = abs(ours["achieved_ratio"] - 1) <= 0.02
    locust_within = abs(theirs["achieved_ratio"] - 1) <= 0.02
    verdict = {
        "runner_within_2pct": within,
        "locust_within_2pct": locust_within,
        "rate_target_met": within or not locust_within,
        "cpu_target_met": ours["client_cpu_ms_per_1000_requests"]
        <= theirs["client_cpu_ms_per_1000_requests"],
    }
    print()
    print(
        f"{'tool':<24}{'achieved/requested':>20}{'p50':>8}{'p95':>8}{'p99':>8}{'err %':>7}{'CPU ms/1000':>13}"
    )
    for name, m in median.items():
        print(
            f"{name:<24}{m['achieved_ratio']:>20.3f}{m['p50_ms']:>8.1f}{m['p95_ms']:>8.1f}{m['p99_ms']:>8.1f}"
            f"{100 * m['error_rate']:>7.2f}{m['client_cpu_ms_per_1000_requests']:>13.0f}"
        )
    print(f"verdict: {verdict}  (load average {os.getloadavg()[0]:.1f})")
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
                "load_average": os.getloadavg()[0],
                "median": median,
                "rounds_detail": runs,
                "verdict": verdict,
                "cpu_ratio_runner_vs_locust": ours["client_cpu_ms_per_1000_requests"]
                / theirs["client_cpu_ms_per_1000_requests"],
            },
            indent=2,
            default=lambda v: float(v) if isinstance(v, np.floating) else str(v),
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0
