"""The HogFlix daily lifecycle step, vectorized over every persona.

A pool is held as a struct of NumPy arrays (``PersonaState``); ``step_day``
advances it by one UTC day and returns a new state. There is no per-persona
Python loop: every rule is a whole-column expression. Days are integers
counted from 1970-01-01; instants are int64 milliseconds since the epoch.

Order of one day (each line is a rule of the specification unless marked):
 1. personas marked for cleanup on the previous day are gone (deleted);
 2. life events expire, then may start (VACATION, SICK, BUSY_WORK, NEW_RELEASE_HYPE);
 3. BINGE personas move through binge (3-7 d) and cooldown (10-21 d) phases;
 4. an established persona may lapse (calibration, see config);
 5. return probability: pattern base or peak + streak bonus + (score-50)/200,
    replaced by a life event's, times DORMANT 0.30, clipped; then the draw;
 6. streaks, engagement score (+2 / -1 / -10 on breaking a 7+ streak), counters;
 7. DORMANT personas 30+ days inactive churn with 3 %/day; 90 % marked for cleanup;
 8. states: DORMANT after 14 inactive days, NEW for 7 days, CASUAL vs ACTIVE;
 9. at day 14 a permanent pattern is drawn from the plan's weights;
10. active personas watch videos (session-depth table), rate, add to watchlist,
    ask FlixBuddy (10 % of active, at most 50);
11. 2-5 signups (scaled with the pool) bring the pool back towards its target.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.hogflix.config import (
    LIFE_EVENTS,
    PATTERNS,
    PLANS,
    STATES,
    LifecycleConfig,
)
from simulation_assets.core.hogflix.ids import format_uuids
from simulation_assets.core.hogflix.timeofday import MS_PER_DAY, draw_ms_of_day

EPOCH = dt.date(1970, 1, 1)
NEW, ACTIVE, CASUAL, DORMANT, CHURNED = range(len(STATES))
DAILY, REGULAR, WEEKEND, BINGE, MONTHLY = range(len(PATTERNS))
NO_EVENT = -1
NO_DAY = -1
NO_MS = -1
CHURN_REASON = "inactive_30_days"

# Numeric columns of the state and their dtypes.
_NUMERIC: dict[str, type] = {
    "persona_number": np.int64,
    "plan": np.int8,
    "state": np.int8,
    "pattern": np.int8,
    "created_ms": np.int64,
    "state_changed_ms": np.int64,
    "last_active_ms": np.int64,
    "days_since_signup": np.int32,
    "consecutive_active_days": np.int32,
    "consecutive_missed_days": np.int32,
    "total_sessions": np.int32,
    "engagement_score": np.int32,
    "videos_watched": np.int32,
    "avg_watch_completion": np.float64,
    "ratings_given": np.int32,
    "watchlist_size": np.int32,
    "flixbuddy_conversations": np.int32,
    "event": np.int8,
    "event_ends": np.int32,
    "binge_is_binging": np.bool_,
    "binge_day": np.int32,
    "binge_phase_ends": np.int32,
    "churned_day": np.int32,
    "lapsed": np.bool_,
    "history": np.uint32,
    "marked_for_cleanup": np.bool_,
    "signed_up_today": np.bool_,
    "active_today": np.bool_,
    "reactivated_today": np.bool_,
    "churned_today": np.bool_,
    "session_start_ms": np.int64,
    "videos_today": np.int32,
    "completion_today": np.float64,
    "ratings_today": np.int32,
    "watchlist_adds_today": np.int32,
    "flixbuddy_today": np.bool_,
    "binge_mode_today": np.bool_,
}
IDENTITY_COLUMNS = ("distinct_id", "email", "user_id", "profile_id", "source")
# Columns that describe only the current day: they start from zero every day.
_PER_DAY_COLUMNS = (
    "signed_up_today",
    "active_today",
    "reactivated_today",
    "churned_today",
    "flixbuddy_today",
    "binge_mode_today",
    "videos_today",
    "ratings_today",
    "watchlist_adds_today",
    "completion_today",
    "marked_for_cleanup",
    "session_start_ms",
)


@dataclass
class PersonaState:
    """A persona pool on one day.

    ``cols`` holds the numeric columns, one array each, ordered by ascending
    ``persona_number``. ``identity`` is a registry of the string columns keyed
    by ``persona_number`` (also ascending); it may still list personas that
    have since been deleted, so the day step never has to touch strings.
    """

    day: int
    cols: dict[str, np.ndarray]
    identity: pl.DataFrame
    next_number: int = field(default=1)

    def __len__(self) -> int:
        return len(self.cols["state"])

    def take(self, mask: np.ndarray, fresh: tuple[str, ...] = (), spare: int = 0) -> PersonaState:
        """Return the personas where ``mask`` is true; columns named in ``fresh`` come back zeroed.

        Each column is a view of a buffer with ``spare`` more rows, so that
        ``append`` can add that many personas without copying the pool again.
        The identity registry is compacted when it is mostly stale.
        """
        keep = np.flatnonzero(mask)
        size = keep.size
        cols = {}
        for k, v in self.cols.items():
            if k in fresh:
                cols[k] = np.zeros(size + spare, v.dtype)[:size]
            else:
                buf = np.empty(size + spare, v.dtype)
                cols[k] = np.take(v, keep, out=buf[:size], mode="clip")  # "clip": no buffered copy
        identity = self.identity
        if identity.height > 2 * max(size, 1):
            identity = identity.filter(pl.col("persona_number").is_in(pl.Series(cols["persona_number"])))
        return PersonaState(day=self.day, cols=cols, identity=identity, next_number=self.next_number)

    def append(self, other: PersonaState) -> PersonaState:
        """Return this pool followed by ``other`` (same day, higher persona numbers).

        Columns that still view a buffer made by ``take`` with room to spare are
        extended in place inside that buffer; the others are concatenated.
        """
        n, m = len(self), len(other)
        cols = {}
        for k, v in self.cols.items():
            buf = v.base
            if (
                buf is not None
                and buf.ndim == 1
                and buf.dtype == v.dtype
                and buf.size >= n + m
                and (v.ctypes.data == buf.ctypes.data and v.strides == buf.strides)
            ):
                buf[n : n + m] = other.cols[k]
                cols[k] = buf[: n + m]
            else:
                cols[k] = np.concatenate([v, other.cols[k]])
        return PersonaState(
            day=self.day,
            cols=cols,
            identity=pl.concat([self.identity, other.identity]),
            next_number=max(self.next_number, other.next_number),
        )

    def identity_rows(self) -> pl.DataFrame:
        """Return the identity columns aligned row by row with ``cols``."""
        registry = self.identity["persona_number"].to_numpy()
        rows = np.searchsorted(registry, self.cols["persona_number"])
        return self.identity[rows].select(list(IDENTITY_COLUMNS))


def day_number(date: dt.date) -> int:
    """Return days since 1970-01-01."""
    return (date - EPOCH).days


def day_date(day: int) -> dt.date:
    """Return the calendar date of a day number."""
    return EPOCH + dt.timedelta(days=int(day))


def _ints(u: np.ndarray, low: int, high: int) -> np.ndarray:
    """Map uniforms to integers uniformly in [low, high]."""
    return (low + np.floor(u * (high - low + 1))).astype(np.int32)


def _choice(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Map uniforms to category indices with the given (row-wise or shared) weights."""
    if weights.ndim == 1:
        cdf = np.cumsum(weights) / weights.sum()
        return np.searchsorted(cdf, u, side="right").clip(0, len(weights) - 1).astype(np.int8)
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    return (u[:, None] >= cdf).sum(axis=1).clip(0, weights.shape[1] - 1).astype(np.int8)


def _pattern_weight_matrix(cfg: LifecycleConfig) -> np.ndarray:
    return np.array([cfg.pattern_weights[p] for p in PLANS], dtype=np.float64)


# --------------------------------------------------------------------------- signups


def _uuid_strings(rng: np.random.Generator, n: int) -> pl.Series:
    """Return ``n`` random version-4 UUID strings drawn from ``rng``."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return format_uuids(raw)


def identities(
    cfg: LifecycleConfig, numbers: np.ndarray, created_ms: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    """Return distinct_id ``p_<nnnnn>_<signup ms>``, the synthetic e-mail and app ids for new personas."""
    n = len(numbers)
    ids = pl.DataFrame({"number": numbers.astype(np.int64), "ms": created_ms.astype(np.int64)}).select(
        distinct_id=pl.concat_str(
            pl.lit("p_"),
            pl.col("number").cast(pl.String).str.zfill(5),
            pl.lit("_"),
            pl.col("ms").cast(pl.String),
        )
    )
    return ids.with_columns(
        email=pl.col("distinct_id") + f"@{cfg.email_domain}",
        user_id=_uuid_strings(rng, n),
        profile_id=_uuid_strings(rng, n),
    )


def new_personas(
    cfg: LifecycleConfig, seed: int, day: int, count: int, first_number: int, rng: np.random.Generator
) -> PersonaState:
    """Return ``count`` NEW personas who sign up on ``day`` (identities ``p_<n>_<ms>``)."""
    n = int(count)
    u = rng.random((6, n))
    created_ms = day * MS_PER_DAY + draw_ms_of_day(u[0], u[1])
    numbers = np.arange(first_number, first_number + n, dtype=np.int64)
    plan = _choice(u[2], np.array([cfg.plan_weights[p] for p in PLANS]))
    sources = list(cfg.source_weights)
    source_idx = _choice(u[3], np.array([cfg.source_weights[s] for s in sources]))
    score = _ints(u[4], cfg.new_score.low, cfg.new_score.high)
    identity = (
        identities(cfg, numbers, created_ms, rng)
        .with_columns(
            persona_number=pl.Series(numbers, dtype=pl.Int64),
            source=pl.Series(sources, dtype=pl.String).gather(source_idx),
        )
        .select("persona_number", *IDENTITY_COLUMNS)
    )
    zeros32 = np.zeros(n, np.int32)
    cols = {k: np.zeros(n, dtype=t) for k, t in _NUMERIC.items()}
    cols.update(
        persona_number=numbers,
        plan=plan,
        state=np.full(n, NEW, np.int8),
        pattern=np.full(n, DAILY, np.int8),
        created_ms=created_ms,
        state_changed_ms=created_ms,
        last_active_ms=np.full(n, NO_MS, np.int64),
        engagement_score=score,
        event=np.full(n, NO_EVENT, np.int8),
        event_ends=np.full(n, NO_DAY, np.int32),
        binge_phase_ends=np.full(n, NO_DAY, np.int32),
        churned_day=np.full(n, NO_DAY, np.int32),
        session_start_ms=np.full(n, NO_MS, np.int64),
        days_since_signup=zeros32,
        signed_up_today=np.ones(n, np.bool_),
    )
    return PersonaState(day=day, cols=cols, identity=identity, next_number=first_number + n)


def _signup_count(cfg: LifecycleConfig, pool_now: int, u: float) -> int:
    """Signups today: the gap to the replenish level, kept inside the scaled 2-5 band, with jitter.

    Signups never fall below the band's minimum, so only churn can shrink the
    pool; refilling to a level a little under the target leaves room for the
    days when churn runs below that minimum.
    """
    low, high = cfg.signup_range
    gap = cfg.replenish_level - pool_now
    jitter = int(np.floor(u * (1 + round(cfg.signup_scale))))  # 0..1 at pool 400
    return int(np.clip(gap + jitter, low, high))


# --------------------------------------------------------------------------- initial pool


def initial_state(cfg: LifecycleConfig, seed: int, genesis_day: int, burn_in_days: int = 150) -> PersonaState:
    """Return the pool as it stands at the end of ``genesis_day - 1``.

    A crude pool of ``persona_pool`` personas with spread-out tenures is created
    ``burn_in_days`` before the genesis day and stepped forward day by day with
    the ordinary rules, so the first simulated day already has dormant personas,
    lapses and churn in flight instead of a pool that is all fresh.
    """
    start = genesis_day - burn_in_days
    g = rng_mod.stream(seed, "hogflix", "initial-pool")
    n = cfg.persona_pool
    state = new_personas(cfg, seed, start, n, 1, g)
    u = g.random((5, n))
    tenure = _ints(u[0], cfg.initial_tenure_days.low, cfg.initial_tenure_days.high)
    c = state.cols
    c["created_ms"] = c["created_ms"] - tenure.astype(np.int64) * MS_PER_DAY
    c["state_changed_ms"] = c["created_ms"].copy()
    c["days_since_signup"] = tenure
    c["signed_up_today"][:] = False
    established = tenure >= cfg.new_days
    assigned = tenure >= cfg.pattern_assignment_day
    c["state"] = np.where(established, ACTIVE, NEW).astype(np.int8)
    c["pattern"] = np.where(assigned, _choice(u[1], _pattern_weight_matrix(cfg)[c["plan"]]), DAILY).astype(
        np.int8
    )
    c["engagement_score"] = np.where(
        established,
        _ints(u[2], cfg.active_score.low, cfg.active_score.high),
        c["engagement_score"],
    ).astype(np.int32)
    # A share of the established personas has already drifted away, so churn flows from day one.
    away = established & (u[4] < cfg.initial_dormant_share)
    missed = np.where(away, _ints(g.random(n), 1, 3 * cfg.churn_after_inactive_days), 0).astype(np.int32)
    c["lapsed"] = away
    c["consecutive_missed_days"] = missed
    c["state"] = np.where(missed >= cfg.dormant_after_inactive_days, DORMANT, c["state"]).astype(np.int8)
    c["last_active_ms"] = (start - missed).astype(np.int64) * MS_PER_DAY - MS_PER_DAY // 4
    c["history"] = np.where(away, 0, 0b1111111).astype(np.uint32)
    binge = c["pattern"] == BINGE
    c["binge_phase_ends"] = np.where(
        binge, start + _ints(u[3], 1, cfg.binge_cooldown_days.high), NO_DAY
    ).astype(np.int32)
    # Identities carry the signup time: rebuild them with the backdated one.
    fresh = identities(cfg, c["persona_number"], c["created_ms"], g)
    state.identity = state.identity.with_columns([fresh[k] for k in fresh.columns])
    state.day = start
    for day in range(start + 1, genesis_day):
        state = step_day(state, day, cfg, seed)
    return state


# --------------------------------------------------------------------------- the day step


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

    The rules are folded into three small tables, looked up per persona:
    the starting chance by (state, binging, pattern), the streak bonus plus
    the engagement effect by (streak, score), and the multiplier by (state,
    lapsed). A life event replaces the first two parts.
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
    npat = len(PATTERNS)
    start = np.empty((len(STATES), 2, npat), f32)  # [state, binging, pattern]
    start[:] = np.where(peak_today, peak, base)
    start[:, 1, BINGE] = peak[BINGE]
    start[NEW] = cfg.new_base_return
    code = state.astype(np.intp) * (2 * npat)
    code += is_binging.view(np.uint8) * npat
    code += pattern
    p = start.ravel()[code]

    # streak bonus (per step of days, capped) plus (score - 50) / 200, one table
    steps_to_cap = (
        int(np.ceil(cfg.streak_bonus_max / cfg.streak_bonus_per_step)) if cfg.streak_bonus_per_step else 0
    )
    streak_cap = steps_to_cap * cfg.streak_step_days
    bonus = np.minimum(
        (np.arange(streak_cap + 1) // cfg.streak_step_days) * cfg.streak_bonus_per_step, cfg.streak_bonus_max
    )
    effect = (np.arange(101) - cfg.score_center) / cfg.score_divisor
    additive = (bonus[:, None] + effect[None, :]).astype(f32).ravel()
    key = np.minimum(streak, streak_cap).astype(np.intp)
    key *= 101
    key += np.clip(score, 0, 100)
    p += additive[key]

    in_event = np.flatnonzero(event >= 0)
    event_p = np.array([cfg.life_events[e].return_probability for e in LIFE_EVENTS], f32)
    p[in_event] = event_p[event[in_event]]

    # DORMANT x0.30, CHURNED x0, everyone x return_scale, lapsed x lapsed_return_modifier
    modifier = np.full((len(STATES), 2), cfg.return_scale)
    modifier[DORMANT] *= cfg.dormant_return_modifier
    modifier[CHURNED] = 0.0
    modifier[:, 1] *= cfg.lapsed_return_modifier
    code = state.astype(np.intp) * 2
    code += lapsed.view(np.uint8)
    p *= modifier.astype(f32).ravel()[code]
    return np.clip(p, f32(0.0), f32(1.0), out=p)


def _subset_ints(
    g: np.random.Generator, idx: np.ndarray, low: np.ndarray | int, high: np.ndarray | int
) -> np.ndarray:
    """Return uniform integers in [low, high] for the personas at ``idx`` (bounds may be per persona)."""
    return (low + np.floor(g.random(idx.size) * (np.asarray(high) - low + 1))).astype(np.int32)


def step_day(prev: PersonaState, day: int, cfg: LifecycleConfig, seed: int) -> PersonaState:
    """Advance the pool from the end of ``day - 1`` to the end of ``day``.

    Three uniforms per persona are drawn for everyone (life event, lapse,
    visit); every other draw is made only for the personas it concerns, in a
    fixed order, so the day stays deterministic for a given seed and date.
    """
    if day != prev.day + 1:
        raise ValueError(f"step_day expects the day after {day_date(prev.day)}, got {day_date(day)}")
    date_key = day_date(day).isoformat()
    signup_low, signup_high = cfg.signup_range
    s = prev.take(~prev.cols["marked_for_cleanup"], fresh=_PER_DAY_COLUMNS, spare=signup_high)
    s.day = day
    c = s.cols  # take() returned fresh arrays, updated in place below
    n = len(c["state"])
    g = rng_mod.stream(seed, "hogflix", "lifecycle", date_key)
    u = g.random((3, n), dtype=np.float32)
    alive = c["state"] != CHURNED
    c["days_since_signup"] += 1

    # 2. life events: expire, then start at most one
    expired = np.flatnonzero((c["event"] >= 0) & (c["event_ends"] <= day))
    c["event"][expired] = NO_EVENT
    c["event_ends"][expired] = NO_DAY
    thresholds = np.cumsum([cfg.life_events[e].daily_chance for e in LIFE_EVENTS]).astype(np.float32)
    starts = np.flatnonzero(alive & (c["event"] < 0) & (u[0] < thresholds[-1]))
    kind = np.searchsorted(thresholds, u[0][starts], side="right").astype(np.int8)
    lows = np.array([cfg.life_events[e].duration_days.low for e in LIFE_EVENTS])
    highs = np.array([cfg.life_events[e].duration_days.high for e in LIFE_EVENTS])
    c["event"][starts] = kind
    c["event_ends"][starts] = day + _subset_ints(g, starts, lows[kind], highs[kind])

    # 3. binge cycle: phases flip when they run out
    binge = alive & (c["pattern"] == BINGE) & (c["state"] != NEW)
    flip = np.flatnonzero(binge & (c["binge_phase_ends"] <= day))
    to_binge = ~c["binge_is_binging"][flip]
    length = np.where(
        to_binge,
        _subset_ints(g, flip, cfg.binge_days.low, cfg.binge_days.high),
        _subset_ints(g, flip, cfg.binge_cooldown_days.low, cfg.binge_cooldown_days.high),
    )
    c["binge_phase_ends"][flip] = day + length
    c["binge_is_binging"][flip] = to_binge
    binging = binge & c["binge_is_binging"]
    binge_day = c["binge_day"]
    binge_day += 1
    binge_day *= binging

    # 4. lapse (calibration)
    c["lapsed"] |= alive & (c["state"] != NEW) & (u[1] < cfg.lapse_daily_chance)

    # 5. visit draw
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
    active = u[2] < prob  # CHURNED personas have probability 0
    active_idx = np.flatnonzero(active)

    # 6. streaks, score, counters (a lookup table and multiplications: no masked writes on full columns)
    inactive = ~active
    streak = c["consecutive_active_days"]
    # score change by (alive, long streak, visited): +2, -1, or -1 -10 when a 7+ streak breaks
    change = np.zeros(8, np.int32)
    change[[4, 6]] = -cfg.score_loss_inactive
    change[6] -= cfg.streak_break_penalty
    change[[5, 7]] = cfg.score_gain_active
    key = (streak >= cfg.streak_break_min_days).view(np.uint8) << 1
    key |= active.view(np.uint8)
    key |= alive.view(np.uint8) << 2
    delta = change[key]
    delta += c["engagement_score"]
    np.clip(delta, 0, 100, out=c["engagement_score"])
    streak += 1
    streak *= active
    missed = c["consecutive_missed_days"]
    missed += alive
    missed *= inactive
    c["total_sessions"] += active
    window_mask = np.uint32((1 << cfg.casual_window_days) - 1)
    history = c["history"]
    np.left_shift(history, np.uint32(1), out=history)
    history |= active
    history &= window_mask
    c["active_today"] = active
    session_ms = c["session_start_ms"]
    session_ms.fill(NO_MS)
    u_time = g.random((2, active_idx.size), dtype=np.float32)
    session_ms[active_idx] = day * MS_PER_DAY + draw_ms_of_day(u_time[0], u_time[1])
    c["last_active_ms"][active_idx] = session_ms[active_idx]

    # 7. churn of long-inactive dormant personas; 90 % marked for cleanup
    old_state = c["state"]
    at_risk = np.flatnonzero(
        (old_state == DORMANT) & (c["consecutive_missed_days"] >= cfg.churn_after_inactive_days)
    )
    churn_idx = at_risk[g.random(at_risk.size) < cfg.dormant_daily_churn]
    c["churned_today"][churn_idx] = True
    c["churned_day"][churn_idx] = day
    c["marked_for_cleanup"][churn_idx] = g.random(churn_idx.size) < cfg.churn_cleanup_share

    # 8. states, in rising priority: ACTIVE, CASUAL, NEW, DORMANT, CHURNED (a bit each, one table lookup)
    key = (_popcount(c["history"]) < cfg.casual_max_active_days).view(np.uint8).copy()
    key |= (c["days_since_signup"] < cfg.new_days).view(np.uint8) << 1
    key |= (missed >= cfg.dormant_after_inactive_days).view(np.uint8) << 2
    key |= (old_state == CHURNED).view(np.uint8) << 3
    key[churn_idx] |= 8
    new_state = _STATE_BY_FLAGS[key]
    changed = np.flatnonzero(new_state != old_state)
    c["reactivated_today"] = (old_state == DORMANT) & active
    c["lapsed"] &= ~c["reactivated_today"]
    c["state"] = new_state
    c["state_changed_ms"][changed] = np.where(
        active[changed], session_ms[changed], day * MS_PER_DAY + MS_PER_DAY - 1
    )

    # 9. permanent pattern after 14 days
    assign = np.flatnonzero(alive & (c["days_since_signup"] == cfg.pattern_assignment_day))
    c["pattern"][assign] = _choice(g.random(assign.size), _pattern_weight_matrix(cfg)[c["plan"][assign]])
    new_binge = assign[c["pattern"][assign] == BINGE]
    c["binge_is_binging"][new_binge] = False
    c["binge_phase_ends"][new_binge] = day + _subset_ints(g, new_binge, 1, cfg.binge_cooldown_days.high)

    state = PersonaState(day=day, cols=c, identity=s.identity, next_number=s.next_number)
    _engage(state, cfg, g)

    # 11. signups
    pool_now = n - int(np.count_nonzero(new_state == CHURNED))
    gs = rng_mod.stream(seed, "hogflix", "signups", date_key)
    count = _signup_count(cfg, pool_now, float(gs.random()))
    if count:
        joined = new_personas(cfg, seed, day, count, state.next_number, gs)
        _engage(joined, cfg, gs, signup=True)
        state = state.append(joined)
    return state


# State by flag bits (1 casual, 2 new, 4 dormant, 8 churned): the highest set bit wins.
_STATE_BY_FLAGS = np.array(
    [ACTIVE, CASUAL] + [NEW] * 2 + [DORMANT] * 4 + [CHURNED] * 8,
    np.int8,
)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def flixbuddy_count(cfg: LifecycleConfig, active: int) -> int:
    """Return how many of ``active`` visitors talk to FlixBuddy today.

    10 % of them, kept within 8-12 a day at a pool of 400 (scaled with the pool)
    and never more than the per-day cap of 50 or the number of visitors.
    """
    low, high = cfg.flixbuddy_per_day_range
    wanted = int(np.clip(round(cfg.flixbuddy_share * active), low, high))
    return min(wanted, cfg.flixbuddy_max_per_day, active)


def _smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Return the positions of the ``k`` smallest of ``values`` (uniforms in [0, 1)), in linear time.

    Only the values under a cut-off that keeps about four times ``k`` of them
    are partitioned; when too few fall under it, all of them are.
    """
    cut = min(1.0, 4.0 * k / values.size + 1e-3)
    pool = np.flatnonzero(values < cut)
    if pool.size < k:
        pool = np.arange(values.size)
    return pool[np.argpartition(values[pool], k - 1)[:k]]


def _engage(state: PersonaState, cfg: LifecycleConfig, g: np.random.Generator, signup: bool = False) -> None:
    """Draw today's viewing for active personas (or every new signup) and add it to the totals."""
    c = state.cols
    n = len(c["state"])
    if signup:
        c["active_today"][:] = True
        c["session_start_ms"] = c["created_ms"] + (g.random(n) * 30 * 60_000).astype(np.int64)
        c["last_active_ms"] = c["session_start_ms"].copy()
        c["total_sessions"] += 1
        c["consecutive_active_days"][:] = 1
        c["history"][:] = 1
    idx = np.flatnonzero(c["active_today"])
    if idx.size == 0:
        return
    m = idx.size
    u = g.random((5, m), dtype=np.float32)
    st = c["state"][idx]
    binge_mode = (c["pattern"][idx] == BINGE) & c["binge_is_binging"][idx] & (st != NEW)
    depth_key = np.full(m, 1, np.int8)  # ACTIVE
    depth_key[st == NEW] = 0
    depth_key[st == CASUAL] = 2
    depth_key[binge_mode] = 3
    depth = [cfg.session_depth[k] for k in ("NEW", "ACTIVE", "CASUAL", "BINGE")]
    lows = np.array([d.videos.low for d in depth], np.int32)[depth_key]
    highs = np.array([d.videos.high for d in depth], np.int32)[depth_key]
    videos = (lows + np.floor(u[0] * (highs - lows + 1))).astype(np.int32)
    # Completion (percent): the table's mean plus a symmetric triangular spread that keeps it in 0-100.
    mean = np.array([d.avg_completion for d in depth], np.float32)[depth_key]
    spread = np.minimum(mean, 1.0 - mean)
    completion = np.round((mean + (u[1] + u[2] - 1.0) * spread).astype(np.float64) * 100.0, 2)
    # Ratings: each watched video is rated with the configured probability.
    rated = g.random(int(videos.sum()), dtype=np.float32) < cfg.rate_probability
    ratings = np.add.reduceat(rated, np.cumsum(videos) - videos, dtype=np.int32) if rated.size else videos * 0
    watchlist = (u[3] < cfg.watchlist_probability).astype(np.int32)
    flix = np.zeros(m, np.bool_)
    if not signup:  # a signup's first visit is for exploring; FlixBuddy comes later
        chats = flixbuddy_count(cfg, m)
        if chats:  # the visitors with the smallest draws: a uniform random subset, in linear time
            flix[_smallest(u[4], chats)] = True
    watched = c["videos_watched"][idx]
    total = watched + videos
    # Stored rounded to 0.01 % so the persisted table and the in-memory state are the same numbers.
    c["avg_watch_completion"][idx] = np.round(
        (c["avg_watch_completion"][idx] * watched + completion * videos) / np.maximum(total, 1), 2
    )
    c["videos_watched"][idx] = total
    c["videos_today"][idx] = videos
    c["completion_today"][idx] = completion
    c["ratings_today"][idx] = ratings
    c["ratings_given"][idx] += ratings
    c["watchlist_adds_today"][idx] = watchlist
    c["watchlist_size"][idx] += watchlist
    c["flixbuddy_today"][idx] = flix
    c["flixbuddy_conversations"][idx] += flix
    c["binge_mode_today"][idx] = binge_mode
