"""Hidden traits of a HogFlix persona: genre affinity, price sensitivity, region, and satisfaction's motion.

The static traits are stable hashes of (seed, persona number), so every stage
(lifecycle, sessions, events) derives the same values without storing or
passing them: a persona's taste in genres, how much the price weighs on it
(around its plan's level), and where it lives (country and UTC offset).
Satisfaction moves day by day with what the persona watched and how it rated
it; ``satisfaction_step`` is its rule.
"""

from __future__ import annotations

import numpy as np

from simulation_assets.core.hogflix.catalog import GENRES
from simulation_assets.core.hogflix.config import PLANS, LifecycleConfig
from simulation_assets.core.hogflix.ids import hash_unit

# Countries and their UTC offsets in hours (standard time; the larger countries by their most
# populous zone), with the share of personas in each.
REGIONS = (
    # country, utc offset (h), weight, IANA time zone
    ("US", -5, 0.30, "America/New_York"),
    ("US", -8, 0.20, "America/Los_Angeles"),
    ("GB", 0, 0.12, "Europe/London"),
    ("DE", 1, 0.10, "Europe/Berlin"),
    ("FR", 1, 0.08, "Europe/Paris"),
    ("CA", -5, 0.08, "America/Toronto"),
    ("NL", 1, 0.04, "Europe/Amsterdam"),
    ("ES", 1, 0.04, "Europe/Madrid"),
    ("AU", 10, 0.04, "Australia/Sydney"),
)
COUNTRY_SALT = 12  # the salt the sessions used for the country before regions were a trait
_GENRE_SALT = 40
_PRICE_SALT = 50
_SATISFACTION_SALT = 51


def genre_affinity(seed: int, persona: np.ndarray, concentration: float) -> np.ndarray:
    """Return each persona's taste over the eight genres, ``(n, 8)`` float32 rows summing to 1.

    Each genre's weight is an exponential draw raised to ``concentration``: above 1 a persona's
    top genre or two take most of the weight (at 1.5 the favourite averages 44 %, at 2.5 59 %).
    """
    persona = np.asarray(persona, np.int64)
    raw = np.stack(
        [-np.log1p(-hash_unit(seed, _GENRE_SALT + g, persona)) for g in range(len(GENRES))], axis=1
    )
    weights = raw**concentration
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def favorite_genre(seed: int, persona: np.ndarray, concentration: float) -> np.ndarray:
    """Return each persona's favourite genre (index into ``GENRES``, int8)."""
    return genre_affinity(seed, persona, concentration).argmax(axis=1).astype(np.int8)


def price_sensitivity(cfg: LifecycleConfig, seed: int, persona: np.ndarray, plan: np.ndarray) -> np.ndarray:
    """Return how much the price weighs on each persona (0-1, float32): its plan's level +/- the spread."""
    level = np.array([cfg.traits.price_sensitivity[p] for p in PLANS], np.float32)[plan]
    u = hash_unit(seed, _PRICE_SALT, np.asarray(persona, np.int64)).astype(np.float32)
    return np.clip(level + (2 * u - 1) * cfg.traits.price_sensitivity_spread, 0.0, 1.0)


def initial_satisfaction(cfg: LifecycleConfig, seed: int, persona: np.ndarray) -> np.ndarray:
    """Return a new persona's satisfaction (0-1, float32), uniform in the configured range."""
    low, high = cfg.traits.initial_satisfaction
    u = hash_unit(seed, _SATISFACTION_SALT, np.asarray(persona, np.int64)).astype(np.float32)
    return (low + (high - low) * u).astype(np.float32)


def region(seed: int, persona: np.ndarray) -> np.ndarray:
    """Return each persona's region (index into ``REGIONS``, int8)."""
    weights = np.array([r[2] for r in REGIONS])
    u = hash_unit(seed, COUNTRY_SALT, np.asarray(persona, np.int64))
    return (
        np.searchsorted(np.cumsum(weights) / weights.sum(), u, side="right")
        .clip(0, len(REGIONS) - 1)
        .astype(np.int8)
    )


def utc_offset_hours(regions: np.ndarray) -> np.ndarray:
    """Return the UTC offset (hours, int8) of each region index."""
    return np.array([r[1] for r in REGIONS], np.int8)[regions]


def satisfaction_step(
    cfg: LifecycleConfig,
    satisfaction: np.ndarray,
    active: np.ndarray,
    completion_percent: np.ndarray,
    rated: np.ndarray,
    avg_rating: np.ndarray,
) -> np.ndarray:
    """Return the day's satisfaction (0-1).

    A visit moves it ``learning_rate`` of the way towards the day's experience: the pivot plus
    ``completion_weight`` per unit of completion above the expected 60 % and ``rating_weight`` per
    star above the expected 3.7 (when the persona rated), within 0-1 (``visit_satisfaction``). A day
    away drifts it ``idle_drift`` of the way towards neutral (``idle_satisfaction``). It is a moving
    average of experiences: bounded, and it forgets.
    """
    s = satisfaction.astype(np.float32, copy=True)
    idle_satisfaction(cfg, s)
    visited = np.flatnonzero(active)
    s[visited] = visit_satisfaction(
        cfg, satisfaction[visited], completion_percent[visited], rated[visited], avg_rating[visited]
    )
    return s


def idle_satisfaction(cfg: LifecycleConfig, satisfaction: np.ndarray) -> None:
    """Drift float32 ``satisfaction`` in place ``idle_drift`` of the way towards neutral (a day away)."""
    t = cfg.traits
    drift = np.subtract(t.neutral_satisfaction, satisfaction, dtype=np.float64)
    satisfaction += np.multiply(
        drift, t.idle_drift, out=np.empty(len(satisfaction), np.float32), casting="same_kind"
    )
    np.clip(satisfaction, 0.0, 1.0, out=satisfaction)


def visit_satisfaction(
    cfg: LifecycleConfig,
    satisfaction: np.ndarray,
    completion_percent: np.ndarray,
    rated: np.ndarray,
    avg_rating: np.ndarray,
) -> np.ndarray:
    """Return the satisfaction of personas who all visited today: ``learning_rate`` of the way towards
    the day's experience (see ``satisfaction_step``)."""
    t = cfg.traits
    s = satisfaction.astype(np.float32, copy=True)
    experience = t.pivot + t.completion_weight * (completion_percent / 100.0 - t.expected_completion)
    experience += np.where(rated, t.rating_weight * (avg_rating - t.expected_rating), 0.0)
    np.clip(experience, 0.0, 1.0, out=experience)
    experience -= s
    experience *= t.learning_rate
    s += experience.astype(np.float32)
    return np.clip(s, 0.0, 1.0, out=s)
