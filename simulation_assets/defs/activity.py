"""Real-time customer activity: a 30-second tick, the proactive monitor downstream, and a sensor that drives them."""

import datetime as dt
import time
from typing import ClassVar

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.activity import checks
from simulation_assets.core.activity.config import INTERVENTION_TYPES, ActivityConfig
from simulation_assets.core.activity.schema import CUSTOMER_SCHEMA
from simulation_assets.core.charts import Guide, Series, chart_svg
from simulation_assets.defs.metadata import (
    COLUMN_SCHEMA,
    column_schema,
    md_table,
    svg_markdown,
    table_metadata,
)
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.activity_backends import activity_store_from_env
from simulation_assets.sinks.activity_store import ActivityStore, TickOutcome, utc_now
from simulation_assets.sinks.config_files import from_env, load_config

GROUP = "activity"
TICK_TAG = "activity/tick"
SIMULATION_TAG = "activity/simulation"
STALE_RUN_SECONDS = 600  # a tick run takes seconds; one "running" for 10 minutes was cut off
MAX_LOGGED_EVENTS = 40  # per tick; the rest are summarised in one line
_IN_FLIGHT = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}
_FAILED = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


class ActivitySettings(dg.ConfigurableResource):
    """Which activity scenario to simulate: the seed and optional overrides of the tick and monitor numbers."""

    ENV: ClassVar[dict[str, str]] = {"seed": "SIMULATION_SEED", "config_path": "ACTIVITY_CONFIG"}

    seed: int = Field(default=42, ge=0)
    config_path: str = Field(
        default="", description="Optional YAML file with ActivityConfig overrides ($ACTIVITY_CONFIG)."
    )

    def config(self) -> ActivityConfig:
        """Return the validated configuration (defaults, then the YAML file's overrides)."""
        return load_config(ActivityConfig, self.config_path or None, source="ACTIVITY_CONFIG")


class ActivityTickConfig(dg.Config):
    """Which tick a run applies and when."""

    tick: int = Field(default=0, ge=0, description="Tick number to apply; 0 applies the next one.")
    at: str = Field(default="", description="ISO 8601 time of the tick (fast-forward); empty means now.")
    ticks: int = Field(
        default=1,
        ge=1,
        le=1000,
        description=(
            "Fast-forward: apply this many consecutive ticks, tick_seconds apart from `at`; the monitor "
            "checks after each one (the last check is the monitor_interventions asset)."
        ),
    )


def tick_time(value: str) -> dt.datetime:
    """Return the tick time from ISO text (UTC when no offset is given), or now when empty."""
    if not value:
        return utc_now()
    parsed = dt.datetime.fromisoformat(value)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def tick_run_config(tick: int = 0, at: str = "", ticks: int = 1) -> dict:
    """Return the run config that makes a run of the tick job apply ``ticks`` ticks from ``tick`` at ``at``."""
    return {"ops": {"activity_tick": {"config": {"tick": tick, "at": at, "ticks": ticks}}}}


def _calls_plot(log: pl.DataFrame) -> dg.MarkdownMetadataValue:
    chart = chart_svg(
        log["tick"].to_list(),
        [
            Series("API calls in tick", log["api_calls"].to_list(), kind="bar", color="#3b82f6"),
            Series(
                "mean error rate %", (log["mean_error_rate"] * 100).to_list(), axis="right", color="#dc2626"
            ),
        ],
        x_label="tick",
        y_label="API calls",
        y2_label="error rate %",
        guides=[Guide(10, axis="right")],
    )
    return svg_markdown(chart, "API calls and error rate per tick")


def _log_tick(context: dg.AssetExecutionContext, outcome: TickOutcome) -> None:
    """Log the tick as one console-style block (one Dagster event, not one per line)."""
    assert outcome.result is not None
    messages = outcome.result.events["message"].to_list()
    lines = messages[:MAX_LOGGED_EVENTS]
    if len(messages) > MAX_LOGGED_EVENTS:
        lines.append(f"… and {len(messages) - MAX_LOGGED_EVENTS} more events (see the events table)")
    s = outcome.result.summary
    lines.append(
        f"✅ Tick {outcome.tick} complete: {s['customers']} customers, +{s['api_calls']} API calls, "
        f"{s['error_spikes']} spikes, {s['error_fixes']} fixes, {s['trend_changes']} trend changes, "
        f"{s['new_customers']} new"
    )
    context.log.info("\n".join(lines))


def build_defs() -> dg.Definitions:
    """Return the activity definitions: tick and monitor assets, their job and the 30-second sensor."""

    @dg.asset(
        name="activity_tick",
        group_name=GROUP,
        kinds={"numpy", "duckdb", "postgres"},
        pool="app_db",
        retry_policy=NETWORK_RETRY,
        check_specs=[
            dg.AssetCheckSpec(
                "counters_never_decrease",
                asset="activity_tick",
                blocking=True,  # the monitor would judge customers on broken counters
                description="No customer loses API calls or disappears, and the tick log's total never drops.",
            )
        ],
        metadata={
            COLUMN_SCHEMA: column_schema(CUSTOMER_SCHEMA, not_null=["customer_id"], unique=["customer_id"])
        },
        description=(
            "A tick of customer activity (every 30 s): active customers call the API, error rates spike "
            "and get fixed, usage trends change, onboarding customers make their first call, and now and "
            "then a new customer signs up. Writes one row per customer, a tick-log row and the tick's events "
            "to the activity store; a tick number is applied at most once."
        ),
    )
    def activity_tick(
        context: dg.AssetExecutionContext,
        config: ActivityTickConfig,
        activity_settings: ActivitySettings,
        activity_store: ActivityStore,
    ) -> dg.MaterializeResult:
        with activity_store.held():  # one connection for the step's transactions
            return _tick_step(context, config, activity_settings, activity_store)

    def _tick_step(
        context: dg.AssetExecutionContext,
        config: ActivityTickConfig,
        activity_settings: ActivitySettings,
        activity_store: ActivityStore,
    ) -> dg.MaterializeResult:
        cfg = activity_settings.config()
        at = tick_time(config.at)
        outcomes: list[TickOutcome] = []
        for i in range(config.ticks):
            if i:  # the check between fast-forwarded ticks; the one after the last is monitor_interventions
                activity_store.run_monitor(cfg, source="dagster", at=outcomes[-1].at)
            tick_at = at + dt.timedelta(seconds=cfg.tick_seconds * i)
            tick = config.tick + i if config.tick else None
            outcome = activity_store.apply_tick(cfg, activity_settings.seed, tick_at, tick=tick)
            outcomes.append(outcome)
            if outcome.started:
                context.log.info("🚀 Started a new simulation with %d customers", outcome.before.height)
            if outcome.applied:
                context.log.info(
                    "🔄 Tick %d at %s (store %s)",
                    outcome.tick,
                    tick_at.isoformat(),
                    activity_store.location(),
                )
                _log_tick(context, outcome)
            else:
                context.log.info("⏭️ Tick %d was already applied; nothing changed", outcome.tick)
        applied = [o for o in outcomes if o.applied]
        log = activity_store.tick_log(last=60)
        outcome = outcomes[-1]
        if applied:
            after = applied[-1].result.customers  # type: ignore[union-attr]
            counters = checks.counters_never_decrease(applied[0].before, after, log)
            summaries = pl.DataFrame([o.result.summary for o in applied])  # type: ignore[union-attr]
            summary = {k: summaries[k].sum() for k in ("api_calls", "new_customers", "error_spikes")}
            summary |= {k: summaries[k].sum() for k in ("error_fixes", "trend_changes", "first_api_calls")}
            summary["total_api_calls"] = summaries["total_api_calls"][-1]
            events = applied[-1].result.events  # type: ignore[union-attr]
        else:
            after = outcome.before
            counters = checks.counters_never_decrease(after, after, log)
            summary = log.filter(pl.col("tick") == outcome.tick).to_dicts()[0] if log.height else {}
            events = pl.DataFrame({"message": []}, schema={"message": pl.String})
        by_stage = after.group_by("stage").len().sort("stage")
        return dg.MaterializeResult(
            metadata={
                **table_metadata(after, schema=CUSTOMER_SCHEMA),
                "tick": outcome.tick,
                "ticks_applied": len(applied),
                "applied_now": outcome.applied,
                "tick_at": outcome.at.isoformat(),
                "customers": after.height,
                "api_calls": int(summary.get("api_calls", 0)),
                "total_api_calls": int(summary.get("total_api_calls", 0)),
                "new_customers": int(summary.get("new_customers", 0)),
                "error_spikes": int(summary.get("error_spikes", 0)),
                "error_fixes": int(summary.get("error_fixes", 0)),
                "trend_changes": int(summary.get("trend_changes", 0)),
                "first_api_calls": int(summary.get("first_api_calls", 0)),
                "by_stage": dg.MetadataValue.json({r["stage"]: r["len"] for r in by_stage.to_dicts()}),
                "last_tick_events": md_table(events.select("message"), max_rows=15),
                "customers_preview": md_table(
                    after.select("name", "stage", "plan", "total_api_calls", "error_rate", "usage_trend"),
                    max_rows=15,
                ),
                "calls_per_tick": _calls_plot(log),
                "store": activity_store.location(),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="counters_never_decrease", passed=counters.passed, metadata=counters.metadata
                )
            ],
        )

    @dg.asset(
        name="monitor_interventions",
        group_name=GROUP,
        deps=[activity_tick],
        kinds={"polars", "duckdb", "postgres"},
        pool="app_db",
        retry_policy=NETWORK_RETRY,
        check_specs=[
            dg.AssetCheckSpec(
                "no_duplicate_open_interventions",
                asset="monitor_interventions",
                description="No customer has two open interventions of one type.",
            ),
            dg.AssetCheckSpec(
                "open_interventions_match_rules",
                asset="monitor_interventions",
                description="Right after the check, exactly the interventions whose rule holds are open.",
            ),
        ],
        description=(
            "The proactive monitor, run after every tick: opens Error Debugging (error rate > 10 %), "
            "Onboarding Check In (stuck in onboarding), Upsell Suggestion (usage increasing) and Retention "
            "Outreach (usage declining) interventions, and closes them when the condition clears."
        ),
    )
    def monitor_interventions(
        context: dg.AssetExecutionContext, activity_settings: ActivitySettings, activity_store: ActivityStore
    ) -> dg.MaterializeResult:
        with activity_store.held():  # one connection for the step's transactions
            return _monitor_step(context, activity_settings, activity_store)

    def _monitor_step(
        context: dg.AssetExecutionContext, activity_settings: ActivitySettings, activity_store: ActivityStore
    ) -> dg.MaterializeResult:
        outcome = activity_store.run_monitor(activity_settings.config(), source="dagster")
        lines = [f"🔍 Monitor check #{outcome.check_no} at tick {outcome.tick}"]
        lines += [
            f"🆘 {r['customer_name']}: opened {r['type']} ({r['reason']})"
            for r in outcome.result.opened.iter_rows(named=True)
        ]
        lines += [
            f"✅ {r['customer_name']}: closed {r['type']} ({r['close_reason']})"
            for r in outcome.result.closed.iter_rows(named=True)
        ]
        lines.append(f"📋 {outcome.opened} opened, {outcome.closed} closed, {outcome.open_after} open now")
        context.log.info("\n".join(lines))
        open_now, customers = outcome.open_now, outcome.customers  # as stored after the check
        assert open_now is not None and customers is not None
        duplicates = checks.no_duplicate_open_interventions(open_now)
        matching = checks.open_interventions_match_rules(
            customers, open_now, activity_settings.config(), outcome.tick
        )
        by_type = {t: 0 for t in INTERVENTION_TYPES}
        by_type.update({r["type"]: r["len"] for r in open_now.group_by("type").len().to_dicts()})
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": open_now.height,
                "check_no": outcome.check_no,
                "tick": outcome.tick,
                "opened": outcome.opened,
                "closed": outcome.closed,
                "open_now": outcome.open_after,
                "open_by_type": dg.MetadataValue.json(by_type),
                "open_interventions": md_table(
                    open_now.select("customer_name", "type", "reason", "opened_tick"), max_rows=20
                ),
                "closed_this_check": md_table(
                    outcome.result.closed.select("customer_name", "type", "close_reason", "opened_tick"),
                    max_rows=20,
                ),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="no_duplicate_open_interventions",
                    passed=duplicates.passed,
                    metadata=duplicates.metadata,
                ),
                dg.AssetCheckResult(
                    check_name="open_interventions_match_rules",
                    passed=matching.passed,
                    metadata=matching.metadata,
                ),
            ],
        )

    tick_job = dg.define_asset_job(
        "activity_tick_job",
        selection=dg.AssetSelection.assets(activity_tick, monitor_interventions),
        description="Apply one activity tick, then run the proactive monitor.",
    )

    @dg.sensor(
        name="activity_tick_every_30s",
        job=tick_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Launches the next activity tick every 30 s. The run key names the simulation and the tick, "
            "so a restarted daemon never launches the same tick twice; a failed tick is retried."
        ),
    )
    def activity_tick_every_30s(
        context: dg.SensorEvaluationContext,
        activity_settings: ActivitySettings,
        activity_store: ActivityStore,
    ) -> dg.RunRequest | dg.SkipReason:
        with activity_store.held():
            activity_store.start(activity_settings.config(), activity_settings.seed)
            return next_tick_request(context.instance, activity_store)

    return dg.Definitions(
        assets=[activity_tick, monitor_interventions],
        jobs=[tick_job],
        sensors=[activity_tick_every_30s],
        resources={
            "activity_settings": from_env(ActivitySettings),
            "activity_store": activity_store_from_env(),
        },
    )


def next_tick_request(instance: dg.DagsterInstance, store: ActivityStore) -> dg.RunRequest | dg.SkipReason:
    """Return the run request for the store's next tick, or a skip while that tick is still running.

    The run key is ``activity-<simulation>-tick-<n>``; after a failed attempt the key gets a
    ``-retry-<k>`` suffix, which is safe because the store applies a tick number at most once. A run
    left "in flight" for more than ``STALE_RUN_SECONDS`` (its process was killed) counts as failed.
    """
    last, simulation, _at = store.head()
    tick = last + 1
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={SIMULATION_TAG: simulation, TICK_TAG: str(tick)})
    )
    now = time.time()
    # A run "in flight" for longer than this was cut off (its process died): treat it as failed.
    stale = [
        r
        for r in records
        if r.dagster_run.status in _IN_FLIGHT and now - r.create_timestamp.timestamp() > STALE_RUN_SECONDS
    ]
    if any(r.dagster_run.status in _IN_FLIGHT for r in records if r not in stale):
        return dg.SkipReason(f"tick {tick} is still running")
    failed = sum(r.dagster_run.status in _FAILED for r in records) + len(stale)
    run_key = f"activity-{simulation}-tick-{tick}" + (f"-retry-{failed}" if failed else "")
    return dg.RunRequest(
        run_key=run_key,
        run_config=tick_run_config(tick),
        tags={SIMULATION_TAG: simulation, TICK_TAG: str(tick)},
    )


defs = build_defs()
