"""Personas in headless Chromium against the reference web app on loopback: what posthog-js sends."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from simulation_assets.core.hogflix.browser_events import events_frame
from simulation_assets.core.hogflix.catalog import catalog
from simulation_assets.core.hogflix.traffic_config import TrafficConfig
from simulation_assets.defs.hogflix import hogflix_resources
from simulation_assets.defs.hogflix_browser import HogflixBrowserTier, browser_assets, select_browser_sessions
from simulation_assets.defs.partitions import half_hourly_partitions as half_hourly
from simulation_assets.sinks.browser_bot import BrowserBot, BrowserSession
from simulation_assets.sinks.hogflix_state import HogflixSettings, TrafficReader
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.target.server import LocalTarget, build_app
from simulation_assets.webapp.app import WebAppConfig, create_app
from simulation_assets.webapp.capture import CaptureLog

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("hogflix_browser")]

PERSONA = "p_00042_1767225600000"
FAST = {"dwell_scale": 0.0, "min_step_seconds": 0.02, "settle_seconds": 0.5, "concurrency": 2}


@pytest.fixture
def site() -> Iterator[tuple[str, CaptureLog]]:
    log = CaptureLog()
    with LocalTarget(app=build_app({"/hogflix": lambda: create_app(WebAppConfig(), log)})) as target:
        yield target.base_url + "/hogflix", log


def _persona(session: str, start: dt.datetime) -> dict:
    return {
        "session_id": session, "session_start_at": start, "persona_number": 42, "distinct_id": PERSONA,
        "plan": "Premium", "state": "ACTIVE", "activity_pattern": "DAILY", "entry_point": "homepage",
        "source": "direct", "is_signup": False, "device_type": "Desktop", "os": "Windows", "browser": "Chrome",
        "screen_width": 1920, "screen_height": 1080, "country": "US",
    }  # fmt: skip


def _uuid7_ms(value: str) -> int:
    return uuid.UUID(value).int >> 80


def test_posthog_js_events_reach_local_capture_as_the_persona_across_two_sessions(site, tmp_path: Path):
    base, log = site
    video = catalog(240).sort("popularity", descending=True).row(0, named=True)  # first card on home
    seconds = video["minutes"] * 60
    at = lambda s: int(s * 1000)  # noqa: E731
    first = [
        {"at_ms": 0, "action": "visit", "path": "/"},
        {"at_ms": at(20), "action": "visit", "path": f"/title/{video['slug']}"},  # a click on the card
        {"at_ms": at(30), "action": "watchlist", "path": None},
        {"at_ms": at(40), "action": "visit", "path": f"/watch/{video['slug']}"},
        {"at_ms": at(42), "action": "play", "path": None},
        {"at_ms": at(42 + 0.25 * seconds + 1.5), "action": "tick", "path": None},
        {"at_ms": at(42 + 0.50 * seconds + 1.5), "action": "tick", "path": None},
        {"at_ms": at(42 + 0.60 * seconds), "action": "stop", "path": None},
        {"at_ms": at(45 + 0.60 * seconds), "action": "rate", "path": None, "value": 4.0},
        {"at_ms": at(60 + 0.60 * seconds), "action": "visit", "path": "/flixbuddy"},
        {"at_ms": at(70 + 0.60 * seconds), "action": "ask", "path": None, "text": "Show me sci-fi movies"},
    ]
    second = [
        {"at_ms": 0, "action": "visit", "path": "/search?q=comedy"},
        {"at_ms": at(15), "action": "visit", "path": "/watchlist"},
    ]
    day1 = dt.datetime(2026, 1, 5, 20, 0, 7, tzinfo=dt.UTC)
    day2 = dt.datetime(2026, 1, 6, 21, 10, tzinfo=dt.UTC)
    bot = BrowserBot(**FAST)
    state, shots = tmp_path / "state", tmp_path / "shots"
    r1 = bot.run(base, [BrowserSession(_persona("model-s1", day1), first)], state, shots)
    r2 = bot.run(base, [BrowserSession(_persona("model-s2", day2), second)], state, shots)
    s1, s2 = r1.sessions[0], r2.sessions[0]
    assert s1.ok and s2.ok, (s1.error, s2.error)

    events = events_frame(log.snapshot())
    one = events.filter(pl.col("synthetic_session") == "model-s1")
    two = events.filter(pl.col("synthetic_session") == "model-s2")
    names = set(one["event"])
    assert {"$pageview", "$pageleave", "$autocapture", "video_opened", "watchlist_added", "video_started",
            "video_progress", "video_rated", "flixbuddy_interaction"} <= names  # fmt: skip
    assert events.height == one.height + two.height  # every event carries the marker's session
    # Identity: the persona's distinct id on every event of both sessions, one device.
    assert set(events["distinct_id"]) == {PERSONA}
    assert events["is_synthetic"].all() and events["is_synthetic"].null_count() == 0
    assert one["$device_id"].n_unique() == 1 and set(one["$device_id"]) == set(two["$device_id"])
    assert not s1.returning and s2.returning and s2.previous_device_id == s2.sdk_device_id
    assert s2.sdk_distinct_id == PERSONA
    # Sessions: UUIDv7, started by the SDK at the model's time, a new one the next day.
    for part, start in ((one, day1), (two, day2)):
        ids = part["$session_id"].unique().to_list()
        assert len(ids) == 1 and uuid.UUID(ids[0]).version == 7
        first_ms = int(part["timestamp"].min().timestamp() * 1000)
        # posthog-js stamps an event before it allocates the session it belongs to (tens of ms).
        assert abs(_uuid7_ms(ids[0]) - first_ms) < 1_000
        assert abs(first_ms - start.timestamp() * 1000) < 30_000
    assert one["$session_id"][0] != two["$session_id"][0]
    # The fake clock replays the model's timing: 25 % and 50 % of the video after pressing play.
    started = one.filter(pl.col("event") == "video_started")["timestamp"][0]
    progress = one.filter(pl.col("event") == "video_progress").sort("timestamp", "progress_percent")
    # Milestones are the traffic tier's.
    assert progress["progress_percent"].to_list() == [25.0, 50.0]
    lag = [(t - started).total_seconds() for t in progress["timestamp"]]
    assert abs(lag[0] - 0.25 * seconds) < 4 and abs(lag[1] - 0.50 * seconds) < 4
    assert one.filter(pl.col("event") == "video_rated")["rating"].to_list() == [4]
    leave = one.filter(pl.col("event") == "$pageleave")
    assert leave["$prev_pageview_duration"].drop_nulls().len() > 0
    assert events["$lib"].unique().to_list() == ["web"]
    assert two.filter(pl.col("event") == "$pageview")["$pathname"].to_list()[:2] == [
        "/hogflix/search",
        "/hogflix/watchlist",
    ]


def test_browser_asset_plays_a_window_and_stores_events_beside_the_server_tier(tmp_path: Path):
    settings = HogflixSettings(seed=42, persona_pool=400, start_date="2026-01-01")
    store = LocalParquetStore()
    reader = TrafficReader(settings, TrafficConfig(), store)
    # The quietest window of the first day that has a session: its browser run stays short.
    keys = [f"2026-01-01-{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)]
    sizes = {}
    for key in keys:
        items = select_browser_sessions(reader.window_sessions(key), reader.stored_or_events(key), 1.0, 42,
                                        TrafficConfig().host)  # fmt: skip
        if items:
            sizes[key] = sum(len(i.steps) for i in items)
    key = min(sizes, key=sizes.get)
    [asset] = browser_assets(half_hourly("2026-01-01", "2026-01-02"))
    resources = {
        **hogflix_resources(),
        "hogflix_settings": settings,
        "store": store,
        "hogflix_browser": BrowserBot(**FAST),
        "hogflix_browser_tier": HogflixBrowserTier(share=1.0, site_url=""),
    }
    result = dg.materialize([asset], partition_key=key, resources=resources)
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"every_browser_session_produced_events": True, "persona_identities_persisted": True}
    stored = store.read(settings.dataset("browser_events"), key)
    sessions = reader.window_sessions(key)
    assert stored.height > 0 and set(stored["partition_key"]) == {key}
    assert set(stored["synthetic_session"]) == set(sessions["session_id"])
    assert set(stored["persona_distinct_id"]) <= set(sessions["distinct_id"])
    assert stored.filter(pl.col("event") == "$pageview").height >= sessions.height


def test_pool_bounds_open_contexts_and_a_failed_step_leaves_a_screenshot(site, tmp_path: Path):
    base, log = site
    start = dt.datetime(2026, 1, 7, 9, 0, tzinfo=dt.UTC)
    items = []
    for n in range(4):
        persona = _persona(f"pool-{n}", start + dt.timedelta(minutes=n)) | {"distinct_id": f"p_pool_{n}"}
        items.append(BrowserSession(persona, [{"at_ms": 0, "action": "visit", "path": "/watchlist"}]))
    broken = _persona("broken", start) | {"distinct_id": "p_broken"}
    # The home page has no player: pressing Play there cannot work.
    items.append(BrowserSession(broken, [{"at_ms": 0, "action": "visit", "path": "/"},
                                         {"at_ms": 1000, "action": "play", "path": None}]))  # fmt: skip
    # The broken step fails when Playwright gives up waiting for the button: at the element limit, not
    # the page-load limit, which must stay long enough for a page to load on a machine under heavy load
    # (a short one failed the working sessions under load).
    bot = BrowserBot(
        **(FAST | {"concurrency": 2, "step_timeout_seconds": 30.0, "element_timeout_seconds": 2.0})
    )
    report = bot.run(base, items, tmp_path / "state", tmp_path / "shots")
    by_id = {s.session_id: s for s in report.sessions}
    assert report.max_concurrent == 2
    assert all(by_id[f"pool-{n}"].ok for n in range(4)), [s.error for s in report.sessions]
    failed = by_id["broken"]
    assert not failed.ok and failed.error.startswith("StepError: step 1 play on http")
    assert Path(failed.screenshot).exists() and Path(failed.screenshot).stat().st_size > 1000
    # the missing button was waited for at the element limit (2 s), not at the page-load limit (30 s)
    assert "Timeout 2000ms exceeded" in failed.error and failed.real_seconds < 30, failed
    seen = set(events_frame(log.snapshot())["synthetic_session"])
    assert {f"pool-{n}" for n in range(4)} <= seen
