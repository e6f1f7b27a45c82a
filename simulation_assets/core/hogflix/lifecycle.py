"""The HogFlix daily lifecycle step, vectorized over every persona.

``step_day`` advances a pool (``PersonaState``) by one UTC day. It is a
sequence of named rules, each a whole-column function of the pool's arrays
(there is no per-persona Python loop), applied in this order:

1. personas marked for cleanup on the previous day are gone (``PersonaState.take``);
2. ``life_events``: events expire, then may start (VACATION, SICK, BUSY_WORK, NEW_RELEASE_HYPE);
3. ``binge_cycle``: BINGE personas move through binge (3-7 d) and cooldown (10-21 d) phases;
4. ``lapse``: an established persona may lose interest (calibration, see config);
5. ``visits``: return probability (pattern base or peak + streak bonus + (score-50)/200,
   replaced by a life event's, times DORMANT 0.30, clipped), then the draw;
6. ``streaks_and_score``: streaks, engagement score (+2 / -1 / -10 on breaking a 7+ streak),
   counters and the 14-day activity history; ``visit_times`` places each visit in the day;
7. ``churn_dormant``: DORMANT personas 30+ days inactive churn with 3 %/day; 90 % marked for cleanup;
8. ``states``: DORMANT after 14 inactive days, NEW for 7 days, CASUAL vs ACTIVE;
9. ``assign_patterns``: at day 14 a permanent pattern is drawn from the plan's weights;
10. ``viewing`` (viewing.py): active personas watch, rate, add to the watchlist, ask FlixBuddy;
11. ``plan_changes``, ``payments`` and ``churn_payment`` (billing.py): plan upgrades and downgrades,
    the monthly charge, dunning, and churn when the last retry fails;
12. ``satisfaction`` (traits.py): satisfaction moves with the day's viewing and feeds the score;
13. ``signups``: 2-5 signups (scaled with the pool) bring the pool back towards its target.

Three uniforms per persona are drawn for everyone (life event, lapse, visit);
every other draw is made only for the personas it concerns, in this fixed
order, so a day is deterministic for a given seed and date.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.hogflix.billing import CHURN_INACTIVE, CHURN_PAYMENT, payments, plan_changes
from simulation_assets.core.hogflix.config import LIFE_EVENTS, PATTERNS, PLANS, STATES, LifecycleConfig
from simulation_assets.core.hogflix.draws import choice, subset_ints
from simulation_assets.core.hogflix.persona_state import (
    ACTIVE,
    BINGE,
    CASUAL,
    CHURNED,
    DORMANT,
    MONTHLY,
    NEW,
    NO_DAY,
    NO_EVENT,
    NO_MS,
    PER_DAY_COLUMNS,
    SET_WHOLE_COLUMNS,
    PersonaState,
    day_date,
)
from simulation_assets.core.hogflix.signups import new_personas, signup_count
from simulation_assets.core.hogflix.timeofday import MS_PER_DAY, MS_PER_HOUR, draw_ms_of_day
from simulation_assets.core.hogflix.traits import (
    REGIONS,
    idle_satisfaction,
    utc_offset_hours,
    visit_satisfaction,
)
from simulation_assets.core.hogflix.viewing import Visits, viewing

Columns = dict[str, np.ndarray]


BLOCK_ROWS = 1 << 16  # rows per block of the whole-pool rules: their columns' blocks fit in a core's cache


def blocks(n: int) -> list[slice]:
    """Return the row blocks of a pool of ``n`` for rules that make several passes over whole columns:
    done block by block, the passes after the first read from cache instead of memory."""
    return [slice(lo, min(lo + BLOCK_ROWS, n)) for lo in range(0, n, BLOCK_ROWS)]


def pattern_weight_matrix(cfg: LifecycleConfig) -> np.ndarray:
    """Return the plan x pattern weight matrix of the "Pattern Assignment" table."""
    return np.array([cfg.pattern_weights[p] for p in PLANS], dtype=np.float64)


# --------------------------------------------------------------------------- the rules, in order


def life_events(
    c: Columns, day: int, cfg: LifecycleConfig, g: np.random.Generator, u: np.ndarray, alive: np.ndarray
) -> None:
    """Expire the events that end today, then start at most one per persona (uniform ``u``)."""
    ending = c["event_ends"] <= day  # a fifth of the pool is in an event: two whole-column tests are
    ending &= c["event"] >= 0  # cheaper than listing them first, and few end on a day
    expired = np.flatnonzero(ending)
    c["event"][expired] = NO_EVENT
    c["event_ends"][expired] = NO_DAY
    thresholds = np.cumsum([cfg.life_events[e].daily_chance for e in LIFE_EVENTS]).astype(np.float32)
    low = np.flatnonzero(u < thresholds[-1])  # a few percent of the pool: the rest cannot start one
    starts = low[alive[low] & (c["event"][low] < 0)]
    kind = np.searchsorted(thresholds, u[starts], side="right").astype(np.int8)
    lows = np.array([cfg.life_events[e].duration_days.low for e in LIFE_EVENTS])
    highs = np.array([cfg.life_events[e].duration_days.high for e in LIFE_EVENTS])
    c["event"][starts] = kind
    c["event_ends"][starts] = day + subset_ints(g, starts, lows[kind], highs[kind])


def binge_cycle(
    c: Columns, day: int, cfg: LifecycleConfig, g: np.random.Generator, alive: np.ndarray
) -> np.ndarray:
    """Flip BINGE personas whose phase ran out between binge and cooldown; return who is binging today."""
    # Whole-column tests of a byte or four per persona, then the few whose phase ends today: cheaper than
    # listing the BINGE personas (an eighth of the pool) and gathering their columns.
    binge = c["pattern"] == BINGE
    binge &= alive
    binge &= c["state"] != NEW
    ends = c["binge_phase_ends"] <= day
    ends &= binge
    flip = np.flatnonzero(ends)
    to_binge = ~c["binge_is_binging"][flip]
    length = np.where(
        to_binge,
        subset_ints(g, flip, cfg.binge_days.low, cfg.binge_days.high),
        subset_ints(g, flip, cfg.binge_cooldown_days.low, cfg.binge_cooldown_days.high),
    )
    c["binge_phase_ends"][flip] = day + length
    c["binge_is_binging"][flip] = to_binge
    binging = np.logical_and(binge, c["binge_is_binging"], out=binge)
    binge_day = c["binge_day"]
    binge_day += 1
    binge_day *= binging
    return binging


def lapse_chance(cfg: LifecycleConfig, pool: int) -> float:
    """Return today's lapse chance: ``lapse_daily_chance`` inside the band, more when the pool is over it."""
    excess = max(0, pool - cfg.pool_range[1]) / (cfg.persona_pool * cfg.pool_band)
    return min(1.0, cfg.lapse_daily_chance * (1.0 + cfg.crowding_lapse * excess))


def lapse(c: Columns, cfg: LifecycleConfig, u: np.ndarray, alive: np.ndarray, pool: int) -> None:
    """An established persona loses interest with ``lapse_chance`` (uniform ``u``), more often the less
    satisfied it is (x (1 + lapse_weight x (pivot - satisfaction)), floored at 0); it stays lapsed, and
    ``lapsed_today`` marks who lapsed on this day."""
    chance = np.float32(lapse_chance(cfg, pool))
    if not cfg.traits.enabled:
        today = alive & (c["state"] != NEW) & (u < chance) & ~c["lapsed"]
        c["lapsed"] |= today
        c["lapsed_today"] |= today
        return
    t = cfg.traits
    # Satisfaction is within 0-1, so no chance exceeds the one at satisfaction 0 (or 1): only the
    # personas whose draw is under that bound (with a margin for float32 rounding) are looked at.
    factor = max(0.0, 1.0 + t.lapse_weight * t.pivot, 1.0 + t.lapse_weight * (t.pivot - 1.0))
    low = np.flatnonzero(u < np.float32(float(chance) * factor * 1.01 + 1e-6))
    own = chance * np.maximum(0.0, 1.0 + t.lapse_weight * (t.pivot - c["satisfaction"][low]))
    hit = low[alive[low] & (c["state"][low] != NEW) & (u[low] < own) & ~c["lapsed"][low]]
    c["lapsed"][hit] = True
    c["lapsed_today"][hit] = True


def return_probability(
    cfg: LifecycleConfig,
    day: int,
    state: np.ndarray,
    pattern: np.ndarray,
    score: np.ndarray,
    streak: np.ndarray,
    event: np.ndarray,
    is_binging: np.ndarray,
    lapsed: np.ndarray,
) -> np.ndarray:
    """Return each persona's chance (0-1, float32) of visiting on ``day``.

    The chance is (starting chance + streak bonus + engagement effect) x multiplier: the starting
    chance by (state, binging, pattern), the bonus and effect by (streak, score), the multiplier by
    (state, lapsed). A life event replaces the sum. Every combination is computed once into one table
    (float32, the same operations in the same order), and each persona looks its chance up with one
    gather: the pool is read once instead of once per part.
    """
    f32 = np.float32
    date = day_date(day)
    weekday = date.weekday()  # Monday = 0
    base = np.array([cfg.patterns[p].base_return for p in PATTERNS], f32)
    peak = np.array([cfg.patterns[p].peak_return or cfg.patterns[p].base_return for p in PATTERNS], f32)
    peak_today = np.array(
        [
            False,  # DAILY has no peak
            weekday in (3, 4, 5),  # REGULAR: Thursday-Saturday boost
            weekday in (5, 6),  # WEEKEND: Saturday and Sunday
            False,  # BINGE: only while a binge period runs (below)
            cfg.monthly_peak_days.low <= date.day <= cfg.monthly_peak_days.high,
        ]
    )
    npat, nstates = len(PATTERNS), len(STATES)
    start = np.empty((nstates, 2, npat), f32)  # [state, binging, pattern]
    # A pattern's defining visits (listed in `unscaled_peaks`) keep their specified chance: the
    # peak is divided by return_scale here because every chance is multiplied by it below.
    for name in cfg.unscaled_peaks:
        peak[PATTERNS.index(name)] /= cfg.return_scale
    start[:] = np.where(peak_today, peak, base)
    start[:, 1, BINGE] = peak[BINGE]
    start[NEW] = cfg.new_base_return

    # streak bonus (per step of days, capped) plus (score - 50) / 200
    steps_to_cap = (
        int(np.ceil(cfg.streak_bonus_max / cfg.streak_bonus_per_step)) if cfg.streak_bonus_per_step else 0
    )
    streak_cap = steps_to_cap * cfg.streak_step_days
    bonus = np.minimum(
        (np.arange(streak_cap + 1) // cfg.streak_step_days) * cfg.streak_bonus_per_step, cfg.streak_bonus_max
    )
    effect = (np.arange(101) - cfg.score_center) / cfg.score_divisor
    additive = (bonus[:, None] + effect[None, :]).astype(f32).ravel()

    # DORMANT x0.30, CHURNED x0, everyone but NEW x return_scale, lapsed x lapsed_return_modifier
    modifier = np.full((nstates, 2), cfg.return_scale)
    modifier[NEW] = 1.0  # "80%+ base return probability" for NEW users, as specified
    modifier[DORMANT] *= cfg.dormant_return_modifier
    modifier[CHURNED] = 0.0
    modifier[:, 1] *= cfg.lapsed_return_modifier
    modifier = modifier.astype(f32)

    # table[state, binging, pattern, lapsed, streak x 101 + score] = (start + additive) x modifier,
    # followed by the chances in a life event: table[event, state, lapsed] = event chance x modifier.
    table = (start[:, :, :, None, None] + additive[None, None, None, None, :]) * modifier[
        :, None, None, :, None
    ]
    event_p = np.array([cfg.life_events[e].return_probability for e in LIFE_EVENTS], f32)
    table = np.concatenate([table.ravel(), (event_p[:, None, None] * modifier[None, :, :]).ravel()])
    # The persona's entry: codes in int8 (state, binging, pattern, lapsed: < 100; event, state,
    # lapsed: < 40), the key in int32.
    on_peak = np.zeros(npat, np.bool_)
    # On its defining peak, a persona kept away by its cadence (not lapsed) returns as specified:
    # the DORMANT modifier is for personas who drifted away, not for a MONTHLY one between check-ins.
    if cfg.defining_peaks and cfg.dormant_return_modifier > 0:
        for name in cfg.defining_peaks:
            on_peak[PATTERNS.index(name)] = True
        on_peak &= peak_today
        on_peak[BINGE] = False  # a binge never runs while DORMANT's inactivity would keep it dormant
    event_key = table.size - event_p.size * 2 * nstates
    season = f32(season_factor(cfg, day))
    p = np.empty(len(state), f32)
    # Block by block (``blocks``): each block's temporaries stay in cache between the passes.
    for b in blocks(len(state)):
        st, pat, lap, ev = state[b], pattern[b], lapsed[b], event[b]
        code = st * np.int8(4 * npat)
        code += is_binging[b].view(np.int8) * np.int8(2 * npat)
        code += pat * np.int8(2)
        code += lap.view(np.int8)
        key = np.minimum(streak[b], np.int32(streak_cap)).astype(np.int32, copy=False)
        key *= np.int32(101)
        key += np.clip(score[b], 0, 100)
        key += np.multiply(code, additive.size, dtype=np.int32)
        in_event = np.flatnonzero(ev >= 0)  # a few percent of the pool: their keys are rewritten alone
        if in_event.size:
            code = ev[in_event] * np.int8(2 * nstates)
            code += st[in_event] * np.int8(2)
            code += lap[in_event].view(np.int8)
            key[in_event] = np.add(code, event_key, dtype=np.int32)
        pb = np.take(table, key, out=p[b])
        if on_peak.any():
            dormant = np.flatnonzero(st == DORMANT)
            back = dormant[on_peak[pat[dormant]] & ~lap[dormant] & (ev[dormant] < 0)]
            pb[back] /= f32(cfg.dormant_return_modifier)
        if season != 1.0:
            pb *= season
        np.clip(pb, f32(0.0), f32(1.0), out=pb)
    return p


def season_factor(cfg: LifecycleConfig, day: int) -> float:
    """Return the day's seasonal multiplier of every return chance (1 when seasons are off).

    Yearly: 1 + amplitude x cos(2 pi (day of year - peak) / 365); a holiday multiplies on top.
    """
    if not cfg.seasons.enabled:
        return 1.0
    yearly, holiday = season_parts(cfg, day_date(day))
    return float(yearly * holiday)


def season_parts(cfg: LifecycleConfig, date: dt.date) -> tuple[float, float]:
    """Return the configured (yearly, holiday) multipliers of ``date``, whether or not seasons are on."""
    yearly = 1.0 + cfg.seasons.yearly_amplitude * np.cos(
        2.0 * np.pi * (date.timetuple().tm_yday - cfg.seasons.yearly_peak_day) / 365.0
    )
    return float(yearly), float(cfg.seasons.holidays.get(date.strftime("%m-%d"), 1.0))


def visits(c: Columns, day: int, cfg: LifecycleConfig, u: np.ndarray, binging: np.ndarray) -> np.ndarray:
    """Return who visits today: uniform ``u`` under the return probability (CHURNED never visit).

    A MONTHLY persona checks in once: on days 2-3 of the month, one who already came this month
    has its base chance, not the check-in's.
    """
    prob = return_probability(
        cfg,
        day,
        c["state"],
        c["pattern"],
        c["engagement_score"],
        c["consecutive_active_days"],
        c["event"],
        binging,
        c["lapsed"],
    )
    day_of_month = day_date(day).day
    low, high = cfg.monthly_peak_days.low, cfg.monthly_peak_days.high
    if low < day_of_month <= high:
        earlier = np.uint32((1 << (day_of_month - low)) - 1)  # history bit 0 is yesterday
        done = np.flatnonzero((c["pattern"] == MONTHLY) & ((c["history"] & earlier) != 0) & (c["event"] < 0))
        if done.size:
            off_peak = cfg.model_copy(
                update={"monthly_peak_days": type(cfg.monthly_peak_days)(low=0, high=0)}
            )
            prob[done] = return_probability(
                off_peak, day, c["state"][done], c["pattern"][done], c["engagement_score"][done],
                c["consecutive_active_days"][done], c["event"][done], binging[done], c["lapsed"][done],
            )  # fmt: skip
    return u < prob


def streaks_and_score(c: Columns, cfg: LifecycleConfig, active: np.ndarray, alive: np.ndarray) -> None:
    """Update streaks, missed days, the engagement score, session totals and the activity history.

    The score moves +2 on an active day, -1 on an inactive one and -10 more
    when a streak of 7+ days breaks, within 0-100. Written as a lookup table and
    multiplications: no masked writes on full columns.
    """
    # The score's change, in small integers: -1 on a day away, -10 more when it breaks a 7+ day
    # streak, +2 on a visit, 0 for the churned.
    small = (
        np.int8
        if max(abs(cfg.score_gain_active), cfg.score_loss_inactive + abs(cfg.streak_break_penalty)) < 100
        else np.int32
    )
    # The score (0-100) moved by the day's change stays within its narrow dtype, unless the configured
    # changes are that large: then it is moved in int32.
    moves = (
        cfg.score_gain_active,
        -cfg.score_loss_inactive,
        -cfg.score_loss_inactive - cfg.streak_break_penalty,
    )
    limits = np.iinfo(c["engagement_score"].dtype)
    in_place = min(moves) >= limits.min and 100 + max(moves) <= limits.max
    window_mask = c["history"].dtype.type((1 << cfg.casual_window_days) - 1)
    for b in blocks(len(active)):  # each block's columns stay in cache between the passes
        visit, live = active[b], alive[b]
        inactive = ~visit
        streak = c["consecutive_active_days"][b]
        delta = np.multiply(streak >= cfg.streak_break_min_days, small(-cfg.streak_break_penalty))
        delta -= small(cfg.score_loss_inactive)
        delta *= inactive  # the day away's change, or 0 on a visit, then the visit's gain (a masked
        delta += np.multiply(visit, small(cfg.score_gain_active))  # copy is several times slower)
        delta *= live
        score = c["engagement_score"][b]
        if in_place:
            score += delta
            np.clip(score, 0, 100, out=score)
        else:
            np.copyto(score, np.clip(np.add(score, delta, dtype=np.int32), 0, 100), casting="unsafe")
        streak += 1
        streak *= visit
        missed = c["consecutive_missed_days"][b]
        missed += live
        missed *= inactive
        c["total_sessions"][b] += visit
        history = c["history"][b]
        np.left_shift(history, history.dtype.type(1), out=history)
        history |= visit
        history &= window_mask
    np.copyto(c["active_today"], active)


_OFFSET_MS = (
    utc_offset_hours(np.arange(len(REGIONS), dtype=np.int8)).astype(np.int64) * MS_PER_HOUR
)  # by region


def visit_times(
    c: Columns, day: int, cfg: LifecycleConfig, g: np.random.Generator, active: np.ndarray
) -> np.ndarray:
    """Place each visit in the day by the evening-peaked hourly profile, in the persona's local time
    (its region's UTC offset) and within the UTC day; it becomes ``last_active``. Return the visitors'
    positions (ascending)."""
    active_idx = np.flatnonzero(active)
    session_ms = c["session_start_ms"]
    session_ms.fill(NO_MS)
    u_time = g.random((2, active_idx.size), dtype=np.float32)
    ms_of_day = draw_ms_of_day(u_time[0], u_time[1])
    if cfg.regions_enabled:  # local hour h is UTC hour h - offset
        ms_of_day -= np.take(_OFFSET_MS, c["region"][active_idx])
        ms_of_day %= MS_PER_DAY
    ms_of_day += day * MS_PER_DAY
    session_ms[active_idx] = ms_of_day
    c["last_active_ms"][active_idx] = ms_of_day
    return active_idx


def churn_chance(cfg: LifecycleConfig, pool: int) -> float:
    """Return today's churn chance of a long-dormant persona: the base 3 % at the bottom of the pool's
    band (380 of 400) or below, rising linearly by ``crowding_churn`` times the base across the band
    (with the defaults: 3 % at 380, 4.9 % at 400, 6.9 % at 420).
    """
    low, high = cfg.pool_range
    crowding = max(0, pool - low) / max(high - low, 1)
    return min(1.0, cfg.dormant_daily_churn * (1.0 + cfg.crowding_churn * crowding))


def churn_dormant(
    c: Columns, day: int, cfg: LifecycleConfig, g: np.random.Generator, pool: int
) -> np.ndarray:
    """DORMANT personas inactive 30+ days churn, 90 % of them marked for cleanup; returns their positions.

    A lapsed persona (one who lost interest) churns with ``churn_chance`` of the morning's ``pool``;
    one whose cadence alone kept it away (a MONTHLY persona that missed a month) with the base 3 %.
    """
    at_risk = np.flatnonzero(
        (c["state"] == DORMANT) & (c["consecutive_missed_days"] >= cfg.churn_after_inactive_days)
    )
    chance = np.where(c["lapsed"][at_risk], churn_chance(cfg, pool), cfg.dormant_daily_churn)
    chance = chance * np.array([cfg.churn_by_plan[p] for p in PLANS])[c["plan"][at_risk]]
    churn_idx = at_risk[g.random(at_risk.size) < chance]
    c["churned_today"][churn_idx] = True
    c["churned_day"][churn_idx] = day
    c["churn_reason"][churn_idx] = CHURN_INACTIVE
    c["marked_for_cleanup"][churn_idx] = g.random(churn_idx.size) < cfg.churn_cleanup_share
    return churn_idx


# State by flag bits (1 casual, 2 new, 4 dormant, 8 churned): the highest set bit wins.
STATE_BY_FLAGS = np.array([ACTIVE, CASUAL] + [NEW] * 2 + [DORMANT] * 4 + [CHURNED] * 8, np.int8)


def state_from_flags(
    casual: np.ndarray, new: np.ndarray, dormant: np.ndarray, churned: np.ndarray
) -> np.ndarray:
    """Return ``STATE_BY_FLAGS`` of the four flags (int8), in byte arithmetic instead of a lookup.

    The codes are ordered so that a maximum picks the winner: ACTIVE (1) or CASUAL (2), zeroed to
    NEW (0) where new, then raised to DORMANT (3) and CHURNED (4).
    """
    state = casual.view(np.uint8) + np.uint8(ACTIVE)
    state *= ~new
    np.maximum(state, np.multiply(dormant, np.uint8(DORMANT)), out=state)
    np.maximum(state, np.multiply(churned, np.uint8(CHURNED)), out=state)
    return state.view(np.int8)


assert (NEW, ACTIVE, CASUAL, DORMANT, CHURNED) == (0, 1, 2, 3, 4), "state_from_flags relies on this order"


def states(c: Columns, day: int, cfg: LifecycleConfig, active: np.ndarray, churn_idx: np.ndarray) -> None:
    """Set each persona's end-of-day state, in rising priority ACTIVE, CASUAL, NEW, DORMANT, CHURNED.

    CASUAL: fewer than ``casual_max_active_days`` visits in the 14-day window;
    NEW: under 7 days since signup; DORMANT: 14+ days without a visit; a visit
    from DORMANT is a reactivation and clears the lapse.
    """
    old_state = c["state"]
    churned = old_state == CHURNED
    churned[churn_idx] = True
    new_state = state_from_flags(
        np.bitwise_count(c["history"]) < cfg.casual_max_active_days,
        c["days_since_signup"] < cfg.new_days,
        c["consecutive_missed_days"] >= cfg.dormant_after_inactive_days,
        churned,
    )
    changed = np.flatnonzero(new_state != old_state)
    # Written into the pool's own buffers (not new arrays), so that ``append`` extends them in place.
    np.logical_and(old_state == DORMANT, active, out=c["reactivated_today"])
    c["lapsed"] &= ~c["reactivated_today"]
    np.copyto(old_state, new_state)
    c["state_changed_ms"][changed] = np.where(
        active[changed], c["session_start_ms"][changed], day * MS_PER_DAY + MS_PER_DAY - 1
    )


def assign_patterns(
    c: Columns, day: int, cfg: LifecycleConfig, g: np.random.Generator, alive: np.ndarray
) -> None:
    """On day 14 after signup draw the permanent pattern from the plan's weights; BINGE starts cooling down."""
    assign = np.flatnonzero(alive & (c["days_since_signup"] == cfg.pattern_assignment_day))
    c["pattern"][assign] = choice(g.random(assign.size), pattern_weight_matrix(cfg)[c["plan"][assign]])
    new_binge = assign[c["pattern"][assign] == BINGE]
    c["binge_is_binging"][new_binge] = False
    c["binge_phase_ends"][new_binge] = day + subset_ints(g, new_binge, 1, cfg.binge_cooldown_days.high)


def churn_payment(
    c: Columns, day: int, cfg: LifecycleConfig, g: np.random.Generator, idx: np.ndarray
) -> None:
    """The personas at ``idx`` churn today because their last dunning retry failed; 90 % marked for cleanup."""
    if idx.size == 0:
        return
    c["state"][idx] = CHURNED
    c["state_changed_ms"][idx] = day * MS_PER_DAY + MS_PER_DAY - 1
    c["churned_today"][idx] = True
    c["churned_day"][idx] = day
    c["churn_reason"][idx] = CHURN_PAYMENT
    c["marked_for_cleanup"][idx] = g.random(idx.size) < cfg.churn_cleanup_share


def satisfaction(c: Columns, cfg: LifecycleConfig, alive: np.ndarray, visits: Visits) -> None:
    """Move satisfaction with the day's viewing and feed it to the engagement score on a visit.

    A visit moves it towards the day's experience (completion and stars, ``traits.satisfaction_step``);
    a day away drifts it towards neutral. On a visit the score gains round(4 x (satisfaction - 0.6))
    on top of the specification's +2.
    """
    if not cfg.traits.enabled:
        return
    t = cfg.traits
    sat = c["satisfaction"]  # the pool's own array (take() copied it): updated in place
    idx = visits.idx
    visitors = sat[idx] if visits.satisfaction is None else visits.satisfaction
    churned = np.flatnonzero(~alive)
    kept = sat[churned]
    # A day away drifts it towards neutral. Most of the pool is away on a given day: the drift is
    # computed over whole columns, then the visitors and the churned (whose satisfaction stays) are
    # written over it.
    for b in blocks(len(sat)):  # the block's float64 and float32 temporaries stay in cache
        idle_satisfaction(cfg, sat[b])
    sat[churned] = kept
    # A visit (visitors are alive): towards the day's experience, and the score follows.
    moved = visit_satisfaction(cfg, visitors, visits.completion, visits.ratings > 0, visits.avg_rating)
    sat[idx] = moved
    bonus = np.rint(t.score_weight * (moved - t.pivot)).astype(np.int32)
    c["engagement_score"][idx] = np.clip(c["engagement_score"][idx] + bonus, 0, 100)


def signups(state: PersonaState, cfg: LifecycleConfig, seed: int) -> PersonaState:
    """Return the pool with today's signups appended (2-5 at pool 400), each on its first visit."""
    churned = int(np.count_nonzero(state.cols["churned_today"]))
    # The morning's pool (before today's churn): the gap to the target is closed from there.
    pool_now = len(state) - int(np.count_nonzero(state.cols["state"] == CHURNED)) + churned
    gs = rng_mod.stream(seed, "hogflix", "signups", day_date(state.day).isoformat())
    count = signup_count(cfg, pool_now, churned, float(gs.random()))
    if not count:
        return state
    joined = new_personas(cfg, seed, state.day, count, state.next_number, gs)
    viewing(joined, cfg, gs, signup=True)
    return state.append(joined)


# --------------------------------------------------------------------------- the day step


def step_day(
    prev: PersonaState, day: int, cfg: LifecycleConfig, seed: int, recycle: PersonaState | None = None
) -> PersonaState:
    """Advance the pool from the end of ``day - 1`` to the end of ``day`` (the rules above, in order).

    ``prev`` is left as it was. ``recycle``: a pool the caller will not read again (say the one of
    ``day - 2`` in a run of days, with every frame made from it dropped): today's columns are written
    into its buffers instead of fresh memory. The result is the same either way.
    """
    if day != prev.day + 1:
        raise ValueError(f"step_day expects the day after {day_date(prev.day)}, got {day_date(day)}")
    cfg = cfg.for_date(day_date(day))  # a scheduled target pool (dynamic pool scaling)
    signup_high = cfg.signup_range[1]
    into = recycle.buffers() if recycle is not None and recycle is not prev else None
    s = prev.take(
        ~prev.cols["marked_for_cleanup"], PER_DAY_COLUMNS, signup_high, into=into, unset=SET_WHOLE_COLUMNS
    )
    c = s.cols  # take() returned fresh arrays, updated in place below
    g = rng_mod.stream(seed, "hogflix", "lifecycle", day_date(day).isoformat())
    u = g.random((3, len(s)), dtype=np.float32)
    alive = c["state"] != CHURNED
    c["days_since_signup"] += 1

    life_events(c, day, cfg, g, u[0], alive)
    binging = binge_cycle(c, day, cfg, g, alive)
    pool = int(np.count_nonzero(alive))
    lapse(c, cfg, u[1], alive, pool)
    active = visits(c, day, cfg, u[2], binging)
    streaks_and_score(c, cfg, active, alive)
    visitors = visit_times(c, day, cfg, g, active)
    churn_idx = churn_dormant(c, day, cfg, g, pool)
    states(c, day, cfg, active, churn_idx)
    assign_patterns(c, day, cfg, g, alive)

    state = PersonaState(day=day, cols=c, identity=s.identity, next_number=s.next_number, owned=s.owned)
    visited = viewing(state, cfg, g, visitors=visitors)  # today's visitors, as the rules above left them
    plan_changes(c, day, cfg, g, alive)
    churn_payment(c, day, cfg, g, payments(c, day, cfg, g, alive))
    satisfaction(c, cfg, alive, visited)
    return signups(state, cfg, seed)
