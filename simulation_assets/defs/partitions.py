"""Partitions shared by the domains."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from simulation_assets.core.config_base import DEFAULT_START_DATE

ENVIRONMENTS = ("dev", "qa", "prod")


def start_date_from_env() -> str:
    """Return ``$HOGFLIX_START_DATE`` (YYYY-MM-DD) or the default first day."""
    value = os.environ.get("HOGFLIX_START_DATE") or DEFAULT_START_DATE
    try:
        dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"HOGFLIX_START_DATE must be YYYY-MM-DD, got {value!r}") from exc
    return value


def daily_partitions(
    start_date: str | None = None, end_date: str | None = None
) -> dg.DailyPartitionsDefinition:
    """Return UTC daily partitions from ``start_date`` (default: env) up to yesterday or ``end_date`` (exclusive)."""
    return dg.DailyPartitionsDefinition(
        start_date=start_date or start_date_from_env(), end_date=end_date, timezone="UTC"
    )


def half_hourly_partitions(
    start_date: str | None = None, end_date: str | None = None
) -> dg.TimeWindowPartitionsDefinition:
    """Return UTC 30-minute partitions (cron ``*/30 * * * *``)."""
    start = dt.datetime.fromisoformat(start_date or start_date_from_env())
    end = dt.datetime.fromisoformat(end_date) if end_date else None
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="*/30 * * * *", start=start, end=end, fmt="%Y-%m-%d-%H:%M", timezone="UTC"
    )


# A backfill of half-hourly partitions becomes one run per day of windows, so it fans out across
# workers; the persona chain itself stays one run (each day needs the previous one).
HALF_HOURLY_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=48)


environment_partitions = dg.StaticPartitionsDefinition(list(ENVIRONMENTS))
