"""The daily metrics row computed from one day's persona table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from simulation_assets.core.hogflix.billing import CHURN_REASONS, PAYMENT_STATES
from simulation_assets.core.hogflix.config import LIFE_EVENTS, PATTERNS, PLANS, STATES
from simulation_assets.core.hogflix.schema import (
    DAILY_METRICS_SCHEMA,
    DEPTH_ROWS,
    SATISFACTION_HIGH,
    SATISFACTION_LOW,
    VIEWING_STATES,
)

# The persona columns ``daily_metrics`` reads (a reader may load only these).
METRICS_INPUT_COLUMNS = (
    "state", "activity_pattern", "active_today", "signed_up_today", "churned_today", "marked_for_cleanup",
    "reactivated_today", "flixbuddy_today", "videos_today", "engagement_score", "in_life_event",
    "binge_mode_today", "days_since_signup", "completion_today", "plan", "ratings_today", "avg_rating_today",
    "watchlist_adds_today", "watchlist_size", "satisfaction", "lapsed", "lapsed_today", "plan_changed_today",
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
    return metrics_row(metrics_arrays(personas), date, assignment_day, churn_after_inactive_days)


# Label columns among the inputs, read as their codes (the position of the label, -1 for null).
_CODES: dict[str, tuple[str, ...]] = {
    "state": STATES, "activity_pattern": PATTERNS, "plan": PLANS, "in_life_event": LIFE_EVENTS,
    "payment_status": PAYMENT_STATES, "churn_reason": CHURN_REASONS,
}  # fmt: skip
_NEW, _CASUAL, _DORMANT, _CHURNED = (STATES.index(s) for s in ("NEW", "CASUAL", "DORMANT", "CHURNED"))


def metrics_arrays(personas: pl.DataFrame) -> dict[str, np.ndarray]:
    """Return the ``METRICS_INPUT_COLUMNS`` of a persona table as arrays, the label columns as codes."""
    out = {}
    for k in METRICS_INPUT_COLUMNS:
        series = personas[k]
        if k in _CODES:
            series = series.cast(pl.Enum(list(_CODES[k]))).to_physical().cast(pl.Int8).fill_null(-1)
        out[k] = series.to_numpy()
    return out


def _masked_sum(values: np.ndarray, mask: np.ndarray) -> int | float:
    """Return the sum of ``values`` where ``mask`` is true: the values times the mask, summed (in int64
    or float64): a pass without branches, faster than gathering the rows of a scattered mask."""
    kept = np.multiply(values, mask)
    return kept.sum(dtype=np.float64 if kept.dtype.kind == "f" else np.int64).item()


def _share(total: float, count: int) -> float | None:
    return float(total) / count if count else None


def metrics_row(
    a: dict[str, np.ndarray], date: dt.date, assignment_day: int = 14, churn_after_inactive_days: int = 30
) -> pl.DataFrame:
    """Return the ``daily_metrics`` row of one day's persona columns given as arrays (``metrics_arrays``,
    or a pool's own arrays): each figure is a count, a sum in row order (``np.bincount`` by state or
    plan) or a mean, so the row is the same whichever form the day came in."""
    state, plan, pattern = a["state"], a["plan"], a["activity_pattern"]
    alive, visit, sat = state != _CHURNED, a["active_today"], a["satisfaction"]
    churned, pct, attempt = a["churned_today"], a["plan_changed_today"], a["payment_attempt_today"]
    settled = alive & (state != _NEW)
    low, high = settled & (sat < SATISFACTION_LOW), settled & (sat > SATISFACTION_HIGH)
    n_alive = int(np.count_nonzero(alive))
    count = np.count_nonzero
    seen = np.flatnonzero(visit)  # the visits (a fraction of the pool), looked at alone
    binge_seen = seen[a["binge_mode_today"][seen]]  # visits in binge mode
    up, down = pct == 1, pct == -1
    row: dict[str, object] = {
        "date": date,
        "total_personas": len(state),
        "pool_size": n_alive,
        "active_today": count(visit),
        "new_signups": count(a["signed_up_today"]),
        "churned": count(churned),
        "churned_cleaned": count(churned & a["marked_for_cleanup"]),
        "reactivated": count(a["reactivated_today"]),
        "flixbuddy_calls": count(a["flixbuddy_today"]),
        "videos_watched": int(a["videos_today"].sum(dtype=np.int64)),
        "avg_engagement_score": _share(_masked_sum(a["engagement_score"], alive), n_alive),
        "binge_completion": _share(a["completion_today"][binge_seen].sum(), binge_seen.size),
        "watchlist_adds": int(a["watchlist_adds_today"].sum(dtype=np.int64)),
        "watchlist_total": int(_masked_sum(a["watchlist_size"], alive)),
        "upgrades": count(up),
        "downgrades": count(down),
        "upgrade_satisfaction_sum": float(sat[up].sum(dtype=np.float64)),
        "downgrade_satisfaction_sum": float(sat[down].sum(dtype=np.float64)),
        "payment_charges": count(attempt == 1),
        "payment_failures": count((attempt == 1) & a["payment_failed_today"]),
        "payment_retries": count(attempt >= 2),
        "payment_recoveries": count(a["payment_recovered_today"]),
        "in_dunning": count(alive & (a["payment_status"] == PAYMENT_STATES.index("dunning"))),
        "churned_payment": count(churned & (a["churn_reason"] == CHURN_REASONS.index("payment_failed"))),
        "avg_satisfaction": _share(_masked_sum(sat, alive), n_alive),
        "low_satisfaction": count(low),
        "low_satisfaction_lapsed": count(low & a["lapsed"]),
        "high_satisfaction": count(high),
        "high_satisfaction_lapsed": count(high & a["lapsed"]),
    }
    # The lapse rule's exposure: settled personas not lapsed before today, and who of them lapsed today.
    at_risk = settled & (~a["lapsed"] | a["lapsed_today"])
    for name, group in (("low", low & at_risk), ("high", high & at_risk)):
        row[f"{name}_satisfaction_at_risk"] = count(group)
        row[f"{name}_satisfaction_at_risk_sum"] = float(_masked_sum(sat, group))
        row[f"{name}_satisfaction_lapses"] = count(group & a["lapsed_today"])
    # By category: a comparison per code (a byte per persona) and a masked sum, not np.bincount (slower).
    seen_state, seen_completion = state[seen], a["completion_today"][seen]
    for i, s in enumerate(STATES):
        is_s = state == i
        row[f"state_{s}"] = count(is_s)
        if s in VIEWING_STATES:
            seen_s = seen_state == i
            score = _masked_sum(a["engagement_score"], is_s)
            row[f"score_{s}"] = _share(score, row[f"state_{s}"])
            row[f"completion_{s}"] = _share(_masked_sum(seen_completion, seen_s), count(seen_s))
    for i, p in enumerate(PATTERNS):
        row[f"pattern_{p}"] = count(alive & (pattern == i))
    by_row = _depth_rows(a, date, assignment_day, seen)
    for r in DEPTH_ROWS:
        row[f"visits_{r}"], row[f"videos_{r}"] = by_row.get(r, (0, 0))
    # A persona's stars today are whole: its mean rating times its ratings (summed exactly, as integers).
    rated = np.flatnonzero(a["ratings_today"])
    ratings = a["ratings_today"][rated]
    stars = np.rint(a["avg_rating_today"][rated].astype(np.float64) * ratings).astype(np.int64)
    rated_plan = plan[rated]
    # Lapsed personas only: their churn chance is the same crowded one in every plan but for the plan's
    # multiplier (a persona kept away by its cadence has the base chance, and plans differ in patterns).
    at_risk = (
        a["lapsed"]
        & (a["consecutive_missed_days"] >= churn_after_inactive_days)
        & ((state == _DORMANT) | churned)
    )
    # The day's churned and the at-risk are a small share of the pool: their plans are looked at alone.
    risk_idx = np.flatnonzero(at_risk)
    inactive = CHURN_REASONS.index("inactive_30_days")
    inactive_idx = risk_idx[churned[risk_idx] & (a["churn_reason"][risk_idx] == inactive)]
    churned_plan, risk_plan, inactive_plan = plan[np.flatnonzero(churned)], plan[risk_idx], plan[inactive_idx]
    # Ratings and stars by plan in one pass each (sums of whole numbers: exact in float64).
    by_plan = rated_plan.astype(np.uint8)  # a null plan (-1) counts apart, past the three
    ratings_by = np.bincount(by_plan, weights=ratings, minlength=len(PLANS))
    stars_by = np.bincount(by_plan, weights=stars, minlength=len(PLANS))
    for i, p in enumerate(PLANS):
        row[f"plan_{p}"], row[f"churned_{p}"] = count(alive & (plan == i)), count(churned_plan == i)
        row[f"ratings_{p}"] = int(ratings_by[i])
        row[f"stars_{p}"] = _share(stars_by[i], row[f"ratings_{p}"])
        row[f"lapsed_at_risk_{p}"] = count(risk_plan == i)
        row[f"lapsed_churned_{p}"] = count(inactive_plan == i)
    values = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
    return pl.DataFrame([{k: values[k] for k in DAILY_METRICS_SCHEMA}], schema=DAILY_METRICS_SCHEMA)


def _visits_by_depth_row(personas: pl.DataFrame, date: dt.date, assignment_day: int) -> dict[str, tuple]:
    """Return {line of the viewing rule: (visits, videos)} of the day's visits in a persona table."""
    a = metrics_arrays(personas)
    return _depth_rows(a, date, assignment_day, np.flatnonzero(a["active_today"]))


def _depth_rows(
    a: dict[str, np.ndarray], date: dt.date, assignment_day: int, visit: np.ndarray
) -> dict[str, tuple]:
    """Return {line of the viewing rule (``depth_row``): (visits, videos)} of the day's visits.

    The visits are counted by the few things the rule looks at (SICK, state, binge mode, pattern drawn,
    pattern), then the rule is applied once per group, not once per visit. ``visit``: the visitors' rows.
    """
    if not visit.size:
        return {}
    sick = a["in_life_event"][visit] == LIFE_EVENTS.index("SICK")
    assigned = a["days_since_signup"][visit] >= assignment_day
    npat, nst = len(PATTERNS), len(STATES)
    key = sick.astype(np.int32) * nst + a["state"][visit]
    key = (key * 2 + a["binge_mode_today"][visit]) * 2 + assigned
    key = key * npat + a["activity_pattern"][visit]
    size = 2 * nst * 2 * 2 * npat
    counts = np.bincount(key, minlength=size)
    videos = np.rint(np.bincount(key, weights=a["videos_today"][visit], minlength=size))
    # Each group's line, then the lines' totals (sums of whole numbers: exact in float64).
    line = _group_lines(date, assignment_day)
    visits_by = np.bincount(line, weights=counts, minlength=len(DEPTH_ROWS))
    videos_by = np.bincount(line, weights=videos, minlength=len(DEPTH_ROWS))
    return {r: (int(visits_by[i]), int(videos_by[i])) for i, r in enumerate(DEPTH_ROWS) if visits_by[i]}


# The line of the viewing rule (index into DEPTH_ROWS) of each group code of ``_depth_rows``, by (weekend,
# assignment day): the rule (``depth_row``) applied once to every combination, not once per day.
_GROUP_LINES: dict[tuple[bool, int], np.ndarray] = {}


def _group_lines(date: dt.date, assignment_day: int) -> np.ndarray:
    """Return the index into ``DEPTH_ROWS`` of the line of every group code of ``_depth_rows`` on ``date``."""
    cached = (date.weekday() >= 5, assignment_day)
    if cached not in _GROUP_LINES:
        npat, nst = len(PATTERNS), len(STATES)
        groups = np.arange(2 * nst * 2 * 2 * npat)
        pat, rest = groups % npat, groups // npat
        assigned_g, rest = rest % 2, rest // 2
        binge_g, rest = rest % 2, rest // 2
        state_g, sick_g = rest % nst, rest // nst
        lines = pl.DataFrame(
            {
                "sick": sick_g.astype(np.bool_),
                "state": np.array(STATES)[state_g],
                "binge_mode_today": binge_g.astype(np.bool_),
                "assigned": assigned_g.astype(np.bool_),
                "activity_pattern": np.array(PATTERNS)[pat],
            }
        ).select(depth_row(date, assignment_day, pl.col("sick"), pl.col("assigned")))
        _GROUP_LINES[cached] = np.array([DEPTH_ROWS.index(r) for r in lines.to_series()], np.intp)
    return _GROUP_LINES[cached]


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
