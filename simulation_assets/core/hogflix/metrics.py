"""The daily metrics row computed from one day's persona table."""

from __future__ import annotations

import datetime as dt

import polars as pl

from simulation_assets.core.hogflix.config import PATTERNS, STATES
from simulation_assets.core.hogflix.schema import DAILY_METRICS_SCHEMA

# The persona columns ``daily_metrics`` reads (a reader may load only these).
METRICS_INPUT_COLUMNS = (
    "state", "activity_pattern", "active_today", "signed_up_today", "churned_today", "marked_for_cleanup",
    "reactivated_today", "flixbuddy_today", "videos_today", "engagement_score",
)  # fmt: skip


def daily_metrics(personas: pl.DataFrame, date: dt.date) -> pl.DataFrame:
    """Return one row of ``DAILY_METRICS_SCHEMA`` for the persona table of ``date``.

    State and pattern counts cover every persona in the table; pattern counts
    exclude CHURNED personas (they no longer follow a pattern).
    """
    alive = pl.col("state") != "CHURNED"
    row = personas.select(
        pl.lit(date).alias("date"),
        pl.len().alias("total_personas"),
        alive.sum().alias("pool_size"),
        pl.col("active_today").sum().alias("active_today"),
        pl.col("signed_up_today").sum().alias("new_signups"),
        pl.col("churned_today").sum().alias("churned"),
        (pl.col("churned_today") & pl.col("marked_for_cleanup")).sum().alias("churned_cleaned"),
        pl.col("reactivated_today").sum().alias("reactivated"),
        pl.col("flixbuddy_today").sum().alias("flixbuddy_calls"),
        pl.col("videos_today").sum().alias("videos_watched"),
        pl.col("engagement_score").filter(alive).mean().alias("avg_engagement_score"),
        *[(pl.col("state") == s).sum().alias(f"state_{s}") for s in STATES],
        *[((pl.col("activity_pattern") == p) & alive).sum().alias(f"pattern_{p}") for p in PATTERNS],
    )
    return row.select([pl.col(k).cast(t) for k, t in DAILY_METRICS_SCHEMA.items()])


def plan_weighted_pattern_targets(
    plan_counts: dict[str, int], weights: dict[str, tuple[float, ...]]
) -> dict[str, float]:
    """Return the pattern shares expected from a plan mix and the per-plan pattern weights."""
    total = sum(plan_counts.values())
    shares = {p: 0.0 for p in PATTERNS}
    for plan, count in plan_counts.items():
        for pattern, w in zip(PATTERNS, weights[plan]):
            shares[pattern] += w * count / total
    return shares


TRAFFIC_DAILY_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "sessions": pl.Int64(),
    "events": pl.Int64(),
    "pageviews": pl.Int64(),
    "videos_started": pl.Int64(),
    "ratings": pl.Int64(),
    "flixbuddy_chats": pl.Int64(),
    "support_tickets": pl.Int64(),
    "signups": pl.Int64(),
}


def traffic_day(date: dt.date, sessions: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """Return one row of ``TRAFFIC_DAILY_SCHEMA``: the day's sessions, events and key event counts."""
    count = (dict(events.group_by("event").len().iter_rows()) if events.height else {}).get
    row = {
        "date": date,
        "sessions": sessions.height,
        "events": events.height,
        "pageviews": count("$pageview", 0),
        "videos_started": count("video_started", 0),
        "ratings": count("video_rated", 0),
        "flixbuddy_chats": count("flixbuddy_interaction", 0),
        "support_tickets": count("support_ticket_created", 0),
        "signups": count("$identify", 0),
    }
    return pl.DataFrame([row], schema=TRAFFIC_DAILY_SCHEMA)
