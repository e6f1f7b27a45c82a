"""Exports as teams hand them over: stray clocks, a few days only, and other shapes the fit must survive or refuse."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from simulation_assets.sinks.posthog_export import ExportError
from simulation_assets.sinks.twin_source import drop_redelivered, main_span


def _rows(days: list[int], per_day: int = 50) -> pl.DataFrame:
    start = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    stamps = [start + dt.timedelta(days=d, minutes=7 * i) for d in days for i in range(per_day)]
    return pl.DataFrame(
        {"event": ["e"] * len(stamps), "distinct_id": ["u"] * len(stamps), "timestamp": stamps}
    )


def test_a_few_rows_from_a_stray_clock_are_left_out_of_the_window() -> None:
    rows = _rows(list(range(60)))  # 3,000 rows over 60 days
    epoch = pl.DataFrame({"event": ["e"] * 20, "distinct_id": ["u"] * 20,
                          "timestamp": [dt.datetime(1970, 1, 1, tzinfo=dt.UTC)] * 20})  # fmt: skip
    ahead = _rows([60 + 3 * 365], per_day=5)  # a clock three years ahead
    kept, stray = main_span(pl.concat([epoch, rows, ahead]), "e.parquet")
    assert stray == 25 and kept.height == rows.height
    assert (
        kept["timestamp"].min() == rows["timestamp"].min()
        and kept["timestamp"].max() == rows["timestamp"].max()
    )
    # A quiet stretch shorter than four weeks is part of the export, not a stray period.
    gappy = _rows([*range(20), *range(45, 60)])
    assert main_span(gappy, "e.parquet") == (gappy, 0)


def test_an_export_of_two_periods_is_refused_with_both_named() -> None:
    rows = pl.concat([_rows(list(range(30))), _rows(list(range(200, 230)), per_day=10)])  # 1,500 + 300 rows
    with pytest.raises(ExportError, match=r"2 periods more than 28 days apart \(2026-03-02..2026-03-31 \(1,500 rows\), "
                                          r"2026-09-18..2026-10-17 \(300 rows\)\)"):  # fmt: skip
        main_span(rows, "e.parquet")


def test_a_first_day_cut_short_by_the_time_zone_is_left_out_of_the_window() -> None:
    from simulation_assets.core.twin.sessions import complete_window

    def window(per_day: list[int], first_hour: float = 22.0) -> tuple[int, int]:
        """Sessions of each day at 09:00-20:00 UTC, the first day's from ``first_hour`` on."""
        rows = [(20_000 + d, (20_000 + d) * 86_400_000 + int(((first_hour if d == 0 else 9) + 0.01 * i) * 3_600_000))
                for d, n in enumerate(per_day) for i in range(n)]  # fmt: skip
        w = complete_window(pl.DataFrame(rows, schema=["day", "start_ms"], orient="row"))
        return w.first - 20_000, w.last - 20_000

    # A site in UTC+2: its first local hours fall late on the UTC day before (7 sessions, then 470-760 a day).
    assert window([7, 470, 554, 673, 763, 724, 593, 622, 706, 777]) == (1, 9)
    assert window([7] + [100] * 13 + [3]) == (1, 13)  # both ends cut short
    assert window([60] + [100] * 14) == (0, 14)  # a quiet first day stays
    # A product launched in the window: a quiet first day, but a whole one, and its users' first days: kept.
    assert window([25] + [100] * 14, first_hour=8.0) == (0, 14)
    assert window([7] + [100] * 7) == (0, 7)  # too short to judge


def test_daily_active_users_by_date_show_a_holiday_the_twin_does_not_have() -> None:
    from simulation_assets.core.twin.fidelity import daily_active_users, dau_by_day_summary
    from simulation_assets.core.twin.fit import prepare
    from simulation_assets_tests.twin.conftest import CFG

    def export(holiday: bool) -> pl.DataFrame:
        start = dt.datetime(2026, 12, 14, 9, tzinfo=dt.UTC)
        rows = [
            {
                "distinct_id": f"u{u}",
                "event": e,
                "timestamp": start + dt.timedelta(days=d, minutes=u, seconds=30 * i),
            }
            for u in range(100)
            for d in range(21)
            if not (holiday and d == 11 and u % 4)  # Christmas Day: a quarter of the users
            for i, e in enumerate(("open", "view"))
        ]
        return pl.DataFrame(rows).with_columns(
            pl.lit(None, pl.String).alias(c) for c in ("uuid", "person_id", "session_id")
        )

    real, twin = prepare(export(True), CFG), prepare(export(False), CFG)
    daily = daily_active_users(real, twin, real.window)
    assert daily.height == 21 and daily["real"][11] == 25 and daily["twin"][11] == 100
    summary = dau_by_day_summary(daily)
    assert summary["worst_day"] == "2026-12-25" and summary["worst_real"] == 25
    assert summary["mean_abs_difference_share"] == pytest.approx(75 / 21 / (2025 / 21), abs=1e-3)


def test_rows_delivered_twice_are_read_once(tmp_path) -> None:  # noqa: ANN001
    from simulation_assets.core.twin.example import synthetic_events
    from simulation_assets.sinks.posthog_export import write_export
    from simulation_assets.sinks.twin_source import load_real
    from simulation_assets_tests.twin.conftest import CFG

    frame = synthetic_events(users=40, days=14, seed=5)
    once = write_export(frame, tmp_path / "once" / "export-0000.parquet", "batch-parquet")
    twice = tmp_path / "twice"
    write_export(frame, twice / "export-0000.parquet", "batch-parquet")
    write_export(
        frame.sample(n=300, seed=1), twice / "export-0001.parquet", "batch-parquet"
    )  # a batch retried
    _, a = load_real(once, None, CFG)
    _, b = load_real(twice, None, CFG)
    assert b.rows == a.rows == frame.height
    assert b.sessions["n_events"].to_list() == a.sessions["n_events"].to_list()
    # Without event uuids (a generic table) every row is an event.
    rows = pl.DataFrame(
        {"__uuid_hash": [1, 1, None, None, 2], "event": list("abcde")},
        schema_overrides={"__uuid_hash": pl.UInt64},
    )
    kept, repeats = drop_redelivered(rows)
    assert (
        repeats == 1 and kept["event"].to_list() == ["a", "c", "d", "e"] and "__uuid_hash" not in kept.columns
    )
    # Nulls beside distinct hashes are no repeats (rows kept as they were); one null alone neither.
    for hashes in ([3, None, None, 2, 1], [None, 2, 1], [5, 6]):
        rows = pl.DataFrame({"__uuid_hash": hashes, "event": list("abcde")[: len(hashes)]},
                            schema_overrides={"__uuid_hash": pl.UInt64})  # fmt: skip
        kept, repeats = drop_redelivered(rows)
        assert repeats == 0 and kept.equals(rows.drop("__uuid_hash"))


def test_the_dropped_keys_are_listed_in_one_order_whatever_the_export_s_column_order() -> None:
    from simulation_assets.core.twin.properties import listed_drops

    # A SaaS export as the UI's CSV and as a batch export dropped the same six keys, listed in two orders:
    # the two specs differed in those lines only.
    keys = ["$session_id", "$groups", "$anon_distinct_id", "$set", "$group_key", "$group_set"]
    rows = [{"key": k, "reason": "identifier or personal data", "users": 50} for k in keys]
    first, _ = listed_drops(rows, 5)
    second, _ = listed_drops(rows[::-1], 5)
    assert first == second and [r["key"] for r in first] == sorted(keys)


@pytest.mark.parametrize("shape", ["csv", "batch-jsonl"])
def test_ids_merged_by_create_alias_are_one_user(tmp_path, shape: str) -> None:  # noqa: ANN001
    """PostHog's ``$create_alias`` (``alias`` the id to merge) makes one person of two ids, as ``$identify`` does:
    read as two, a signed-up user's anonymous first visits were a user of their own (a 400-person export read as
    670 users)."""
    from simulation_assets.core.twin.example import synthetic_events
    from simulation_assets.sinks.posthog_export import write_export
    from simulation_assets.sinks.twin_source import load_real
    from simulation_assets_tests.twin.conftest import CFG

    frame = synthetic_events(users=40, days=14, seed=5)
    ids = frame["distinct_id"].unique().sort().to_list()[:10]
    # Those ten users' first three days as an anonymous id, then a $create_alias naming it.
    start = frame["timestamp"].min()
    early = pl.col("distinct_id").is_in(ids) & (pl.col("timestamp") < start + dt.timedelta(days=3))
    frame = frame.with_columns(
        pl.when(early)
        .then(pl.lit("anon-") + pl.col("distinct_id"))
        .otherwise(pl.col("distinct_id"))
        .alias("distinct_id"),
        pl.lit(None, pl.String).alias("alias"),
    )
    aliases = pl.DataFrame({"distinct_id": ids, "alias": [f"anon-{i}" for i in ids]}).with_columns(
        pl.lit("$create_alias").alias("event"),
        pl.lit(start + dt.timedelta(days=3)).cast(frame.schema["timestamp"]).alias("timestamp"),
    )
    frame = pl.concat([frame, aliases.join(frame.drop("distinct_id", "alias", "event", "timestamp").head(1), how="cross")
                       .select(frame.columns)]).sort("timestamp")  # fmt: skip
    path = write_export(frame.with_row_index("i").with_columns(pl.format("e-{}", "i").alias("uuid")).drop("i"),
                        tmp_path / f"export.{'csv' if shape == 'csv' else 'jsonl'}", shape)  # fmt: skip
    _, prepared = load_real(path, None, CFG)
    assert prepared.users.height == 40, prepared.users.height
