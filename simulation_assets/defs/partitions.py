"""Partitions shared by the domains."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

# The default first day of every domain's daily partitions is the HogFlix scenario's first day.
from simulation_assets.core.calendar import DEFAULT_START_DATE, checked_start_date  # noqa: F401


def start_date_from_env() -> str:
    """Return ``$HOGFLIX_START_DATE`` (YYYY-MM-DD) or the default first day (without loading the HogFlix core)."""
    return checked_start_date(os.environ.get("HOGFLIX_START_DATE"))


ENVIRONMENTS = ("dev", "qa", "prod")


def _days_ahead(end_date: str | None) -> int:
    """Return how many days ``end_date`` (exclusive) lies beyond today (UTC), 0 when not in the future."""
    if not end_date:
        return 0
    end = dt.date.fromisoformat(end_date[:10])
    return max(0, (end - dt.datetime.now(dt.UTC).date()).days + 1)


def daily_partitions(
    start_date: str | None = None, end_date: str | None = None
) -> dg.DailyPartitionsDefinition:
    """Return UTC daily partitions from ``start_date`` (default: env) up to yesterday or ``end_date`` (exclusive).

    An explicit ``end_date`` is honoured even when it lies in the future (a forecast, a load test for next
    month): the partitions reach it instead of stopping at today.
    """
    return dg.DailyPartitionsDefinition(
        start_date=start_date or start_date_from_env(),
        end_date=end_date,
        timezone="UTC",
        end_offset=_days_ahead(end_date),
    )


def half_hourly_partitions(
    start_date: str | None = None, end_date: str | None = None
) -> dg.TimeWindowPartitionsDefinition:
    """Return UTC 30-minute partitions (cron ``*/30 * * * *``); an explicit future ``end_date`` is honoured."""
    start = dt.datetime.fromisoformat(start_date or start_date_from_env())
    end = dt.datetime.fromisoformat(end_date) if end_date else None
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="*/30 * * * *",
        start=start,
        end=end,
        fmt="%Y-%m-%d-%H:%M",
        timezone="UTC",
        end_offset=48 * _days_ahead(end_date),
    )


# A backfill of half-hourly partitions becomes one run per day of windows, so it fans out across
# workers; the persona chain itself stays one run (each day needs the previous one).
HALF_HOURLY_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=48)


environment_partitions = dg.StaticPartitionsDefinition(list(ENVIRONMENTS))
