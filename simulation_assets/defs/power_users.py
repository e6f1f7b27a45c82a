"""Power-user runs against a target API, one partition per persona (archetype) and day, and the daily report."""

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.power_users import checks
from simulation_assets.core.power_users.config import ConfigError, Scenario
from simulation_assets.core.power_users.report import (
    REQUEST_SCHEMA,
    build_report,
    console_summary,
    day_run_summary,
)
from simulation_assets.core.power_users.rhythm import is_active, parse_pace
from simulation_assets.core.power_users.stripe_events import stripe_events
from simulation_assets.defs.metadata import COLUMN_SCHEMA, column_schema, table_metadata
from simulation_assets.defs.partitions import start_date_from_env
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.defs.power_users_metadata import load_metadata, report_metadata
from simulation_assets.sinks.config_files import from_env
from simulation_assets.sinks.http_retry import DeliveryError
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.power_users_cleanup import TargetUserCleanup
from simulation_assets.sinks.power_users_client import PowerUserTarget, RunResult
from simulation_assets.sinks.power_users_notify import StripeEventWebhook
from simulation_assets.sinks.power_users_scenario import load_scenario
from simulation_assets.sinks.power_users_session import SessionOptions
from simulation_assets.sinks.power_users_store import (
    TABLES,
    log_path,
    read_day,
    report_path,
    write_report,
    write_tables,
)
from simulation_assets.sinks.power_users_wandb import WandbAnalysisLog

GROUP = "power_users"
RUNS = "power_user_runs"
REPORT = "power_user_report"
# name -> (blocking, description). A blocking check fails the run: the report would add up broken tables.
RUN_CHECKS: dict[str, tuple[bool, str]] = {
    "run_tables_consistent": (
        True,
        "requests, attempts, edge cases and users describe the same requests (no strays, duplicates, "
        "attempt-count mismatches or negative values)",
    ),
    "success_rate_above_threshold": (
        False,
        "share of requests answered with their expected status >= simulation_config.success_rate_threshold",
    ),
    "configured_edge_cases_triggered": (False, "every edge case the personas configure was triggered"),
    "cost_within_budget": (False, "AI tokens + Stripe fees + hosting <= simulation_config.cost_budget_usd"),
    "sessions_follow_rhythm": (
        False,
        "each session starts in its persona's local hours, lasts session_minutes, holds analyses_per_session "
        "routine analyses and falls on one of its weekdays",
    ),
    "active_users_match_frequency": (
        False,
        "per archetype and day, the users with a session number what usage_frequency predicts (binomial band)",
    ),
    "latency_p95_within_slo": (
        False,
        "95th percentile latency (from the scheduled send under a load shape) <= simulation_config.slo.p95_ms",
    ),
    "error_rate_within_slo": (
        False,
        "share of requests without their expected answer <= simulation_config.slo.error_rate",
    ),
    "arrival_rate_held": (
        False,
        "an open-model load achieved its requested arrival rate within simulation_config.slo.rate_tolerance",
    ),
}
REPORT_CHECKS = tuple(name for name in RUN_CHECKS if name != "run_tables_consistent")
# The requests table (one row per request, its final attempt) is what dagster/row_count counts.
REQUEST_COLUMNS = column_schema(
    REQUEST_SCHEMA,
    {
        "status": "final HTTP status; 0 = client timeout, -1 = no connection",
        "attempts": "HTTP attempts including retries",
        "ok": "the status was one the action expects",
        "latency_ms": "milliseconds over all attempts",
        "payment_usd": "amount charged by a successful checkout",
        "sim_at": "time of the request on the session's simulated clock (UTC)",
        "routine": "one of the persona's analyses_per_session",
    },
    not_null=("user", "action_type", "status"),
)
# The day's report follows its runs: whenever a persona run of the latest day lands and none is running.
REPORT_AUTOMATION = (
    dg.AutomationCondition.in_latest_time_window()
    & dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after the day's persona runs")
DAILY_SCHEDULE_CRON = "0 6 * * *"  # 06:00 UTC: after midnight in every US time zone


def scenario_from(path: str | None = None) -> Scenario:
    """Return the scenario of ``path`` (default ``$POWER_USERS_SCENARIO`` or the packaged file)."""
    try:
        return load_scenario(path or os.environ.get("POWER_USERS_SCENARIO") or None, "POWER_USERS_SCENARIO")
    except ConfigError:
        # The asset reports the file's error when it runs; the partitions fall back to the packaged personas.
        return load_scenario(None)


def persona_names(scenario_path: str | None = None) -> list[str]:
    """Return the archetype (persona) names that partition ``power_user_runs``."""
    return scenario_from(scenario_path).archetypes()


def power_users_target(**explicit: str) -> PowerUserTarget:
    """Return the target resource with ``POWER_USERS_BASE_URL`` / ``POWER_USERS_SCENARIO`` bound as env vars."""
    return from_env(
        PowerUserTarget,
        {"base_url": "POWER_USERS_BASE_URL", "scenario_path": "POWER_USERS_SCENARIO"},
        **explicit,
    )


def power_user_days() -> dg.DailyPartitionsDefinition:
    """Return the days of power-user runs: UTC days from the start date up to and including today."""
    return dg.DailyPartitionsDefinition(start_date=start_date_from_env(), end_offset=1, timezone="UTC")


def runs_partitions(personas: list[str]) -> dg.MultiPartitionsDefinition:
    """Return the persona × day partitions of ``power_user_runs``."""
    return dg.MultiPartitionsDefinition(
        {"persona": dg.StaticPartitionsDefinition(personas), "day": power_user_days()}
    )


def persona_day_key(persona: str, day: str) -> dg.MultiPartitionKey:
    """Return the ``power_user_runs`` partition key of ``persona`` on ``day``."""
    return dg.MultiPartitionKey({"persona": persona, "day": day})


def active_archetypes(scenario: Scenario, day: str) -> list[str]:
    """Return the archetypes with at least one user (of the scenario's population) in session on ``day``."""
    date, seed = dt.date.fromisoformat(day), scenario.simulation_config.seed
    return list(
        dict.fromkeys(
            p.archetype for p in scenario.populated().simulations if is_active(p.rhythm(), seed, p.name, date)
        )
    )


@contextmanager
def reference_target(configured_url: str, own_process: bool = False) -> Iterator[str]:
    """Yield the URL of the bundled reference API served on loopback, unless an API is configured.

    ``own_process`` serves it from a child process (for loads, so it does not share the
    generator's interpreter; this process then imports neither uvicorn nor the app); otherwise from
    a thread, which starts in a fraction of a second.
    """
    if configured_url:
        yield ""
        return
    if own_process:
        from simulation_assets.target.process import TargetProcess

        with TargetProcess() as child:
            yield child.base_url
        return
    from simulation_assets.target.server import LocalTarget

    with LocalTarget() as local:
        yield local.base_url


def check_outcomes(
    frames: dict[str, pl.DataFrame], scenario: Scenario, names: tuple[str, ...]
) -> Iterator[tuple[str, checks.CheckOutcome]]:
    """Yield (name, outcome) of the asset checks ``names`` over the run tables ``frames``."""
    settings = scenario.simulation_config
    compute = {
        "run_tables_consistent": lambda: checks.run_tables_consistent(
            frames["requests"], frames["attempts"], frames["edges"], frames["users"]
        ),
        "success_rate_above_threshold": lambda: checks.success_rate_above(
            frames["requests"], settings.success_rate_threshold
        ),
        "configured_edge_cases_triggered": lambda: checks.configured_edge_cases_triggered(
            frames["edges"], frames["users"]
        ),
        "cost_within_budget": lambda: checks.cost_within_budget(
            frames["requests"], frames["users"], settings.costs, settings.cost_budget_usd
        ),
        "sessions_follow_rhythm": lambda: checks.sessions_follow_rhythm(frames["users"], frames["requests"]),
        "active_users_match_frequency": lambda: checks.active_users_match_frequency(frames["users"]),
        "latency_p95_within_slo": lambda: checks.latency_p95_within_slo(
            frames["attempts"], settings.slo.p95_ms
        ),
        "error_rate_within_slo": lambda: checks.error_rate_within_slo(
            frames["requests"], settings.slo.error_rate
        ),
        "arrival_rate_held": lambda: checks.arrival_rate_held(
            frames["attempts"], frames["load"], settings.slo.rate_tolerance
        ),
    }
    for name in names:
        yield name, compute[name]()


def check_results(
    frames: dict[str, pl.DataFrame], scenario: Scenario, asset: str, names: tuple[str, ...]
) -> list[dg.AssetCheckResult]:
    """Return the asset check results ``names`` over the run tables ``frames``.

    An asset yields them after its ``MaterializeResult``, each naming its asset and check: Dagster
    then looks up the materialization a check is about once per result (inside the result, twice).
    """
    return [
        dg.AssetCheckResult(
            asset_key=asset, check_name=name, passed=outcome.passed, metadata=outcome.metadata
        )
        for name, outcome in check_outcomes(frames, scenario, names)
    ]


def combined(frames_by_day: dict[str, dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    """Return the tables of one day, or of several with users named ``day/user`` so they stay distinct."""
    if len(frames_by_day) == 1:
        return next(iter(frames_by_day.values()))
    return {
        table: pl.concat(
            [
                frames[table].with_columns((pl.lit(f"{day}/") + pl.col("user")).alias("user"))
                if "user" in frames[table].columns
                else frames[table]
                for day, frames in frames_by_day.items()
            ]
        )
        for table in TABLES
    }


class PowerUserCleanupConfig(dg.Config):
    """Run options of ``power_user_cleanup``."""

    delete: bool = Field(default=False, description="delete after counting; false: count only (dry run)")


class PowerUserRunConfig(dg.Config):
    """Run options of ``power_user_runs``."""

    follow_rhythm: bool = Field(
        default=True,
        description="sessions only on each user's active days (usage_frequency); false: every user, on demand",
    )
    pace: str = Field(
        default="simulated",
        description="think times on the simulated clock ('simulated'), in real time ('real'), or sped up ('x60')",
    )
    users: int = Field(
        default=0, ge=0, description="population size cloned from the archetypes; 0: the scenario's"
    )
    sequential: bool | None = Field(
        default=None,
        description="run the users of a day one after another; empty: the scenario's `parallel` setting",
    )
    shape: str = Field(
        default="", description="a load shape of the scenario (load_shapes) to run instead of the sessions"
    )
    live_progress: bool = Field(default=False, description="print a progress line every second of a load")
    report: bool = Field(
        default=False,
        description=(
            "also materialize power_user_report of the run's days, with its checks, in this run once its "
            "tables pass run_tables_consistent (for a run that completes its days); false: the report's own run"
        ),
    )


def _days_and_personas(
    context: dg.AssetExecutionContext, parts: dg.MultiPartitionsDefinition
) -> dict[str, set[str]]:
    by_day: dict[str, set[str]] = {}
    for key in context.partition_keys:
        dims = parts.get_partition_key_from_str(str(key)).keys_by_dimension
        by_day.setdefault(dims["day"], set()).add(dims["persona"])
    return by_day


def build_defs(scenario_path: str | None = None) -> dg.Definitions:
    """Return the power-user assets, schedule and job over ``scenario_path``'s personas (archetypes)."""
    names = persona_names(scenario_path)
    run_parts = runs_partitions(names)
    days = run_parts.get_partitions_def_for_dimension("day")

    @dg.asset(
        name=RUNS,
        group_name=GROUP,
        partitions_def=run_parts,
        pool="target_api",
        retry_policy=NETWORK_RETRY,
        kinds={"python", "parquet"},
        metadata={COLUMN_SCHEMA: REQUEST_COLUMNS},
        check_specs=[
            dg.AssetCheckSpec(name, asset=RUNS, blocking=blocking, description=text)
            for name, (blocking, text) in RUN_CHECKS.items()
        ],
        description=(
            "Scripted power users driving the target API for a day: every request with its status, latency, "
            "retries, tokens and charges, each session on its persona's rhythm (local start time, length, "
            "analyses) and every edge case provoked. One partition is one persona (with a population: all "
            "its clones) on one day; a run over several personas of a day runs them at once. With no base URL "
            "configured the bundled reference API is served on a free loopback port for the run."
        ),
    )
    def power_user_runs(
        context: dg.AssetExecutionContext,
        config: PowerUserRunConfig,
        power_users_target: PowerUserTarget,
        store: LocalParquetStore,
        power_users_webhook: StripeEventWebhook,
        power_users_wandb: WandbAnalysisLog,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        scenario = power_users_target.scenario()
        try:
            options = SessionOptions(
                follow_rhythm=config.follow_rhythm,
                speed=parse_pace(config.pace),
                shape=config.shape,
                progress=_print_line if config.live_progress else None,
            )
            if config.shape:
                scenario.load_shape(config.shape)
        except ValueError as exc:
            raise dg.Failure(description=f"power_user_runs config: {exc}", allow_retries=False) from None
        frames_by_day: dict[str, dict[str, pl.DataFrame]] = {}
        results: list[RunResult] = []
        logs: list[Path] = []
        with reference_target(power_users_target.target_url(scenario), own_process=bool(config.shape)) as url:
            for day, personas in sorted(_days_and_personas(context, run_parts).items()):
                logs.append(log_path(store, day, context.run.run_id))
                result = power_users_target.run(
                    personas=sorted(personas, key=names.index),
                    day=day,
                    sequential=config.sequential,
                    log_path=logs[-1],
                    scenario=scenario,
                    reference_url=url,
                    users=config.users or None,
                    options=options,
                )
                write_tables(store, result.frames, day)
                context.log.info(result.summary)
                frames_by_day[day] = result.frames
                results.append(result)
        frames = combined(frames_by_day)
        report = (
            results[0].report
            if len(results) == 1
            else _report(frames, scenario, {"days": list(frames_by_day)})
        )
        meta = {
            **table_metadata(frames["requests"], schema=REQUEST_COLUMNS),
            **report_metadata(report),
            **load_metadata(report),
        }
        meta["base_url"] = results[0].base_url
        meta["simulation_log"] = dg.MetadataValue.path(str(logs[0]))
        meta.update(_integrations(context, frames, scenario, store, power_users_webhook, power_users_wandb))
        yield dg.MaterializeResult(metadata=meta)
        outcomes = check_results(frames, scenario, RUNS, tuple(RUN_CHECKS))
        yield from outcomes
        if config.report and all(r.passed for r in outcomes if RUN_CHECKS[r.check_name][0]):
            # The report's materializations and check evaluations, as its own run would record them: a
            # second run would cost a run's set-up and events again (its partitions are days).
            report_meta, report_frames = day_reports(context, store, scenario, sorted(frames_by_day))
            for day in sorted(frames_by_day):
                context.log_event(
                    dg.AssetMaterialization(asset_key=REPORT, partition=day, metadata=report_meta)
                )
            for name, outcome in check_outcomes(report_frames, scenario, REPORT_CHECKS):
                context.log_event(
                    dg.AssetCheckEvaluation(
                        asset_key=dg.AssetKey(REPORT),
                        check_name=name,
                        passed=outcome.passed,
                        metadata=outcome.metadata,
                        blocking=False,
                    )
                )

    @dg.asset(
        name=REPORT,
        group_name=GROUP,
        partitions_def=days,
        # The day of a report maps to every persona of that day: Dagster infers it from the shared
        # "day" dimension (the explicit MultiToSingleDimensionPartitionMapping is a beta API).
        deps=[RUNS],
        kinds={"python", "json"},
        automation_condition=REPORT_AUTOMATION,
        check_specs=[
            dg.AssetCheckSpec(name, asset=REPORT, description=RUN_CHECKS[name][1]) for name in REPORT_CHECKS
        ],
        description=(
            "The day's simulation_report.json over every persona run stored that day: summary, costs (AI tokens, "
            "Stripe fees, prorated hosting), per-user and per-archetype results, sessions, edge cases triggered, "
            "errors with timestamps, and latency percentiles and requests/s per action."
        ),
    )
    def power_user_report(
        context: dg.AssetExecutionContext, power_users_target: PowerUserTarget, store: LocalParquetStore
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        scenario = power_users_target.scenario()
        meta, frames = day_reports(context, store, scenario, list(context.partition_keys))
        yield dg.MaterializeResult(metadata=meta)
        yield from check_results(frames, scenario, REPORT, REPORT_CHECKS)

    @dg.asset(
        name="power_user_cleanup",
        group_name=GROUP,
        kinds={"python", "postgres"},
        description=(
            "Counts, then (with delete: true) removes, the simulated users from the target's database: "
            "only e-mails on @simulated.propiq.test. A dry run by default."
        ),
    )
    def power_user_cleanup(
        context: dg.AssetExecutionContext,
        config: PowerUserCleanupConfig,
        power_users_cleanup: TargetUserCleanup,
    ) -> dg.MaterializeResult:
        try:
            power_users_cleanup.validate_config()
        except ValueError as exc:
            raise dg.Failure(description=f"power_users_cleanup: {exc}", allow_retries=False) from None
        counted = power_users_cleanup.clean(dry_run=True)
        context.log.info(
            f"{counted.matched} simulated users in {counted.where}; {counted.kept} others left alone"
        )
        done = power_users_cleanup.clean(dry_run=False) if config.delete else counted
        return dg.MaterializeResult(
            metadata={
                "dry_run": not config.delete,
                "matched": counted.matched,
                "deleted": done.deleted,
                "other_users_kept": counted.kept,
                "where": counted.where,
            }
        )

    daily_job = dg.define_asset_job("power_users_daily", selection=dg.AssetSelection.assets(RUNS))

    @dg.schedule(
        name="power_users_daily_schedule",
        job=daily_job,
        cron_schedule=DAILY_SCHEDULE_CRON,
        execution_timezone="UTC",
        description="Each day, one run per persona that has users in session that day (usage_frequency).",
    )
    def power_users_daily_schedule(
        context: dg.ScheduleEvaluationContext, power_users_target: PowerUserTarget
    ):
        day = context.scheduled_execution_time.date().isoformat()
        scenario = power_users_target.scenario()
        active = active_archetypes(scenario, day)
        if not active:
            return dg.SkipReason(f"no persona has a session on {day}")
        return [
            dg.RunRequest(run_key=f"{persona}|{day}", partition_key=persona_day_key(persona, day))
            for persona in active
            if persona in names
        ]

    return dg.Definitions(
        assets=[power_user_runs, power_user_report, power_user_cleanup],
        jobs=[daily_job],
        schedules=[power_users_daily_schedule],
        resources={
            "power_users_target": power_users_target(),
            "power_users_webhook": from_env(StripeEventWebhook, {"url": "POWER_USERS_SLACK_WEBHOOK_URL"}),
            "power_users_wandb": from_env(WandbAnalysisLog, {"enabled": "POWER_USERS_WANDB"}),
            "power_users_cleanup": from_env(
                TargetUserCleanup, {"dsn": "POWER_USERS_TARGET_DSN", "base_url": "POWER_USERS_BASE_URL"}
            ),
        },
    )


def _integrations(
    context: dg.AssetExecutionContext,
    frames: dict[str, pl.DataFrame],
    scenario: Scenario,
    store: LocalParquetStore,
    webhook: StripeEventWebhook,
    wandb_log: WandbAnalysisLog,
) -> dict[str, object]:
    """Announce the run's Stripe events to the webhook and log its analyses to W&B; return metadata.

    A webhook that refuses or stays down is reported, not fatal: the run's tables are already stored.
    """
    events = stripe_events(frames["requests"])
    meta: dict[str, object] = {"stripe_events": events.height}
    try:
        meta["webhook_notifications"] = webhook.notify(events, scenario.simulation_config.product_name)
    except DeliveryError as exc:
        context.log.warning(f"Stripe event notifications not delivered: {exc}")
        meta["webhook_notifications"] = 0
        meta["webhook_error"] = str(exc)[:300]
    folder = wandb_log.log(
        frames["requests"],
        scenario.simulation_config.costs,
        run_name=f"power-users-{context.run.run_id[:8]}",
        default_dir=store.root() / "power_users" / "wandb",
        config={
            "partitions": [str(k) for k in context.partition_keys],
            "seed": scenario.simulation_config.seed,
        },
    )
    if folder is not None:
        meta["wandb_run"] = dg.MetadataValue.path(str(folder))
        meta["wandb_mode"] = wandb_log.resolved_mode()
    return meta


def day_reports(
    context: dg.AssetExecutionContext, store: LocalParquetStore, scenario: Scenario, days: list[str]
) -> tuple[dict[str, object], dict[str, pl.DataFrame]]:
    """Write the report of each of ``days`` over every persona run stored that day.

    Returns the metadata of ``power_user_report``'s materialization and the tables its checks read
    (the days' together).
    """
    settings = scenario.simulation_config
    frames_by_day, paths, reports = {}, [], []
    for day in days:
        frames = read_day(store, day)
        if frames["users"].is_empty():
            raise dg.Failure(f"no power_user_runs stored for {day}; materialize them first")
        report = _report(
            frames, scenario, day_run_summary(frames["users"], frames["attempts"], day, settings.seed)
        )
        paths.append(write_report(report_path(store, day), report))
        context.log.info(console_summary(report, settings.product_name))
        frames_by_day[day] = frames
        reports.append(report)
    frames = combined(frames_by_day)
    report = reports[0] if len(reports) == 1 else _report(frames, scenario, {"days": list(frames_by_day)})
    meta: dict[str, object] = {**report_metadata(report), **load_metadata(report)}
    meta["requests"] = frames["requests"].height
    meta["report_path"] = dg.MetadataValue.path(str(paths[-1]))
    return meta, frames


def _print_line(line: str) -> None:
    print(line, flush=True)  # noqa: T201 - the live load line goes to the terminal (CLI) or the run's stdout


def _report(frames: dict[str, pl.DataFrame], scenario: Scenario, run: dict) -> dict:
    return build_report(
        frames["requests"],
        frames["attempts"],
        frames["edges"],
        frames["users"],
        scenario.simulation_config.costs,
        run,
        frames["load"],
    )


def __getattr__(name: str) -> dg.Definitions:
    # ``defs`` (the code location's power-user part, over $POWER_USERS_SCENARIO) is built on first access:
    # `simulate power-users` builds its own over its --config and so builds the definitions once.
    if name == "defs":
        built = globals()["defs"] = build_defs()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
