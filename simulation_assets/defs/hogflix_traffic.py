"""HogFlix traffic every 30 minutes as Dagster assets: sessions, events, app rows, FlixBuddy chats.

The assets are built by ``traffic_assets`` and registered by ``defs/hogflix.py``
with the lifecycle. Every half-hourly asset accepts a range of windows in one
run (a backfill is one run per day of windows, not one per window) and every
networked asset retries with backoff and jitter inside a concurrency pool.
"""

import datetime as dt
import logging

import dagster as dg
import polars as pl

from simulation_assets.core.hogflix import checks
from simulation_assets.core.hogflix.app_rows import app_rows, payment_rows, pool_profiles
from simulation_assets.core.hogflix.events import empty_events
from simulation_assets.core.hogflix.flixbuddy import chat_rows, conversation_turns, conversations
from simulation_assets.core.hogflix.sessions import SESSION_SCHEMA
from simulation_assets.core.hogflix.traffic_config import FLIXBUDDY_FOLLOW_UPS, FLIXBUDDY_QUESTIONS
from simulation_assets.defs.hogflix_checks import check_specs, result
from simulation_assets.defs.metadata import COLUMN_SCHEMA, column_schema, md_table, table_metadata
from simulation_assets.defs.partitions import HALF_HOURLY_BACKFILL
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.app_db import HogflixAppDatabase
from simulation_assets.sinks.flixbuddy import FlixBuddyClient
from simulation_assets.sinks.hogflix_state import (
    HogflixSettings,
    HogflixTrafficSettings,
    TrafficReader,
    concat_frames,
)
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.posthog_events import DeliveryReport, PostHogEvents
from simulation_assets.sinks.supabase_auth import SupabaseAuthAdmin

GROUP = "hogflix"
# One record per partition (or day of windows) done, for a caller in the same process that shows
# progress, such as the CLI's progress bar; nothing is recorded when nobody listens.
PROGRESS = logging.getLogger("simulation_assets.progress")
PROGRESS.propagate = False


def _counts(frame: pl.DataFrame, column: str, into: dict[str, int] | None = None) -> dict[str, int]:
    """Return ``{value: rows}`` of ``column`` added to ``into`` (largest first)."""
    totals = dict(into or {})
    if frame.height:
        for value, n in frame.group_by(column).len().iter_rows():
            totals[value] = totals.get(value, 0) + n
    return dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))


def _add(totals: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        totals[key] = totals.get(key, 0) + n


def _rows_by_window(tables: dict[str, pl.DataFrame], keys: list[str]) -> dict[str, int]:
    """Return, per window key, how many app rows of ``tables`` belong to it (0 for windows without rows)."""
    rows = dict.fromkeys(keys, 0)
    for frame in tables.values():
        for key, n in frame.group_by("partition_key").len().iter_rows():
            if key in rows:
                rows[key] += n
    return rows


def by_day(keys: list[str]) -> list[list[str]]:
    """Group half-hourly keys by their day, so a range run holds one day of traffic in memory at a time."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(key[:10], []).append(key)
    return list(groups.values())


def _sum_reports(reports: list[DeliveryReport], mode: str) -> DeliveryReport:
    total = DeliveryReport(mode=mode)
    for r in reports:
        total.events += r.events
        total.batches += r.batches
        total.retries += r.retries
        total.historical_batches += r.historical_batches
        total.bytes_sent += r.bytes_sent
        total.seconds += r.seconds
        for status, n in r.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + n
    return total


def traffic_assets(windows: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """Return the half-hourly traffic assets over ``windows``."""

    @dg.asset(
        name="hogflix_sessions",
        group_name=GROUP,
        partitions_def=windows,
        backfill_policy=HALF_HOURLY_BACKFILL,
        deps=[dg.AssetDep("hogflix_personas", partition_mapping=dg.TimeWindowPartitionMapping())],
        kinds={"polars", "parquet"},
        metadata={
            COLUMN_SCHEMA: column_schema(SESSION_SCHEMA, not_null=["session_id"], unique=["session_id"])
        },
        check_specs=check_specs("hogflix_sessions"),
        description=(
            "One row per persona visit starting in the 30-minute window: the persona's lifecycle numbers "
            "for the day (videos, completion, ratings, watchlist, FlixBuddy) plus a UUIDv7 session id, "
            "device, entry point, titles opened, listing pages and support tickets."
        ),
    )
    def hogflix_sessions(
        context: dg.AssetExecutionContext,
        hogflix_settings: HogflixSettings,
        hogflix_traffic: HogflixTrafficSettings,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        reader = TrafficReader(hogflix_settings, hogflix_traffic.traffic(), store)
        dataset = hogflix_settings.dataset("sessions")
        outcomes, entries = [], {}
        sessions = pl.DataFrame(schema=SESSION_SCHEMA)
        totals = {"sessions": 0, "signups": 0, "videos": 0}
        for day in by_day(context.partition_keys):
            frames = []
            for key in day:
                frame = reader.window_sessions(key)
                store.write(dataset, key, frame)
                context.add_asset_metadata(table_metadata(rows=frame.height), partition_key=key)
                frames.append(frame)
            sessions = concat_frames(frames, SESSION_SCHEMA)
            outcomes.append(checks.session_ids_are_uuidv7_at_start(sessions))
            entries = _counts(sessions, "entry_point", entries)
            totals["sessions"] += sessions.height
            totals["signups"] += int(sessions["is_signup"].sum())
            totals["videos"] += int(sessions["videos"].sum())
            PROGRESS.info(day[0][:10], extra={"asset": "hogflix_sessions", "partitions": len(day)})
        return dg.MaterializeResult(
            metadata={
                "windows": len(context.partition_keys),
                **totals,
                "by_entry_point": dg.MetadataValue.json(entries),
                "preview": md_table(
                    sessions.select(
                        "session_start_at",
                        "distinct_id",
                        "state",
                        "plan",
                        "entry_point",
                        "videos",
                        "titles_opened",
                        "listing_pages",
                        "ratings",
                        "flixbuddy",
                    )
                ),  # fmt: skip
            },
            check_results=[result("session_ids_are_uuidv7_at_start", checks.all_of(outcomes))],
        )

    @dg.asset(
        name="hogflix_events",
        group_name=GROUP,
        partitions_def=windows,
        backfill_policy=HALF_HOURLY_BACKFILL,
        deps=[hogflix_sessions],
        kinds={"polars", "parquet", "posthog"},
        metadata={COLUMN_SCHEMA: column_schema(empty_events().schema, not_null=["uuid"], unique=["uuid"])},
        retry_policy=NETWORK_RETRY,
        pool="posthog",
        check_specs=check_specs("hogflix_events"),
        description=(
            "PostHog-shaped product events of the window's sessions ($pageview, $pageleave, $identify, "
            "video_*, watchlist_added, flixbuddy_interaction, support_ticket_created) with deterministic "
            "uuids; stored as Parquet and, when the sink is PostHog, delivered to /batch/ with every batch "
            "confirmed."
        ),
    )
    def hogflix_events(
        context: dg.AssetExecutionContext,
        hogflix_settings: HogflixSettings,
        hogflix_traffic: HogflixTrafficSettings,
        hogflix_posthog: PostHogEvents,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        hogflix_posthog.validate_config()
        traffic = hogflix_traffic.traffic()
        reader = TrafficReader(hogflix_settings, traffic, store)
        dataset = hogflix_settings.dataset("events")
        # Window by window: a window's events are generated, written, delivered and checked, then
        # dropped, so memory holds one window (a million-persona day is tens of millions of events).
        # Uniqueness across the day's windows is checked on 64-bit hashes of the uuids; should two
        # hashes collide, the day's stored uuid columns are compared exactly.
        unique, ordered, reports, by_event = [], [], [], {}
        events = empty_events()
        for day in by_day(context.partition_keys):
            hashes = []
            for key in day:
                events = reader.events(key, reader.stored_or_sessions(key))
                store.write(dataset, key, events, bulk=True)
                context.add_asset_metadata(table_metadata(rows=events.height), partition_key=key)
                reports.append(hogflix_posthog.deliver(events))
                ordered.append(checks.session_start_not_after_first_event(events))
                hashes.append(events["uuid"].hash(seed=0))
                by_event = _counts(events, "event", by_event)
            outcome = checks.event_uuid_hashes_unique(
                pl.concat(hashes) if hashes else pl.Series(dtype=pl.UInt64)
            )
            if outcome is None:  # two hashes collide: compare the uuids themselves
                paths = [store.path(dataset, k) for k in day]
                outcome = checks.event_uuids_unique(
                    pl.concat([pl.read_parquet(p, columns=["uuid"]) for p in paths])
                )
            unique.append(outcome)
            PROGRESS.info(day[0][:10], extra={"asset": "hogflix_events", "partitions": len(day)})
        report = _sum_reports(reports, hogflix_posthog.mode)
        return dg.MaterializeResult(
            metadata={
                "windows": len(context.partition_keys),
                "events": sum(by_event.values()),
                **report.as_metadata(),
                "by_event": dg.MetadataValue.json(by_event),
                "preview": md_table(
                    events.select("timestamp", "event", "distinct_id", "$pathname", "video_title")
                ),
            },
            check_results=[
                result("event_uuids_unique", checks.all_of(unique)),
                result("session_start_not_after_first_event", checks.all_of(ordered)),
            ],
        )

    @dg.asset(
        name="hogflix_app_rows",
        group_name=GROUP,
        partitions_def=windows,
        backfill_policy=HALF_HOURLY_BACKFILL,
        deps=[hogflix_sessions, hogflix_events],
        kinds={"duckdb", "postgres", "supabase"},
        retry_policy=NETWORK_RETRY,
        pool="app_db",
        check_specs=check_specs("hogflix_app_rows"),
        description=(
            "App-database rows of the windows' sessions: profiles and subscriptions (first visit), watch "
            "progress per played video, ratings, watchlist additions and support tickets; written to "
            "DuckDB or PostgreSQL/Supabase, replacing the windows' synthetic rows in one transaction."
        ),
    )
    def hogflix_app_rows(
        context: dg.AssetExecutionContext,
        hogflix_settings: HogflixSettings,
        hogflix_traffic: HogflixTrafficSettings,
        hogflix_app_db: HogflixAppDatabase,
        hogflix_auth: SupabaseAuthAdmin,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        hogflix_app_db.validate_config()
        reader = TrafficReader(hogflix_settings, hogflix_traffic.traffic(), store)
        matched, inserted, replaced, auth = [], {}, {}, {}
        for day in by_day(context.partition_keys):
            sessions = concat_frames((reader.stored_or_sessions(k) for k in day), SESSION_SCHEMA)
            events = concat_frames((reader.stored_or_events(k) for k in day), empty_events().schema)
            tables = app_rows(sessions, events, hogflix_settings.seed)
            if day[0].endswith("-00:00"):  # a day's first window also gives the whole pool its account rows
                personas = reader.personas(dt.date.fromisoformat(day[0][:10]))
                if personas is not None:
                    # Pool rows first: as when the windows run one by one, an account made at 00:00
                    # keeps that window's key when the persona visits later in the day.
                    for name, frame in pool_profiles(personas, day[0], hogflix_settings.seed).items():
                        tables[name] = pl.concat([frame, tables[name]]).unique(
                            "id", keep="first", maintain_order=True
                        )
                    prices = hogflix_settings.lifecycle().billing.price_cents
                    tables["payments"] = payment_rows(personas, day[0], hogflix_settings.seed, prices)
            written = hogflix_app_db.write(tables, day)
            for key, rows in _rows_by_window(tables, day).items():
                context.add_asset_metadata(table_metadata(rows=rows), partition_key=key)
            new_users = written["new_profiles"].join(
                tables["profiles"].select("id", "plan", "display_name"), on="id", how="left"
            )
            _add(auth, hogflix_auth.create_users(new_users))
            _add(inserted, written["inserted"])
            _add(replaced, written["replaced"])
            matched.append(checks.rows_match_events(tables, events))
        return dg.MaterializeResult(
            metadata={
                "windows": len(context.partition_keys),
                "database": hogflix_app_db.location(),
                "inserted": dg.MetadataValue.json(inserted),
                "replaced": dg.MetadataValue.json(replaced),
                "auth_users": dg.MetadataValue.json(auth),
            },
            check_results=[
                result("no_orphan_rows", checks.no_orphan_rows(hogflix_app_db.orphan_rows())),
                result("rows_match_events", checks.all_of(matched)),
            ],
        )

    @dg.asset(
        name="hogflix_flixbuddy_conversations",
        group_name=GROUP,
        partitions_def=windows,
        backfill_policy=HALF_HOURLY_BACKFILL,
        deps=[hogflix_events, hogflix_app_rows],
        kinds={"httpx", "duckdb", "postgres"},
        retry_policy=NETWORK_RETRY,
        pool="flixbuddy",
        check_specs=check_specs("hogflix_flixbuddy_conversations"),
        description=(
            "FlixBuddy chats of the windows: one conversation per flixbuddy_interaction event (10 % of "
            "active users): a template question and 1-5 follow-ups, each answered with the conversation so "
            "far (built-in responder or the HTTP endpoint, 1 request per 5 s, at most 50 per run), stored as "
            "chat_conversations/chat_messages."
        ),
    )
    def hogflix_flixbuddy_conversations(
        context: dg.AssetExecutionContext,
        hogflix_settings: HogflixSettings,
        hogflix_traffic: HogflixTrafficSettings,
        hogflix_app_db: HogflixAppDatabase,
        hogflix_flixbuddy: FlixBuddyClient,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        traffic = hogflix_traffic.traffic()
        reader = TrafficReader(hogflix_settings, traffic, store)
        dataset = hogflix_settings.dataset("flixbuddy")
        # The specification caps FlixBuddy at 50 calls per script run, and its script runs every
        # 30 minutes: the cap applies to each window of a range run.
        cap = min(traffic.flixbuddy_max_per_run, hogflix_flixbuddy.max_per_run)
        turn_weights = traffic.flixbuddy_turn_weights if traffic.flixbuddy_multi_turn else None
        drawn = [t for t, w in (turn_weights or {1: 1.0}).items() if w > 0]
        turn_range = (min(drawn), max(drawn))
        outcomes, totals, asked = (
            [],
            {"conversations": 0, "messages_asked": 0, "calls": 0, "retries": 0, "unanswered_over_cap": 0},
            None,
        )
        mode = ""
        for day in by_day(context.partition_keys):
            chats = []
            for key in day:
                started = conversations(
                    reader.stored_or_events(key), reader.stored_or_sessions(key), max_per_run=cap
                )
                asked = conversation_turns(started, turn_weights)
                replies, report = hogflix_flixbuddy.answer(asked, traffic.catalog_size)
                stored = asked.with_columns(pl.Series("reply", replies, dtype=pl.String))
                store.write(dataset, key, stored)
                context.add_asset_metadata(table_metadata(stored), partition_key=key)
                chats.append((asked, replies))
                outcomes.append(
                    checks.questions_from_templates_within_cap(
                        asked, (*FLIXBUDDY_QUESTIONS, *FLIXBUDDY_FOLLOW_UPS), report.calls, cap, turn_range
                    )
                )
                mode = report.mode
                totals["conversations"] += started.height
                totals["messages_asked"] += asked.height
                totals["calls"] += report.calls
                totals["retries"] += report.retries
                totals["unanswered_over_cap"] += report.skipped_over_cap
                asked = stored
            day_asked = pl.concat([a for a, _ in chats])
            day_replies = [r for _, replies in chats for r in replies]
            hogflix_app_db.write(chat_rows(day_asked, day_replies, hogflix_settings.seed), day)
        preview = asked.select("asked_at", "question", "reply") if asked is not None else pl.DataFrame()
        return dg.MaterializeResult(
            metadata={**totals, "responder": mode, "preview": md_table(preview)},
            check_results=[
                result("questions_from_templates_within_cap", checks.all_of(outcomes, unit="windows"))
            ],
        )

    return [hogflix_sessions, hogflix_events, hogflix_app_rows, hogflix_flixbuddy_conversations]
