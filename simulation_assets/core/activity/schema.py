"""The activity tables as Polars schemas: customers, tick log, tick events, interventions, monitor checks.

Every timestamp is UTC with microsecond precision. Category columns are plain
strings, so the same frames go into DuckDB and PostgreSQL unchanged.
"""

from __future__ import annotations

import polars as pl

TS = pl.Datetime("us", "UTC")

# One row per customer: the current state the next tick starts from.
CUSTOMER_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "customer_no": pl.Int64(),  # creation order, 0-based; names and ids derive from it
    "name": pl.String(),
    "stage": pl.String(),  # NEW, ONBOARDING, ACTIVE
    "plan": pl.String(),  # none, trial, starter, growth, enterprise
    "total_api_calls": pl.Int64(),
    "last_api_call_at": TS,  # null until the first call
    "error_rate": pl.Float64(),  # share of failing calls, 0..1
    "usage_trend": pl.String(),  # declining, stable, increasing
    "calls_last_tick": pl.Int64(),
    "created_tick": pl.Int64(),
    "stage_since_tick": pl.Int64(),
    "updated_tick": pl.Int64(),
    "is_synthetic": pl.Boolean(),
}

# Append-only: one row per applied tick; the tick number is the key.
TICK_SCHEMA: dict[str, pl.DataType] = {
    "tick": pl.Int64(),
    "applied_at": TS,
    "seed": pl.Int64(),
    "customers": pl.Int64(),
    "new_customers": pl.Int64(),
    "api_calls": pl.Int64(),  # calls made during this tick
    "total_api_calls": pl.Int64(),  # sum over all customers after the tick
    "error_spikes": pl.Int64(),
    "error_fixes": pl.Int64(),
    "trend_changes": pl.Int64(),
    "subscriptions": pl.Int64(),
    "first_api_calls": pl.Int64(),
    "stage_new": pl.Int64(),
    "stage_onboarding": pl.Int64(),
    "stage_active": pl.Int64(),
    "mean_error_rate": pl.Float64(),  # over ACTIVE customers
}

# Append-only: what happened to whom in a tick, with a console-style message.
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "tick": pl.Int64(),
    "seq": pl.Int64(),
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "kind": pl.String(),
    "value_before": pl.Float64(),
    "value_after": pl.Float64(),
    "message": pl.String(),
}

INTERVENTION_SCHEMA: dict[str, pl.DataType] = {
    "intervention_id": pl.String(),
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "type": pl.String(),
    "reason": pl.String(),
    "status": pl.String(),  # open, closed
    "opened_check": pl.Int64(),
    "opened_tick": pl.Int64(),
    "opened_at": TS,
    "closed_check": pl.Int64(),
    "closed_tick": pl.Int64(),
    "closed_at": TS,
    "close_reason": pl.String(),
}

MONITOR_CHECK_SCHEMA: dict[str, pl.DataType] = {
    "check_no": pl.Int64(),
    "tick": pl.Int64(),
    "checked_at": TS,
    "source": pl.String(),  # dagster, dashboard, cli
    "opened": pl.Int64(),
    "closed": pl.Int64(),
    "open_after": pl.Int64(),
}


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Return ``frame`` with exactly the columns of ``schema``, in order, cast to its types (timestamps to UTC)."""
    if frame.width == 0 and frame.height == 0:
        return pl.DataFrame(schema=schema)
    columns = []
    for name, dtype in schema.items():
        col = pl.col(name)
        current = frame.schema.get(name)
        if isinstance(dtype, pl.Datetime) and isinstance(current, pl.Datetime):
            col = (
                col.dt.replace_time_zone("UTC")
                if current.time_zone is None
                else col.dt.convert_time_zone("UTC")
            )
            col = col.dt.cast_time_unit("us")
        columns.append(col.cast(dtype).alias(name))
    return frame.select(columns)


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Return an empty frame with ``schema``."""
    return pl.DataFrame(schema=schema)
