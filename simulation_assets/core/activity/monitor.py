"""The proactive monitor: which interventions should be open, and what to open and close to get there.

Rules (each a function of the customer columns, evaluated for everyone at once):

- Error Debugging       while ``error_rate > error_rate_threshold`` (10 %)
- Onboarding Check In   while ONBOARDING without an API call for ``onboarding_stuck_after_ticks``;
                        cleared by the first API call
- Upsell Suggestion     while an ACTIVE customer's usage is increasing
- Retention Outreach    while an ACTIVE customer's usage is declining

An intervention stays open while its rule holds and is closed, with a reason,
the first check after it stops holding. At most one intervention of a type is
open per customer: a rule that keeps holding never opens a second one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from simulation_assets.core.activity.config import INTERVENTION_TYPES, ActivityConfig
from simulation_assets.core.activity.schema import CUSTOMER_SCHEMA, INTERVENTION_SCHEMA, TS, conform

ERROR_DEBUGGING, ONBOARDING_CHECK_IN, UPSELL_SUGGESTION, RETENTION_OUTREACH = INTERVENTION_TYPES
_SLUGS = {t: t.lower().replace(" ", "-") for t in INTERVENTION_TYPES}
DESIRED_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "type": pl.String(),
    "reason": pl.String(),
}


@dataclass(frozen=True)
class MonitorResult:
    """Interventions to insert (full rows) and to close (id, closed_* columns, close_reason)."""

    opened: pl.DataFrame
    closed: pl.DataFrame

    def counts(self) -> dict[str, int]:
        """Return how many interventions this check opened and closed."""
        return {"opened": self.opened.height, "closed": self.closed.height}


def _pct(name: str) -> pl.Expr:
    return pl.format("{}%", (pl.col(name) * 100).round(1))


def stuck_in_onboarding(cfg: ActivityConfig, tick: int) -> pl.Expr:
    """Return the expression that is true for customers stuck in onboarding at ``tick``."""
    return (
        (pl.col("stage") == "ONBOARDING")
        & (pl.col("total_api_calls") == 0)
        & ((tick - pl.col("stage_since_tick")) >= cfg.onboarding_stuck_after_ticks)
    )


def desired_interventions(customers: pl.DataFrame, tick: int, cfg: ActivityConfig) -> pl.DataFrame:
    """Return one row per (customer, intervention type) whose rule holds at ``tick``, with a reason."""
    c = conform(customers, CUSTOMER_SCHEMA).rename({"name": "customer_name"})
    threshold = round(cfg.error_rate_threshold * 100, 1)
    rules = [
        c.filter(pl.col("error_rate") > cfg.error_rate_threshold).select(
            "customer_id",
            "customer_name",
            pl.lit(ERROR_DEBUGGING).alias("type"),
            pl.format("error rate {} > {}%", _pct("error_rate"), pl.lit(threshold)).alias("reason"),
        ),
        c.filter(stuck_in_onboarding(cfg, tick)).select(
            "customer_id",
            "customer_name",
            pl.lit(ONBOARDING_CHECK_IN).alias("type"),
            pl.format("onboarding for {} ticks without an API call", tick - pl.col("stage_since_tick")).alias(
                "reason"
            ),
        ),
        c.filter((pl.col("stage") == "ACTIVE") & (pl.col("usage_trend") == "increasing")).select(
            "customer_id",
            "customer_name",
            pl.lit(UPSELL_SUGGESTION).alias("type"),
            pl.format("usage increasing on the {} plan", "plan").alias("reason"),
        ),
        c.filter((pl.col("stage") == "ACTIVE") & (pl.col("usage_trend") == "declining")).select(
            "customer_id",
            "customer_name",
            pl.lit(RETENTION_OUTREACH).alias("type"),
            pl.format("usage declining ({} calls last tick)", "calls_last_tick").alias("reason"),
        ),
    ]
    return pl.concat([r.cast(DESIRED_SCHEMA) for r in rules])  # type: ignore[arg-type]


def _close_reason(tick: int, cfg: ActivityConfig) -> pl.Expr:
    """Reason an open intervention no longer holds, from the customer's current columns."""
    return (
        pl.when(pl.col("customer_stage").is_null())
        .then(pl.lit("customer no longer in the book"))
        .when(pl.col("type") == ERROR_DEBUGGING)
        .then(pl.format("error rate back to {}", _pct("customer_error_rate")))
        .when((pl.col("type") == ONBOARDING_CHECK_IN) & (pl.col("customer_calls") > 0))
        .then(pl.lit("first API call made"))
        .when(pl.col("type") == ONBOARDING_CHECK_IN)
        .then(pl.format("no longer stuck (stage {})", "customer_stage"))
        .otherwise(pl.format("usage now {}", "customer_trend"))
    )


def reconcile(
    customers: pl.DataFrame,
    open_interventions: pl.DataFrame,
    cfg: ActivityConfig,
    tick: int,
    check_no: int,
    at: dt.datetime,
) -> MonitorResult:
    """Return what check number ``check_no`` opens and closes, given the state after ``tick``.

    Opens an intervention for every rule that holds and has no open intervention of
    its type for that customer; closes every open intervention whose rule no longer holds.
    Intervention ids are ``<customer_id>:<type-slug>:<check_no>``, so a check is
    reproducible and never collides with an earlier one.
    """
    desired = desired_interventions(customers, tick, cfg)
    current = conform(open_interventions, INTERVENTION_SCHEMA).filter(pl.col("status") == "open")
    keys = ["customer_id", "type"]
    opened = (
        desired.join(current.select(keys).unique(), on=keys, how="anti")
        .with_columns(
            pl.format(
                "{}:{}:{}", "customer_id", pl.col("type").replace_strict(_SLUGS), pl.lit(check_no)
            ).alias("intervention_id"),
            pl.lit("open").alias("status"),
            pl.lit(check_no, dtype=pl.Int64).alias("opened_check"),
            pl.lit(tick, dtype=pl.Int64).alias("opened_tick"),
            pl.lit(at, dtype=TS).alias("opened_at"),
            pl.lit(None, dtype=pl.Int64).alias("closed_check"),
            pl.lit(None, dtype=pl.Int64).alias("closed_tick"),
            pl.lit(None, dtype=TS).alias("closed_at"),
            pl.lit(None, dtype=pl.String).alias("close_reason"),
        )
        .sort("type", "customer_name")
    )
    state = conform(customers, CUSTOMER_SCHEMA).select(
        "customer_id",
        pl.col("stage").alias("customer_stage"),
        pl.col("error_rate").alias("customer_error_rate"),
        pl.col("usage_trend").alias("customer_trend"),
        pl.col("total_api_calls").alias("customer_calls"),
    )
    closed = (
        current.join(desired.select(keys), on=keys, how="anti")
        .join(state, on="customer_id", how="left")
        .with_columns(
            pl.lit("closed").alias("status"),
            pl.lit(check_no, dtype=pl.Int64).alias("closed_check"),
            pl.lit(tick, dtype=pl.Int64).alias("closed_tick"),
            pl.lit(at, dtype=TS).alias("closed_at"),
            _close_reason(tick, cfg).alias("close_reason"),
        )
        .sort("type", "customer_name")
    )
    return MonitorResult(
        opened=conform(opened, INTERVENTION_SCHEMA), closed=conform(closed, INTERVENTION_SCHEMA)
    )


def duplicate_open(interventions: pl.DataFrame) -> pl.DataFrame:
    """Return (customer_id, type, open_count) for every pair with more than one open intervention."""
    return (
        conform(interventions, INTERVENTION_SCHEMA)
        .filter(pl.col("status") == "open")
        .group_by("customer_id", "type")
        .agg(pl.len().alias("open_count"))
        .filter(pl.col("open_count") > 1)
        .sort("customer_id", "type")
    )
