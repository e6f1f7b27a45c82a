"""Heterogeneity the class averages flatten: users whose long sessions are filled differently, and users who come in runs.

Two small one-class products (the fit may use a single class, so only the part under test can keep the
structure): in "binge" each user has their own share of videos (a video block has five events, a page
two), so users with long sessions are the video-heavy ones; in "runs" half the users come in runs of
days (a visit the day after a visit is likely, after a day away unlikely) and half at the same rate on
independent days; in another each user comes on a weekday of their own; in the third the busiest tenth of
users also stay three times as long. Each figure is
also measured with the part removed, so the test shows the part is what keeps it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from simulation_assets.core.twin.activity import empty_week_share
from simulation_assets.core.twin.features import weekday
from simulation_assets.core.twin.fit import Prepared
from simulation_assets.core.twin.generate import ActivitySimulation
from simulation_assets.core.twin.spec import TwinSpec
from simulation_assets_tests.twin.conftest import CFG, block_sessions, fit_file, prepared_twin

START = dt.date(2026, 3, 2)
ONE_CLASS = CFG.model_copy(update={"max_classes": 1})


def _sessions(
    active: np.ndarray, g: np.random.Generator, video_share: np.ndarray, end: np.ndarray | None = None
) -> pl.DataFrame:
    """Events of one session per active (user, day): open, blocks (video or page) ending with chance ``end`` (1/4) after each."""
    end = np.full(active.shape[0], 0.25) if end is None else end
    watch = [("play", 60.0), ("tick", 60.0), ("tick", 60.0), ("tick", 60.0), ("stop", 1.0)]
    return block_sessions(
        active, g, START, video_share, end, [("view", 20.0), ("leave", 1.0)], watch, opening=5.0
    )


def _fit(rows: pl.DataFrame, folder: Path) -> tuple[Prepared, TwinSpec]:
    path = folder / "events.parquet"
    rows.write_parquet(path)
    return fit_file(path, ONE_CLASS)


def _twin(spec: TwinSpec) -> Prepared:
    return prepared_twin(spec, ONE_CLASS)


def _video_gap(p: Prepared) -> float:
    """Return the video share of blocks of the deepest third of users minus that of the shallowest third."""
    per = (
        p.events.group_by("user")
        .agg((pl.col("event") == "play").sum().alias("v"), (pl.col("event") == "view").sum().alias("p"))
        .join(p.user_stats.select("user", "events_per_session"), on="user")
        .filter((pl.col("v") + pl.col("p")) >= 10)
        .sort("events_per_session")
    )
    share = (per["v"] / (per["v"] + per["p"])).to_numpy()
    third = share.size // 3
    return float(share[-third:].mean() - share[:third].mean())


def test_deep_users_keep_their_own_flow_mix(tmp_path: Path) -> None:
    g = np.random.default_rng(11)
    users, days = 300, 21
    active = g.random((users, days)) < 0.5
    active[:, 0] = True
    real, spec = _fit(_sessions(active, g, g.uniform(0.05, 0.95, users)), tmp_path)
    want = _video_gap(real)
    assert want >= 0.4, want  # long sessions are video-heavy ones
    got = _video_gap(_twin(spec))
    assert got >= want - 0.15, (got, want)
    # Without chains per depth group (every group with the shallowest group's chain): no difference left.
    t = spec.tables["transitions"]
    flat = t.filter(pl.col("depth") == 0).with_columns(pl.lit(-1, pl.Int16).alias("depth"))
    lost = _video_gap(_twin(TwinSpec(spec.document, {**spec.tables, "transitions": flat})))
    assert lost <= 0.1, lost


def _next_day_spread(p: Prepared) -> float:
    """Return the spread (sd), over users with 8+ visits followed by a day, of the share followed by a visit."""
    days = p.sessions.select("user", "day").unique().sort("user", "day")
    per = (
        days.with_columns((pl.col("day").shift(-1).over("user") - pl.col("day")).alias("next"))
        .drop_nulls("next")
        .group_by("user")
        .agg((pl.col("next") == 1).mean().alias("share"), pl.len().alias("n"))
        .filter(pl.col("n") >= 8)
    )
    return float(per["share"].std())


def test_users_who_come_in_runs_keep_them(tmp_path: Path) -> None:
    g = np.random.default_rng(6)
    users, days = 600, 42
    runs = np.arange(users) < users // 2  # half come in runs: P(visit | visit yesterday) 0.85, else 0.12
    active = np.zeros((users, days), np.bool_)
    active[:, 0] = True
    for d in range(1, days):  # 41 days, vectorized over users
        chance = np.where(runs, np.where(active[:, d - 1], 0.85, 0.12), 0.12 / 0.27)
        active[:, d] = g.random(users) < chance
    real, spec = _fit(_sessions(active, g, np.full(users, 0.3)), tmp_path)
    want = _next_day_spread(real)
    assert want >= 0.2, want
    streak = spec.tables["user_streak"]["log_odds"].to_numpy()
    assert streak[-1] - streak[0] >= 1.0, streak
    # Scaled by simulation to the export's spread of next-day shares, keeping each user's rate: measured 0.226
    # against 0.228 (0.190 with the streaks as estimated), and 0.144 without the streaks (binomial noise and rates
    # alone).
    assert spec.document.classes[0].streak_keeps_rate and spec.document.classes[0].streak_scale > 1.5
    twin = _twin(spec)
    got = _next_day_spread(twin)
    assert abs(got - want) <= 0.015, (got, want)
    no_streaks = {**spec.tables, "user_streak": spec.tables["user_streak"].clear()}
    lost = _next_day_spread(_twin(TwinSpec(spec.document, no_streaks)))
    assert got >= lost + 0.03, (got, lost, want)
    # Both halves come on 44 % of days: a streak moves a user's visits into runs, not their number. Added to the
    # rate instead, the users of runs come on more days than the others: the spread of active days 7.7 with the
    # rate kept, 10.5 without (the export's 5.7).
    added = [cd.model_copy(update={"streak_keeps_rate": False}) for cd in spec.document.classes]
    kept_sd, added_sd = (
        float(p.sessions.select("user", "day").unique().group_by("user").len()["len"].std())
        for p in (twin, _twin(TwinSpec(spec.document.model_copy(update={"classes": added}), spec.tables)))
    )
    assert kept_sd <= 0.85 * added_sd, (kept_sd, added_sd)


def _busiest_depth_ratio(p: Prepared) -> float:
    """Return the mean events per session of the busiest tenth of users (by active days) over the others'."""
    u = p.user_stats.sort("active_days", "user")
    eps = u["events_per_session"].to_numpy()
    top = u.height // 10
    return float(eps[-top:].mean() / eps[:-top].mean())


def test_the_busiest_users_keep_their_own_session_depth(tmp_path: Path) -> None:
    g = np.random.default_rng(17)
    users, days = 500, 28
    rate = g.uniform(0.15, 0.75, users)
    active = g.random((users, days)) < rate[:, None]
    active[:, 0] = True
    busiest = rate >= np.quantile(rate, 0.9)  # the busiest tenth also stay three times as long
    real, spec = _fit(_sessions(active, g, np.full(users, 0.3), np.where(busiest, 0.08, 0.3)), tmp_path)
    assert spec.document.flow["depth_band_cuts"] == [0.333333, 0.666667, 0.9]
    want = _busiest_depth_ratio(real)
    assert want >= 2.0, want
    got = _busiest_depth_ratio(_twin(spec))
    # Measured 2.00 against 2.26: depths judged within the user's activity band and split by seconds per event
    # (1.62 with six depth groups shrunk toward the class's mean; 1.45 with the band from the days a user's return
    # chance promised rather than the days they are active; 1.26 without the busiest tenth's band).
    assert got >= 1.8, (got, want)
    # Without the busiest tenth's own band (a spec of thirds: the top third's shares for all of it).
    thirds = spec.tables["depth_by_activity"].filter(pl.col("band") < 3)
    flow = {k: v for k, v in spec.document.flow.items() if k != "depth_band_cuts"}
    doc = spec.document.model_copy(update={"flow": flow})
    lost = _busiest_depth_ratio(_twin(TwinSpec(doc, {**spec.tables, "depth_by_activity": thirds})))
    assert lost <= got - 0.15, (lost, got)


def _empty_weeks(p: Prepared) -> float:
    """Return the share of weeks inside users' active spans (first to last week with a visit) without a visit."""
    days = p.sessions.select("user", "day").unique()
    return empty_week_share(days["user"].to_numpy(), days["day"].to_numpy() - p.window.first)[0]


def test_users_whose_visits_bunch_into_weeks_keep_their_quiet_weeks(tmp_path: Path) -> None:
    # Each user's week is busy (a visit on 45 % of its days) or quiet (3 %), at random: about as many
    # visits as a steady 24 %, but four weeks in ten without one where a steady user has one in seven.
    g = np.random.default_rng(8)
    users, days = 500, 56
    busy = g.random((users, days // 7)) < 0.5
    active = g.random((users, days)) < np.repeat(np.where(busy, 0.45, 0.03), 7, axis=1)
    active[:, 0] = active[:, -1] = True  # every user there from the first day to the last
    real, spec = _fit(_sessions(active, g, np.full(users, 0.3)), tmp_path)
    want = _empty_weeks(real)
    assert want >= 0.35, want
    assert spec.document.classes[0].week_spread > 0.5
    got = _empty_weeks(_twin(spec))
    # Measured: the export 0.417, the twin 0.405 (week spread 0.88); with no spread between weeks 0.279.
    steady = [cd.model_copy(update={"week_spread": 0.0}) for cd in spec.document.classes]
    lost = _empty_weeks(_twin(TwinSpec(spec.document.model_copy(update={"classes": steady}), spec.tables)))
    assert abs(got - want) <= 0.05, (got, want, lost)
    assert lost <= want - 0.1, (lost, want)


def _top_weekday_share(user: np.ndarray, day: np.ndarray) -> float:
    """Return the median, over users with 6+ active days, of their share of days on their commonest weekday."""
    f = pl.DataFrame({"user": user, "weekday": weekday(np.asarray(day))})
    per = (
        f.group_by("user", "weekday")
        .len()
        .group_by("user")
        .agg(pl.col("len").max().alias("top"), pl.col("len").sum().alias("n"))
    )
    per = per.filter(pl.col("n") >= 6)
    return float((per["top"] / per["n"]).median())


def _twin_top_weekday_share(spec: TwinSpec, days: int) -> float:
    sim = ActivitySimulation(spec.with_generation(users=2_000, days=days))
    day = np.concatenate([np.full(a.size, d) for d, a in enumerate(sim.active_by_day)])
    return _top_weekday_share(np.concatenate(sim.active_by_day), day + (START - dt.date(1970, 1, 1)).days)


def test_users_who_keep_to_their_own_weekday_keep_it(tmp_path: Path) -> None:
    g = np.random.default_rng(23)
    users, days = 400, 56
    own = g.integers(0, 5, users)  # each user's own weekday, Monday to Friday (START is a Monday)
    chance = np.where(np.arange(days)[None, :] % 7 == own[:, None], 0.85, 0.03)
    active = g.random((users, days)) < chance
    active[:, 0] = True
    real, spec = _fit(_sessions(active, g, np.full(users, 0.3)), tmp_path)
    activity = real.sessions.select("user", "day").unique()
    want = _top_weekday_share(activity["user"].to_numpy(), activity["day"].to_numpy())
    assert want >= 0.7, want
    assert max(spec.document.classes[0].weekday_loyalty) >= 0.3, spec.document.classes[0].weekday_loyalty
    got = _twin_top_weekday_share(spec, days)
    # Without weekdays of their own every user takes the class's (five busy weekdays alike).
    flat = [cd.model_copy(update={"weekday_loyalty": []}) for cd in spec.document.classes]
    lost = _twin_top_weekday_share(
        TwinSpec(spec.document.model_copy(update={"classes": flat}), spec.tables), days
    )
    # Measured 0.80 against 0.78, 0.33 without.
    assert got >= want - 0.1 and lost <= want - 0.25, (got, lost, want)
