"""The per-persona Python loop of benchmarks/hogflix_lifecycle.py runs the rules of ``step_day``: started
from the same pool, its day's visit share, payments and states match the vectorized step's, so the
speed ratio it reports compares the same work."""

from __future__ import annotations

import datetime as dt
import importlib.util
import random
import sys
from pathlib import Path

import numpy as np

from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.persona_state import CHURNED, day_number

ROOT = Path(__file__).resolve().parents[2]


def _bench():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(
        "hogflix_lifecycle_bench", ROOT / "benchmarks" / "hogflix_lifecycle.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_loop_does_the_steps_day_on_the_same_pool() -> None:
    bench = _bench()
    cfg = LifecycleConfig(persona_pool=4000)
    day = day_number(dt.date(2026, 1, 1))  # a billing day (1st) and a holiday (season on)
    state = initial_state(cfg, 7, day, burn_in_days=60)
    personas = bench.sample_personas(state, len(state), random.Random(1))
    assert len(personas) == len(state)
    bench.loop_step(personas, day, cfg, random.Random(2))
    after = step_day(state, day, cfg, 7)
    c = after.cols
    kept = c["persona_number"] < state.next_number  # today's signups are not the loop's work
    alive = kept & (c["state"] != CHURNED)
    step_share = float(np.count_nonzero(c["active_today"] & alive)) / float(np.count_nonzero(alive))
    loop_alive = [p for p in personas if p["state"] != "CHURNED"]
    loop_share = sum(p["last_active_ms"] // 86_400_000 == day for p in loop_alive) / len(loop_alive)
    assert abs(loop_share - step_share) < 0.03, (loop_share, step_share)
    step_charges = int(np.count_nonzero((c["payment_attempt_today"] == 1) & kept))
    loop_charges = sum(p["payment_attempt_today"] == 1 for p in personas)
    assert step_charges > 50 and abs(loop_charges - step_charges) <= 0.1 * step_charges, (
        loop_charges,
        step_charges,
    )
    # the loop carries the traits: satisfaction moves and stays within 0-1
    moved = [p["satisfaction"] for p in personas]
    assert 0.0 <= min(moved) and max(moved) <= 1.0
    assert abs(np.mean(moved) - float(np.mean(c["satisfaction"][alive]))) < 0.02
