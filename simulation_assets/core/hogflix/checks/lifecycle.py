"""Checks of the persona pool: unique ids, pool size, signups and the ACTIVE share within their bands."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from simulation_assets.core.hogflix.checks.outcome import CheckOutcome
from simulation_assets.core.hogflix.config import LifecycleConfig


def _one_day_rising(personas: pl.DataFrame) -> bool:
    """Whether the table holds one day (or no ``snapshot_date``) with strictly rising ``persona_number``:
    then no number repeats, which a linear pass shows (counting distinct values hashes every row)."""
    numbers = personas["persona_number"]
    if numbers.null_count():
        return False
    if "snapshot_date" in personas.columns:
        dates = personas["snapshot_date"]
        if dates.null_count() or dates.min() != dates.max():
            return False
    return personas.height < 2 or bool((numbers.diff().drop_nulls() > 0).all())


def persona_ids_unique(personas: pl.DataFrame) -> CheckOutcome:
    """No ``distinct_id`` appears twice on one day (``snapshot_date``) of a persona table.

    A day's table without the identity strings is judged on ``persona_number`` (each ``distinct_id``
    embeds its persona's number, so unique numbers give unique ids); an identity registry on
    ``distinct_id``.
    """
    key = "distinct_id" if "distinct_id" in personas.columns else "persona_number"
    keys = ["snapshot_date", key] if "snapshot_date" in personas.columns else [key]
    if key == "persona_number" and _one_day_rising(personas):
        duplicates = 0  # a day's table keyed by rising numbers (as the lifecycle writes it): unique
    else:
        duplicates = personas.height - personas.select(keys).n_unique() if personas.height else 0
    return CheckOutcome(duplicates == 0, {"personas": personas.height, "duplicate_ids": duplicates})


def _every_day_within_band(
    metrics: pl.DataFrame,
    column: str,
    band: Callable[[LifecycleConfig], tuple[int, int]],
    cfg: LifecycleConfig,
) -> CheckOutcome:
    """Pass when every day's ``column`` is inside that day's band (a scheduled target pool moves it);
    report the band's label, the days outside it and the column's range."""
    bands = [band(cfg.for_date(d)) for d in metrics["date"]] if metrics.height else [band(cfg)]
    low = pl.Series([b[0] for b in bands][: metrics.height])
    high = pl.Series([b[1] for b in bands][: metrics.height])
    label = (
        f"{bands[0][0]}-{bands[0][1]}"
        if len(set(bands)) == 1
        else f"{bands[0][0]}-{bands[0][1]} .. {bands[-1][0]}-{bands[-1][1]}"
    )
    ok = (metrics[column] >= low) & (metrics[column] <= high)
    return CheckOutcome(
        bool(ok.all()),
        {
            "band": label,
            "days_outside": int((~ok).sum()),
            "min": int(metrics[column].min() or 0),
            "max": int(metrics[column].max() or 0),
        },
    )


def pool_within_band(metrics: pl.DataFrame, cfg: LifecycleConfig) -> CheckOutcome:
    """Every day's pool (non-churned personas) is inside the configured band (380-420 at 400; the band
    follows a scheduled target pool day by day)."""
    return _every_day_within_band(metrics, "pool_size", lambda c: c.pool_range, cfg)


def signups_within_band(metrics: pl.DataFrame, cfg: LifecycleConfig) -> CheckOutcome:
    """Every day's signups are inside the configured band (2-5 at pool 400, scaled with the day's target)."""
    return _every_day_within_band(metrics, "new_signups", lambda c: c.signup_range, cfg)


def active_share_near_target(metrics: pl.DataFrame, cfg: LifecycleConfig) -> CheckOutcome:
    """The mean share of ACTIVE personas in the pool over the days is inside the configured band (warns)."""
    low, high = cfg.active_share_band
    share = metrics["state_ACTIVE"] / metrics["pool_size"]
    mean = float(share.mean()) if metrics.height else float("nan")
    return CheckOutcome(
        bool(low <= mean <= high),
        {
            "target": f"{low:.0%}-{high:.0%}",
            "mean_share": round(mean, 4),
            "min_share": round(float(share.min()), 4) if metrics.height else None,
            "max_share": round(float(share.max()), 4) if metrics.height else None,
        },
        warn_only=True,
    )
