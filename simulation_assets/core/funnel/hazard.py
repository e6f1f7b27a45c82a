"""Per-person probabilities of the event-level cohort: the churn hazard and calibrated step probabilities."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulation_assets.core.funnel.config import ChurnHazard

HAZARD_FEATURES: tuple[str, ...] = (
    "days_since_last_job",
    "job_fail_rate",
    "processing_time_min",
    "credits_left",
    "support_tickets",
    "dissatisfied_results",
    "impatience",
)
"""Inputs of :func:`churn_probability`, in order (section 6's five, then two section 9 signals)."""


def logistic(x: np.ndarray | float) -> np.ndarray:
    """Return 1 / (1 + exp(-x)) element-wise."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def churn_probability(
    hazard: ChurnHazard,
    days_since_last_job: np.ndarray,
    job_fail_rate: np.ndarray,
    processing_time_min: np.ndarray,
    credits_left: np.ndarray,
    support_tickets: np.ndarray,
    dissatisfied_results: np.ndarray | float = 0.0,
    impatience: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Return P(churn within 30 days) per user from the logistic hazard (0-1 floats)."""
    terms = (
        (hazard.days_since_last_job, days_since_last_job),
        (hazard.job_fail_rate, job_fail_rate),
        (hazard.processing_time_min, processing_time_min),
        (
            hazard.credits_left,
            np.minimum(np.asarray(credits_left, dtype=np.float64), hazard.credits_left_cap),
        ),
        (hazard.support_tickets, support_tickets),
        (hazard.dissatisfied_results, dissatisfied_results),
        (hazard.impatience, impatience),
    )
    logit = hazard.intercept + sum(coef * np.asarray(value, dtype=np.float64) for coef, value in terms)
    return logistic(logit)


def calibrated_probability(mean_probability: float, score: np.ndarray) -> np.ndarray:
    """Return per-person probabilities ``sigmoid(a + score)`` whose mean over ``score`` is ``mean_probability``.

    ``a`` is solved on these very people (bisection), so a step's expected share is exactly the
    configured rate however the traits behind ``score`` are distributed among those who reached
    it: rates learned back from the events recover the configuration, and the people who move on
    are still the ones the traits favour.
    """
    score = np.asarray(score, dtype=np.float64)
    if mean_probability <= 0.0:
        return np.zeros_like(score)
    if mean_probability >= 1.0 or score.size == 0:
        return np.ones_like(score) if mean_probability >= 1.0 else np.zeros_like(score)
    low, high = -40.0 - score.max(), 40.0 - score.min()
    probabilities = _logistic_shifted(score)
    for _ in range(60):
        mid = (low + high) / 2
        if probabilities(mid).mean() < mean_probability:
            low = mid
        else:
            high = mid
    return probabilities((low + high) / 2)


def _logistic_shifted(score: np.ndarray) -> Callable[[float], np.ndarray]:
    """Return ``a -> logistic(a + score)``, computed once per distinct score when there are few of them.

    A score of a yes/no signal (``2.0 * satisfied``) has two values: the 60 steps of the
    bisection then evaluate two exponentials each instead of one per person (the same numbers,
    element by element, so the same bytes).
    """
    sample = np.unique(score[:64])
    if len(sample) <= 8:
        values, inverse = np.unique(score, return_inverse=True)
        if 4 * len(values) <= score.size:
            return lambda shift: logistic(shift + values)[inverse]
    return lambda shift: logistic(shift + score)
