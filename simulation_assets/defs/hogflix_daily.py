"""HogFlix daily traffic summary and cleanup as Dagster assets.

``hogflix_traffic_daily`` sums each day's 48 windows and checks the day's
sessions and events against the specification; ``hogflix_churn_cleanup``
removes the users churned that day (synthetic rows only);
``hogflix_synthetic_cleanup`` counts, then removes, every synthetic row and
auth user (what ``simulate cleanup`` runs; a dry run only counts).
"""

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from simulation_assets.core.charts import Series, chart_svg
from simulation_assets.core.hogflix import checks
from simulation_assets.core.hogflix.events import empty_events
from simulation_assets.core.hogflix.metrics import TRAFFIC_DAILY_SCHEMA, traffic_day
from simulation_assets.core.hogflix.sessions import SESSION_SCHEMA, day_window_keys
from simulation_assets.defs.hogflix_checks import check_specs, result
from simulation_assets.defs.hogflix_traffic import GROUP
from simulation_assets.defs.metadata import (
    COLUMN_SCHEMA,
    column_schema,
    md_table,
    svg_markdown,
    table_metadata,
)
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.app_db import HogflixAppDatabase
from simulation_assets.sinks.hogflix_state import (
    HogflixSettings,
    HogflixTrafficSettings,
    TrafficReader,
    concat_frames,
)
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.supabase_auth import SupabaseAuthAdmin

SINGLE_RUN = dg.BackfillPolicy.single_run()


def _hourly_plot(frame: pl.DataFrame, column: str, label: str) -> dg.MarkdownMetadataValue:
    hours = frame[column].dt.hour().to_numpy() if frame.height else np.array([], int)
    counts = np.bincount(hours, minlength=24).tolist()
    chart = chart_svg(
        list(range(24)),
        [Series(label, counts, kind="bar", color="#1d4aff")],
        x_label="hour of day (UTC)",
        y_label=label,
    )
    return svg_markdown(chart, label)


def _add(totals: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        totals[key] = totals.get(key, 0) + n


class SyntheticCleanupConfig(dg.Config):
    """Run config of ``hogflix_synthetic_cleanup``."""

    dry_run: bool = Field(default=False, description="Only count the synthetic rows and auth users.")


def daily_assets(daily: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """Return the daily traffic summary and the two cleanup assets."""

    @dg.asset(
        name="hogflix_traffic_daily",
        group_name=GROUP,
        partitions_def=daily,
        backfill_policy=SINGLE_RUN,
        deps=[
            dg.AssetDep("hogflix_sessions", partition_mapping=dg.TimeWindowPartitionMapping()),
            dg.AssetDep("hogflix_events", partition_mapping=dg.TimeWindowPartitionMapping()),
        ],
        kinds={"polars"},
        metadata={COLUMN_SCHEMA: column_schema(TRAFFIC_DAILY_SCHEMA)},
        check_specs=check_specs("hogflix_traffic_daily"),
        description=(
            "Traffic of each day (its 48 windows; windows not materialized are generated in memory the "
            "same way): sessions, events, FlixBuddy questions, tickets, and the hour-of-day profile."
        ),
    )
    def hogflix_traffic_daily(
        context: dg.AssetExecutionContext,
        hogflix_settings: HogflixSettings,
        hogflix_traffic: HogflixTrafficSettings,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        traffic = hogflix_traffic.traffic()
        reader = TrafficReader(hogflix_settings, traffic, store)
        rows, unique_uuids, profiles = [], [], []
        sessions = pl.DataFrame(schema=SESSION_SCHEMA)
        for key in context.partition_keys:
            keys = day_window_keys(dt.date.fromisoformat(key))
            sessions = concat_frames((reader.stored_or_sessions(k) for k in keys), SESSION_SCHEMA)
            events = concat_frames((reader.stored_or_events(k) for k in keys), empty_events().schema)
            unique_uuids.append(checks.event_uuids_unique(events))
            profiles.append(checks.session_profile(sessions))
            date = dt.date.fromisoformat(key)
            row = traffic_day(date, sessions, events, reader.personas(date))
            store.write(hogflix_settings.dataset("traffic_daily"), key, row)
            context.add_asset_metadata(table_metadata(rows=row.height), partition_key=key)
            rows.append(row)
        days = pl.concat(rows) if rows else pl.DataFrame(schema=TRAFFIC_DAILY_SCHEMA)
        # Bands scale with each day's target pool (a pool schedule moves it; else persona_pool).
        lifecycle = hogflix_settings.lifecycle()
        targets = [lifecycle.pool_target(d) for d in days["date"]] or [lifecycle.persona_pool]
        sessions_ok = checks.all_of(
            [
                checks.per_day_in_range(
                    days[i : i + 1], "sessions", traffic.scaled_range(traffic.sessions_per_day, t)
                )
                for i, t in enumerate(targets[: days.height])
            ]
        )
        event_band = traffic.scaled_range(traffic.events_per_day, round(sum(targets) / len(targets)))
        return dg.MaterializeResult(
            metadata={
                "days": days.height,
                "mean_sessions": float(days["sessions"].mean()),
                "mean_events": float(days["events"].mean()),
                "mean_flixbuddy_chats": float(days["flixbuddy_chats"].mean()),
                "days_table": md_table(days.tail(10)),
                "sessions_by_hour_last_day": _hourly_plot(sessions, "session_start_at", "sessions"),
            },
            check_results=[
                result("sessions_per_day_in_range", sessions_ok),
                result(
                    "events_per_day_in_range",
                    checks.mean_day_in_range(days, "events", event_band, traffic.events_day_tolerance),
                ),
                result("event_uuids_unique_per_day", checks.all_of(unique_uuids)),
                result("genre_affinity_effect", checks.genre_affinity_effect(days)),
                result(
                    "sessions_follow_the_persona",
                    checks.sessions_follow_the_persona(profiles, traffic.second_device_share),
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
        check_specs=check_specs("hogflix_churn_cleanup"),
        description=(
            "Removes the personas churned that day and marked for cleanup (90 % of them): their rows in "
            "every app table and their auth user. Only synthetic rows are ever matched."
        ),
    )
    def hogflix_churn_cleanup(
        context: dg.AssetExecutionContext,
        hogflix_settings: HogflixSettings,
        hogflix_traffic: HogflixTrafficSettings,
        hogflix_app_db: HogflixAppDatabase,
        hogflix_auth: SupabaseAuthAdmin,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        reader = TrafficReader(hogflix_settings, hogflix_traffic.traffic(), store)
        totals: dict[str, int] = {}
        auth_totals: dict[str, int] = {}
        records = []
        non_synthetic: list[int] = []
        for key in context.partition_keys:
            personas = reader.personas(dt.date.fromisoformat(key))
            gone = personas.filter(pl.col("marked_for_cleanup") & pl.col("is_synthetic"))
            ids = gone["user_id"].to_list()
            deleted = hogflix_app_db.delete_users(ids)
            _add(auth_totals, hogflix_auth.delete_users(ids))
            _add(totals, deleted["deleted"])
            non_synthetic += [deleted["non_synthetic_before"], deleted["non_synthetic_after"]]
            rows_deleted = sum(deleted["deleted"].values())
            records.append({"date": key, "users": len(ids), "rows_deleted": rows_deleted})
            context.add_asset_metadata(table_metadata(rows=len(ids)), partition_key=key)
            store.write(
                hogflix_settings.dataset("cleanup"),
                key,
                gone.select("distinct_id", "user_id", "email", "churned_at").with_columns(
                    pl.lit(rows_deleted).alias("rows_deleted_that_day")
                ),
            )
        outcome = checks.cleanup_touched_only_synthetic(
            non_synthetic[0] if non_synthetic else 0,
            non_synthetic[-1] if non_synthetic else 0,
            auth_totals.get("refused_non_synthetic", 0),
        )
        return dg.MaterializeResult(
            metadata={
                "days": len(context.partition_keys),
                "users_cleaned": sum(r["users"] for r in records),
                "rows_deleted": dg.MetadataValue.json(totals),
                "auth_users": dg.MetadataValue.json(auth_totals),
                "database": hogflix_app_db.location(),
                "by_day": md_table(pl.DataFrame(records)),
            },
            check_results=[result("cleanup_touched_only_synthetic", outcome)],
        )

    @dg.asset(
        name="hogflix_synthetic_cleanup",
        group_name=GROUP,
        kinds={"duckdb", "postgres", "supabase"},
        retry_policy=NETWORK_RETRY,
        pool="app_db",
        check_specs=check_specs("hogflix_synthetic_cleanup"),
        description=(
            "Counts, then removes, every synthetic row of the app database and every synthetic auth user "
            "(the specification's count_synthetic_data / cleanup_synthetic_data). Rows without the synthetic "
            "flag or domain are never matched. Run config dry_run: true only counts."
        ),
    )
    def hogflix_synthetic_cleanup(
        config: SyntheticCleanupConfig, hogflix_app_db: HogflixAppDatabase, hogflix_auth: SupabaseAuthAdmin
    ) -> dg.MaterializeResult:
        hogflix_app_db.validate_config()
        counts = hogflix_app_db.count_synthetic()
        auth_ids = hogflix_auth.synthetic_user_ids()
        if config.dry_run:
            real = hogflix_app_db.non_synthetic_rows()
            deleted: dict[str, int] = {t: 0 for t in counts}
            auth = {"deleted": 0, "refused_non_synthetic": 0}
            before = after = real
        else:
            cleaned = hogflix_app_db.cleanup_synthetic()
            deleted, before, after = (
                cleaned["deleted"],
                cleaned["non_synthetic_before"],
                cleaned["non_synthetic_after"],
            )
            auth = hogflix_auth.delete_users(auth_ids)
        outcome = checks.cleanup_touched_only_synthetic(before, after, auth.get("refused_non_synthetic", 0))
        return dg.MaterializeResult(
            metadata={
                "database": hogflix_app_db.location(),
                "dry_run": config.dry_run,
                "synthetic_rows": dg.MetadataValue.json(counts),
                "rows_deleted": dg.MetadataValue.json(deleted),
                "non_synthetic_rows": after,
                "auth_enabled": hogflix_auth.enabled(),
                "synthetic_auth_users": len(auth_ids),
                "auth_users_deleted": int(auth.get("deleted", 0)),
            },
            check_results=[result("only_synthetic_rows_deleted", outcome)],
        )

    return [hogflix_traffic_daily, hogflix_churn_cleanup, hogflix_synthetic_cleanup]
