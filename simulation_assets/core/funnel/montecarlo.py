"""Monte Carlo funnel forecast: the template's ``simulate_cohort`` as exact binomial chains.

The template (tracking plan section 12) walks every impression and click through
Bernoulli draws in a Python loop. Counting successes of independent Bernoulli
trials is a binomial draw, so each stage is one ``Generator.binomial`` call on the
previous stage's count, and ``replicates`` cohorts are one call on an array. The
result has the same distribution as the template, at a cost independent of the
number of impressions.

Template behaviour kept on purpose: only users who reach the aha moment go through
the churn rule, and there the job always succeeded, so ``extra_churn_if_fail`` has
no effect (it is accepted for signature compatibility); uploaders without an aha
moment count as churned; users who never upload are neither retained nor churned.
"""

from __future__ import annotations

import numpy as np

from simulation_assets.core.funnel.config import ChurnRule, CohortConfig, TransitionRates
from simulation_assets.core.rng import stream

TEMPLATE_KEYS: tuple[str, ...] = (
    "impressions",
    "clicks",
    "activated",
    "aha",
    "purchasers",
    "retained_30d",
    "churned_30d",
    "purchase_rate_per_click",
    "activation_rate_per_click",
)
"""The keys of the template's result dict, in its order."""

STAGE_KEYS: tuple[str, ...] = (
    "clicks",
    "landed",
    "cta",
    "signed_up",
    "activated",
    "credits_granted",
    "uploaded",
    "job_completed",
    "aha",
    "purchasers",
    "retained_30d",
    "churned_30d",
)
"""Per-state counts a replicate also reports (S0 ... S11)."""

PERCENTILES = (5, 50, 95)


def _clamp(value: float, high: float) -> float:
    return min(max(value, 0.0), high)


def simulate_replicates(
    impressions: int,
    rates: TransitionRates,
    replicates: int,
    churn: ChurnRule | None = None,
    rng: np.random.Generator | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Return ``replicates`` independent cohorts as arrays (one entry per replicate).

    Keys: every name of :data:`STAGE_KEYS` (int64 counts), ``impressions``, and the
    template's two rates (float64, 0 when a cohort has no clicks).
    """
    if impressions < 0:
        raise ValueError(f"impressions must be >= 0, got {impressions}")
    if replicates <= 0:
        raise ValueError(f"replicates must be > 0, got {replicates}")
    churn = churn or ChurnRule()
    gen = rng if rng is not None else stream(seed, "funnel", "montecarlo", impressions, replicates)
    b = gen.binomial
    clicks = b(np.full(replicates, impressions, dtype=np.int64), rates.ctr)
    landed = b(clicks, rates.p_land)
    cta = b(landed, rates.p_cta)
    signed_up = b(cta, rates.p_signup)
    activated = b(signed_up, rates.p_login)
    credits = b(activated, rates.p_credits)
    uploaded = b(credits, rates.p_upload)
    completed = b(uploaded, rates.p_job_success)
    aha = b(completed, rates.p_download)
    purchasers = b(aha, rates.p_purchase)
    slow = b(aha, churn.slow_rate)
    churn_fast = _clamp(churn.base_churn, churn.max_churn)
    churn_slow = _clamp(churn.base_churn + churn.extra_churn_if_slow, churn.max_churn)
    retained = b(aha - slow, (1.0 - churn_fast) * rates.p_repeat_30d) + b(
        slow, (1.0 - churn_slow) * rates.p_repeat_30d
    )
    churned = uploaded - retained
    safe = np.maximum(clicks, 1)
    has_clicks = clicks > 0
    return {
        "impressions": np.full(replicates, impressions, dtype=np.int64),
        "clicks": clicks,
        "landed": landed,
        "cta": cta,
        "signed_up": signed_up,
        "activated": activated,
        "credits_granted": credits,
        "uploaded": uploaded,
        "job_completed": completed,
        "aha": aha,
        "purchasers": purchasers,
        "retained_30d": retained,
        "churned_30d": churned,
        "purchase_rate_per_click": np.where(has_clicks, purchasers / safe, 0.0),
        "activation_rate_per_click": np.where(has_clicks, activated / safe, 0.0),
    }


def simulate_cohort(
    impressions: int,
    rates: TransitionRates,
    base_churn: float = 0.25,
    extra_churn_if_fail: float = 0.20,
    extra_churn_if_slow: float = 0.10,
    slow_rate: float = 0.20,
    *,
    rng: np.random.Generator | None = None,
    seed: int = 0,
) -> dict[str, int | float]:
    """Return one cohort with the template's inputs and result keys (counts and two rates per click)."""
    churn = ChurnRule(
        base_churn=base_churn,
        extra_churn_if_fail=extra_churn_if_fail,
        extra_churn_if_slow=extra_churn_if_slow,
        slow_rate=slow_rate,
    )
    one = simulate_replicates(impressions, rates, 1, churn, rng=rng, seed=seed)
    return {k: (float(one[k][0]) if k.endswith("_per_click") else int(one[k][0])) for k in TEMPLATE_KEYS}


def summarize(samples: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Return mean and 5th/50th/95th percentiles of every array in ``samples``."""
    out: dict[str, dict[str, float]] = {}
    for key, values in samples.items():
        p5, p50, p95 = np.percentile(values, PERCENTILES)
        out[key] = {"mean": float(values.mean()), "p5": float(p5), "p50": float(p50), "p95": float(p95)}
    return out


def forecast(
    impressions: int,
    rates: TransitionRates,
    replicates: int,
    churn: ChurnRule | None = None,
    seed: int = 0,
) -> dict[str, object]:
    """Return a forecast document: the template's keys (replicate means) plus per-key percentiles.

    ``{"impressions": ..., "clicks": mean, ..., "replicates": R, "percentiles": {key: {mean, p5, p50, p95}}}``
    """
    samples = simulate_replicates(impressions, rates, replicates, churn, seed=seed)
    stats = summarize(samples)
    doc: dict[str, object] = {k: stats[k]["mean"] for k in TEMPLATE_KEYS}
    doc["impressions"] = impressions
    doc["replicates"] = replicates
    doc["percentiles"] = {
        k: stats[k] for k in (*TEMPLATE_KEYS[1:], *[s for s in STAGE_KEYS if s not in TEMPLATE_KEYS])
    }
    return doc


def forecast_with_both_rates(
    impressions: int,
    config: CohortConfig,
    learned: TransitionRates,
    replicates: int,
    on_top: str = "configured",
    seed: int = 0,
) -> dict[str, object]:
    """Return the forecast with the configured rates and the one with ``learned`` rates, one nested in the other.

    The configured forecast is the template's model exactly (its rates and additive churn
    rule); the learned one turns the churn rule off, because retention was learned directly
    as P(S10|S8). ``on_top`` ("configured" or "learned") picks the top-level document; the
    other sits under ``learned_rates_forecast`` / ``configured_rates_forecast``.
    """
    configured_doc = forecast(impressions, config.rates, replicates, config.churn, seed=seed)
    configured_doc.update(rates=config.rates.model_dump(), churn=config.churn.model_dump())
    no_churn = ChurnRule(base_churn=0.0, extra_churn_if_fail=0.0, extra_churn_if_slow=0.0)
    learned_doc = forecast(impressions, learned, replicates, no_churn, seed=seed)
    learned_doc.update(rates=learned.model_dump(), churn=no_churn.model_dump())
    if on_top == "learned":
        return {**learned_doc, "rates_source": "learned", "configured_rates_forecast": configured_doc}
    if on_top != "configured":
        raise ValueError(f"on_top must be 'configured' or 'learned', got {on_top!r}")
    return {**configured_doc, "rates_source": "configured", "learned_rates_forecast": learned_doc}
