"""The array shortcuts inside the day step give the same answers as their plain definitions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.hogflix.billing import plan_changes
from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import LIFE_EVENTS, PATTERNS, STATES, LifecycleConfig
from simulation_assets.core.hogflix.draws import smallest
from simulation_assets.core.hogflix.frames import day_frame, from_frame
from simulation_assets.core.hogflix.lifecycle import (
    STATE_BY_FLAGS,
    lapse,
    lapse_chance,
    state_from_flags,
    step_day,
)
from simulation_assets.core.hogflix.metrics import _visits_by_depth_row, depth_row
from simulation_assets.core.hogflix.persona_state import (
    ACTIVE,
    BINGE,
    CASUAL,
    CHURNED,
    DAILY,
    DORMANT,
    MONTHLY,
    NEW,
    NUMERIC_COLUMNS,
    PER_DAY_COLUMNS,
    REGULAR,
    WEEKEND,
    day_date,
)
from simulation_assets.core.hogflix.signups import new_personas
from simulation_assets.core.hogflix.timeofday import _HOURLY_CDF, MS_PER_HOUR, draw_ms_of_day
from simulation_assets.core.hogflix.viewing import (
    DEPTH_ACTIVE,
    DEPTH_BINGE,
    DEPTH_BINGE_COOLDOWN,
    DEPTH_CASUAL,
    DEPTH_DAILY,
    DEPTH_MONTHLY,
    DEPTH_NEW,
    DEPTH_REGULAR,
    DEPTH_SICK,
    DEPTH_WEEKEND,
    DEPTH_WEEKEND_PEAK,
    depth_rows,
)
from simulation_assets_tests.hogflix.helpers import DAY, pool


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hour_of_day_lookup_matches_a_binary_search_at_every_boundary(dtype):
    cdf = _HOURLY_CDF.astype(dtype)
    below = np.nextafter(cdf, dtype(0))
    above = np.nextafter(cdf, dtype(1))
    edges = np.concatenate([[dtype(0)], cdf, below, above, np.random.default_rng(3).random(50_000, dtype)])
    edges = edges[edges < 1].astype(dtype)
    within = np.full(edges.size, 0.5, dtype)
    expected = np.searchsorted(cdf, edges, side="right").clip(0, 23) * MS_PER_HOUR + MS_PER_HOUR // 2
    assert np.array_equal(draw_ms_of_day(edges, within), expected)


@pytest.mark.parametrize(("size", "k"), [(10, 10), (1_000, 1), (200_000, 50), (300, 120)])
def test_smallest_returns_exactly_the_k_smallest_draws(size, k):
    values = np.random.default_rng(size).random(size, dtype=np.float32)
    assert sorted(smallest(values, k).tolist()) == sorted(np.argsort(values)[:k].tolist())


def test_state_flags_give_churned_over_dormant_over_new_over_casual_over_active():
    def flags(casual=0, new=0, dormant=0, churned=0):
        return casual | new << 1 | dormant << 2 | churned << 3

    assert STATE_BY_FLAGS[flags()] == ACTIVE
    assert STATE_BY_FLAGS[flags(casual=1)] == CASUAL
    assert STATE_BY_FLAGS[flags(casual=1, new=1)] == NEW
    assert STATE_BY_FLAGS[flags(casual=1, new=1, dormant=1)] == DORMANT
    assert STATE_BY_FLAGS[flags(1, 1, 1, 1)] == CHURNED
    assert STATE_BY_FLAGS[flags(churned=1)] == CHURNED


def test_take_then_append_keeps_every_row_and_leaves_the_source_untouched():
    cfg = LifecycleConfig()
    state = pool(cfg, 50)
    before = {k: v.copy() for k, v in state.cols.items()}
    keep = np.arange(50) % 3 != 0
    taken = state.take(keep, fresh=PER_DAY_COLUMNS, spare=7)
    joined = new_personas(cfg, 0, DAY, 5, 1_000, np.random.default_rng(1))
    grown = taken.append(joined)
    assert len(grown) == int(keep.sum()) + 5
    for k, v in grown.cols.items():
        head = np.zeros(keep.sum(), v.dtype) if k in PER_DAY_COLUMNS else before[k][keep]
        assert np.array_equal(v, np.concatenate([head, joined.cols[k]])), k
        assert np.array_equal(state.cols[k], before[k]), k
    # No room left in the buffers: appending again copies instead of overwriting.
    again = grown.append(joined)
    assert np.array_equal(again.cols["persona_number"][-10:], np.tile(joined.cols["persona_number"], 2))
    assert np.array_equal(grown.cols["persona_number"][-5:], joined.cols["persona_number"])


def test_take_filters_columns_with_room_and_gives_what_a_gather_gives_day_after_day():
    cfg = LifecycleConfig()
    g = np.random.default_rng(5)
    state = pool(cfg, 400)
    spare = 6
    for day in range(12):  # room shrinks with each append until a day gathers into new room again
        keep = g.random(len(state)) > 0.05
        before = {k: v.copy() for k, v in state.cols.items()}
        room = {
            k: v.base.size - v.size if isinstance(v.base, np.ndarray) else 0 for k, v in state.cols.items()
        }
        taken = state.take(keep, fresh=PER_DAY_COLUMNS, spare=spare)
        for k, v in taken.cols.items():
            if k not in PER_DAY_COLUMNS:
                assert np.array_equal(v, before[k][keep]), (day, k)
            assert np.array_equal(state.cols[k], before[k]), (day, k)  # the source is left as it was
            assert v.flags.writeable and v.base.size - v.size >= spare, (day, k)
            if k not in PER_DAY_COLUMNS and room[k] >= spare:
                assert v.base.size - v.size == room[k], (day, k)  # filtered: the room is kept
        joined = new_personas(cfg, 0, DAY, spare, 10_000 + 10 * day, g)
        state = taken.append(joined)
        for k, v in state.cols.items():
            assert np.array_equal(v[-spare:], joined.cols[k]), (day, k)
            if isinstance(v.base, np.ndarray) and k not in PER_DAY_COLUMNS:
                assert v.base.size >= v.size, k
    filtered = [k for k in state.cols if k not in PER_DAY_COLUMNS]
    assert {"lapsed", "binge_is_binging"} <= set(filtered)  # bool columns are filtered too
    assert all(state.cols[k].flags.writeable for k in filtered)


def test_state_from_flags_is_the_flag_table_in_byte_arithmetic():
    bits = np.array([[k >> b & 1 for b in range(4)] for k in range(16)], np.bool_)
    got = state_from_flags(bits[:, 0].copy(), bits[:, 1].copy(), bits[:, 2].copy(), bits[:, 3].copy())
    assert got.dtype == np.int8
    assert np.array_equal(got, STATE_BY_FLAGS)


@pytest.mark.parametrize("weight", [2.0, -3.0, 0.0])
def test_lapse_looks_only_at_low_draws_and_gives_the_plain_rule(weight):
    cfg = LifecycleConfig(traits={"lapse_weight": weight}, lapse_daily_chance=0.2)
    n = 50_000
    g = np.random.default_rng(4)
    c = pool(cfg, n).cols
    c["satisfaction"][:] = g.random(n, dtype=np.float32)
    c["satisfaction"][:10] = [0.0, 1.0] * 5  # the bound's end points
    c["state"][::7] = NEW
    alive = g.random(n) < 0.9
    u = g.random(n, dtype=np.float32)
    t = cfg.traits
    chance = np.float32(lapse_chance(cfg, n)) * np.maximum(
        0.0, 1.0 + t.lapse_weight * (t.pivot - c["satisfaction"])
    )
    expected = c["lapsed"] | (alive & (c["state"] != NEW) & (u < chance))
    lapse(c, cfg, u, alive, n)
    assert expected.sum() > 1_000
    assert np.array_equal(c["lapsed"], expected)


def test_plan_changes_look_only_at_low_draws_and_give_the_plain_rule():
    cfg = LifecycleConfig(billing={"upgrade_chance": 0.05, "downgrade_chance": 0.04})
    n = 40_000
    g = np.random.default_rng(5)
    c = pool(cfg, n).cols
    c["satisfaction"][:] = g.random(n, dtype=np.float32)
    c["price_sensitivity"][:] = g.random(n, dtype=np.float32)
    c["satisfaction"][:4] = [0.0, 1.0, 0.0, 1.0]
    c["price_sensitivity"][:4] = [0.0, 0.0, 1.0, 1.0]
    c["plan"][:] = g.integers(0, 3, n)
    c["active_today"][:] = g.random(n) < 0.5
    alive = np.ones(n, np.bool_)
    # the plain rule over every eligible visitor, with the same draw
    idx = np.flatnonzero(c["active_today"] & (c["days_since_signup"] >= cfg.new_days))
    u = np.random.default_rng(9).random(idx.size)
    b, t = cfg.billing, cfg.traits
    s, ps, plan = c["satisfaction"][idx], c["price_sensitivity"][idx], c["plan"][idx]
    up = b.upgrade_chance * np.maximum(0.0, 1.0 + b.satisfaction_weight * (s - t.pivot)) * (1.5 - ps)
    down = b.downgrade_chance * np.maximum(0.0, 1.0 + b.satisfaction_weight * (t.pivot - s)) * (0.5 + ps)
    up, down = np.where(plan == 0, 0.0, up), np.where(plan == 2, 0.0, down)
    expected = plan.copy()
    expected[u < up] -= 1
    expected[~(u < up) & (u < up + down)] += 1
    plan_changes(c, DAY, cfg, np.random.default_rng(9), alive)
    assert (expected != plan).sum() > 500
    assert np.array_equal(c["plan"][idx], expected)


def test_recycled_buffers_give_the_same_days_and_never_touch_shared_memory():
    """Stepping with ``recycle`` (the pool of two days back) gives the same pools as without, and only
    the buffers ``take`` made are reused: the identity registry (whose numbers a new pool's column
    shares with polars) and the recycled pool's frames stay as they were."""
    cfg = LifecycleConfig(persona_pool=3_000)
    start = initial_state(cfg, 3, DAY, burn_in_days=5)  # the burn-in recycles too
    numbers = start.identity["persona_number"].to_numpy()
    assert np.array_equal(numbers, np.arange(1, start.next_number))
    registry = start.identity.clone()
    assert start.buffers() and not new_personas(cfg, 0, DAY, 5, 1, np.random.default_rng(1)).buffers()
    plain, recycled, older = start, start, None
    for day in range(DAY, DAY + 6):
        plain = step_day(plain, day, cfg, 3)
        recycled, older = step_day(recycled, day, cfg, 3, recycle=older), recycled
        for k, v in plain.cols.items():
            assert np.array_equal(v, recycled.cols[k]), (day, k)
        assert plain.identity.equals(recycled.identity)
    assert start.identity.equals(registry)


@pytest.mark.parametrize("weekday", [2, 5])  # a Wednesday and a Saturday
def test_depth_rows_table_gives_the_first_matching_row_of_the_plain_rule(weekday):
    cfg = LifecycleConfig()
    n = 20_000
    g = np.random.default_rng(weekday)
    state = pool(cfg, n)
    c = state.cols
    state.day = DAY + (weekday - day_date(DAY).weekday()) % 7
    c["state"][:] = g.integers(0, len(STATES), n)
    c["pattern"][:] = g.integers(0, len(PATTERNS), n)
    c["binge_is_binging"][:] = g.random(n) < 0.5
    c["days_since_signup"][:] = g.integers(0, 30, n)
    c["event"][:] = g.integers(-1, len(LIFE_EVENTS), n)
    idx = np.flatnonzero(g.random(n) < 0.7)
    key, binge_mode = depth_rows(state, cfg, idx)

    weekend = day_date(state.day).weekday() >= 5
    by_pattern = {DAILY: DEPTH_DAILY, REGULAR: DEPTH_REGULAR, WEEKEND: DEPTH_WEEKEND_PEAK if weekend else
                  DEPTH_WEEKEND, BINGE: DEPTH_BINGE_COOLDOWN, MONTHLY: DEPTH_MONTHLY}  # fmt: skip
    for i, p in enumerate(idx.tolist()):
        st, pat = int(c["state"][p]), int(c["pattern"][p])
        in_binge = pat == BINGE and bool(c["binge_is_binging"][p]) and st != NEW
        if c["event"][p] == LIFE_EVENTS.index("SICK"):
            want = DEPTH_SICK
        elif st == NEW:
            want = DEPTH_NEW
        elif in_binge:
            want = DEPTH_BINGE
        elif st == CASUAL:
            want = DEPTH_CASUAL
        elif c["days_since_signup"][p] >= cfg.pattern_assignment_day:
            want = by_pattern[pat]
        else:
            want = DEPTH_ACTIVE
        assert (key[i], binge_mode[i]) == (want, in_binge), (p, st, pat)
    assert len(set(key.tolist())) == 10  # every row but the other one of WEEKEND / WEEKEND_PEAK


def test_visits_by_depth_row_counts_what_the_rule_applied_to_each_visit_counts():
    cfg = LifecycleConfig(persona_pool=4_000)
    state = initial_state(cfg, 11, DAY, burn_in_days=40)
    for day in range(DAY, DAY + 4):  # Wednesday to Saturday: the weekday and the weekend WEEKEND lines
        state = step_day(state, day, cfg, 11)
        frame = day_frame(state)
        date = day_date(day)
        plain = (
            frame.filter(pl.col("active_today"))
            .group_by(depth_row(date, cfg.pattern_assignment_day).alias("_row"))
            .agg(pl.len(), pl.col("videos_today").sum())
        )
        want = {r[0]: r[1:] for r in plain.iter_rows()}
        assert _visits_by_depth_row(frame, date, cfg.pattern_assignment_day) == want
        assert len(want) >= 8


def test_every_pool_keeps_the_narrow_column_dtypes_and_the_tables_widen_them():
    """The burn-in, each day (signups appended, recycled buffers) and a pool read back from its table all
    hold every column in its ``NUMERIC_COLUMNS`` dtype; the table has the schema's wider types and reads
    back to the same values."""
    cfg = LifecycleConfig(persona_pool=2_000)
    state, older = initial_state(cfg, 5, DAY, burn_in_days=4), None
    pools = [state]
    for day in range(DAY, DAY + 3):
        state, older = step_day(state, day, cfg, 5, recycle=older), state
        pools.append(state)
    for each in (*pools, from_frame(day_frame(state))):
        assert {k: v.dtype for k, v in each.cols.items()} == {
            k: np.dtype(t) for k, t in NUMERIC_COLUMNS.items()
        }
    frame = day_frame(state)
    assert frame.schema["engagement_score"] == pl.Int32 and frame.schema["activity_history"] == pl.UInt32
    back = from_frame(frame)
    for k, v in state.cols.items():
        assert np.array_equal(v, back.cols[k]), k


def test_a_score_change_wider_than_its_dtype_is_made_in_int32():
    """A configured daily gain that would overflow the int8 score from 100 still ends at 100 (not wrapped)."""
    cfg = LifecycleConfig(
        persona_pool=2_000, score_gain_active=40, score_loss_inactive=60, streak_break_penalty=70
    )
    state = initial_state(cfg, 5, DAY, burn_in_days=4)
    before = state.cols["engagement_score"].astype(np.int32)
    after = step_day(state, DAY, cfg, 5)
    score = after.cols["engagement_score"]
    assert score.dtype == np.int8 and score.min() >= 0 and score.max() <= 100
    kept = np.flatnonzero(~state.cols["marked_for_cleanup"])
    was, now = before[kept], score[: kept.size]
    visited = after.cols["active_today"][: kept.size]
    away = ~visited & (state.cols["state"][kept] != CHURNED) & (was > 0)
    assert visited.sum() > 200 and away.sum() > 200
    assert (now[visited] >= np.minimum(was[visited] + 40, 100) - 2).all()  # +40, then satisfaction's +-2
    assert (now[away] == np.maximum(was[away] - 60, 0)).sum() > 200  # -60 a day away
    assert (now[away] <= np.maximum(was[away] - 60, 0)).all()  # (-130 when it breaks a streak)
