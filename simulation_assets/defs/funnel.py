"""Funnel simulation as Dagster assets: the daily cohorts and what is sent from them; ``build_defs``.

Thin by design: every computation is a function of ``core/funnel`` (checks included, in
``core/funnel/checks.py``); this module wires them to partitions, the store and the UI. The
assets learned from a window of cohorts (rates, forecast, formulas, models) are in
``funnel_learning.py``; the settings resource is ``sinks/funnel_store.FunnelSettings``.
"""

import datetime as dt

import dagster as dg
import polars as pl

from simulation_assets.core.funnel import checks
from simulation_assets.core.funnel.app_rows import app_rows
from simulation_assets.core.funnel.capi import capi_payloads
from simulation_assets.core.funnel.charts import funnel_svg
from simulation_assets.core.funnel.checks import CheckOutcome
from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.posthog import property_columns as posthog_property_columns
from simulation_assets.core.funnel.posthog import to_posthog
from simulation_assets.core.funnel.schema import COLUMN_DESCRIPTIONS, EVENT_SCHEMA
from simulation_assets.core.funnel.stripe import stripe_events
from simulation_assets.core.funnel.taxonomy import TAXONOMY
from simulation_assets.defs.funnel_learning import LEARNING_ASSETS, check_result, svg_markdown
from simulation_assets.defs.metadata import COLUMN_SCHEMA, column_schema, md_table, table_metadata
from simulation_assets.defs.partitions import daily_partitions
from simulation_assets.defs.policies import NETWORK_RETRY
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

GROUP = "funnel"
SINGLE_RUN = dg.BackfillPolicy.single_run()


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

    @dg.asset(
        name="funnel_capi_events",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        deps=[funnel_cohort_events],
        kinds={"meta", "json"},
        retry_policy=NETWORK_RETRY,
        description=(
            "Each day's funnel events mapped to Meta Conversions API server events (PageView, ViewContent, "
            "Lead, CompleteRegistration, InitiateCheckout, Purchase, AddToCart) with hashed user data and "
            "the event id for Pixel/CAPI dedup; written as JSON lines, posted only when configured."
        ),
    )
    def funnel_capi_events(
        context: dg.AssetExecutionContext,
        funnel_settings: FunnelSettings,
        store: LocalParquetStore,
        funnel_capi: MetaCapiSink,
    ) -> dg.MaterializeResult:
        total, by_name, sent = 0, {}, []
        path = None
        for key in context.partition_keys:
            events = store.read(funnel_settings.dataset("cohort_events"), key)
            payloads = capi_payloads(events)
            path = funnel_capi.write(f"{funnel_settings.scenario()}/{key}", payloads)
            report = funnel_capi.send(payloads)
            sent.append(report.model_dump() | {"day": key})
            total += len(payloads)
            for p in payloads:
                by_name[p["event_name"]] = by_name.get(p["event_name"], 0) + 1
            context.add_asset_metadata(table_metadata(rows=len(payloads)), partition_key=key)
        return dg.MaterializeResult(
            metadata={
                "payloads_in_run": total,
                "by_meta_event": dg.MetadataValue.json(by_name),
                "live": funnel_capi.is_live(),
                "send": dg.MetadataValue.json(sent[-5:]),
                "path": dg.MetadataValue.path(str(path)),
            }
        )

    @dg.asset(
        name="funnel_posthog_events",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        deps=[funnel_cohort_events],
        kinds={"posthog"},
        retry_policy=NETWORK_RETRY,
        pool="posthog",
        description=(
            "Each day's funnel events as PostHog events (UUIDv7 ids, $identify at login with the anonymous "
            "id, UUIDv7 $session_id, $current_url): kept as Parquet, and posted to PostHog's /batch/ when "
            "FUNNEL_EVENTS_SINK=posthog (historical_migration for backfills, every batch confirmed). Events "
            "dated after now wait for a later run."
        ),
    )
    def funnel_posthog_events(
        context: dg.AssetExecutionContext,
        funnel_settings: FunnelSettings,
        store: LocalParquetStore,
        funnel_posthog: PostHogEvents,
    ) -> dg.MaterializeResult:
        site = funnel_settings.cohort_config().site()
        now = dt.datetime.now(dt.UTC)
        totals = {"events": 0, "delivered": 0, "not_yet_due": 0, "identify": 0}
        report = None
        for key in context.partition_keys:
            frame = to_posthog(store.read(funnel_settings.dataset("cohort_events"), key), site)
            store.write(funnel_settings.dataset("posthog_events"), key, frame)
            due = frame.filter(pl.col("timestamp") <= now)
            report = funnel_posthog.deliver(due, now=now, property_columns=posthog_property_columns(frame))
            totals["events"] += frame.height
            totals["delivered"] += report.events
            totals["not_yet_due"] += frame.height - due.height
            totals["identify"] += frame.filter(pl.col("event") == "$identify").height
            context.add_asset_metadata(
                {**table_metadata(rows=frame.height), "delivered": report.events}, partition_key=key
            )
        return dg.MaterializeResult(
            metadata={
                **{f"{k}_in_run": v for k, v in totals.items()},
                **(report.as_metadata() if report else {}),
                "path": dg.MetadataValue.path(
                    str(store.path(funnel_settings.dataset("posthog_events"), context.partition_keys[-1]))
                ),
            }
        )

    @dg.asset(
        name="funnel_app_rows",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        deps=[funnel_cohort_events],
        kinds={"postgres"},
        retry_policy=NETWORK_RETRY,
        pool="app_db",
        description=(
            "The app database rows behind each day's events: users, their credit ledger and their purchases, "
            "kept as Parquet and, with FUNNEL_APP_DB=postgres, written to PostgreSQL/Supabase (schema "
            "funnel_app), replacing only that day's synthetic rows."
        ),
    )
    def funnel_app_rows(
        context: dg.AssetExecutionContext,
        funnel_settings: FunnelSettings,
        store: LocalParquetStore,
        funnel_app_db: FunnelAppDatabase,
    ) -> dg.MaterializeResult:
        written: dict[str, int] = {}
        for key in context.partition_keys:
            rows = app_rows(store.read(funnel_settings.dataset("cohort_events"), key))
            for table, frame in rows.items():
                store.write(funnel_settings.dataset(f"app/{table}"), key, frame)
            for table, n in funnel_app_db.write_day(key, rows).items():
                written[table] = written.get(table, 0) + n
            context.add_asset_metadata(
                {
                    **table_metadata(rows=sum(f.height for f in rows.values())),
                    **{t: f.height for t, f in rows.items()},
                },
                partition_key=key,
            )
        return dg.MaterializeResult(
            metadata={"database": funnel_app_db.mode, "rows_written": dg.MetadataValue.json(written)}
        )

    @dg.asset(
        name="funnel_stripe_events",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        deps=[funnel_cohort_events],
        kinds={"stripe", "json"},
        retry_policy=NETWORK_RETRY,
        description=(
            "Each day's purchases, renewals, plan changes, failed invoices, cancellations and refunds as Stripe "
            "test-mode webhook events (livemode false), written as JSON lines and, when "
            "FUNNEL_STRIPE_WEBHOOK_URL and its secret are set, posted signed to that endpoint."
        ),
    )
    def funnel_stripe_events(
        context: dg.AssetExecutionContext,
        funnel_settings: FunnelSettings,
        store: LocalParquetStore,
        funnel_stripe: StripeWebhookSink,
    ) -> dg.MaterializeResult:
        total, by_type, path, sent = 0, {}, None, []
        for key in context.partition_keys:
            events = stripe_events(store.read(funnel_settings.dataset("cohort_events"), key))
            path = funnel_stripe.write(f"{funnel_settings.scenario()}/{key}", events)
            sent.append(funnel_stripe.send(events).model_dump() | {"day": key})
            total += len(events)
            for e in events:
                by_type[e["type"]] = by_type.get(e["type"], 0) + 1
            context.add_asset_metadata(table_metadata(rows=len(events)), partition_key=key)
        return dg.MaterializeResult(
            metadata={
                "events_in_run": total,
                "by_type": dg.MetadataValue.json(by_type),
                "live": funnel_stripe.is_live(),
                "send": dg.MetadataValue.json(sent[-5:]),
                "path": dg.MetadataValue.path(str(path)),
            }
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
