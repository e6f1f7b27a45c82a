"""IoT: every pour measured by a tap device, and the devices' daily health, from one model of each device.

Each device has a life (installed .. last seen), a pour volume, and a history of failures: an outage
of a few days, preceded by days of degradation (intermittent drop-outs, more errors, a warmer line)
and followed by a maintenance visit that restores it. Devices whose status is ``offline`` or
``maintenance`` went down at ``last_seen_at`` and stay down. Failures come more often on some sites
(poor site quality, also a driver of the account's health) and on some models. Some churned accounts
left weeks after an outage (``health.outage_churn_share``): the outage is placed before their end.

Tap events are spread over the days a device is up, in proportion to the calendar's day weights
(season, weekday, holidays), so a device pours nothing while it is down and nothing after it was
last seen; ``device_health`` reports the same outages day by day, so uptime follows the gaps in the
taps. Sampling a tap is a handful of table lookups: one 64-bit draw gives the position along the
device's weighted up-days (32 bits), the product and the time of day (16 bits each); a second draw
gives the two normal deviates of volume and temperature.
"""

from __future__ import annotations

import functools
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.warehouse.calendar import day_weights
from simulation_assets.core.warehouse.sampling import DAY, HOUR, categorical, to_seconds, ts

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse

_NORMAL = NormalDist()
NEVER = np.int64(1) << 40  # a day number no outage reaches: marks an unused outage slot


def device_profile(wh: Warehouse) -> dict[str, np.ndarray]:
    """Return per-device traits: life (tap days), volume, temperature offset, failures and final state."""
    spec, table = wh.cfg.taps, wh.whole("devices")
    rng = wh.rng("devices", 0, "profile")
    n = table.height
    status = table["status"]
    account = table["account_id"].to_numpy() - 1
    installed = to_seconds(table["installed_at"])
    last_seen = to_seconds(table["last_seen_at"])
    first_day = installed // DAY + 1
    last_day = last_seen // DAY - 1  # taps end the day before the device was last seen
    down_at_end = (status != "online").to_numpy()  # offline and maintenance devices went down when last seen
    size = np.sqrt(wh.size_weight[account])
    volume = size * np.exp(0.3 * rng.standard_normal(n)) * wh.tap_intensity[account]
    # failures: more often on poor sites and on some models, a few days each
    factors = {m: float(f) for m, f in spec.model_failure_factor.items()}
    model_factor = table["model"].replace_strict(factors, default=1.0, return_dtype=pl.Float64).to_numpy()
    site = np.exp(-spec.site_failure_sensitivity * wh.site_quality[account])  # poor sites fail more
    rate = spec.failures_per_year * model_factor * site
    life_years = np.maximum(last_day - first_day + 1, 0) / 365.25
    k = spec.max_outages
    count = np.minimum(rng.poisson(rate * life_years), k)
    lo, hi = first_day + spec.degradation_days[1] + 7, last_day - 14
    start = lo[:, None] + (rng.random((n, k)) * np.maximum(hi - lo, 0)[:, None]).astype(np.int64)
    start = np.where(np.arange(k)[None, :] < count[:, None], start, NEVER)
    start.sort(axis=1)
    longest = 3 * round(spec.outage_days_mean)
    length = 1 + np.minimum(rng.geometric(1 / spec.outage_days_mean, (n, k)) - 1, longest)
    low_deg, high_deg = spec.degradation_days
    degrade = rng.integers(low_deg, high_deg + 1, (n, k))
    end = np.where(start < NEVER, start + length, NEVER)
    for j in range(1, k):  # outages do not overlap: each starts after the previous one and its lead-up
        earliest = end[:, j - 1] + degrade[:, j] + 1
        start[:, j] = np.where((start[:, j] < NEVER) & (start[:, j] < earliest), earliest, start[:, j])
        end[:, j] = np.where(start[:, j] < NEVER, start[:, j] + length[:, j], NEVER)
    late = end > (last_day - 7)[:, None]  # an outage must be over (and repaired) a week before the end
    start[late], end[late] = NEVER, NEVER
    start, end = _last_straw(wh, account, first_day, last_day, start, end, length[:, -1], degrade[:, -1])
    final_degrade = rng.integers(low_deg, high_deg + 1, n)
    warm = status.replace_strict(
        {"maintenance": 1.0, "offline": 0.5}, default=0.0, return_dtype=pl.Float64
    ).to_numpy()
    return {
        "volume": volume,
        "temp_offset": (warm + 0.3 * rng.standard_normal(n)).astype(np.float32),
        "installed": installed,
        "last_seen": last_seen,
        "first_day": first_day,
        "last_day": last_day,
        "outage_start": start,
        "outage_end": end,
        "degrade_days": degrade,
        "down_at_end": down_at_end,
        "final_degrade_days": final_degrade,
        "active_end": wh.account_span[1][account],
        "account": account,
        "location": table["location_id"].to_numpy() - 1,
    }


def _last_straw(
    wh: Warehouse,
    account: np.ndarray,
    first_day: np.ndarray,
    last_day: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    length: np.ndarray,
    degrade: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the outage slots with the outages that made accounts leave: ``health.outage_churn_share`` of the
    churned accounts left 8-20 days after one of their devices (the first one still up long enough) went
    down, so an outage in an account's last month raises its churn (measured by a structure check).
    The outage takes the device's last slot (dropped when it would overlap the one before)."""
    _, active_end = wh.account_span
    n_accounts = len(active_end)
    left = (active_end < wh.history_end) & (
        wh.rng("accounts", 0, "last_straw").random(n_accounts) < wh.cfg.health.outage_churn_share
    )
    lo = first_day + wh.cfg.taps.degradation_days[1] + 7
    eligible = np.flatnonzero(left[account] & (last_day - 40 > lo))
    if eligible.size == 0:
        return start, end
    _, first = np.unique(account[eligible], return_index=True)  # one device per account
    device = eligible[first]
    k = start.shape[1]
    gap = wh.rng("devices", 0, "last_straw").integers(8, 21, device.size)
    begin = last_day[device] - gap - length[device] + 1
    before = end[device, k - 2] if k > 1 else np.full(device.size, -NEVER)
    fits = np.where(before < NEVER, before + degrade[device] + 1 <= begin, True)
    device, begin = device[fits], begin[fits]
    start, end = start.copy(), end.copy()
    start[device, k - 1], end[device, k - 1] = begin, begin + length[device]
    return start, end


def account_uptime(wh: Warehouse) -> np.ndarray:
    """Return the share of its devices' days an account's devices were up (1.0 for accounts without devices)."""
    p = wh.device_profile
    life = np.maximum(p["last_day"] - p["first_day"] + 1, 1).astype(np.float64)
    valid = p["outage_start"] < NEVER
    down = np.where(valid, p["outage_end"] - p["outage_start"], 0).sum(axis=1)
    n = wh.rows["accounts"]
    up = np.bincount(p["account"], weights=life - down, minlength=n)
    total = np.bincount(p["account"], weights=life, minlength=n)
    return np.where(total > 0, up / np.maximum(total, 1), 1.0)


def calendar_weights(wh: Warehouse, strength: float = 1.0, weekdays: bool = True) -> tuple[int, np.ndarray]:
    """Return (first epoch day, weight of each day of the window): season x weekday x holidays (``weekdays``
    False: a flat week, the season and holidays only)."""
    cal = wh.cfg.calendar
    first = wh.history_start // DAY
    n = (wh.history_end - wh.history_start) // DAY
    week = wh.cfg.taps.weekday_weights if weekdays else (1.0,) * 7
    weights = day_weights(first, n, cal.month_weights, week, cal.holidays, strength)
    return first, weights


def calendar_position(cumulative: np.ndarray, origin: int, seconds: np.ndarray) -> np.ndarray:
    """Return the cumulative calendar weight at epoch ``seconds`` (linear inside a day, clamped to the window)."""
    days = np.asarray(seconds, dtype=np.float64) / DAY - origin
    return np.interp(days, np.arange(len(cumulative), dtype=np.float64), cumulative)


def calendar_seconds(cumulative: np.ndarray, origin: int, position: np.ndarray) -> np.ndarray:
    """Invert ``calendar_position``: epoch seconds where the cumulative calendar weight reaches ``position``."""
    day = np.clip(np.searchsorted(cumulative, position, side="right") - 1, 0, len(cumulative) - 2)
    width = np.maximum(cumulative[day + 1] - cumulative[day], 1e-300)
    frac = np.clip((position - cumulative[day]) / width, 0.0, 1.0)
    return ((origin + day + frac) * DAY).astype(np.int64)


@functools.cache
def _normal_quantiles() -> np.ndarray:
    """65,536 quantiles of the standard normal (float32, read-only): the same for every configuration, so
    computed once per process (65,536 calls of the standard library's inverse CDF)."""
    grid = (np.arange(65536) + 0.5) / 65536
    table = np.array([_NORMAL.inv_cdf(g) for g in grid.tolist()], dtype=np.float32)
    table.flags.writeable = False
    return table


def tap_lookup_tables(wh: Warehouse) -> dict[str, np.ndarray]:
    """Per-device positions along the cumulative calendar and 16-bit lookup tables for the tap sampler."""
    spec = wh.cfg.taps
    p = wh.device_profile
    origin, weights = calendar_weights(wh)
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    n_days = len(weights)

    def at(day: np.ndarray) -> np.ndarray:  # cumulative weight at the start of an epoch day
        return cumulative[np.clip(day - origin, 0, n_days)]

    first, last = p["first_day"], p["last_day"]
    lo = at(first)
    span = np.maximum(at(last + 1) - lo, 0.0)
    valid = p["outage_start"] < NEVER
    outage_at = np.where(valid, at(np.where(valid, p["outage_start"], first[:, None])), np.inf)
    outage_width = np.where(valid, at(np.where(valid, p["outage_end"], first[:, None])) - outage_at, 0.0)
    outage_width = np.where(valid, outage_width, 0.0)
    up = np.maximum(span - outage_width.sum(axis=1), 0.0)
    # inverse of the cumulative calendar: a bin of ``scale`` per 1/M of the total, then one step up when needed
    bins = 1 << int(min(24, max(16, np.ceil(np.log2(8 * cumulative[-1] / weights.min())))))
    edges = np.arange(bins) * (cumulative[-1] / bins)
    day_of_bin = (np.searchsorted(cumulative, edges, side="right") - 1).astype(np.int32)
    grid = (np.arange(65536) + 0.5) / 65536

    def lookup(w: np.ndarray) -> np.ndarray:  # 65,536 quantiles of the distribution -> category
        return np.searchsorted(np.cumsum(w) / np.sum(w), grid).astype(np.uint8)

    hours = np.asarray(spec.hour_weights, dtype=np.float64)
    cdf = np.concatenate([[0.0], np.cumsum(hours) / hours.sum()])
    time_of_day = np.interp(grid, cdf, np.arange(25) * HOUR)
    return {
        "lo": lo,
        "up": up,
        "outage_at_t": np.ascontiguousarray(outage_at.T),  # (outage slot, device)
        "outage_width_t": np.ascontiguousarray(outage_width.T),
        "outages_used": int(valid.any(axis=0).sum()),
        "cumulative": cumulative,
        "origin": np.int64(origin),
        "bin_scale": np.float64(bins / cumulative[-1]),
        "day_of_bin": day_of_bin,
        "tod_us": (time_of_day * 1_000_000).astype(np.int64),
        "normal": _normal_quantiles(),
        "product_lut": lookup(np.fromiter(spec.products.values(), dtype=np.float64)),
        "ml": np.array(list(spec.pour_ml.values()), dtype=np.float32),
        "serve": np.array([spec.serve_celsius[p] for p in spec.products], dtype=np.float32),
        "location": (p["location"] + 1).astype(np.int64),
        "account": (p["account"] + 1).astype(np.int64),
    }


# Rows per block of the tap sampler: its temporaries stay a few MB (reused from the heap) instead of hundreds
# of MB of fresh pages per chunk, which the kernel must fault in and zero (the bulk of the CPU of a fresh
# worker process, and the part that suffers most on a busy machine).
TAP_BLOCK = 1 << 20


def tap_events(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the pours: devices by volume x weighted up-days, the calendar, hour curve, product mix."""
    spec = wh.cfg.taps
    start, stop = wh.chunk_rows("tap_events", k)
    rng, n = wh.rng("tap_events", k), stop - start
    profile = wh.device_profile
    lut = wh.tap_tables
    weight = profile["volume"] * lut["up"]
    counts = rng.multinomial(n, weight / weight.sum())
    device = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    # two 64-bit draws per row, the first n then the next n: position along the device's up-days (32 bits),
    # product and time of day (16 each); then the two normal deviates of volume and temperature
    raw = rng.bit_generator.random_raw(n)
    raw2 = rng.bit_generator.random_raw(n)
    poured_us = np.empty(n, dtype=np.int64)
    product = np.empty(n, dtype=lut["product_lut"].dtype)
    volume = np.empty(n, dtype=np.float32)
    temperature = np.empty(n, dtype=np.float32)
    for b0 in range(0, n, TAP_BLOCK):
        b1 = min(b0 + TAP_BLOCK, n)
        _tap_block(lut, profile, device[b0:b1], raw[b0:b1], raw2[b0:b1], (b0, b1),
                   poured_us, product, volume, temperature)  # fmt: skip
    duration = (volume * np.float32(1000 / spec.flow_ml_per_s)).astype(np.int32)
    return pl.DataFrame(
        {
            "tap_event_id": np.arange(start + 1, stop + 1, dtype=np.int64),
            "device_id": device + 1,
            "location_id": np.repeat(lut["location"], counts),
            "account_id": np.repeat(lut["account"], counts),
            "poured_at": pl.Series(poured_us).cast(pl.Datetime("us")),
            "product_type": categorical(product, list(spec.products)),
            "volume_ml": volume,
            "temperature_c": temperature,
            "duration_ms": duration,
        }
    )


def _tap_block(
    lut: dict[str, np.ndarray],
    profile: dict[str, np.ndarray],
    device: np.ndarray,
    raw: np.ndarray,
    raw2: np.ndarray,
    rows: tuple[int, int],
    poured_us: np.ndarray,
    product: np.ndarray,
    volume: np.ndarray,
    temperature: np.ndarray,
) -> None:
    """Fill rows ``rows`` of the output arrays from the block's devices and random draws."""
    b0, b1 = rows
    m = b1 - b0
    position = (raw >> np.uint64(32)).astype(np.float64) * (1.0 / 4294967296.0)
    bits = raw.view(np.uint16).reshape(m, 4)
    x = lut["lo"][device] + position * lut["up"][device]
    for j in range(lut["outages_used"]):  # skip each outage the position has passed (outages in day order)
        x += lut["outage_width_t"][j][device] * (x >= lut["outage_at_t"][j][device])
    day = lut["day_of_bin"][np.minimum((x * lut["bin_scale"]).astype(np.int64), len(lut["day_of_bin"]) - 1)]
    cumulative = lut["cumulative"]
    while True:  # the bin's first day, or a later one when the position lies past that day's end
        later = x >= cumulative[day + 1]
        if not later.any():
            break
        day = day + later
    kind = lut["product_lut"][bits[:, 1]]
    product[b0:b1] = kind
    poured_us[b0:b1] = (lut["origin"] + day) * np.int64(DAY * 1_000_000) + lut["tod_us"][bits[:, 0]]
    z = lut["normal"][raw2.view(np.uint16).reshape(m, 4)[:, :2]]
    volume[b0:b1] = lut["ml"][kind] * (np.float32(1.0) + np.float32(0.06) * z[:, 0])
    temperature[b0:b1] = lut["serve"][kind] + profile["temp_offset"][device] + np.float32(0.4) * z[:, 1]


def day_states(wh: Warehouse, device: np.ndarray, day: np.ndarray) -> dict[str, np.ndarray]:
    """Return, for each (device, epoch day): down share of the day, degrading, repaired that day, days to failure."""
    p = wh.device_profile
    n = len(device)
    down = np.zeros(n)
    degrading = np.zeros(n, dtype=bool)
    repaired = np.zeros(n, dtype=bool)
    to_failure = np.full(n, 10_000, dtype=np.int64)
    for j in range(p["outage_start"].shape[1]):
        s, e = p["outage_start"][device, j], p["outage_end"][device, j]
        down[(day >= s) & (day < e)] = 1.0
        degrading |= (day >= s - p["degrade_days"][device, j]) & (day < s)
        repaired |= day == e
        ahead = s - day
        to_failure = np.where((ahead > 0) & (ahead < to_failure), ahead, to_failure)
    final = p["down_at_end"][device]
    seen_day = p["last_seen"][device] // DAY
    seen_share = (p["last_seen"][device] - seen_day * DAY) / DAY
    down = np.where(final & (day > seen_day), 1.0, down)
    down = np.where(final & (day == seen_day), 1.0 - seen_share, down)
    degrading |= final & (day >= seen_day - p["final_degrade_days"][device]) & (day < seen_day)
    ahead = seen_day - day
    to_failure = np.where(final & (ahead > 0) & (ahead < to_failure), ahead, to_failure)
    return {
        "down": down,
        "degrading": degrading & (down == 0),
        "repaired": repaired,
        "to_failure": to_failure,
    }


def device_health(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the daily health rows over each device's last days: the same outages as the taps."""
    spec = wh.cfg.taps
    start, stop = wh.chunk_rows("device_health", k)
    rng, n = wh.rng("device_health", k), stop - start
    profile = wh.device_profile
    rows = np.arange(start, stop)
    device, offset = rows // spec.health_days, rows % spec.health_days
    day = profile["active_end"][device] // DAY - spec.health_days + offset
    state = day_states(wh, device, day)
    # drop-outs of a few minutes on ordinary days, of up to ~2 hours a day while a device degrades
    blips = np.where(rng.random(n) < 0.15, rng.random(n) * 0.004, 0.0)
    lost = np.where(state["degrading"], 0.01 + 0.07 * rng.random(n), blips)
    uptime = np.clip(1.0 - np.maximum(state["down"], lost), 0.0, 1.0)
    # ramps up over the last days before a failure
    closeness = np.clip(1.0 - state["to_failure"] / 12.0, 0.0, 1.0)
    error_rate = np.where(state["degrading"], 1.5 + 6.0 * closeness, 0.2) * (1.0 - state["down"])
    errors = rng.poisson(error_rate).astype(np.int32)
    warm = np.where(state["degrading"], 0.8 + 2.5 * closeness, 0.0).astype(np.float32)
    base = np.float32(spec.serve_celsius.get("draft_beer", 3.0))
    temperature = base + profile["temp_offset"][device] + warm
    temperature = temperature + np.float32(0.2) * rng.standard_normal(n, dtype=np.float32)
    reported = state["down"] < 1.0  # a device down all day reports no temperature
    return pl.DataFrame(
        {
            "health_id": rows + 1,
            "device_id": device + 1,
            "recorded_at": ts(day * DAY + 6 * HOUR),
            "uptime_pct": np.round(uptime * 100, 2),
            "error_count": errors,
            "avg_temperature_c": pl.Series(temperature).set(pl.Series(~reported), None),
            "needs_maintenance": state["degrading"] | (state["down"] > 0) | (errors > 5),
            "maintenance_performed": state["repaired"],
        }
    )
