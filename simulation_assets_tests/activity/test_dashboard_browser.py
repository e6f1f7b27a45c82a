"""The live dashboard in Debian's headless chromium: start it with the CLI, watch ticks land, press the button."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from simulation_assets.sinks.browser_bot import CHROMIUM_ARGS
from simulation_assets_tests.postgres_cluster import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def dashboard(tmp_path):  # noqa: ANN201
    """Serve ``simulate activity --dashboard`` on a loopback port, ticking every second; yield its URL."""
    port = free_port()
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulation_assets.cli", "activity", "--dashboard", "--seed", "42"]
        + ["--host", "127.0.0.1", "--port", str(port), "--interval", "1", "--max-ticks", "40"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dashboard did not start: {(tmp_path / 'dashboard.log').read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.mark.browser
@pytest.mark.timeout(150)
def test_dashboard_shows_ticks_customers_and_interventions_and_runs_a_monitor_check(dashboard):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/install_system_deps.sh"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(dashboard)
            page.wait_for_function(
                "Number(document.querySelector('[data-testid=tick]').textContent) >= 2", timeout=60_000
            )
            seen = page.evaluate(
                """() => ({
                  tick: Number(document.querySelector('[data-testid=tick]').textContent),
                  customers: Number(document.querySelector('[data-testid=metric-customers]').textContent),
                  customerRows: document.querySelectorAll('[data-testid=customers-table] tbody tr').length,
                  open: Number(document.querySelector('[data-testid=metric-open]').textContent),
                  openRows: document.querySelectorAll('[data-testid=open-interventions] tbody tr td.num').length,
                  closedRows: document.querySelectorAll('[data-testid=closed-interventions] tbody tr td.num').length,
                  closed: Number(document.querySelector('[data-testid=metric-closed]').textContent),
                  feed: document.querySelectorAll('[data-testid=activity-feed] div .tick').length,
                  bars: document.querySelectorAll('#chart rect').length,
                })"""
            )
            assert seen["customers"] >= 12 and seen["customerRows"] == seen["customers"]
            assert seen["open"] > 0 and seen["openRows"] == seen["open"]
            assert seen["closedRows"] == min(seen["closed"], 25)
            assert seen["feed"] > 0 and seen["bars"] == seen["tick"] + 1
            server = httpx.get(f"{dashboard}/api/state", timeout=10).json()
            assert (
                server["simulation"]["tick"] >= seen["tick"]
                and server["metrics"]["customers"] >= seen["customers"]
            )
            assert page.locator("header").inner_text().count("Customer activity") == 1

            page.get_by_role("button", name="Run monitor check").click()
            result = page.get_by_test_id("monitor-result")
            result.filter(has_text=re.compile(r"Monitor check #\d+ at tick \d+")).wait_for(timeout=20_000)
            match = re.search(
                r"#(\d+) at tick (\d+): (\d+) opened, (\d+) closed, (\d+) open", result.inner_text()
            )
            assert match, result.inner_text()
            check_no, tick = int(match[1]), int(match[2])
            assert check_no >= tick >= seen["tick"]  # a check after every earlier tick, plus this one
            page.wait_for_timeout(300)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "activity_dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "activity_dashboard.png").stat().st_size > 20_000
