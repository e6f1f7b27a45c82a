"""The tracking plan as data: every event, its category, funnel stage and required properties.

Sections 1-4 of the tracking plan define seven categories (A-G), the event list of
each, the properties each category must carry, the ML stage labels and the
properties every event includes. They live here once, as pydantic models; the
validator (``schema.py``), the generator (``cohort.py``) and the docs read them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

PropertyType = Literal["string", "number", "integer", "boolean"]


class Category(StrEnum):
    """Event categories (tracking plan section 1)."""

    A = "Acquisition"
    B = "Activation"
    C = "Core Value / Product"
    D = "Monetization"
    E = "Retention"
    F = "Reliability"
    G = "Compliance / Account"


class Stage(StrEnum):
    """ML funnel stage labels (section 3); events outside the table are drivers (``none``)."""

    ACQ = "Acq"
    ACT = "Act"
    VALUE = "Value"
    REV = "Rev"
    RET = "Ret"
    RISK = "Risk"
    NONE = "none"


class PropertySpec(BaseModel):
    """One event property: its type, whether null is allowed, and allowed values if it is an enum."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: PropertyType
    nullable: bool = False
    choices: tuple[str, ...] | None = None
    description: str = ""


def _p(
    name: str,
    type_: PropertyType,
    nullable: bool = False,
    choices: tuple[str, ...] | None = None,
    doc: str = "",
) -> PropertySpec:
    return PropertySpec(name=name, type=type_, nullable=nullable, choices=choices, description=doc)


# Section 4 "Always include": attribution and experiment arm on every event. Click ids
# exist only when the ad network passed one, so they are required keys that may be null.
GLOBAL_PROPERTIES: tuple[PropertySpec, ...] = (
    _p("experiment_variant", "string", doc="A/B arm the user is in"),
    _p("utm_source", "string"),
    _p("utm_campaign", "string"),
    _p("utm_content", "string"),
    _p("fbclid", "string", nullable=True, doc="Meta click id, null without a Meta click"),
    _p("ad_id", "string"),
    _p("adset_id", "string"),
    _p("campaign_id", "string"),
    _p("event_id", "string", doc="unique id of the event; Pixel and CAPI copies share it for dedup"),
)

# Section 2A required properties of acquisition events (session_id is a top-level field).
ACQUISITION_PROPERTIES: tuple[PropertySpec, ...] = (
    _p("utm_adset", "string"),
    _p("gclid", "string", nullable=True, doc="Google click id, null without a Google click"),
    _p("referrer", "string"),
    _p("landing_variant", "string"),
    _p("page_path", "string"),
    _p("device", "string", choices=("mobile", "desktop", "tablet")),
    _p("geo", "string"),
)

# Section 2C: what a watermark-removal job must carry when it is created ...
JOB_CREATED_PROPERTIES: tuple[PropertySpec, ...] = (
    _p("job_id", "string"),
    _p("mode", "string", choices=("crop", "inpaint")),
    _p("detected_platform", "string", choices=("tiktok", "sora", "runway", "unknown")),
    _p("watermark_confidence", "number"),
    _p("video_bytes", "integer"),
    _p("duration_seconds", "number"),
    _p("resolution", "string"),
    _p("credits_before", "integer"),
    _p("credits_after", "integer"),
)
# ... and what its outcome adds (processing_completed / processing_failed).
JOB_OUTCOME_PROPERTIES: tuple[PropertySpec, ...] = JOB_CREATED_PROPERTIES + (
    _p("processing_time_ms", "integer"),
    _p("success_bool", "boolean"),
    _p("failure_reason", "string", nullable=True),
    _p("error_code", "string", nullable=True),
)
_JOB_ID = (_p("job_id", "string"),)

# Section 2D required properties of monetization events.
MONETIZATION_PROPERTIES: tuple[PropertySpec, ...] = (
    _p("order_id", "string"),
    _p("sku", "string"),
    _p("plan", "string"),
    _p("billing_period", "string", choices=("monthly", "yearly", "one-time")),
    _p("price", "number"),
    _p("currency", "string"),
    _p("credits_added", "integer"),
    _p("coupon", "string", nullable=True),
    _p("payment_provider", "string", choices=("stripe",)),
    _p("is_trial", "boolean"),
    _p("ltv_to_date", "number"),
)

# Section 9: high-signal features carried as (optional) properties where they are observed.
HIGH_SIGNAL_PROPERTIES: tuple[PropertySpec, ...] = (
    _p("time_on_landing_before_cta_ms", "integer", doc="9A intent"),
    _p("scroll_depth_bucket", "integer", doc="9A: 25/50/75/100"),
    _p("pricing_time_spent_ms", "integer", doc="9A"),
    _p("faq_topic", "string", doc="9A faq_opened_topics"),
    _p("watermark_position", "string", choices=("edge", "corner", "center", "unknown"), doc="9B"),
    _p("video_duration_bucket", "string", doc="9B: 0-10s, 10-30s, 30-60s, 60s+"),
    _p("resolution_bucket", "string", doc="9B: 720p, 1080p, 4k"),
    _p("file_size_bucket", "string", doc="9B"),
    _p("audio_present", "boolean", doc="9B"),
    _p("queue_wait_ms", "integer", doc="9E"),
    _p("retry_count", "integer", doc="9E"),
    _p("status_poll_count", "integer", doc="9E anxiety indicator"),
    _p("device_network_type", "string", doc="9E"),
    _p("latency_bucket", "string", doc="section 2F: <30s, 30-120s, >120s"),
    _p("creative_id", "string", doc="9F"),
    _p("ad_angle", "string", doc="9F"),
    _p("landing_variant_id", "string", doc="9F"),
    _p("first_touch_channel", "string", doc="9F"),
    _p("email_domain_type", "string", choices=("gmail", "work", "custom"), doc="9G"),
    _p("ads_allowed", "boolean", doc="9G consent_state"),
    _p("analytics_allowed", "boolean", doc="9G consent_state"),
    _p("account_age_days", "integer", doc="9G"),
    _p("selected_pack", "string", doc="9D"),
    _p("credits_balance_at_checkout", "integer", doc="9D"),
    _p("time_to_first_cta_click_ms", "integer", doc="9A: from the ad click to the CTA click"),
    _p("plan_viewed", "string", choices=("starter", "pro", "business"), doc="9D: the plan card looked at"),
    _p("coupon_seen", "boolean", doc="9D: the checkout offered a coupon"),
    _p("reprocessed_same_input", "boolean", doc="9C: a job re-run on an input already processed"),
    _p("result_rating", "string", choices=("up", "down"), doc="9C: thumbs up or down on a result"),
    _p("reason_code", "string", doc="9C: why a result was rated down"),
    _p("download_attempt", "integer", doc="9C: 2 for a second download attempt of one result"),
    _p("last_touch_channel", "string", doc="9F: channel of the session's visit (ad, email, direct)"),
    _p("subscription_month", "integer", doc="month of the subscription an event belongs to (1 = first)"),
)


class EventSpec(BaseModel):
    """One event of the tracking plan."""

    model_config = ConfigDict(frozen=True)

    name: str
    category: Category
    stage: Stage = Stage.NONE
    description: str
    required: tuple[PropertySpec, ...] = ()
    source: Literal["web", "server", "worker"] = "web"
    # True for the few events this project adds beyond the plan's list (named in its section 9).
    extension: bool = False

    def required_names(self) -> tuple[str, ...]:
        """Return every property name this event must carry (globals first)."""
        return tuple(p.name for p in GLOBAL_PROPERTIES + self.required)


def _e(
    name: str,
    cat: Category,
    desc: str,
    stage: Stage = Stage.NONE,
    required: tuple[PropertySpec, ...] = (),
    source: str = "web",
    extension: bool = False,
) -> EventSpec:
    return EventSpec(
        name=name,
        category=cat,
        stage=stage,
        description=desc,
        required=required,
        source=source,
        extension=extension,
    )  # type: ignore[arg-type]


A, B, C, D, E, F, G = Category.A, Category.B, Category.C, Category.D, Category.E, Category.F, Category.G
_ACQ = ACQUISITION_PROPERTIES
_MON = MONETIZATION_PROPERTIES

EVENTS: tuple[EventSpec, ...] = (
    # A) Acquisition
    _e("ad_click", A, "Ad clicked; carries the click id when the network passes one", required=_ACQ),
    _e("landing_view", A, "First page view from the ad", Stage.ACQ, _ACQ),
    _e("cta_click", A, "Clicked 'Get Free Credits' / 'Get Started'", Stage.ACQ, _ACQ),
    _e("pricing_view", A, "Viewed the pricing page", required=_ACQ),
    _e("faq_expand", A, "Expanded an FAQ entry (objection analysis)", required=_ACQ),
    # B) Activation
    _e("signup_start", B, "Began the signup flow", required=(_p("page_path", "string"),)),
    _e("signup_submit", B, "Submitted the signup form", required=(_p("email_domain_type", "string"),)),
    _e("auth_email_sent", B, "Magic link / OTP sent", source="server"),
    _e("auth_email_delivered", B, "Mail provider confirmed delivery", source="server"),
    _e("auth_email_opened", B, "Auth e-mail opened (best effort)", source="server"),
    _e("auth_email_link_clicked", B, "Auth link clicked"),
    _e("login_success", B, "Authenticated; identity is stitched here (anonymous id -> user id)", Stage.ACT),
    _e(
        "credits_granted",
        B,
        "Free credits applied",
        Stage.ACT,
        (_p("credits_added", "integer"), _p("credits_before", "integer"), _p("credits_after", "integer")),
        "server",
    ),
    _e("onboarding_view", B, "Congrats / instructions page"),
    _e("activation_complete", B, "login_success and credits_granted and upload_view reached", Stage.ACT),
    # C) Core value
    _e("upload_view", C, "Viewed the upload screen", required=(_p("page_path", "string"),)),
    _e("upload_started", C, "Began a file upload", required=(_p("upload_id", "string"),)),
    _e(
        "upload_completed",
        C,
        "File upload finished",
        required=(_p("upload_id", "string"), _p("video_bytes", "integer")),
    ),
    _e("job_created", C, "Job submitted to the queue", Stage.VALUE, JOB_CREATED_PROPERTIES, "server"),
    _e(
        "watermark_detected",
        C,
        "Platform detected with a confidence",
        required=JOB_CREATED_PROPERTIES,
        source="worker",
    ),
    _e("processing_started", C, "Worker picked up the job", required=JOB_CREATED_PROPERTIES, source="worker"),
    _e("processing_completed", C, "Job finished successfully", Stage.VALUE, JOB_OUTCOME_PROPERTIES, "worker"),
    _e("processing_failed", C, "Job failed", Stage.RISK, JOB_OUTCOME_PROPERTIES, "worker"),
    _e("download_clicked", C, "Clicked download (the aha moment, first time)", Stage.VALUE, _JOB_ID),
    _e("download_completed", C, "Download finished", required=_JOB_ID),
    _e(
        "job_refunded",
        C,
        "Credit returned after an unrecoverable failure",
        required=_JOB_ID + (_p("credits_before", "integer"), _p("credits_after", "integer")),
        source="server",
    ),
    _e("share_clicked", C, "Copied a share link", required=_JOB_ID),
    _e(
        "result_rated",
        C,
        "Thumbs up or down on a result, with a reason when down (section 9C result_rating)",
        required=_JOB_ID + (_p("result_rating", "string"), _p("reason_code", "string", nullable=True)),
        extension=True,
    ),
    # D) Monetization
    _e(
        "paywall_view",
        D,
        "Hit the paywall (out of credits)",
        required=(_p("credits_balance_at_checkout", "integer"),),
    ),
    _e("checkout_started", D, "Began checkout", Stage.REV, _MON),
    _e(
        "checkout_step",
        D,
        "A step inside checkout",
        required=(_p("order_id", "string"), _p("step", "string")),
    ),
    _e(
        "purchase_completed",
        D,
        "First purchase within the first week: credit pack or subscription",
        Stage.REV,
        _MON,
        "server",
    ),
    _e("subscription_started", D, "New subscription", required=_MON, source="server"),
    _e("subscription_renewed", D, "Subscription renewed", required=_MON, source="server"),
    _e("subscription_canceled", D, "Subscription canceled", required=_MON, source="server"),
    _e("topup_purchased", D, "Credit pack purchased", required=_MON, source="server"),
    _e("invoice_failed", D, "Payment failed", Stage.RISK, _MON, "server"),
    _e("refund_issued", D, "Cash refund", required=_MON, source="server"),
    _e(
        "plan_changed",
        D,
        "Upgrade or downgrade",
        required=_MON + (_p("previous_plan", "string"),),
        source="server",
    ),
    # E) Retention
    _e(
        "return_session",
        E,
        "Session start after at least a day away",
        Stage.RET,
        (_p("days_since_last_visit", "integer"),),
    ),
    _e(
        "upload_returning_user",
        E,
        "First upload in a returning session",
        required=(_p("upload_id", "string"),),
    ),
    _e("job_completed_returning_user", E, "Job completed by a returning user", Stage.RET, _JOB_ID, "worker"),
    _e(
        "low_credits_warning_shown", E, "Low-credit warning shown", required=(_p("credits_after", "integer"),)
    ),
    _e(
        "low_credits_topup_clicked",
        E,
        "Top-up clicked from the warning",
        required=(_p("credits_after", "integer"),),
    ),
    _e("notification_sent", E, "Job-complete e-mail or webhook sent", required=_JOB_ID, source="server"),
    _e("notification_clicked", E, "Notification clicked", required=_JOB_ID),
    # F) Reliability + trust
    _e("error_shown", F, "Front-end error toast or modal", Stage.RISK, (_p("error_code", "string"),)),
    _e(
        "api_error",
        F,
        "Backend error",
        required=(_p("error_code", "string"), _p("endpoint", "string")),
        source="server",
    ),
    _e("job_timeout", F, "Job timed out", required=_JOB_ID, source="worker"),
    _e(
        "storage_error",
        F,
        "Storage operation failed",
        required=_JOB_ID + (_p("error_code", "string"),),
        source="worker",
    ),
    _e(
        "latency_bucket",
        F,
        "Processing latency bucket of a finished job",
        required=_JOB_ID + (_p("latency_bucket", "string"), _p("processing_time_ms", "integer")),
        source="worker",
    ),
    _e(
        "support_contacted",
        F,
        "Support ticket opened (section 9C support_contacted_after_job)",
        required=(_p("ticket_reason", "string"),),
        source="server",
        extension=True,
    ),
    # G) Compliance / account control
    _e(
        "cookie_consent_updated",
        G,
        "Analytics / ads consent toggled",
        required=(_p("ads_allowed", "boolean"), _p("analytics_allowed", "boolean")),
    ),
    _e("account_deletion_started", G, "User began account deletion"),
    _e("account_deleted", G, "Account deleted", source="server"),
    _e("data_export_requested", G, "User asked for a data export"),
)

TAXONOMY: dict[str, EventSpec] = {spec.name: spec for spec in EVENTS}
"""Every event by name."""

PROPERTIES: dict[str, PropertySpec] = {}
"""Every property the plan names (required or high-signal), by name; one type per name."""
for _spec in GLOBAL_PROPERTIES + HIGH_SIGNAL_PROPERTIES + tuple(p for e in EVENTS for p in e.required):
    PROPERTIES.setdefault(_spec.name, _spec)
# Properties the generator adds beyond the lists above (section 9 and 10 names).
for _extra in (
    _p("ad_platform", "string"),
    _p("failure_reason_code", "string", nullable=True),
    _p("success", "boolean"),
    _p("mode_selected", "string"),
    _p("is_first_job", "boolean"),
):
    PROPERTIES.setdefault(_extra.name, _extra)

# Section 3 "North star milestones": the four events to track hard.
NORTH_STAR: dict[str, str] = {
    "activated": "activation_complete",
    "first_value": "processing_completed",
    "aha": "download_clicked",
    "monetized": "purchase_completed",
}

CANONICAL_FIELDS: tuple[str, ...] = (
    "event",
    "timestamp",
    "source",
    "environment",
    "distinct_id",
    "user_id",
    "session_id",
    "properties",
)
"""Top-level keys of the canonical event (section 10)."""


def events_in(category: Category) -> list[str]:
    """Return the names of the events of ``category``, in plan order."""
    return [e.name for e in EVENTS if e.category == category]


def stage_of(event: str) -> Stage:
    """Return the ML stage label of ``event`` (``Stage.NONE`` for drivers)."""
    return TAXONOMY[event].stage
