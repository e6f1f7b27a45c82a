"""The event right before a sign-up's ``$identify`` (its sign-up page) comes with it in the twin, not at random."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from simulation_assets.core.twin.config import FitConfig
from simulation_assets.core.twin.example import synthetic_events
from simulation_assets.core.twin.fit import fit
from simulation_assets.core.twin.generate import Generator
from simulation_assets.sinks.posthog_export import write_export
from simulation_assets.sinks.twin_source import load_for_fit

CFG = FitConfig(holdout_share=0.1)


def test_the_sign_up_page_before_identify_is_written_with_it(tmp_path: Path) -> None:
    # The example product's trialists identify in their first session; here a page view (the sign-up page)
    # comes a second before each $identify and never anywhere else.
    frame = synthetic_events(users=300, days=21, seed=5)
    page = frame.filter(pl.col("event") == "$identify").with_columns(
        pl.lit("$pageview").alias("event"),
        (pl.col("timestamp") - dt.timedelta(seconds=1)).alias("timestamp"),
        pl.lit(None, pl.String).alias("$anon_distinct_id"),
        (pl.col("uuid") + "-page").alias("uuid"),
    )
    path = write_export(pl.concat([frame, page]).sort("timestamp"), tmp_path / "export.jsonl", "batch-jsonl")
    loaded = load_for_fit(path, None, CFG)
    spec = fit(loaded.prepared, loaded.property_sample, loaded.key_stats, CFG, path.name)
    assert spec.document.identity["lead_in"] == {"$pageview": 1.0}
    spec = spec.with_generation(users=600, days=14)
    gen = Generator(spec)
    events = pl.concat([gen.day(spec.document.generation.start + dt.timedelta(days=d)) for d in range(14)])
    events = events.with_columns(pl.col("event").shift(-1).over("$session_id").alias("next"))
    pages = events.filter(pl.col("event") == "$pageview")
    identifies = events.filter(pl.col("next") == "$identify")
    # Every twin identify follows its page view, and page views come before an identify only (the chain drew
    # them in sessions that identify no one, and the $identify after the spec's position, whatever came before).
    assert identifies.height > 20 and (identifies["event"] == "$pageview").all()
    assert float((pages["next"] == "$identify").mean()) > 0.95
    ident = events.filter(pl.col("event") == "$identify")
    assert ident["distinct_id"].n_unique() == ident.height  # one each
    before = events.filter(pl.col("next") == "$identify")
    assert (before["distinct_id"] == before["$device_id"]).all()  # the page view is still anonymous
