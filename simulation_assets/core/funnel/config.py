"""Typed configuration of the funnel: states, transition rates, churn and the event-level cohort.

Defaults come from the tracking plan: the rates of the Monte Carlo template's usage
example (section 12), the churn arguments of its ``simulate_cohort`` signature, the
states of section 5. Numbers the plan leaves open (prices, job counts, hazard
coefficients ...) are marked as this project's choices.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from simulation_assets.core.config_base import FrozenModel as _Frozen
from simulation_assets.core.config_base import Probability


class State(StrEnum):
    """User states of the simulation state machine (section 5)."""

    S0 = "S0_ClickedAd"
    S1 = "S1_Landed"
    S2 = "S2_ClickedCTA"
    S3 = "S3_SignedUp"
    S4 = "S4_LoggedIn"
    S5 = "S5_CreditsGranted"
    S6 = "S6_Uploaded"
    S7 = "S7_JobCompleted"
    S8 = "S8_Downloaded"
    S9 = "S9_Purchased"
    S10 = "S10_Retained"
    S11 = "S11_Churned"


# The event whose first occurrence puts a user in each state (S11 has none: it is an absence).
STATE_EVENTS: dict[State, str] = {
    State.S0: "ad_click",
    State.S1: "landing_view",
    State.S2: "cta_click",
    State.S3: "signup_submit",
    State.S4: "login_success",
    State.S5: "credits_granted",
    State.S6: "upload_completed",
    State.S7: "processing_completed",
    State.S8: "download_clicked",
    State.S9: "purchase_completed",
    State.S10: "job_completed_returning_user",
}


class TransitionRates(_Frozen):
    """One-step probabilities of the funnel (section 12 ``Rates`` plus two steps of section 5).

    Defaults are the template's usage example. ``p_land`` (S1|S0) and ``p_credits``
    (S5|S4) are not in the template; they default to 1 so the template's
    distribution is reproduced exactly.
    """

    ctr: Probability = 0.02  # impressions -> ad click (S0)
    p_land: Probability = 1.0  # S1|S0, "~1 unless tracking issues" (section 5)
    p_cta: Probability = 0.30  # S2|S1
    p_signup: Probability = 0.50  # S3|S2
    p_login: Probability = 0.80  # S4|S3
    p_credits: Probability = 1.0  # S5|S4, free credits applied on login
    p_upload: Probability = 0.90  # S6|S5
    p_job_success: Probability = 0.85  # S7|S6
    p_download: Probability = 0.95  # S8|S7
    p_purchase: Probability = 0.10  # S9|S8 within 7 days
    p_repeat_30d: Probability = 0.40  # returning usage within 30 days (S10)

    def step_probabilities(self) -> dict[str, float]:
        """Return the conditional probability of each state given the previous one, keyed ``Sj|Si``."""
        return {
            "S1|S0": self.p_land,
            "S2|S1": self.p_cta,
            "S3|S2": self.p_signup,
            "S4|S3": self.p_login,
            "S5|S4": self.p_credits,
            "S6|S5": self.p_upload,
            "S7|S6": self.p_job_success,
            "S8|S7": self.p_download,
            "S9|S8": self.p_purchase,
        }


class ChurnRule(_Frozen):
    """The template's additive churn rule (section 12 keyword arguments)."""

    base_churn: Probability = 0.25
    extra_churn_if_fail: Probability = 0.20
    extra_churn_if_slow: Probability = 0.10
    slow_rate: Probability = 0.20
    max_churn: Probability = 0.95  # the template clamps churn_prob to [0, 0.95]


class ChurnHazard(_Frozen):
    """Logistic 30-day churn hazard (section 6 "Simple churn hazard model").

    ``P(churn) = 1 / (1 + exp(-(intercept + sum(coef * feature))))`` with the features
    measured seven days after login: the plan's five (days since the last job, job fail
    rate, processing time, credits left, support tickets) and two of its section 9 signals
    (results that disappointed the person's quality bar, and impatience, the latent trait
    that status polling reveals). Coefficients are this project's choice: with the cohort's
    default behaviour they give a mean hazard near the template's base churn of 0.25; an
    idle, slow, failing or disappointing first week raises it, strongly enough for a churn
    model to find the signal.
    """

    intercept: float = -5.9
    days_since_last_job: float = 0.60  # per day without a completed job (0-7)
    job_fail_rate: float = 3.0  # per unit of failed/attempted jobs (0-1)
    processing_time_min: float = 0.60  # per minute of mean processing time
    credits_left: float = -0.20  # per unused credit, counted up to credits_left_cap (sunk value keeps users)
    credits_left_cap: int = Field(default=10, ge=0)
    support_tickets: float = 1.20  # per ticket opened
    dissatisfied_results: float = 1.50  # per result below the person's quality bar (section 9C)
    impatience: float = 0.80  # per standard deviation of impatience (minus patience, section 9E)


BillingPeriod = Literal["monthly", "yearly", "one-time"]
TIERS: tuple[str, ...] = ("starter", "pro", "business")
"""Subscription tiers in upgrade order (section 9D ``plan_viewed``)."""


class Plan(_Frozen):
    """A product the user can buy (this project's choice of catalogue).

    ``plan`` is a tier of :data:`TIERS` for subscriptions and ``pack`` for one-time credit
    packs; ``weight`` is the share of first purchases at average price sensitivity, and
    ``price_sensitivity`` how strongly a price-sensitive buyer leans toward (positive) or away
    from (negative) it.
    """

    sku: str
    plan: str
    billing_period: BillingPeriod
    price: float = Field(gt=0)
    credits: int = Field(ge=0)
    weight: float = Field(gt=0)
    price_sensitivity: float = 0.0

    @property
    def is_subscription(self) -> bool:
        return self.billing_period != "one-time"


DEFAULT_PLANS: tuple[Plan, ...] = (
    Plan(
        sku="pack_10",
        plan="pack",
        billing_period="one-time",
        price=9.0,
        credits=10,
        weight=0.38,
        price_sensitivity=0.5,
    ),
    Plan(
        sku="pack_50",
        plan="pack",
        billing_period="one-time",
        price=29.0,
        credits=50,
        weight=0.17,
        price_sensitivity=0.2,
    ),
    Plan(
        sku="sub_starter_monthly",
        plan="starter",
        billing_period="monthly",
        price=9.0,
        credits=30,
        weight=0.17,
        price_sensitivity=0.3,
    ),
    Plan(
        sku="sub_pro_monthly",
        plan="pro",
        billing_period="monthly",
        price=19.0,
        credits=80,
        weight=0.22,
        price_sensitivity=-0.2,
    ),
    Plan(
        sku="sub_business_yearly",
        plan="business",
        billing_period="yearly",
        price=190.0,
        credits=1200,
        weight=0.06,
        price_sensitivity=-0.5,
    ),
)


class ModelThresholds(_Frozen):
    """Minimum quality a model must show on the held-out (later) persons (this project's bands)."""

    purchase_auc_min: float = Field(default=0.75, description="ROC AUC of purchase propensity")
    churn_auc_min: float = Field(default=0.57, description="ROC AUC of churn propensity")
    ece_max: float = Field(
        default=0.05, description="expected calibration error of both classifiers (+ 0.5/sqrt(test rows))"
    )
    ltv_mae_improvement_min: float = Field(
        default=0.15, description="LTV MAE at least this share below the constant (median) predictor's"
    )
    min_test_rows: int = 200


class SignalDirection(_Frozen):
    """A section 9 signal and the way it must move a model's prediction (+1 up, -1 down)."""

    model: Literal["purchase", "churn", "ltv_30", "ltv_60", "ltv_90"]
    feature: str
    direction: Literal[-1, 1]


DEFAULT_SIGNALS: tuple[SignalDirection, ...] = (
    SignalDirection(model="purchase", feature="jobs_attempted_in_first_session", direction=1),
    SignalDirection(model="purchase", feature="time_on_landing_before_cta_s", direction=-1),
    SignalDirection(model="churn", feature="job_reprocessed_same_input_7d", direction=1),
    SignalDirection(model="churn", feature="status_poll_count_7d", direction=1),
    SignalDirection(model="churn", feature="days_since_last_job", direction=1),
    SignalDirection(model="purchase", feature="return_within_24h", direction=1),
)
"""The strongest signals the plan names, and the direction each must move its model."""


class CheckBands(_Frozen):
    """How far simulated data may stray from the configured truth before an asset check fails.

    They change no data, so they are left out of the scenario's name (see
    :meth:`CohortConfig.scenario_payload`).
    """

    rates_z: float = Field(
        default=4.0,
        gt=0,
        description="learned vs configured rate: at most this many binomial standard errors",
    )
    models: ModelThresholds = ModelThresholds()
    signals: tuple[SignalDirection, ...] = DEFAULT_SIGNALS


class CohortConfig(_Frozen):
    """How an event-level cohort behaves beyond the transition rates (this project's choices)."""

    rates: TransitionRates = TransitionRates()
    churn: ChurnRule = ChurnRule()
    hazard: ChurnHazard = ChurnHazard()
    product: str = Field(
        default="BlankLogo",
        min_length=1,
        description="the product's name: in campaign names, synthetic e-mails and scenario folders",
    )
    site_url: str = Field(
        default="", description="the product's web address (default https://app.<product>.example)"
    )
    impressions_per_day: int = Field(default=1_000_000, ge=0)
    environment: str = "simulation"
    free_credits: int = Field(default=5, ge=1)
    extra_jobs_first_week: float = Field(
        default=1.5, ge=0, description="Poisson mean of jobs after the first"
    )
    purchase_intent_strength: float = Field(default=1.5, ge=0, description="purchase logit per SD of intent")
    purchase_price_sensitivity_strength: float = Field(
        default=0.7, ge=0, description="purchase logit lost per SD of price sensitivity"
    )
    pricing_view_base: Probability = 0.35  # share of landers who open pricing at average intent
    faq_rate: Probability = 0.15
    consent_banner_rate: Probability = 0.60
    consent_change_rate: Probability = 0.04  # logged-in people who later change their consent (section 2G)
    support_rate_per_failure: Probability = 0.30
    share_rate: Probability = 0.08
    notification_click_rate: Probability = 0.25
    reprocess_rate_if_dissatisfied: Probability = 0.85  # same input re-run within 10 minutes (section 9C)
    coupon_offer_rate: Probability = 0.30  # checkouts that show a coupon field with an offer (section 9D)
    invoice_fail_rate: Probability = 0.05
    refund_rate: Probability = 0.02
    deletion_rate_of_churned: Probability = 0.02
    topup_rate_of_retained: Probability = 0.50  # active pack buyers who buy another pack in month 2
    p_return_next_month: Probability = Field(
        default=0.70, description="a person active in one 30-day month is active in the next (months 2, 3)"
    )
    plan_upgrade_rate: Probability = 0.12  # renewing starter/pro subscribers who move up at the first renewal
    plan_downgrade_rate: Probability = 0.06  # renewing pro/business subscribers who move down
    plans: tuple[Plan, ...] = DEFAULT_PLANS
    horizon_days: int = Field(
        default=90, ge=31, description="events are generated up to this many days after the click"
    )

    checks: CheckBands = CheckBands()

    def product_slug(self) -> str:
        """Return the product's name in lower case letters and digits (``BlankLogo`` -> ``blanklogo``)."""
        return "".join(c for c in self.product.lower() if c.isalnum()) or "product"

    def site(self) -> str:
        """Return the product's web address, without a trailing slash."""
        return (self.site_url or f"https://app.{self.product_slug()}.example").rstrip("/")

    def scenario_payload(self) -> dict[str, object]:
        """Return the fields that shape the data (everything but the check bands), JSON-ready."""
        return self.model_dump(mode="json", exclude={"checks"})

    @model_validator(mode="after")
    def _plans(self) -> CohortConfig:
        if not self.plans:
            raise ValueError("plans must name at least one product")
        if not any(p.billing_period == "one-time" for p in self.plans):
            raise ValueError("plans must include a one-time credit pack (people out of credits buy one)")
        skus = [p.sku for p in self.plans]
        if len(set(skus)) != len(skus):
            raise ValueError(f"plans: sku must be unique, got {skus}")
        return self

    def pack(self) -> Plan:
        """Return the cheapest one-time pack: what a person out of credits buys."""
        return min((p for p in self.plans if p.billing_period == "one-time"), key=lambda p: p.price)


def purchase_probability_per_click(rates: TransitionRates) -> float:
    """Return P(purchase | click), the product of section 6 (with P(aha|login) expanded).

    P(aha|login) = p_credits * p_upload * p_job_success * p_download.
    """
    aha_given_login = rates.p_credits * rates.p_upload * rates.p_job_success * rates.p_download
    return rates.p_land * rates.p_cta * rates.p_signup * rates.p_login * aha_given_login * rates.p_purchase


def activation_probability_per_click(rates: TransitionRates) -> float:
    """Return P(activated | click) as the template counts it (CTA, signup and login)."""
    return rates.p_land * rates.p_cta * rates.p_signup * rates.p_login
