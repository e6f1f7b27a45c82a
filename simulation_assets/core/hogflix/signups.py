"""New HogFlix personas: identities, plan and source, and how many sign up on a day."""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.hogflix import traits
from simulation_assets.core.hogflix.billing import billing_day
from simulation_assets.core.hogflix.config import PLANS, LifecycleConfig
from simulation_assets.core.hogflix.draws import choice, uniform_ints
from simulation_assets.core.hogflix.ids import format_uuids
from simulation_assets.core.hogflix.persona_state import (
    DAILY,
    IDENTITY_COLUMNS,
    NEW,
    NO_DAY,
    NO_EVENT,
    NO_MS,
    NUMERIC_COLUMNS,
    PersonaState,
    conform,
)
from simulation_assets.core.hogflix.timeofday import MS_PER_DAY, draw_ms_of_day


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
    plan = choice(u[2], np.array([cfg.plan_weights[p] for p in PLANS]))
    sources = list(cfg.source_weights)
    source_idx = choice(u[3], np.array([cfg.source_weights[s] for s in sources]))
    score = uniform_ints(u[4], cfg.new_score.low, cfg.new_score.high)
    identity = (
        identities(cfg, numbers, created_ms, rng)
        .with_columns(
            persona_number=pl.Series(numbers, dtype=pl.Int64),
            source=pl.Series(sources, dtype=pl.String).gather(source_idx),
        )
        .select("persona_number", *IDENTITY_COLUMNS)
    )
    cols = {k: np.zeros(n, dtype=t) for k, t in NUMERIC_COLUMNS.items()}
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
        signed_up_today=np.ones(n, np.bool_),
        favorite_genre=traits.favorite_genre(seed, numbers, cfg.traits.genre_concentration),
        price_sensitivity=traits.price_sensitivity(cfg, seed, numbers, plan),
        region=traits.region(seed, numbers),
        satisfaction=traits.initial_satisfaction(cfg, seed, numbers),
        previous_plan=plan.copy(),
        billing_day=billing_day(created_ms // MS_PER_DAY),
        next_payment_retry=np.full(n, NO_DAY, np.int32),
    )
    return PersonaState(day=day, cols=conform(cols), identity=identity, next_number=first_number + n)


def signup_count(cfg: LifecycleConfig, pool_now: int, churned_today: int, u: float) -> int:
    """Signups today: the day's churned personas replaced, plus the gap to the target times
    ``signup_gain``, with a uniform ``u`` in [0, 1) for the fraction, kept inside the scaled 2-5 band.

    Below the target the gap adds signups (up to the band's top); above it signups fall to the
    band's minimum, and the crowding term of the churn chance (``lifecycle.churn_dormant``) brings
    the pool down.
    """
    low, high = cfg.signup_range
    wanted = churned_today + cfg.signup_gain * (cfg.persona_pool - pool_now) + u
    return int(np.clip(np.floor(wanted), low, high))
