"""The orchestration benchmark's verdicts: margins, per-day overhead and the template ratio, on both clocks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location(
        "orchestration_bench", ROOT / "benchmarks" / "orchestration.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["orchestration_bench"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _row(total: float, cpu: float, work: float) -> dict:
    return {
        "warm": {"total_s": total, "cpu_s": cpu, "load": 1.0},
        "work_s": work,
        "overhead_s": round(total - work, 3),
        "overhead_cpu_s": round(cpu - work, 3),
    }


def test_each_target_gets_a_margin_and_a_verdict_on_wall_and_cpu(bench, capsys) -> None:  # noqa: ANN001
    results = {
        "help": _row(0.25, 0.07, 0.0),
        "hogflix_1": {
            **_row(3.0, 1.6, 0.5),  # overhead 2.5 s wall, 1.1 s CPU
            "warm_server": {"total_s": 1.2, "cpu_s": 0.9, "overhead_s": 0.7, "overhead_cpu_s": 0.4},
        },
        "hogflix_30": _row(4.0, 2.0, 1.0),
        "hogflix_365": _row(25.0, 12.0, 6.0),
    }
    targets = {t["target"]: t for t in bench._targets(results)}
    assert targets["`simulate --help` <= 0.3 s"]["wall_verdict"] == "met"
    assert targets["`simulate --help` <= 0.3 s"]["wall_margin"] == pytest.approx(1.2)
    one_run = targets["hogflix_1: overhead (total - work) <= 1 s, cold (in-process)"]
    assert (one_run["wall"], one_run["wall_verdict"]) == (2.5, "NOT met")
    assert (one_run["cpu"], one_run["cpu_margin"], one_run["cpu_verdict"]) == (1.1, 0.909, "NOT met")
    warm = targets["hogflix_1: overhead (total - work) <= 1 s, through the warm server"]
    assert (warm["wall"], warm["wall_margin"], warm["wall_verdict"]) == (0.7, 1.43, "met")
    assert (warm["cpu"], warm["cpu_margin"], warm["cpu_verdict"]) == (0.4, 2.5, "met")
    per_day = targets["per-day overhead in a range run (335 more days) <= 0.05 s"]
    assert per_day["wall"] == pytest.approx((19.0 - 3.0) / 335, abs=1e-4)  # overheads 19.0 vs 3.0 s
    assert per_day["cpu"] == pytest.approx((6.0 - 1.0) / 335, abs=1e-4)
    assert per_day["wall_verdict"] == "met" and per_day["cpu_verdict"] == "met"
    year = targets["365 days of HogFlix, pool 400, lifecycle only <= 20 s"]
    assert (year["wall_verdict"], year["cpu_verdict"]) == ("NOT met", "met")
    printed = capsys.readouterr().out
    assert "wall 2.5 (x0.4) NOT met | CPU 1.1 (x0.909) NOT met" in printed


def test_quick_mode_uses_its_own_day_counts_and_marks_its_verdicts(bench) -> None:  # noqa: ANN001
    results = {"hogflix_30": _row(4.0, 2.0, 1.0), "hogflix_365": _row(4.5, 2.1, 1.05)}
    targets = bench._targets(results, quick=True)
    per_day = next(t for t in targets if t["target"].startswith("per-day"))
    assert "(5 more days)" in per_day["target"]  # 8 vs 3 days in quick mode
    assert per_day["cpu"] == pytest.approx(0.05 / 5, abs=1e-4)
    assert all(t["cpu_verdict"].endswith("(quick)") for t in targets)


def test_the_funnel_ratio_divides_like_clocks(bench, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(bench, "_template_seconds", lambda argv: (900.0, 600.0))
    results = {"funnel_forecast": _row(3.0, 2.0, 0.4)}
    [funnel] = [t for t in bench._targets(results) if t["target"].startswith("funnel forecast")]
    assert funnel["target"].endswith(
        "cold (in-process, no server)"
    )  # no warm-server runs: the cold line only
    assert (funnel["wall"], funnel["wall_verdict"]) == (300.0, "met")  # 900 s / 3 s
    assert (funnel["cpu"], funnel["cpu_verdict"]) == (300.0, "met")  # 600 s / 2 s
    assert results["funnel_template_s"] == {"wall": 900.0, "cpu": 600.0}


def test_the_funnel_ratio_is_judged_on_the_default_path_with_the_cold_command_beside_it(
    bench, monkeypatch
) -> None:  # noqa: ANN001
    monkeypatch.setattr(bench, "_template_seconds", lambda argv: (900.0, 600.0))
    # best warm-server run 1.0 s wall, median 2.0 s: the verdict takes the median
    warm = {"total_s": 1.0, "cpu_s": 0.5, "median_total_s": 2.0, "median_cpu_s": 1.5, "overhead_s": 0.6}
    warm["overhead_cpu_s"] = 0.1
    results = {"funnel_forecast": {**_row(4.0, 2.5, 0.4), "warm_server": warm}}
    default, cold = [t for t in bench._targets(results) if t["target"].startswith("funnel forecast")]
    assert "default path (warm server, median)" in default["target"]
    assert (default["wall"], default["wall_verdict"], default["cpu"], default["cpu_verdict"]) == (
        450.0, "met", 400.0, "met")  # fmt: skip
    assert "cold (in-process, no server)" in cold["target"]
    assert (cold["wall"], cold["wall_verdict"], cold["cpu"], cold["cpu_verdict"]) == (
        225.0,
        "NOT met",
        240.0,
        "NOT met",
    )


def test_the_floor_variants_differ_from_the_project_instance_in_one_setting_each(bench, tmp_path) -> None:  # noqa: ANN001
    from simulation_assets.sinks.local_instance import instance_yaml

    assert bench.FLOOR_VARIANTS[0] == "project" and bench._floor_yaml("project", tmp_path) is None
    stock_logs = bench._floor_yaml("stock compute logs", tmp_path)
    ours = instance_yaml(tmp_path / "storage")
    assert "compute_logs" in ours and "compute_logs" not in stock_logs
    only_ours = [line for line in ours.splitlines() if line not in stock_logs.splitlines()]
    assert [line.split(":")[0].strip() for line in only_ours[1:]] == [
        "compute_logs",
        "module",
        "class",
        "config",
    ]
    stock = bench._floor_yaml("stock instance", tmp_path)
    assert stock.startswith("storage:\n  sqlite:") and "LocalSqliteStorage" not in stock


def test_one_run_commands_take_turns_with_a_floor_run_and_are_given_against_the_floor_of_their_round(
    bench, monkeypatch, tmp_path
) -> None:  # noqa: ANN001
    """A disturbance of a few seconds (here: round 2) lands on one run of each command, not on all runs of one."""
    calls: list[str] = []
    slow_round = {2}

    def fake(name: str):  # noqa: ANN202
        def run(*args: object, **kwargs: object) -> dict:
            calls.append(name)
            turn = sum(1 for c in calls if c == name) - 1
            extra = 1.0 if turn in slow_round else 0.0
            base = {"floor": 0.6, "a": 1.0, "b": 1.5}[name]
            run = {"total_s": base + extra + turn / 100, "cpu_s": base, "load": 0.5, "waited_s": extra}
            return {**run, "major_faults": 40 if extra else 0}

        return run

    monkeypatch.setattr(bench, "run_floor", lambda folder: fake("floor")())
    monkeypatch.setattr(bench, "run_plain", lambda name, folder, quick=False: fake(name)())
    folders = {"a": tmp_path, "b": tmp_path, "floor": tmp_path}
    runs = bench.run_rounds(folders, rounds=3)
    assert calls == ["a", "b", "floor", "b", "floor", "a", "floor", "a", "b", "a", "b", "floor"]
    assert [len(r) for r in runs.values()] == [4, 4, 4]  # the first (instance-making) run and 3 rounds
    a = bench.summary(runs["a"][1:])
    assert (a["total_s"], a["median_total_s"], a["runs"]) == (1.01, 1.03, 3)  # the slow round's 2.02 is out
    assert (a["best_waited_s"], a["median_waited_s"]) == (0.0, 0.0)
    assert (a["best_major_faults"], a["max_major_faults"]) == (0, 40)
    up = bench.above_floor(runs["b"][1:], runs["floor"][1:])
    assert up == {"median_s": 0.9, "median_cpu_s": 0.9, "best_s": 0.9, "best_cpu_s": 0.9}
    assert bench.cpu_pressure_s() is None or bench.cpu_pressure_s() >= 0
