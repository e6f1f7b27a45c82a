"""The funnel assets materialize in Dagster and their checks pass on simulated data."""

from __future__ import annotations

import dagster as dg

from simulation_assets.defs.funnel import FunnelSettings, build_defs
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.meta_capi import MetaCapiSink


def test_cohort_rates_forecast_models_and_capi_materialize_with_passing_checks() -> None:
    defs = build_defs("2026-04-01", "2026-04-04")
    assets = {a.key.to_user_string(): a for a in defs.assets}  # type: ignore[union-attr]
    settings = FunnelSettings(seed=5, impressions_per_day=500_000, replicates=2_000, first_day="2026-04-01")
    resources = {"funnel_settings": settings, "store": LocalParquetStore(), "funnel_capi": MetaCapiSink()}
    instance = dg.DagsterInstance.ephemeral()
    daily = dg.materialize(
        [assets["funnel_cohort_events"], assets["funnel_capi_events"]],
        resources=resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2026-04-01",
            "dagster/asset_partition_range_end": "2026-04-03",
        },
    )
    learned = dg.materialize(
        [assets["funnel_transition_rates"], assets["funnel_forecast"], assets["funnel_models"]],
        resources=resources,
        instance=instance,
    )
    checks = {e.check_name: e.passed for r in (daily, learned) for e in r.get_asset_check_evaluations()}
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
    meta = learned.asset_materializations_for_node("funnel_forecast")[0].metadata
    assert meta["rates_source"].value == "configured"
    assert "funnel" in meta and meta["replicates"].value == 2_000
    capi = daily.asset_materializations_for_node("funnel_capi_events")[0].metadata
    assert capi["payloads"].value > 0 and capi["live"].value is False
