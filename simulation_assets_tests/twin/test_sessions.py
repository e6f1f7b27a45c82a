"""Users are stitched like PostHog merges them; sessions are rebuilt like posthog-js cuts them."""

from __future__ import annotations

import datetime as dt

import polars as pl

from simulation_assets.core.twin.sessions import complete_window, sessionize, stitch_users

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def _rows(**columns: list) -> pl.DataFrame:
    n = len(columns["distinct_id"])
    base = {"event": ["e"] * n, "person_id": [None] * n, "session_id": [None] * n}
    frame = pl.DataFrame(
        {**base, **columns}, schema_overrides={"person_id": pl.String, "session_id": pl.String}
    )
    return frame.with_columns(pl.col("timestamp").cast(pl.Datetime("us", "UTC")))


def test_identify_links_the_anonymous_id_to_the_user_it_became() -> None:
    events = pl.DataFrame(
        {
            "distinct_id": ["anon-1", "anon-1", "user-1", "user-1", "anon-2", "null", "null"],
            "event": ["$pageview", "$pageview", "$identify", "x", "$pageview", "$identify", "y"],
            "$anon_distinct_id": [None, None, "anon-1", None, None, "anon-2", None],
        }
    )
    keys = stitch_users(events).to_list()
    assert keys[:4] == ["anon-1"] * 4  # one component: its smallest id represents it
    # "null" is an id PostHog refuses to merge on: it links nothing.
    assert keys[4] == "anon-2" and keys[5:] == ["null", "null"]


def test_person_ids_join_distinct_ids_and_represent_the_user() -> None:
    events = pl.DataFrame(
        {"distinct_id": ["a", "b", "c", "d"], "person_id": ["p1", "p1", None, "p2"], "event": ["x"] * 4}
    )
    assert stitch_users(events).to_list() == ["p1", "p1", "c", "p2"]


def test_sessions_break_after_30_minutes_of_inactivity() -> None:
    minutes = [0, 10, 39, 70, 71, 200]  # gaps 10, 29, 31, 1, 129 minutes
    frame = _rows(
        distinct_id=["u"] * 6, timestamp=[T0 + dt.timedelta(minutes=m) for m in minutes]
    ).with_columns(pl.col("distinct_id").alias("user_key"))
    events, users, rebuilt = sessionize(frame)
    assert rebuilt and users.height == 1
    assert events["session"].to_list() == [0, 0, 0, 1, 1, 2]
    assert events["seq"].to_list() == [0, 1, 2, 0, 1, 0]


def test_a_session_never_lasts_more_than_24_hours() -> None:
    # An event every 20 minutes for 50 hours: inactivity never ends the session, the 24 h cap does.
    stamps = [T0 + dt.timedelta(minutes=20 * i) for i in range(150)]
    frame = _rows(distinct_id=["u"] * 150, timestamp=stamps).with_columns(
        pl.col("distinct_id").alias("user_key")
    )
    events, _, _ = sessionize(frame)
    spans = events.group_by("session").agg(
        (pl.col("t_ms").max() - pl.col("t_ms").min()).alias("ms"), pl.len()
    )
    assert spans.height == 3 and spans["ms"].max() < 24 * 3_600_000
    assert sorted(spans["len"].to_list()) == [6, 72, 72]


def test_given_session_ids_are_kept_and_rows_without_one_join_the_recent_session() -> None:
    minutes = [0, 5, 6, 60, 61, 62]
    frame = _rows(
        distinct_id=["u"] * 6,
        timestamp=[T0 + dt.timedelta(minutes=m) for m in minutes],
        session_id=["s1", "s1", None, None, "s2", "s2"],
    ).with_columns(pl.col("distinct_id").alias("user_key"))
    events, _, rebuilt = sessionize(frame)
    assert not rebuilt
    # The id-less row a minute after s1 joins s1; the one 54 minutes later starts its own session.
    assert events["session"].to_list() == [0, 0, 0, 1, 2, 2]


def test_two_users_never_share_a_session_and_sessions_are_numbered_by_user_then_time() -> None:
    frame = _rows(
        distinct_id=["b", "a", "b", "a"],
        timestamp=[
            T0,
            T0 + dt.timedelta(minutes=1),
            T0 + dt.timedelta(minutes=2),
            T0 + dt.timedelta(hours=3),
        ],
    ).with_columns(pl.col("distinct_id").alias("user_key"))
    events, users, _ = sessionize(frame)
    assert users["user_key"].to_list() == ["a", "b"]
    assert events.select("user", "session").rows() == [(0, 0), (0, 1), (1, 2), (1, 2)]


def test_a_last_day_cut_short_is_left_out_of_the_window() -> None:
    def window(per_day: list[int]) -> tuple[int, int]:
        days = [20_000 + d for d, n in enumerate(per_day) for _ in range(n)]
        w = complete_window(pl.DataFrame({"day": days}))
        return w.first - 20_000, w.last - 20_000

    # An export taken early on its 15th day (or sessions spilling past midnight): that day is not a day
    # every user stayed away.
    assert window([100] * 14 + [3]) == (0, 13)
    # A full last day stays, a quiet one (half the week before) too, and a product winding down keeps its end.
    assert window([100] * 15) == (0, 14)
    assert window([100] * 14 + [55]) == (0, 14)
    assert window(list(range(100, 40, -4))) == (0, 14)
    # Too short to judge: kept.
    assert window([100] * 5 + [1]) == (0, 5)
