"""A few users who make most of an export's events (bots) are named by the fit, not silently averaged away."""

from __future__ import annotations

import polars as pl

from simulation_assets.core.twin.features import heavy_users


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
    }


def test_an_ordinary_long_tail_is_not_heavy() -> None:
    # Power users make more, but half of the events take far more than 1 % of the users.
    stats = _stats([int(1_000 / (1 + u)) + 1 for u in range(5_000)], [5] * 5_000)
    assert heavy_users(stats) is None
    assert heavy_users(_stats([], [])) is None
