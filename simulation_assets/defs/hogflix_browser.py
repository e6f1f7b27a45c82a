"""HogFlix browser tier as a Dagster asset: a share of each window's sessions played in real browsers.

``hogflix_browser_sessions`` takes the sessions of its half-hour windows (the
traffic tier's session model), picks a stable share of them, turns each into a
browser plan and lets the browser bot play it in headless Chromium against
``site_url`` (default: the reference web app, started for the run on a free
loopback port). posthog-js on the site emits the events; the reference app's
capture endpoint hands them to this asset, which writes them to the events
store beside the server tier's events and, when the sink is PostHog, delivers
them there too.
"""

from pathlib import Path
from typing import ClassVar

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.hogflix import checks
from simulation_assets.core.hogflix.browser_events import BROWSER_EVENT_SCHEMA, events_frame
from simulation_assets.core.hogflix.browser_plan import (
    PERSONA_COLUMNS,
    browser_plans,
    browser_session_mask,
)
from simulation_assets.core.hogflix.sessions import SESSION_SCHEMA
from simulation_assets.defs.hogflix_checks import check_specs, result
from simulation_assets.defs.metadata import COLUMN_SCHEMA, column_schema, md_table, table_metadata
from simulation_assets.defs.partitions import HALF_HOURLY_BACKFILL, daily_partitions
from simulation_assets.defs.partitions import half_hourly_partitions as half_hourly
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.browser_bot import BrowserBot, BrowserRunReport, BrowserSession
from simulation_assets.sinks.browser_events import BrowserEventsStore, forward
from simulation_assets.sinks.config_files import from_env
from simulation_assets.sinks.hogflix_state import (
    HogflixSettings,
    HogflixTrafficSettings,
    TrafficReader,
    concat_frames,
)
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.posthog_events import PostHogEvents

GROUP = "hogflix"


class HogflixBrowserTier(dg.ConfigurableResource):
    """Which share of sessions runs in browsers, and against which site."""

    ENV: ClassVar[dict[str, str]] = {"share": "HOGFLIX_BROWSER_SHARE", "site_url": "HOGFLIX_SITE_URL"}

    share: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Share of each window's sessions played in real browsers ($HOGFLIX_BROWSER_SHARE).",
    )
    site_url: str = Field(
        default="",
        description="Site the browsers visit ($HOGFLIX_SITE_URL); empty: the reference app on loopback.",
    )


def select_browser_sessions(sessions: pl.DataFrame, events: pl.DataFrame, share: float, seed: int,
                            host: str) -> list[BrowserSession]:  # fmt: skip
    """Return the browser sessions (persona traits + steps) of one window's sessions and events."""
    chosen = sessions.filter(pl.Series(browser_session_mask(sessions, share, seed)))
    if chosen.is_empty():
        return []
    plans = browser_plans(chosen, events, host)
    steps = {k: g.sort("step").to_dicts() for (k,), g in plans.group_by("session_id")}
    return [
        BrowserSession(persona=row, steps=steps.get(row["session_id"], []))
        for row in chosen.select(*PERSONA_COLUMNS, "partition_key").to_dicts()
    ]


def run_browser_sessions(
    items: list[BrowserSession], site_url: str, bot: BrowserBot, state_dir: Path, screenshot_dir: Path
) -> tuple[BrowserRunReport, pl.DataFrame]:
    """Play ``items``; return the bot's report and the events the local capture endpoint received.

    With an empty ``site_url`` the reference app is served on a free loopback
    port for the run and its captured events are returned; against another
    site the events go wherever that site sends them (the frame is empty).
    """
    if not items:
        return BrowserRunReport(), pl.DataFrame(schema=BROWSER_EVENT_SCHEMA)
    if site_url:
        return bot.run(site_url, items, state_dir, screenshot_dir), pl.DataFrame(schema=BROWSER_EVENT_SCHEMA)
    from simulation_assets.target.server import LocalTarget, build_app
    from simulation_assets.webapp.app import WebAppConfig, create_app, require_sdk
    from simulation_assets.webapp.capture import CaptureLog
    from simulation_assets.webapp.serve import MOUNT_PATH

    require_sdk()
    log = CaptureLog()
    app = build_app({MOUNT_PATH: lambda: create_app(WebAppConfig(), log)})
    with LocalTarget(app=app) as target:
        report = bot.run(target.base_url + MOUNT_PATH, items, state_dir, screenshot_dir)
    report.recording_requests = log.recordings
    return report, events_frame(log.take())


def sessions_frame(report: BrowserRunReport) -> pl.DataFrame:
    """Return the report's sessions as a frame with ``checks.BROWSER_SESSION_SCHEMA`` columns (and the rest)."""
    if not report.sessions:
        return pl.DataFrame(schema=checks.BROWSER_SESSION_SCHEMA)
    return pl.DataFrame(report.rows()).cast({k: t for k, t in checks.BROWSER_SESSION_SCHEMA.items()})


def browser_assets(windows: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """Return the browser-tier asset over the half-hourly ``windows``."""

    @dg.asset(
        name="hogflix_browser_sessions",
        group_name=GROUP,
        partitions_def=windows,
        backfill_policy=HALF_HOURLY_BACKFILL,
        deps=["hogflix_sessions", "hogflix_events"],
        kinds={"playwright", "chromium", "posthog"},
        retry_policy=NETWORK_RETRY,
        pool="posthog",
        metadata={COLUMN_SCHEMA: column_schema(BROWSER_EVENT_SCHEMA)},
        check_specs=check_specs("hogflix_browser_sessions"),
        description=(
            "A stable share of the window's sessions played by personas in headless Chromium against the "
            "HogFlix site (default: the reference web app on loopback): same entry point, pages, videos, "
            "progress, ratings, watchlist, FlixBuddy questions and tickets as the session model, with the "
            "persona's cookies and localStorage kept between sessions. posthog-js on the page emits the "
            "events ($pageview, $pageleave, $autocapture, product events); they are stored as "
            "browser_events beside the server tier's events."
        ),
    )
    def hogflix_browser_sessions(
        context: dg.AssetExecutionContext,
        hogflix_settings: HogflixSettings,
        hogflix_traffic: HogflixTrafficSettings,
        hogflix_posthog: PostHogEvents,
        hogflix_browser: BrowserBot,
        hogflix_browser_tier: HogflixBrowserTier,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        traffic = hogflix_traffic.traffic()
        reader = TrafficReader(hogflix_settings, traffic, store)
        keys = context.partition_keys
        items: list[BrowserSession] = []
        all_sessions = []
        for key in keys:
            sessions = reader.stored_or_sessions(key)
            all_sessions.append(sessions)
            items += select_browser_sessions(
                sessions, reader.stored_or_events(key), hogflix_browser_tier.share, hogflix_settings.seed,
                traffic.host,
            )  # fmt: skip
        root = store.root() / hogflix_settings.dataset("browser")
        report, events = run_browser_sessions(
            items, hogflix_browser_tier.site_url, hogflix_browser, root / "state", root / "screenshots"
        )
        # A session's events belong to the window the session started in, as on the server tier.
        window = {i.persona["session_id"]: i.persona["partition_key"] for i in items}
        if events.height:
            events = events.with_columns(
                pl.col("synthetic_session")
                .replace_strict(window, default=None)
                .fill_null(pl.col("partition_key"))
                .alias("partition_key")
            )
        local = not hogflix_browser_tier.site_url
        if local:  # another site stores its own events (the reference app served alone merges them in)
            target = BrowserEventsStore(store, hogflix_settings.dataset("browser_events"))
            for key in keys:
                window_events = events.filter(pl.col("partition_key") == key)
                target.replace(key, window_events)
                context.add_asset_metadata(table_metadata(window_events), partition_key=key)
        delivery = forward(hogflix_posthog, events)
        played = sessions_frame(report)
        failures = [s for s in report.sessions if not s.ok]
        for s in failures:
            context.log.warning("browser session %s failed: %s (%s)", s.session_id, s.error, s.screenshot)
        counts = (
            dict(events.group_by("event").len().sort("len", descending=True).iter_rows())
            if events.height
            else {}
        )
        return dg.MaterializeResult(
            metadata={
                "windows": len(keys),
                "sessions_in_windows": concat_frames(all_sessions, SESSION_SCHEMA).height,
                "browser_sessions": len(items),
                "share": hogflix_browser_tier.share,
                "site": hogflix_browser_tier.site_url or "reference app on loopback",
                "failed_sessions": len(failures),
                "browser_events": events.height,
                "capture_requests": sum(s.capture_requests for s in report.sessions),
                "returning_browsers": sum(s.returning for s in report.sessions),
                "recording_requests": report.recording_requests,
                "real_seconds": round(report.seconds, 2),
                "max_concurrent_contexts": report.max_concurrent,
                **{
                    f"posthog_{k}": v
                    for k, v in delivery.as_metadata().items()
                    if k in ("sink", "events_delivered")
                },
                "by_event": dg.MetadataValue.json(counts),
                "sessions": md_table(
                    played.select(
                        "session_id", "distinct_id", "ok", "pages", "capture_ok", "returning", "error"
                    )
                    if played.height
                    else played
                ),
                "preview": md_table(
                    events.select("timestamp", "event", "distinct_id", "$pathname", "$session_id")
                    if events.height
                    else events
                ),
            },
            check_results=[
                result(
                    "every_browser_session_produced_events",
                    checks.every_browser_session_produced_events(played, events, captured_locally=local),
                ),
                result("persona_identities_persisted", checks.persona_identities_persisted(played)),
            ],
        )

    return [hogflix_browser_sessions]


def browser_resources() -> dict[str, object]:
    """Return the browser-tier resources, configured from the environment."""
    return {"hogflix_browser": BrowserBot(), "hogflix_browser_tier": from_env(HogflixBrowserTier)}


def build_defs() -> dg.Definitions:
    """Return the browser-tier definitions over the same half-hourly windows as the traffic tier."""
    daily = daily_partitions()
    windows = half_hourly(daily.start.strftime("%Y-%m-%d"))
    assets = browser_assets(windows)
    job = dg.define_asset_job(
        "hogflix_browser_traffic",
        selection=dg.AssetSelection.assets(*assets),
        description="Play a share of the last 30 minutes' sessions in headless Chromium.",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        job, name="hogflix_browser_every_30_minutes", default_status=dg.DefaultScheduleStatus.STOPPED
    )
    return dg.Definitions(assets=assets, jobs=[job], schedules=[schedule], resources=browser_resources())


defs = build_defs()

__all__ = ["HogflixBrowserTier", "browser_assets", "browser_resources", "defs"]
