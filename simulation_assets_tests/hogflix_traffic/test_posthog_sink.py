"""Events reach a PostHog-compatible /batch/ endpoint completely, once each, even when it fails 10 % of calls."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from simulation_assets.sinks.posthog_events import PostHogDeliveryError, PostHogEvents, encode_events
from simulation_assets_tests.hogflix_traffic.servers import PostHogServer


def _sink(url: str, **kw: object) -> PostHogEvents:
    kw = {"batch_size": 250, **kw}
    return PostHogEvents(
        mode="posthog",
        host=url,
        api_key="phc_test_project_key",
        backoff_seconds=0.01,
        max_backoff_seconds=0.05,
        **kw,
    )


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PH_PROJECT_API_KEY", "phc_test_project_key")


def test_injected_429_and_503_lose_and_duplicate_nothing(day_traffic) -> None:  # noqa: ANN001
    _, _, events = day_traffic
    with PostHogServer(failure_rate=0.10) as server:
        report = _sink(server.url).deliver(events)
    uuids = [e["uuid"] for e in server.accepted]
    assert server.failures_injected > 0 and report.retries == server.failures_injected
    assert len(uuids) == events.height == report.events
    assert set(uuids) == set(events["uuid"].to_list())
    assert server.problems == []
    assert server.gzip_requests == report.batches == -(-events.height // 250)
    # March 2026 is months before "now": every batch is a historical migration.
    assert all(server.historical_flags)


def test_parallel_workers_deliver_every_event_once_in_whole_batches(day_traffic) -> None:  # noqa: ANN001
    _, _, events = day_traffic
    doubled = pl.concat([events, events.with_columns(pl.col("uuid").str.slice(0, 30) + pl.lit("ffffff"))])
    with PostHogServer(failure_rate=0.10, seed=3) as server:
        report = _sink(server.url, concurrency=3, batch_size=1500).deliver(doubled)
    uuids = [e["uuid"] for e in server.accepted]
    assert len(uuids) == len(set(uuids)) == doubled.height == report.events
    assert set(uuids) == set(doubled["uuid"].to_list())
    assert report.batches == server.gzip_requests == -(-doubled.height // 1500)
    assert server.problems == [] and report.retries == server.failures_injected


def test_payload_is_what_posthog_capture_accepts(day_traffic) -> None:  # noqa: ANN001
    _, sessions, events = day_traffic
    signup = sessions.filter(pl.col("is_signup"))["session_id"][0]
    sample = events.filter(pl.col("$session_id") == signup)
    with PostHogServer() as server:
        _sink(server.url, historical_migration="never").deliver(sample)
    by_event = {e["event"]: e for e in server.accepted}
    identify = by_event["$identify"]
    assert identify["properties"]["$anon_distinct_id"] != identify["distinct_id"]
    assert identify["properties"]["$set"]["email"].endswith("@hogflix-synthetic.test")
    pageview = by_event["$pageview"]["properties"]
    for key in ("$current_url", "$host", "$pathname", "$session_id", "$device_id", "$lib", "state", "plan"):
        assert key in pageview
    assert pageview["is_synthetic"] is True
    assert "progress_percent" not in pageview  # columns that are null for an event name are left out
    assert server.historical_flags == [False]


def test_timestamps_more_than_23_hours_ahead_are_refused_before_sending(day_traffic) -> None:  # noqa: ANN001
    _, _, events = day_traffic
    future = events.head(10).with_columns(
        pl.lit(dt.datetime.now(dt.UTC) + dt.timedelta(hours=30))
        .cast(pl.Datetime("ms", "UTC"))
        .alias("timestamp")
    )
    with PostHogServer() as server:
        with pytest.raises(PostHogDeliveryError, match="23"):
            _sink(server.url).deliver(future)
    assert server.requests == 0


def test_a_refused_batch_fails_loudly_instead_of_dropping(day_traffic) -> None:  # noqa: ANN001
    _, _, events = day_traffic
    with PostHogServer(always_fail=400) as server:
        with pytest.raises(PostHogDeliveryError, match="400"):
            _sink(server.url).deliver(events.head(5))
        assert server.requests == 1  # 4xx other than 408/429 is not retried
    with PostHogServer(always_fail=503) as server:
        with pytest.raises(PostHogDeliveryError, match="after 3 attempts"):
            _sink(server.url, max_retries=2).deliver(events.head(5))
        assert server.requests == 3


def test_parquet_mode_sends_nothing_and_posthog_mode_needs_the_key(
    monkeypatch: pytest.MonkeyPatch, day_traffic
) -> None:  # noqa: ANN001
    _, _, events = day_traffic
    assert PostHogEvents(mode="parquet").deliver(events).events == 0
    monkeypatch.delenv("PH_PROJECT_API_KEY")
    with pytest.raises(ValueError, match="PH_PROJECT_API_KEY"):
        PostHogEvents(mode="posthog", host="http://127.0.0.1:9").deliver(events)
    assert len(encode_events(events.head(3))) == 3
