"""The pool as it stands before the first simulated day: a crude pool stepped through a burn-in."""

from __future__ import annotations

import numpy as np

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.hogflix.billing import billing_day
from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.draws import choice, uniform_ints
from simulation_assets.core.hogflix.lifecycle import pattern_weight_matrix, step_day
from simulation_assets.core.hogflix.persona_state import (
    ACTIVE,
    BINGE,
    DAILY,
    DORMANT,
    NEW,
    NO_DAY,
    PersonaState,
    conform,
    day_date,
)
from simulation_assets.core.hogflix.signups import identities, new_personas
from simulation_assets.core.hogflix.timeofday import MS_PER_DAY

BURN_IN_DAYS = 150


def initial_state(
    cfg: LifecycleConfig, seed: int, genesis_day: int, burn_in_days: int = BURN_IN_DAYS
) -> PersonaState:
    """Return the pool as it stands at the end of ``genesis_day - 1``.

    A crude pool of ``persona_pool`` personas with spread-out tenures is created
    ``burn_in_days`` before the genesis day and stepped forward day by day with
    the ordinary rules, so the first simulated day already has dormant personas,
    lapses and churn in flight instead of a pool that is all fresh.
    """
    start = genesis_day - burn_in_days
    g = rng_mod.stream(seed, "hogflix", "initial-pool")
    n = cfg.pool_target(day_date(start))
    state = new_personas(cfg, seed, start, n, 1, g)
    u = g.random((5, n))
    tenure = uniform_ints(u[0], cfg.initial_tenure_days.low, cfg.initial_tenure_days.high)
    c = state.cols
    c["created_ms"] = c["created_ms"] - tenure.astype(np.int64) * MS_PER_DAY
    c["state_changed_ms"] = c["created_ms"].copy()
    c["billing_day"] = billing_day(c["created_ms"] // MS_PER_DAY)
    c["days_since_signup"] = tenure
    c["signed_up_today"][:] = False
    established = tenure >= cfg.new_days
    assigned = tenure >= cfg.pattern_assignment_day
    c["state"] = np.where(established, ACTIVE, NEW).astype(np.int8)
    c["pattern"] = np.where(assigned, choice(u[1], pattern_weight_matrix(cfg)[c["plan"]]), DAILY).astype(
        np.int8
    )
    c["engagement_score"] = np.where(
        established,
        uniform_ints(u[2], cfg.active_score.low, cfg.active_score.high),
        c["engagement_score"],
    ).astype(np.int32)
    # A share of the established personas has already drifted away, so churn flows from day one.
    away = established & (u[4] < cfg.initial_dormant_share)
    missed = np.where(away, uniform_ints(g.random(n), 1, 3 * cfg.churn_after_inactive_days), 0).astype(
        np.int32
    )
    c["lapsed"] = away
    c["consecutive_missed_days"] = missed
    c["state"] = np.where(missed >= cfg.dormant_after_inactive_days, DORMANT, c["state"]).astype(np.int8)
    c["last_active_ms"] = (start - missed).astype(np.int64) * MS_PER_DAY - MS_PER_DAY // 4
    c["history"] = np.where(away, 0, 0b1111111)
    binge = c["pattern"] == BINGE
    c["binge_phase_ends"] = np.where(
        binge, start + uniform_ints(u[3], 1, cfg.binge_cooldown_days.high), NO_DAY
    ).astype(np.int32)
    state.cols = conform(c)  # the columns set whole above, in the pool's dtypes
    # Identities carry the signup time: rebuild them with the backdated one.
    fresh = identities(cfg, c["persona_number"], c["created_ms"], g)
    state.identity = state.identity.with_columns([fresh[k] for k in fresh.columns])
    state.day = start
    older = None  # the pool of two days back: its buffers take the next day (no fresh memory each day)
    for day in range(start + 1, genesis_day):
        state, older = step_day(state, day, cfg, seed, recycle=older), state
    return state
