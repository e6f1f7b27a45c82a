"""The funnel assets materialize in Dagster, their checks pass on simulated data, and blocking checks stop a run."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from simulation_assets.core.funnel.config import DEFAULT_PLANS, CohortConfig, Plan
from simulation_assets.defs.funnel import build_defs
from simulation_assets.sinks.funnel_app_db import FunnelAppDatabase
from simulation_assets.sinks.funnel_store import FunnelSettings
from simulation_assets.sinks.funnel_stripe import StripeWebhookSink
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.meta_capi import MetaCapiSink
from simulation_assets.sinks.posthog_events import PostHogEvents

RANGE = {
    "dagster/asset_partition_range_start": "2026-04-01",
    "dagster/asset_partition_range_end": "2026-04-03",
}


def _assets(defs: dg.Definitions) -> list:
    """Every funnel asset but the audit (it reads a real export named in run config)."""
    return [a for a in defs.assets or [] if a.key.to_user_string() != "funnel_tracking_audit"]


def _resources(settings: FunnelSettings, store: LocalParquetStore) -> dict:
    """The embedded defaults: PostHog frames kept as Parquet, no app database, Stripe and CAPI files only."""
    return {
        "funnel_settings": settings,
        "store": store,
        "funnel_capi": MetaCapiSink(),
        "funnel_posthog": PostHogEvents(),
        "funnel_app_db": FunnelAppDatabase(),
        "funnel_stripe": StripeWebhookSink(),
    }


def test_cohort_rates_forecast_models_and_capi_materialize_with_passing_checks() -> None:
    defs = build_defs("2026-04-01", "2026-04-04")
    settings = FunnelSettings(seed=5, impressions_per_day=500_000, replicates=2_000, first_day="2026-04-01")
    store = LocalParquetStore()
    resources = _resources(settings, store)
    result = dg.materialize(
        _assets(defs), resources=resources, instance=dg.DagsterInstance.ephemeral(), tags=RANGE
    )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert (
        "every_event_fires" in checks
    )  # its verdict depends on the window; a week of defaults is tested alone
    del checks["every_event_fires"]
    assert checks == {
        "events_match_taxonomy": True,
        "funnel_monotone": True,
        "identity_stitched": True,
        "learned_rates_match_configured": True,
        "purchase_model_quality": True,
        "churn_model_quality": True,
        "ltv_model_quality": True,
        "shuffled_labels_fail": True,
        "signals_move_models": True,
        "formulas_match_truth": True,
    }
    # one materialization per day, each with that day's own row count and the standard column schema
    cohorts = result.asset_materializations_for_node("funnel_cohort_events")
    assert [m.partition for m in cohorts] == ["2026-04-01", "2026-04-02", "2026-04-03"]
    for m in cohorts:
        rows = store.read(settings.dataset("cohort_events"), m.partition).height
        assert m.metadata["dagster/row_count"].value == rows > 10_000
    spec = next(a for a in _assets(defs) if a.key.to_user_string() == "funnel_cohort_events")
    columns = spec.metadata_by_key[spec.key]["dagster/column_schema"].columns
    assert [c.name for c in columns[:7]] == [
        "event",
        "timestamp",
        "source",
        "environment",
        "distinct_id",
        "user_id",
        "session_id",
    ]
    assert next(c for c in columns if c.name == "event_id").constraints.unique
    meta = result.asset_materializations_for_node("funnel_forecast")[0].metadata
    assert meta["rates_source"].value == "configured" and meta["replicates"].value == 2_000
    assert meta["funnel"].value.startswith("![forecast") and "image/svg+xml" in meta["funnel"].value
    capi = result.asset_materializations_for_node("funnel_capi_events")
    assert all(m.metadata["dagster/row_count"].value > 0 for m in capi) and len(capi) == 3
    assert capi[0].metadata["live"].value is False


class _SettingsThatSlipPastValidation(FunnelSettings):
    """Settings whose config was built without validation: a weekly plan the tracking plan does not know."""

    def cohort_config(self) -> CohortConfig:
        weekly = Plan.model_construct(
            sku="w",
            plan="pro",
            billing_period="weekly",
            price=5.0,
            credits=9,
            weight=1.0,
            price_sensitivity=0.0,
        )
        return CohortConfig.model_construct(**{**dict(CohortConfig()), "plans": (DEFAULT_PLANS[0], weekly)})


def test_a_failing_blocking_check_stops_everything_computed_from_the_events() -> None:
    defs = build_defs("2026-04-01", "2026-04-04")
    settings = _SettingsThatSlipPastValidation(seed=5, impressions_per_day=300_000, replicates=100)
    resources = _resources(settings, LocalParquetStore())
    result = dg.materialize(
        _assets(defs),
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        tags={**RANGE, "dagster/asset_partition_range_end": "2026-04-01"},
        raise_on_error=False,
    )
    assert not result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["events_match_taxonomy"].passed is False
    problems = evaluations["events_match_taxonomy"].metadata["problems"].value
    assert any("billing_period" in p["rule"] for p in problems)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"funnel_cohort_events"}  # no rates, forecast, models or CAPI from broken events


def test_a_weekly_plan_in_the_config_is_refused_before_anything_runs(tmp_path) -> None:
    config = tmp_path / "funnel.yaml"
    config.write_text(
        json.dumps(
            {
                "plans": [
                    {
                        "sku": "w",
                        "plan": "pro",
                        "billing_period": "weekly",
                        "price": 5,
                        "credits": 9,
                        "weight": 1,
                    }
                ]
            }
        )
    )
    with pytest.raises(ValueError, match="billing_period"):
        FunnelSettings(config_path=str(config)).cohort_config()
