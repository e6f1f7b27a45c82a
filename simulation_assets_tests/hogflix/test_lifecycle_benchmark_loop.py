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
    # the loop records the day's lapses as the step does (lapsed_today): ~30 each at this pool
    step_lapses = int(np.count_nonzero(c["lapsed_today"] & kept))
    loop_lapses = sum(p["lapsed_today"] for p in personas)
    assert step_lapses > 10 and abs(loop_lapses - step_lapses) <= 4 * (step_lapses**0.5) + 3, (
        loop_lapses,
        step_lapses,
    )
    # the loop carries the traits: satisfaction moves and stays within 0-1
    moved = [p["satisfaction"] for p in personas]
    assert 0.0 <= min(moved) and max(moved) <= 1.0
    assert abs(np.mean(moved) - float(np.mean(c["satisfaction"][alive]))) < 0.02


def test_the_loop_also_drops_the_cleaned_up_records_the_days_figures_and_signs_up() -> None:
    bench = _bench()
    cfg = LifecycleConfig(persona_pool=4000)
    day = day_number(dt.date(2026, 1, 1))
    state = initial_state(cfg, 7, day, burn_in_days=60)
    personas = bench.sample_personas(state, len(state), random.Random(1))
    marked = {p["number"] for p in personas if p["marked_for_cleanup"]}
    assert marked  # yesterday's cleaned-up personas are in the sample, as in the step's input
    bench.loop_step(personas, day, cfg, random.Random(2), seed=7, next_number=state.next_number)
    c = step_day(state, day, cfg, 7).cols
    numbers = [p["number"] for p in personas]
    assert not marked & set(numbers) and len(numbers) == len(set(numbers))
    joined = [p for p in personas if p["signed_up_today"]]
    assert abs(len(joined) - int(c["signed_up_today"].sum())) <= 1 and len(joined) >= 5
    assert [p["number"] for p in joined] == list(range(state.next_number, state.next_number + len(joined)))
    assert all(p["email"].startswith(p["distinct_id"]) and len(p["user_id"]) == 36 for p in joined)
    # the day's figures: videos per visitor as the step's, sessions within the day, resets elsewhere
    visitors = [p for p in personas if p["active_today"] and not p["signed_up_today"]]
    step_visitors = c["active_today"] & ~c["signed_up_today"]
    loop_videos = np.mean([p["videos_today"] for p in visitors])
    step_videos = float(c["videos_today"][step_visitors].mean())
    assert abs(loop_videos - step_videos) < 0.1 * step_videos, (loop_videos, step_videos)
    assert all(day * 86_400_000 <= p["session_start_ms"] < (day + 1) * 86_400_000 for p in visitors)
    away = [p for p in personas if not p["active_today"]]
    assert all(p["videos_today"] == 0 and p["session_start_ms"] is None for p in away)
    binging = [p["binge_day"] for p in personas if p["binge_mode_today"]]
    assert binging and min(binging) >= 1
