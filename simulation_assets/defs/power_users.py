"""Power-user runs against a target API, one partition per persona and day, and the daily report."""

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from simulation_assets.core.power_users.config import ConfigError, Scenario
from simulation_assets.core.power_users.report import build_report
from simulation_assets.defs.metadata import figure_markdown, md_table, new_figure
from simulation_assets.defs.partitions import daily_partitions
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.power_users_client import PowerUserTarget, RunResult
from simulation_assets.sinks.power_users_scenario import load_scenario

GROUP = "power_users"
TABLES = ("requests", "attempts", "edges", "users")
CHECKS = ("success_rate_above_threshold", "configured_edge_cases_triggered", "cost_within_budget")


def persona_names() -> list[str]:
    """Return the persona names of ``$POWER_USERS_SCENARIO`` (or the packaged file) for the partitions."""
    try:
        scenario = load_scenario(os.environ.get("POWER_USERS_SCENARIO") or None)
    except ConfigError:
        # The asset reports the file's error when it runs; the partitions fall back to the packaged personas.
        scenario = load_scenario(None)
    return [p.name for p in scenario.simulations]


def dataset(table: str, day: str) -> str:
    """Return the store dataset holding ``table`` rows of ``day`` (one file per persona)."""
    return f"power_users/{table}/{day}"


def write_tables(store: LocalParquetStore, frames: dict[str, pl.DataFrame], day: str) -> None:
    """Replace each persona's files of ``day`` with the rows of ``frames``."""
    for persona in frames["users"]["user"].to_list():
        for table in TABLES:
            store.write(dataset(table, day), persona, frames[table].filter(pl.col("user") == persona))


def read_day(
    store: LocalParquetStore, day: str, personas: list[str] | None = None
) -> dict[str, pl.DataFrame]:
    """Return the four tables of ``day`` over the stored personas (or only ``personas``)."""
    keys = personas if personas is not None else store.partitions(dataset("users", day))
    return {table: store.read_many(dataset(table, day), keys) for table in TABLES}


def check_results(report: dict[str, Any], scenario: Scenario, asset: str) -> list[dg.AssetCheckResult]:
    """Return the three checks of a report: success rate, edge-case coverage, cost budget."""
    settings = scenario.simulation_config
    s = report["simulation_summary"]
    done, failed = s["total_actions_completed"], s["total_actions_failed"]
    rate = done / (done + failed) if done + failed else 0.0
    coverage = report["edge_case_coverage"]
    total = report["cost_details"]["total_usd"]
    return [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=CHECKS[0],
            passed=rate >= settings.success_rate_threshold,
            metadata={"success_rate": rate, "threshold": settings.success_rate_threshold, "failed": failed},
        ),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=CHECKS[1],
            passed=not coverage["missing"],
            metadata={
                "configured": coverage["configured"],
                "triggered": coverage["triggered"],
                "missing": ", ".join(coverage["missing"]) or "none",
            },
        ),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=CHECKS[2],
            passed=total <= settings.cost_budget_usd,
            metadata={"total_usd": total, "budget_usd": settings.cost_budget_usd},
        ),
    ]


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
    return {
        "users": s["total_users"],
        "actions_completed": s["total_actions_completed"],
        "actions_failed": s["total_actions_failed"],
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


def build_defs() -> dg.Definitions:
    """Return the power-user assets over persona × day and day partitions."""
    days = daily_partitions()
    runs_partitions = dg.MultiPartitionsDefinition(
        {"persona": dg.StaticPartitionsDefinition(persona_names()), "day": days}
    )

    @dg.asset(
        name="power_user_runs",
        group_name=GROUP,
        partitions_def=runs_partitions,
        pool="target_api",
        retry_policy=NETWORK_RETRY,
        kinds={"python", "parquet"},
        check_specs=[dg.AssetCheckSpec(name, asset="power_user_runs") for name in CHECKS],
        description=(
            "One scripted power user driving the target API for one day: every request with its status, "
            "latency, retries, tokens and charges, and every edge case the persona provokes. With no base URL "
            "configured the bundled reference API is served on a free loopback port for the run."
        ),
    )
    def power_user_runs(
        context: dg.AssetExecutionContext, power_users_target: PowerUserTarget, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        key = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
        persona, day = key["persona"], key["day"]
        scenario = power_users_target.scenario()
        log_path = store.root() / "power_users" / "logs" / day / f"{persona}.log"
        result: RunResult = power_users_target.run(
            personas=[persona], day=day, log_path=log_path, scenario=scenario
        )
        write_tables(store, result.frames, day)
        context.log.info(result.summary)
        meta = report_metadata(result.report)
        meta.update({"base_url": result.base_url, "simulation_log": dg.MetadataValue.path(str(log_path))})
        return dg.MaterializeResult(
            metadata=meta, check_results=check_results(result.report, scenario, "power_user_runs")
        )

    @dg.asset(
        name="power_user_report",
        group_name=GROUP,
        partitions_def=days,
        deps=[
            dg.AssetDep(
                "power_user_runs",
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="day"),
            )
        ],
        kinds={"python", "json"},
        check_specs=[dg.AssetCheckSpec(name, asset="power_user_report") for name in CHECKS],
        description=(
            "The day's simulation_report.json over every persona run that day: summary, costs (AI tokens, "
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
        report = build_report(
            frames["requests"],
            frames["attempts"],
            frames["edges"],
            frames["users"],
            scenario.simulation_config.costs,
            {"day": day, "personas": frames["users"]["user"].to_list()},
        )
        path = store.root() / "power_users" / "reports" / day / "simulation_report.json"
        write_report(path, report)
        meta = report_metadata(report)
        meta["report_path"] = dg.MetadataValue.path(str(path))
        return dg.MaterializeResult(
            metadata=meta, check_results=check_results(report, scenario, "power_user_report")
        )

    return dg.Definitions(
        assets=[power_user_runs, power_user_report],
        resources={"power_users_target": PowerUserTarget()},
    )


def write_report(path: Path, report: dict[str, Any]) -> Path:
    """Write ``report`` as indented JSON through a temporary file; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def today() -> str:
    """Return today's UTC date as YYYY-MM-DD."""
    return dt.datetime.now(dt.UTC).date().isoformat()


defs = build_defs()
