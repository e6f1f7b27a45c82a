"""Funnel simulation as Dagster assets: daily event-level cohorts, learned rates, forecast, models, CAPI."""

import datetime as dt
import json
from typing import ClassVar, Literal

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from simulation_assets.core.config_base import scenario_key
from simulation_assets.core.funnel.capi import capi_payloads
from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import STATE_EVENTS, ChurnRule, CohortConfig, State
from simulation_assets.core.funnel.features import build_features
from simulation_assets.core.funnel.identity import check_stitching
from simulation_assets.core.funnel.learn import LearnedRates, compare_to_configured, learn_rates
from simulation_assets.core.funnel.models import ModelThresholds, train_and_evaluate
from simulation_assets.core.funnel.montecarlo import STAGE_KEYS, forecast
from simulation_assets.core.funnel.schema import validate_frame
from simulation_assets.core.funnel.taxonomy import TAXONOMY
from simulation_assets.defs.metadata import figure_markdown, md_table, new_figure
from simulation_assets.defs.partitions import daily_partitions
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.config_files import from_env, load_config
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.meta_capi import MetaCapiSink

GROUP = "funnel"
SINGLE_RUN = dg.BackfillPolicy.single_run()
STATE_ORDER = [s for s in State if s in STATE_EVENTS]


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
            f"seed{self.seed}", {"seed": self.seed, "config": self.cohort_config().model_dump(mode="json")}
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


def _funnel_plot(
    counts: dict[str, float],
    title: str,
    low: dict[str, float] | None = None,
    high: dict[str, float] | None = None,
) -> dg.MarkdownMetadataValue:
    """Return a horizontal bar chart of users per state (log scale), with optional 5-95 % whiskers."""
    fig, ax = new_figure(7.0, 3.6)
    names = list(counts)
    values = np.array([max(counts[n], 0.5) for n in names])
    err = None
    if low is not None and high is not None:
        err = np.array(
            [[values[i] - max(low[n], 0.5), max(high[n], 0.5) - values[i]] for i, n in enumerate(names)]
        ).T
    ax.barh(names[::-1], values[::-1], xerr=None if err is None else err[:, ::-1], color="#4c72b0", capsize=3)
    ax.set_xscale("log")
    ax.set_xlim(left=max(float(values.min()) / 5, 0.3))
    ax.set_xlabel("users (log scale)")
    ax.set_title(title, fontsize=9)
    for i, v in enumerate(values[::-1]):
        ax.text(v * 0.92, i, f"{v:,.0f}", va="center", ha="right", fontsize=7, color="white")
    fig.tight_layout()
    return figure_markdown(fig, title)


def _read_events(store: LocalParquetStore, settings: FunnelSettings) -> tuple[pl.DataFrame, list[str], int]:
    days = settings.cohort_days(store)
    if not days:
        raise dg.Failure("no funnel_cohort_events partitions are materialized for this scenario yet")
    events = store.read_many(settings.dataset("cohort_events"), days)
    impressions = settings.cohort_config().impressions_per_day * len(days)
    return events, days, impressions


def build_defs(start_date: str | None = None, end_date: str | None = None) -> dg.Definitions:
    """Return the funnel definitions over daily partitions from ``start_date``."""
    partitions = daily_partitions(start_date, end_date)

    @dg.asset(
        name="funnel_cohort_events",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        kinds={"polars", "parquet"},
        check_specs=[
            dg.AssetCheckSpec("events_match_taxonomy", asset="funnel_cohort_events"),
            dg.AssetCheckSpec("funnel_monotone", asset="funnel_cohort_events"),
            dg.AssetCheckSpec("identity_stitched", asset="funnel_cohort_events"),
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
        problems, stitch_bad, non_monotone = [], 0, []
        totals = dict.fromkeys((s.name for s in STATE_ORDER), 0)
        rows = 0
        events = pl.DataFrame()
        for key in context.partition_keys:
            cohort = simulate_cohort_events(dt.date.fromisoformat(key), cfg, funnel_settings.seed)
            events = cohort.events
            store.write(funnel_settings.dataset("cohort_events"), key, events)
            store.write(funnel_settings.dataset("cohort_users"), key, cohort.users)
            problems += [p.model_dump() | {"day": key} for p in validate_frame(events)]
            report = check_stitching(events)
            stitch_bad += 0 if report.ok else 1
            reached = {
                s.name: events.filter(pl.col("event") == STATE_EVENTS[s])
                .select(pl.coalesce("user_id", "distinct_id"))
                .n_unique()
                for s in STATE_ORDER
            }
            chain = [reached[s.name] for s in STATE_ORDER[:10]]  # S0..S9 strictly nested
            if any(b > a for a, b in zip(chain, chain[1:])):
                non_monotone.append(key)
            for k, v in reached.items():
                totals[k] += v
            rows += events.height
            context.log.info(
                "%s: %d events, %d clickers, %d purchasers", key, events.height, reached["S0"], reached["S9"]
            )
        by_category = (
            events.with_columns(
                pl.col("event")
                .replace_strict({k: v.category.name for k, v in TAXONOMY.items()})
                .alias("category")
            )
            .group_by("category")
            .len()
            .sort("category")
        )
        labels = {s.name: f"{s.value}" for s in STATE_ORDER}
        return dg.MaterializeResult(
            metadata={
                "days": len(context.partition_keys),
                "events": rows,
                "events_per_day": rows // max(len(context.partition_keys), 1),
                "impressions_per_day": cfg.impressions_per_day,
                "scenario": funnel_settings.scenario(),
                "path": dg.MetadataValue.path(
                    str(store.path(funnel_settings.dataset("cohort_events"), context.partition_keys[-1]))
                ),
                "users_by_state": dg.MetadataValue.json(totals),
                "events_by_category_last_day": dg.MetadataValue.json(
                    {r["category"]: r["len"] for r in by_category.to_dicts()}
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
                        "price",
                    )
                ),
                "funnel": _funnel_plot(
                    {labels[k]: v for k, v in totals.items()}, "users reaching each state"
                ),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="events_match_taxonomy",
                    passed=not problems,
                    metadata={"problems": dg.MetadataValue.json(problems[:20]), "rows_checked": rows},
                ),
                dg.AssetCheckResult(
                    check_name="funnel_monotone",
                    passed=not non_monotone,
                    metadata={
                        "days_not_monotone": dg.MetadataValue.json(non_monotone),
                        "users_by_state": dg.MetadataValue.json(totals),
                    },
                ),
                dg.AssetCheckResult(
                    check_name="identity_stitched",
                    passed=stitch_bad == 0,
                    metadata={
                        "days_with_problems": stitch_bad,
                        "last_day": dg.MetadataValue.json(report.model_dump()),
                    },
                ),
            ],
        )

    @dg.asset(
        name="funnel_transition_rates",
        group_name=GROUP,
        deps=[funnel_cohort_events],
        kinds={"duckdb", "json"},
        check_specs=[dg.AssetCheckSpec("learned_rates_match_configured", asset="funnel_transition_rates")],
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
        glob = str(store.root() / funnel_settings.dataset("cohort_events") / "*.parquet")
        paths = [str(store.path(funnel_settings.dataset("cohort_events"), d)) for d in days]
        source = (
            glob
            if len(paths) == len(store.partitions(funnel_settings.dataset("cohort_events")))
            else pl.concat([pl.read_parquet(p) for p in paths], how="vertical_relaxed")
        )
        cfg = funnel_settings.cohort_config()
        learned = learn_rates(source, impressions=cfg.impressions_per_day * len(days))
        comparison = compare_to_configured(learned, cfg.rates)
        doc = {
            "days": days,
            "learned": learned.model_dump(),
            "comparison": comparison,
            "configured": cfg.rates.model_dump(),
        }
        out = store.root() / funnel_settings.dataset("transition_rates.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, default=str))
        table = pl.DataFrame(
            [
                {
                    "step": k,
                    "configured": v["configured"],
                    "learned": v["learned"],
                    "n": v["n"],
                    "within": v["within"],
                }
                for k, v in comparison.items()
            ]
        )
        outside = [k for k, v in comparison.items() if v["within"] is False]
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
            check_results=[
                dg.AssetCheckResult(
                    check_name="learned_rates_match_configured",
                    passed=not outside,
                    metadata={
                        "outside_tolerance": dg.MetadataValue.json(outside),
                        "tolerance": "4 binomial standard errors",
                    },
                )
            ],
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
        # Configured: the template's model exactly (its rates and additive churn rule).
        configured_doc = forecast(
            impressions, cfg.rates, funnel_settings.replicates, cfg.churn, seed=funnel_settings.seed
        )
        configured_doc["rates"] = cfg.rates.model_dump()
        configured_doc["churn"] = cfg.churn.model_dump()
        # Learned: retention was learned directly as P(S10|S8), so the additive churn rule is off.
        learned_rates = learned.to_rates(cfg.rates)
        no_churn = ChurnRule(base_churn=0.0, extra_churn_if_fail=0.0, extra_churn_if_slow=0.0)
        learned_doc = forecast(
            impressions, learned_rates, funnel_settings.replicates, no_churn, seed=funnel_settings.seed
        )
        learned_doc["rates"] = learned_rates.model_dump()
        learned_doc["churn"] = no_churn.model_dump()
        if funnel_settings.rates_source == "learned":
            doc = {**learned_doc, "rates_source": "learned", "configured_rates_forecast": configured_doc}
        else:
            doc = {**configured_doc, "rates_source": "configured", "learned_rates_forecast": learned_doc}
        out = store.root() / funnel_settings.dataset("forecast.json")
        out.write_text(json.dumps(doc, indent=2))
        pct = doc["percentiles"]
        stages = [k for k in STAGE_KEYS if k in pct]
        table = pl.DataFrame([{"output": k, **{s: round(v, 4) for s, v in pct[k].items()}} for k in pct])
        return dg.MaterializeResult(
            metadata={
                "impressions": impressions,
                "replicates": funnel_settings.replicates,
                "rates_source": doc["rates_source"],
                "purchasers_mean_learned_rates": learned_doc["percentiles"]["purchasers"]["mean"],
                "purchasers_mean": pct["purchasers"]["mean"],
                "purchasers_p5_p95": f"{pct['purchasers']['p5']:.0f} - {pct['purchasers']['p95']:.0f}",
                "percentiles": md_table(table, max_rows=20),
                "funnel": _funnel_plot(
                    {k: pct[k]["mean"] for k in stages},
                    "forecast: mean users per state, 5-95 % whiskers",
                    {k: pct[k]["p5"] for k in stages},
                    {k: pct[k]["p95"] for k in stages},
                ),
                "path": dg.MetadataValue.path(str(out)),
            }
        )

    @dg.asset(
        name="funnel_models",
        group_name=GROUP,
        deps=[funnel_cohort_events],
        kinds={"scikitlearn"},
        check_specs=[
            dg.AssetCheckSpec("purchase_model_quality", asset="funnel_models"),
            dg.AssetCheckSpec("churn_model_quality", asset="funnel_models"),
            dg.AssetCheckSpec("ltv_model_quality", asset="funnel_models"),
            dg.AssetCheckSpec("shuffled_labels_fail", asset="funnel_models"),
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
        events, days, _ = _read_events(store, funnel_settings)
        cfg = funnel_settings.cohort_config()
        features = build_features(events, free_credits=cfg.free_credits)
        store.write(funnel_settings.dataset("features"), "latest", features)
        thresholds = ModelThresholds()
        real = train_and_evaluate(features, thresholds, seed=funnel_settings.seed)
        shuffled = train_and_evaluate(features, thresholds, shuffle_labels=True, seed=funnel_settings.seed)
        out = store.root() / funnel_settings.dataset("models.json")
        out.write_text(
            json.dumps(
                {"days": days, "signal": real.model_dump(), "shuffled": shuffled.model_dump()}, indent=2
            )
        )
        return dg.MaterializeResult(
            metadata={
                "days": len(days),
                "persons": features.height,
                "purchase_auc": real.purchase.roc_auc,
                "churn_auc": real.churn.roc_auc,
                "ltv90_mae": real.ltv[-1].mae,
                "shuffled_purchase_auc": shuffled.purchase.roc_auc,
                "shuffled_churn_auc": shuffled.churn.roc_auc,
                "metrics": dg.MetadataValue.json(
                    {"signal": real.model_dump(), "shuffled": shuffled.model_dump()}
                ),
                "path": dg.MetadataValue.path(str(out)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="purchase_model_quality",
                    passed=real.purchase.passed,
                    metadata={
                        "reason": real.purchase.reason,
                        "roc_auc": real.purchase.roc_auc,
                        "ece": real.purchase.ece,
                        "min_auc": thresholds.purchase_auc_min,
                    },
                ),
                dg.AssetCheckResult(
                    check_name="churn_model_quality",
                    passed=real.churn.passed,
                    metadata={
                        "reason": real.churn.reason,
                        "roc_auc": real.churn.roc_auc,
                        "ece": real.churn.ece,
                        "min_auc": thresholds.churn_auc_min,
                    },
                ),
                dg.AssetCheckResult(
                    check_name="ltv_model_quality",
                    passed=all(m.passed for m in real.ltv),
                    metadata={
                        "mae_improvement": dg.MetadataValue.json(
                            {m.horizon_days: m.mae_improvement for m in real.ltv}
                        ),
                        "min": thresholds.ltv_mae_improvement_min,
                    },
                ),
                dg.AssetCheckResult(
                    check_name="shuffled_labels_fail",
                    passed=not shuffled.purchase.passed
                    and not shuffled.churn.passed
                    and not any(m.passed for m in shuffled.ltv),
                    metadata={
                        "shuffled_purchase_auc": shuffled.purchase.roc_auc,
                        "shuffled_churn_auc": shuffled.churn.roc_auc,
                    },
                ),
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
        return dg.MaterializeResult(
            metadata={
                "payloads": total,
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
