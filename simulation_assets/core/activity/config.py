"""Typed configuration of the customer activity simulator and its proactive monitor.

Defaults come from the activity-simulator specification; the section a number
comes from is named beside it. Numbers the specification leaves open (how many
calls a customer makes, how large an error spike is, how fast onboarding goes)
are marked as choices of this project, tuned so that interventions open and
clear within a few ticks on the default pool.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from simulation_assets.core.config_base import FrozenModel as _Frozen
from simulation_assets.core.config_base import Probability

# Customer stages, in order: signed up, subscribed but no API call yet, calling the API.
STAGES = ("NEW", "ONBOARDING", "ACTIVE")
# "none" until a NEW customer subscribes; onboarding customers are on a trial.
PLANS = ("none", "trial", "starter", "growth", "enterprise")
TRENDS = ("declining", "stable", "increasing")
# The four interventions the monitor raises (section "What You'll See in the Dashboard").
INTERVENTION_TYPES = ("Error Debugging", "Onboarding Check In", "Upsell Suggestion", "Retention Outreach")


class Span(_Frozen):
    """Closed interval [low, high] of a uniform draw."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.low > self.high:
            raise ValueError(f"span low ({self.low}) must not exceed high ({self.high})")
        return self


class ActivityConfig(_Frozen):
    """Every number of one simulation tick and of the monitor rules."""

    # --- Cadence ("What It Does": every 30 seconds) ---
    tick_seconds: Annotated[float, Field(gt=0)] = 30.0

    # --- Starting pool (choice of this project: a small book of business, mixed stages) ---
    initial_customers: Annotated[int, Field(ge=0)] = 12
    # Shares of NEW, ONBOARDING, ACTIVE among the starting customers.
    initial_stage_shares: tuple[Probability, Probability, Probability] = (0.15, 0.25, 0.60)
    # Shares of declining, stable, increasing usage among starting ACTIVE customers.
    initial_trend_shares: tuple[Probability, Probability, Probability] = (0.2, 0.6, 0.2)
    # Baseline error rate of a healthy integration (choice; the example shows 5.0 % before a spike).
    baseline_error_rate: Span = Span(low=0.005, high=0.05)

    # --- Behaviour 1, API calls ("Simulates API Calls": active customers make random calls) ---
    api_call_probability: Probability = 0.8  # chance an ACTIVE customer calls in a tick (choice)
    api_calls_per_tick: Span = Span(low=5, high=50)  # the example shows "+23 API calls" (choice)
    # Calls are scaled by the usage trend: declining, stable, increasing (choice).
    trend_call_multiplier: tuple[float, float, float] = (0.5, 1.0, 1.6)

    # --- Behaviour 2, errors ("Introduces/Fixes Errors") ---
    error_spike_probability: Probability = 0.06  # chance per ACTIVE customer and tick (choice)
    error_spike_size: Span = Span(low=0.08, high=0.20)  # added to the rate: 5.0 % -> 18.2 % in the example
    error_fix_probability: Probability = 0.35  # chance a rate above baseline is fixed in a tick (choice)
    max_error_rate: Probability = 0.6  # a rate never exceeds this, however many spikes (choice)

    # --- Behaviour 3, usage trends ("Changes Usage Trends": increasing, stable, declining) ---
    # Chance per ACTIVE customer and tick that the trend changes, by current trend (declining, stable,
    # increasing): a rising or falling trend lasts a few ticks, stable usage lasts longer (choice).
    trend_change_probability: tuple[Probability, Probability, Probability] = (0.25, 0.10, 0.25)
    # A rising or falling trend that changes goes back to stable with this share, else flips (choice).
    trend_back_to_stable_share: Probability = 0.75

    # --- Behaviour 4, onboarding ("Progresses Onboarding") ---
    subscribe_probability: Probability = 0.35  # NEW -> ONBOARDING on a trial, per tick (choice)
    first_call_probability: Probability = 0.25  # ONBOARDING -> ACTIVE with a first API call (choice)

    # --- Behaviour 5, new customers ("Creates New Customers": 10 % chance per cycle) ---
    new_customer_probability: Probability = 0.10

    # --- Monitor rules ("Triggers Error Debugging interventions when >10%", ...) ---
    error_rate_threshold: Probability = 0.10  # Error Debugging while error_rate > this
    # Onboarding Check In once a customer has been ONBOARDING without an API call this many ticks.
    onboarding_stuck_after_ticks: Annotated[int, Field(ge=0)] = 2

    @model_validator(mode="after")
    def _consistent(self) -> ActivityConfig:
        for name in ("initial_stage_shares", "initial_trend_shares"):
            total = sum(getattr(self, name))
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"{name} must sum to 1, got {total:.4f}")
        if self.api_calls_per_tick.low < 1:
            raise ValueError("api_calls_per_tick.low must be at least 1 call")
        if any(m <= 0 for m in self.trend_call_multiplier):
            raise ValueError("trend_call_multiplier values must be positive")
        if self.baseline_error_rate.high >= self.error_rate_threshold:
            raise ValueError(
                f"baseline_error_rate.high ({self.baseline_error_rate.high}) must stay below "
                f"error_rate_threshold ({self.error_rate_threshold}), or healthy customers would alert"
            )
        if self.max_error_rate <= self.error_rate_threshold:
            raise ValueError("max_error_rate must exceed error_rate_threshold")
        return self
