"""The daily metrics row computed from one day's persona table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from simulation_assets.core.hogflix.config import PATTERNS, PLANS, STATES
from simulation_assets.core.hogflix.schema import (
    DAILY_METRICS_SCHEMA,
    DEPTH_ROWS,
    SATISFACTION_HIGH,
    SATISFACTION_LOW,
    STATE,
    VIEWING_STATES,
)

# The persona columns ``daily_metrics`` reads (a reader may load only these).
METRICS_INPUT_COLUMNS = (
    "state", "activity_pattern", "active_today", "signed_up_today", "churned_today", "marked_for_cleanup",
    "reactivated_today", "flixbuddy_today", "videos_today", "engagement_score", "in_life_event",
    "binge_mode_today", "days_since_signup", "completion_today", "plan", "ratings_today", "avg_rating_today",
    "watchlist_adds_today", "watchlist_size", "satisfaction", "lapsed", "plan_changed_today",
    "payment_attempt_today", "payment_failed_today", "payment_recovered_today", "payment_status", "churn_reason",
    "consecutive_missed_days",
)  # fmt: skip


def depth_row(
    date: dt.date, assignment_day: int, sick: pl.Expr | None = None, assigned: pl.Expr | None = None
) -> pl.Expr:
    """Return the line of the viewing rule (``viewing.depth_rows``) each persona's visit of ``date`` fell
    under, as a string expression over the persona table (the rule, first match wins); ``sick`` and
    ``assigned``: the SICK test and the pattern-drawn test when the frame has them as columns of their own."""
    weekend = date.weekday() >= 5
    by_pattern = {"DAILY": "DAILY", "REGULAR": "REGULAR", "WEEKEND": "WEEKEND_PEAK" if weekend else "WEEKEND",
                  "BINGE": "BINGE_COOLDOWN", "MONTHLY": "MONTHLY"}  # fmt: skip
    if sick is None:
        sick = pl.col("in_life_event").cast(pl.String) == "SICK"
    if assigned is None:
        assigned = pl.col("days_since_signup") >= assignment_day
    return (
        pl.when(sick).then(pl.lit("SICK"))
        .when(pl.col("state") == "NEW").then(pl.lit("NEW"))
        .when(pl.col("binge_mode_today")).then(pl.lit("BINGE"))
        .when(pl.col("state") == "CASUAL").then(pl.lit("CASUAL"))
        .when(assigned)
        .then(pl.col("activity_pattern").cast(pl.String).replace_strict(by_pattern))
        .otherwise(pl.lit("ACTIVE"))
    )  # fmt: skip


def daily_metrics(
    personas: pl.DataFrame, date: dt.date, assignment_day: int = 14, churn_after_inactive_days: int = 30
) -> pl.DataFrame:
    """Return one row of ``DAILY_METRICS_SCHEMA`` for the persona table of ``date``.

    State and pattern counts cover every persona in the table; pattern counts
    exclude CHURNED personas (they no longer follow a pattern). The monitoring
    columns: visits and videos by line of the viewing rule, engagement score and
    completion by state, ratings by plan, watchlist, plan mix and changes,
    payments, satisfaction (with the lapsed share of the least and most
    satisfied personas), and by plan the personas at risk of the long-dormant
    churn today (``churn_after_inactive_days`` or more without a visit, still
    DORMANT or churned today, lapsed) and those of them who churned for inactivity.
    """
    alive = pl.col("state") != "CHURNED"
    visit = pl.col("active_today")
    sat = pl.col("satisfaction")
    settled = alive & (pl.col("state") != "NEW")
    low, high = settled & (sat < SATISFACTION_LOW), settled & (sat > SATISFACTION_HIGH)
    frame = personas
    # One pass for the plain counts, one group-by per category (a filter per figure costs seconds at 1M).
    row = frame.select(
        pl.len().alias("total_personas"),
        alive.sum().alias("pool_size"),
        visit.sum().alias("active_today"),
        pl.col("signed_up_today").sum().alias("new_signups"),
        pl.col("churned_today").sum().alias("churned"),
        (pl.col("churned_today") & pl.col("marked_for_cleanup")).sum().alias("churned_cleaned"),
        pl.col("reactivated_today").sum().alias("reactivated"),
        pl.col("flixbuddy_today").sum().alias("flixbuddy_calls"),
        pl.col("videos_today").sum().alias("videos_watched"),
        pl.col("engagement_score").filter(alive).mean().alias("avg_engagement_score"),
        pl.col("completion_today")
        .filter(visit & pl.col("binge_mode_today"))
        .mean()
        .alias("binge_completion"),
        pl.col("watchlist_adds_today").sum().alias("watchlist_adds"),
        pl.col("watchlist_size").filter(alive).sum().alias("watchlist_total"),
        (pl.col("plan_changed_today") == 1).sum().alias("upgrades"),
        (pl.col("plan_changed_today") == -1).sum().alias("downgrades"),
        sat.filter(pl.col("plan_changed_today") == 1).sum().alias("upgrade_satisfaction_sum"),
        sat.filter(pl.col("plan_changed_today") == -1).sum().alias("downgrade_satisfaction_sum"),
        (pl.col("payment_attempt_today") == 1).sum().alias("payment_charges"),
        ((pl.col("payment_attempt_today") == 1) & pl.col("payment_failed_today"))
        .sum()
        .alias("payment_failures"),
        (pl.col("payment_attempt_today") >= 2).sum().alias("payment_retries"),
        pl.col("payment_recovered_today").sum().alias("payment_recoveries"),
        (alive & (pl.col("payment_status") == "dunning")).sum().alias("in_dunning"),
        (pl.col("churned_today") & (pl.col("churn_reason") == "payment_failed"))
        .sum()
        .alias("churned_payment"),
        sat.filter(alive).mean().alias("avg_satisfaction"),
        low.sum().alias("low_satisfaction"),
        (low & pl.col("lapsed")).sum().alias("low_satisfaction_lapsed"),
        high.sum().alias("high_satisfaction"),
        (high & pl.col("lapsed")).sum().alias("high_satisfaction_lapsed"),
    ).row(0, named=True)
    row["date"] = date
    by_row = _visits_by_depth_row(frame, date, assignment_day)
    by_state = _keyed(frame.group_by("state").agg(pl.len(), pl.col("engagement_score").sum(), visit.sum()))
    completion_sums = _sums_by_state(frame, visit, "completion_today")
    # A persona's stars today are whole: its mean rating times its ratings (summed exactly, as integers).
    stars = (pl.col("avg_rating_today").cast(pl.Float64) * pl.col("ratings_today")).round().cast(pl.Int64)
    # Lapsed personas only: their churn chance is the same crowded one in every plan but for the plan's
    # multiplier (a persona kept away by its cadence has the base chance, and plans differ in patterns).
    at_risk = (
        pl.col("lapsed")
        & (pl.col("consecutive_missed_days") >= churn_after_inactive_days)
        & ((pl.col("state") == "DORMANT") | pl.col("churned_today"))
    )
    inactive_churn = pl.col("churned_today") & (pl.col("churn_reason") == "inactive_30_days")
    by_plan = _keyed(
        frame.group_by("plan").agg(
            alive.sum(),
            pl.col("ratings_today").sum(),
            stars.sum(),
            pl.col("churned_today").sum(),
            at_risk.sum().alias("_at_risk"),
            (inactive_churn & at_risk).sum().alias("_churned_inactive"),
        )
    )
    by_pattern = _keyed(frame.group_by("activity_pattern").agg(alive.sum()))
    for s in STATES:
        row[f"state_{s}"] = by_state.get(s, (0,))[0]
    for p in PATTERNS:
        row[f"pattern_{p}"] = by_pattern.get(p, (0,))[0]
    for r in DEPTH_ROWS:
        row[f"visits_{r}"], row[f"videos_{r}"] = by_row.get(r, (0, 0))
    for s, completion_sum in zip(STATES, completion_sums, strict=True):
        if s in VIEWING_STATES:
            n, score_sum, visits = by_state.get(s, (0, 0, 0))
            row[f"score_{s}"] = score_sum / n if n else None
            row[f"completion_{s}"] = float(completion_sum) / visits if visits else None
    for p in PLANS:
        (
            row[f"plan_{p}"],
            row[f"ratings_{p}"],
            star_sum,
            row[f"churned_{p}"],
            row[f"lapsed_at_risk_{p}"],
            row[f"lapsed_churned_{p}"],
        ) = by_plan.get(p, (0, 0, 0, 0, 0, 0))
        row[f"stars_{p}"] = star_sum / row[f"ratings_{p}"] if row[f"ratings_{p}"] else None
    return pl.DataFrame([{k: row[k] for k in DAILY_METRICS_SCHEMA}], schema=DAILY_METRICS_SCHEMA)


def _visits_by_depth_row(personas: pl.DataFrame, date: dt.date, assignment_day: int) -> dict[str, tuple]:
    """Return {line of the viewing rule: (visits, videos)} of the day's visits (``depth_row``'s lines).

    The visits are counted by the few things the rule looks at (SICK, state, binge mode, pattern drawn,
    pattern): a group-by over small keys, then the rule applied once per group, not once per visit.
    """
    groups = (
        personas.lazy()  # lazy: only the columns the group-by reads are filtered
        .filter(pl.col("active_today"))
        .group_by(
            (pl.col("in_life_event") == "SICK").fill_null(False).alias("sick"),
            "state",
            "binge_mode_today",
            (pl.col("days_since_signup") >= assignment_day).alias("assigned"),
            "activity_pattern",
        )
        .agg(pl.len(), pl.col("videos_today").sum())
        .collect()
    )
    if groups.is_empty():
        return {}
    lines = groups.with_columns(
        pl.col("state").cast(pl.String), pl.col("activity_pattern").cast(pl.String)
    ).select(
        depth_row(date, assignment_day, pl.col("sick"), pl.col("assigned")).alias("_row"),
        "len",
        "videos_today",
    )
    return _keyed(lines.group_by("_row").agg(pl.col("len").sum(), pl.col("videos_today").sum()))


def _sums_by_state(frame: pl.DataFrame, keep: pl.Expr, column: str) -> np.ndarray:
    """Return the sum of the float ``column`` over the rows ``keep`` selects, per state (in ``STATES``'
    order), added in row order (``np.bincount``): Polars' group-by adds floats on several threads in an
    order that changes from run to run, and the figure would change in its last digits with it."""
    state = frame["state"] if frame.schema["state"] == STATE else frame["state"].cast(STATE)
    values = frame.select(pl.when(keep).then(pl.col(column)).fill_null(0.0)).to_series().to_numpy()
    return np.bincount(state.to_physical().to_numpy(), weights=values, minlength=len(STATES))


def _keyed(frame: pl.DataFrame) -> dict[str, tuple]:
    """Return a group-by result as {key: (the other columns...)}."""
    return {r[0]: r[1:] for r in frame.iter_rows()}


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
    # genre affinity: what the day's viewers did in their favourite genre and in the others
    "starts_favourite": pl.Int64(),
    "watchlist_adds": pl.Int64(),
    "watchlist_favourite": pl.Int64(),
    "watched_favourite": pl.Int64(),
    "watched_other": pl.Int64(),
    "completion_favourite_sum": pl.Float64(),
    "completion_other_sum": pl.Float64(),
    "ratings_favourite": pl.Int64(),
    "ratings_other": pl.Int64(),
    "stars_favourite_sum": pl.Float64(),
    "stars_other_sum": pl.Float64(),
}


def _affinity(events: pl.DataFrame, personas: pl.DataFrame | None) -> dict[str, float]:
    """Return the genre-affinity columns of a day: events joined to the persona's favourite genre."""
    if personas is None or events.is_empty():
        return {}
    favourite = personas.select(
        "persona_number", pl.col("favorite_genre").cast(pl.String).alias("_favourite")
    )
    ev = events.select(
        "event", "persona_number", "genre", "completion_percent", "watch_seconds", "rating"
    ).join(favourite, on="persona_number", how="left")
    fav = pl.col("genre") == pl.col("_favourite")
    watched = pl.col("watch_seconds").is_not_null()
    rated = pl.col("event") == "video_rated"
    return ev.select(
        ((pl.col("event") == "video_started") & fav).sum().alias("starts_favourite"),
        (pl.col("event") == "watchlist_added").sum().alias("watchlist_adds"),
        ((pl.col("event") == "watchlist_added") & fav).sum().alias("watchlist_favourite"),
        (watched & fav).sum().alias("watched_favourite"),
        (watched & ~fav).sum().alias("watched_other"),
        pl.col("completion_percent")
        .filter(watched & fav)
        .sum()
        .cast(pl.Float64)
        .alias("completion_favourite_sum"),
        pl.col("completion_percent")
        .filter(watched & ~fav)
        .sum()
        .cast(pl.Float64)
        .alias("completion_other_sum"),
        (rated & fav).sum().alias("ratings_favourite"),
        (rated & ~fav).sum().alias("ratings_other"),
        pl.col("rating").filter(rated & fav).sum().cast(pl.Float64).alias("stars_favourite_sum"),
        pl.col("rating").filter(rated & ~fav).sum().cast(pl.Float64).alias("stars_other_sum"),
    ).row(0, named=True)


def traffic_day(
    date: dt.date, sessions: pl.DataFrame, events: pl.DataFrame, personas: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Return one row of ``TRAFFIC_DAILY_SCHEMA``: the day's sessions, events and key event counts, and
    (given the day's ``personas``) what viewers did in their favourite genre against the others."""
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
    row |= {k: 0 for k in TRAFFIC_DAILY_SCHEMA if k not in row} | _affinity(events, personas)
    return pl.DataFrame([row], schema=TRAFFIC_DAILY_SCHEMA)
