"""Every funnel asset check passes on simulated data and fails on data corrupted the way it guards against."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.funnel import checks
from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig, TransitionRates
from simulation_assets.core.funnel.learn import learn_rates
from simulation_assets.core.funnel.models import train_and_evaluate

DAY = dt.date(2026, 2, 3)


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    return simulate_cohort_events(DAY, CohortConfig(), seed=4, impressions=200_000).events


def _persons(events: pl.DataFrame, share: float, seed: int) -> pl.Series:
    """Return a random ``share`` of the user ids that logged in."""
    users = events.filter(pl.col("event") == "login_success")["user_id"].unique().sort()
    return users.sample(fraction=share, seed=seed)


def test_taxonomy_check_passes_on_cohorts_and_names_a_missing_required_property(events) -> None:
    assert checks.events_match_taxonomy(events).passed
    broken = events.with_columns(
        pl.when(pl.col("event") == "purchase_completed")
        .then(None)
        .otherwise(pl.col("order_id"))
        .alias("order_id")
    )
    outcome = checks.events_match_taxonomy(broken)
    assert not outcome.passed
    assert {"event": "purchase_completed", "rule": "required property 'order_id' is null"} in [
        {k: p[k] for k in ("event", "rule")} for p in outcome.metadata["problems"]
    ]
    unknown = pl.concat([events, events.head(3).with_columns(pl.lit("checkout_abandoned").alias("event"))])
    assert not checks.events_match_taxonomy(unknown).passed


def test_monotone_check_fails_when_people_get_credits_without_logging_in(events) -> None:
    clean = checks.funnel_is_monotone(events)
    assert clean.passed, clean.metadata
    people = clean.metadata["people_by_state"]
    chain = [people[f"S{i}"] for i in range(10)]
    assert chain == sorted(chain, reverse=True) and people["S10"] <= people["S8"]
    lost = _persons(events, 0.1, seed=1)
    broken = events.filter(~((pl.col("event") == "login_success") & pl.col("user_id").is_in(lost.implode())))
    outcome = checks.funnel_is_monotone(broken)
    assert not outcome.passed
    assert outcome.metadata["people_who_skipped_a_step"] == {"S5|S4": lost.len()}


def test_stitching_check_fails_when_browser_events_after_login_stay_anonymous(events) -> None:
    assert checks.identity_is_stitched(events).passed
    broken = events.with_columns(
        pl.when((pl.col("source") == "web") & (pl.col("event") == "upload_view"))
        .then(None)
        .otherwise(pl.col("user_id"))
        .alias("user_id")
    )
    outcome = checks.identity_is_stitched(broken)
    assert not outcome.passed
    assert (
        outcome.metadata["web_events_after_login_without_user_id"]
        == events.filter(pl.col("event") == "upload_view").height
    )


def test_rates_check_fails_when_a_fifth_of_cta_clicks_go_missing(events) -> None:
    rates, z = CohortConfig().rates, CohortConfig().checks.rates_z
    assert checks.learned_rates_match_configured(learn_rates(events), rates, z).passed
    clickers = events.filter(pl.col("event") == "cta_click")["distinct_id"].unique().sort()
    lost = clickers.sample(fraction=0.2, seed=2)
    broken = events.filter(~((pl.col("event") == "cta_click") & pl.col("distinct_id").is_in(lost.implode())))
    outcome = checks.learned_rates_match_configured(learn_rates(broken), rates, z)
    assert not outcome.passed
    assert "S2|S1" in outcome.metadata["outside_tolerance"]
    # the band is the config's: a wide enough band lets the same data through
    assert checks.learned_rates_match_configured(learn_rates(broken), rates, 40.0).passed


def test_rates_check_fails_against_rates_the_data_was_not_made_with(events) -> None:
    other = TransitionRates(p_purchase=0.3)
    outcome = checks.learned_rates_match_configured(learn_rates(events), other, 4.0)
    assert outcome.metadata["outside_tolerance"] == ["S9|S8"] and not outcome.passed


@pytest.fixture(scope="module")
def features(model_features) -> pl.DataFrame:
    return model_features


def test_model_checks_pass_on_signal_and_fail_when_labels_belong_to_other_people(
    features, model_report
) -> None:
    real = model_report
    for check in (checks.purchase_model_passes, checks.churn_model_passes, checks.ltv_model_passes):
        assert check(real).passed, check(real).metadata
    labels = [c for c in features.columns if c.startswith("label_") or c.startswith("revenue_")]
    order = np.random.default_rng(3).permutation(features.height)
    scrambled = features.with_columns(*[features[c].gather(order) for c in labels if c != "revenue_7d"])
    noise = train_and_evaluate(scrambled, seed=1)
    for check in (checks.purchase_model_passes, checks.churn_model_passes, checks.ltv_model_passes):
        outcome = check(noise)
        assert not outcome.passed, outcome.metadata
    assert checks.purchase_model_passes(noise).metadata["roc_auc"] < 0.6


def test_shuffled_baseline_check_fails_when_the_baseline_saw_the_real_labels(
    model_report, shuffled_report
) -> None:
    assert checks.shuffled_labels_fail(shuffled_report).passed
    outcome = checks.shuffled_labels_fail(model_report)  # a "baseline" that saw the real labels
    assert not outcome.passed
    assert {"purchase", "churn"} <= set(outcome.metadata["models_passing_on_noise"])


def test_merged_days_fail_when_one_day_fails() -> None:
    ok, bad = checks.CheckOutcome(True, {"x": 1}), checks.CheckOutcome(False, {"x": 2})
    merged = checks.merge_days({"2026-01-01": ok, "2026-01-02": bad, "2026-01-03": ok})
    assert not merged.passed
    assert merged.metadata["days_failed"] == ["2026-01-02"] and merged.metadata["x"] == 2
    assert checks.merge_days({"2026-01-01": ok}).passed
