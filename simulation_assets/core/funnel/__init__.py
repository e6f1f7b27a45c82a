"""Funnel simulation: tracking-plan taxonomy, S0-S11 state machine, Monte Carlo, learned rates, models, CAPI.

The most used names, importable from the package::

    from simulation_assets.core.funnel import Rates, simulate_cohort, forecast, validate_event

They are imported on first use, so importing a single submodule (say ``config`` for a
command-line parser) does not pull in numpy, polars and the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ChurnHazard": "config",
    "ChurnRule": "config",
    "CohortConfig": "config",
    "State": "config",
    "TransitionRates": "config",
    "TEMPLATE_KEYS": "montecarlo",
    "forecast": "montecarlo",
    "simulate_cohort": "montecarlo",
    "simulate_replicates": "montecarlo",
    "EventValidationError": "schema",
    "validate_event": "schema",
    "validate_frame": "schema",
    "TAXONOMY": "taxonomy",
    "Category": "taxonomy",
    "Stage": "taxonomy",
}
_ALIASES = {"Rates": ("config", "TransitionRates")}  # the template's name for the transition rates

__all__ = sorted([*_EXPORTS, *_ALIASES])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name], name
    elif name in _ALIASES:
        module, attr = _ALIASES[name]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    globals()[name] = value
    return value
