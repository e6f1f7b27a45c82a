"""App usage: users' log-in sessions, the pages they view and the features they use inside them.

The three tables share their sessions: chunk ``k`` of page views and of feature usage falls inside
chunk ``k`` of the user sessions, so each chunk is built from the same session arrays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.warehouse.generators import health
from simulation_assets.core.warehouse.generators.app import TIER_ORDER
from simulation_assets.core.warehouse.sampling import (
    DAY,
    HOUR,
    choice,
    cumulative_shares,
    labels,
    local_index,
    to_seconds,
    ts,
)

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse

ERROR_CODES = ["timeout", "validation_error", "sync_failed"]
ERROR_CODE_SHARES = [0.5, 0.3, 0.2]


def user_weights(wh: Warehouse) -> dict[str, np.ndarray]:
    """Return each user's share of the sessions (role weight x active days), life span and account."""
    table = wh.whole("users")
    account = table["account_id"].to_numpy() - 1
    _, acc_end = wh.account_span
    created = to_seconds(table["created_at"])
    end = acc_end[account]
    role_weight = table["role"].replace_strict(wh.cfg.users.login_weight, return_dtype=pl.Float64).to_numpy()
    # sessions per day follow the account's monthly health: exp(engagement_sensitivity x health)
    monthly = np.exp(wh.cfg.health.engagement_sensitivity * wh.account_health.astype(np.float64))
    engaged_days = (monthly[account] * health.exposure(wh, created, end)).sum(axis=1) / DAY
    weight = role_weight * engaged_days
    return {
        "p": weight / weight.sum(),
        "created": created,
        "end": end,
        "account": account,
        "cdf": health.month_cdf(wh, monthly),
    }


def session_arrays(wh: Warehouse, k: int) -> dict[str, np.ndarray]:
    """Return the arrays of user-session chunk ``k``: id, user, account, start, duration, device."""
    start, stop = wh.chunk_rows("user_sessions", k)
    rng, n = wh.rng("user_sessions", k), stop - start
    weights = wh.user_weights
    counts = rng.multinomial(n, weights["p"])
    user, _ = local_index(counts)
    low, high = weights["created"][user], weights["end"][user]
    # the day follows the account's health month by month, the hour the activity curve
    when = health.weighted_times(wh, weights["cdf"], weights["account"][user], low, high, rng.random(n))
    day = np.clip(when // DAY, low // DAY + 1, high // DAY - 1)
    hour_cdf = cumulative_shares(wh.cfg.activity.hour_weights)
    hour = np.searchsorted(hour_cdf, rng.random(n, dtype=np.float32), side="right").clip(0, 23)
    started = day * DAY + hour * HOUR + rng.integers(0, HOUR, n)
    minutes = np.exp(rng.normal(np.log(wh.cfg.activity.median_session_minutes), 0.8, n))
    duration = np.maximum((minutes * 60).astype(np.int64), 30)
    return {"id": np.arange(start + 1, stop + 1), "user": user, "account": weights["account"][user],
            "started": started, "duration": duration, "device": choice(rng, n, wh.cfg.activity.device_types)}  # fmt: skip


def user_sessions(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the log-in sessions (admins and managers log in more than staff)."""
    session = wh.sessions(k)
    return pl.DataFrame(
        {
            "session_id": session["id"],
            "user_id": session["user"] + 1,
            "account_id": session["account"] + 1,
            "started_at": ts(session["started"]),
            "ended_at": ts(session["started"] + session["duration"]),
            "duration_seconds": session["duration"].astype(np.int32),
            "device_type": labels(session["device"], wh.cfg.activity.device_types),
        }
    )


def page_views(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the page views: at least one per session, more in longer sessions, in order."""
    session = wh.sessions(k)
    start, stop = wh.chunk_rows("page_views", k)
    rng, n = wh.rng("page_views", k), stop - start
    n_sessions = len(session["id"])
    if n < n_sessions:
        raise ValueError("page_views needs at least one row per user session")
    duration = session["duration"].astype(np.float64)
    counts = 1 + rng.multinomial(n - n_sessions, duration / duration.sum())
    parent, position = local_index(counts)
    views_in_session = counts[parent]
    slot = session["duration"][parent] / views_in_session
    viewed = session["started"][parent] + ((position + rng.random(n)) * slot).astype(np.int64)
    pages = wh.cfg.activity.pages
    return pl.DataFrame(
        {
            "page_view_id": np.arange(start + 1, stop + 1),
            "session_id": session["id"][parent],
            "user_id": session["user"][parent] + 1,
            "page_path": labels(choice(rng, n, pages), pages),
            "viewed_at": ts(viewed),
            "time_on_page_seconds": np.maximum(slot * (0.5 + rng.random(n)), 1).astype(np.int32),
            "is_exit": position == views_in_session - 1,
        }
    )


def feature_usage(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the feature events inside sessions, each account using only its tier's features."""
    activity = wh.cfg.activity
    session = wh.sessions(k)
    start, stop = wh.chunk_rows("feature_usage", k)
    rng, n = wh.rng("feature_usage", k), stop - start
    duration = session["duration"].astype(np.float64)
    counts = rng.multinomial(n, duration / duration.sum())
    parent, _ = local_index(counts)
    tier = wh.tier_codes[session["account"][parent]]
    names = list(activity.features)
    feature = np.zeros(n, dtype=np.int16)
    u = rng.random(n)
    for t in range(len(TIER_ORDER)):
        allowed = np.array([TIER_ORDER.index(activity.feature_min_tier.get(f, "Basic")) <= t for f in names])
        weights = np.fromiter(activity.features.values(), dtype=np.float64) * allowed
        cdf = np.cumsum(weights / weights.sum())
        rows = tier == t
        feature[rows] = np.searchsorted(cdf, u[rows], side="right").clip(0, len(names) - 1)
    used = session["started"][parent] + (rng.random(n) * session["duration"][parent]).astype(np.int64)
    success = rng.random(n) >= activity.error_rate
    errors = labels(choice(rng, n, ERROR_CODE_SHARES), ERROR_CODES)
    return pl.DataFrame(
        {
            "feature_event_id": np.arange(start + 1, stop + 1),
            "session_id": session["id"][parent],
            "user_id": session["user"][parent] + 1,
            "account_id": session["account"][parent] + 1,
            "feature_name": labels(feature, names),
            "used_at": ts(used),
            "success": success,
            "error_code": errors.set(pl.Series(success), None),
        }
    )
