"""The funnel assets materialize in Dagster, their checks pass on simulated data, and blocking checks stop a run."""

from __future__ import annotations

import json

import dagster as dg

from simulation_assets.defs.funnel import FunnelSettings, build_defs
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.meta_capi import MetaCapiSink

RANGE = {
    "dagster/asset_partition_range_start": "2026-04-01",
    "dagster/asset_partition_range_end": "2026-04-03",
}


def _assets(defs: dg.Definitions) -> list:
    return list(defs.assets or [])


def test_cohort_rates_forecast_models_and_capi_materialize_with_passing_checks() -> None:
    defs = build_defs("2026-04-01", "2026-04-04")
    settings = FunnelSettings(seed=5, impressions_per_day=500_000, replicates=2_000, first_day="2026-04-01")
    store = LocalParquetStore()
    resources = {"funnel_settings": settings, "store": store, "funnel_capi": MetaCapiSink()}
    result = dg.materialize(
        _assets(defs), resources=resources, instance=dg.DagsterInstance.ephemeral(), tags=RANGE
    )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "events_match_taxonomy": True,
        "funnel_monotone": True,
        "identity_stitched": True,
        "learned_rates_match_configured": True,
        "purchase_model_quality": True,
        "churn_model_quality": True,
        "ltv_model_quality": True,
        "shuffled_labels_fail": True,
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


def test_a_failing_blocking_check_stops_everything_computed_from_the_events(tmp_path) -> None:
    # A weekly plan is outside the taxonomy's billing periods: the events break the plan.
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
    defs = build_defs("2026-04-01", "2026-04-04")
    settings = FunnelSettings(seed=5, impressions_per_day=200_000, replicates=100, config_path=str(config))
    resources = {"funnel_settings": settings, "store": LocalParquetStore(), "funnel_capi": MetaCapiSink()}
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
