"""Churn hazard and purchase intent: the two per-user probabilities of the event-level cohort."""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from simulation_assets.core.funnel.config import ChurnHazard

HAZARD_FEATURES: tuple[str, ...] = (
    "days_since_last_job",
    "job_fail_rate",
    "processing_time_min",
    "credits_left",
    "support_tickets",
)
"""Inputs of :func:`churn_probability`, in order (section 6)."""


def churn_probability(
    hazard: ChurnHazard,
    days_since_last_job: np.ndarray,
    job_fail_rate: np.ndarray,
    processing_time_min: np.ndarray,
    credits_left: np.ndarray,
    support_tickets: np.ndarray,
) -> np.ndarray:
    """Return P(churn within 30 days) per user from the logistic hazard (0-1 floats)."""
    logit = (
        hazard.intercept
        + hazard.days_since_last_job * np.asarray(days_since_last_job, dtype=np.float64)
        + hazard.job_fail_rate * np.asarray(job_fail_rate, dtype=np.float64)
        + hazard.processing_time_min * np.asarray(processing_time_min, dtype=np.float64)
        + hazard.credits_left * np.asarray(credits_left, dtype=np.float64)
        + hazard.support_tickets * np.asarray(support_tickets, dtype=np.float64)
    )
    return 1.0 / (1.0 + np.exp(-logit))


_NODES, _WEIGHTS = hermegauss(64)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def intent_offset(mean_probability: float, spread: float) -> float:
    """Return ``a`` such that E[sigmoid(a + spread * z)] = ``mean_probability`` for z ~ N(0, 1).

    Lets purchase depend on a latent intent while the share of buyers stays exactly
    the configured rate (so rates learned from events recover it).
    """
    if not 0.0 < mean_probability < 1.0:
        raise ValueError(f"mean_probability must be strictly between 0 and 1, got {mean_probability}")
    low, high = -40.0, 40.0
    for _ in range(100):
        mid = (low + high) / 2
        value = float(np.sum(_WEIGHTS / (1.0 + np.exp(-(mid + spread * _NODES)))))
        if value < mean_probability:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def intent_probability(mean_probability: float, spread: float, intent: np.ndarray) -> np.ndarray:
    """Return per-user probabilities whose mean over z ~ N(0, 1) is ``mean_probability``."""
    if mean_probability <= 0.0:
        return np.zeros_like(intent, dtype=np.float64)
    if mean_probability >= 1.0:
        return np.ones_like(intent, dtype=np.float64)
    a = intent_offset(mean_probability, spread)
    return 1.0 / (1.0 + np.exp(-(a + spread * intent)))
