"""Latent traits of every clicker: the hidden causes behind the section 9 signals.

Four standard-normal traits per person, shifted a little by where they came from:

* ``intent`` (how badly they need a clean video now): reads the landing page faster,
  scrolls further, comes back within a day, runs more jobs, buys more;
* ``price_sensitivity``: studies pricing longer, looks at the cheaper plans, applies
  coupons, picks packs over subscriptions, buys less;
* ``patience``: polls the job status less often (section 9E's anxiety indicator); the
  impatient churn more;
* ``quality_bar``: how good a result must be; results below it are rated down,
  re-processed and drive churn.

Nothing observes a trait directly: models must find them through the events, as a
growth team would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulation_assets.core.funnel.hazard import logistic

# Shifts of a trait's mean by acquisition context (this project's choices, in standard deviations).
INTENT_BY_CAMPAIGN = (0.0, 0.5, -0.3)  # prospecting, retargeting (seen the product), lookalike
INTENT_WORK_EMAIL = 0.3
PRICE_SENSITIVITY_BY_GEO = {"IN": 0.6, "BR": 0.6, "US": -0.2}
PRICE_SENSITIVITY_WORK_EMAIL = -0.5
QUALITY_BAR_BY_ANGLE = {"quality": 0.6, "ugc_deliverable": 0.3}
PATIENCE_BY_ANGLE = {"speed": -0.6}


@dataclass(frozen=True)
class Traits:
    """One entry per clicker of each latent trait (standard normal before the context shifts)."""

    intent: np.ndarray
    price_sensitivity: np.ndarray
    patience: np.ndarray
    quality_bar: np.ndarray


def draw_traits(
    gen: np.random.Generator,
    campaign: np.ndarray,
    angle: np.ndarray,
    angles: tuple[str, ...],
    geo: np.ndarray,
    geos: tuple[str, ...],
    work_email: np.ndarray,
) -> Traits:
    """Return the traits of clickers given their campaign, ad angle and geo indices and work e-mail flag."""
    n = len(campaign)
    z = gen.standard_normal((4, n))
    geo_shift = np.array([PRICE_SENSITIVITY_BY_GEO.get(g, 0.0) for g in geos])[geo]
    quality_shift = np.array([QUALITY_BAR_BY_ANGLE.get(a, 0.0) for a in angles])[angle]
    patience_shift = np.array([PATIENCE_BY_ANGLE.get(a, 0.0) for a in angles])[angle]
    return Traits(
        intent=z[0] + np.asarray(INTENT_BY_CAMPAIGN)[campaign] + INTENT_WORK_EMAIL * work_email,
        price_sensitivity=z[1] + geo_shift + PRICE_SENSITIVITY_WORK_EMAIL * work_email,
        patience=z[2] + patience_shift,
        quality_bar=z[3] + quality_shift,
    )


def choose(gen: np.random.Generator, base_weights: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Return one option index per row: a multinomial logit of ``log(base_weights) + scores`` (n x options).

    Uses the Gumbel-max trick, so the whole draw is two array operations.
    """
    utility = np.log(base_weights)[None, :] + scores
    return np.argmax(utility + gen.gumbel(size=utility.shape), axis=1)


def bernoulli(gen: np.random.Generator, logit: np.ndarray) -> np.ndarray:
    """Return one Bernoulli draw per entry of ``logit``."""
    return gen.random(len(logit)) < logistic(logit)
