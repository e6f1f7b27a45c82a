"""Account health: one hidden score per account and calendar month that the other sources follow.

``health = tier effect + site effect x site quality + lasting trait + monthly AR(1) part`` (see
``config.Health``). It is drawn before the accounts table, from its own streams, so the accounts'
churn can depend on it: the churn hazard of a month is ``base x exp(-churn_sensitivity x health)``,
with the base calibrated so that churns per account-year at risk stay at the configured rate. The
same matrix then weighs each account's app sessions over its months, its support tickets, which of
its invoices go unpaid and how much its devices pour, so churned accounts are visibly less engaged
and more troubled in the months before they leave.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulation_assets.core.warehouse.sampling import DAY, MONTH

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse

YEAR = 365.25 * DAY


def month_edges(wh: Warehouse) -> np.ndarray:
    """Return the epoch-second edges of the health months (fixed-length months from the window's start)."""
    months = -(-(wh.history_end - wh.history_start) // MONTH)
    return wh.history_start + np.arange(months + 1, dtype=np.int64) * MONTH


def month_of(wh: Warehouse, seconds: np.ndarray) -> np.ndarray:
    """Return the health month index of epoch seconds (clipped to the window)."""
    months = len(month_edges(wh)) - 1
    return np.clip((np.asarray(seconds) - wh.history_start) // MONTH, 0, months - 1)


def base_health(wh: Warehouse) -> np.ndarray:
    """Return the tier-free part of every account's monthly health (site, lasting trait, AR(1)), float32."""
    spec = wh.cfg.health
    n, months = wh.rows["accounts"], len(month_edges(wh)) - 1
    rng = wh.rng("accounts", 0, "health")
    lasting = rng.standard_normal(n)
    shocks = rng.standard_normal((months, n))
    rho = spec.persistence
    ar = np.empty((months, n))
    ar[0] = shocks[0]
    for m in range(1, months):
        ar[m] = rho * ar[m - 1] + np.sqrt(1 - rho * rho) * shocks[m]
    varying = np.sqrt(spec.lasting_share) * lasting[:, None] + np.sqrt(1 - spec.lasting_share) * ar.T
    return (spec.site_effect * wh.site_quality[:, None] + varying).astype(np.float32)


def with_tiers(wh: Warehouse, base: np.ndarray, tier_names: list[str], tier: np.ndarray) -> np.ndarray:
    """Return ``base`` plus each account's tier effect (``tier`` indexes ``tier_names``)."""
    effect = np.array([wh.cfg.health.tier_effect.get(t, 0.0) for t in tier_names], dtype=np.float32)
    return base + effect[tier][:, None]


def exposure(wh: Warehouse, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Return the seconds of each health month inside [low, high) for every row, shape (rows, months)."""
    edges = month_edges(wh)
    return np.clip(
        np.minimum(edges[None, 1:], high[:, None]) - np.maximum(edges[None, :-1], low[:, None]), 0, None
    ).astype(np.float64)


def churn_times(
    wh: Warehouse, health: np.ndarray, created: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Return every account's churn time (epoch seconds; at or after the window's end means it stayed).

    Accounts are at risk from ``min_tenure_days`` after creation. The hazard of month m is
    ``rate x scale x exp(-churn_sensitivity x health[m])``; ``scale`` is refined three times so that churns
    per account-year at risk match ``annual_churn`` despite the healthiest accounts surviving longest.
    """
    spec, window = wh.cfg, wh.cfg.window
    rate = -np.log1p(-spec.subscriptions.annual_churn) / YEAR  # per second
    at_risk = created + window.min_tenure_days * DAY
    exposed = exposure(wh, at_risk, np.full(len(created), wh.history_end))
    relative = np.exp(-spec.health.churn_sensitivity * health.astype(np.float64))
    budget = rng.exponential(1.0, len(created))
    edges = month_edges(wh)
    scale = float(exposed.sum() / max((relative * exposed).sum(), 1e-300))
    churn_at = np.full(len(created), wh.history_end, dtype=np.int64)
    for _ in range(4):
        hazard = rate * scale * relative * exposed
        cumulative = np.cumsum(hazard, axis=1)
        hit = cumulative >= budget[:, None]
        churned = hit.any(axis=1)
        month = np.argmax(hit, axis=1)
        rows = np.arange(len(created))
        step = hazard[rows, month]
        within = (budget - (cumulative[rows, month] - step)) / np.maximum(step, 1e-300)
        begin = np.maximum(edges[month], at_risk)
        churn_at = np.where(churned, begin + (within * exposed[rows, month]).astype(np.int64), wh.history_end)
        years = np.maximum(np.minimum(churn_at, wh.history_end) - at_risk, 0).sum() / YEAR
        realized = churned.sum() / max(years, 1e-9)
        if realized <= 0:
            break
        scale *= rate * YEAR / realized
    return churn_at


def life_mean(wh: Warehouse, values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Return the exposure-weighted mean of ``values`` (rows x months) over each row's [low, high)."""
    exposed = exposure(wh, low, high)
    total = exposed.sum(axis=1)
    return np.where(total > 0, (values * exposed).sum(axis=1) / np.maximum(total, 1), values.mean(axis=1))


def month_cdf(wh: Warehouse, weights: np.ndarray) -> np.ndarray:
    """Return each row's cumulative weight at the month edges, scaled to [0, 1] and offset by the row index,
    flattened: the table ``weighted_times`` inverts with one ``searchsorted`` for all rows at once."""
    n, months = weights.shape
    cumulative = np.concatenate([np.zeros((n, 1)), np.cumsum(weights, axis=1, dtype=np.float64)], axis=1)
    return (np.arange(n)[:, None] + cumulative / cumulative[:, -1:]).ravel()


def weighted_times(
    wh: Warehouse, cdf: np.ndarray, row: np.ndarray, low: np.ndarray, high: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Return epoch seconds in [low, high) whose density follows row ``row`` of the monthly weights behind
    ``cdf`` (``month_cdf``), uniform inside a month; ``u`` are uniforms in [0, 1)."""
    edges = month_edges(wh)
    months = len(edges) - 1
    width = months + 1

    def position(t: np.ndarray) -> np.ndarray:  # row + scaled cumulative weight at time t
        m = month_of(wh, t)
        at = row * width + m
        frac = np.clip((t - edges[m]) / MONTH, 0.0, 1.0)
        return cdf[at] + frac * (cdf[at + 1] - cdf[at])

    lo, hi = position(low), position(high)
    x = lo + u * (hi - lo)
    j = np.searchsorted(cdf, x, side="right") - 1
    m = np.clip(j - row * width, 0, months - 1)
    at = row * width + m
    frac = (x - cdf[at]) / np.maximum(cdf[at + 1] - cdf[at], 1e-300)
    t = edges[m] + (np.clip(frac, 0.0, 1.0) * MONTH).astype(np.int64)
    return np.clip(t, low, high - 1)
