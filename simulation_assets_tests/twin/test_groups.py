"""Groups and what ``$identify`` sets: fitted from an export without copying a key or a value, and given to the
twin's rows as PostHog's ingestion reads them (``$groups`` on events, ``$group_type`` and ``$group_key`` on
``$groupidentify``, ``$set`` on ``$identify``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.twin.config import FitConfig
from simulation_assets.core.twin.example import synthetic_events
from simulation_assets.core.twin.fit import fit
from simulation_assets.core.twin.generate import Generator
from simulation_assets.core.twin.groups import _size_buckets
from simulation_assets.sinks.posthog_export import write_export
from simulation_assets.sinks.twin_source import load_for_fit

CFG = FitConfig(holdout_share=0.1)


def _export(tmp_path: Path) -> Path:
    """A small product of 40 companies of 1-9 people: every row names the user's company in ``$groups``, each
    user's first event of the day is a ``$groupidentify`` of it, and ``$identify`` sets a plan and an e-mail."""
    frame = synthetic_events(users=300, days=21, seed=5)
    user = pl.col("distinct_id").str.extract(r"(\d+)$").cast(pl.Int64)
    company = pl.format("acme-{}", (user * 7 + user // 9) % 40)  # sizes 1-9 around a mean of 7.5
    first_today = pl.col("timestamp").rank("ordinal").over(user, pl.col("timestamp").dt.date()) == 1
    frame = frame.with_columns(
        pl.when(first_today & (pl.col("event") != "$identify"))
        .then(pl.lit("$groupidentify"))
        .otherwise(pl.col("event"))
        .alias("event"),
    )
    groupidentify = pl.col("event") == "$groupidentify"
    identify = pl.col("event") == "$identify"
    plan = pl.when(user % 4 == 0).then(pl.lit("pro")).otherwise(pl.lit("free"))
    frame = frame.with_columns(
        pl.struct(company.alias("company")).alias("$groups"),
        pl.when(groupidentify).then(pl.lit("company")).alias("$group_type"),
        pl.when(groupidentify).then(company).alias("$group_key"),
        pl.when(identify)
        .then(pl.struct(plan.alias("plan"), pl.format("p{}@acme.example", user).alias("email")))
        .alias("$set"),
    )
    return write_export(frame, tmp_path / "export.jsonl", "batch-jsonl")


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, pl.DataFrame]:
    path = _export(tmp_path_factory.mktemp("groups"))
    loaded = load_for_fit(path, None, CFG)
    spec = fit(loaded.prepared, loaded.property_sample, loaded.key_stats, CFG, path.name)
    spec = spec.with_generation(users=600, days=7)
    gen = Generator(spec)
    start = spec.document.generation.start
    events = pl.concat([gen.day(start + dt.timedelta(days=d)) for d in range(7)], how="diagonal_relaxed")
    return spec.document.identity, events


def test_groupidentify_rows_name_the_group_their_user_s_rows_carry(twin: tuple[dict, pl.DataFrame]) -> None:
    _, events = twin
    rows = events.filter(pl.col("event") == "$groupidentify")
    assert rows.height > 50 and rows["$group_type"].drop_nulls().unique().to_list() == ["company"]
    assert rows["$group_key"].null_count() == 0
    named = events.filter(pl.col("$groups").is_not_null()).select(
        "user_number", pl.col("$groups").struct.field("company").alias("key")
    )
    assert named.group_by("user_number").agg(pl.col("key").n_unique())["key"].max() == 1  # one company each
    joined = rows.join(named.unique(), on="user_number", how="inner")
    assert joined.height > 40 and (joined["$group_key"] == joined["key"]).all()
    assert not any(k.startswith("acme") for k in named["key"].unique().to_list())  # keys are the twin's own


def test_users_per_group_and_the_rows_carrying_groups_are_the_export_s(
    twin: tuple[dict, pl.DataFrame],
) -> None:
    identity, events = twin
    (company,) = identity["groups"]["types"]
    assert company["type"] == "company" and min(company["member_share"]) > 0.95
    assert 0.95 <= identity["groups"]["event_share"]["report_viewed"] <= 1.0
    named = events.filter(pl.col("$groups").is_not_null())
    per_group = named.group_by(pl.col("$groups").struct.field("company")).agg(
        pl.col("user_number").n_unique()
    )
    # The export's 300 users in 40 companies (7.5 each); the twin's 600 users, of whom a few stay anonymous.
    assert 5.0 <= per_group["user_number"].mean() <= 10.0
    identified = events.filter(pl.col("distinct_id") != pl.col("$device_id"))
    assert named.height >= 0.9 * identified.height


def test_identify_rows_set_the_export_s_person_properties_but_no_address(
    twin: tuple[dict, pl.DataFrame],
) -> None:
    identity, events = twin
    assert set(identity["set"]["$set"]["keys"]) == {"plan"}  # the e-mail is never written down
    rows = events.filter(pl.col("event") == "$identify")
    plans = rows["$set"].struct.field("plan")
    assert rows.height > 20 and plans.null_count() == 0
    assert 0.1 <= float((plans == "pro").mean()) <= 0.45  # a quarter of the export's users
    assert "email" not in rows["$set"].struct.fields


def test_a_sampled_group_stands_for_the_users_of_the_unsampled_share() -> None:
    # Groups of 4 sampled at a half show 2 sampled users each (on average): they stand for groups of 4.
    buckets = _size_buckets(np.full(50, 2), f=0.5, k=5)
    assert buckets == [[4, 5, 1.0]]
    # A size seen for fewer than k groups is counted in the nearest kept size below it.
    buckets = _size_buckets(np.r_[np.full(20, 3), [40, 41]], f=1.0, k=5)
    assert buckets == [[3, 4, 1.0]]
