"""The persona table and the daily metrics table, as Polars schemas.

The persona columns follow the specification's "Enhanced Persona Schema" (its
nested ``binge_state`` is flattened to ``binge_is_binging``, ``binge_day``,
``binge_cooldown_until``); the columns after ``profile_id`` are this project's
additions that later stages (sessions, app rows, cleanup) read.
"""

from __future__ import annotations

import polars as pl

from simulation_assets.core.hogflix.catalog import GENRES
from simulation_assets.core.hogflix.config import LIFE_EVENTS, PATTERNS, PLANS, STATES

STATE = pl.Enum(list(STATES))
PATTERN = pl.Enum(list(PATTERNS))
PLAN = pl.Enum(list(PLANS))
LIFE_EVENT = pl.Enum(list(LIFE_EVENTS))
TS = pl.Datetime("ms", "UTC")

PERSONA_SCHEMA: dict[str, pl.DataType] = {
    # identity
    "distinct_id": pl.String(),
    "plan": PLAN,
    "source": pl.String(),
    "email": pl.String(),
    # lifecycle
    "state": STATE,
    "state_changed_at": TS,
    "days_since_signup": pl.Int32(),
    "last_active": TS,
    "created_at": TS,
    # activity pattern
    "activity_pattern": PATTERN,
    "consecutive_active_days": pl.Int32(),
    "consecutive_missed_days": pl.Int32(),
    "total_sessions": pl.Int32(),
    # engagement
    "engagement_score": pl.Int32(),
    "videos_watched": pl.Int32(),
    "avg_watch_completion": pl.Float64(),  # percent, 0-100
    "ratings_given": pl.Int32(),
    "watchlist_size": pl.Int32(),
    "flixbuddy_conversations": pl.Int32(),
    # temporal state
    "in_life_event": LIFE_EVENT,
    "life_event_ends_at": pl.Date(),
    "binge_is_binging": pl.Boolean(),
    "binge_day": pl.Int32(),
    "binge_cooldown_until": pl.Date(),
    # churn tracking
    "churned_at": TS,
    "churn_reason": pl.String(),
    # database sync
    "db_initialized": pl.Boolean(),
    "user_id": pl.String(),
    "profile_id": pl.String(),
    # project additions
    "is_synthetic": pl.Boolean(),
    "persona_number": pl.Int64(),
    "snapshot_date": pl.Date(),
    "lapsed": pl.Boolean(),
    "activity_history": pl.UInt32(),  # bit i set = active i days before snapshot_date
    "binge_phase_ends": pl.Date(),
    "marked_for_cleanup": pl.Boolean(),
    "signed_up_today": pl.Boolean(),
    "active_today": pl.Boolean(),
    "reactivated_today": pl.Boolean(),
    "lapsed_today": pl.Boolean(),  # lost interest today (the lapse rule)
    "churned_today": pl.Boolean(),
    "session_start_at": TS,  # today's visit, null when inactive
    "videos_today": pl.Int32(),
    "completion_today": pl.Float64(),  # percent, 0-100
    "ratings_today": pl.Int32(),
    "watchlist_adds_today": pl.Int32(),
    "flixbuddy_today": pl.Boolean(),
    "binge_mode_today": pl.Boolean(),
    # hidden traits (core/hogflix/traits.py)
    "favorite_genre": pl.Enum(list(GENRES)),
    "price_sensitivity": pl.Float32(),
    "satisfaction": pl.Float32(),
    "avg_rating_today": pl.Float32(),  # mean stars of today's ratings, 0 when none
    "country": pl.String(),
    "timezone": pl.String(),
    # subscription (core/hogflix/billing.py)
    "previous_plan": PLAN,  # the plan before the last change
    "plan_changes": pl.Int16(),
    "plan_changed_today": pl.Int8(),  # +1 upgrade, -1 downgrade, 0 none
    "billing_day": pl.Int8(),  # day of month of the monthly charge
    "payment_status": pl.Enum(["ok", "dunning"]),
    "dunning_attempts": pl.Int8(),
    "next_payment_retry": pl.Date(),
    "payment_attempt_today": pl.Int8(),  # 0 none, 1 the monthly charge, 2-4 a dunning retry
    "payment_failed_today": pl.Boolean(),
    "payment_recovered_today": pl.Boolean(),
}

# Lines of the viewing rule (``viewing.depth_rows``), in the rule's order.
DEPTH_ROWS = ("SICK", "NEW", "BINGE", "CASUAL", "ACTIVE", "DAILY", "REGULAR", "WEEKEND", "WEEKEND_PEAK",
              "BINGE_COOLDOWN", "MONTHLY")  # fmt: skip
VIEWING_STATES = ("NEW", "ACTIVE", "CASUAL", "DORMANT")
# Satisfaction bands of the daily metrics (the least and most satisfied personas; choice).
SATISFACTION_LOW, SATISFACTION_HIGH = 0.55, 0.70

DAILY_METRICS_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "total_personas": pl.Int32(),
    "pool_size": pl.Int32(),  # personas not CHURNED
    "active_today": pl.Int32(),
    "new_signups": pl.Int32(),
    "churned": pl.Int32(),
    "churned_cleaned": pl.Int32(),
    "reactivated": pl.Int32(),
    "flixbuddy_calls": pl.Int32(),
    "videos_watched": pl.Int32(),
    "avg_engagement_score": pl.Float64(),
    **{f"state_{s}": pl.Int32() for s in STATES},
    **{f"pattern_{p}": pl.Int32() for p in PATTERNS},
    # monitoring (the specification's metrics; see metrics.daily_metrics)
    **{f"visits_{r}": pl.Int32() for r in DEPTH_ROWS},
    **{f"videos_{r}": pl.Int32() for r in DEPTH_ROWS},
    "binge_completion": pl.Float64(),
    **{f"score_{s}": pl.Float64() for s in VIEWING_STATES},
    **{f"completion_{s}": pl.Float64() for s in VIEWING_STATES},
    **{f"plan_{p}": pl.Int32() for p in PLANS},
    **{f"ratings_{p}": pl.Int32() for p in PLANS},
    **{f"stars_{p}": pl.Float64() for p in PLANS},
    **{f"churned_{p}": pl.Int32() for p in PLANS},
    # the long-dormant churn by plan: lapsed personas at risk today, and those of them churned for inactivity
    **{f"lapsed_at_risk_{p}": pl.Int32() for p in PLANS},
    **{f"lapsed_churned_{p}": pl.Int32() for p in PLANS},
    "watchlist_adds": pl.Int32(),
    "watchlist_total": pl.Int64(),
    "upgrades": pl.Int32(),
    "downgrades": pl.Int32(),
    "upgrade_satisfaction_sum": pl.Float64(),
    "downgrade_satisfaction_sum": pl.Float64(),
    "payment_charges": pl.Int32(),
    "payment_failures": pl.Int32(),
    "payment_retries": pl.Int32(),
    "payment_recoveries": pl.Int32(),
    "in_dunning": pl.Int32(),
    "churned_payment": pl.Int32(),
    "avg_satisfaction": pl.Float64(),
    "low_satisfaction": pl.Int32(),
    "low_satisfaction_lapsed": pl.Int32(),
    "high_satisfaction": pl.Int32(),
    "high_satisfaction_lapsed": pl.Int32(),
    # Settled personas not lapsed before the day (least / most satisfied), their satisfaction summed, and
    # how many of them lapsed that day: the lapse rule's rate by satisfaction.
    "low_satisfaction_at_risk": pl.Int32(),
    "low_satisfaction_at_risk_sum": pl.Float64(),
    "low_satisfaction_lapses": pl.Int32(),
    "high_satisfaction_at_risk": pl.Int32(),
    "high_satisfaction_at_risk_sum": pl.Float64(),
    "high_satisfaction_lapses": pl.Int32(),
}
