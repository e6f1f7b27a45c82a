"""The browser tier of ``simulate hogflix``: ``--browser-share F [--site-url URL]``.

Checked before anything runs (share between 0 and 1, an http(s) URL that
answers, Chromium and the bundled SDK present); after the server tier has
produced the days' sessions, ``hogflix_browser_sessions`` plays the share of
them in headless Chromium over the same windows and the browser-made events are
exported next to the server-made ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from simulation_assets.commands.common import UsageError, console, materialize_range, write_json


@dataclass(frozen=True)
class BrowserTierArgs:
    """Validated browser-tier options."""

    share: float
    site_url: str


def add_browser_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--browser-share`` and ``--site-url`` to the ``hogflix`` parser."""
    p.add_argument(
        "--browser-share",
        type=float,
        default=0.0,
        help="share of sessions (0-1) also played by personas in headless Chromium (default 0: none)",
    )
    p.add_argument(
        "--site-url",
        default=os.environ.get("HOGFLIX_SITE_URL", ""),
        help="site the browsers visit (default: the reference web app on a free loopback port)",
    )


def check_browser_arguments(args: argparse.Namespace, timeout_s: float = 5.0) -> BrowserTierArgs:
    """Return the validated options or raise UsageError naming the bad input (nothing has run yet)."""
    share = args.browser_share
    if share is None or not (0.0 <= share <= 1.0) or math.isnan(share):
        raise UsageError(f"--browser-share must be a number between 0 and 1, got {share}")
    site = (args.site_url or "").strip()
    if share == 0:
        return BrowserTierArgs(0.0, site)
    if site:
        parts = urllib.parse.urlsplit(site)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"--site-url must be an http(s) URL such as http://127.0.0.1:8000/hogflix, got {site!r}"
            )
        import httpx

        try:
            httpx.get(site, timeout=timeout_s, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise UsageError(f"--site-url {site} is unreachable ({type(exc).__name__}: {exc})") from None
    else:
        from simulation_assets.webapp.app import SdkMissingError, require_sdk

        try:
            require_sdk()
        except SdkMissingError as exc:
            raise UsageError(str(exc)) from None
    from simulation_assets.sinks.browser_bot import BrowserBot, BrowserUnavailableError

    try:
        BrowserBot().validate_config()
    except BrowserUnavailableError as exc:
        raise UsageError(str(exc)) from None
    return BrowserTierArgs(share, site.rstrip("/"))


def run_browser_tier(
    browser: BrowserTierArgs,
    seed: int,
    pool: int,
    start: dt.date,
    days: list[str],
    events_sink: str,
    output: Path,
    instance: object,
) -> dict:
    """Materialize ``hogflix_browser_sessions`` over ``days`` (YYYY-MM-DD); export; return figures."""
    import polars as pl

    from simulation_assets.core.hogflix.sessions import day_window_keys
    from simulation_assets.defs.hogflix_browser import HogflixBrowserTier, browser_assets
    from simulation_assets.defs.partitions import half_hourly_partitions as half_hourly
    from simulation_assets.sinks.browser_bot import BrowserBot
    from simulation_assets.sinks.config_files import from_env, resolved
    from simulation_assets.sinks.hogflix_state import HogflixSettings, HogflixTrafficSettings
    from simulation_assets.sinks.local_store import LocalParquetStore
    from simulation_assets.sinks.posthog_events import PostHogEvents

    settings = resolved(from_env(HogflixSettings, seed=seed, persona_pool=pool, start_date=start.isoformat()))
    end = dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1)
    assets = browser_assets(half_hourly(start.isoformat(), end.isoformat()))
    store = LocalParquetStore()
    resources = {
        "hogflix_settings": settings,
        "hogflix_traffic": from_env(HogflixTrafficSettings),
        "store": store,
        "hogflix_posthog": from_env(PostHogEvents, mode=events_sink),
        "hogflix_browser": BrowserBot(),
        "hogflix_browser_tier": HogflixBrowserTier(share=browser.share, site_url=browser.site_url),
    }
    summary = {"share": browser.share, "site": browser.site_url or "reference app on loopback", "sessions": 0,
               "failed_sessions": 0, "events": 0, "checks_passed": True}  # fmt: skip
    result = materialize_range(assets, resources, f"{days[0]}-00:00", f"{days[-1]}-23:30", instance)
    for mat in result.asset_materializations_for_node("hogflix_browser_sessions")[:1]:
        meta = mat.metadata
        summary["sessions"] += int(meta["browser_sessions"].value)
        summary["failed_sessions"] += int(meta["failed_sessions"].value)
    summary["checks_passed"] &= all(c.passed for c in result.get_asset_check_evaluations())
    windows = [k for d in days for k in day_window_keys(dt.date.fromisoformat(d))]
    events = store.read_many(settings.dataset("browser_events"), windows)
    if events.is_empty():
        events = pl.DataFrame()
    events.write_parquet(output / "browser_events.parquet")
    summary["events"] = events.height
    summary["personas"] = events["persona_distinct_id"].n_unique() if events.height else 0
    summary["by_event"] = (
        {r["event"]: r["len"] for r in events.group_by("event").len().sort("event").to_dicts()}
        if events.height
        else {}
    )
    write_json(output / "browser_summary.json", summary)
    console.print(
        f"Browser tier: {summary['sessions']} sessions in headless Chromium ({browser.share:.0%} share, "
        f"{summary['site']}), {summary['events']} events from posthog-js for {summary['personas']} personas, "
        f"{summary['failed_sessions']} failed; checks {'passed' if summary['checks_passed'] else 'FAILED'} "
        f"-> {output / 'browser_events.parquet'}, browser_summary.json"
    )
    return summary


def served_web_app():  # noqa: ANN201
    """Return the reference web app for ``simulate target serve``, its captured events merged into the store.

    The dataset is the HogFlix scenario of the environment (``SIMULATION_SEED``,
    ``PERSONA_POOL``, ``HOGFLIX_START_DATE``, ...), the same the CLI and Dagster use.
    """
    from simulation_assets.sinks.browser_events import BrowserEventsStore
    from simulation_assets.sinks.config_files import from_env, resolved
    from simulation_assets.sinks.hogflix_state import HogflixSettings
    from simulation_assets.sinks.local_store import LocalParquetStore
    from simulation_assets.webapp.serve import create_served_app

    settings = resolved(from_env(HogflixSettings))
    store = BrowserEventsStore(LocalParquetStore(), settings.dataset("browser_events"))
    app = create_served_app(on_events=store.merge)
    app.state.events_store = store
    return app
