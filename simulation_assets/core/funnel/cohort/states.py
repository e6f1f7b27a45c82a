"""The path of every clicker through the S0-S11 state machine (tracking plan section 5).

One uniform per transition and person decides who moves on; purchase depends on the
person's latent intent, with the mean kept at the configured rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.hazard import intent_probability


@dataclass(frozen=True)
class FunnelPath:
    """Boolean masks (one entry per clicker) of the states each clicker reaches in the first week."""

    landed: np.ndarray
    clicked_cta: np.ndarray
    signed_up: np.ndarray
    logged_in: np.ndarray
    credited: np.ndarray
    uploaded: np.ndarray
    job_completed: np.ndarray
    aha: np.ndarray
    purchased: np.ndarray
    purchase_probability: np.ndarray
    retention_draw: np.ndarray
    """The uniform that later decides retention against the churn hazard."""


def walk_states(gen: np.random.Generator, n: int, config: CohortConfig, intent: np.ndarray) -> FunnelPath:
    """Return which states each of ``n`` clickers reaches (S1 ... S9), drawn in one block of uniforms."""
    r = config.rates
    u = gen.random((10, n))
    landed = u[0] < r.p_land
    cta = landed & (u[1] < r.p_cta)
    signed = cta & (u[2] < r.p_signup)
    logged = signed & (u[3] < r.p_login)
    credited = logged & (u[4] < r.p_credits)
    uploaded = credited & (u[5] < r.p_upload)
    completed = uploaded & (u[6] < r.p_job_success)
    aha = completed & (u[7] < r.p_download)
    p_buy = intent_probability(r.p_purchase, config.purchase_intent_strength, intent)
    purchased = aha & (u[8] < p_buy)
    return FunnelPath(
        landed=landed,
        clicked_cta=cta,
        signed_up=signed,
        logged_in=logged,
        credited=credited,
        uploaded=uploaded,
        job_completed=completed,
        aha=aha,
        purchased=purchased,
        purchase_probability=p_buy,
        retention_draw=u[9],
    )
