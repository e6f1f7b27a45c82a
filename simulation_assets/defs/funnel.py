"""Funnel simulation as Dagster assets: daily event-level cohorts, learned rates, forecast, models, CAPI.

Thin by design: every computation is a function of ``core/funnel`` (checks included, in
``core/funnel/checks.py``); this module wires them to partitions, the store and the UI.
"""

import base64
import datetime as dt
import json
from pathlib import Path
from typing import ClassVar, Literal

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.config_base import scenario_key
from simulation_assets.core.funnel import checks
from simulation_assets.core.funnel.capi import capi_payloads
from simulation_assets.core.funnel.charts import funnel_svg
from simulation_assets.core.funnel.checks import CheckOutcome
from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.features import build_features
from simulation_assets.core.funnel.learn import LearnedRates, compare_to_configured, learn_rates
from simulation_assets.core.funnel.models import train_and_evaluate
from simulation_assets.core.funnel.montecarlo import STAGE_KEYS, forecast_with_both_rates
from simulation_assets.core.funnel.schema import COLUMN_DESCRIPTIONS, EVENT_SCHEMA
from simulation_assets.core.funnel.taxonomy import TAXONOMY
from simulation_assets.defs.metadata import COLUMN_SCHEMA, column_schema, md_table, table_metadata
from simulation_assets.defs.partitions import daily_partitions
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.config_files import from_env, load_config
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.meta_capi import MetaCapiSink

GROUP = "funnel"
SINGLE_RUN = dg.BackfillPolicy.single_run()


class FunnelSettings(dg.ConfigurableResource):
    """Which funnel scenario to simulate and learn from."""

    ENV: ClassVar[dict[str, str]] = {
        "seed": "SIMULATION_SEED",
        "impressions_per_day": "FUNNEL_IMPRESSIONS",
        "rates_source": "FUNNEL_FORECAST_RATES",
        "config_path": "FUNNEL_CONFIG",
    }

    seed: int = 42
    impressions_per_day: int = Field(
        default=1_000_000,
        description="Ad impressions behind each daily cohort (FUNNEL_IMPRESSIONS).",
    )
    forecast_impressions: int = Field(
        default=0, description="Impressions of the forecast cohort; 0 means the same as impressions_per_day."
    )
    replicates: int = Field(default=10_000, description="Monte Carlo cohorts in the forecast.")
    rates_source: Literal["configured", "learned"] = Field(
        default="configured",
        description="Which rates the forecast's top level uses; the other forecast is nested beside it.",
    )
    config_path: str = Field(
        default="",
        description="Optional YAML file with CohortConfig overrides (rates, churn, hazard ...).",
    )
    overrides_json: str = Field(
        default="",
        description='JSON CohortConfig overrides applied after the file, e.g. {"rates": {"ctr": 0.03}}.',
    )
    first_day: str = Field(
        default="", description="Learn/train only from cohorts on or after this day (empty: any)."
    )
    last_day: str = Field(
        default="", description="Learn/train only from cohorts up to this day (empty: any)."
    )
    window_days: int = Field(default=28, description="At most this many most recent cohorts are read.")

    def cohort_config(self) -> CohortConfig:
        """Return the validated cohort config (file overrides, then JSON overrides, then ``impressions_per_day``)."""
        overrides: dict[str, object] = json.loads(self.overrides_json) if self.overrides_json else {}
        overrides["impressions_per_day"] = self.impressions_per_day
        return load_config(
            CohortConfig, self.config_path or None, source="FUNNEL_CONFIG", overrides=overrides
        )

    def scenario(self) -> str:
        """Return the store folder name of this scenario (seed and a hash of the full config)."""
        return scenario_key(
            f"seed{self.seed}", {"seed": self.seed, "config": self.cohort_config().scenario_payload()}
        )

    def dataset(self, name: str) -> str:
        """Return the store dataset name of ``name`` within this scenario."""
        return f"funnel/{self.scenario()}/{name}"

    def cohort_days(self, store: LocalParquetStore) -> list[str]:
        """Return the written cohort days this settings' window selects, oldest first."""
        days = [
            d
            for d in store.partitions(self.dataset("cohort_events"))
            if (not self.first_day or d >= self.first_day) and (not self.last_day or d <= self.last_day)
        ]
        return days[-self.window_days :]


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


def _svg(svg: str, alt: str) -> dg.MarkdownMetadataValue:
    """Return an SVG chart as an inline markdown image."""
    return dg.MetadataValue.md(
        f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"
    )


def _check_result(name: str, outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=outcome.passed,
        metadata={
            k: v if isinstance(v, int | float | str) else dg.MetadataValue.json(v)
            for k, v in outcome.metadata.items()
        },
    )


def _read_events(store: LocalParquetStore, settings: FunnelSettings) -> tuple[pl.DataFrame, list[str]]:
    days = settings.cohort_days(store)
    if not days:
        raise dg.Failure("no funnel_cohort_events partitions are materialized for this scenario yet")
    return store.read_many(settings.dataset("cohort_events"), days), days


def _write_json(store: LocalParquetStore, settings: FunnelSettings, name: str, doc: dict) -> Path:
    out = store.root() / settings.dataset(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
    return out


def build_defs(start_date: str | None = None, end_date: str | None = None) -> dg.Definitions:
    """Return the funnel definitions over daily partitions from ``start_date``."""
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
                "funnel": _svg(
                    funnel_svg({STATE_LABELS[k]: v for k, v in totals.items()}, "people reaching each state"),
                    "people reaching each state",
                ),
            },
            check_results=[
                _check_result(name, checks.merge_days(by_day)) for name, by_day in outcomes.items()
            ],
        )

    @dg.asset(
        name="funnel_transition_rates",
        group_name=GROUP,
        deps=[funnel_cohort_events],
        kinds={"duckdb", "json"},
        check_specs=[
            dg.AssetCheckSpec(
                "learned_rates_match_configured",
                asset="funnel_transition_rates",
                description="every learned step rate is within the configured band of the configured rate",
            )
        ],
        description=(
            "Every P(Sj|Si) and the activation, aha, purchase and 30-day churn rates, learned from the "
            "cohort events with DuckDB SQL after stitching identities; compared with the configured rates."
        ),
    )
    def funnel_transition_rates(
        context: dg.AssetExecutionContext, funnel_settings: FunnelSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        days = funnel_settings.cohort_days(store)
        if not days:
            raise dg.Failure("no funnel_cohort_events partitions are materialized for this scenario yet")
        dataset = funnel_settings.dataset("cohort_events")
        paths = [str(store.path(dataset, d)) for d in days]
        # DuckDB reads the files itself when the window is every file; otherwise the window's frames.
        source = (
            str(store.root() / dataset / "*.parquet")
            if len(paths) == len(store.partitions(dataset))
            else pl.concat([pl.read_parquet(p) for p in paths], how="vertical_relaxed")
        )
        cfg = funnel_settings.cohort_config()
        learned = learn_rates(source, impressions=cfg.impressions_per_day * len(days))
        comparison = compare_to_configured(learned, cfg.rates, z=cfg.checks.rates_z)
        doc = {
            "days": days,
            "learned": learned.model_dump(),
            "comparison": comparison,
            "configured": cfg.rates.model_dump(),
        }
        out = _write_json(store, funnel_settings, "transition_rates.json", doc)
        table = pl.DataFrame(
            [
                {"step": k, **{f: v.get(f) for f in ("configured", "learned", "n", "within")}}
                for k, v in comparison.items()
            ]
        )
        outcome = checks.learned_rates_match_configured(learned, cfg.rates, cfg.checks.rates_z)
        return dg.MaterializeResult(
            metadata={
                "days": len(days),
                "persons": learned.persons,
                "activation_rate": learned.activation_rate,
                "aha_rate": learned.aha_rate,
                "purchase_rate": learned.purchase_rate,
                "churn_rate_30d": learned.churn_rate_30d,
                "retention_S10_given_S8": learned.transitions["S10|S8"].rate,
                "ctr": learned.ctr,
                "transitions": md_table(table, max_rows=20),
                "path": dg.MetadataValue.path(str(out)),
            },
            check_results=[_check_result("learned_rates_match_configured", outcome)],
        )

    @dg.asset(
        name="funnel_forecast",
        group_name=GROUP,
        deps=[funnel_transition_rates],
        kinds={"numpy", "json"},
        description=(
            "Monte Carlo forecast of a cohort of the configured impressions, exact binomial chains: mean and "
            "5/50/95 percentiles of every template output, with the configured rates and with the rates "
            "learned from the events (FUNNEL_FORECAST_RATES picks which one is on top)."
        ),
    )
    def funnel_forecast(
        context: dg.AssetExecutionContext, funnel_settings: FunnelSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        cfg = funnel_settings.cohort_config()
        learned_path = store.root() / funnel_settings.dataset("transition_rates.json")
        learned = LearnedRates.model_validate(json.loads(learned_path.read_text())["learned"])
        impressions = funnel_settings.forecast_impressions or cfg.impressions_per_day
        replicates = funnel_settings.replicates
        doc = forecast_with_both_rates(
            impressions,
            cfg,
            learned.to_rates(cfg.rates),
            replicates,
            funnel_settings.rates_source,
            funnel_settings.seed,
        )
        learned_doc = doc if doc["rates_source"] == "learned" else doc["learned_rates_forecast"]
        out = _write_json(store, funnel_settings, "forecast.json", doc)
        pct = doc["percentiles"]
        stages = [k for k in STAGE_KEYS if k in pct]
        table = pl.DataFrame([{"output": k, **{s: round(v, 4) for s, v in pct[k].items()}} for k in pct])
        title = "forecast: mean users per state, 5-95 % whiskers"
        return dg.MaterializeResult(
            metadata={
                "impressions": impressions,
                "replicates": replicates,
                "rates_source": doc["rates_source"],
                "purchasers_mean_learned_rates": learned_doc["percentiles"]["purchasers"]["mean"],
                "purchasers_mean": pct["purchasers"]["mean"],
                "purchasers_p5_p95": f"{pct['purchasers']['p5']:.0f} - {pct['purchasers']['p95']:.0f}",
                "percentiles": md_table(table, max_rows=20),
                "funnel": _svg(
                    funnel_svg(
                        {k: pct[k]["mean"] for k in stages},
                        title,
                        {k: pct[k]["p5"] for k in stages},
                        {k: pct[k]["p95"] for k in stages},
                    ),
                    title,
                ),
                "path": dg.MetadataValue.path(str(out)),
            }
        )

    model_checks = {
        "purchase_model_quality": "purchase propensity reaches its ROC AUC and calibration bands",
        "churn_model_quality": "churn propensity reaches its ROC AUC and calibration bands",
        "ltv_model_quality": "LTV beats the best constant by the configured margin at 30/60/90 days",
        "shuffled_labels_fail": "the same models trained on shuffled labels fail their bands",
    }

    @dg.asset(
        name="funnel_models",
        group_name=GROUP,
        deps=[funnel_cohort_events],
        kinds={"scikitlearn"},
        check_specs=[
            dg.AssetCheckSpec(n, asset="funnel_models", description=d) for n, d in model_checks.items()
        ],
        description=(
            "Purchase propensity (7 days), churn propensity (30 days) and LTV (30/60/90 days) trained on "
            "features built from the events, earlier logins train and later ones test; ROC AUC, calibration "
            "and MAE against thresholds, beside the same models trained on shuffled labels."
        ),
    )
    def funnel_models(
        context: dg.AssetExecutionContext, funnel_settings: FunnelSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        events, days = _read_events(store, funnel_settings)
        cfg = funnel_settings.cohort_config()
        features = build_features(events, free_credits=cfg.free_credits)
        store.write(funnel_settings.dataset("features"), "latest", features)
        thresholds, seed = cfg.checks.models, funnel_settings.seed
        real = train_and_evaluate(features, thresholds, seed=seed)
        shuffled = train_and_evaluate(features, thresholds, shuffle_labels=True, seed=seed)
        metrics = {"signal": real.model_dump(), "shuffled": shuffled.model_dump()}
        out = _write_json(store, funnel_settings, "models.json", {"days": days, **metrics})
        return dg.MaterializeResult(
            metadata={
                "days": len(days),
                "persons": features.height,
                "purchase_auc": real.purchase.roc_auc,
                "churn_auc": real.churn.roc_auc,
                "ltv90_mae": real.ltv[-1].mae,
                "shuffled_purchase_auc": shuffled.purchase.roc_auc,
                "shuffled_churn_auc": shuffled.churn.roc_auc,
                "metrics": dg.MetadataValue.json(metrics),
                "path": dg.MetadataValue.path(str(out)),
            },
            check_results=[
                _check_result("purchase_model_quality", checks.purchase_model_passes(real)),
                _check_result("churn_model_quality", checks.churn_model_passes(real)),
                _check_result("ltv_model_quality", checks.ltv_model_passes(real)),
                _check_result("shuffled_labels_fail", checks.shuffled_labels_fail(shuffled)),
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

    cohort_job = dg.define_asset_job(
        "funnel_daily_cohort",
        selection=dg.AssetSelection.assets(funnel_cohort_events, funnel_capi_events),
        description="Simulate the day's ad-click cohort and map it to Meta CAPI events.",
    )
    learn_job = dg.define_asset_job(
        "funnel_learn_and_forecast",
        selection=dg.AssetSelection.assets(funnel_transition_rates, funnel_forecast, funnel_models),
        description="Learn rates from the cohorts, forecast with them and retrain the models.",
    )
    return dg.Definitions(
        assets=[
            funnel_cohort_events,
            funnel_transition_rates,
            funnel_forecast,
            funnel_models,
            funnel_capi_events,
        ],
        jobs=[cohort_job, learn_job],
        schedules=[
            dg.build_schedule_from_partitioned_job(
                cohort_job, hour_of_day=6, minute_of_hour=30, name="funnel_daily_0630_utc"
            ),
        ],
        resources={"funnel_settings": from_env(FunnelSettings), "funnel_capi": from_env(MetaCapiSink)},
    )


defs = build_defs()
