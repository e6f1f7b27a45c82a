"""Benchmark: one HogFlix lifecycle day for 1,000,000 personas.

Measured side by side in one process:
  (a) numpy drawing 10 uniforms per persona (the floor for any step that draws that much),
  (b) the vectorized ``step_day``,
  (c) a straightforward per-persona Python loop over the same rules, on a sample.
Prints the ratios and writes benchmarks/results/hogflix_lifecycle.json.

Targets: (b) within 10x of (a); (b) at least 50x faster than (c) per persona.

    .venv/bin/python benchmarks/hogflix_lifecycle.py [--personas 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import LIFE_EVENTS, PATTERNS, LifecycleConfig
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.persona_state import day_date, day_number
from simulation_assets.core.hogflix.timeofday import HOURLY_WEIGHTS as _WEIGHTS

HOURS = list(range(24))
HOURLY_WEIGHTS = _WEIGHTS.tolist()


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loop_step(personas: list[dict], day: int, cfg: LifecycleConfig, rnd: random.Random) -> None:
    """The same day rules written the obvious way: one Python dict per persona, one persona at a time."""
    date = day_date(day)
    weekday = date.weekday()
    flixbuddy_used = 0
    for p in personas:
        if p["state"] == "CHURNED":
            continue
        p["days_since_signup"] += 1
        if p["event"] and p["event_ends"] <= day:
            p["event"], p["event_ends"] = None, None
        if p["event"] is None:
            roll, acc = rnd.random(), 0.0
            for name in LIFE_EVENTS:
                rule = cfg.life_events[name]
                acc += rule.daily_chance
                if roll < acc:
                    p["event"] = name
                    p["event_ends"] = day + rnd.randint(rule.duration_days.low, rule.duration_days.high)
                    break
        if p["pattern"] == "BINGE" and p["binge_ends"] <= day:
            p["binging"] = not p["binging"]
            r = cfg.binge_days if p["binging"] else cfg.binge_cooldown_days
            p["binge_ends"] = day + rnd.randint(r.low, r.high)
        if p["state"] != "NEW" and not p["lapsed"] and rnd.random() < cfg.lapse_daily_chance:
            p["lapsed"] = True
        rule = cfg.patterns[p["pattern"]]
        peak = (
            (p["pattern"] == "REGULAR" and weekday in (3, 4, 5))
            or (p["pattern"] == "WEEKEND" and weekday in (5, 6))
            or (p["pattern"] == "BINGE" and p["binging"])
            or (p["pattern"] == "MONTHLY" and date.day <= 3)
        )
        prob = (rule.peak_return or rule.base_return) if peak else rule.base_return
        if p["state"] == "NEW":
            prob = cfg.new_base_return
        prob += min((p["streak"] // cfg.streak_step_days) * cfg.streak_bonus_per_step, cfg.streak_bonus_max)
        prob += (p["score"] - cfg.score_center) / cfg.score_divisor
        if p["event"]:
            prob = cfg.life_events[p["event"]].return_probability
        if p["lapsed"]:
            prob *= cfg.lapsed_return_modifier
        if p["state"] == "DORMANT":
            prob *= cfg.dormant_return_modifier
        prob = min(max(prob * cfg.return_scale, 0.0), 1.0)
        active = rnd.random() < prob
        was_dormant = p["state"] == "DORMANT"
        if active:
            p["score"] = min(p["score"] + cfg.score_gain_active, 100)
            p["streak"] += 1
            p["missed"] = 0
            p["sessions"] += 1
            hour = rnd.choices(HOURS, weights=HOURLY_WEIGHTS)[0]
            p["last_active_ms"] = day * 86_400_000 + hour * 3_600_000 + int(rnd.random() * 3_600_000)
        else:
            penalty = cfg.streak_break_penalty if p["streak"] >= cfg.streak_break_min_days else 0
            p["score"] = max(p["score"] - cfg.score_loss_inactive - penalty, 0)
            p["streak"] = 0
            p["missed"] += 1
        p["history"] = ((p["history"] << 1) | int(active)) & ((1 << cfg.casual_window_days) - 1)
        old_state = p["state"]
        if (
            p["state"] == "DORMANT"
            and p["missed"] >= cfg.churn_after_inactive_days
            and rnd.random() < cfg.dormant_daily_churn
        ):
            p["state"] = "CHURNED"
            p["churned_at"] = day
            p["marked_for_cleanup"] = rnd.random() < cfg.churn_cleanup_share
        elif p["missed"] >= cfg.dormant_after_inactive_days:
            p["state"] = "DORMANT"
        elif p["days_since_signup"] < cfg.new_days:
            p["state"] = "NEW"
        else:
            p["state"] = "CASUAL" if bin(p["history"]).count("1") < cfg.casual_max_active_days else "ACTIVE"
        if p["state"] != old_state:
            p["state_changed_at"] = day
        p["reactivated_today"] = was_dormant and active
        if p["reactivated_today"]:
            p["lapsed"] = False
        if p["days_since_signup"] == cfg.pattern_assignment_day:
            p["pattern"] = rnd.choices(PATTERNS, weights=cfg.pattern_weights[p["plan"]])[0]
        if active:
            # the session-depth table, ratings, watchlist and FlixBuddy for the visit
            binge_mode = p["pattern"] == "BINGE" and p["binging"] and p["state"] != "NEW"
            key = (
                "BINGE"
                if binge_mode
                else ("CASUAL" if p["state"] == "CASUAL" else "NEW" if p["state"] == "NEW" else "ACTIVE")
            )
            depth = cfg.session_depth[key]
            videos = rnd.randint(depth.videos.low, depth.videos.high)
            mean = depth.avg_completion
            completion = round(rnd.betavariate(mean * 6.0, (1.0 - mean) * 6.0) * 100.0, 2)
            ratings = sum(rnd.random() < cfg.rate_probability for _ in range(videos))
            total = p["videos"] + videos
            p["avg_completion"] = round((p["avg_completion"] * p["videos"] + completion * videos) / total, 2)
            p["videos"] = total
            p["ratings"] += ratings
            p["watchlist"] += rnd.random() < cfg.watchlist_probability
            if flixbuddy_used < cfg.flixbuddy_max_per_day and rnd.random() < cfg.flixbuddy_share:
                flixbuddy_used += 1
                p["flixbuddy"] += 1


def sample_personas(n: int, rnd: random.Random) -> list[dict]:
    plans = ("Premium", "Standard", "Basic")
    return [
        {
            "state": "ACTIVE",
            "plan": rnd.choice(plans),
            "pattern": rnd.choice(PATTERNS),
            "score": rnd.randint(50, 80),
            "days_since_signup": rnd.randint(14, 200),
            "event": None,
            "event_ends": None,
            "binging": False,
            "binge_ends": 0,
            "lapsed": False,
            "streak": rnd.randint(0, 10),
            "missed": 0,
            "sessions": 0,
            "videos": 0,
            "history": 0b111,
            "avg_completion": 0.0,
            "ratings": 0,
            "watchlist": 0,
            "flixbuddy": 0,
            "last_active_ms": 0,
            "churned_at": None,
            "marked_for_cleanup": False,
            "state_changed_at": 0,
            "reactivated_today": False,
        }
        for _ in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--personas", type=int, default=1_000_000)
    parser.add_argument("--loop-sample", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    cfg = LifecycleConfig(persona_pool=args.personas)
    day = day_number(dt.date(2026, 1, 1))
    state = initial_state(cfg, 7, day, burn_in_days=7)
    n = len(state)
    draw = np.random.default_rng(1)

    numpy_s = _median_seconds(lambda: draw.random((10, n)), args.repeats)
    step_s = _median_seconds(lambda: step_day(state, day, cfg, 7), args.repeats)
    rnd = random.Random(3)
    sample = sample_personas(args.loop_sample, rnd)
    loop_times = []
    for _ in range(max(1, args.repeats // 2)):
        # The loop updates its dicts in place: every repetition starts from the same fresh pool,
        # as the vectorized step (which returns a new state) does.
        fresh = copy.deepcopy(sample)
        start = time.perf_counter()
        loop_step(fresh, day, cfg, random.Random(3))
        loop_times.append(time.perf_counter() - start)
    loop_s = statistics.median(loop_times)

    step_per_persona = step_s / n
    loop_per_persona = loop_s / args.loop_sample
    result = {
        "personas": n,
        "numpy_10_uniforms_s": round(numpy_s, 4),
        "vectorized_step_s": round(step_s, 4),
        "loop_sample": args.loop_sample,
        "loop_sample_s": round(loop_s, 4),
        "step_over_numpy": round(step_s / numpy_s, 2),
        "loop_over_step_per_persona": round(loop_per_persona / step_per_persona, 1),
        "targets": {"step_over_numpy_max": 10, "loop_over_step_min": 50},
    }
    result["meets_targets"] = result["step_over_numpy"] <= 10 and result["loop_over_step_per_persona"] >= 50
    print(f"personas: {n:,}")
    print(f"numpy, 10 uniforms/persona:   {numpy_s * 1e3:8.1f} ms")
    print(
        f"vectorized day step:          {step_s * 1e3:8.1f} ms   ({result['step_over_numpy']}x numpy, target <= 10x)"
    )
    print(
        f"python loop, {args.loop_sample:,} personas: {loop_s * 1e3:8.1f} ms   "
        f"(step is {result['loop_over_step_per_persona']}x faster per persona, target >= 50x)"
    )
    out = Path(__file__).parent / "results" / "hogflix_lifecycle.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
