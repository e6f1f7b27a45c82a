"""A per-impression loop with the same logic as the tracking plan's Monte Carlo template.

It is the reference the vectorized forecast is compared with (tests) and raced
against (benchmarks/funnel.py). One Bernoulli draw per decision, in the
template's order, from a seeded ``random.Random``.
"""

from __future__ import annotations

import random

from simulation_assets.core.funnel.config import TransitionRates


def reference_cohort(
    impressions: int,
    rates: TransitionRates,
    rng: random.Random,
    base_churn: float = 0.25,
    extra_churn_if_fail: float = 0.20,
    extra_churn_if_slow: float = 0.10,
    slow_rate: float = 0.20,
) -> dict[str, float]:
    """Return one cohort's counts and per-click rates, walking every impression and click."""
    draw = rng.random
    clicks = 0
    for _ in range(impressions):
        if draw() < rates.ctr:
            clicks += 1
    activated = aha = purchasers = retained = churned = 0
    for _ in range(clicks):
        # short-circuit like the template: later draws only happen when earlier ones succeed
        if not (draw() < rates.p_cta and draw() < rates.p_signup and draw() < rates.p_login):
            continue
        activated += 1
        if not draw() < rates.p_upload:
            continue
        slow = draw() < slow_rate
        succeeded = draw() < rates.p_job_success
        if not (succeeded and draw() < rates.p_download):
            churned += 1
            continue
        aha += 1
        if draw() < rates.p_purchase:
            purchasers += 1
        p_churn = (
            base_churn + (0.0 if succeeded else extra_churn_if_fail) + (extra_churn_if_slow if slow else 0.0)
        )
        p_churn = min(max(p_churn, 0.0), 0.95)
        if draw() < 1 - p_churn and draw() < rates.p_repeat_30d:
            retained += 1
        else:
            churned += 1
    return {
        "impressions": impressions,
        "clicks": clicks,
        "activated": activated,
        "aha": aha,
        "purchasers": purchasers,
        "retained_30d": retained,
        "churned_30d": churned,
        "purchase_rate_per_click": purchasers / clicks if clicks else 0.0,
        "activation_rate_per_click": activated / clicks if clicks else 0.0,
    }
