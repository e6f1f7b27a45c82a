"""Capture decoding, the events-store shape, browser plans and CLI input checks (no browser needed)."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json

import numpy as np
import polars as pl
import pytest
from starlette.testclient import TestClient

from simulation_assets.cli import main
from simulation_assets.core.hogflix.browser_events import encode_for_batch, events_frame
from simulation_assets.core.hogflix.browser_plan import browser_plans, browser_session_mask
from simulation_assets.core.hogflix.events import session_events
from simulation_assets.core.hogflix.sessions import day_sessions
from simulation_assets.core.hogflix.traffic_config import TrafficConfig
from simulation_assets.sinks.hogflix_state import HogflixSettings, TrafficReader
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.webapp.app import create_app
from simulation_assets.webapp.capture import CaptureLog, decode_capture

EVENTS = [
    {"event": "$pageview", "uuid": "019b78ff-0000-7000-8000-000000000001", "timestamp": "2026-01-01T10:29:59.900Z",
     "properties": {"distinct_id": "p_1", "$session_id": "s", "is_synthetic": True, "token": "phc_x",
                    "synthetic_persona": "p_1", "$pathname": "/"}},
    {"event": "video_rated", "uuid": "019b78ff-0000-7000-8000-000000000002", "timestamp": "2026-01-01T10:30:00.100Z",
     "properties": {"distinct_id": "p_1", "rating": 4, "is_synthetic": True, "synthetic_persona": "p_1"}},
]  # fmt: skip


def test_decode_accepts_gzip_base64_form_plain_json_and_batch_bodies():
    raw = json.dumps(EVENTS).encode()
    assert decode_capture(gzip.compress(raw), "text/plain") == EVENTS
    form = "data=" + base64.b64encode(raw).decode()
    assert decode_capture(form.encode(), "application/x-www-form-urlencoded") == EVENTS
    assert decode_capture(raw, "application/json") == EVENTS
    assert decode_capture(json.dumps({"api_key": "k", "batch": EVENTS}).encode()) == EVENTS
    assert decode_capture(json.dumps(EVENTS[0]).encode()) == [EVENTS[0]]


def test_capture_endpoint_records_events_and_rejects_garbage_with_400():
    log = CaptureLog()
    client = TestClient(create_app(log=log))
    ok = client.post("/e/?compression=gzip-js", content=gzip.compress(json.dumps(EVENTS).encode()))
    bad = client.post("/i/v0/e/", content=b"not json at all")
    flags = client.post("/flags/?v=2", json={"token": "phc_x", "distinct_id": "p_1"})
    assert (ok.status_code, bad.status_code, flags.status_code) == (200, 400, 200)
    assert flags.json()["featureFlags"] == {}
    assert [e["event"] for e in log.events] == ["$pageview", "video_rated"]
    assert (log.requests, log.rejected) == (1, 1)


def test_events_frame_keeps_columns_and_windows_by_event_time():
    frame = events_frame(EVENTS)
    assert frame["partition_key"].to_list() == ["2026-01-01-10:00", "2026-01-01-10:30"]
    assert frame["distinct_id"].to_list() == ["p_1", "p_1"]
    assert frame["rating"].to_list() == [None, 4]
    assert frame["is_synthetic"].all()
    assert frame["tier"].unique().to_list() == ["browser"]
    sent = [json.loads(x) for x in encode_for_batch(frame)]
    assert "token" not in sent[0]["properties"]  # the /batch/ body names the project once
    assert sent[1]["timestamp"] == "2026-01-01T10:30:00.100Z"


def test_pages_link_the_entry_points_and_embed_the_sdk_config():
    client = TestClient(create_app(), root_path="/hogflix")
    home = client.get("/").text
    for href in ("/hogflix/search", "/hogflix/browse/popular", "/hogflix/watchlist", "/hogflix/flixbuddy"):
        assert f'href="{href}"' in home
    assert '/hogflix/static/posthog.js"' in home
    config = json.loads(home.split('id="hogflix-config">')[1].split("</script>")[0])
    assert config["api_host"].endswith("/hogflix")
    assert client.get("/title/no-such-title").status_code == 404
    assert client.get("/browse/no-such-genre").status_code == 404
    assert "Midnight Harbor" in client.get("/watch/v0000-midnight-harbor").text


@pytest.fixture(scope="module")
def one_day():
    settings = HogflixSettings(seed=42, persona_pool=400, start_date="2026-01-01")
    reader = TrafficReader(settings, TrafficConfig(), LocalParquetStore(root_dir="/nonexistent-store"))
    personas = reader.personas(dt.date(2026, 1, 1))
    sessions = day_sessions(personas, 42, TrafficConfig())
    return sessions, session_events(sessions, 42, TrafficConfig(), "2026-01-01")


def test_browser_share_selects_a_stable_share_of_sessions(one_day):
    sessions, _ = one_day
    tenth = browser_session_mask(sessions, 0.1, 42)
    assert np.array_equal(tenth, browser_session_mask(sessions.reverse(), 0.1, 42)[::-1])
    half = browser_session_mask(sessions, 0.5, 42)
    assert (tenth <= half).all()  # a larger share keeps the smaller one's sessions
    assert 0.25 < half.mean() < 0.75
    assert not browser_session_mask(sessions, 0.0, 42).any() and browser_session_mask(sessions, 1.0, 42).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        browser_session_mask(sessions, 1.5, 42)


def test_plans_follow_the_session_model_pages_plays_and_ratings(one_day):
    sessions, events = one_day
    plans = browser_plans(sessions, events, TrafficConfig().host)
    per = events.group_by("$session_id").agg(
        (pl.col("event") == "$pageview").sum().alias("pageviews"),
        (pl.col("event") == "video_started").sum().alias("starts"),
        (pl.col("event") == "video_rated").sum().alias("ratings"),
    )
    steps = plans.group_by(pl.col("session_id").alias("$session_id")).agg(
        (pl.col("action") == "visit").sum().alias("visits"),
        (pl.col("action") == "play").sum().alias("plays"),
        (pl.col("action") == "stop").sum().alias("stops"),
        (pl.col("action") == "rate").sum().alias("rates"),
    )
    both = per.join(steps, on="$session_id")
    assert both.height == sessions.height
    assert (both["visits"] == both["pageviews"]).all()
    assert (both["plays"] == both["starts"]).all() and (both["stops"] == both["starts"]).all()
    assert (both["rates"] == both["ratings"]).all()
    first = plans.filter(pl.col("step") == 0).join(
        sessions.select("session_id", "entry_point", "is_signup"), on="session_id"
    )
    entry_paths = {"homepage": "/", "search": "/search", "category": "/browse/", "watchlist": "/watchlist",
                   "flixbuddy": "/flixbuddy"}  # fmt: skip
    regular = first.filter(~pl.col("is_signup"))
    assert all(
        p.startswith(entry_paths[e])
        for p, e in zip(regular["path"].to_list(), regular["entry_point"].to_list())
    )
    assert (plans.group_by("session_id").agg(pl.col("at_ms").diff().min())["at_ms"].fill_null(0) >= 0).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--browser-share", "1.5"], "--browser-share must be a number between 0 and 1"),
        (["--browser-share", "0.1", "--site-url", "ftp://example"], "--site-url must be an http(s) URL"),
        (["--browser-share", "0.1", "--site-url", "http://127.0.0.1:9/"], "is unreachable"),
    ],
)
def test_bad_browser_options_exit_2_before_anything_runs(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["hogflix", "--days", "1", *args, "--output", str(out)]) == 2
    assert message in capsys.readouterr().out
    assert not out.exists()


def _sdk_events(n: int) -> list[dict]:
    session = "019b78ff-0000-7abc-8000-00000000beef"
    return [
        {"event": "$pageview", "uuid": f"019b78ff-{i:04x}-7000-8000-000000000001",
         "timestamp": f"2026-01-01T10:{i % 60:02d}:00.000Z",
         "properties": {"distinct_id": "p_1", "$session_id": session, "token": "phc_local", "is_synthetic": True}}
        for i in range(n)
    ]  # fmt: skip


def test_forward_delivers_browser_events_to_posthog_batch_with_sdk_uuids(monkeypatch):
    from simulation_assets.sinks.browser_events import forward
    from simulation_assets.sinks.posthog_events import PostHogEvents
    from simulation_assets_tests.hogflix_traffic.servers import PostHogServer

    monkeypatch.setenv("PH_PROJECT_API_KEY", "phc_test_project")
    frame = events_frame(_sdk_events(250))
    with PostHogServer(failure_rate=0.3) as server:
        sink = PostHogEvents(
            mode="posthog", host=server.url, api_key="phc_test_project", batch_size=100, backoff_seconds=0.01
        )
        report = forward(sink, frame)
    assert server.problems == []
    assert sorted(e["uuid"] for e in server.accepted) == sorted(frame["uuid"].to_list())
    assert all("token" not in e["properties"] and e["properties"]["is_synthetic"] for e in server.accepted)
    assert (report.events, report.batches) == (250, 3)
    assert report.retries == server.failures_injected > 0
    parquet_only = forward(PostHogEvents(mode="parquet"), frame)
    assert parquet_only.events == 0


def test_served_app_merges_captured_events_into_the_events_store():
    from simulation_assets.commands.hogflix_browser import served_web_app

    app = served_web_app()
    client = TestClient(app)
    body = gzip.compress(json.dumps(_sdk_events(3)).encode())
    assert client.post("/e/?compression=gzip-js", content=body).status_code == 200
    assert client.post("/e/?compression=gzip-js", content=body).status_code == 200  # a retry: no duplicates
    store = app.state.events_store
    stored = store.read("2026-01-01-10:00")
    assert stored.height == 3 and stored["uuid"].n_unique() == 3
    assert stored["is_synthetic"].all()
    assert "/browser_events" in store.dataset


def test_recordings_are_switched_on_by_env_and_counted_at_s(monkeypatch):
    from simulation_assets.webapp.app import WebAppConfig

    assert WebAppConfig().session_recording is False
    monkeypatch.setenv("HOGFLIX_WEB_RECORDINGS", "1")
    config = WebAppConfig()
    log = CaptureLog()
    client = TestClient(create_app(config, log))
    remote = client.get("/array/phc_x/config").json()
    assert config.session_recording and remote["sessionRecording"] == {"endpoint": "/s/"}
    assert client.post("/s/?compression=gzip-js", content=gzip.compress(b"[]")).status_code == 200
    assert (log.recordings, len(log.events)) == (1, 0)
