"""What an active persona does on the day it visits: videos, completion, ratings, watchlist, FlixBuddy.

The numbers come from the specification's session-depth table (by state, with
BINGE mode on top) and its interaction probabilities; the traffic tier turns
them into pages and events without changing them.
"""

from __future__ import annotations

import numpy as np

from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.draws import smallest
from simulation_assets.core.hogflix.persona_state import BINGE, CASUAL, NEW, PersonaState


def flixbuddy_count(cfg: LifecycleConfig, active: int) -> int:
    """Return how many of ``active`` visitors talk to FlixBuddy today.

    10 % of them, kept within 8-12 a day at a pool of 400 (scaled with the pool)
    and never more than the per-day cap of 50 or the number of visitors.
    """
    low, high = cfg.flixbuddy_per_day_range
    wanted = int(np.clip(round(cfg.flixbuddy_share * active), low, high))
    return min(wanted, cfg.flixbuddy_max_per_day, active)


def viewing(state: PersonaState, cfg: LifecycleConfig, g: np.random.Generator, signup: bool = False) -> None:
    """Draw today's viewing for active personas (or every new signup) and add it to the totals, in place."""
    c = state.cols
    n = len(c["state"])
    if signup:
        c["active_today"][:] = True
        c["session_start_ms"] = c["created_ms"] + (g.random(n) * 30 * 60_000).astype(np.int64)
        c["last_active_ms"] = c["session_start_ms"].copy()
        c["total_sessions"] += 1
        c["consecutive_active_days"][:] = 1
        c["history"][:] = 1
    idx = np.flatnonzero(c["active_today"])
    if idx.size == 0:
        return
    m = idx.size
    u = g.random((5, m), dtype=np.float32)
    st = c["state"][idx]
    binge_mode = (c["pattern"][idx] == BINGE) & c["binge_is_binging"][idx] & (st != NEW)
    depth_key = np.full(m, 1, np.int8)  # ACTIVE
    depth_key[st == NEW] = 0
    depth_key[st == CASUAL] = 2
    depth_key[binge_mode] = 3
    depth = [cfg.session_depth[k] for k in ("NEW", "ACTIVE", "CASUAL", "BINGE")]
    lows = np.array([d.videos.low for d in depth], np.int32)[depth_key]
    highs = np.array([d.videos.high for d in depth], np.int32)[depth_key]
    videos = (lows + np.floor(u[0] * (highs - lows + 1))).astype(np.int32)
    # Completion (percent): the table's mean plus a symmetric triangular spread that keeps it in 0-100.
    mean = np.array([d.avg_completion for d in depth], np.float32)[depth_key]
    spread = np.minimum(mean, 1.0 - mean)
    completion = np.round((mean + (u[1] + u[2] - 1.0) * spread).astype(np.float64) * 100.0, 2)
    # Ratings: each watched video is rated with the configured probability.
    rated = g.random(int(videos.sum()), dtype=np.float32) < cfg.rate_probability
    ratings = np.add.reduceat(rated, np.cumsum(videos) - videos, dtype=np.int32) if rated.size else videos * 0
    watchlist = (u[3] < cfg.watchlist_probability).astype(np.int32)
    flix = np.zeros(m, np.bool_)
    if not signup:  # a signup's first visit is for exploring; FlixBuddy comes later
        chats = flixbuddy_count(cfg, m)
        if chats:  # the visitors with the smallest draws: a uniform random subset, in linear time
            flix[smallest(u[4], chats)] = True
    watched = c["videos_watched"][idx]
    total = watched + videos
    # Stored rounded to 0.01 % so the persisted table and the in-memory state are the same numbers.
    c["avg_watch_completion"][idx] = np.round(
        (c["avg_watch_completion"][idx] * watched + completion * videos) / np.maximum(total, 1), 2
    )
    c["videos_watched"][idx] = total
    c["videos_today"][idx] = videos
    c["completion_today"][idx] = completion
    c["ratings_today"][idx] = ratings
    c["ratings_given"][idx] += ratings
    c["watchlist_adds_today"][idx] = watchlist
    c["watchlist_size"][idx] += watchlist
    c["flixbuddy_today"][idx] = flix
    c["flixbuddy_conversations"][idx] += flix
    c["binge_mode_today"][idx] = binge_mode
