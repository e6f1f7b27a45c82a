"""Builders for hand-made persona pools used by the lifecycle tests."""

from __future__ import annotations

import datetime as dt

import numpy as np

from simulation_assets.core import rng
from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.persona_state import PersonaState, day_number
from simulation_assets.core.hogflix.signups import new_personas

THURSDAY = dt.date(2026, 1, 1)
DAY = day_number(dt.date(2026, 1, 7))  # a Wednesday, not in days 1-3 of the month


def pool(cfg: LifecycleConfig, n: int, day: int = DAY, **columns: object) -> PersonaState:
    """Return ``n`` established personas as of the end of ``day - 1``, with ``columns`` overridden."""
    state = new_personas(cfg, 0, day - 1, n, 1, rng.stream(0, "test-pool", n))
    c = state.cols
    c["signed_up_today"][:] = False
    c["days_since_signup"][:] = 60
    c["state"][:] = 1  # ACTIVE
    c["engagement_score"][:] = 50
    c["history"][:] = 0b1111
    for name, value in columns.items():
        c[name][:] = value
    state.day = day - 1
    return state


def no_events(**overrides: object) -> LifecycleConfig:
    """Return a config whose life events never start (so activity can be forced)."""
    base = LifecycleConfig()
    events = {name: rule.model_copy(update={"daily_chance": 0.0}) for name, rule in base.life_events.items()}
    # Seasons off too: the rule tests pin the specification's chances on ordinary days.
    return LifecycleConfig(
        **{"life_events": events, "lapse_daily_chance": 0.0, "seasons": {"enabled": False}, **overrides}
    )


def share(mask: np.ndarray) -> float:
    return float(np.count_nonzero(mask)) / max(len(mask), 1)
