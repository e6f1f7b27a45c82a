"""Per-session and per-user figures, computed the same way for the real export and for the twin.

Everything here reads the frame :func:`~.sessions.sessionize` returns, so the
fit, the fidelity report, the churn classifier and the privacy test all see the
same definitions: a session's duration is its last event minus its first; a
user's sessions per week are their sessions over the weeks from their first
day to the end of the window; the gap between sessions is between consecutive
session starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.twin.config import MS_PER_DAY, MS_PER_HOUR

# Hour of week: Monday 00:00 UTC is 0. 1970-01-01 was a Thursday (weekday 3).
EPOCH_WEEKDAY = 3


@dataclass(frozen=True)
class Window:
    """The days an export covers: UTC day numbers ``first``..``last`` inclusive."""

    first: int
    last: int

    @property
    def days(self) -> int:
        return self.last - self.first + 1

    @classmethod
    def of(cls, sessions: pl.DataFrame) -> Window:
        """Return the days on which the sessions start (a session past midnight does not add a day)."""
        day = sessions["day"]
        return cls(int(day.min()), int(day.max()))  # type: ignore[arg-type]


def weekday(day: np.ndarray | int) -> np.ndarray:
    """Return the weekday (Monday 0 .. Sunday 6) of UTC day numbers."""
    return (np.asarray(day) + EPOCH_WEEKDAY) % 7


def session_table(events: pl.DataFrame) -> pl.DataFrame:
    """Return one row per session: user, start and end (ms), events, duration (s), day, hour of week."""
    session, t = events["session"].to_numpy(), events["t_ms"].to_numpy()
    ds = np.diff(session)
    if session.size and (ds >= 0).all() and (np.diff(t)[ds == 0] >= 0).all():
        # Rows by session and time, as sessionize returns them: each session's rows are a run, read at its ends.
        first = np.r_[0, np.flatnonzero(ds) + 1]
        last = np.r_[first[1:], session.size] - 1
        out = events[first].select(
            "session",
            "user",
            pl.col("t_ms").alias("start_ms"),
            pl.Series("end_ms", t[last]),
            pl.Series("n_events", (last - first + 1).astype(np.int32)),
            pl.col("event").alias("first_event"),
        )
    else:
        out = events.group_by("session").agg(
            pl.col("user").first(),
            pl.col("t_ms").min().alias("start_ms"),
            pl.col("t_ms").max().alias("end_ms"),
            pl.len().cast(pl.Int32).alias("n_events"),
            pl.col("event").first().alias("first_event"),
        )
    out = out.sort("session").with_columns(
        ((pl.col("end_ms") - pl.col("start_ms")) / 1000.0).alias("duration_s"),
        (pl.col("start_ms") // MS_PER_DAY).alias("day"),
    )
    day = out["day"].to_numpy()
    hour = (out["start_ms"].to_numpy() % MS_PER_DAY) // MS_PER_HOUR
    return out.with_columns(pl.Series("hour_of_week", (weekday(day) * 24 + hour).astype(np.int16)))


def user_table(sessions: pl.DataFrame, window: Window) -> pl.DataFrame:
    """Return one row per user with the per-user figures the fidelity report compares.

    Columns: user, first_day, last_day, n_sessions, active_days, exposure_days
    (first day to the window's end), sessions_per_week, events_per_session
    (mean), session_duration (median s), gap_hours (median hours between
    consecutive session starts; null with one session), total_events.
    """
    s = sessions.sort("user", "start_ms")
    gaps = s.with_columns(
        ((pl.col("start_ms") - pl.col("start_ms").shift(1).over("user")) / MS_PER_HOUR).alias("gap_h")
    )
    users = gaps.group_by("user").agg(
        pl.col("day").min().alias("first_day"),
        pl.col("day").max().alias("last_day"),
        pl.len().cast(pl.Int32).alias("n_sessions"),
        pl.col("day").n_unique().cast(pl.Int32).alias("active_days"),
        pl.col("n_events").mean().alias("events_per_session"),
        pl.col("duration_s").median().alias("session_duration"),
        pl.col("gap_h").drop_nulls().median().alias("gap_hours"),
        pl.col("n_events").sum().alias("total_events"),
    )
    exposure = pl.lit(window.last + 1) - pl.col("first_day")
    return users.sort("user").with_columns(
        exposure.cast(pl.Int32).alias("exposure_days"),
        (pl.col("n_sessions") * 7.0 / exposure.clip(lower_bound=1)).alias("sessions_per_week"),
    )


# The fewest users who made this share of an export's events are "heavy" when they are at most HEAVY_USERS of them.
HEAVY_EVENTS = 0.5
HEAVY_USERS = 0.01


# Of those, the ones left out of the fit and of the report's export side: each made at least this many times
# as many events on an average active day as the other users' 99th percentile (machines, not people).
EXTREME_FACTOR = 10.0


def _heaviest(user_stats: pl.DataFrame) -> pl.DataFrame | None:
    """Return the rows of :func:`heavy_users`'s users (most events first), or None."""
    if user_stats.is_empty():
        return None
    events = np.sort(user_stats["total_events"].to_numpy().astype(np.float64))[::-1]
    total = events.sum()
    n = int(np.searchsorted(np.cumsum(events), HEAVY_EVENTS * total) + 1)
    n = int((events >= events[min(n, events.size) - 1] / 2).sum())  # and the users about as heavy
    if total <= 0 or n > HEAVY_USERS * events.size:
        return None
    return user_stats.sort(["total_events", "user"], descending=[True, False]).head(n)


def _per_day(frame: pl.DataFrame) -> pl.Series:
    return frame["total_events"] / frame["active_days"].clip(lower_bound=1)


def extreme_users(user_stats: pl.DataFrame) -> pl.Series:
    """Return the users (numbers) of :func:`heavy_users` whose events per active day are ``EXTREME_FACTOR`` times
    the other users' 99th percentile or more: crawlers, load tests, service accounts (empty when none).

    A handful of machines is not a population the twin can learn (its classes are of many users, and
    nothing fewer than k users did is copied), and their volume would be the export's event mix: the fit
    leaves them out, and so does the report's export side, so both compare people with people. A long tail
    of keen people (a power user of 200 events a day among users of 20) is kept.
    """
    top = _heaviest(user_stats)
    if top is None:
        return pl.Series("user", [], dtype=user_stats["user"].dtype)
    rest = user_stats.join(top.select("user"), on="user", how="anti")
    usual = float(_per_day(rest).quantile(0.99) or 0.0) if rest.height else 0.0
    return top.filter(_per_day(top) >= EXTREME_FACTOR * max(usual, 1.0))["user"].sort()


def heavy_users(user_stats: pl.DataFrame) -> dict[str, float] | None:
    """Return the fewest users who made half of the events, with those at least half as busy as the least of them
    (``users``; ``user_share``, ``event_share``; the most events one of them made on an average active day,
    ``events_per_day``) when they are at most 1 % of the users
    (bots, load tests, an integration's service account), else None. ``user_stats``: :func:`user_table`'s.

    The twin fits classes of many users and copies nothing fewer than k users did: such users' volume is
    not in it, and every figure weighed by events (the event mix, the transitions) follows the rest.
    """
    top = _heaviest(user_stats)
    if top is None:
        return None
    total = float(user_stats["total_events"].sum())
    return {
        "users": top.height,
        "user_share": round(top.height / user_stats.height, 6),
        "event_share": round(float(top["total_events"].sum()) / total, 4),
        "events_per_day": round(float(_per_day(top).max() or 0.0), 1),
        "left_out": extreme_users(user_stats).len(),
    }


DISTRIBUTIONS = ("sessions_per_week", "active_days", "events_per_session", "session_duration", "gap_hours")


def user_day_activity(sessions: pl.DataFrame) -> pl.DataFrame:
    """Return the distinct (user, day) pairs with at least one session, with sessions that day."""
    return sessions.group_by("user", "day").agg(pl.len().cast(pl.Int32).alias("sessions")).sort("user", "day")
