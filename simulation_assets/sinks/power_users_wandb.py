"""Per-analysis logging to Weights & Biases: one W&B run per power-user run, one step per analysis.

Offline by default, so nothing leaves the machine: the run is written under ``dir`` and can be
uploaded later with ``wandb sync``. With ``WANDB_API_KEY`` set (and ``mode`` left at ``auto``) it
logs online to ``project``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.power_users.costs import CostModel, openai_cost_usd

# The scenario's fields of each logged analysis.
FIELDS = ("user_tier", "property_address", "analysis_cost", "tokens_used", "deal_score", "session_id")


def analysis_rows(requests: pl.DataFrame, costs: CostModel) -> pl.DataFrame:
    """Return one row per answered analysis with the scenario's W&B fields (cost in USD)."""
    done = requests.filter(
        (pl.col("meter") == "analysis") & (pl.col("status") >= 200) & (pl.col("status") < 300)
    )
    cost = openai_cost_usd(done["input_tokens"].to_numpy(), done["output_tokens"].to_numpy(), costs)
    return done.select(
        pl.col("user"),
        pl.col("tier").alias("user_tier"),
        pl.col("property_address"),
        pl.Series("analysis_cost", cost, dtype=pl.Float64),
        (pl.col("input_tokens") + pl.col("output_tokens")).alias("tokens_used"),
        pl.col("deal_score"),
        pl.col("session_id"),
    )


class WandbAnalysisLog(dg.ConfigurableResource):
    """Logs each answered analysis of a run to W&B when ``enabled`` (offline unless a key is set)."""

    enabled: bool = Field(default=False, description="log analyses to W&B (env POWER_USERS_WANDB=1)")
    project: str = Field(default="propiq-analysis", description="W&B project")
    mode: Literal["auto", "offline", "online"] = Field(
        default="auto", description="auto: online when WANDB_API_KEY is set, else offline"
    )
    dir: str = Field(default="", description="folder for W&B files; empty: <data folder>/power_users/wandb")

    def resolved_mode(self) -> str:
        """Return ``offline`` or ``online`` for this run."""
        if self.mode != "auto":
            return self.mode
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"

    def log(
        self, requests: pl.DataFrame, costs: CostModel, run_name: str, default_dir: Path, config: dict
    ) -> Path | None:
        """Log the answered analyses of ``requests`` (:func:`analysis_rows`) as one W&B run; return its folder.

        Disabled (the default), it returns None without looking at the requests.
        """
        if not self.enabled:
            return None
        import wandb

        analyses = analysis_rows(requests, costs)

        folder = Path(self.dir) if self.dir else default_dir
        folder.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=self.project,
            name=run_name,
            dir=str(folder),
            mode=self.resolved_mode(),
            config=config,
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
            reinit="create_new",
        )
        try:
            for row in analyses.iter_rows(named=True):
                run.log({key: row[key] for key in FIELDS} | {"user": row["user"]})
            run.summary["analyses"] = analyses.height
            run.summary["analysis_cost_usd"] = (
                float(analyses["analysis_cost"].sum()) if analyses.height else 0.0
            )
        finally:
            run.finish()
        return Path(run.dir).parent
