"""IoT: every pour measured by a tap device, and the devices' daily health.

Each device has latent traits (uptime, how warm it runs, how much it pours) shared by its tap
events, its health rows and its account's support tickets. Tap-event sampling is a handful of
table lookups per row, driven by one 64-bit draw read as four 16-bit uniforms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.warehouse.sampling import DAY, HOUR, categorical, to_seconds, ts

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse


def device_profile(wh: Warehouse) -> dict[str, np.ndarray]:
    """Return per-device latent traits: uptime, temperature offset, pour volume, life span, account, location."""
    table = wh.whole("devices")
    rng = wh.rng("devices", 0, "profile")
    n = table.height
    status = table["status"].to_numpy()
    uptime_by_status = wh.cfg.taps.uptime
    mean = np.select([status == s for s in uptime_by_status], [v[0] for v in uptime_by_status.values()], 0.95)
    spread = np.select(
        [status == s for s in uptime_by_status], [v[1] for v in uptime_by_status.values()], 0.05
    )
    uptime = np.clip(mean + spread * rng.standard_normal(n), 0.3, 0.9999)
    warm = np.select([status == "maintenance", status == "offline"], [2.5, 1.0], 0.0)
    account = table["account_id"].to_numpy() - 1
    size = np.sqrt(wh.size_weight[account])
    volume = size * np.exp(0.3 * rng.standard_normal(n)) * np.where(status == "maintenance", 0.6, 1.0)
    _, acc_end = wh.account_span
    installed = to_seconds(table["installed_at"])
    return {
        "uptime": uptime,
        "temp_offset": (warm + 0.3 * rng.standard_normal(n)).astype(np.float32),
        "volume": volume,
        "installed": installed,
        "active_end": acc_end[account],
        "account": account,
        "location": table["location_id"].to_numpy() - 1,
    }


def account_uptime(wh: Warehouse) -> np.ndarray:
    """Return the mean device uptime fraction of every account (1.0 for accounts without devices)."""
    profile = wh.device_profile
    n = wh.rows["accounts"]
    total = np.bincount(profile["account"], weights=profile["uptime"], minlength=n)
    count = np.bincount(profile["account"], minlength=n)
    return np.where(count > 0, total / np.maximum(count, 1), 1.0)


def tap_lookup_tables(wh: Warehouse) -> dict[str, np.ndarray]:
    """Per-device day tables and 16-bit lookup tables that make tap-event sampling a few gathers per row."""
    spec = wh.cfg.taps
    profile = wh.device_profile
    first_day = profile["installed"] // DAY + 1
    last_day = profile["active_end"] // DAY - 1
    weekdays = np.arange(7)
    # first day with weekday d on or after the device's first full day, and how many such weeks follow
    first = first_day[:, None] + (weekdays[None, :] - (first_day[:, None] + 3) % 7) % 7
    weeks = (last_day[:, None] - first) // 7 + 1
    if (weeks < 1).any():
        raise ValueError("every device needs at least a week of activity for tap events")
    grid = (np.arange(65536) + 0.5) / 65536

    def lookup(weights: np.ndarray) -> np.ndarray:  # 65,536 quantiles of the distribution -> category
        return np.searchsorted(np.cumsum(weights) / np.sum(weights), grid).astype(np.uint8)

    # time of day in microseconds: the inverse CDF of the hourly curve at 65,536 quantiles
    hours = np.asarray(spec.hour_weights, dtype=np.float64)
    cdf = np.concatenate([[0.0], np.cumsum(hours) / hours.sum()])
    time_of_day = np.interp(grid, cdf, np.arange(25) * HOUR)
    return {
        "first": first.astype(np.int32).ravel(),
        "weeks": weeks.astype(np.int32).ravel(),
        "dow_lut": lookup(np.asarray(spec.weekday_weights)),
        "tod_us": (time_of_day * 1_000_000).astype(np.int64),
        "product_lut": lookup(np.fromiter(spec.products.values(), dtype=np.float64)),
        "ml": np.array(list(spec.pour_ml.values()), dtype=np.float32),
        "serve": np.array([spec.serve_celsius[p] for p in spec.products], dtype=np.float32),
        "location": (profile["location"] + 1).astype(np.int64),
        "account": (profile["account"] + 1).astype(np.int64),
    }


def tap_events(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the pours: devices by volume x active days, weekday and hour curves, product mix."""
    spec = wh.cfg.taps
    start, stop = wh.chunk_rows("tap_events", k)
    rng, n = wh.rng("tap_events", k), stop - start
    profile = wh.device_profile
    lookup = wh.tap_tables
    days = (profile["active_end"] - profile["installed"]) / DAY
    weight = profile["volume"] * days
    counts = rng.multinomial(n, weight / weight.sum())
    device = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    # one 64-bit draw per row, read as four 16-bit uniforms: weekday, product, week, time of day
    bits = rng.bit_generator.random_raw(n).view(np.uint16).reshape(n, 4)
    slot = device * 7 + lookup["dow_lut"][bits[:, 0]]
    product = lookup["product_lut"][bits[:, 1]]
    week = np.multiply(bits[:, 2], lookup["weeks"][slot], dtype=np.int32) >> 16
    day = lookup["first"][slot] + 7 * week
    poured_us = day * np.int64(DAY * 1_000_000) + lookup["tod_us"][bits[:, 3]]
    z = rng.standard_normal((2, n), dtype=np.float32)
    volume = lookup["ml"][product] * (np.float32(1.0) + np.float32(0.06) * z[0])
    temperature = lookup["serve"][product] + profile["temp_offset"][device] + np.float32(0.4) * z[1]
    duration = (volume * np.float32(1000 / spec.flow_ml_per_s)).astype(np.int32)
    device += 1
    return pl.DataFrame(
        {
            "tap_event_id": np.arange(start + 1, stop + 1, dtype=np.int64),
            "device_id": device,
            "location_id": lookup["location"][device - 1],
            "account_id": lookup["account"][device - 1],
            "poured_at": pl.Series(poured_us).cast(pl.Datetime("us")),
            "product_type": categorical(product, list(spec.products)),
            "volume_ml": volume,
            "temperature_c": temperature,
            "duration_ms": duration,
        }
    )


def device_health(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the daily health rows over each device's last active days."""
    spec = wh.cfg.taps
    start, stop = wh.chunk_rows("device_health", k)
    rng, n = wh.rng("device_health", k), stop - start
    profile = wh.device_profile
    rows = np.arange(start, stop)
    device, offset = rows // spec.health_days, rows % spec.health_days
    day = profile["active_end"][device] // DAY - spec.health_days + offset
    uptime = np.clip(profile["uptime"][device] + 0.01 * rng.standard_normal(n), 0.0, 1.0)
    errors = rng.poisson((1 - uptime) * 20).astype(np.int32)
    temperature = np.float32(spec.serve_celsius.get("draft_beer", 3.0)) + profile["temp_offset"][device]
    temperature = temperature + np.float32(0.2) * rng.standard_normal(n, dtype=np.float32)
    return pl.DataFrame(
        {
            "health_id": rows + 1,
            "device_id": device + 1,
            "recorded_at": ts(day * DAY + 6 * HOUR),
            "uptime_pct": np.round(uptime * 100, 2),
            "error_count": errors,
            "avg_temperature_c": temperature,
            "needs_maintenance": (uptime < 0.9) | (errors > 5),
        }
    )
