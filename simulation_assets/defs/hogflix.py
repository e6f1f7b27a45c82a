"""HogFlix persona lifecycle as daily-partitioned Dagster assets."""

import datetime as dt
from typing import ClassVar

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.config_base import scenario_key
from simulation_assets.core.hogflix.config import STATES, LifecycleConfig
from simulation_assets.core.hogflix.frames import from_frame, to_frame
from simulation_assets.core.hogflix.lifecycle import (
    PersonaState,
    day_date,
    day_number,
    initial_state,
    step_day,
)
from simulation_assets.core.hogflix.metrics import daily_metrics
from simulation_assets.defs.hogflix_traffic import traffic_assets, traffic_resources
from simulation_assets.defs.metadata import figure_markdown, md_table, new_figure
from simulation_assets.defs.partitions import DEFAULT_START_DATE, daily_partitions
from simulation_assets.defs.partitions import half_hourly_partitions as half_hourly
from simulation_assets.sinks.config_files import from_env, load_config
from simulation_assets.sinks.local_store import LocalParquetStore

GROUP = "hogflix"
# The persona chain needs yesterday's state; these assets always run a date range as one run.
SINGLE_RUN = dg.BackfillPolicy.single_run()


class HogflixSettings(dg.ConfigurableResource):
    """Which HogFlix scenario to simulate: seed, pool size, first day and optional overrides."""

    # Environment variables that configure it when the definitions are built (see sinks/config_files.py).
    ENV: ClassVar[dict[str, str]] = {
        "seed": "SIMULATION_SEED",
        "persona_pool": "PERSONA_POOL",
        "start_date": "HOGFLIX_START_DATE",
        "config_path": "HOGFLIX_CONFIG",
    }

    seed: int = 42
    persona_pool: int = 400
    start_date: str = Field(default=DEFAULT_START_DATE, description="First simulated day (pool genesis).")
    config_path: str = Field(default="", description="Optional YAML file with LifecycleConfig overrides.")

    def lifecycle(self) -> LifecycleConfig:
        """Return the validated lifecycle config (file overrides, then ``persona_pool``)."""
        return load_config(
            LifecycleConfig,
            self.config_path or None,
            source="HOGFLIX_CONFIG",
            overrides={"persona_pool": self.persona_pool},
        )

    def genesis_day(self) -> int:
        """Return the day number of the first simulated day."""
        return day_number(dt.date.fromisoformat(self.start_date))

    def scenario(self) -> str:
        """Return a short key naming this scenario in the store (seed, start, full config)."""
        payload = {
            "seed": self.seed,
            "start": self.start_date,
            "config": self.lifecycle().model_dump(mode="json"),
        }
        return scenario_key(f"seed{self.seed}-pool{self.persona_pool}", payload)

    def dataset(self, name: str) -> str:
        """Return the store dataset name of ``name`` within this scenario."""
        return f"hogflix/{self.scenario()}/{name}"


def load_state_before(settings: HogflixSettings, store: LocalParquetStore, day: int) -> PersonaState:
    """Return the pool at the end of ``day - 1``: from the store, or rebuilt from the first day.

    Rebuilding replays the same deterministic steps a backfill would, so a day
    materialized alone equals the same day inside a backfill.
    """
    cfg, seed, genesis = settings.lifecycle(), settings.seed, settings.genesis_day()
    if day < genesis:
        raise ValueError(f"{day_date(day)} is before the first simulated day {settings.start_date}")
    if day == genesis:
        return initial_state(cfg, seed, genesis)
    previous = day_date(day - 1).isoformat()
    dataset = settings.dataset("personas")
    if store.exists(dataset, previous):
        return from_frame(store.read(dataset, previous))
    written = [k for k in store.partitions(dataset) if k < previous]
    state = from_frame(store.read(dataset, written[-1])) if written else initial_state(cfg, seed, genesis)
    for d in range(state.day + 1, day):
        state = step_day(state, d, cfg, seed)
    return state


def _share_plot(metrics: pl.DataFrame) -> dg.MarkdownMetadataValue:
    """Return a stacked area plot of lifecycle state shares over the given days."""
    fig, ax = new_figure()
    total = metrics["total_personas"].to_numpy()
    dates = metrics["date"].to_list()
    shares = [metrics[f"state_{state}"].to_numpy() / total for state in STATES]
    ax.stackplot(dates, shares, labels=list(STATES))
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of personas")
    ax.legend(loc="lower left", ncols=5, fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    return figure_markdown(fig, "state shares")


def build_defs(start_date: str | None = None, end_date: str | None = None) -> dg.Definitions:
    """Return the HogFlix lifecycle definitions over daily partitions from ``start_date``."""
    partitions = daily_partitions(start_date, end_date)
    windows = half_hourly(partitions.start.strftime("%Y-%m-%d"), end_date)

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
        check_specs=[dg.AssetCheckSpec("persona_ids_unique", asset="hogflix_personas")],
        description=(
            "The HogFlix persona pool at the end of each UTC day: lifecycle state (NEW, ACTIVE, CASUAL, "
            "DORMANT, CHURNED), activity pattern, life events, streaks, engagement score and today's "
            "viewing. Each day is computed from the previous one, so a range runs as one run."
        ),
    )
    def hogflix_personas(
        context: dg.AssetExecutionContext, hogflix_settings: HogflixSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        keys = context.partition_keys
        cfg, seed = hogflix_settings.lifecycle(), hogflix_settings.seed
        first = day_number(dt.date.fromisoformat(keys[0]))
        state = load_state_before(hogflix_settings, store, first)
        dataset = hogflix_settings.dataset("personas")
        duplicates = 0
        frame = pl.DataFrame()
        for key in keys:
            state = step_day(state, day_number(dt.date.fromisoformat(key)), cfg, seed)
            frame = to_frame(state)
            duplicates += frame.height - frame["distinct_id"].n_unique()
            store.write(dataset, key, frame)
            context.log.info(
                "%s: %d personas, %d active today, %d signups, %d churned",
                key,
                frame.height,
                int(frame["active_today"].sum()),
                int(frame["signed_up_today"].sum()),
                int(frame["churned_today"].sum()),
            )
        by_state = frame.group_by("state").len().sort("state")
        by_pattern = (
            frame.filter(pl.col("state") != "CHURNED")
            .group_by("activity_pattern")
            .len()
            .sort("activity_pattern")
        )
        return dg.MaterializeResult(
            metadata={
                "days": len(keys),
                "last_day": keys[-1],
                "personas": frame.height,
                "scenario": hogflix_settings.scenario(),
                "path": dg.MetadataValue.path(str(store.path(dataset, keys[-1]))),
                "by_state": dg.MetadataValue.json({r["state"]: r["len"] for r in by_state.to_dicts()}),
                "by_pattern": dg.MetadataValue.json(
                    {r["activity_pattern"]: r["len"] for r in by_pattern.to_dicts()}
                ),
                "preview": md_table(
                    frame.select(
                        "distinct_id",
                        "plan",
                        "state",
                        "activity_pattern",
                        "engagement_score",
                        "consecutive_active_days",
                        "consecutive_missed_days",
                        "in_life_event",
                        "active_today",
                    )
                ),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="persona_ids_unique",
                    passed=duplicates == 0,
                    metadata={"duplicate_ids": duplicates, "days_checked": len(keys)},
                )
            ],
        )

    @dg.asset(
        name="hogflix_daily_metrics",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        deps=[hogflix_personas],
        kinds={"polars", "parquet"},
        check_specs=[
            dg.AssetCheckSpec("pool_within_band", asset="hogflix_daily_metrics"),
            dg.AssetCheckSpec("signups_within_band", asset="hogflix_daily_metrics"),
            dg.AssetCheckSpec("active_share_near_target", asset="hogflix_daily_metrics"),
        ],
        description=(
            "One row per day: pool size, active users, signups, churned and cleaned, reactivations, "
            "FlixBuddy calls and counts by lifecycle state and activity pattern."
        ),
    )
    def hogflix_daily_metrics(
        context: dg.AssetExecutionContext, hogflix_settings: HogflixSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        cfg = hogflix_settings.lifecycle()
        source, target = hogflix_settings.dataset("personas"), hogflix_settings.dataset("daily_metrics")
        rows = []
        for key in context.partition_keys:
            row = daily_metrics(store.read(source, key), dt.date.fromisoformat(key))
            store.write(target, key, row)
            rows.append(row)
        metrics = pl.concat(rows)
        history_keys = [k for k in store.partitions(target) if k <= context.partition_keys[-1]][-90:]
        history = store.read_many(target, history_keys).sort("date")
        pool_low, pool_high = cfg.pool_range
        signup_low, signup_high = cfg.signup_range
        active_share = metrics["state_ACTIVE"] / metrics["pool_size"]
        pool_ok = metrics["pool_size"].is_between(pool_low, pool_high)
        signup_ok = metrics["new_signups"].is_between(signup_low, signup_high)
        mean_share = float(active_share.mean())
        return dg.MaterializeResult(
            metadata={
                "days": metrics.height,
                "mean_active_today": float(metrics["active_today"].mean()),
                "mean_pool": float(metrics["pool_size"].mean()),
                "mean_signups": float(metrics["new_signups"].mean()),
                "mean_active_share": mean_share,
                "latest": md_table(metrics.tail(7)),
                "state_shares": _share_plot(history),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="pool_within_band",
                    passed=bool(pool_ok.all()),
                    metadata={
                        "band": f"{pool_low}-{pool_high}",
                        "days_outside": int((~pool_ok).sum()),
                        "min": int(metrics["pool_size"].min()),
                        "max": int(metrics["pool_size"].max()),
                    },
                ),
                dg.AssetCheckResult(
                    check_name="signups_within_band",
                    passed=bool(signup_ok.all()),
                    metadata={"band": f"{signup_low}-{signup_high}", "days_outside": int((~signup_ok).sum())},
                ),
                dg.AssetCheckResult(
                    check_name="active_share_near_target",
                    passed=0.60 <= mean_share <= 0.70,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "target": "60-70 %",
                        "mean_share": round(mean_share, 4),
                        "min_share": round(float(active_share.min()), 4),
                        "max_share": round(float(active_share.max()), 4),
                    },
                ),
            ],
        )

    traffic = traffic_assets(partitions, windows, HogflixSettings)
    by_name = {a.key.to_user_string(): a for a in traffic}
    lifecycle_job = dg.define_asset_job(
        "hogflix_daily_lifecycle",
        selection=dg.AssetSelection.assets(
            hogflix_personas,
            hogflix_daily_metrics,
            by_name["hogflix_traffic_daily"],
            by_name["hogflix_churn_cleanup"],
        ),
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
        selection=dg.AssetSelection.assets(
            *(
                by_name[n]
                for n in (
                    "hogflix_sessions",
                    "hogflix_events",
                    "hogflix_app_rows",
                    "hogflix_flixbuddy_conversations",
                )
            )
        ),  # fmt: skip
        description="Emit the sessions of the last 30 minutes: events, app rows and FlixBuddy chats.",
    )
    traffic_schedule = dg.build_schedule_from_partitioned_job(traffic_job, name="hogflix_every_30_minutes")
    return dg.Definitions(
        assets=[hogflix_personas, hogflix_daily_metrics, *traffic],
        jobs=[lifecycle_job, traffic_job],
        schedules=[daily_schedule, traffic_schedule],
        resources={"hogflix_settings": from_env(HogflixSettings), **traffic_resources()},
    )


defs = build_defs()
