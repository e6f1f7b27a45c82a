"""Funnel assets learned from a window of daily cohorts: rates, forecast, section 6 formulas, models.

Each reads the cohorts the ``funnel_settings`` window selects (the 28 most recent by
default) and writes one JSON document into the scenario's folder; every computation and
check is a function of ``core/funnel``.
"""

import base64

import dagster as dg
import polars as pl

from simulation_assets.core.funnel import checks
from simulation_assets.core.funnel.charts import comparison_svg, funnel_svg
from simulation_assets.core.funnel.checks import CheckOutcome
from simulation_assets.core.funnel.features import build_features
from simulation_assets.core.funnel.formulas import compute_formulas, formulas_table
from simulation_assets.core.funnel.learn import LearnedRates, compare_to_configured, learn_rates
from simulation_assets.core.funnel.models import train_and_evaluate
from simulation_assets.core.funnel.montecarlo import STAGE_KEYS, forecast_with_both_rates
from simulation_assets.defs.metadata import md_table
from simulation_assets.sinks.funnel_store import FunnelSettings
from simulation_assets.sinks.local_store import LocalParquetStore

GROUP = "funnel"
COHORTS = "funnel_cohort_events"


def svg_markdown(svg: str, alt: str) -> dg.MarkdownMetadataValue:
    """Return an SVG chart as an inline markdown image."""
    return dg.MetadataValue.md(
        f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"
    )


def check_result(name: str, outcome: CheckOutcome) -> dg.AssetCheckResult:
    """Return a check outcome of ``core/funnel/checks.py`` as a Dagster check result."""
    return dg.AssetCheckResult(
        check_name=name,
        passed=outcome.passed,
        metadata={
            k: v if isinstance(v, int | float | str) else dg.MetadataValue.json(v)
            for k, v in outcome.metadata.items()
        },
    )


def _spec(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description)


@dg.asset(
    name="funnel_transition_rates",
    group_name=GROUP,
    deps=[COHORTS],
    kinds={"duckdb", "json"},
    check_specs=[
        _spec(
            "learned_rates_match_configured",
            "funnel_transition_rates",
            "every learned step rate is within the configured band of the configured rate",
        ),
        _spec(
            "every_event_fires",
            "funnel_transition_rates",
            "every event of the tracking plan occurs in the window (a week of default cohorts has them all)",
        ),
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
    out = funnel_settings.write_json(store, "transition_rates.json", doc)
    table = pl.DataFrame(
        [
            {"step": k, **{f: v.get(f) for f in ("configured", "learned", "n", "within")}}
            for k, v in comparison.items()
        ]
    )
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
            check_result(
                "learned_rates_match_configured",
                checks.learned_rates_match_configured(learned, cfg.rates, cfg.checks.rates_z),
            ),
            check_result("every_event_fires", checks.every_event_fires(learned.event_counts)),
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
    learned = LearnedRates.model_validate(
        funnel_settings.read_json(store, "transition_rates.json")["learned"]
    )
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
    out = funnel_settings.write_json(store, "forecast.json", doc)
    pct = doc["percentiles"]
    stages = [k for k in STAGE_KEYS if k in pct]
    table = pl.DataFrame([{"output": k, **{s: round(v, 4) for s, v in pct[k].items()}} for k in pct])
    title = "forecast: mean users per state, 5-95 % whiskers"
    chart = funnel_svg(
        {k: pct[k]["mean"] for k in stages},
        title,
        {k: pct[k]["p5"] for k in stages},
        {k: pct[k]["p95"] for k in stages},
    )
    return dg.MaterializeResult(
        metadata={
            "impressions": impressions,
            "replicates": replicates,
            "rates_source": doc["rates_source"],
            "purchasers_mean_learned_rates": learned_doc["percentiles"]["purchasers"]["mean"],
            "purchasers_mean": pct["purchasers"]["mean"],
            "purchasers_p5_p95": f"{pct['purchasers']['p5']:.0f} - {pct['purchasers']['p95']:.0f}",
            "percentiles": md_table(table, max_rows=20),
            "funnel": svg_markdown(chart, title),
            "path": dg.MetadataValue.path(str(out)),
        }
    )


@dg.asset(
    name="funnel_formulas",
    group_name=GROUP,
    deps=[COHORTS],
    kinds={"polars", "json"},
    check_specs=[
        _spec(
            "formulas_match_truth",
            "funnel_formulas",
            "monthly subscription churn, credit-pack churn and P(purchase|click) are within their bands "
            "of the values the configuration implies",
        )
    ],
    description=(
        "Section 6 of the tracking plan computed from the events: monthly subscription churn (canceled / "
        "active at the start of each subscription month), credit-pack churn at 30/60/90 days (no return in "
        "that month), and P(purchase|click) as the product of the stage rates; each beside its expected value."
    ),
)
def funnel_formulas(
    context: dg.AssetExecutionContext, funnel_settings: FunnelSettings, store: LocalParquetStore
) -> dg.MaterializeResult:
    events, days = funnel_settings.read_window(store)
    users, _ = funnel_settings.read_window(store, "cohort_users")
    cfg = funnel_settings.cohort_config()
    formulas = compute_formulas(events, users, cfg, z=cfg.checks.rates_z)
    out = funnel_settings.write_json(store, "formulas.json", {"days": days, **formulas.model_dump()})
    rows = [
        *[
            (f"subscription {r.name}", r.observed, r.expected, r.tolerance)
            for r in formulas.monthly_subscription_churn
        ],
        *[(f"pack churn {r.name}", r.observed, r.expected, r.tolerance) for r in formulas.credit_pack_churn],
    ]
    rows = [row for row in rows if row[1] is not None]
    title = "section 6: churn, observed vs expected"
    p = formulas.purchase_per_click
    return dg.MaterializeResult(
        metadata={
            "days": len(days),
            "purchase_per_click": p.observed,
            "purchase_per_click_expected": p.expected,
            "purchase_per_click_product_of_steps": formulas.purchase_per_click_product,
            "month_1_subscription_churn": formulas.monthly_subscription_churn[0].observed,
            "formulas": md_table(pl.DataFrame(formulas_table(formulas)), max_rows=20),
            "churn": svg_markdown(comparison_svg(rows, title), title),
            "path": dg.MetadataValue.path(str(out)),
        },
        check_results=[check_result("formulas_match_truth", checks.formulas_match_truth(formulas))],
    )


MODEL_CHECKS = {
    "purchase_model_quality": "purchase propensity reaches its ROC AUC and calibration bands",
    "churn_model_quality": "churn propensity reaches its ROC AUC and calibration bands",
    "ltv_model_quality": "LTV beats the best constant by the configured margin at 30/60/90 days",
    "shuffled_labels_fail": "the same models trained on shuffled labels fail their bands",
    "signals_move_models": "the strongest section 9 signals move their models the expected way",
}


@dg.asset(
    name="funnel_models",
    group_name=GROUP,
    deps=[COHORTS],
    kinds={"scikitlearn"},
    check_specs=[_spec(n, "funnel_models", d) for n, d in MODEL_CHECKS.items()],
    description=(
        "Purchase propensity (7 days), churn propensity (30 days) and LTV (30/60/90 days) trained on "
        "features built from the events (section 7 and the section 9 signals), earlier logins train and "
        "later ones test; ROC AUC, calibration (also per group) and MAE against thresholds, feature "
        "importances, signal effects, beside the same models trained on shuffled labels."
    ),
)
def funnel_models(
    context: dg.AssetExecutionContext, funnel_settings: FunnelSettings, store: LocalParquetStore
) -> dg.MaterializeResult:
    events, days = funnel_settings.read_window(store)
    cfg = funnel_settings.cohort_config()
    features = build_features(events, free_credits=cfg.free_credits)
    store.write(funnel_settings.dataset("features"), "latest", features)
    thresholds, seed, signals = cfg.checks.models, funnel_settings.seed, cfg.checks.signals
    real = train_and_evaluate(features, thresholds, seed=seed, signals=signals)
    shuffled = train_and_evaluate(features, thresholds, shuffle_labels=True, seed=seed, signals=signals)
    metrics = {"signal": real.model_dump(), "shuffled": shuffled.model_dump()}
    out = funnel_settings.write_json(store, "models.json", {"days": days, **metrics})
    importance = pl.DataFrame(
        [{"feature": k, "purchase_auc_drop": v} for k, v in real.purchase.feature_importance.items()]
        or [{"feature": "", "purchase_auc_drop": 0.0}]
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
            "purchase_importance": md_table(importance, max_rows=15),
            "churn_importance": dg.MetadataValue.json(real.churn.feature_importance),
            "path": dg.MetadataValue.path(str(out)),
        },
        check_results=[
            check_result("purchase_model_quality", checks.purchase_model_passes(real)),
            check_result("churn_model_quality", checks.churn_model_passes(real)),
            check_result("ltv_model_quality", checks.ltv_model_passes(real)),
            check_result("shuffled_labels_fail", checks.shuffled_labels_fail(shuffled)),
            check_result("signals_move_models", checks.signals_move_models(real, signals)),
        ],
    )


LEARNING_ASSETS = (funnel_transition_rates, funnel_forecast, funnel_formulas, funnel_models)
