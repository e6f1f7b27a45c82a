"""The path of every clicker through the S0-S11 state machine (tracking plan section 5).

One uniform per transition and person decides who moves on. Up to the upload (S6) the
configured rate applies to everyone alike; from the first job on, each person's own
probability depends on their traits and on what happened to them (the job's difficulty,
whether the result met their quality bar), calibrated on the people at that step so the
step's expected share is exactly the configured rate (see ``hazard.calibrated_probability``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simulation_assets.core.funnel.cohort.traits import Traits
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.hazard import calibrated_probability

SATISFACTION_DOWNLOAD_EFFECT = 2.0  # logit: a result that met the bar is downloaded far more often
SATISFACTION_PURCHASE_EFFECT = 0.8  # logit: a first result that met the bar makes a purchase likelier


@dataclass(frozen=True)
class FunnelPath:
    """Boolean masks (one entry per clicker) of the states each clicker reaches in the first week.

    ``job_completed``, ``aha`` and ``purchased`` are decided once the first job ran
    (:func:`decide_first_job`, :func:`decide_aha`, :func:`decide_purchase`).
    """

    landed: np.ndarray
    clicked_cta: np.ndarray
    signed_up: np.ndarray
    logged_in: np.ndarray
    credited: np.ndarray
    uploaded: np.ndarray
    job_draw: np.ndarray
    download_draw: np.ndarray
    purchase_draw: np.ndarray
    retention_draw: np.ndarray
    job_completed: np.ndarray
    aha: np.ndarray
    purchased: np.ndarray
    purchase_probability: np.ndarray


def walk_states(gen: np.random.Generator, n: int, config: CohortConfig) -> FunnelPath:
    """Return who lands, clicks, signs up, logs in, gets credits and uploads, and the later steps' uniforms."""
    r = config.rates
    u = gen.random((10, n))
    landed = u[0] < r.p_land
    cta = landed & (u[1] < r.p_cta)
    signed = cta & (u[2] < r.p_signup)
    logged = signed & (u[3] < r.p_login)
    credited = logged & (u[4] < r.p_credits)
    uploaded = credited & (u[5] < r.p_upload)
    nobody = np.zeros(n, dtype=bool)
    return FunnelPath(
        landed=landed,
        clicked_cta=cta,
        signed_up=signed,
        logged_in=logged,
        credited=credited,
        uploaded=uploaded,
        job_draw=u[6],
        download_draw=u[7],
        purchase_draw=u[8],
        retention_draw=u[9],
        job_completed=nobody,
        aha=nobody,
        purchased=nobody,
        purchase_probability=np.zeros(n),
    )


def decide_first_job(path: FunnelPath, config: CohortConfig, difficulty: np.ndarray) -> FunnelPath:
    """Return the path with S7: each uploader's first job succeeds less often the harder the input.

    ``difficulty`` has one entry per clicker (the first job's input; ignored for non-uploaders).
    """
    p = np.zeros(len(path.uploaded))
    p[path.uploaded] = calibrated_probability(config.rates.p_job_success, -0.9 * difficulty[path.uploaded])
    return replace(path, job_completed=path.uploaded & (path.job_draw < p))


def decide_aha(path: FunnelPath, config: CohortConfig, satisfied: np.ndarray) -> FunnelPath:
    """Return the path with S8: people whose first result met their bar download it far more often."""
    done = path.job_completed
    p = np.zeros(len(done))
    p[done] = calibrated_probability(config.rates.p_download, SATISFACTION_DOWNLOAD_EFFECT * satisfied[done])
    return replace(path, aha=done & (path.download_draw < p))


def decide_purchase(
    path: FunnelPath, config: CohortConfig, traits: Traits, satisfied: np.ndarray, usage: np.ndarray
) -> FunnelPath:
    """Return the path with S9: intent buys, price sensitivity holds back, a good first result and early use help.

    ``usage`` is each clicker's purchase logit from their early use of the product.
    """
    aha = path.aha
    score = (
        config.purchase_intent_strength * traits.intent
        - config.purchase_price_sensitivity_strength * traits.price_sensitivity
        + SATISFACTION_PURCHASE_EFFECT * satisfied
        + usage
    )
    p = np.zeros(len(aha))
    p[aha] = calibrated_probability(config.rates.p_purchase, score[aha])
    return replace(path, purchased=aha & (path.purchase_draw < p), purchase_probability=p)
