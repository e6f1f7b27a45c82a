"""Typed configuration of the funnel: states, transition rates, churn and the event-level cohort.

Defaults come from the tracking plan: the rates of the Monte Carlo template's usage
example (section 12), the churn arguments of its ``simulate_cohort`` signature, the
states of section 5. Numbers the plan leaves open (prices, job counts, hazard
coefficients ...) are marked as this project's choices.
"""

from __future__ import annotations

from enum import StrEnum

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
    measured seven days after login. Coefficients are this project's choice: with the
    cohort's default behaviour they give a mean hazard of about 0.28 (the template's
    base churn is 0.25); an idle, slow or failing first week raises it the way the
    template's extras do, strongly enough for a churn model to find the signal.
    """

    intercept: float = -4.4
    days_since_last_job: float = 0.60  # per day without a completed job (0-7)
    job_fail_rate: float = 3.0  # per unit of failed/attempted jobs (0-1)
    processing_time_min: float = 0.60  # per minute of mean processing time
    credits_left: float = -0.20  # per unused credit (sunk value keeps users)
    support_tickets: float = 1.20  # per ticket opened


class Plan(_Frozen):
    """A product the user can buy (this project's choice of catalogue)."""

    sku: str
    plan: str
    billing_period: str
    price: float
    credits: int
    weight: float = Field(gt=0)


DEFAULT_PLANS: tuple[Plan, ...] = (
    Plan(sku="pack_10", plan="starter", billing_period="one-time", price=9.0, credits=10, weight=0.45),
    Plan(sku="pack_50", plan="pro_pack", billing_period="one-time", price=29.0, credits=50, weight=0.20),
    Plan(sku="sub_pro_monthly", plan="pro", billing_period="monthly", price=19.0, credits=40, weight=0.30),
    Plan(
        sku="sub_business_yearly",
        plan="business",
        billing_period="yearly",
        price=190.0,
        credits=600,
        weight=0.05,
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


class CohortConfig(_Frozen):
    """How an event-level cohort behaves beyond the transition rates (this project's choices)."""

    rates: TransitionRates = TransitionRates()
    churn: ChurnRule = ChurnRule()
    hazard: ChurnHazard = ChurnHazard()
    impressions_per_day: int = Field(default=1_000_000, ge=0)
    environment: str = "simulation"
    free_credits: int = Field(default=5, ge=1)
    extra_jobs_first_week: float = Field(
        default=1.5, ge=0, description="Poisson mean of jobs after the first"
    )
    purchase_intent_strength: float = Field(default=1.5, ge=0, description="logit spread of purchase intent")
    pricing_view_base: Probability = 0.35  # share of landers who open pricing at average intent
    faq_rate: Probability = 0.15
    consent_banner_rate: Probability = 0.60
    support_rate_per_failure: Probability = 0.30
    share_rate: Probability = 0.08
    notification_click_rate: Probability = 0.25
    invoice_fail_rate: Probability = 0.05
    refund_rate: Probability = 0.02
    deletion_rate_of_churned: Probability = 0.02
    topup_rate_of_retained: Probability = 0.50
    plans: tuple[Plan, ...] = DEFAULT_PLANS
    horizon_days: int = Field(
        default=90, ge=31, description="events are generated up to this many days after the click"
    )

    checks: CheckBands = CheckBands()

    def scenario_payload(self) -> dict[str, object]:
        """Return the fields that shape the data (everything but the check bands), JSON-ready."""
        return self.model_dump(mode="json", exclude={"checks"})

    @model_validator(mode="after")
    def _plans(self) -> CohortConfig:
        if not self.plans:
            raise ValueError("plans must name at least one product")
        return self


def purchase_probability_per_click(rates: TransitionRates) -> float:
    """Return P(purchase | click), the product of section 6 (with P(aha|login) expanded).

    P(aha|login) = p_credits * p_upload * p_job_success * p_download.
    """
    aha_given_login = rates.p_credits * rates.p_upload * rates.p_job_success * rates.p_download
    return rates.p_land * rates.p_cta * rates.p_signup * rates.p_login * aha_given_login * rates.p_purchase


def activation_probability_per_click(rates: TransitionRates) -> float:
    """Return P(activated | click) as the template counts it (CTA, signup and login)."""
    return rates.p_land * rates.p_cta * rates.p_signup * rates.p_login
