"""A few users who make most of an export's events (bots) are named by the fit, not silently averaged away."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from simulation_assets.core.twin.features import extreme_users, heavy_users
from simulation_assets.core.twin.fidelity import compare
from simulation_assets.core.twin.fit import prepare
from simulation_assets_tests.twin.conftest import CFG


def _stats(events: list[int], days: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"user": range(len(events)), "total_events": events, "active_days": days})


def test_three_crawlers_among_a_shop_s_visitors_are_named() -> None:
    # 7,000 visitors of 30 events over two days, three crawlers of 10,000 events a day for 39 days.
    stats = _stats([30] * 7_000 + [390_000] * 3, [2] * 7_000 + [39] * 3)
    heavy = heavy_users(stats)
    assert heavy == {
        "users": 3,
        "user_share": round(3 / 7_003, 6),
        "event_share": 0.8478,
        "events_per_day": 10_000.0,
        "left_out": 3,
    }


def test_an_ordinary_long_tail_is_not_heavy() -> None:
    # Power users make more, but half of the events take far more than 1 % of the users.
    stats = _stats([int(1_000 / (1 + u)) + 1 for u in range(5_000)], [5] * 5_000)
    assert heavy_users(stats) is None
    assert heavy_users(_stats([], [])) is None


def test_machines_are_left_out_and_a_long_tail_of_keen_people_is_kept() -> None:
    # The three crawlers (10,000 events a day) are machines; 50 keen people of 125 a day among people of 15
    # a day make half the events too, but are people: kept.
    crawlers = _stats([30] * 7_000 + [390_000] * 3, [2] * 7_000 + [39] * 3)
    assert extreme_users(crawlers).to_list() == [7_000, 7_001, 7_002]
    keen = _stats([30] * 7_000 + [5_000] * 50, [2] * 7_000 + [40] * 50)
    assert heavy_users(keen) is not None and heavy_users(keen)["left_out"] == 0
    assert extreme_users(keen).is_empty() and extreme_users(_stats([], [])).is_empty()


def _rows(
    users: int, days: int, per_day: int, event: str, g: np.random.Generator, prefix: str
) -> pl.DataFrame:
    """One session a day of ``per_day`` events a minute apart for each of ``users``, events ``event`` or random."""
    start_us = int(dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC).timestamp()) * 1_000_000
    user = np.repeat(np.arange(users), days * per_day)
    day = np.tile(np.repeat(np.arange(days), per_day), users)
    step = np.tile(np.arange(per_day), users * days)
    names = (
        np.full(user.size, event)
        if event
        else g.choice(["view", "click", "buy"], user.size, p=[0.6, 0.3, 0.1])
    )
    return pl.DataFrame(
        {
            "uuid": [f"{prefix}{i}" for i in range(user.size)],
            "event": names,
            "distinct_id": [f"{prefix}{u}" for u in user],
            "person_id": pl.Series([None] * user.size, dtype=pl.String),
            "timestamp": pl.Series(start_us + (day * 86_400 + step * 60) * 1_000_000).cast(
                pl.Datetime("us", "UTC")
            ),
            "session_id": pl.Series([None] * user.size, dtype=pl.String),
        }  # fmt: skip
    )


def test_the_report_compares_people_with_people_when_machines_made_most_of_the_export() -> None:
    g = np.random.default_rng(3)
    people = _rows(300, 14, 6, "", g, "p")
    export = pl.concat([people, _rows(3, 14, 1_000, "$pageview", g, "bot")])
    real, twin = prepare(export, CFG), prepare(people, CFG)
    # The crawlers' page views: 62.5 % of the rows.
    assert float((real.events["event"] == "$pageview").mean()) > 0.6
    machines = extreme_users(real.user_stats)
    assert machines.len() == 3
    left = real.without(machines)
    assert left.users.height == 300 and "$pageview" not in set(left.events["event"])
    assert compare(left, twin).by_name("event_mix").value < 0.01
