"""Where the funnel's data lives: the scenario settings resource and its datasets in the local store.

A scenario is a seed plus a :class:`CohortConfig`; its files sit under
``$SIMULATION_DATA_DIR/funnel/<scenario>/``: one Parquet file per cohort day for events and
ground truth, JSON documents for rates, forecast, models and formulas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.config_base import scenario_key
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.sinks.config_files import load_config
from simulation_assets.sinks.local_store import LocalParquetStore


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
        """Return the store folder name of this scenario: product, seed and a hash of the config.

        For example ``blanklogo-seed42-<10 hex digits>``: the product's name (``product`` in the
        config) and seed say what it is, the digits keep different configurations apart.
        """
        config = self.cohort_config()
        return scenario_key(
            f"{config.product_slug()}-seed{self.seed}",
            {"seed": self.seed, "config": config.scenario_payload()},
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

    def read_window(
        self, store: LocalParquetStore, name: str = "cohort_events"
    ) -> tuple[pl.DataFrame, list[str]]:
        """Return the window's cohort days of dataset ``name`` (events or users) and the days; raise if none."""
        days = self.cohort_days(store)
        if not days:
            raise dg.Failure("no funnel_cohort_events partitions are materialized for this scenario yet")
        return store.read_many(self.dataset(name), days), days

    def write_json(self, store: LocalParquetStore, name: str, doc: dict) -> Path:
        """Write ``doc`` as the scenario's JSON document ``name``; return its path."""
        out = store.root() / self.dataset(name)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, default=str))
        return out

    def read_json(self, store: LocalParquetStore, name: str) -> dict:
        """Return the scenario's JSON document ``name``."""
        return json.loads((store.root() / self.dataset(name)).read_text())
