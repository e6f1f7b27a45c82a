"""HogFlix as Dagster definitions: the daily persona lifecycle, its traffic, cleanup, jobs and schedules.

The lifecycle assets live here; the half-hourly traffic assets in
``hogflix_traffic.py``, the daily summary and cleanups in ``hogflix_daily.py``;
every check is declared in ``hogflix_checks.py`` and computed in
``core/hogflix/checks/``.
"""

import datetime as dt

import dagster as dg
import polars as pl

from simulation_assets.core.charts import Series, chart_svg
from simulation_assets.core.hogflix import checks
from simulation_assets.core.hogflix.config import PLANS, STATES
from simulation_assets.core.hogflix.frames import IDENTITY_SCHEMA, PERSONA_DAY_SCHEMA
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.persona_state import day_number
from simulation_assets.core.hogflix.schema import (
    DAILY_METRICS_SCHEMA,
    DEPTH_ROWS,
    VIEWING_STATES,
)
from simulation_assets.defs.hogflix_checks import check_specs, result
from simulation_assets.defs.hogflix_daily import daily_assets
from simulation_assets.defs.hogflix_traffic import GROUP, PROGRESS, traffic_assets
from simulation_assets.defs.metadata import (
    COLUMN_SCHEMA,
    column_schema,
    md_table,
    svg_markdown,
    table_metadata,
)
from simulation_assets.defs.partitions import daily_partitions
from simulation_assets.defs.partitions import half_hourly_partitions as half_hourly
from simulation_assets.sinks.app_db import app_database_from_env
from simulation_assets.sinks.config_files import from_env
from simulation_assets.sinks.flixbuddy import FlixBuddyClient
from simulation_assets.sinks.hogflix_state import (
    DayTables,
    DayWriter,
    HogflixSettings,
    HogflixTrafficSettings,
    day_metrics,
    load_state_before,
    remember_day_metrics,
)
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.posthog_events import PostHogEvents
from simulation_assets.sinks.supabase_auth import SupabaseAuthAdmin

# The persona chain needs yesterday's state; these assets always run a date range as one run.
SINGLE_RUN = dg.BackfillPolicy.single_run()
HALF_HOURLY_ASSETS = (
    "hogflix_sessions",
    "hogflix_events",
    "hogflix_app_rows",
    "hogflix_flixbuddy_conversations",
)
DAILY_ASSETS = ("hogflix_personas", "hogflix_daily_metrics", "hogflix_traffic_daily", "hogflix_churn_cleanup")


def _share_plot(metrics: pl.DataFrame) -> dg.MarkdownMetadataValue:
    """Return a stacked area plot of lifecycle state shares over the given days."""
    total = metrics["total_personas"]
    shares = [Series(state, (metrics[f"state_{state}"] / total).to_list(), kind="area") for state in STATES]
    days = [d.isoformat() for d in metrics["date"].to_list()]
    return svg_markdown(chart_svg(days, shares, y_label="share of personas", y_range=(0, 1)), "state shares")


def _series(frame: pl.DataFrame, column: str) -> list[float | None]:
    return frame[column].to_list() if column in frame.columns else [None] * frame.height


def monitoring_plots(history: pl.DataFrame) -> dict[str, dg.MarkdownMetadataValue]:
    """Return the monitoring charts of the last days (the specification's metrics), as inline SVG."""
    days = [d.isoformat() for d in history["date"]]
    safe = history.with_columns(
        [
            (pl.col(f"videos_{r}") / pl.col(f"visits_{r}")).alias(f"depth_{r}")
            for r in DEPTH_ROWS
            if f"visits_{r}" in history.columns
        ]  # fmt: skip
    )
    charts = {
        "engagement_by_state": chart_svg(
            days, [Series(s, _series(history, f"score_{s}")) for s in VIEWING_STATES],
            title="Engagement score by state", y_label="score",
        ),
        "completion_by_state": chart_svg(
            days, [*[Series(s, _series(history, f"completion_{s}")) for s in VIEWING_STATES],
                   Series("binge cycle", _series(history, "binge_completion"), dashed=True)],
            title="Completion of the day's videos by state", y_label="% watched",
        ),
        "session_depth_trend": chart_svg(
            days, [Series(r, _series(safe, f"depth_{r}")) for r in ("DAILY", "REGULAR", "WEEKEND", "WEEKEND_PEAK",
                                                                      "BINGE", "MONTHLY")],
            title="Videos per visit by pattern (WEEKEND_PEAK: Saturday/Sunday; BINGE: in a binge)",
            y_label="videos",
        ),
        "plan_mix_and_changes": chart_svg(
            days, [*[Series(p, _series(history, f"plan_{p}"), kind="area") for p in PLANS],
                   Series("upgrades", _series(history, "upgrades"), kind="bar", axis="right"),
                   Series("downgrades", _series(history, "downgrades"), kind="bar", axis="right")],
            title="Plan mix and plan changes", y_label="personas", y2_label="changes",
        ),
        "payments_and_ratings": chart_svg(
            days, [Series("failed charges", _series(history, "payment_failures"), kind="bar"),
                   Series("in dunning", _series(history, "in_dunning")),
                   *[Series(f"stars {p}", _series(history, f"stars_{p}"), axis="right", dashed=True) for p in PLANS]],
            title="Payment failures, dunning, and ratings by plan", y_label="personas", y2_label="stars",
        ),
        "watchlist_and_monthly_spikes": chart_svg(
            days, [Series("watchlist adds", _series(history, "watchlist_adds"), kind="bar"),
                   Series("MONTHLY visits", _series(history, "visits_MONTHLY"), axis="right")],
            title="Watchlist growth and MONTHLY check-ins (days 1-3 of the month)", y_label="adds",
            y2_label="visits",
        ),
    }  # fmt: skip
    return {name: svg_markdown(svg, name.replace("_", " ")) for name, svg in charts.items()}


def _by(frame: pl.DataFrame, column: str) -> dict[str, int]:
    return {str(k): v for k, v in frame.group_by(column).len().sort(column).iter_rows()}


def lifecycle_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """Return ``hogflix_personas`` and ``hogflix_daily_metrics`` over ``partitions``."""

    @dg.asset(
        name="hogflix_personas",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        deps=[
            dg.AssetDep(
                "hogflix_personas",
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1),
            )
        ],
        kinds={"polars", "parquet"},
        metadata={
            COLUMN_SCHEMA: column_schema(
                PERSONA_DAY_SCHEMA, not_null=["persona_number"], unique=["persona_number"]
            ),
            "identity_columns": dg.MetadataValue.json(list(IDENTITY_SCHEMA)),
        },
        check_specs=check_specs("hogflix_personas"),
        description=(
            "The HogFlix persona pool at the end of each UTC day: lifecycle state (NEW, ACTIVE, CASUAL, "
            "DORMANT, CHURNED), activity pattern, life events, streaks, engagement score and today's "
            "viewing, keyed by persona_number. The identities (distinct_id, e-mail, app ids, source) never "
            "change, so they are stored once per persona, on its signup day (dataset identities). Each "
            "day is computed from the previous one, so a range runs as one run."
        ),
    )
    def hogflix_personas(
        context: dg.AssetExecutionContext, hogflix_settings: HogflixSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        keys = context.partition_keys
        cfg, seed = hogflix_settings.lifecycle(), hogflix_settings.seed
        # When this run materializes the daily metrics too, their rows are computed from each day while
        # it is in memory (``hogflix_daily_metrics`` then reads no day back).
        metrics_too = dg.AssetKey("hogflix_daily_metrics") in context.job_def.asset_layer.selected_asset_keys
        state = load_state_before(hogflix_settings, store, day_number(dt.date.fromisoformat(keys[0])))
        dataset = hogflix_settings.dataset("personas")
        unique_ids = []
        frame = pl.DataFrame()
        older = None  # the pool of two days back (its day's frame is stored): its buffers take the next day
        # Each stored day is written in the background while the next one is stepped (DayWriter). A day's
        # full table is stored on checkpoint days and on the run's last day; the others are replayed
        # from the stored day before them when read (sinks.hogflix_state.DayTables).
        stored = 0
        with DayWriter(hogflix_settings, store) as writer:
            for key in keys:
                first, day = state.next_number, day_number(dt.date.fromisoformat(key))
                state, older = step_day(state, day, cfg, seed, recycle=older), state
                # The last day in Parquet (what a user opens), a checkpoint inside the run in Arrow IPC.
                checkpoint = key != keys[-1] and hogflix_settings.stores_table(day)
                table = key == keys[-1] or checkpoint
                stored += table
                frame, signed_up = writer.write(state, first, table=table, checkpoint=checkpoint)
                if metrics_too:
                    remember_day_metrics(hogflix_settings, state)
                state.identity = signed_up  # the registry the next step needs: none (it never reads it)
                unique_ids += [checks.persona_ids_unique(frame), checks.persona_ids_unique(signed_up)]
                context.add_asset_metadata(table_metadata(rows=frame.height), partition_key=key)
                PROGRESS.info(key, extra={"asset": "hogflix_personas", "partitions": 1})
        # Only the two columns the summary needs (a filtered copy of the whole table costs ~1 s at 1M).
        alive = frame.select("state", "activity_pattern").filter(pl.col("state") != "CHURNED")
        return dg.MaterializeResult(
            metadata={
                "days": len(keys),
                "tables_stored": stored,
                "last_day": keys[-1],
                "personas": frame.height,
                "scenario": hogflix_settings.scenario(),
                "path": dg.MetadataValue.path(str(store.path(dataset, keys[-1]))),
                "by_state": dg.MetadataValue.json(_by(frame, "state")),
                "by_pattern": dg.MetadataValue.json(_by(alive, "activity_pattern")),
                "preview": md_table(
                    frame.select(
                        "persona_number",
                        "plan",
                        "state",
                        "activity_pattern",
                        "engagement_score",
                        "consecutive_active_days",
                        "consecutive_missed_days",
                        "in_life_event",
                        "active_today",
                    )
                ),  # fmt: skip
            },
            check_results=[result("persona_ids_unique", checks.all_of(unique_ids))],
        )

    @dg.asset(
        name="hogflix_daily_metrics",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        deps=[hogflix_personas],
        kinds={"polars", "parquet"},
        metadata={COLUMN_SCHEMA: column_schema(DAILY_METRICS_SCHEMA)},
        check_specs=check_specs("hogflix_daily_metrics"),
        description=(
            "One row per day: pool size, active users, signups, churned and cleaned, reactivations, "
            "FlixBuddy calls and counts by lifecycle state and activity pattern."
        ),
    )
    def hogflix_daily_metrics(
        context: dg.AssetExecutionContext, hogflix_settings: HogflixSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        cfg = hogflix_settings.lifecycle()
        target = hogflix_settings.dataset("daily_metrics")
        rows = []
        tables = DayTables(hogflix_settings, store)  # days not stored are replayed, each from the last
        for key in context.partition_keys:
            row = day_metrics(hogflix_settings, store, key, tables)
            store.write(target, key, row)
            context.add_asset_metadata(table_metadata(rows=row.height), partition_key=key)
            rows.append(row)
        metrics = pl.concat(rows)
        last = context.partition_keys[-1]
        # The realism checks read the last 90 days; the seasons check the last year (a year's wave and
        # its holidays).
        earlier = [k for k in store.partitions(target) if k < context.partition_keys[0]][-365:]
        year = (
            pl.concat([store.read_many(target, earlier), metrics], how="diagonal_relaxed")
            if earlier
            else metrics
        )
        year = year.filter(pl.col("date") <= dt.date.fromisoformat(last)).tail(365)
        history = year.tail(90)
        return dg.MaterializeResult(
            metadata={
                "days": metrics.height,
                "mean_active_today": float(metrics["active_today"].mean()),
                "mean_pool": float(metrics["pool_size"].mean()),
                "mean_signups": float(metrics["new_signups"].mean()),
                "mean_active_share": float((metrics["state_ACTIVE"] / metrics["pool_size"]).mean()),
                "latest": md_table(metrics.tail(7)),
                "state_shares": _share_plot(history),
                **monitoring_plots(history),
            },
            check_results=[
                result("pool_within_band", checks.pool_within_band(metrics, cfg)),
                result("signups_within_band", checks.signups_within_band(metrics, cfg)),
                result("active_share_near_target", checks.active_share_near_target(metrics, cfg)),
                result("depth_by_pattern", checks.depth_by_pattern(history, cfg)),
                result("satisfaction_effects", checks.satisfaction_effects(history, cfg)),
                result("payments_follow_the_plans", checks.payments_follow_the_plans(history, cfg)),
                result("seasons_show", checks.seasons_show(year, cfg)),
                result("churn_follows_the_plan", checks.churn_follows_the_plan(year, cfg)),
            ],
        )

    return [hogflix_personas, hogflix_daily_metrics]


def hogflix_resources() -> dict[str, object]:
    """Return the HogFlix resources, bound to their environment variables (see ``sinks/config_files.py``)."""
    return {
        "hogflix_settings": from_env(HogflixSettings),
        "hogflix_traffic": from_env(HogflixTrafficSettings),
        "hogflix_posthog": from_env(PostHogEvents),
        "hogflix_app_db": app_database_from_env(),
        "hogflix_auth": from_env(SupabaseAuthAdmin),
        "hogflix_flixbuddy": from_env(FlixBuddyClient),
    }


def hogflix_assets(
    start_date: str | None = None, end_date: str | None = None, traffic: bool = True
) -> list[dg.AssetsDefinition]:
    """Return every HogFlix asset over daily partitions from ``start_date`` (and half-hourly windows);
    without ``traffic``, the lifecycle assets alone (a run of the lifecycle builds no more)."""
    partitions = daily_partitions(start_date, end_date)
    if not traffic:
        return lifecycle_assets(partitions)
    windows = half_hourly(partitions.start.strftime("%Y-%m-%d"), end_date)
    return [*lifecycle_assets(partitions), *traffic_assets(windows), *daily_assets(partitions)]


def build_defs(start_date: str | None = None, end_date: str | None = None) -> dg.Definitions:
    """Return the HogFlix definitions over daily partitions from ``start_date``."""
    assets = hogflix_assets(start_date, end_date)
    lifecycle_job = dg.define_asset_job(
        "hogflix_daily_lifecycle",
        selection=dg.AssetSelection.assets(*DAILY_ASSETS),
        description=(
            "Advance the persona pool by one day, record the day's metrics and traffic, and clean up the "
            "users who churned (app rows and auth users)."
        ),
    )
    daily_schedule = dg.build_schedule_from_partitioned_job(
        lifecycle_job, hour_of_day=7, minute_of_hour=15, name="hogflix_daily_0715_utc"
    )
    traffic_job = dg.define_asset_job(
        "hogflix_half_hourly_traffic",
        selection=dg.AssetSelection.assets(*HALF_HOURLY_ASSETS),
        description="Emit the sessions of the last 30 minutes: events, app rows and FlixBuddy chats.",
    )
    traffic_schedule = dg.build_schedule_from_partitioned_job(traffic_job, name="hogflix_every_30_minutes")
    return dg.Definitions(
        assets=assets,
        jobs=[lifecycle_job, traffic_job],
        schedules=[daily_schedule, traffic_schedule],
        resources=hogflix_resources(),
    )


def __getattr__(name: str) -> dg.Definitions:
    """Build ``defs`` on first use (the code location reads it; ``simulate hogflix`` builds the assets of
    its own range instead, and so skips building every asset, job and schedule a second time)."""
    if name == "defs":
        built = globals()["defs"] = build_defs()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
