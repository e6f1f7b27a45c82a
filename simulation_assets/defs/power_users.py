"""Power-user runs against a target API, one partition per persona and day, and the daily report."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
from simulation_assets.defs.metadata import (
    COLUMN_SCHEMA,
    column_schema,
    figure_markdown,
    md_table,
    new_figure,
    table_metadata,
)
from simulation_assets.defs.partitions import start_date_from_env
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.config_files import from_env
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.power_users_client import PowerUserTarget, RunResult
from simulation_assets.sinks.power_users_scenario import load_scenario
from simulation_assets.sinks.power_users_store import (
    log_path,
    read_day,
    report_path,
    write_report,
    write_tables,
)

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
}
# The requests table (one row per request, its final attempt) is what dagster/row_count counts.
REQUEST_COLUMNS = column_schema(
    REQUEST_SCHEMA,
    {
        "status": "final HTTP status; 0 = client timeout, -1 = no connection",
        "attempts": "HTTP attempts including retries",
        "ok": "the status was one the action expects",
        "latency_ms": "milliseconds over all attempts",
        "payment_usd": "amount charged by a successful checkout",
    },
    not_null=("user", "action_type", "status"),
)
REPORT_CHECKS = ("success_rate_above_threshold", "configured_edge_cases_triggered", "cost_within_budget")


def persona_names(scenario_path: str | None = None) -> list[str]:
    """Return the persona names of ``scenario_path`` (default ``$POWER_USERS_SCENARIO`` or the packaged file)."""
    try:
        scenario = load_scenario(scenario_path or os.environ.get("POWER_USERS_SCENARIO") or None)
    except ConfigError:
        # The asset reports the file's error when it runs; the partitions fall back to the packaged personas.
        scenario = load_scenario(None)
    return [p.name for p in scenario.simulations]


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


@contextmanager
def reference_target(configured_url: str) -> Iterator[str]:
    """Yield the URL of the bundled reference API served on loopback, unless an API is configured."""
    if configured_url:
        yield ""
        return
    from simulation_assets.target.server import LocalTarget

    with LocalTarget() as local:
        yield local.base_url


def check_results(
    frames: dict[str, pl.DataFrame], scenario: Scenario, asset: str, names: tuple[str, ...]
) -> list[dg.AssetCheckResult]:
    """Return the asset check results ``names`` over the run tables ``frames``."""
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
    }
    results = []
    for name in names:
        outcome = compute[name]()
        results.append(
            dg.AssetCheckResult(
                asset_key=asset, check_name=name, passed=outcome.passed, metadata=outcome.metadata
            )
        )
    return results


def cost_plot(report: dict[str, Any]) -> dg.MarkdownMetadataValue:
    """Return a stacked bar chart of each user's AI, payment-fee and hosting cost in USD."""
    fig, ax = new_figure(7.0, 3.0)
    per_user = report["cost_details"]["per_user"]
    names = list(per_user)
    bottom = [0.0] * len(names)
    for key, label in (
        ("openai_usd", "AI tokens"),
        ("stripe_fees_usd", "Stripe fees"),
        ("hosting_usd", "hosting"),
    ):
        values = [per_user[n][key] for n in names]
        ax.bar(names, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("USD")
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelsize=7, rotation=15)
    fig.tight_layout()
    return figure_markdown(fig, "cost per user")


def report_metadata(report: dict[str, Any]) -> dict[str, Any]:
    """Return what a person reads in the UI: summary numbers, per-user table, latency table, cost plot."""
    s, c = report["simulation_summary"], report["cost_analysis"]
    users = pl.DataFrame(
        [
            {k: (", ".join(v) if isinstance(v, list) else v) for k, v in r.items()}
            for r in report["user_results"]
        ]
    )
    perf = pl.DataFrame([{"action": k, **v} for k, v in report["action_performance"].items()])
    connection_errors = sum(e["error"].startswith("connection error") for e in report["errors_encountered"])
    return {
        "users": s["total_users"],
        "actions_completed": s["total_actions_completed"],
        "actions_failed": s["total_actions_failed"],
        "connection_errors": connection_errors,
        "edge_cases_triggered": s["total_edge_cases_triggered"],
        "edge_cases_missing": ", ".join(report["edge_case_coverage"]["missing"]) or "none",
        "conversion_rate": s["conversion_rate"],
        "total_cost_usd": c["total_cost_usd"],
        "stripe_fees_usd": c["stripe_fees_usd"],
        "openai_cost_usd": c["azure_openai_cost_usd"],
        "user_results": md_table(users, max_rows=20),
        "action_performance": md_table(perf, max_rows=30) if perf.height else "no requests",
        "cost_per_user": cost_plot(report),
    }


def _combined(results: dict[str, RunResult], scenario: Scenario) -> tuple[dict[str, pl.DataFrame], dict]:
    """Return the tables and report of a run over one day, or over several (users named ``day/persona``)."""
    if len(results) == 1:
        only = next(iter(results.values()))
        return only.frames, only.report
    frames = {
        table: pl.concat(
            [
                r.frames[table].with_columns((pl.lit(f"{day}/") + pl.col("user")).alias("user"))
                for day, r in results.items()
            ]
        )
        for table in ("requests", "attempts", "edges", "users")
    }
    report = build_report(
        frames["requests"],
        frames["attempts"],
        frames["edges"],
        frames["users"],
        scenario.simulation_config.costs,
        {"days": list(results)},
    )
    return frames, report


class PowerUserRunConfig(dg.Config):
    """Run options of ``power_user_runs``."""

    sequential: bool | None = Field(
        default=None,
        description="run the personas of a day one after another; empty: the scenario's `parallel` setting",
    )


def build_defs(scenario_path: str | None = None) -> dg.Definitions:
    """Return the power-user assets over persona × day and day partitions of ``scenario_path``'s personas."""
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
            "retries, tokens and charges, and every edge case the persona provokes. One partition is one "
            "persona on one day; a run over several personas of a day runs them at once. With no base URL "
            "configured the bundled reference API is served on a free loopback port for the run."
        ),
    )
    def power_user_runs(
        context: dg.AssetExecutionContext,
        config: PowerUserRunConfig,
        power_users_target: PowerUserTarget,
        store: LocalParquetStore,
    ) -> dg.MaterializeResult:
        scenario = power_users_target.scenario()
        by_day: dict[str, set[str]] = {}
        for key in context.partition_keys:
            dims = run_parts.get_partition_key_from_str(str(key)).keys_by_dimension
            by_day.setdefault(dims["day"], set()).add(dims["persona"])
        results: dict[str, RunResult] = {}
        logs: list[Path] = []
        with reference_target(power_users_target.target_url(scenario)) as url:
            for day in sorted(by_day):
                personas = [p.name for p in scenario.simulations if p.name in by_day[day]]
                logs.append(log_path(store, day, context.run.run_id))
                result = power_users_target.run(
                    personas=personas,
                    day=day,
                    sequential=config.sequential,
                    log_path=logs[-1],
                    scenario=scenario,
                    reference_url=url,
                )
                write_tables(store, result.frames, day)
                context.log.info(result.summary)
                results[day] = result
        frames, report = _combined(results, scenario)
        meta = {**table_metadata(frames["requests"], schema=REQUEST_COLUMNS), **report_metadata(report)}
        meta["base_url"] = next(iter(results.values())).base_url
        meta["simulation_log"] = dg.MetadataValue.path(str(logs[0]))
        return dg.MaterializeResult(
            metadata=meta, check_results=check_results(frames, scenario, RUNS, tuple(RUN_CHECKS))
        )

    @dg.asset(
        name=REPORT,
        group_name=GROUP,
        partitions_def=days,
        # The day of a report maps to every persona of that day: Dagster infers it from the shared
        # "day" dimension (the explicit MultiToSingleDimensionPartitionMapping is a beta API).
        deps=[RUNS],
        kinds={"python", "json"},
        check_specs=[
            dg.AssetCheckSpec(name, asset=REPORT, description=RUN_CHECKS[name][1]) for name in REPORT_CHECKS
        ],
        description=(
            "The day's simulation_report.json over every persona run stored that day: summary, costs (AI tokens, "
            "Stripe fees, prorated hosting), per-user results, edge cases triggered, errors with timestamps, "
            "and latency percentiles and requests/s per action."
        ),
    )
    def power_user_report(
        context: dg.AssetExecutionContext, power_users_target: PowerUserTarget, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        day = context.partition_key
        scenario = power_users_target.scenario()
        frames = read_day(store, day)
        if frames["users"].is_empty():
            raise dg.Failure(f"no power_user_runs stored for {day}; materialize them first")
        settings = scenario.simulation_config
        report = build_report(
            frames["requests"],
            frames["attempts"],
            frames["edges"],
            frames["users"],
            settings.costs,
            day_run_summary(frames["users"], frames["attempts"], day, settings.seed),
        )
        path = write_report(report_path(store, day), report)
        context.log.info(console_summary(report, settings.product_name))
        meta = report_metadata(report)
        meta["requests"] = frames["requests"].height
        meta["report_path"] = dg.MetadataValue.path(str(path))
        return dg.MaterializeResult(
            metadata=meta, check_results=check_results(frames, scenario, REPORT, REPORT_CHECKS)
        )

    return dg.Definitions(
        assets=[power_user_runs, power_user_report],
        resources={"power_users_target": power_users_target()},
    )


defs = build_defs()
