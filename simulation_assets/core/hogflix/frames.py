"""Conversion between the array form of a pool (``PersonaState``) and the persona table.

The persona table of a day comes in two parts. ``day_frame`` holds everything
the day step needs and changes (``PERSONA_DAY_SCHEMA``: no identity strings,
label columns as enums); the identity registry (``distinct_id``, ``email``,
``user_id``, ``profile_id``, ``source``, keyed by ``persona_number``) never
changes after signup, so it is stored once per persona. ``with_identities``
joins the two into the full ``PERSONA_SCHEMA`` table that ``to_frame`` returns.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import polars as pl

from simulation_assets.core.hogflix.billing import CHURN_REASONS, PAYMENT_STATES
from simulation_assets.core.hogflix.catalog import GENRES
from simulation_assets.core.hogflix.config import LIFE_EVENTS, PATTERNS, PLANS, STATES
from simulation_assets.core.hogflix.metrics import METRICS_INPUT_COLUMNS
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

_REGION_COUNTRY = np.array([r[0] for r in REGIONS], dtype=object)
_REGION_ZONE = np.array([r[3] for r in REGIONS], dtype=object)
COUNTRY = pl.Enum(list(dict.fromkeys(_REGION_COUNTRY.tolist())))
TIMEZONE = pl.Enum(_REGION_ZONE.tolist())  # one zone per region: the code is the region index
CHURN_REASON = pl.Enum(list(CHURN_REASONS))
_DAY_ENUMS = {"country": COUNTRY, "timezone": TIMEZONE, "churn_reason": CHURN_REASON}
# The day's table without the identity strings; the string labels are enums (a byte per persona).
PERSONA_DAY_SCHEMA: dict[str, pl.DataType] = {
    k: _DAY_ENUMS.get(k, t) for k, t in PERSONA_SCHEMA.items() if k not in IDENTITY_COLUMNS
}
IDENTITY_SCHEMA: dict[str, pl.DataType] = {
    "persona_number": pl.Int64(),
    **{k: PERSONA_SCHEMA[k] for k in IDENTITY_COLUMNS},
}

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
    "lapsed_today",
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


def _region_of(zones: pl.Series) -> np.ndarray:
    """Return the region index (int8) of each time zone (each region has its own zone)."""
    return zones.cast(TIMEZONE).to_physical().to_numpy().astype(np.int8)


def _labels(
    name: str, labels: tuple[str, ...] | list[str], codes: np.ndarray, dtype: pl.DataType
) -> pl.Series:
    """Return the label of each code (null for a negative code) as ``dtype`` (an enum: codes gathered,
    no strings built)."""
    idx = pl.Series(codes)  # the codes as they are (int8): gather widens them itself
    if (codes < 0).any():
        idx = pl.select(pl.when(idx >= 0).then(idx)).to_series()
    return pl.Series(name, list(labels), dtype=dtype).gather(idx)


def _ts(values: np.ndarray) -> pl.Series:
    s = pl.Series(values.astype(np.int64, copy=False))  # read once into a new column below: no copy first
    return pl.when(s >= 0).then(s).otherwise(None).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")


def _date(values: np.ndarray) -> pl.Expr:
    s = pl.Series(values.astype(np.int32, copy=False))
    return pl.when(s >= 0).then(s).otherwise(None).cast(pl.Date)


def day_frame(state: PersonaState, columns: Collection[str] | None = None) -> pl.DataFrame:
    """Return the day's table of ``state`` (``PERSONA_DAY_SCHEMA`` columns, in that order): the persona
    table without the identity strings, keyed by ``persona_number``; ``columns``: only those (in the
    schema's order), e.g. what the daily metrics read on a day whose table is not stored."""
    c = state.cols
    n = len(state)
    S = PERSONA_DAY_SCHEMA  # noqa: N806
    want = S.keys() if columns is None else set(columns)
    if unknown := set(want) - S.keys():
        raise ValueError(f"day_frame: no such columns {sorted(unknown)}")
    plain = {k: c[k] for k in (*_PLAIN, "completion_today", *_TRAIT_FLOATS, *_BILLING_INTS) if k in want}
    built = {  # the other columns, each made only when asked for
        "avg_watch_completion": lambda: pl.Series("avg_watch_completion", c["avg_watch_completion_bp"] / 100.0),
        "activity_history": lambda: pl.Series("activity_history", c["history"].astype(np.uint32, copy=False)),
        "is_synthetic": lambda: pl.Series("is_synthetic", np.ones(n, np.bool_)),
        "db_initialized": lambda: pl.Series("db_initialized", ~c["marked_for_cleanup"]),
        "snapshot_date": lambda: pl.Series("snapshot_date", np.full(n, state.day, np.int32)).cast(pl.Date),
        "plan": lambda: _labels("plan", PLANS, c["plan"], S["plan"]),
        "state": lambda: _labels("state", STATES, c["state"], S["state"]),
        "activity_pattern": lambda: _labels("activity_pattern", PATTERNS, c["pattern"], S["activity_pattern"]),
        "favorite_genre": lambda: _labels("favorite_genre", GENRES, c["favorite_genre"], S["favorite_genre"]),
        "country": lambda: _labels("country", _REGION_COUNTRY.tolist(), c["region"], COUNTRY),
        "timezone": lambda: _labels("timezone", _REGION_ZONE.tolist(), c["region"], TIMEZONE),
        "in_life_event": lambda: _labels("in_life_event", LIFE_EVENTS, c["event"], S["in_life_event"]),
        "life_event_ends_at": lambda: _date(c["event_ends"]).alias("life_event_ends_at"),
        "binge_cooldown_until": lambda: _date(
            np.where(c["binge_is_binging"], NO_DAY, c["binge_phase_ends"])
        ).alias("binge_cooldown_until"),
        "binge_phase_ends": lambda: _date(c["binge_phase_ends"]).alias("binge_phase_ends"),
        "churned_at": lambda: _ts(
            np.where(
                c["churned_day"] >= 0, c["churned_day"].astype(np.int64) * 86_400_000 + 86_399_999, NO_MS
            )
        ).alias("churned_at"),
        "churn_reason": lambda: _labels(
            "churn_reason",
            CHURN_REASONS,
            np.where(c["churned_day"] >= 0, c["churn_reason"], -1),
            CHURN_REASON,
        ),
        "previous_plan": lambda: _labels("previous_plan", PLANS, c["previous_plan"], S["previous_plan"]),
        "payment_status": lambda: _labels("payment_status", PAYMENT_STATES, c["payment_state"], S["payment_status"]),
        "next_payment_retry": lambda: _date(c["next_payment_retry"]).alias("next_payment_retry"),
        **{dst: (lambda src=src, dst=dst: _ts(c[src]).alias(dst)) for dst, src in _TS_COLUMNS.items()},
    }  # fmt: skip
    frame = pl.DataFrame(plain, height=n).with_columns(*[make() for k, make in built.items() if k in want])
    return frame.select([pl.col(k).cast(t) for k, t in S.items() if k in want])


# Columns of the day's table that the pool holds under another name (the label columns as their codes).
_POOL_NAMES = {"activity_pattern": "pattern", "in_life_event": "event", "payment_status": "payment_state"}


def metrics_columns(state: PersonaState) -> dict[str, np.ndarray]:
    """Return the pool's arrays that ``metrics.metrics_row`` reads, under the day table's names (the label
    columns as their codes): the day's metrics without building its table."""
    return {k: state.cols[_POOL_NAMES.get(k, k)] for k in METRICS_INPUT_COLUMNS}


def with_identities(day: pl.DataFrame, identity: pl.DataFrame) -> pl.DataFrame:
    """Return the full persona table (``PERSONA_SCHEMA``) of a day's table and an identity registry.

    ``identity`` has ``IDENTITY_SCHEMA`` columns sorted by ascending ``persona_number`` and may list
    more personas than the day; every persona of ``day`` must be in it.
    """
    registry = identity["persona_number"].to_numpy()
    numbers = day["persona_number"].to_numpy()
    rows = np.searchsorted(registry, numbers).clip(0, max(len(registry) - 1, 0))
    if len(numbers) and (len(registry) == 0 or (registry[rows] != numbers).any()):
        missing = len(numbers) if len(registry) == 0 else int(np.count_nonzero(registry[rows] != numbers))
        raise ValueError(f"identity registry lacks {missing} of the day's {len(numbers)} personas")
    ids = (
        identity[rows].select(list(IDENTITY_COLUMNS))
        if len(numbers)
        else identity.clear().drop("persona_number")
    )
    frame = pl.concat([day, ids], how="horizontal")
    return frame.select([pl.col(k).cast(t) for k, t in PERSONA_SCHEMA.items()])


def to_frame(state: PersonaState) -> pl.DataFrame:
    """Return the persona table of ``state`` with ``PERSONA_SCHEMA`` columns, in that order."""
    return with_identities(day_frame(state), state.identity)


def new_identities(state: PersonaState, first_number: int) -> pl.DataFrame:
    """Return the identity rows (``IDENTITY_SCHEMA``) of the personas numbered from ``first_number`` on:
    the signups of ``state``'s day when ``first_number`` is the pool's ``next_number`` before the step."""
    rows = state.identity.filter(pl.col("persona_number") >= first_number)
    return rows.select([pl.col(k).cast(t) for k, t in IDENTITY_SCHEMA.items()])


def from_frame(frame: pl.DataFrame) -> PersonaState:
    """Return the array form of a persona table written by ``to_frame`` or of a day's table written by
    ``day_frame`` (its identity registry then starts empty: the step never reads it).

    Numeric columns are views of the frame's buffers where the dtype already fits (read-only): the day
    step copies every column before it changes any (``PersonaState.take``).
    """
    if frame.is_empty():
        raise ValueError("persona table is empty")
    f = frame.cast({k: t for k, t in PERSONA_DAY_SCHEMA.items() if k in frame.columns})

    def num(column: str, dtype: type, null: int | None = None) -> np.ndarray:
        series = f[column].to_physical()
        if null is not None:
            series = series.fill_null(null)
        return series.to_numpy().astype(dtype, copy=False)

    cols: dict[str, np.ndarray] = {}
    for k in _PLAIN:
        cols[k] = num(k, NUMERIC_COLUMNS[k])
    cols["avg_watch_completion_bp"] = np.rint(num("avg_watch_completion", np.float64) * 100.0).astype(
        np.int16
    )
    for k in _TRAIT_FLOATS:
        cols[k] = num(k, np.float32)
    for k in _BILLING_INTS:
        cols[k] = num(k, NUMERIC_COLUMNS[k])
    cols["previous_plan"] = num("previous_plan", np.int8)
    cols["payment_state"] = num("payment_status", np.int8)
    cols["next_payment_retry"] = num("next_payment_retry", np.int32, NO_DAY)
    cols["churn_reason"] = num("churn_reason", np.int8, 0)
    cols["favorite_genre"] = num("favorite_genre", np.int8)
    cols["region"] = _region_of(f["timezone"])
    cols["completion_today"] = num("completion_today", np.float64)
    cols["history"] = num("activity_history", NUMERIC_COLUMNS["history"])
    cols["plan"] = num("plan", np.int8)
    cols["state"] = num("state", np.int8)
    cols["pattern"] = num("activity_pattern", np.int8)
    cols["event"] = num("in_life_event", np.int8, NO_EVENT)
    cols["event_ends"] = num("life_event_ends_at", np.int32, NO_DAY)
    cols["binge_phase_ends"] = num("binge_phase_ends", np.int32, NO_DAY)
    cols["churned_day"] = (
        f["churned_at"].dt.date().to_physical().fill_null(NO_DAY).to_numpy().astype(np.int32, copy=False)
    )
    for dst, src in _TS_COLUMNS.items():
        cols[src] = (
            f[dst]
            .dt.cast_time_unit("ms")
            .to_physical()
            .fill_null(NO_MS)
            .to_numpy()
            .astype(np.int64, copy=False)
        )
    day = int(f["snapshot_date"].to_physical()[0])
    if "distinct_id" in f.columns:
        identity = f.select([pl.col(k).cast(t) for k, t in IDENTITY_SCHEMA.items()]).sort("persona_number")
    else:
        identity = pl.DataFrame(schema=IDENTITY_SCHEMA)
    return PersonaState(
        day=day, cols=cols, identity=identity, next_number=int(cols["persona_number"].max()) + 1
    )
