"""Data tests of the activity simulator, as pure functions of its tables (schemas in ``schema.py``).

Each returns a :class:`CheckOutcome`: whether it passed and the figures a person reads in
the Dagster UI. ``defs/activity.py`` declares them as asset checks on ``activity_tick`` and
``monitor_interventions``; the thresholds come from ``ActivityConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from simulation_assets.core.activity.config import ActivityConfig
from simulation_assets.core.activity.monitor import desired_interventions, duplicate_open
from simulation_assets.core.activity.schema import CUSTOMER_SCHEMA, INTERVENTION_SCHEMA, TICK_SCHEMA, conform

_KEYS = ["customer_id", "type"]


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check: passed or not, and what was measured."""

    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)


def counter_regressions(before: pl.DataFrame, after: pl.DataFrame) -> dict[str, int]:
    """Return how many customers lost API calls or disappeared between two states (both should be 0)."""
    joined = before.select("customer_id", pl.col("total_api_calls").alias("calls_before")).join(
        after.select("customer_id", pl.col("total_api_calls").alias("calls_after")),
        on="customer_id",
        how="left",
    )
    return {
        "customers_with_fewer_calls": joined.filter(pl.col("calls_after") < pl.col("calls_before")).height,
        "customers_missing": joined.filter(pl.col("calls_after").is_null()).height,
    }


def counters_never_decrease(
    before: pl.DataFrame, after: pl.DataFrame, tick_log: pl.DataFrame
) -> CheckOutcome:
    """Pass when no customer lost API calls or disappeared from ``before`` to ``after``, and the
    tick log's running ``total_api_calls`` never goes down (tick by tick, in tick order).

    API calls are a counter: a drop means a tick was applied to stale state or twice.
    """
    regressions = counter_regressions(conform(before, CUSTOMER_SCHEMA), conform(after, CUSTOMER_SCHEMA))
    totals = conform(tick_log, TICK_SCHEMA).sort("tick")["total_api_calls"]
    drops = int((totals.diff().drop_nulls() < 0).sum())
    return CheckOutcome(
        passed=drops == 0 and all(v == 0 for v in regressions.values()),
        metadata={**regressions, "tick_log_total_drops": drops, "ticks_checked": tick_log.height},
    )


def no_duplicate_open_interventions(interventions: pl.DataFrame) -> CheckOutcome:
    """Pass when no customer has two open interventions of one type (the monitor opens one at most)."""
    duplicates = duplicate_open(interventions)
    open_now = int((conform(interventions, INTERVENTION_SCHEMA)["status"] == "open").sum())
    return CheckOutcome(
        passed=duplicates.height == 0,
        metadata={"duplicate_pairs": duplicates.height, "open_interventions": open_now},
    )


def open_interventions_match_rules(
    customers: pl.DataFrame, interventions: pl.DataFrame, cfg: ActivityConfig, tick: int
) -> CheckOutcome:
    """Pass when, right after a monitor check at ``tick``, the open interventions are exactly the
    (customer, type) pairs whose rule holds: none missing (a rule holds, nothing is open) and
    none stale (open, but its rule no longer holds).
    """
    desired = desired_interventions(customers, tick, cfg).select(_KEYS).unique()
    open_now = conform(interventions, INTERVENTION_SCHEMA).filter(pl.col("status") == "open").select(_KEYS)
    missing = desired.join(open_now, on=_KEYS, how="anti")
    stale = open_now.unique().join(desired, on=_KEYS, how="anti")
    by_type = {t: n for t, n in missing.group_by("type").len().sort("type").iter_rows()}
    return CheckOutcome(
        passed=missing.height == 0 and stale.height == 0,
        metadata={
            "rules_holding": desired.height,
            "missing_interventions": missing.height,
            "stale_interventions": stale.height,
            "missing_by_type": by_type,
        },
    )
