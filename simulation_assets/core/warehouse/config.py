"""Typed configuration of the synthetic warehouse: sizes per environment and every distribution.

Defaults are the numbers of the warehouse specification; the section each one
comes from is named in a comment beside it ("spec: Accounts" etc.). Values the
specification leaves open (hour-of-day curve, product mix, CTR/CPC, ...) are
marked "project choice".
"""

from __future__ import annotations

import datetime as dt
import os

from pydantic import Field, model_validator

from simulation_assets.core.config_base import FrozenModel as _Frozen
from simulation_assets.core.config_base import Probability

ENVIRONMENTS = ("dev", "qa", "prod")

# spec: "Load Size Configurations" and the per-table counts of milestones 2-7.
# device_health is not sized by the spec: 30 daily rows per device (project choice).
ROW_COUNTS: dict[str, tuple[int, int, int]] = {
    "accounts": (100, 10_000, 40_000),
    "locations": (150, 15_000, 60_000),
    "users": (300, 30_000, 120_000),
    "devices": (450, 45_000, 180_000),
    "subscriptions": (125, 12_500, 50_000),
    "stripe_customers": (100, 10_000, 40_000),
    "stripe_prices": (12, 12, 12),
    "stripe_subscriptions": (125, 12_500, 50_000),
    "stripe_subscription_items": (175, 17_500, 70_000),
    "stripe_invoices": (1_500, 150_000, 600_000),
    "stripe_charges": (1_425, 142_500, 570_000),
    "stripe_events": (10_000, 1_000_000, 4_000_000),
    "hubspot_companies": (125, 12_500, 50_000),
    "hubspot_contacts": (500, 50_000, 200_000),
    "hubspot_deals": (250, 25_000, 100_000),
    "hubspot_engagements": (2_500, 250_000, 1_000_000),
    "hubspot_tickets": (400, 40_000, 160_000),
    "marketing_campaigns": (25, 1_250, 5_000),
    "campaign_performance": (7_500, 375_000, 1_500_000),
    "attribution_touchpoints": (15_000, 750_000, 3_000_000),
    "marketing_qualified_leads": (200, 20_000, 80_000),
    "ga_sessions": (30_000, 1_500_000, 6_000_000),
    "user_sessions": (50_000, 2_500_000, 10_000_000),
    "page_views": (250_000, 12_500_000, 50_000_000),
    "feature_usage": (150_000, 7_500_000, 30_000_000),
    "tap_events": (500_000, 50_000_000, 200_000_000),
    "device_health": (13_500, 1_350_000, 5_400_000),
}


def environment_from_env() -> str:
    """Return ``$DATAGEN_ENV`` lower-cased (default ``dev``); raise ValueError naming valid values."""
    value = (os.environ.get("DATAGEN_ENV") or "dev").strip().lower()
    if value not in ENVIRONMENTS:
        raise ValueError(f"DATAGEN_ENV must be one of {', '.join(ENVIRONMENTS)}, got {value!r}")
    return value


def _check_shares(name: str, shares: dict[str, float]) -> None:
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-6 or any(v < 0 for v in shares.values()):
        raise ValueError(f"{name} shares must be non-negative and sum to 1, got {total:.4f}")


class Window(_Frozen):
    """Simulated history (spec: "Realistic Growth Curves", "Generate Accounts")."""

    start: dt.date = dt.date(2021, 1, 1)
    years: int = Field(default=5, ge=1)  # spec: created dates spanning 5 years
    account_yoy_growth: float = Field(default=0.40, gt=-1.0)  # spec: account growth 40% YoY
    # project choice: an account lives at least this long, so children always have room after it.
    min_tenure_days: int = Field(default=120, ge=60)

    @property
    def end(self) -> dt.date:
        return dt.date(self.start.year + self.years, self.start.month, self.start.day)


class Accounts(_Frozen):
    """spec: "Generate Accounts"."""

    industries: dict[str, float] = {"Restaurant": 0.40, "Bar": 0.30, "Hotel": 0.20, "Other": 0.10}
    tiers: dict[str, float] = {"Basic": 0.50, "Pro": 0.35, "Enterprise": 0.15}
    mrr_usd: dict[str, tuple[float, float]] = {
        "Basic": (299.0, 999.0),
        "Pro": (999.0, 2999.0),
        "Enterprise": (2999.0, 9999.0),
    }
    # spec: employee counts 5-500 based on tier (split per tier: project choice)
    employees: dict[str, tuple[int, int]] = {"Basic": (5, 50), "Pro": (20, 200), "Enterprise": (100, 500)}
    # spec "Correlation Patterns": high-value accounts have more locations, users, devices.
    size_weight: dict[str, float] = {"Basic": 1.0, "Pro": 2.5, "Enterprise": 5.0}

    @model_validator(mode="after")
    def _valid(self) -> Accounts:
        _check_shares("industries", self.industries)
        _check_shares("tiers", self.tiers)
        if set(self.mrr_usd) != set(self.tiers) or set(self.employees) != set(self.tiers):
            raise ValueError("mrr_usd and employees must name exactly the tiers")
        return self


class Locations(_Frozen):
    """spec: "Generate Locations"."""

    per_account: tuple[int, int] = (1, 5)
    types: dict[str, float] = {"Main": 0.40, "Branch": 0.40, "Franchise": 0.20}
    # project choice: a US-state mix weighted towards large hospitality markets.
    states: dict[str, float] = {
        "CA": 0.14, "TX": 0.11, "FL": 0.10, "NY": 0.09, "IL": 0.06, "PA": 0.05, "OH": 0.04,
        "GA": 0.04, "NC": 0.04, "MI": 0.03, "NJ": 0.03, "VA": 0.03, "WA": 0.03, "AZ": 0.03,
        "MA": 0.03, "TN": 0.03, "CO": 0.03, "NV": 0.03, "OR": 0.03, "LA": 0.03,
    }  # fmt: skip

    @model_validator(mode="after")
    def _valid(self) -> Locations:
        _check_shares("location types", self.types)
        _check_shares("states", self.states)
        return self


class Geography(_Frozen):
    """spec "Geographic distribution" / "Geographic IP distribution" / "Geographic patterns" (shares: project
    choice): where people and payments are, consistent with the account. Cities and IP blocks are the shipped
    table of core/warehouse/geography.py; an account bills from a city of its billing state, its main venue
    is there, and each user works at one of the account's venues."""

    home_city_share: Probability = 0.8  # venues in the account's state that are in its billing city
    main_location_share: Probability = 0.6  # users who work at the account's first (main) venue
    # app sessions from somewhere else than the user's city (travel, phones on mobile data), by device
    away_session_share: dict[str, float] = {"desktop": 0.03, "tablet": 0.05, "mobile": 0.30}
    away_charge_share: Probability = 0.15  # card payments made from outside the billing city


class Users(_Frozen):
    """spec: "Generate Users"."""

    per_account: tuple[int, int] = (2, 10)
    roles: dict[str, float] = {"admin": 0.10, "manager": 0.30, "staff": 0.60}
    # spec: login frequency patterns by role (relative sessions per user; project choice)
    login_weight: dict[str, float] = {"admin": 1.6, "manager": 1.3, "staff": 0.8}

    @model_validator(mode="after")
    def _valid(self) -> Users:
        _check_shares("roles", self.roles)
        return self


class Devices(_Frozen):
    """spec: "Generate Devices"."""

    per_location: tuple[int, int] = (2, 5)
    status: dict[str, float] = {"online": 0.85, "offline": 0.10, "maintenance": 0.05}
    models: dict[str, float] = {"TapFlow 100": 0.35, "TapFlow 200": 0.40, "TapFlow Pro": 0.25}
    firmware: dict[str, float] = {"3.2.1": 0.15, "3.4.0": 0.30, "4.0.2": 0.40, "4.1.0": 0.15}

    @model_validator(mode="after")
    def _valid(self) -> Devices:
        for name in ("status", "models", "firmware"):
            _check_shares(f"device {name}", getattr(self, name))
        return self


class Subscriptions(_Frozen):
    """spec: "Generate Subscriptions" and "Stripe Prices / Subscription Items / Invoices / Charges"."""

    annual_churn: Probability = 0.10  # spec: 10% annual churn rate
    trial_share: Probability = 0.60  # project choice: share of accounts that start on a trial
    trial_conversion: Probability = 0.70  # spec: 70% trial-to-paid
    trial_days: int = 14
    upgrade_share: Probability = 0.70  # project choice: plan changes that are upgrades
    annual_billing_share: Probability = 0.20  # project choice: accounts on annual prices
    annual_discount: Probability = 0.17  # project choice: annual price = 10 x monthly (~17% off)
    payment_success: Probability = 0.95  # spec: payment success rate 95%
    late_payment_share: Probability = 0.10  # spec: late payment patterns (project choice: 10% paid late)
    # spec: Stripe prices (12): three plans and three add-ons, monthly and annual.
    plan_monthly_cents: dict[str, int] = {"Basic": 49_900, "Pro": 149_900, "Enterprise": 499_900}
    addon_monthly_cents: dict[str, int] = {
        "extra_location": 9_900,
        "device_pack": 4_900,
        "premium_support": 19_900,
    }
    payment_methods: dict[str, float] = {"card": 0.78, "ach_debit": 0.17, "sepa_debit": 0.05}

    @model_validator(mode="after")
    def _valid(self) -> Subscriptions:
        _check_shares("payment methods", self.payment_methods)
        return self


class Crm(_Frozen):
    """spec: "HubSpot CRM Data Generation"."""

    win_rate: Probability = 0.25  # spec: win rate 25% (of closed deals)
    open_share: Probability = 0.20  # project choice: deals still in the pipeline
    # Default HubSpot deal pipeline: stage -> probability.
    open_stages: dict[str, float] = {
        "appointmentscheduled": 0.30, "qualifiedtobuy": 0.25, "presentationscheduled": 0.20,
        "decisionmakerboughtin": 0.15, "contractsent": 0.10,
    }  # fmt: skip
    engagement_types: dict[str, float] = {
        "EMAIL": 0.40,
        "CALL": 0.25,
        "MEETING": 0.15,
        "NOTE": 0.12,
        "TASK": 0.08,
    }
    ticket_priorities: dict[str, float] = {"LOW": 0.45, "MEDIUM": 0.40, "HIGH": 0.15}
    ticket_categories: dict[str, float] = {
        "device_issue": 0.40, "billing": 0.20, "how_to": 0.25, "feature_request": 0.15,
    }  # fmt: skip
    # spec "Correlation Patterns": device uptime affects satisfaction -> tickets per account grow as uptime drops.
    ticket_uptime_sensitivity: float = 4.0  # extra tickets (x base) per point (1 %) of device downtime
    # of prospects' contacts before the funnel: only subscriber and lead are drawn (renormalised); an MQL, a deal
    # and an open deal make the later stages, a customer company's contacts are customers (generators/hubspot.py)
    lifecycle_stages: dict[str, float] = {
        "subscriber": 0.10, "lead": 0.30, "marketingqualifiedlead": 0.15, "salesqualifiedlead": 0.10,
        "opportunity": 0.10, "customer": 0.20, "evangelist": 0.05,
    }  # fmt: skip

    @model_validator(mode="after")
    def _valid(self) -> Crm:
        for name in (
            "open_stages",
            "engagement_types",
            "ticket_priorities",
            "ticket_categories",
            "lifecycle_stages",
        ):
            _check_shares(name, getattr(self, name))
        return self


class Marketing(_Frozen):
    """spec: "Marketing Data Generation"."""

    channels: dict[str, float] = {"google_ads": 0.40, "meta": 0.30, "linkedin": 0.20, "email": 0.10}
    ctr: dict[str, float] = {
        "google_ads": 0.035,
        "meta": 0.012,
        "linkedin": 0.006,
        "email": 0.025,
    }  # project choice
    cpc_usd: dict[str, float] = {
        "google_ads": 3.2,
        "meta": 1.1,
        "linkedin": 6.5,
        "email": 0.2,
    }  # project choice
    # spec: attribution weights (position-based model: first, middle share, last).
    first_touch_weight: Probability = 0.40
    last_touch_weight: Probability = 0.40
    # spec: GA source/medium distributions (project choice of the mix).
    ga_sources: dict[str, float] = {
        "google/organic": 0.30, "(direct)/(none)": 0.20, "google/cpc": 0.18, "facebook/paid": 0.10,
        "linkedin/paid": 0.07, "newsletter/email": 0.05, "partner/referral": 0.05, "bing/organic": 0.05,
    }  # fmt: skip
    # spec "Realistic Growth Curves" / attribution (project choice): the share of new accounts that follow
    # the marketing spend (through the acquisition funnel's lags, ``Acquisition``); the rest follow the growth curve.
    signups_from_spend: Probability = 0.7
    spend_push_sigma: float = Field(default=0.1, ge=0.0)  # month-to-month swings of the total spend (log sd)
    bounce_rate: Probability = 0.45  # research: SaaS median bounce ~44-49%
    # spec "Bounce rates by page type" (project choice): bounce relative to the average by landing page
    ga_landing_bounce: dict[str, float] = {
        "/": 1.0,
        "/pricing": 0.75,
        "/features": 0.9,
        "/blog": 1.4,
        "/demo": 0.55,
    }
    # project choice: bounce (relative to the average) and session length (x the median) by source/medium
    ga_source_bounce: dict[str, float] = {
        "google/organic": 0.93, "(direct)/(none)": 0.89, "google/cpc": 1.07, "facebook/paid": 1.33,
        "linkedin/paid": 1.16, "newsletter/email": 0.78, "partner/referral": 0.84, "bing/organic": 1.0,
    }  # fmt: skip
    ga_source_duration: dict[str, float] = {
        "google/organic": 1.0, "(direct)/(none)": 1.1, "google/cpc": 0.9, "facebook/paid": 0.7,
        "linkedin/paid": 0.9, "newsletter/email": 1.3, "partner/referral": 1.2, "bing/organic": 1.0,
    }  # fmt: skip
    median_session_seconds: float = 165.0  # research: SaaS median session 165 s

    @model_validator(mode="after")
    def _valid(self) -> Marketing:
        _check_shares("channels", self.channels)
        _check_shares("ga_sources", self.ga_sources)
        if self.first_touch_weight + self.last_touch_weight > 1.0:
            raise ValueError("first_touch_weight + last_touch_weight must not exceed 1")
        return self


class Acquisition(_Frozen):
    """spec "Marketing spend correlates with growth" (stages and lags: project choice): where accounts come from.

    Spend buys touchpoints; a contact's journey of touches (up to ``journey_days``) ends in an MQL on the channel
    of its last touch; sales opens deals on ``mql_to_sql`` of the MQLs; a won deal becomes an account. Accounts
    without a won deal (the spec's win rate leaves about half of them) signed up on their own after their
    lead's MQL. Every lag is in days: exponential with the given mean, the sales cycle lognormal.
    """

    journey_days: float = Field(default=60.0, gt=0.0)  # first to last touch, at most
    touch_to_mql_days: float = Field(default=3.0, gt=0.0)
    mql_to_sql: Probability = 0.6  # share of MQLs sales opens a deal on
    mql_to_deal_days: float = Field(default=12.0, gt=0.0)
    deal_cycle_days: float = Field(default=45.0, gt=0.0)  # median days from a deal's creation to its close
    deal_cycle_sigma: float = Field(default=0.6, ge=0.0)
    won_to_account_days: float = Field(default=5.0, gt=0.0)
    mql_to_signup_days: float = Field(default=10.0, gt=0.0)  # self-serve accounts
    redeal_days: tuple[float, float] = (30.0, 180.0)  # between two deals on one contact


class Activity(_Frozen):
    """spec: "Application Activity Data Generation"."""

    median_session_minutes: float = 18.0  # project choice
    device_types: dict[str, float] = {"desktop": 0.45, "tablet": 0.35, "mobile": 0.20}
    pages: dict[str, float] = {
        "/dashboard": 0.25, "/taps": 0.15, "/inventory": 0.12, "/reports": 0.12, "/devices": 0.10,
        "/billing": 0.04, "/settings": 0.05, "/users": 0.04, "/alerts": 0.08, "/integrations": 0.05,
    }  # fmt: skip
    # spec "Application Activity" (graph: project choice): page views walk a Markov graph. A session enters on
    # ``entry_pages``; the next page is drawn from the current page's links (weights) times the role's interest
    # in the target page; pages not linked keep ``page_jump_weight`` (typing a URL, the menu).
    entry_pages: dict[str, float] = {"/dashboard": 0.70, "/taps": 0.10, "/alerts": 0.10, "/inventory": 0.05,
                                     "/reports": 0.05}  # fmt: skip
    page_links: dict[str, dict[str, float]] = {
        "/dashboard": {"/taps": 3.0, "/reports": 2.0, "/alerts": 2.0, "/inventory": 1.5, "/devices": 1.0},
        "/taps": {"/devices": 2.5, "/inventory": 2.0, "/dashboard": 1.5},
        "/inventory": {"/reports": 2.0, "/taps": 1.5, "/alerts": 1.0},
        "/reports": {"/dashboard": 2.0, "/inventory": 1.0, "/reports": 1.5},
        "/devices": {"/alerts": 2.0, "/taps": 2.0, "/settings": 0.5},
        "/billing": {"/settings": 2.5, "/users": 1.0, "/dashboard": 1.0},
        "/settings": {"/users": 2.0, "/integrations": 2.0, "/billing": 1.5},
        "/users": {"/settings": 2.5, "/dashboard": 1.0},
        "/alerts": {"/devices": 3.0, "/taps": 2.0, "/inventory": 1.0},
        "/integrations": {"/settings": 2.5, "/dashboard": 1.0},
    }  # fmt: skip
    page_jump_weight: float = Field(default=0.15, gt=0.0)
    role_page_interest: dict[str, dict[str, float]] = {
        "admin": {"/billing": 3.0, "/users": 3.0, "/settings": 2.0, "/integrations": 2.0},
        "manager": {"/reports": 2.0, "/inventory": 1.5},
        "staff": {"/taps": 2.0, "/alerts": 1.5, "/billing": 0.2, "/users": 0.2, "/integrations": 0.3},
    }  # fmt: skip
    # spec "Page flow patterns / exit page patterns" (weights: project choice): a session's last page is drawn
    # from the graph's links times ``page_exit_weight`` (people leave after a report, the bill, an alert), and
    # a one-page session's page from the entry mix times ``page_bounce_weight`` (an alert link: look, leave).
    page_exit_weight: dict[str, float] = {
        "/reports": 2.0, "/billing": 2.5, "/alerts": 1.6, "/taps": 1.3, "/dashboard": 0.5, "/settings": 0.8,
    }  # fmt: skip
    page_bounce_weight: dict[str, float] = {"/alerts": 3.0, "/taps": 1.5, "/reports": 1.5, "/dashboard": 0.6}
    # spec "Feature page correlations": the page a feature lives on; a session that uses a feature views its page
    feature_page: dict[str, str] = {
        "pour_dashboard": "/dashboard", "inventory_alerts": "/alerts", "keg_forecast": "/inventory",
        "staff_leaderboard": "/reports", "pos_sync": "/integrations", "custom_reports": "/reports",
        "multi_location_view": "/dashboard", "api_export": "/integrations", "happy_hour_pricing": "/taps",
    }  # fmt: skip
    features: dict[str, float] = {
        "pour_dashboard": 0.22, "inventory_alerts": 0.16, "keg_forecast": 0.12, "staff_leaderboard": 0.10,
        "pos_sync": 0.12, "custom_reports": 0.10, "multi_location_view": 0.08, "api_export": 0.05,
        "happy_hour_pricing": 0.05,
    }  # fmt: skip
    # spec: usage frequency by tier -- features only available from a tier upwards (project choice).
    feature_min_tier: dict[str, str] = {
        "custom_reports": "Pro", "multi_location_view": "Pro", "api_export": "Enterprise",
        "keg_forecast": "Pro",
    }  # fmt: skip
    error_rate: Probability = 0.03  # spec: success/error patterns
    # spec "Product Usage Patterns" (dates and speeds: project choice): features launch over the years (years
    # after the window's start; 0 = there from the start, used from an account's first day), and each account
    # adopts a feature after a lognormal delay (an S-shaped adoption curve) that is shorter for higher tiers
    # and healthier accounts.
    feature_release_years: dict[str, float] = {
        "pour_dashboard": 0.0, "inventory_alerts": 0.35, "pos_sync": 0.8, "staff_leaderboard": 1.3,
        "keg_forecast": 1.8, "custom_reports": 2.3, "multi_location_view": 2.8, "happy_hour_pricing": 3.4,
        "api_export": 4.0,
    }  # fmt: skip
    feature_category: dict[str, str] = {
        "pour_dashboard": "analytics", "inventory_alerts": "operations", "pos_sync": "integrations",
        "staff_leaderboard": "engagement", "keg_forecast": "operations", "custom_reports": "analytics",
        "multi_location_view": "operations", "happy_hour_pricing": "engagement", "api_export": "integrations",
    }  # fmt: skip
    adoption_median_days: float = Field(default=100.0, gt=0.0)  # a Pro account of average health
    adoption_spread: float = Field(default=0.7, gt=0.0)  # log-sd of the delay: the S-curve's width
    adoption_tier_factor: dict[str, float] = {"Basic": 1.6, "Pro": 1.0, "Enterprise": 0.55}  # x the delay
    adoption_health_speed: float = 0.35  # log speed-up of adoption per unit of account health
    # known incidents (start, days): feature calls fail far more often while one lasts
    incidents: tuple[tuple[dt.date, int], ...] = (
        (dt.date(2022, 6, 14), 3), (dt.date(2023, 11, 24), 2), (dt.date(2024, 8, 5), 4), (dt.date(2025, 3, 10), 2),
    )  # fmt: skip
    incident_error_rate: Probability = 0.25
    # project choice: bar staff use the app from late morning into the evening.
    hour_weights: tuple[float, ...] = (
        0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.6, 1.0, 1.4, 1.8, 2.0,
        2.0, 2.0, 2.2, 2.4, 2.5, 2.4, 2.0, 1.6, 1.2, 0.9, 0.6, 0.4,
    )  # fmt: skip

    @model_validator(mode="after")
    def _valid(self) -> Activity:
        for name in ("device_types", "pages", "features"):
            _check_shares(name, getattr(self, name))
        for name in ("feature_release_years", "feature_category", "feature_page"):
            if set(getattr(self, name)) != set(self.features):
                raise ValueError(f"{name} must name exactly the features")
        unknown = sorted(
            (set(self.feature_page.values()) | set(self.page_exit_weight) | set(self.page_bounce_weight))
            - set(self.pages)
        )
        if unknown:
            raise ValueError(
                f"feature_page, page_exit_weight and page_bounce_weight name unknown pages {unknown}"
            )
        if not any(v <= 0 for v in self.feature_release_years.values()):
            raise ValueError("feature_release_years needs at least one feature there from the start (0)")
        return self


class Taps(_Frozen):
    """spec: "Generate Tap Events" and "Generate Device Health Metrics"."""

    # spec: hourly pattern with a peak 6-10 pm (the shape is a project choice), local bar time.
    hour_weights: tuple[float, ...] = (
        1.2, 0.6, 0.3, 0.1, 0.05, 0.05, 0.05, 0.1, 0.2, 0.3, 0.5, 1.2,
        2.5, 2.8, 2.0, 2.0, 2.6, 4.0, 7.0, 9.0, 9.5, 8.5, 5.0, 2.5,
    )  # fmt: skip
    # spec: day-of-week variation, Monday first (project choice: Thu-Sat busiest).
    weekday_weights: tuple[float, ...] = (0.8, 0.85, 0.95, 1.15, 1.45, 1.6, 1.05)
    products: dict[str, float] = {
        "draft_beer": 0.55, "cider": 0.08, "wine": 0.14, "cocktail": 0.10, "cold_brew": 0.05, "soda": 0.08,
    }  # fmt: skip
    pour_ml: dict[str, float] = {
        "draft_beer": 473.0, "cider": 473.0, "wine": 150.0, "cocktail": 120.0, "cold_brew": 350.0, "soda": 400.0,
    }  # fmt: skip
    serve_celsius: dict[str, float] = {
        "draft_beer": 3.0, "cider": 3.5, "wine": 8.0, "cocktail": 2.0, "cold_brew": 4.0, "soda": 2.5,
    }  # fmt: skip
    flow_ml_per_s: float = 60.0
    health_days: int = Field(default=30, ge=1)  # project choice: daily health rows per device
    # spec "Device Health Metrics" (rates: project choice): failures, the degradation before them and the
    # maintenance after them. A failure takes a device down for whole days; poor sites (the account's site
    # quality, a standard normal) and the cheaper model fail more often.
    failures_per_year: float = Field(default=0.5, ge=0.0)
    model_failure_factor: dict[str, float] = {"TapFlow 100": 1.4, "TapFlow 200": 1.0, "TapFlow Pro": 0.6}
    site_failure_sensitivity: float = 0.6  # log failure rate per standard deviation of poor site quality
    outage_days_mean: float = Field(default=2.5, ge=1.0)
    # days of drop-outs, errors and a warmer line before a failure
    degradation_days: tuple[int, int] = (3, 10)
    max_outages: int = Field(default=4, ge=0, le=12)  # per device over its life

    @model_validator(mode="after")
    def _valid(self) -> Taps:
        if len(self.hour_weights) != 24 or len(self.weekday_weights) != 7:
            raise ValueError("hour_weights needs 24 values and weekday_weights 7")
        if not 1 <= self.degradation_days[0] <= self.degradation_days[1]:
            raise ValueError("degradation_days must be (low, high) with 1 <= low <= high")
        _check_shares("products", self.products)
        if set(self.pour_ml) != set(self.products) or set(self.serve_celsius) != set(self.products):
            raise ValueError("pour_ml and serve_celsius must name exactly the products")
        return self


class Calendar(_Frozen):
    """spec "Seasonal variations in metrics" (shape: project choice): the yearly season and US holidays of a bar
    business. Weights are relative; tap events follow them fully, app sessions (and their page views and feature
    events) by ``app_strength``, website sessions (season and holidays, no weekday rhythm) by ``ga_strength``."""

    # January lull, a spring rise, summer patios, a dip after Labor Day, the December party season
    month_weights: tuple[float, ...] = (0.80, 0.88, 0.98, 0.97, 1.03, 1.12, 1.18, 1.14, 0.96, 0.97, 1.00, 1.20)  # fmt: skip
    # multiplier of a holiday's date (on top of its weekday); keys name the rules in core/warehouse/calendar.py
    holidays: dict[str, float] = {
        "new_years_eve": 2.6, "super_bowl_sunday": 1.8, "st_patricks_day": 2.3, "cinco_de_mayo": 1.3,
        "independence_day": 1.6, "halloween": 1.4, "thanksgiving_eve": 1.9, "thanksgiving_day": 0.6,
        "christmas_day": 0.45,
    }  # fmt: skip
    app_strength: Probability = 0.6  # how much of the calendar the staff's app sessions follow
    ga_strength: Probability = 0.6  # how much of the season and holidays website visits follow

    @model_validator(mode="after")
    def _valid(self) -> Calendar:
        from simulation_assets.core.warehouse.calendar import HOLIDAY_RULES

        if len(self.month_weights) != 12 or min(self.month_weights) <= 0:
            raise ValueError("month_weights needs 12 positive values (January first)")
        unknown = sorted(set(self.holidays) - set(HOLIDAY_RULES))
        if unknown:
            raise ValueError(f"unknown holidays {unknown}; known: {', '.join(HOLIDAY_RULES)}")
        if any(v <= 0 for v in self.holidays.values()):
            raise ValueError("holiday multipliers must be positive")
        return self


class Health(_Frozen):
    """spec "Correlation Patterns" and Milestone 8 (strengths: project choice): one hidden health score per
    account and month drives engagement, support tickets, payment failures, pours and churn.

    health = tier effect + ``site_effect`` x site quality + a lasting trait + a monthly AR(1) part; the last
    two are standard normal, ``lasting_share`` of their variance being the lasting trait. Every outcome
    scales as exp(sensitivity x health) (exp(-sensitivity x health) for the bad ones).
    """

    persistence: float = Field(default=0.85, ge=0.0, lt=1.0)  # month-to-month AR(1) coefficient
    lasting_share: Probability = 0.5
    tier_effect: dict[str, float] = {"Basic": -0.25, "Pro": 0.0, "Enterprise": 0.35}
    site_effect: float = 0.35  # health per standard deviation of site quality (good sites: fewer failures)
    churn_sensitivity: float = Field(default=1.6, ge=0.0)  # log churn hazard per unit of poor health
    engagement_sensitivity: float = Field(default=0.8, ge=0.0)  # log app sessions per unit of health
    ticket_sensitivity: float = Field(default=1.5, ge=0.0)  # log support tickets per unit of poor health
    payment_failure_sensitivity: float = Field(default=2.0, ge=0.0)  # log odds of an unpaid invoice
    tap_sensitivity: float = Field(default=0.3, ge=0.0)  # log pours per device per unit of health
    # device downtime drives churn directly (besides health, tickets): the share of churned accounts that left
    # 8-20 days after one of their devices went down (the outage that was the last straw)
    outage_churn_share: Probability = 0.3


class Dirt(_Frozen):
    """Opt-in dirt of real sources (shares: project choice), off by default. core/warehouse/dirt.py injects it
    after generation, on fixed hashes of the row index (so a chunk's dirt does not depend on the others), and
    checks report exactly the injected counts. The kinds and what cleans them in the dbt staging models:

    - nulls in optional fields (``hubspot_contacts.job_title``, ``ga_sessions.landing_page``): "Unknown" job
      title, GA's "(not set)" landing page;
    - soft-deleted HubSpot tickets (``archived`` = true, still in the export): dropped;
    - late-arriving Stripe webhook events (``received_at`` 1 h to ``late_event_max_hours`` after ``created``,
      as when the endpoint was down and Stripe retried): the staging model is incremental on ``received_at``
      (the loaded-at time), not on the event time, so a late event is picked up by the next run;
    - duplicated Stripe webhook events (the same ``event_id`` delivered twice, minutes apart): kept once (the
      first delivery);
    - timezone-naive timestamps in one source: HubSpot engagements logged by a CSV import
      (``engagement_source`` = 'IMPORT') carry ``occurred_at`` as wall-clock time of the portal's
      ``source_timezone`` without an offset: converted to UTC.
    """

    enabled: bool = False
    null_share: Probability = 0.03
    archived_ticket_share: Probability = 0.02
    late_event_share: Probability = 0.01
    late_event_max_hours: float = Field(default=72.0, gt=1.0)  # Stripe retries a failed delivery for 3 days
    duplicate_event_share: Probability = 0.02
    naive_timestamp_share: Probability = 0.05
    source_timezone: str = "America/New_York"

    @model_validator(mode="after")
    def _valid(self) -> Dirt:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(self.source_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"source_timezone {self.source_timezone!r} is not an IANA time zone") from None
        if "'" in self.source_timezone:
            raise ValueError("source_timezone must not contain quotes")
        return self


class CheckBands(_Frozen):
    """How far a loaded warehouse may stray from the configured numbers before a check fails.

    The generators draw the categorical mixes exactly (largest remainder), so the tolerances only
    absorb rounding on small tables (project choice).
    """

    share_tolerance: Probability = 0.02  # industries, tiers, roles, device status, location types
    campaign_channel_tolerance: Probability = 0.025  # DEV has 25 campaigns: one campaign is 4 points
    payment_success_tolerance: Probability = 0.01
    win_rate_tolerance: Probability = 0.02
    trial_conversion_tolerance: Probability = 0.03
    evening_pour_share_min: Probability = 0.40  # spec: peak 6-10 pm; share of pours between 18:00 and 21:59
    # Structure checks (core/warehouse/structure.py): the band each measured figure must fall in. Project
    # choice: wide enough for DEV's 100 accounts, narrow enough that shuffling the column breaks them.
    structure: dict[str, tuple[float, float]] = {
        "churned_accounts_less_engaged": (0.0, 0.75),  # sessions per active day, churned / retained
        "tickets_follow_poor_health": (1.3, 100.0),  # tickets per device-day, churned / retained
        "payment_failures_precede_churn": (1.5, 100.0),  # unpaid invoice share, churned / retained
        "device_outages_raise_churn": (
            2.0,
            100.0,
        ),  # odds of a repaired outage in the last 30 days, churned / retained
        "bigger_accounts_have_more_devices": (0.2, 1.0),  # correlation of MRR and devices per account
        "accounts_grow_year_over_year": (0.2, 0.7),  # spec 40 %; DEV has ~15 sign-ups in the first year
        "signups_follow_marketing_spend": (0.25, 1.0),  # correlation of monthly spend and new accounts
        "signups_follow_spend_at_lag": (0.25, 1.0),  # the same, spend the funnel's mean lag earlier
        "touchpoints_follow_marketing_spend": (0.5, 1.0),  # correlation of monthly spend and touchpoints
        "mqls_follow_channel_spend": (0.0, 0.1),  # largest gap between a channel's MQL share and spend share
        # detrended monthly spend vs sign-ups at the funnel's lag (measured from 1,000 sign-ups: QA and PROD)
        "signups_follow_monthly_spend_swings": (0.3, 1.0),
        "mqls_follow_monthly_channel_mix": (0.5, 2.0),  # share of the monthly channel-mix swings MQLs follow
        "touched_contacts_become_mqls": (0.2, 0.8),  # MQLs right after a touch / touched contacts
        "mqls_become_deals": (0.3, 0.9),  # MQLs with a deal opened within 90 days / MQLs
        "won_deals_become_accounts": (0.9, 1.0),  # won deals whose company signed up within 30 d
        "accounts_trace_back_to_mqls": (0.9, 1.0),  # accounts with an MQL at their company in the year before
        "taps_peak_in_december_lull_in_january": (1.15, 3.0),  # pours per day, December / the next January
        "taps_spike_on_holidays": (1.5, 4.0),  # pours on spike holidays / the same weekday around them
        "app_sessions_peak_in_december_lull_in_january": (1.05, 3.0),  # the same for app sessions (damped)
        "app_sessions_spike_on_holidays": (1.2, 4.0),
        "website_sessions_peak_in_december_lull_in_january": (1.05, 3.0),  # and for website sessions
        "website_sessions_spike_on_holidays": (1.2, 4.0),
        "next_page_follows_current_page": (0.15, 3.4),  # bits of mutual information (0 = pages at random)
        "pages_depend_on_role": (3.0, 100.0),  # admin-page share of views, admins / staff
        "taps_stop_while_devices_are_down": (0.0, 0.05),  # pours per down device-day / per up device-day
        "device_errors_rise_before_failures": (3.0, 1000.0),  # errors a day before a failure / ordinary days
        "plan_changes_move_mrr": (0.95, 1.0),  # upgrades raise MRR, downgrades lower it
        "ga_bounce_depends_on_source": (0.1, 1.0),  # highest - lowest bounce rate among sources
        "ga_bounce_depends_on_landing_page": (0.1, 1.0),  # highest - lowest bounce rate among landing pages
        "ga_duration_depends_on_source": (1.4, 10.0),  # longest / shortest mean engaged session by source
        "users_in_account_state": (0.6, 1.0),  # users whose state is their account's billing state
        "charges_in_account_state": (0.95, 1.0),  # charges billed to the account's state
        "sessions_in_user_city": (0.7, 1.0),  # app sessions from the user's own city
        "ip_addresses_match_city": (0.99, 1.0),  # sessions and charges whose IP lies in their city's block
        "feature_pages_viewed_in_session": (0.9, 1.0),  # feature events whose session viewed its page
        "exits_depend_on_page": (2.0, 20.0),  # highest / lowest exit rate among pages
        "bounces_depend_on_entry_page": (2.0, 20.0),  # highest / lowest one-page-session rate by entry page
        "features_launch_over_the_years": (900.0, 2000.0),  # days from the first to the last launch
        "new_features_gain_share_over_months": (
            1.8,
            100.0,
        ),  # share of events 6-12 months after release / month 1
        "higher_tiers_adopt_sooner": (1.3, 10.0),  # adoption delay, Basic / Enterprise
        "feature_errors_spike_in_incidents": (3.0, 50.0),  # error rate in incidents / outside
    }


class WarehouseConfig(_Frozen):
    """Everything that shapes the generated warehouse, with the specification's numbers as defaults."""

    window: Window = Window()
    accounts: Accounts = Accounts()
    locations: Locations = Locations()
    users: Users = Users()
    geography: Geography = Geography()
    devices: Devices = Devices()
    subscriptions: Subscriptions = Subscriptions()
    crm: Crm = Crm()
    marketing: Marketing = Marketing()
    acquisition: Acquisition = Acquisition()
    activity: Activity = Activity()
    taps: Taps = Taps()
    calendar: Calendar = Calendar()
    health: Health = Health()
    dirt: Dirt = Dirt()
    checks: CheckBands = CheckBands()
    # How many chunk files a big table is split into is fixed per table in ``schema``
    # (sized for at most ~5M rows per chunk in PROD), so Dagster's chunk partitions are static.


def row_counts(env: str, config: WarehouseConfig | None = None) -> dict[str, int]:
    """Return the row count of every table in ``env`` (dev, qa or prod)."""
    if env not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    i = ENVIRONMENTS.index(env)
    counts = {table: sizes[i] for table, sizes in ROW_COUNTS.items()}
    counts["device_health"] = counts["devices"] * (config or WarehouseConfig()).taps.health_days
    return counts
