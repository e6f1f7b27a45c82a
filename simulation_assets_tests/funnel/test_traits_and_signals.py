"""Latent traits drive the section 9 signals, and the models use those signals the expected way."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.funnel import checks
from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.features import build_features
from simulation_assets.core.funnel.models import train_and_evaluate
from simulation_assets.sinks.funnel_store import FunnelSettings


@pytest.fixture(scope="module")
def people(default_week) -> pl.DataFrame:
    """Features of two default days joined with each person's true traits."""
    events, users = default_week
    first = users.filter(
        pl.col("user_id").is_in(events.filter(pl.col("event") == "login_success")["user_id"].implode())
    )
    ids = first["user_id"].head(6_000).implode()
    mine = events.filter(
        pl.col("user_id").is_in(ids)
        | pl.col("distinct_id").is_in(first.filter(pl.col("user_id").is_in(ids))["anon_id"].implode())
    )
    truth = users.select(
        pl.col("user_id").alias("person_id"),
        "intent",
        "price_sensitivity",
        "patience",
        "quality_bar",
        "first_plan",
    )
    return build_features(mine).join(truth.drop("first_plan"), on="person_id")


def _mean(frame: pl.DataFrame, where: pl.Expr, trait: str) -> float:
    return float(frame.filter(where)[trait].mean())


def test_intent_shows_in_quick_returns_and_jobs_in_the_first_session(people) -> None:
    back = pl.col("return_within_24h")
    assert _mean(people, back, "intent") - _mean(people, ~back, "intent") > 0.4
    again = pl.col("jobs_attempted_in_first_session") >= 2
    assert _mean(people, again, "intent") - _mean(people, ~again, "intent") > 0.6
    # and it shortens the time on the landing page before the CTA (section 9A)
    assert people.select(pl.corr("intent", "time_on_landing_before_cta_s")).item() < -0.1


def test_impatience_shows_in_status_polls_and_a_high_bar_in_re_runs(people) -> None:
    jobs = people.filter(pl.col("status_poll_count_7d").is_not_null())
    assert jobs.select(pl.corr("patience", "status_poll_count_7d", method="spearman")).item() < -0.3
    rerun = pl.col("job_reprocessed_same_input_7d") > 0
    assert _mean(people, rerun, "quality_bar") - _mean(people, ~rerun, "quality_bar") > 0.8
    down = pl.col("results_rated_down_7d") > 0
    assert _mean(people, down, "quality_bar") - _mean(people, ~down, "quality_bar") > 0.8


def test_price_sensitivity_shows_in_coupons_plans_and_pricing_time(default_week) -> None:
    events, users = default_week
    buyers = (
        events.filter(pl.col("event") == "purchase_completed")
        .select("user_id", "sku", pl.col("coupon").is_not_null().alias("coupon"))
        .join(users.select("user_id", "price_sensitivity", "intent"), on="user_id")
    )
    coupon = pl.col("coupon")
    assert _mean(buyers, coupon, "price_sensitivity") - _mean(buyers, ~coupon, "price_sensitivity") > 0.5
    assert _mean(buyers, pl.col("sku") == "pack_10", "price_sensitivity") > _mean(
        buyers, pl.col("sku") == "sub_business_yearly", "price_sensitivity"
    )
    changes = events.filter(pl.col("event") == "plan_changed").join(
        users.select("user_id", "intent"), on="user_id"
    )
    up = ((pl.col("plan") == "pro") & (pl.col("previous_plan") == "starter")) | (pl.col("plan") == "business")
    assert _mean(changes, up, "intent") > _mean(changes, ~up, "intent")


def test_models_report_importances_group_calibration_and_signal_effects(model_report) -> None:
    report = model_report
    assert len(report.purchase.feature_importance) == 15 and len(report.churn.feature_importance) == 15
    assert next(iter(report.purchase.feature_importance)) == "downloads_24h"  # the aha moment leads
    assert len(report.ltv[-1].feature_importance) == 15 and report.ltv[0].feature_importance == {}
    devices = {g.group: g for g in report.purchase.calibration_by_group["device"]}
    assert set(devices) == {"mobile", "desktop", "tablet"}
    for group in (devices["mobile"], devices["desktop"]):
        assert group.rows > 300 and abs(group.observed - group.predicted) < 0.04
    outcome = checks.signals_move_models(report, CohortConfig().checks.signals)
    assert outcome.passed, outcome.metadata
    effects = outcome.metadata["effects"]
    assert (
        effects["purchase:return_within_24h"] > 0.02 and effects["churn:job_reprocessed_same_input_7d"] > 0.02
    )
    assert effects["churn:status_poll_count_7d"] > 0.02


def test_the_signal_check_fails_when_a_signal_points_the_wrong_way(model_features) -> None:
    # status polls recorded upside down (the most anxious logged with the fewest polls)
    flipped = model_features.with_columns(
        (pl.col("status_poll_count_7d").max() - pl.col("status_poll_count_7d")).alias("status_poll_count_7d")
    )
    outcome = checks.signals_move_models(train_and_evaluate(flipped, seed=1), CohortConfig().checks.signals)
    assert not outcome.passed
    assert [w.split(" ")[0] for w in outcome.metadata["wrong_direction"]] == ["churn:status_poll_count_7d"]


def test_scenarios_are_named_after_the_product_and_its_campaigns_too(tmp_path) -> None:
    assert FunnelSettings(seed=42).scenario().startswith("blanklogo-seed42-")
    config = tmp_path / "acme.yaml"
    config.write_text("product: Acme Video\n")
    assert FunnelSettings(seed=7, config_path=str(config)).scenario().startswith("acmevideo-seed7-")
    cohort = simulate_cohort_events(dt.date(2026, 1, 1), CohortConfig(product="Acme Video"), 1, 30_000)
    assert set(cohort.events["utm_campaign"].unique()) == {
        "Acme Video | Purchase | Prospecting | Broad US",
        "Acme Video | Purchase | Retargeting | 30 Days",
        "Acme Video | Lead | Lookalike | Creators",
    }


def test_purchase_rate_stays_the_configured_one_however_the_traits_are_spread() -> None:
    # shifted traits (more retargeting, more price-sensitive geos) change who buys, not how many
    config = CohortConfig()
    cohort = simulate_cohort_events(dt.date(2026, 5, 1), config, seed=3, impressions=2_000_000)
    users = cohort.users.filter(pl.col("aha"))
    expected = float(users["purchase_probability"].mean())
    assert expected == pytest.approx(config.rates.p_purchase, abs=1e-9)
    n = users.height
    assert abs(users["purchased"].mean() - 0.1) < 4 * np.sqrt(0.09 / n)
