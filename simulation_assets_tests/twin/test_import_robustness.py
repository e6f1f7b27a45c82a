"""Exports as teams hand them over: stray clocks, a few days only, and other shapes the fit must survive or refuse."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from simulation_assets.sinks.posthog_export import ExportError
from simulation_assets.sinks.twin_source import main_span


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
