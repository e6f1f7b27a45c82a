"""An example product unlike HogFlix, for the demo and the tests: a B2B analytics tool with three kinds of users.

- **workers** (45 %): weekdays, office hours, most days; sessions of login ->
  dashboard -> (report_viewed -> filter_applied?)* -> export_clicked? -> logout.
- **hobbyists** (35 %): evenings and weekends, about twice a week; login -> feed ->
  (post_viewed -> liked?)* -> logout.
- **trialists** (20 %): arrive anonymous during the window, sign up ($identify),
  walk three onboarding steps, come back a few times, mostly churn within two weeks.

Users carry a plan, a company size, a country and a browser; every event has a
``load_ms`` number; nothing carries a ``$session_id`` (sessions must be rebuilt).
All draws are vectorized from one seeded generator.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

MS_DAY = 86_400_000
MS_HOUR = 3_600_000

WORKER_FLOW = ("login", "dashboard", "report_viewed", "filter_applied", "export_clicked", "logout")
HOBBY_FLOW = ("login", "feed", "post_viewed", "liked", "logout")
TRIAL_FLOW = (
    "signup_started",
    "$identify",
    "onboarding_step",
    "onboarding_step",
    "onboarding_step",
    "dashboard",
)


def synthetic_events(
    users: int = 600,
    days: int = 70,
    seed: int = 7,
    start: dt.date = dt.date(2026, 2, 2),
    extra_sessions: float = 0.0,
) -> pl.DataFrame:
    """Return the events (distinct_id, timestamp, event, properties as columns) of the synthetic product.

    With ``extra_sessions`` > 0, workers and hobbyists come back within an active day a Poisson number
    of times (that mean), each visit at an hour drawn like the first: days of several sessions.
    """
    g = np.random.default_rng(seed)
    kind = g.choice(3, size=users, p=[0.45, 0.35, 0.20])
    first = np.where(kind == 2, g.integers(0, days, users), 0)
    life = np.where(kind == 2, g.geometric(1 / 9, users), days + 1)
    rate = np.select([kind == 0, kind == 1], [g.beta(8, 2, users), g.beta(3, 8, users)], g.beta(2, 4, users))
    base = (start - dt.date(1970, 1, 1)).days
    rows_user, rows_day = [], []
    for d in range(days):  # a loop over days (70), each vectorized over users
        wd = (base + d + 3) % 7
        weekend = wd >= 5
        mult = np.select([kind == 0, kind == 1], [0.15 if weekend else 1.0, 1.8 if weekend else 0.8], 1.0)
        age = d - first
        alive = (age >= 0) & (age <= life)
        active = alive & ((age == 0) | (g.random(users) < np.clip(rate * mult, 0, 1)))
        idx = np.flatnonzero(active)
        rows_user.append(idx)
        rows_day.append(np.full(idx.size, d))
    s_user, s_day = np.concatenate(rows_user), np.concatenate(rows_day)
    if extra_sessions > 0:
        again = np.where(kind[s_user] < 2, g.poisson(extra_sessions, s_user.size), 0)
        s_user, s_day = np.repeat(s_user, 1 + again), np.repeat(s_day, 1 + again)
    s_kind = kind[s_user]
    hour = np.select(
        [s_kind == 0, s_kind == 1],
        [g.normal(11.0, 2.2, s_user.size), g.normal(20.5, 1.5, s_user.size)],
        g.normal(15.0, 4.0, s_user.size),
    )
    start_ms = (base + s_day) * MS_DAY + (np.clip(hour, 0, 23.9) * MS_HOUR).astype(np.int64)
    first_session = (s_day == first[s_user]) & (s_kind == 2)
    ev_session, ev_name, ev_gap = _flows(g, s_kind, first_session)
    t = start_ms[ev_session] + _segment_cumsum(ev_gap, ev_session)
    user = s_user[ev_session]
    # Identity: a trialist is anonymous until their $identify (in their first session).
    ident_t = np.full(users, np.iinfo(np.int64).max)
    is_ident = ev_name == "$identify"
    np.minimum.at(ident_t, user[is_ident], t[is_ident])
    anonymous = (kind[user] == 2) & (t < ident_t[user])
    distinct = np.where(
        anonymous, np.char.add("anon-", user.astype(str)), np.char.add("acct-", user.astype(str))
    )
    plans = np.array(["team", "business", "free"])
    sizes = np.array(["51-200", "11-50", "1-10"])
    countries = np.array(["US", "DE", "GB", "FR", "IN", "BR"])
    browsers = np.array(["Chrome", "Edge", "Firefox", "Safari"])
    user_country = countries[g.choice(6, users, p=[0.4, 0.15, 0.15, 0.1, 0.1, 0.1])]
    user_browser = browsers[g.choice(4, users, p=[0.55, 0.2, 0.15, 0.1])]
    load = np.round(g.lognormal(np.log(180), 0.6, t.size)).astype(np.int64)
    frame = pl.DataFrame(
        {
            "distinct_id": distinct,
            "timestamp": pl.Series(t).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
            "event": ev_name,
            "plan": plans[kind[user]],
            "company_size": sizes[kind[user]],
            "$geoip_country_code": user_country[user],
            "$browser": user_browser[user],
            "load_ms": load,
            "$anon_distinct_id": np.char.add("anon-", user.astype(str)),
        }
    )
    frame = frame.with_columns(
        pl.when(pl.col("event") == "$identify")
        .then(pl.col("$anon_distinct_id"))
        .otherwise(None)
        .alias("$anon_distinct_id")
    )
    return (
        frame.sort("timestamp", "distinct_id", maintain_order=True)
        .with_row_index("n")
        .with_columns(pl.format("{}-{}", pl.lit(f"syn{seed}"), pl.col("n")).alias("uuid"))
        .drop("n")
    )


def _flows(
    g: np.random.Generator, kind: np.ndarray, first_trial: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (session, event name, seconds before the event) of every session's events."""
    n = kind.size
    loops = np.select(
        [kind == 0, kind == 1], [1 + g.poisson(3.0, n), 1 + g.poisson(5.0, n)], 1 + g.poisson(1.0, n)
    )
    sessions, names, gaps = [], [], []

    def emit(mask: np.ndarray, name: np.ndarray | str, gap_mean: float) -> None:
        idx = np.flatnonzero(mask)
        sessions.append(idx)
        names.append(np.broadcast_to(np.asarray(name, dtype=object), idx.shape).astype(object))
        gaps.append(g.exponential(gap_mean, idx.size))

    # Emission in a fixed order of steps; the sort by (session, step) at the end keeps the flows.
    steps: list[tuple[np.ndarray, np.ndarray | str, float]] = []
    trial_first = first_trial
    steps += [(trial_first, name, 20.0) for name in TRIAL_FLOW]
    regular_worker = (kind == 0) | ((kind == 2) & ~trial_first)
    steps += [(regular_worker, "login", 0.0), (regular_worker, "dashboard", 8.0)]
    steps += [((kind == 1), "login", 0.0), ((kind == 1), "feed", 5.0)]
    for i in range(int(loops.max())):
        w = regular_worker & (loops > i)
        steps += [(w, "report_viewed", 40.0), (w & (g.random(n) < 0.4), "filter_applied", 15.0)]
        h = (kind == 1) & (loops > i)
        steps += [(h, "post_viewed", 25.0), (h & (g.random(n) < 0.3), "liked", 4.0)]
    steps += [(regular_worker & (g.random(n) < 0.25), "export_clicked", 10.0)]
    steps += [(regular_worker | (kind == 1), "logout", 12.0)]
    for order, (mask, name, gap) in enumerate(steps):
        emit(mask, name, gap)
        sessions[-1] = np.c_[sessions[-1], np.full(sessions[-1].size, order)]
    stacked = np.concatenate(sessions)
    order = np.lexsort((stacked[:, 1], stacked[:, 0]))
    sess = stacked[order, 0]
    name = np.concatenate(names)[order]
    gap = np.concatenate(gaps)[order] * 1000.0
    first = np.r_[True, sess[1:] != sess[:-1]]
    gap[first] = 0.0
    return sess, name.astype(str), gap.astype(np.int64)


def _segment_cumsum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    total = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(np.diff(segment)) + 1]
    base = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, values.size]))
    return total - base
