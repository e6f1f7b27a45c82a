"""The dashboard's JSON API and its background ticker, in-process (the browser test drives the page)."""

from __future__ import annotations

import datetime as dt
import time

import polars as pl
from starlette.testclient import TestClient

from simulation_assets.activity_dashboard.app import create_app
from simulation_assets.activity_dashboard.ticker import Ticker
from simulation_assets.core.activity.config import ActivityConfig
from simulation_assets.sinks.activity_backends import DuckDBActivityStore
from simulation_assets_tests.activity.helpers import AT

CFG = ActivityConfig()


def test_state_reports_the_store_and_the_monitor_button_runs_one_check(tmp_path):
    store = DuckDBActivityStore(duckdb_path=str(tmp_path / "d.duckdb"))
    for tick in range(1, 4):
        store.apply_tick(CFG, 42, AT + dt.timedelta(seconds=30 * tick))
    with TestClient(create_app(store, CFG, 42)) as client:
        page = client.get("/")
        assert (
            page.status_code == 200 and "Run monitor check" in page.text and "__REFRESH_MS__" not in page.text
        )
        state = client.get("/api/state").json()
        customers = store.customers()
        assert state["simulation"]["tick"] == 3
        assert state["metrics"]["customers"] == customers.height
        assert state["metrics"]["total_api_calls"] == int(customers["total_api_calls"].sum())
        assert state["metrics"]["open_interventions"] == 0  # no check has run yet
        assert [p["tick"] for p in state["series"]] == [0, 1, 2, 3]
        assert {e["tick"] for e in state["events"]} == {1, 2, 3}

        check = client.post("/api/monitor").json()
        assert check["check_no"] == 1 and check["tick"] == 3 and check["opened"] > 0
        assert check["open_after"] == check["opened"] == len(check["opened_rows"])
        again = client.post("/api/monitor").json()
        assert (again["check_no"], again["opened"], again["closed"]) == (2, 0, 0)
        state = client.get("/api/state").json()
        assert state["metrics"]["open_interventions"] == check["opened"]
        assert state["metrics"]["monitor_checks"] == 2
        flagged = [c for c in state["customers"] if c["open_interventions"]]
        assert sum(len(c["open_interventions"]) for c in flagged) == check["opened"]
        assert store.monitor_checks()["source"].to_list() == ["dashboard", "dashboard"]
        assert client.get("/healthz").json() == {"ok": True, "tick": 3}


def test_the_ticker_ticks_on_schedule_keeps_going_after_a_failure_and_stops():
    calls: list[float] = []

    def tick() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise RuntimeError("database unreachable")

    ticker = Ticker(tick, interval_seconds=0.05, max_ticks=3).start()
    deadline = time.monotonic() + 10
    while ticker.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(calls) == 4 and ticker.ticks_done == 3 and ticker.failures == 1
    assert min(b - a for a, b in zip(calls, calls[1:])) >= 0.045
    status = ticker.status()
    assert status["running"] is False and status["last_error"] is None
    assert pl.Series(calls).is_sorted()
