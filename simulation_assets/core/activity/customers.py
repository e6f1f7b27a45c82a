"""The customer model and one simulation tick: five behaviours applied to whole columns at once.

A tick draws a fixed block of uniforms per customer from a stream keyed by the
tick number, so tick ``t`` applied to the state after tick ``t - 1`` always
gives the same result, whichever process applies it and however often it is
retried.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.activity.config import STAGES, TRENDS, ActivityConfig
from simulation_assets.core.activity.schema import CUSTOMER_SCHEMA, EVENT_SCHEMA, TS, conform
from simulation_assets.core.rng import stable_uuid, stream

NEW, ONBOARDING, ACTIVE = range(3)
DECLINING, STABLE, INCREASING = range(3)
PAID_PLANS = ("starter", "growth", "enterprise")
PAID_PLAN_SHARES = (0.5, 0.35, 0.15)  # choice of this project

_WORDS = np.array(
    "Acme Bluefin Cobalt Driftwood Emberly Fjord Granite Harbor Ironbark Juniper Kestrel Lumen "
    "Meridian Nimbus Orchard Pinnacle Quarry Redwood Summit Tidewater Umbra Vantage Willow Xenon "
    "Yarrow Zephyr Aurora Beacon Cascade Dynamo Everest Foxglove Glacier Helios Indigo Jasper "
    "Keystone Lighthouse Mosaic Northwind".split()
)
_SUFFIXES = np.array(["Inc", "Ltd", "Co", "Labs", "GmbH", "LLC", "Systems", "Analytics"])
# Steps coprime to 320 (= 40 words x 8 suffixes), so number -> (word, suffix) is a bijection per lap.
_COPRIME_STEPS = np.array([37, 53, 61, 77, 83, 97, 101, 113, 131, 139, 151, 157, 173, 179, 191, 197])

# Uniform columns drawn per customer and tick (the layout is part of the stream's contract).
_U_CALL, _U_CALL_COUNT, _U_SPIKE, _U_SPIKE_SIZE, _U_FIX, _U_FIX_LEVEL = range(6)
_U_TREND, _U_TREND_TO, _U_STAGE, _U_FIRST_COUNT = range(6, 10)
_UNIFORMS_PER_CUSTOMER = 10

# Order of the event kinds within a tick's log.
EVENT_KINDS = (
    "new_customer",
    "subscribed",
    "first_api_call",
    "api_calls",
    "error_spike",
    "error_fix",
    "trend_change",
)


@dataclass(frozen=True)
class TickResult:
    """The state after a tick, what happened in it (one row per event) and the tick-log row."""

    customers: pl.DataFrame
    events: pl.DataFrame
    summary: dict[str, object]


def customer_names(seed: int, numbers: np.ndarray) -> list[str]:
    """Return a company name per customer number: unique for the first 320 customers of a seed."""
    numbers = np.asarray(numbers, dtype=np.int64)
    picks = stream(seed, "activity", "names").integers(0, 1 << 16, size=2)
    pairs = len(_WORDS) * len(_SUFFIXES)
    slot = (_COPRIME_STEPS[picks[0] % len(_COPRIME_STEPS)] * numbers + picks[1]) % pairs
    frame = pl.DataFrame(
        {
            "word": _WORDS[slot % len(_WORDS)],
            "suffix": _SUFFIXES[slot // len(_WORDS)],
            "lap": numbers // pairs,
        }
    )
    return (
        frame.select(
            pl.when(pl.col("lap") == 0)
            .then(pl.format("{} {}", "word", "suffix"))
            .otherwise(pl.format("{} {} {}", "word", "suffix", pl.col("lap") + 1))
        )
        .to_series()
        .to_list()
    )


def _customer_ids(seed: int, numbers: np.ndarray) -> list[str]:
    return [str(stable_uuid(seed, "activity", "customer", int(n))) for n in numbers]


def initial_customers(cfg: ActivityConfig, seed: int, at: dt.datetime) -> pl.DataFrame:
    """Return the starting pool (tick 0): mixed stages, plans, trends and healthy error rates."""
    n = cfg.initial_customers
    rng = stream(seed, "activity", "initial")
    numbers = np.arange(n, dtype=np.int64)
    stage = rng.choice(3, size=n, p=np.asarray(cfg.initial_stage_shares))
    trend = np.where(stage == ACTIVE, rng.choice(3, size=n, p=np.asarray(cfg.initial_trend_shares)), STABLE)
    paid = np.asarray(PAID_PLANS)[rng.choice(3, size=n, p=np.asarray(PAID_PLAN_SHARES))]
    plan = np.where(stage == ACTIVE, paid, np.where(stage == ONBOARDING, "trial", "none"))
    history = rng.integers(100, 5000, size=n, endpoint=True)  # calls made before the simulation started
    total = np.where(stage == ACTIVE, history, 0)
    seconds_ago = rng.uniform(0, 3600, size=n)
    # Onboarding customers have been waiting 0-3 ticks already, so some start out stuck.
    stage_since = np.where(stage == ONBOARDING, -rng.integers(0, 4, size=n), 0)
    error = rng.uniform(cfg.baseline_error_rate.low, cfg.baseline_error_rate.high, size=n)
    last_call = pl.Series(
        [at - dt.timedelta(seconds=float(s)) for s in seconds_ago], dtype=TS
    )  # n is the small starting pool
    frame = pl.DataFrame(
        {
            "customer_id": _customer_ids(seed, numbers),
            "customer_no": numbers,
            "name": customer_names(seed, numbers),
            "stage": _labels(stage, STAGES),
            "plan": plan,
            "total_api_calls": total.astype(np.int64),
            "last_api_call_at": last_call,
            "error_rate": error,
            "usage_trend": _labels(trend, TRENDS),
            "calls_last_tick": np.zeros(n, dtype=np.int64),
            "created_tick": np.zeros(n, dtype=np.int64),
            "stage_since_tick": stage_since.astype(np.int64),
            "updated_tick": np.zeros(n, dtype=np.int64),
            "is_synthetic": np.ones(n, dtype=bool),
        }
    ).with_columns(
        pl.when(pl.col("stage") == "ACTIVE").then(pl.col("last_api_call_at")).alias("last_api_call_at")
    )
    return conform(frame, CUSTOMER_SCHEMA)


def _labels(codes: np.ndarray, labels: tuple[str, ...]) -> pl.Series:
    """Return the label of each code as a String series (a gather from the few labels: no per-row strings)."""
    return pl.Series(list(labels), dtype=pl.String).gather(codes)


def _codes(series: pl.Series, labels: tuple[str, ...]) -> np.ndarray:
    """Return the position of each value in ``labels`` (raises on an unknown label)."""
    return series.cast(pl.Enum(list(labels))).to_physical().to_numpy().astype(np.int64)


def _draw_calls(span_low: float, span_high: float, u: np.ndarray) -> np.ndarray:
    """Return integer call counts uniform on [low, high] from uniforms ``u``."""
    low, high = int(span_low), int(span_high)
    return low + np.floor(u * (high - low + 1)).astype(np.int64)


def _stage_moves(stage: np.ndarray, u: np.ndarray, cfg: ActivityConfig) -> tuple[np.ndarray, np.ndarray]:
    """Behaviour 4: NEW customers subscribe; onboarding customers eventually make their first call."""
    subscribes = (stage == NEW) & (u[:, _U_STAGE] < cfg.subscribe_probability)
    first_call = (stage == ONBOARDING) & (u[:, _U_STAGE] < cfg.first_call_probability)
    return subscribes, first_call


def _api_calls(
    active: np.ndarray, first_call: np.ndarray, trend: np.ndarray, u: np.ndarray, cfg: ActivityConfig
) -> np.ndarray:
    """Behaviour 1: active customers call the API, scaled by their usage trend (plus first calls)."""
    calling = active & (u[:, _U_CALL] < cfg.api_call_probability)
    base = _draw_calls(cfg.api_calls_per_tick.low, cfg.api_calls_per_tick.high, u[:, _U_CALL_COUNT])
    scaled = np.maximum(1, np.rint(base * np.asarray(cfg.trend_call_multiplier)[trend])).astype(np.int64)
    first_calls = _draw_calls(cfg.api_calls_per_tick.low, cfg.api_calls_per_tick.high, u[:, _U_FIRST_COUNT])
    return np.where(calling, scaled, 0) + np.where(first_call, first_calls, 0)


def _error_changes(
    active: np.ndarray, error: np.ndarray, u: np.ndarray, cfg: ActivityConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Behaviour 2: error spikes (a bug ships) and fixes (back to a healthy baseline).

    Returns the spikes, the fixes and the new error rates.
    """
    spikes = active & (u[:, _U_SPIKE] < cfg.error_spike_probability)
    spike_size = cfg.error_spike_size.low + u[:, _U_SPIKE_SIZE] * (
        cfg.error_spike_size.high - cfg.error_spike_size.low
    )
    fixes = (
        active & ~spikes & (error > cfg.baseline_error_rate.high) & (u[:, _U_FIX] < cfg.error_fix_probability)
    )
    baseline = cfg.baseline_error_rate.low + u[:, _U_FIX_LEVEL] * (
        cfg.baseline_error_rate.high - cfg.baseline_error_rate.low
    )
    new_error = np.where(spikes, np.minimum(error + spike_size, cfg.max_error_rate), error)
    return spikes, fixes, np.where(fixes, baseline, new_error)


def _trend_changes(
    active: np.ndarray, trend: np.ndarray, u: np.ndarray, cfg: ActivityConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Behaviour 3: usage trends switch to one of the two other trends; returns the changes and new trends."""
    changes = active & (u[:, _U_TREND] < np.asarray(cfg.trend_change_probability)[trend])
    from_stable = np.where(u[:, _U_TREND_TO] < 0.5, INCREASING, DECLINING)
    from_moving = np.where(u[:, _U_TREND_TO] < cfg.trend_back_to_stable_share, STABLE, 2 - trend)
    return changes, np.where(changes, np.where(trend == STABLE, from_stable, from_moving), trend)


def step_tick(
    customers: pl.DataFrame, tick: int, cfg: ActivityConfig, seed: int, at: dt.datetime
) -> TickResult:
    """Apply one tick's five behaviours to ``customers`` (the state after tick ``tick - 1``) at time ``at``.

    Returns the new state, the tick's events (one row per customer and behaviour
    that fired) and the tick-log row. Behaviours read the stage a customer had at
    the start of the tick, so a customer who makes a first call is not also hit
    by an error spike in the same tick. Every draw of the tick comes from one block
    of uniforms, one column per purpose, so the behaviours do not depend on each
    other's order.
    """
    if tick < 1:
        raise ValueError(f"tick must be >= 1 (tick 0 is the starting pool), got {tick}")
    customers = conform(customers, CUSTOMER_SCHEMA)
    n = customers.height
    # One row of uniforms per purpose, so each column read below is contiguous.
    u = stream(seed, "activity", "tick", tick).random((_UNIFORMS_PER_CUSTOMER, n)).T
    stage = _codes(customers["stage"], STAGES)
    trend = _codes(customers["usage_trend"], TRENDS)
    error = customers["error_rate"].to_numpy().astype(np.float64)
    total = customers["total_api_calls"].to_numpy().astype(np.int64)
    active = stage == ACTIVE

    subscribes, first_call = _stage_moves(stage, u, cfg)
    calls = _api_calls(active, first_call, trend, u, cfg)
    new_total = total + calls
    spikes, fixes, new_error = _error_changes(active, error, u, cfg)
    changes, new_trend = _trend_changes(active, trend, u, cfg)

    new_stage = np.where(subscribes, ONBOARDING, np.where(first_call, ACTIVE, stage))
    stage_changed = subscribes | first_call
    changed = stage_changed | (calls > 0) | spikes | fixes | changes
    state = customers.with_columns(
        _labels(new_stage, STAGES).alias("stage"),
        pl.when(pl.Series(subscribes)).then(pl.lit("trial")).otherwise(pl.col("plan")).alias("plan"),
        pl.Series("total_api_calls", new_total),
        pl.when(pl.Series(calls > 0))
        .then(pl.lit(at, dtype=TS))
        .otherwise(pl.col("last_api_call_at"))
        .alias("last_api_call_at"),
        pl.Series("error_rate", new_error),
        _labels(new_trend, TRENDS).alias("usage_trend"),
        pl.Series("calls_last_tick", calls),
        pl.when(pl.Series(stage_changed))
        .then(tick)
        .otherwise(pl.col("stage_since_tick"))
        .alias("stage_since_tick"),
        pl.when(pl.Series(changed)).then(tick).otherwise(pl.col("updated_tick")).alias("updated_tick"),
    )

    # Behaviour 5: now and then a new customer signs up (NEW, no subscription).
    newcomers = _new_customers(cfg, seed, tick, at, customers, new_customer_draws(seed, tick))
    state = conform(
        pl.concat([state, newcomers], rechunk=False) if newcomers.height else state, CUSTOMER_SCHEMA
    )

    facts = pl.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "customer_name": customers["name"],
            "calls": calls,
            "total": new_total,
            "error_before": error,
            "error_after": new_error,
            "trend_before": _labels(trend, TRENDS),
            "trend_after": _labels(new_trend, TRENDS),
            "subscribes": subscribes,
            "first_call": first_call,
            "spike": spikes,
            "fix": fixes,
            "change": changes,
        }
    )
    events = _events(facts, newcomers, tick)
    summary = _summary(
        state,
        new_stage,
        new_error,
        tick,
        seed,
        at,
        calls,
        spikes,
        fixes,
        changes,
        subscribes,
        first_call,
        newcomers,
    )
    return TickResult(customers=state, events=events, summary=summary)


def new_customer_draws(seed: int, tick: int) -> np.ndarray:
    """Return the tick's two uniforms for behaviour 5: [0] decides whether a customer joins, [1] sets its error rate."""
    return stream(seed, "activity", "new_customer", tick).random(2)


def new_customer_arrives(cfg: ActivityConfig, seed: int, tick: int) -> bool:
    """Return whether a new customer signs up in ``tick``."""
    return bool(new_customer_draws(seed, tick)[0] < cfg.new_customer_probability)


def _new_customers(
    cfg: ActivityConfig, seed: int, tick: int, at: dt.datetime, customers: pl.DataFrame, joins: np.ndarray
) -> pl.DataFrame:
    if not joins[0] < cfg.new_customer_probability:
        return pl.DataFrame(schema=CUSTOMER_SCHEMA)
    number = int(customers["customer_no"].max()) + 1 if customers.height else 0
    error = cfg.baseline_error_rate.low + joins[1] * (
        cfg.baseline_error_rate.high - cfg.baseline_error_rate.low
    )
    row = {
        "customer_id": _customer_ids(seed, np.array([number])),
        "customer_no": [number],
        "name": customer_names(seed, np.array([number])),
        "stage": ["NEW"],
        "plan": ["none"],
        "total_api_calls": [0],
        "last_api_call_at": [None],
        "error_rate": [float(error)],
        "usage_trend": ["stable"],
        "calls_last_tick": [0],
        "created_tick": [tick],
        "stage_since_tick": [tick],
        "updated_tick": [tick],
        "is_synthetic": [True],
    }
    return pl.DataFrame(row, schema=CUSTOMER_SCHEMA)


def _pct(name: str) -> pl.Expr:
    return pl.format("{}%", (pl.col(name) * 100).round(1))


def _events(facts: pl.DataFrame, newcomers: pl.DataFrame, tick: int) -> pl.DataFrame:
    """Return the tick's events with a console-style message each, in EVENT_KINDS order."""
    name = pl.col("customer_name")
    parts = [
        newcomers.select(
            "customer_id",
            pl.col("name").alias("customer_name"),
            pl.lit("new_customer").alias("kind"),
            pl.lit(None, dtype=pl.Float64).alias("value_before"),
            pl.lit(None, dtype=pl.Float64).alias("value_after"),
            pl.format("🆕 {}: new customer signed up (NEW, no subscription)", pl.col("name")).alias(
                "message"
            ),
        ),
        facts.filter("subscribes").select(
            "customer_id",
            "customer_name",
            pl.lit("subscribed").alias("kind"),
            pl.lit(None, dtype=pl.Float64).alias("value_before"),
            pl.lit(None, dtype=pl.Float64).alias("value_after"),
            pl.format("📝 {}: started a trial, onboarding begins", name).alias("message"),
        ),
        facts.filter("first_call").select(
            "customer_id",
            "customer_name",
            pl.lit("first_api_call").alias("kind"),
            pl.lit(0.0).alias("value_before"),
            pl.col("calls").cast(pl.Float64).alias("value_after"),
            pl.format("🎉 {}: first API call, onboarding complete", name).alias("message"),
        ),
        facts.filter(pl.col("calls") > 0).select(
            "customer_id",
            "customer_name",
            pl.lit("api_calls").alias("kind"),
            (pl.col("total") - pl.col("calls")).cast(pl.Float64).alias("value_before"),
            pl.col("total").cast(pl.Float64).alias("value_after"),
            pl.format("📞 {}: +{} API calls (total: {})", name, "calls", "total").alias("message"),
        ),
        facts.filter("spike").select(
            "customer_id",
            "customer_name",
            pl.lit("error_spike").alias("kind"),
            pl.col("error_before").alias("value_before"),
            pl.col("error_after").alias("value_after"),
            pl.format(
                "🚨 {}: error rate spike {} → {}", name, _pct("error_before"), _pct("error_after")
            ).alias("message"),
        ),
        facts.filter("fix").select(
            "customer_id",
            "customer_name",
            pl.lit("error_fix").alias("kind"),
            pl.col("error_before").alias("value_before"),
            pl.col("error_after").alias("value_after"),
            pl.format("🔧 {}: errors fixed {} → {}", name, _pct("error_before"), _pct("error_after")).alias(
                "message"
            ),
        ),
        facts.filter("change").select(
            "customer_id",
            "customer_name",
            pl.lit("trend_change").alias("kind"),
            pl.col("trend_before").replace_strict(dict(zip(TRENDS, (-1.0, 0.0, 1.0)))).alias("value_before"),
            pl.col("trend_after").replace_strict(dict(zip(TRENDS, (-1.0, 0.0, 1.0)))).alias("value_after"),
            pl.format(
                "{} {}: usage trend {} → {}",
                pl.col("trend_after").replace_strict({"increasing": "📈", "declining": "📉", "stable": "📊"}),
                name,
                "trend_before",
                "trend_after",
            ).alias("message"),
        ),
    ]
    frame = pl.concat([p.cast({"value_before": pl.Float64, "value_after": pl.Float64}) for p in parts])
    frame = frame.with_columns(
        pl.lit(tick, dtype=pl.Int64).alias("tick"), pl.int_range(pl.len()).alias("seq")
    )
    return conform(frame, EVENT_SCHEMA)


def _summary(
    state: pl.DataFrame,
    stage: np.ndarray,
    error: np.ndarray,
    tick: int,
    seed: int,
    at: dt.datetime,
    calls: np.ndarray,
    spikes: np.ndarray,
    fixes: np.ndarray,
    changes: np.ndarray,
    subscribes: np.ndarray,
    first_call: np.ndarray,
    newcomers: pl.DataFrame,
) -> dict[str, object]:
    """Return the tick-log row; ``stage`` and ``error`` are the codes and rates of the customers before newcomers."""
    by_stage = np.bincount(stage, minlength=len(STAGES))
    active = stage == ACTIVE
    return {
        "tick": tick,
        "applied_at": at,
        "seed": seed,
        "customers": state.height,
        "new_customers": newcomers.height,
        "api_calls": int(calls.sum()),
        "total_api_calls": int(state["total_api_calls"].sum()),
        "error_spikes": int(spikes.sum()),
        "error_fixes": int(fixes.sum()),
        "trend_changes": int(changes.sum()),
        "subscriptions": int(subscribes.sum()),
        "first_api_calls": int(first_call.sum()),
        "stage_new": int(by_stage[NEW]) + newcomers.height,  # newcomers always start NEW
        "stage_onboarding": int(by_stage[ONBOARDING]),
        "stage_active": int(by_stage[ACTIVE]),
        "mean_error_rate": float(error[active].mean()) if active.any() else 0.0,
    }


def genesis_summary(customers: pl.DataFrame, seed: int, at: dt.datetime) -> dict[str, object]:
    """Return the tick-log row of tick 0 (the starting pool, no behaviour applied)."""
    n = customers.height
    zeros = np.zeros(n, dtype=bool)
    stage = _codes(customers["stage"], STAGES)
    error = customers["error_rate"].to_numpy()
    empty = customers.head(0)
    return _summary(
        customers, stage, error, 0, seed, at, np.zeros(n, np.int64), zeros, zeros, zeros, zeros, zeros, empty
    )
