"""Whole runs: the spec's figures over 90 days, scaling with the pool, and determinism."""

import datetime as dt

import numpy as np
import pytest

from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import PATTERNS, PLANS, LifecycleConfig
from simulation_assets.core.hogflix.frames import to_frame
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.metrics import daily_metrics, plan_weighted_pattern_targets
from simulation_assets.core.hogflix.persona_state import CHURNED, day_number

START = day_number(dt.date(2026, 1, 1))


def run(cfg: LifecycleConfig, seed: int, days: int, start: int = START, state=None):  # noqa: ANN001
    state = initial_state(cfg, seed, start) if state is None else state
    rows = []
    for day in range(start, start + days):
        state = step_day(state, day, cfg, seed)
        c = state.cols
        alive = c["state"] != CHURNED
        assigned = alive & (c["days_since_signup"] >= cfg.pattern_assignment_day)
        rows.append(
            {
                "pool": int(alive.sum()),
                "signups": int(c["signed_up_today"].sum()),
                "churned": int(c["churned_today"].sum()),
                "active_share": float((c["state"] == 1).sum() / alive.sum()),
                "active_today": int(c["active_today"].sum()),
                "patterns": np.bincount(c["pattern"][assigned], minlength=5) / assigned.sum(),
                "plans": np.bincount(c["plan"][assigned], minlength=3),
            }
        )
    return state, rows


@pytest.mark.parametrize("seed", [1, 42])
def test_ninety_days_at_pool_400_show_the_spec_figures(seed):
    cfg = LifecycleConfig()
    _, rows = run(cfg, seed, 90)
    warm = rows[14:]
    assert all(380 <= r["pool"] <= 420 for r in rows)
    assert all(2 <= r["signups"] <= 5 for r in rows)
    assert 0.60 <= np.mean([r["active_share"] for r in warm]) <= 0.70
    assert all(30 <= r["active_today"] <= 150 for r in rows)
    plans = rows[-1]["plans"]
    target = plan_weighted_pattern_targets(dict(zip(PLANS, plans.tolist())), cfg.pattern_weights)
    observed = np.mean([r["patterns"] for r in warm], axis=0)
    # Within a few points: DAILY personas, the most satisfied, lapse least and stay longest (docs).
    for name, got in zip(PATTERNS, observed):
        assert got == pytest.approx(target[name], abs=0.07), name


def test_signups_and_pool_scale_with_persona_pool():
    cfg = LifecycleConfig(persona_pool=4_000)
    assert cfg.signup_range == (20, 50) and cfg.pool_range == (3_800, 4_200)
    _, rows = run(cfg, 3, 40)
    assert all(3_800 <= r["pool"] <= 4_200 for r in rows)
    assert all(20 <= r["signups"] <= 50 for r in rows)


def test_same_seed_gives_identical_tables_and_another_seed_does_not():
    cfg = LifecycleConfig()
    a, _ = run(cfg, 5, 10)
    b, _ = run(cfg, 5, 10)
    c, _ = run(cfg, 6, 10)
    assert to_frame(a).equals(to_frame(b))
    assert not to_frame(a).equals(to_frame(c))


def test_daily_metrics_flatten_state_and_pattern_counts():
    cfg = LifecycleConfig()
    state, _ = run(cfg, 2, 3)
    frame = to_frame(state)
    row = daily_metrics(frame, dt.date(2026, 1, 3))
    assert row.height == 1
    assert row["total_personas"][0] == frame.height
    assert (
        sum(row[f"state_{s}"][0] for s in ("NEW", "ACTIVE", "CASUAL", "DORMANT", "CHURNED")) == frame.height
    )
    assert sum(row[f"pattern_{p}"][0] for p in PATTERNS) == row["pool_size"][0]
    assert row["new_signups"][0] == frame["signed_up_today"].sum()


def test_daily_metrics_are_the_same_bytes_on_every_call_of_a_large_day():
    """At a million rows Polars' group-by adds floats on several threads in an order that varies: the
    per-state and per-plan figures must not depend on it."""
    import polars as pl

    cfg = LifecycleConfig()
    state, _ = run(cfg, 2, 3)
    small = to_frame(state)
    frame = pl.concat([small] * (1_000_000 // small.height + 1))
    frame = (
        frame.with_columns(  # distinct float values, so the order of the additions shows in the last digits
            pl.Series("completion_today", np.random.default_rng(0).uniform(0, 100, frame.height)),
            pl.Series("active_today", np.random.default_rng(1).random(frame.height) < 0.5),
        )
    )
    rows = {daily_metrics(frame, dt.date(2026, 1, 3)).write_ipc(None).getvalue() for _ in range(8)}
    assert len(rows) == 1


# The (seed, start) pairs a user reported outside the band or under 60 % ACTIVE with the earlier
# calibration, plus a start in the future and one on New Year's Eve.
REPORTED_PAIRS = [
    (8675309, "2026-02-09"),
    (42, "2026-02-09"),
    (7, "2026-02-09"),
    (42, "2026-06-15"),
    (99, "2026-09-01"),
    (2024, "2026-04-20"),
    (5, "2027-03-10"),
    (123456, "2025-12-31"),
]


@pytest.mark.parametrize(("seed", "start"), REPORTED_PAIRS)
def test_pool_stays_in_band_with_active_share_near_65_and_signups_spread_over_2_to_5(seed, start):
    cfg = LifecycleConfig()
    _, rows = run(cfg, seed, 150, start=day_number(dt.date.fromisoformat(start)))
    warm = rows[30:]  # the 30-day warm-up
    pools = [r["pool"] for r in warm]
    assert 380 <= min(pools) and max(pools) <= 420, (min(pools), max(pools))
    share = float(np.mean([r["active_share"] for r in warm]))
    assert 0.62 <= share <= 0.68, share
    signups = [r["signups"] for r in warm]
    assert min(signups) >= 2 and max(signups) <= 5
    assert len(set(signups)) >= 3 and np.mean(signups) >= 2.15  # not the minimum every day
    # Signups are the only inflow and churn the only outflow of the living pool.
    assert sum(r["signups"] - r["churned"] for r in warm[1:]) == pools[-1] - pools[0]


@pytest.mark.parametrize(("target", "enters_by"), [(440, 8), (360, 30)])
def test_a_pool_off_target_comes_back_into_the_band_and_stays(target, enters_by):
    """A pool of ~400 handed to a scenario whose target is 10 % higher or lower (as a config change or a
    backfill from another scenario's state would) is back inside the new band within days."""
    start = day_number(dt.date(2026, 3, 1))
    state = initial_state(LifecycleConfig(), 11, start)
    cfg = LifecycleConfig(persona_pool=target)
    _, rows = run(cfg, 11, 60, start=start, state=state)
    low, high = cfg.pool_range
    inside = [low <= r["pool"] <= high for r in rows]
    first = inside.index(True)
    assert first <= enters_by and all(inside[first:]), (first, [r["pool"] for r in rows])
