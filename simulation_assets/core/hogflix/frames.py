"""Conversion between the array form of a pool (``PersonaState``) and the persona table."""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.hogflix.billing import CHURN_REASONS, PAYMENT_STATES
from simulation_assets.core.hogflix.catalog import GENRES
from simulation_assets.core.hogflix.config import LIFE_EVENTS, PATTERNS, PLANS, STATES
from simulation_assets.core.hogflix.persona_state import (
    IDENTITY_COLUMNS,
    NO_DAY,
    NO_EVENT,
    NO_MS,
    NUMERIC_COLUMNS,
    PersonaState,
)
from simulation_assets.core.hogflix.schema import PERSONA_SCHEMA
from simulation_assets.core.hogflix.traits import REGIONS

_TS_COLUMNS = {
    "state_changed_at": "state_changed_ms",
    "last_active": "last_active_ms",
    "created_at": "created_ms",
    "session_start_at": "session_start_ms",
}
_PLAIN = [
    "days_since_signup",
    "consecutive_active_days",
    "consecutive_missed_days",
    "total_sessions",
    "engagement_score",
    "videos_watched",
    "ratings_given",
    "watchlist_size",
    "flixbuddy_conversations",
    "binge_is_binging",
    "binge_day",
    "persona_number",
    "lapsed",
    "marked_for_cleanup",
    "signed_up_today",
    "active_today",
    "reactivated_today",
    "churned_today",
    "videos_today",
    "ratings_today",
    "watchlist_adds_today",
    "flixbuddy_today",
    "binge_mode_today",
]


_TRAIT_FLOATS = ("price_sensitivity", "satisfaction", "avg_rating_today")
_BILLING_INTS = ("plan_changes", "plan_changed_today", "billing_day", "dunning_attempts", "payment_attempt_today",
                 "payment_failed_today", "payment_recovered_today")  # fmt: skip
_REGION_COUNTRY = np.array([r[0] for r in REGIONS], dtype=object)
_REGION_ZONE = np.array([r[3] for r in REGIONS], dtype=object)


def _region_of(zones: pl.Series) -> np.ndarray:
    """Return the region index (int8) of each time zone name (each region has its own zone)."""
    return zones.replace_strict(
        {z: i for i, z in enumerate(_REGION_ZONE.tolist())}, return_dtype=pl.Int8
    ).to_numpy()


def _labels(name: str, labels: tuple[str, ...] | list[str], codes: np.ndarray) -> pl.Series:
    """Return the label of each code (null for a negative code), gathered natively (no Python objects)."""
    idx = pl.Series(codes.astype(np.int32))
    if (codes < 0).any():
        idx = pl.select(pl.when(idx >= 0).then(idx)).to_series()
    return pl.Series(name, list(labels), dtype=pl.String).gather(idx)


def _ts(values: np.ndarray) -> pl.Series:
    s = pl.Series(values.astype(np.int64))
    return pl.when(s >= 0).then(s).otherwise(None).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")


def _date(values: np.ndarray) -> pl.Expr:
    s = pl.Series(values.astype(np.int32))
    return pl.when(s >= 0).then(s).otherwise(None).cast(pl.Date)


def to_frame(state: PersonaState) -> pl.DataFrame:
    """Return the persona table of ``state`` with ``PERSONA_SCHEMA`` columns, in that order."""
    c = state.cols
    n = len(state)
    plain = {k: c[k] for k in _PLAIN}
    plain["avg_watch_completion"] = c["avg_watch_completion"]
    plain["completion_today"] = c["completion_today"]
    for k in (*_TRAIT_FLOATS, *_BILLING_INTS):
        plain[k] = c[k]
    frame = pl.DataFrame(plain).with_columns(
        pl.Series("activity_history", c["history"].astype(np.uint32)),
        pl.Series("is_synthetic", np.ones(n, np.bool_)),
        pl.Series("db_initialized", ~c["marked_for_cleanup"]),
        pl.Series("snapshot_date", np.full(n, state.day, np.int32)).cast(pl.Date),
        _labels("plan", PLANS, c["plan"]),
        _labels("state", STATES, c["state"]),
        _labels("activity_pattern", PATTERNS, c["pattern"]),
        _labels("favorite_genre", GENRES, c["favorite_genre"]),
        _labels("country", _REGION_COUNTRY.tolist(), c["region"]),
        _labels("timezone", _REGION_ZONE.tolist(), c["region"]),
        _labels("in_life_event", LIFE_EVENTS, c["event"]),
        _date(c["event_ends"]).alias("life_event_ends_at"),
        _date(np.where(c["binge_is_binging"], NO_DAY, c["binge_phase_ends"])).alias("binge_cooldown_until"),
        _date(c["binge_phase_ends"]).alias("binge_phase_ends"),
        _ts(
            np.where(
                c["churned_day"] >= 0, c["churned_day"].astype(np.int64) * 86_400_000 + 86_399_999, NO_MS
            )
        ).alias("churned_at"),
        _labels("churn_reason", CHURN_REASONS, np.where(c["churned_day"] >= 0, c["churn_reason"], -1)),
        _labels("previous_plan", PLANS, c["previous_plan"]),
        _labels("payment_status", PAYMENT_STATES, c["payment_state"]),
        _date(c["next_payment_retry"]).alias("next_payment_retry"),
        *[_ts(c[src]).alias(dst) for dst, src in _TS_COLUMNS.items()],
    )
    frame = pl.concat([frame, state.identity_rows()], how="horizontal")
    return frame.select([pl.col(k).cast(t) for k, t in PERSONA_SCHEMA.items()])


def from_frame(frame: pl.DataFrame) -> PersonaState:
    """Return the array form of a persona table written by ``to_frame``."""
    if frame.is_empty():
        raise ValueError("persona table is empty")
    f = frame.cast({k: t for k, t in PERSONA_SCHEMA.items() if k in frame.columns})
    cols: dict[str, np.ndarray] = {}
    for k in _PLAIN:
        cols[k] = f[k].to_numpy().astype(NUMERIC_COLUMNS[k])
    cols["avg_watch_completion"] = f["avg_watch_completion"].to_numpy().astype(np.float64)
    for k in _TRAIT_FLOATS:
        cols[k] = f[k].to_numpy().astype(np.float32)
    for k in _BILLING_INTS:
        cols[k] = f[k].to_numpy().astype(NUMERIC_COLUMNS[k])
    cols["previous_plan"] = f["previous_plan"].to_physical().to_numpy().astype(np.int8)
    cols["payment_state"] = f["payment_status"].to_physical().to_numpy().astype(np.int8)
    cols["next_payment_retry"] = (
        f["next_payment_retry"].to_physical().fill_null(NO_DAY).to_numpy().astype(np.int32)
    )
    reason = f["churn_reason"].replace_strict(
        {r: i for i, r in enumerate(CHURN_REASONS)}, default=0, return_dtype=pl.Int8
    )
    cols["churn_reason"] = reason.fill_null(0).to_numpy().astype(np.int8)
    cols["favorite_genre"] = f["favorite_genre"].to_physical().to_numpy().astype(np.int8)
    cols["region"] = _region_of(f["timezone"])
    cols["completion_today"] = f["completion_today"].to_numpy().astype(np.float64)
    cols["history"] = f["activity_history"].to_numpy().astype(np.uint32)
    cols["plan"] = f["plan"].to_physical().to_numpy().astype(np.int8)
    cols["state"] = f["state"].to_physical().to_numpy().astype(np.int8)
    cols["pattern"] = f["activity_pattern"].to_physical().to_numpy().astype(np.int8)
    cols["event"] = f["in_life_event"].to_physical().fill_null(NO_EVENT).to_numpy().astype(np.int8)
    cols["event_ends"] = f["life_event_ends_at"].to_physical().fill_null(NO_DAY).to_numpy().astype(np.int32)
    cols["binge_phase_ends"] = (
        f["binge_phase_ends"].to_physical().fill_null(NO_DAY).to_numpy().astype(np.int32)
    )
    cols["churned_day"] = (
        (f["churned_at"].dt.date().to_physical().fill_null(NO_DAY)).to_numpy().astype(np.int32)
    )
    for dst, src in _TS_COLUMNS.items():
        cols[src] = f[dst].dt.cast_time_unit("ms").to_physical().fill_null(NO_MS).to_numpy().astype(np.int64)
    day = int(f["snapshot_date"].to_physical()[0])
    identity = f.select("persona_number", *IDENTITY_COLUMNS).sort("persona_number")
    return PersonaState(
        day=day, cols=cols, identity=identity, next_number=int(cols["persona_number"].max()) + 1
    )
