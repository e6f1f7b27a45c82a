"""Small builders for activity test data."""

from __future__ import annotations

import datetime as dt

import polars as pl

from simulation_assets.core.activity.config import ActivityConfig
from simulation_assets.core.activity.customers import initial_customers
from simulation_assets.core.activity.schema import CUSTOMER_SCHEMA, conform

AT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def pool(
    n: int, stage: str = "ACTIVE", trend: str = "stable", error_rate: float = 0.02, **overrides: object
) -> pl.DataFrame:
    """Return ``n`` customers all in ``stage`` with ``trend`` and ``error_rate`` (other columns from a real start)."""
    cfg = ActivityConfig(initial_customers=n, initial_stage_shares=(0.0, 0.0, 1.0))
    frame = initial_customers(cfg, 7, AT).with_columns(
        pl.lit(stage).alias("stage"),
        pl.lit(trend).alias("usage_trend"),
        pl.lit(error_rate).alias("error_rate"),
        pl.lit(0 if stage != "ACTIVE" else 1000).cast(pl.Int64).alias("total_api_calls"),
        pl.lit(0).cast(pl.Int64).alias("stage_since_tick"),
        pl.lit({"NEW": "none", "ONBOARDING": "trial"}.get(stage, "starter")).alias("plan"),
    )
    if overrides:
        frame = frame.with_columns(*(pl.lit(v).alias(k) for k, v in overrides.items()))
    return conform(frame, CUSTOMER_SCHEMA)


def isolate(**probabilities: object) -> ActivityConfig:
    """Return a config with every behaviour switched off except those given."""
    base: dict[str, object] = {
        "api_call_probability": 0.0,
        "error_spike_probability": 0.0,
        "error_fix_probability": 0.0,
        "trend_change_probability": (0.0, 0.0, 0.0),
        "subscribe_probability": 0.0,
        "first_call_probability": 0.0,
        "new_customer_probability": 0.0,
    }
    base.update(probabilities)
    return ActivityConfig(**base)  # type: ignore[arg-type]
