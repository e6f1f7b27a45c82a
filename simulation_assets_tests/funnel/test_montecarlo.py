"""The vectorized forecast has the template's distribution, outputs and percentiles."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from simulation_assets.core.funnel.config import ChurnRule, TransitionRates, purchase_probability_per_click
from simulation_assets.core.funnel.montecarlo import (
    TEMPLATE_KEYS,
    forecast,
    simulate_cohort,
    simulate_replicates,
)
from simulation_assets.core.rng import stream
from simulation_assets_tests.funnel.template_reference import reference_cohort

COUNT_KEYS = ("clicks", "activated", "aha", "purchasers", "retained_30d", "churned_30d")


def test_simulate_cohort_returns_the_template_keys_in_order() -> None:
    result = simulate_cohort(10_000, TransitionRates(), seed=1)
    assert tuple(result) == TEMPLATE_KEYS
    assert result["impressions"] == 10_000
    assert result["purchasers"] <= result["aha"] <= result["activated"] <= result["clicks"]
    assert result["retained_30d"] + result["churned_30d"] <= result["activated"]


def test_vectorized_replicates_match_the_template_loop_distribution_at_a_fixed_seed() -> None:
    rates = TransitionRates()
    rng = random.Random(20260112)
    runs = 400
    ref = [reference_cohort(10_000, rates, rng) for _ in range(runs)]
    vec = simulate_replicates(10_000, rates, 20_000, rng=stream(7, "test", "mc"))
    for key in COUNT_KEYS:
        a = np.array([r[key] for r in ref], dtype=float)
        b = vec[key].astype(float)
        # same location: Welch's t; same shape: two-sample Kolmogorov-Smirnov; same spread: variance ratio
        assert stats.ttest_ind(a, b, equal_var=False).pvalue > 0.001, key
        assert stats.ks_2samp(a, b, method="asymp").pvalue > 0.001, key
        assert 0.75 < a.var() / b.var() < 1.33, (key, a.var(), b.var())


def test_replicate_means_equal_the_analytic_expectations() -> None:
    rates = TransitionRates()
    churn = ChurnRule()
    n, reps = 1_000_000, 20_000
    out = simulate_replicates(n, rates, reps, churn, seed=3)
    aha_p = (
        rates.ctr
        * rates.p_cta
        * rates.p_signup
        * rates.p_login
        * rates.p_upload
        * rates.p_job_success
        * rates.p_download
    )
    retain = rates.p_repeat_30d * ((1 - churn.slow_rate) * (1 - 0.25) + churn.slow_rate * (1 - 0.35))
    expected = {
        "clicks": n * rates.ctr,
        "aha": n * aha_p,
        "purchasers": n * rates.ctr * purchase_probability_per_click(rates),
        "retained_30d": n * aha_p * retain,
    }
    for key, mean in expected.items():
        se = out[key].std() / np.sqrt(reps)
        assert abs(out[key].mean() - mean) < 5 * se + 1e-9, (key, out[key].mean(), mean)


def test_forecast_reports_mean_and_5_50_95_percentiles_for_every_output() -> None:
    doc = forecast(1_000_000, TransitionRates(), 10_000, seed=11)
    for key in TEMPLATE_KEYS[1:]:
        p = doc["percentiles"][key]
        assert p["p5"] <= p["p50"] <= p["p95"]
        assert doc[key] == pytest.approx(p["mean"])
    assert doc["impressions"] == 1_000_000 and doc["replicates"] == 10_000
    # 5-95 % band of purchasers for 1M impressions: mean ~ 174, Poisson-like spread
    assert doc["percentiles"]["purchasers"]["p5"] < 174 < doc["percentiles"]["purchasers"]["p95"]


def test_same_seed_same_forecast_and_zero_impressions_give_zero_clicks() -> None:
    a = simulate_replicates(50_000, TransitionRates(), 100, seed=5)
    b = simulate_replicates(50_000, TransitionRates(), 100, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    zero = simulate_cohort(0, TransitionRates(), seed=1)
    assert zero["clicks"] == 0 and zero["purchase_rate_per_click"] == 0.0


def test_negative_impressions_and_out_of_range_rates_are_rejected() -> None:
    with pytest.raises(ValueError, match="impressions"):
        simulate_replicates(-1, TransitionRates(), 10)
    with pytest.raises(ValueError, match="p_cta"):
        TransitionRates(p_cta=1.2)
