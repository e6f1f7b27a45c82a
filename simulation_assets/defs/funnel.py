"""Funnel simulation as Dagster assets: the daily cohorts and what is sent from them; ``build_defs``.

Thin by design: every computation is a function of ``core/funnel`` (checks included, in
``core/funnel/checks.py``); this module wires them to partitions, the store and the UI. The
assets learned from a window of cohorts (rates, forecast, formulas, models) are in
``funnel_learning.py``, the deliveries' factory in ``funnel_delivery.py``; the settings resource is
``sinks/funnel_store.FunnelSettings``.
"""

import datetime as dt

import dagster as dg
import polars as pl

from simulation_assets.core.funnel import checks
from simulation_assets.core.funnel.charts import funnel_svg
from simulation_assets.core.funnel.checks import CheckOutcome
from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.schema import COLUMN_DESCRIPTIONS, EVENT_SCHEMA
from simulation_assets.core.funnel.taxonomy import TAXONOMY
from simulation_assets.defs.funnel_delivery import (
    GROUP,
    SINGLE_RUN,
    AppRowsDelivery,
    CapiDelivery,
    PostHogDelivery,
    StripeDelivery,
    delivery_asset,
)
from simulation_assets.defs.funnel_learning import LEARNING_ASSETS, check_result, svg_markdown
from simulation_assets.defs.metadata import COLUMN_SCHEMA, column_schema, md_table, table_metadata
from simulation_assets.defs.partitions import daily_partitions
from simulation_assets.sinks.config_files import from_env
from simulation_assets.sinks.funnel_app_db import FunnelAppDatabase
from simulation_assets.sinks.funnel_store import FunnelSettings
from simulation_assets.sinks.funnel_stripe import StripeWebhookSink
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.meta_capi import MetaCapiSink
from simulation_assets.sinks.posthog_events import PostHogEvents

__all__ = ["POSTHOG_ENV", "FunnelSettings", "build_defs"]  # and `defs`, built on first access

# The funnel's PostHog sink: its own switch, the project's PostHog host and key.
POSTHOG_ENV = {"mode": "FUNNEL_EVENTS_SINK", "host": "PH_HOST", "api_key": "PH_PROJECT_API_KEY"}


EVENT_COLUMNS = column_schema(
    EVENT_SCHEMA,
    COLUMN_DESCRIPTIONS,
    not_null=("event", "timestamp", "source", "environment", "distinct_id", "session_id", "event_id"),
    unique=("event_id",),
)
STATE_LABELS = {s.name: s.value for s in checks.FUNNEL_STATES}
# Checks whose failure makes what is computed from the events wrong: they stop the run there.
COHORT_CHECKS = {
    "events_match_taxonomy": (
        checks.events_match_taxonomy,
        "every event and required property follows the plan",
    ),
    "funnel_monotone": (checks.funnel_is_monotone, "nobody enters a funnel state without the one before"),
    "identity_stitched": (
        checks.identity_is_stitched,
        "anonymous ids become user ids at login, and only then",
    ),
}


def build_defs(
    start_date: str | None = None, end_date: str | None = None, *, audit: bool = True
) -> dg.Definitions:
    """Return the funnel definitions over daily partitions from ``start_date``.

    ``audit=False`` leaves out the tracking-plan audit (which reads a real export, never part of a
    simulation run): ``simulate funnel`` then skips importing the export reader and PyArrow.
    """
    partitions = daily_partitions(start_date, end_date)

    @dg.asset(
        name="funnel_cohort_events",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        kinds={"polars", "parquet"},
        metadata={COLUMN_SCHEMA: EVENT_COLUMNS},
        check_specs=[
            dg.AssetCheckSpec(name, asset="funnel_cohort_events", blocking=True, description=text)
            for name, (_, text) in COHORT_CHECKS.items()
        ],
        description=(
            "Canonical events of the people who clicked an ad on each UTC day, walking the S0-S11 funnel: "
            "landing, signup, login (identity stitched), credits, jobs with failures and reason codes, "
            "downloads, purchases, renewals, returns and churn, up to 90 days after the click."
        ),
    )
    def funnel_cohort_events(
        context: dg.AssetExecutionContext, funnel_settings: FunnelSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        cfg = funnel_settings.cohort_config()
        outcomes: dict[str, dict[str, CheckOutcome]] = {name: {} for name in COHORT_CHECKS}
        per_day, totals = {}, dict.fromkeys(STATE_LABELS, 0)
        events = pl.DataFrame(schema=EVENT_SCHEMA)
        for key in context.partition_keys:
            cohort = simulate_cohort_events(dt.date.fromisoformat(key), cfg, funnel_settings.seed)
            events = cohort.events
            store.write(funnel_settings.dataset("cohort_events"), key, events)
            store.write(funnel_settings.dataset("cohort_users"), key, cohort.users)
            for name, (check, _) in COHORT_CHECKS.items():
                outcomes[name][key] = check(events)
            people = outcomes["funnel_monotone"][key].metadata["people_by_state"]
            totals = {state: totals[state] + people[state] for state in totals}
            per_day[key] = {"events": events.height, "clickers": people["S0"], "purchasers": people["S9"]}
            context.add_asset_metadata(
                {**table_metadata(rows=events.height), "people_by_state": dg.MetadataValue.json(people)},
                partition_key=key,
            )
        by_category = events.group_by(
            pl.col("event")
            .replace_strict({k: v.category.name for k, v in TAXONOMY.items()})
            .alias("category")
        ).len()
        return dg.MaterializeResult(
            metadata={
                "days_in_run": len(context.partition_keys),
                "impressions_per_day": cfg.impressions_per_day,
                "scenario": funnel_settings.scenario(),
                "path": dg.MetadataValue.path(
                    str(store.path(funnel_settings.dataset("cohort_events"), context.partition_keys[-1]))
                ),
                "per_day": dg.MetadataValue.json(per_day),
                "events_by_category_last_day": dg.MetadataValue.json(
                    dict(sorted(zip(by_category["category"].to_list(), by_category["len"].to_list())))
                ),
                "preview": md_table(
                    events.select(
                        "event",
                        "timestamp",
                        "source",
                        "distinct_id",
                        "user_id",
                        "session_id",
                        "page_path",
                        "job_id",
                    )
                ),
                "funnel": svg_markdown(
                    funnel_svg({STATE_LABELS[k]: v for k, v in totals.items()}, "people reaching each state"),
                    "people reaching each state",
                ),
            },
            check_results=[
                check_result(name, checks.merge_days(by_day)) for name, by_day in outcomes.items()
            ],
        )

    funnel_capi_events = delivery_asset(
        partitions,
        funnel_cohort_events,
        CapiDelivery,
        name="funnel_capi_events",
        sink="funnel_capi",
        kinds={"meta", "json"},
        description=(
            "Each day's funnel events mapped to Meta Conversions API server events (PageView, ViewContent, "
            "Lead, CompleteRegistration, InitiateCheckout, Purchase, AddToCart) with hashed user data and "
            "the event id for Pixel/CAPI dedup; written as JSON lines, posted only when configured."
        ),
    )
    funnel_posthog_events = delivery_asset(
        partitions,
        funnel_cohort_events,
        PostHogDelivery,
        name="funnel_posthog_events",
        sink="funnel_posthog",
        kinds={"posthog"},
        pool="posthog",
        description=(
            "Each day's funnel events as PostHog events (UUIDv7 ids, $identify at login with the anonymous "
            "id, UUIDv7 $session_id, $current_url): kept as Parquet, and posted to PostHog's /batch/ when "
            "FUNNEL_EVENTS_SINK=posthog (historical_migration for backfills, every batch confirmed). Events "
            "dated after now wait for a later run."
        ),
    )
    funnel_app_rows = delivery_asset(
        partitions,
        funnel_cohort_events,
        AppRowsDelivery,
        name="funnel_app_rows",
        sink="funnel_app_db",
        kinds={"postgres"},
        pool="app_db",
        description=(
            "The app database rows behind each day's events: users, their credit ledger and their purchases, "
            "kept as Parquet and, with FUNNEL_APP_DB=postgres, written to PostgreSQL/Supabase (schema "
            "funnel_app), replacing only that day's synthetic rows."
        ),
    )
    funnel_stripe_events = delivery_asset(
        partitions,
        funnel_cohort_events,
        StripeDelivery,
        name="funnel_stripe_events",
        sink="funnel_stripe",
        kinds={"stripe", "json"},
        description=(
            "Each day's purchases, renewals, plan changes, failed invoices, cancellations and refunds as Stripe "
            "test-mode webhook events (livemode false), written as JSON lines and, when "
            "FUNNEL_STRIPE_WEBHOOK_URL and its secret are set, posted signed to that endpoint."
        ),
    )

    DAILY = (
        funnel_cohort_events,
        funnel_capi_events,
        funnel_posthog_events,
        funnel_app_rows,
        funnel_stripe_events,
    )
    cohort_job = dg.define_asset_job(
        "funnel_daily_cohort",
        selection=dg.AssetSelection.assets(*DAILY),
        description="Simulate the day's ad-click cohort and deliver it: PostHog, Meta CAPI, app database, Stripe.",
    )
    learn_job = dg.define_asset_job(
        "funnel_learn_and_forecast",
        selection=dg.AssetSelection.assets(*LEARNING_ASSETS),
        description="Learn rates and the section 6 formulas from the cohorts, forecast, and retrain the models.",
    )
    if audit:
        from simulation_assets.defs.funnel_audit import funnel_tracking_audit

        audit_assets = [funnel_tracking_audit]
    else:
        audit_assets = []
    return dg.Definitions(
        assets=[*DAILY, *LEARNING_ASSETS, *audit_assets],
        jobs=[cohort_job, learn_job],
        schedules=[
            dg.build_schedule_from_partitioned_job(
                cohort_job, hour_of_day=6, minute_of_hour=30, name="funnel_daily_0630_utc"
            ),
        ],
        resources={
            "funnel_settings": from_env(FunnelSettings),
            "funnel_capi": from_env(MetaCapiSink),
            "funnel_posthog": from_env(PostHogEvents, POSTHOG_ENV),
            "funnel_app_db": from_env(FunnelAppDatabase),
            "funnel_stripe": from_env(StripeWebhookSink),
        },
    )


def __getattr__(name: str) -> dg.Definitions:
    # ``defs`` (the code location's funnel part, default partitions) is built on first access: a command
    # that builds its own range (simulate funnel) then skips it and the HogFlix start-date lookup.
    if name == "defs":
        built = globals()["defs"] = build_defs()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
