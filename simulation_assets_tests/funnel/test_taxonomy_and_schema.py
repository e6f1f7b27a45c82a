"""The taxonomy holds the whole tracking plan and the validator names what is missing."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.schema import (
    EventValidationError,
    to_canonical,
    validate_event,
    validate_frame,
)
from simulation_assets.core.funnel.taxonomy import TAXONOMY, Category, Stage, events_in, stage_of

PLAN = {
    Category.A: ["ad_click", "landing_view", "cta_click", "pricing_view", "faq_expand"],
    Category.B: [
        "signup_start",
        "signup_submit",
        "auth_email_sent",
        "auth_email_delivered",
        "auth_email_opened",
        "auth_email_link_clicked",
        "login_success",
        "credits_granted",
        "onboarding_view",
        "activation_complete",
    ],
    Category.C: [
        "upload_view",
        "upload_started",
        "upload_completed",
        "job_created",
        "watermark_detected",
        "processing_started",
        "processing_completed",
        "processing_failed",
        "download_clicked",
        "download_completed",
        "job_refunded",
        "share_clicked",
    ],
    Category.D: [
        "paywall_view",
        "checkout_started",
        "checkout_step",
        "purchase_completed",
        "subscription_started",
        "subscription_renewed",
        "subscription_canceled",
        "topup_purchased",
        "invoice_failed",
        "refund_issued",
        "plan_changed",
    ],
    Category.E: [
        "return_session",
        "upload_returning_user",
        "job_completed_returning_user",
        "low_credits_warning_shown",
        "low_credits_topup_clicked",
        "notification_sent",
        "notification_clicked",
    ],
    Category.F: ["error_shown", "api_error", "job_timeout", "storage_error", "latency_bucket"],
    Category.G: [
        "cookie_consent_updated",
        "account_deletion_started",
        "account_deleted",
        "data_export_requested",
    ],
}


def test_every_event_of_the_plan_has_its_category() -> None:
    for category, names in PLAN.items():
        listed = [e for e in events_in(category) if not TAXONOMY[e].extension]
        assert listed == names, category


def test_stage_labels_follow_the_ml_table() -> None:
    assert stage_of("landing_view") == Stage.ACQ and stage_of("cta_click") == Stage.ACQ
    assert {stage_of(e) for e in ("login_success", "credits_granted", "activation_complete")} == {Stage.ACT}
    assert {stage_of(e) for e in ("job_created", "processing_completed", "download_clicked")} == {Stage.VALUE}
    assert {stage_of(e) for e in ("checkout_started", "purchase_completed")} == {Stage.REV}
    assert {stage_of(e) for e in ("return_session", "job_completed_returning_user")} == {Stage.RET}
    assert {stage_of(e) for e in ("processing_failed", "error_shown", "invoice_failed")} == {Stage.RISK}


def _event(**props: object) -> dict:
    base = {
        "experiment_variant": "control",
        "utm_source": "facebook",
        "utm_campaign": "c",
        "utm_content": "cr_1",
        "fbclid": None,
        "ad_id": "1",
        "adset_id": "2",
        "campaign_id": "3",
        "event_id": "evt_1",
    }
    return {
        "event": "purchase_completed",
        "timestamp": "2026-01-12T05:12:34.123Z",
        "source": "server",
        "environment": "prod",
        "distinct_id": "usr_1",
        "user_id": "usr_1",
        "session_id": "sess_1",
        "properties": {**base, **props},
    }


MONEY = {
    "order_id": "ord_1",
    "sku": "pack_10",
    "plan": "starter",
    "billing_period": "one-time",
    "price": 9.0,
    "currency": "USD",
    "credits_added": 10,
    "coupon": None,
    "payment_provider": "stripe",
    "is_trial": False,
    "ltv_to_date": 9.0,
}


def test_a_complete_purchase_event_validates() -> None:
    parsed = validate_event(_event(**MONEY))
    assert parsed.timestamp == dt.datetime(2026, 1, 12, 5, 12, 34, 123000, tzinfo=dt.UTC)


@pytest.mark.parametrize("missing", ["order_id", "price", "currency", "experiment_variant", "ad_id"])
def test_missing_required_property_is_rejected_by_name(missing: str) -> None:
    props = {k: v for k, v in MONEY.items() if k != missing}
    event = _event(**props)
    event["properties"].pop(missing, None)
    with pytest.raises(EventValidationError, match=f"missing required property '{missing}'"):
        validate_event(event)


def test_wrong_types_enums_and_unknown_events_are_rejected() -> None:
    with pytest.raises(EventValidationError, match="'price' must be number"):
        validate_event(_event(**{**MONEY, "price": "nine"}))
    with pytest.raises(EventValidationError, match="billing_period"):
        validate_event(_event(**{**MONEY, "billing_period": "weekly"}))
    with pytest.raises(EventValidationError, match="unknown event"):
        validate_event({**_event(**MONEY), "event": "bought_stuff"})
    with pytest.raises(EventValidationError, match="'coupon'"):
        validate_event(_event(**{k: v for k, v in MONEY.items() if k != "coupon"}))


@pytest.fixture(scope="module")
def small_cohort():
    return simulate_cohort_events(dt.date(2026, 1, 5), CohortConfig(), seed=9, impressions=60_000)


def test_every_emitted_event_validates_one_by_one(small_cohort) -> None:
    events = small_cohort.events
    assert events.height > 3_000
    assert validate_frame(events) == []
    canonical = to_canonical(events)
    for item in canonical:
        validate_event(item)
    assert {e["event"] for e in canonical} >= {
        "ad_click",
        "login_success",
        "processing_completed",
        "purchase_completed",
    }


def test_frame_validation_names_the_missing_property(small_cohort) -> None:
    broken = small_cohort.events.with_columns(
        pl.when(pl.col("event") == "job_created").then(None).otherwise(pl.col("mode")).alias("mode")
    )
    problems = validate_frame(broken)
    assert any(p.event == "job_created" and "'mode'" in p.rule for p in problems)
    dropped = small_cohort.events.drop("experiment_variant")
    assert any("experiment_variant" in p.rule for p in validate_frame(dropped))
