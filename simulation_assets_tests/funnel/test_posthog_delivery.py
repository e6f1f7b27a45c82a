"""Funnel events reach a PostHog-compatible /batch/ endpoint: all of them, once, stitched, under injected faults."""

from __future__ import annotations

import datetime as dt
import uuid

import dagster as dg
import polars as pl
import pytest

from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.identity import check_stitching
from simulation_assets.core.funnel.posthog import property_columns, to_posthog
from simulation_assets.defs.funnel import build_defs
from simulation_assets.sinks.funnel_store import FunnelSettings
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.meta_capi import MetaCapiSink
from simulation_assets.sinks.posthog_events import PostHogEvents
from simulation_assets_tests.hogflix_traffic.servers import PostHogServer


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort_events(dt.date(2026, 1, 1), CohortConfig(), seed=42, impressions=150_000)


def test_posthog_shape_stitches_identity_at_login_with_identify_events(cohort) -> None:
    frame = to_posthog(cohort.events)
    logins = cohort.events.filter(pl.col("event") == "login_success")
    identify = frame.filter(pl.col("event") == "$identify")
    assert identify.height == logins.height > 0
    assert set(zip(identify["distinct_id"], identify["$anon_distinct_id"])) == set(
        zip(logins["user_id"], logins["distinct_id"])
    )
    assert frame.height == cohort.events.height + identify.height
    assert frame["uuid"].n_unique() == frame.height
    assert all(uuid.UUID(u).version == 7 for u in frame["uuid"].sample(500, seed=1))
    # from login on, every event of a person is sent as their user id; before it, as the anonymous id
    login_at = identify.select(pl.col("distinct_id").alias("user"), pl.col("timestamp").alias("login"))
    mine = frame.filter(pl.col("user_id").is_not_null()).join(login_at, left_on="user_id", right_on="user")
    assert (mine["distinct_id"] == mine["user_id"]).all() and (mine["timestamp"] >= mine["login"]).all()
    before = frame.filter(pl.col("user_id").is_null() & (pl.col("event") != "$identify"))
    assert before["distinct_id"].str.starts_with("anon_").all()
    # the PostHog frame, read back as canonical ids, still follows the plan's stitching rule
    assert check_stitching(cohort.events).ok


def test_session_ids_are_uuidv7_no_later_than_the_sessions_first_event_and_sessions_stay_under_a_day(
    cohort,
) -> None:
    frame = to_posthog(cohort.events)
    sessions = frame.group_by("$session_id").agg(
        pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last")
    )
    for sid, first, last in sessions.iter_rows():
        u = uuid.UUID(sid)
        assert u.version == 7 and (u.int >> 80) <= int(first.timestamp() * 1000)
        assert last - first < dt.timedelta(hours=24)
    web = frame.filter((pl.col("source") == "web") & pl.col("page_path").is_not_null())
    assert (web["$current_url"] == "https://app.blanklogo.example" + web["page_path"]).all()
    assert (web["$host"] == "app.blanklogo.example").all()


def test_every_event_is_delivered_once_under_injected_429_and_503(cohort, tmp_path) -> None:
    frame = to_posthog(cohort.events)
    with PostHogServer(failure_rate=0.3, seed=11) as server:
        sink = PostHogEvents(
            mode="posthog",
            host=server.url,
            api_key="phc_test",
            batch_size=500,
            backoff_seconds=0.001,
            max_retries=8,
        )
        report = sink.deliver(
            frame, now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC), property_columns=property_columns(frame)
        )
    assert server.problems == []
    assert server.failures_injected > 3
    assert report.events == frame.height and report.retries == server.failures_injected
    accepted = [e["uuid"] for e in server.accepted]
    assert len(accepted) == len(set(accepted)) == frame.height
    assert set(accepted) == set(frame["uuid"])
    assert all(server.historical_flags)  # January events sent in December: a backfill
    sample = next(e for e in server.accepted if e["event"] == "purchase_completed")
    assert {"order_id", "price", "$session_id", "utm_campaign", "ltv_to_date"} <= set(sample["properties"])
    pricing = next(e for e in server.accepted if e["event"] == "pricing_view")
    assert pricing["properties"]["$current_url"] == "https://app.blanklogo.example/pricing"
    assert sample["properties"]["utm_campaign"].startswith("BlankLogo | ")


def test_the_delivery_asset_sends_what_has_happened_and_keeps_the_rest_for_later(tmp_path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    day = (today - dt.timedelta(days=20)).isoformat()
    defs = build_defs(day, (today + dt.timedelta(days=1)).isoformat())
    assets = {a.key.to_user_string(): a for a in defs.assets or []}
    with PostHogServer(failure_rate=0.1, seed=3) as server:
        resources = {
            "funnel_settings": FunnelSettings(seed=9, impressions_per_day=60_000),
            "store": LocalParquetStore(),
            "funnel_capi": MetaCapiSink(),
            "funnel_posthog": PostHogEvents(
                mode="posthog", host=server.url, api_key="phc_test", backoff_seconds=0.001
            ),
        }
        result = dg.materialize(
            [assets["funnel_cohort_events"], assets["funnel_posthog_events"]],
            resources=resources,
            instance=dg.DagsterInstance.ephemeral(),
            partition_key=day,
        )
    meta = result.asset_materializations_for_node("funnel_posthog_events")[0].metadata
    delivered, waiting = meta["delivered_in_run"].value, meta["not_yet_due_in_run"].value
    assert delivered == len(server.accepted) > 0 and waiting > 0  # renewals and returns 20+ days out
    assert delivered + waiting == meta["events_in_run"].value == meta["dagster/row_count"].value
    now = dt.datetime.now(dt.UTC)
    assert (
        max(dt.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in server.accepted) <= now
    )
    assert server.problems == []
