"""HogFlix traffic as Dagster assets: sessions and events every 30 minutes, app rows, FlixBuddy, cleanup.

The assets are built by ``traffic_assets`` and registered by ``defs/hogflix.py``
together with the lifecycle, so one daily job can run lifecycle and cleanup.
Every half-hourly asset accepts a range of windows in one run (a backfill is
one run per chunk, not one per window) and every networked asset retries with
backoff and jitter inside a concurrency pool.
"""

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import yaml
from pydantic import Field

from simulation_assets.core.hogflix.app_rows import app_rows, pool_profiles
from simulation_assets.core.hogflix.events import empty_events, session_events
from simulation_assets.core.hogflix.flixbuddy import chat_rows, conversations
from simulation_assets.core.hogflix.frames import to_frame
from simulation_assets.core.hogflix.ids import uuid7_ms
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.persona_state import day_number
from simulation_assets.core.hogflix.sessions import (
    SESSION_SCHEMA,
    WINDOW_MS,
    day_sessions,
    window_key,
    window_sessions,
    window_start_ms,
)
from simulation_assets.core.hogflix.traffic_config import FLIXBUDDY_QUESTIONS, TrafficConfig
from simulation_assets.defs.metadata import figure_markdown, md_table, new_figure
from simulation_assets.defs.partitions import HALF_HOURLY_BACKFILL
from simulation_assets.sinks.app_db import HogflixAppDatabase
from simulation_assets.sinks.flixbuddy import FlixBuddyClient
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.posthog_events import PostHogEvents
from simulation_assets.sinks.supabase_auth import SupabaseAuthAdmin

GROUP = "hogflix"
SINGLE_RUN = dg.BackfillPolicy.single_run()
NETWORK_RETRY = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class HogflixTrafficSettings(dg.ConfigurableResource):
    """Overrides of the traffic numbers (``TrafficConfig``) from an optional YAML file."""

    config_path: str = Field(
        default_factory=lambda: os.environ.get("HOGFLIX_TRAFFIC_CONFIG", ""),
        description="Optional YAML file with TrafficConfig overrides.",
    )

    def traffic(self) -> TrafficConfig:
        """Return the validated traffic config."""
        if not self.config_path:
            return TrafficConfig()
        path = Path(self.config_path)
        if not path.exists():
            raise ValueError(f"HOGFLIX_TRAFFIC_CONFIG file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of TrafficConfig fields")
        return TrafficConfig(**loaded)


# --------------------------------------------------------------------------- reading upstream data


# Persona days computed (not read) in this process, by (scenario, date): the same deterministic
# table, so the four half-hourly assets of a run do not each replay the lifecycle.
_COMPUTED_PERSONAS: dict[tuple[str, dt.date], pl.DataFrame] = {}


class TrafficReader:
    """Reads (or, when absent, recomputes) persona days, sessions and events for a range of windows.

    A half-hourly run may come before the daily run that stores the day's persona
    table; the table is then computed from the last stored day with the same
    deterministic step, so it equals what the daily asset will store.
    """

    def __init__(self, settings, traffic: TrafficConfig, store: LocalParquetStore) -> None:  # noqa: ANN001
        self.settings = settings
        self.traffic = traffic
        self.store = store
        self._personas: dict[dt.date, pl.DataFrame] = {}
        self._day_sessions: dict[dt.date, pl.DataFrame] = {}

    def personas(self, date: dt.date) -> pl.DataFrame | None:
        """Return the persona table of ``date`` (None before the first simulated day)."""
        from simulation_assets.defs.hogflix import load_state_before

        if date in self._personas:
            return self._personas[date]
        if date < dt.date.fromisoformat(self.settings.start_date):
            return None
        dataset = self.settings.dataset("personas")
        cache_key = (self.settings.scenario(), date)
        if self.store.exists(dataset, date.isoformat()):
            frame = self.store.read(dataset, date.isoformat())
        elif cache_key in _COMPUTED_PERSONAS:
            frame = _COMPUTED_PERSONAS[cache_key]
        else:
            day = day_number(date)
            state = load_state_before(self.settings, self.store, day)
            frame = to_frame(step_day(state, day, self.settings.lifecycle(), self.settings.seed))
            if len(_COMPUTED_PERSONAS) >= 8:
                _COMPUTED_PERSONAS.pop(next(iter(_COMPUTED_PERSONAS)))
            _COMPUTED_PERSONAS[cache_key] = frame
        self._personas[date] = frame
        return frame

    def sessions_of_day(self, date: dt.date) -> pl.DataFrame:
        if date not in self._day_sessions:
            personas = self.personas(date)
            self._day_sessions[date] = (
                pl.DataFrame(schema=SESSION_SCHEMA)
                if personas is None
                else day_sessions(personas, self.settings.seed, self.traffic)
            )
        return self._day_sessions[date]

    def window_sessions(self, key: str) -> pl.DataFrame:
        """Sessions starting in window ``key`` (a signup's visit may spill over from the day before)."""
        start = window_start_ms(key)
        date = dt.datetime.fromtimestamp(start / 1000, dt.UTC).date()
        days = [self.sessions_of_day(date - dt.timedelta(days=1)), self.sessions_of_day(date)]
        return window_sessions(days, start, start + WINDOW_MS)

    def stored_or_sessions(self, key: str) -> pl.DataFrame:
        dataset = self.settings.dataset("sessions")
        if self.store.exists(dataset, key):
            return self.store.read(dataset, key)
        return self.window_sessions(key)

    def stored_or_events(self, key: str) -> pl.DataFrame:
        dataset = self.settings.dataset("events")
        if self.store.exists(dataset, key):
            return self.store.read(dataset, key)
        return session_events(self.stored_or_sessions(key), self.settings.seed, self.traffic, key)


def _concat(frames: Iterable[pl.DataFrame], schema: dict) -> pl.DataFrame:
    parts = [f for f in frames if not f.is_empty()]
    return pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame(schema=schema)


def _day_keys(date: dt.date) -> list[str]:
    start = int(dt.datetime.combine(date, dt.time(), dt.UTC).timestamp() * 1000)
    return [window_key(start + i * WINDOW_MS) for i in range(48)]


def _hourly_plot(frame: pl.DataFrame, column: str, label: str) -> dg.MarkdownMetadataValue:
    fig, ax = new_figure(7.0, 2.6)
    hours = frame[column].dt.hour().to_numpy() if frame.height else np.array([], int)
    ax.bar(range(24), np.bincount(hours, minlength=24), color="#1d4aff")
    ax.set_xlabel("hour of day (UTC)")
    ax.set_ylabel(label)
    fig.tight_layout()
    return figure_markdown(fig, label)


# --------------------------------------------------------------------------- assets


def traffic_assets(
    daily: dg.DailyPartitionsDefinition, windows: dg.TimeWindowPartitionsDefinition, settings_cls: type
) -> list:
    """Return the traffic assets over ``windows`` (half-hourly) and ``daily`` partitions."""

    @dg.asset(
        name="hogflix_sessions",
        group_name=GROUP,
        partitions_def=windows,
        backfill_policy=HALF_HOURLY_BACKFILL,
        deps=[dg.AssetDep("hogflix_personas", partition_mapping=dg.TimeWindowPartitionMapping())],
        kinds={"polars", "parquet"},
        check_specs=[dg.AssetCheckSpec("session_ids_are_uuidv7_at_start", asset="hogflix_sessions")],
        description=(
            "One row per persona visit starting in the 30-minute window: the persona's lifecycle numbers "
            "for the day (videos, completion, ratings, watchlist, FlixBuddy) plus a UUIDv7 session id, "
            "device, entry point, titles opened, listing pages and support tickets."
        ),
    )
    def hogflix_sessions(
        context: dg.AssetExecutionContext,
        hogflix_settings: settings_cls,  # type: ignore[valid-type]
        hogflix_traffic: HogflixTrafficSettings,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        reader = TrafficReader(hogflix_settings, hogflix_traffic.traffic(), store)
        dataset = hogflix_settings.dataset("sessions")
        frames = []
        for key in context.partition_keys:
            frame = reader.window_sessions(key)
            store.write(dataset, key, frame)
            frames.append(frame)
        all_sessions = _concat(frames, SESSION_SCHEMA)
        bad_ids = 0
        if all_sessions.height:
            embedded = np.array([uuid7_ms(s) for s in all_sessions["session_id"].to_list()])
            starts = all_sessions["session_start_at"].dt.epoch("ms").to_numpy()
            versions = all_sessions["session_id"].str.slice(14, 1)
            bad_ids = int(((embedded != starts) | (versions != "7").to_numpy()).sum())
        entries = (
            all_sessions.group_by("entry_point").len().sort("entry_point") if all_sessions.height else None
        )
        return dg.MaterializeResult(
            metadata={
                "windows": len(context.partition_keys),
                "sessions": all_sessions.height,
                "signups": int(all_sessions["is_signup"].sum()) if all_sessions.height else 0,
                "videos": int(all_sessions["videos"].sum()) if all_sessions.height else 0,
                "by_entry_point": dg.MetadataValue.json(
                    {} if entries is None else {r["entry_point"]: r["len"] for r in entries.to_dicts()}
                ),
                "preview": md_table(
                    all_sessions.select(
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
                    )  # fmt: skip
                ),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="session_ids_are_uuidv7_at_start",
                    passed=bad_ids == 0,
                    metadata={"sessions": all_sessions.height, "bad_session_ids": bad_ids},
                )
            ],
        )

    @dg.asset(
        name="hogflix_events",
        group_name=GROUP,
        partitions_def=windows,
        backfill_policy=HALF_HOURLY_BACKFILL,
        deps=[hogflix_sessions],
        kinds={"polars", "parquet", "posthog"},
        retry_policy=NETWORK_RETRY,
        pool="posthog",
        check_specs=[
            dg.AssetCheckSpec("event_uuids_unique", asset="hogflix_events"),
            dg.AssetCheckSpec("session_start_not_after_first_event", asset="hogflix_events"),
        ],
        description=(
            "PostHog-shaped product events of the window's sessions ($pageview, $pageleave, $identify, "
            "video_*, watchlist_added, flixbuddy_interaction, support_ticket_created) with deterministic "
            "uuids; stored as Parquet and, when the sink is PostHog, delivered to /batch/ with every batch "
            "confirmed."
        ),
    )
    def hogflix_events(
        context: dg.AssetExecutionContext,
        hogflix_settings: settings_cls,  # type: ignore[valid-type]
        hogflix_traffic: HogflixTrafficSettings,
        hogflix_posthog: PostHogEvents,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        hogflix_posthog.validate_config()
        traffic = hogflix_traffic.traffic()
        reader = TrafficReader(hogflix_settings, traffic, store)
        dataset = hogflix_settings.dataset("events")
        frames = []
        for key in context.partition_keys:
            sessions = reader.stored_or_sessions(key)
            frame = session_events(sessions, hogflix_settings.seed, traffic, key)
            store.write(dataset, key, frame)
            frames.append(frame)
        events = _concat(frames, empty_events().schema)
        report = hogflix_posthog.deliver(events)
        context.log.info("events: %d in %d windows, sink %s", events.height, len(frames), report.mode)
        duplicates = events.height - events["uuid"].n_unique() if events.height else 0
        late_sessions = 0
        if events.height:
            first = events.group_by("$session_id").agg(
                pl.col("timestamp").min().dt.epoch("ms").alias("first")
            )
            embedded = np.array([uuid7_ms(s) for s in first["$session_id"].to_list()])
            late_sessions = int((embedded > first["first"].to_numpy()).sum())
        counts = events.group_by("event").len().sort("len", descending=True) if events.height else None
        return dg.MaterializeResult(
            metadata={
                "windows": len(context.partition_keys),
                "events": events.height,
                **report.as_metadata(),
                "by_event": dg.MetadataValue.json(
                    {} if counts is None else {r["event"]: r["len"] for r in counts.to_dicts()}
                ),
                "preview": md_table(
                    events.select("timestamp", "event", "distinct_id", "$pathname", "video_title")
                    if events.height
                    else events
                ),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="event_uuids_unique",
                    passed=duplicates == 0,
                    metadata={"events": events.height, "duplicate_uuids": duplicates},
                ),
                dg.AssetCheckResult(
                    check_name="session_start_not_after_first_event",
                    passed=late_sessions == 0,
                    metadata={"sessions_with_uuid_time_after_first_event": late_sessions},
                ),
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
        check_specs=[
            dg.AssetCheckSpec("no_orphan_rows", asset="hogflix_app_rows"),
            dg.AssetCheckSpec("rows_match_events", asset="hogflix_app_rows"),
        ],
        description=(
            "App-database rows of the windows' sessions: profiles and subscriptions (first visit), watch "
            "progress per played video, ratings, watchlist additions and support tickets; written to "
            "DuckDB or PostgreSQL/Supabase, replacing the windows' synthetic rows in one transaction."
        ),
    )
    def hogflix_app_rows(
        context: dg.AssetExecutionContext,
        hogflix_settings: settings_cls,  # type: ignore[valid-type]
        hogflix_traffic: HogflixTrafficSettings,
        hogflix_app_db: HogflixAppDatabase,
        hogflix_auth: SupabaseAuthAdmin,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        hogflix_app_db.validate_config()
        reader = TrafficReader(hogflix_settings, hogflix_traffic.traffic(), store)
        keys = context.partition_keys
        sessions = _concat((reader.stored_or_sessions(k) for k in keys), SESSION_SCHEMA)
        events = _concat((reader.stored_or_events(k) for k in keys), empty_events().schema)
        tables = app_rows(sessions, events, hogflix_settings.seed)
        # The first window of a day also makes sure the whole pool has its account rows.
        for key in (k for k in keys if k.endswith("-00:00")):
            personas = reader.personas(dt.date.fromisoformat(key[:10]))
            if personas is not None:
                pool = pool_profiles(personas, key, hogflix_settings.seed)
                for name, frame in pool.items():
                    tables[name] = pl.concat([tables[name], frame]).unique(
                        "id", keep="first", maintain_order=True
                    )
        result = hogflix_app_db.write(tables, keys)
        auth = hogflix_auth.create_users(
            result["new_profiles"].join(
                tables["profiles"].select("id", "plan", "display_name"), on="id", how="left"
            )
        )
        orphans = hogflix_app_db.orphan_rows()
        expected = {
            "video_ratings": int((events["event"] == "video_rated").sum()) if events.height else 0,
            "user_watchlist": int((events["event"] == "watchlist_added").sum()) if events.height else 0,
            "support_tickets": int((events["event"] == "support_ticket_created").sum())
            if events.height
            else 0,
            "watch_progress": int((events["event"] == "video_started").sum()) if events.height else 0,
        }
        written = {t: tables[t].height for t in expected}
        return dg.MaterializeResult(
            metadata={
                "windows": len(keys),
                "database": hogflix_app_db.location(),
                "inserted": dg.MetadataValue.json(result["inserted"]),
                "replaced": dg.MetadataValue.json(result["replaced"]),
                "auth_users": dg.MetadataValue.json(auth),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="no_orphan_rows",
                    passed=sum(orphans.values()) == 0,
                    metadata={"orphans": dg.MetadataValue.json(orphans)},
                ),
                dg.AssetCheckResult(
                    check_name="rows_match_events",
                    passed=written == expected,
                    metadata={
                        "rows": dg.MetadataValue.json(written),
                        "events": dg.MetadataValue.json(expected),
                    },
                ),
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
        check_specs=[
            dg.AssetCheckSpec("questions_from_templates_within_cap", asset="hogflix_flixbuddy_conversations")
        ],
        description=(
            "FlixBuddy chats of the windows: one conversation per flixbuddy_interaction event (10 % of "
            "active users), a template question, the assistant's reply (built-in responder or the HTTP "
            "endpoint, 1 request per 5 s, at most 50 per run), stored as chat_conversations/chat_messages."
        ),
    )
    def hogflix_flixbuddy_conversations(
        context: dg.AssetExecutionContext,
        hogflix_settings: settings_cls,  # type: ignore[valid-type]
        hogflix_traffic: HogflixTrafficSettings,
        hogflix_app_db: HogflixAppDatabase,
        hogflix_flixbuddy: FlixBuddyClient,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        traffic = hogflix_traffic.traffic()
        reader = TrafficReader(hogflix_settings, traffic, store)
        keys = context.partition_keys
        sessions = _concat((reader.stored_or_sessions(k) for k in keys), SESSION_SCHEMA)
        events = _concat((reader.stored_or_events(k) for k in keys), empty_events().schema)
        cap = min(traffic.flixbuddy_max_per_run, hogflix_flixbuddy.max_per_run)
        asked = conversations(events, sessions, max_per_run=cap)
        replies, report = hogflix_flixbuddy.answer(asked, traffic.catalog_size)
        chats = chat_rows(asked, replies, hogflix_settings.seed)
        hogflix_app_db.write(chats, keys)
        dataset = hogflix_settings.dataset("flixbuddy")
        stored = asked.with_columns(pl.Series("reply", replies, dtype=pl.String))
        for key in keys:
            store.write(dataset, key, stored.filter(pl.col("partition_key") == key))
        unknown = int((~asked["question"].is_in(list(FLIXBUDDY_QUESTIONS))).sum()) if asked.height else 0
        return dg.MaterializeResult(
            metadata={
                "conversations": asked.height,
                "responder": report.mode,
                "calls": report.calls,
                "retries": report.retries,
                "unanswered_over_cap": report.skipped_over_cap,
                "preview": md_table(stored.select("asked_at", "question", "reply")),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="questions_from_templates_within_cap",
                    passed=unknown == 0 and report.calls <= cap,
                    metadata={"unknown_questions": unknown, "calls": report.calls, "cap": cap},
                )
            ],
        )

    @dg.asset(
        name="hogflix_traffic_daily",
        group_name=GROUP,
        partitions_def=daily,
        backfill_policy=SINGLE_RUN,
        deps=[
            dg.AssetDep(hogflix_sessions, partition_mapping=dg.TimeWindowPartitionMapping()),
            dg.AssetDep(hogflix_events, partition_mapping=dg.TimeWindowPartitionMapping()),
        ],
        kinds={"polars"},
        check_specs=[
            dg.AssetCheckSpec("sessions_per_day_in_range", asset="hogflix_traffic_daily"),
            dg.AssetCheckSpec("events_per_day_in_range", asset="hogflix_traffic_daily"),
            dg.AssetCheckSpec("event_uuids_unique_per_day", asset="hogflix_traffic_daily"),
        ],
        description=(
            "Traffic of each day (its 48 windows; windows not materialized are generated in memory the "
            "same way): sessions, events, FlixBuddy questions, tickets, and the hour-of-day profile."
        ),
    )
    def hogflix_traffic_daily(
        context: dg.AssetExecutionContext,
        hogflix_settings: settings_cls,  # type: ignore[valid-type]
        hogflix_traffic: HogflixTrafficSettings,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        traffic = hogflix_traffic.traffic()
        reader = TrafficReader(hogflix_settings, traffic, store)
        rows = []
        duplicates = 0
        last_sessions = pl.DataFrame(schema=SESSION_SCHEMA)
        for key in context.partition_keys:
            keys = _day_keys(dt.date.fromisoformat(key))
            sessions = _concat((reader.stored_or_sessions(k) for k in keys), SESSION_SCHEMA)
            events = _concat((reader.stored_or_events(k) for k in keys), empty_events().schema)
            duplicates += events.height - (events["uuid"].n_unique() if events.height else 0)
            by_event = dict(events.group_by("event").len().iter_rows()) if events.height else {}
            count = by_event.get
            rows.append(
                {
                    "date": dt.date.fromisoformat(key),
                    "sessions": sessions.height,
                    "events": events.height,
                    "pageviews": count("$pageview", 0),
                    "videos_started": count("video_started", 0),
                    "ratings": count("video_rated", 0),
                    "flixbuddy_chats": count("flixbuddy_interaction", 0),
                    "support_tickets": count("support_ticket_created", 0),
                    "signups": count("$identify", 0),
                }
            )
            last_sessions = sessions
        daily_frame = pl.DataFrame(rows)
        for row in daily_frame.iter_slices(1):
            store.write(hogflix_settings.dataset("traffic_daily"), row["date"][0].isoformat(), row)
        pool = hogflix_settings.persona_pool
        s_low, s_high = traffic.scaled_range(traffic.sessions_per_day, pool)
        e_low, e_high = traffic.scaled_range(traffic.events_per_day, pool)
        s_ok = daily_frame["sessions"].is_between(s_low, s_high)
        e_ok = daily_frame["events"].is_between(e_low, e_high)
        return dg.MaterializeResult(
            metadata={
                "days": daily_frame.height,
                "mean_sessions": float(daily_frame["sessions"].mean()),
                "mean_events": float(daily_frame["events"].mean()),
                "mean_flixbuddy_chats": float(daily_frame["flixbuddy_chats"].mean()),
                "days_table": md_table(daily_frame.tail(10)),
                "sessions_by_hour_last_day": _hourly_plot(last_sessions, "session_start_at", "sessions"),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="sessions_per_day_in_range",
                    passed=bool(s_ok.all()),
                    metadata={"range": f"{s_low}-{s_high}", "days_outside": int((~s_ok).sum())},
                ),
                dg.AssetCheckResult(
                    check_name="events_per_day_in_range",
                    passed=bool(e_ok.all()),
                    metadata={"range": f"{e_low}-{e_high}", "days_outside": int((~e_ok).sum())},
                ),
                dg.AssetCheckResult(
                    check_name="event_uuids_unique_per_day",
                    passed=duplicates == 0,
                    metadata={"duplicate_uuids": duplicates},
                ),
            ],
        )

    @dg.asset(
        name="hogflix_churn_cleanup",
        group_name=GROUP,
        partitions_def=daily,
        backfill_policy=SINGLE_RUN,
        deps=["hogflix_personas", hogflix_traffic_daily],
        kinds={"duckdb", "postgres", "supabase"},
        retry_policy=NETWORK_RETRY,
        pool="app_db",
        check_specs=[dg.AssetCheckSpec("cleanup_touched_only_synthetic", asset="hogflix_churn_cleanup")],
        description=(
            "Removes the personas churned that day and marked for cleanup (90 % of them): their rows in "
            "every app table and their auth user. Only synthetic rows are ever matched."
        ),
    )
    def hogflix_churn_cleanup(
        context: dg.AssetExecutionContext,
        hogflix_settings: settings_cls,  # type: ignore[valid-type]
        hogflix_traffic: HogflixTrafficSettings,
        hogflix_app_db: HogflixAppDatabase,
        hogflix_auth: SupabaseAuthAdmin,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        reader = TrafficReader(hogflix_settings, hogflix_traffic.traffic(), store)
        totals: dict[str, int] = {}
        auth_totals: dict[str, int] = {}
        marked = 0
        untouched = True
        records = []
        for key in context.partition_keys:
            personas = reader.personas(dt.date.fromisoformat(key))
            gone = personas.filter(pl.col("marked_for_cleanup") & pl.col("is_synthetic"))
            ids = gone["user_id"].to_list()
            marked += len(ids)
            result = hogflix_app_db.delete_users(ids)
            auth = hogflix_auth.delete_users(ids)
            untouched &= result["non_synthetic_before"] == result["non_synthetic_after"]
            for table, n in result["deleted"].items():
                totals[table] = totals.get(table, 0) + n
            for k, n in auth.items():
                auth_totals[k] = auth_totals.get(k, 0) + n
            records.append({"date": key, "users": len(ids), "rows_deleted": sum(result["deleted"].values())})
            store.write(
                hogflix_settings.dataset("cleanup"),
                key,
                gone.select("distinct_id", "user_id", "email", "churned_at").with_columns(
                    pl.lit(sum(result["deleted"].values())).alias("rows_deleted_that_day")
                ),
            )
        return dg.MaterializeResult(
            metadata={
                "days": len(context.partition_keys),
                "users_cleaned": marked,
                "rows_deleted": dg.MetadataValue.json(totals),
                "auth_users": dg.MetadataValue.json(auth_totals),
                "database": hogflix_app_db.location(),
                "by_day": md_table(pl.DataFrame(records)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="cleanup_touched_only_synthetic",
                    passed=untouched and auth_totals.get("refused_non_synthetic", 0) == 0,
                    metadata={
                        "non_synthetic_rows_unchanged": untouched,
                        "auth_refused_non_synthetic": auth_totals.get("refused_non_synthetic", 0),
                    },
                )
            ],
        )

    return [
        hogflix_sessions,
        hogflix_events,
        hogflix_app_rows,
        hogflix_flixbuddy_conversations,
        hogflix_traffic_daily,
        hogflix_churn_cleanup,
    ]


def traffic_resources() -> dict[str, object]:
    """Return the traffic resources, configured from the environment."""
    return {
        "hogflix_traffic": HogflixTrafficSettings(),
        "hogflix_posthog": PostHogEvents(),
        "hogflix_app_db": HogflixAppDatabase(),
        "hogflix_auth": SupabaseAuthAdmin(),
        "hogflix_flixbuddy": FlixBuddyClient(),
    }
