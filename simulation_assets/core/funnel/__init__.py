"""Funnel simulation: tracking-plan taxonomy, S0-S11 state machine, Monte Carlo, learned rates, models, CAPI.

The most used names, importable from the package::

    from simulation_assets.core.funnel import Rates, simulate_cohort, forecast, validate_event
"""

from simulation_assets.core.funnel.config import ChurnHazard, ChurnRule, CohortConfig, State, TransitionRates
from simulation_assets.core.funnel.montecarlo import (
    TEMPLATE_KEYS,
    forecast,
    simulate_cohort,
    simulate_replicates,
)
from simulation_assets.core.funnel.schema import EventValidationError, validate_event, validate_frame
from simulation_assets.core.funnel.taxonomy import TAXONOMY, Category, Stage

Rates = TransitionRates
"""The template's name for the transition rates."""

__all__ = [
    "TAXONOMY",
    "TEMPLATE_KEYS",
    "Category",
    "ChurnHazard",
    "ChurnRule",
    "CohortConfig",
    "EventValidationError",
    "Rates",
    "Stage",
    "State",
    "TransitionRates",
    "forecast",
    "simulate_cohort",
    "simulate_replicates",
    "validate_event",
    "validate_frame",
]
