"""A week of default cohorts fires every event of the plan; the section 6 formulas match the configured truth."""

from __future__ import annotations

import polars as pl

from simulation_assets.core.funnel import checks
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.formulas import compute_formulas
from simulation_assets.core.funnel.schema import validate_frame
from simulation_assets.core.funnel.taxonomy import TAXONOMY


def test_a_week_of_default_cohorts_fires_every_event_of_the_plan_with_valid_properties(default_week) -> None:
    events, _ = default_week
    counts = dict(events.group_by("event").len().iter_rows())
    outcome = checks.every_event_fires(counts)
    assert outcome.passed, outcome.metadata
    assert outcome.metadata["events_present"] == len(TAXONOMY) == 56
    for name in (
        "paywall_view",
        "plan_changed",
        "subscription_canceled",
        "subscription_renewed",
        "refund_issued",
    ):
        assert counts[name] >= 15, (name, counts[name])
    assert validate_frame(events) == []
    coupons = events.filter(pl.col("event") == "purchase_completed")["coupon"].drop_nulls()
    assert coupons.len() > 20 and set(coupons) == {"WELCOME10"}
    later_consent = events.filter(
        (pl.col("event") == "cookie_consent_updated") & (pl.col("page_path") != "/")
    )
    assert later_consent.height > 100 and later_consent["user_id"].null_count() == 0


def test_the_coverage_check_names_the_events_a_week_is_missing(default_week) -> None:
    events, _ = default_week
    kept = events.filter(~pl.col("event").is_in(["paywall_view", "plan_changed"]))
    counts = dict(kept.group_by("event").len().iter_rows())
    outcome = checks.every_event_fires(counts)
    assert not outcome.passed
    assert outcome.metadata["absent_events"] == ["paywall_view", "plan_changed"]


def test_plan_changes_move_between_neighbouring_tiers_and_name_the_previous_one(default_week) -> None:
    events, _ = default_week
    changes = events.filter(pl.col("event") == "plan_changed")
    moves = set(zip(changes["previous_plan"], changes["plan"]))
    assert moves <= {("starter", "pro"), ("pro", "business"), ("pro", "starter")}
    assert ("starter", "pro") in moves and ("pro", "starter") in moves
    assert (changes["subscription_month"] == 2).all()


def test_section_6_formulas_match_the_configured_truth(default_week) -> None:
    events, users = default_week
    config = CohortConfig()
    formulas = compute_formulas(events, users, config)
    outcome = checks.formulas_match_truth(formulas)
    assert outcome.passed, outcome.metadata
    # three subscription months, three pack horizons, P(purchase|click)
    assert outcome.metadata["compared"] == 7
    monthly = formulas.monthly_subscription_churn
    assert [m.expected for m in monthly[1:]] == [0.3, 0.3]  # 1 - p_return_next_month
    assert monthly[0].denominator > 500 and monthly[2].denominator > 50
    pack = [p.observed for p in formulas.credit_pack_churn]
    assert pack[0] < pack[1] < pack[2]  # no return in the month ending at 30, 60, 90 days: rising
    # the product of the learned stage rates is P(purchase | click) itself (the steps nest)
    direct = formulas.purchase_per_click.numerator / formulas.purchase_per_click.denominator
    assert abs(formulas.purchase_per_click_product - direct) < 1e-12
    assert abs(formulas.purchase_per_click.expected - 0.3 * 0.5 * 0.8 * 0.9 * 0.85 * 0.95 * 0.1) < 1e-6


def test_the_formulas_check_fails_when_cancellations_go_missing(default_week) -> None:
    events, users = default_week
    cancels = events.filter(pl.col("event") == "subscription_canceled")["event_id"]
    lost = cancels.sample(fraction=0.3, seed=3)
    broken = events.filter(~pl.col("event_id").is_in(lost.implode()))
    outcome = checks.formulas_match_truth(compute_formulas(broken, users, CohortConfig()))
    assert not outcome.passed
    assert any(line.startswith("month 1") for line in outcome.metadata["outside_band"])
