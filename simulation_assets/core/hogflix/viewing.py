"""What an active persona does on the day it visits: videos, completion, ratings, watchlist, FlixBuddy.

How much a visitor watches follows one rule (``depth_rows``) over the
specification's session-depth table (by state) and its pattern behaviours;
ratings, watchlist additions and FlixBuddy follow its interaction
probabilities. The traffic tier turns these numbers into pages and events
without changing them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulation_assets.core.hogflix.config import (
    LIFE_EVENTS,
    PATTERNS,
    PLANS,
    STATES,
    LifecycleConfig,
    SessionDepth,
)
from simulation_assets.core.hogflix.draws import smallest
from simulation_assets.core.hogflix.persona_state import BINGE, CASUAL, NEW, WEEKEND, PersonaState, day_date

SICK = LIFE_EVENTS.index("SICK")


def flixbuddy_count(cfg: LifecycleConfig, active: int) -> int:
    """Return how many of ``active`` visitors talk to FlixBuddy today.

    10 % of them, kept within 8-12 a day at a pool of 400 (scaled with the pool)
    and never more than the per-day cap of 50 or the number of visitors.
    """
    low, high = cfg.flixbuddy_per_day_range
    wanted = int(np.clip(round(cfg.flixbuddy_share * active), low, high))
    return min(wanted, cfg.flixbuddy_max_per_day, active)


# Rows of the depth table, in the order of ``depth_table``.
(DEPTH_SICK, DEPTH_NEW, DEPTH_BINGE, DEPTH_CASUAL, DEPTH_ACTIVE, DEPTH_DAILY, DEPTH_REGULAR, DEPTH_WEEKEND,
 DEPTH_WEEKEND_PEAK, DEPTH_BINGE_COOLDOWN, DEPTH_MONTHLY) = range(11)  # fmt: skip
_BY_PATTERN = np.array(
    [DEPTH_DAILY, DEPTH_REGULAR, DEPTH_WEEKEND, DEPTH_BINGE_COOLDOWN, DEPTH_MONTHLY], np.int8
)


def depth_table(cfg: LifecycleConfig) -> list[SessionDepth]:
    """Return the depth rows (videos, mean completion) in ``schema.DEPTH_ROWS`` order."""
    s, p = cfg.session_depth, cfg.pattern_depth
    return [cfg.sick_depth, s["NEW"], s["BINGE"], s["CASUAL"], s["ACTIVE"], p["DAILY"], p["REGULAR"],
            p["WEEKEND"], p["WEEKEND_PEAK"], p["BINGE"], p["MONTHLY"]]  # fmt: skip


def depth_rows(state: PersonaState, cfg: LifecycleConfig, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return, for the visitors at ``idx``, the depth row that applies and whether they are in binge mode.

    The one rule, first match wins: a SICK persona watches little whatever else holds; a NEW persona
    explores (the state table's NEW row); a BINGE persona in a binge period binges; a CASUAL persona
    watches lightly; a persona whose permanent pattern is drawn watches by its pattern (WEEKEND deep
    on Saturday and Sunday, light on weekdays; BINGE minimal in cooldown); an established persona
    without a pattern yet (days 7-13) takes the state table's ACTIVE row.

    Apart from SICK (a few visitors, set after), the rule is a function of (state, pattern, binging,
    pattern drawn): it is written out once into a table of every combination, and each visitor looks
    its row up with one gather.
    """
    c = state.cols
    weekend = day_date(state.day).weekday() >= 5
    by_pattern = _BY_PATTERN.copy()
    if weekend:
        by_pattern[WEEKEND] = DEPTH_WEEKEND_PEAK
    # [state, pattern, binging, pattern drawn], filled in rising priority (the later assignment wins)
    shape = (len(STATES), len(PATTERNS), 2, 2)
    table = np.full(shape, DEPTH_ACTIVE, np.int8)
    table[..., 1] = by_pattern[None, :, None]
    table[CASUAL] = DEPTH_CASUAL
    table[:, BINGE, 1] = DEPTH_BINGE
    table[NEW] = DEPTH_NEW
    binge = np.zeros(shape, np.bool_)
    binge[:, BINGE, 1] = True
    binge[NEW] = False
    code = c["state"][idx] * np.int8(4 * len(PATTERNS))
    code += c["pattern"][idx] * np.int8(4)
    code += c["binge_is_binging"][idx].view(np.int8) * np.int8(2)
    code += (c["days_since_signup"][idx] >= cfg.pattern_assignment_day).view(np.int8)
    key = np.take(table.ravel(), code)
    key[c["event"][idx] == SICK] = DEPTH_SICK
    return key, np.take(binge.ravel(), code)


def day_ratings(
    cfg: LifecycleConfig,
    c: dict[str, np.ndarray],
    idx: np.ndarray,
    ratings: np.ndarray,
    g: np.random.Generator,
    satisfaction: np.ndarray | None = None,
) -> np.ndarray:
    """Return the mean stars (1-5, 0.1 steps, float32) the visitors at ``idx`` give today, 0 when none
    (``satisfaction``: the visitors' own, when the caller has it at hand).

    The day's ``ratings`` stars are drawn from the plan's distribution ("Rating Distributions"),
    shifted by satisfaction; their mean is kept here, and the traffic tier spreads it over the day's
    rated videos (higher in the persona's favourite genres).
    """
    out = np.zeros(idx.size, np.float32)
    rated = np.flatnonzero(ratings > 0)
    if rated.size == 0:
        return out
    who = idx[rated]
    plan = c["plan"][who]
    mean = np.take(np.array([cfg.ratings[p].mean for p in PLANS], np.float32), plan)
    std = np.take(np.array([cfg.ratings[p].std for p in PLANS], np.float32), plan)
    if cfg.traits.enabled:
        own = c["satisfaction"][who] if satisfaction is None else satisfaction[rated]
        mean = mean + cfg.traits.rating_shift * (own - cfg.traits.pivot)
    k = ratings[rated].astype(np.float32)
    # The mean of k rounded, clipped stars: the mean of k normal draws, then the same rounding and clip.
    draw = mean + std / np.sqrt(k) * g.standard_normal(rated.size).astype(np.float32)
    np.clip(draw, 1.0, 5.0, out=draw)
    draw *= 10.0  # rounded to 0.1 as np.round(draw, 1) does it
    np.rint(draw, out=draw)
    draw /= 10.0
    out[rated] = draw
    return out


class Visits(NamedTuple):
    """Today's visitors (positions, ascending) and what they watched: completion (percent), ratings
    given and their mean stars (0 when none); their satisfaction as the day began (None when traits
    are off)."""

    idx: np.ndarray
    completion: np.ndarray
    ratings: np.ndarray
    avg_rating: np.ndarray
    satisfaction: np.ndarray | None = None


def viewing(
    state: PersonaState,
    cfg: LifecycleConfig,
    g: np.random.Generator,
    signup: bool = False,
    visitors: np.ndarray | None = None,
) -> Visits:
    """Draw today's viewing for active personas (or every new signup) and add it to the totals, in place;
    return the visitors and their day's figures (the satisfaction rule reads them). ``visitors``: the
    positions where ``active_today`` is true, when the caller has them (ascending)."""
    c = state.cols
    n = len(c["state"])
    if signup:
        c["active_today"][:] = True
        c["session_start_ms"] = c["created_ms"] + (g.random(n) * 30 * 60_000).astype(np.int64)
        c["last_active_ms"] = c["session_start_ms"].copy()
        c["total_sessions"] += 1
        c["consecutive_active_days"][:] = 1
        c["history"][:] = 1
    idx = np.flatnonzero(c["active_today"]) if visitors is None or signup else visitors
    if idx.size == 0:
        return Visits(idx, np.zeros(0), np.zeros(0, np.int32), np.zeros(0, np.float32))
    m = idx.size
    u = g.random((5, m), dtype=np.float32)
    key, binge_mode = depth_rows(state, cfg, idx)
    rows = depth_table(cfg)
    lows = np.array([d.videos.low for d in rows], np.int32)
    span = np.array([d.videos.high for d in rows], np.int32) - lows + 1
    # (Written with in-place operations: the same arithmetic, in the same order and types, with fewer
    # temporaries.)
    videos = np.multiply(u[0], np.take(span, key), dtype=np.float64)
    np.floor(videos, out=videos)
    videos += np.take(lows, key)
    videos = videos.astype(np.int32)
    # Completion (percent): the table's mean plus a symmetric triangular spread that keeps it in 0-100.
    mean = np.take(np.array([d.avg_completion for d in rows], np.float32), key)
    t = cfg.traits
    sat = c["satisfaction"][idx] if t.enabled else None
    if sat is not None:  # the satisfied watch further
        shifted = sat - t.pivot
        shifted *= t.completion_shift
        shifted += mean
        mean = np.clip(shifted, 0.05, 0.95, out=shifted)
    spread = np.minimum(mean, 1.0 - mean)
    draw = u[1] + u[2]
    draw -= 1.0
    draw *= spread
    draw += mean
    completion = draw.astype(np.float64)
    completion *= 100.0
    # rounded to 0.01 as np.round(completion, 2) does it: x 100, to the nearest whole, / 100
    completion *= 100.0
    np.rint(completion, out=completion)
    completion /= 100.0
    # Ratings: each watched video is rated with the configured probability.
    rated = g.random(int(videos.sum()), dtype=np.float32) < cfg.rate_probability
    if rated.size == 0:
        ratings = videos * 0
    elif span.max() + lows.max() <= 256:  # a visitor's ratings fit a byte: summed as bytes, no widening
        ratings = np.add.reduceat(rated.view(np.uint8), np.cumsum(videos) - videos, dtype=np.uint8)
        ratings = ratings.astype(np.int32)
    else:
        ratings = np.add.reduceat(rated, np.cumsum(videos) - videos, dtype=np.int32)
    avg_rating = day_ratings(cfg, c, idx, ratings, g, sat)
    listed = idx[u[3] < cfg.watchlist_probability]
    chatting = idx[:0]
    if not signup:  # a signup's first visit is for exploring; FlixBuddy comes later
        chats = flixbuddy_count(cfg, m)
        if chats:  # the visitors with the smallest draws: a uniform random subset, in linear time
            chatting = np.sort(idx[smallest(u[4], chats)])
    watched = c["videos_watched"][idx]
    total = watched + videos
    # Rounded to 0.01 % so the persisted table and the in-memory state are the same numbers, and kept as
    # hundredths of a percent: the same operations as ``np.round(average, 2)`` without its last division.
    average = c["avg_watch_completion_bp"][idx] / 100.0
    average *= watched
    average += completion * videos
    average /= np.maximum(total, 1)
    average *= 100.0
    c["avg_watch_completion_bp"][idx] = np.rint(average, out=average)
    c["videos_watched"][idx] = total
    c["videos_today"][idx] = videos
    c["completion_today"][idx] = completion
    c["ratings_today"][idx] = ratings
    c["ratings_given"][idx] += ratings
    c["avg_rating_today"][idx] = avg_rating
    # The per-day columns start from zero (``PER_DAY_COLUMNS``): only the rarer outcomes are written.
    c["watchlist_adds_today"][listed] = 1
    c["watchlist_size"][listed] += 1
    c["flixbuddy_today"][chatting] = True
    c["flixbuddy_conversations"][chatting] += 1
    c["binge_mode_today"][idx[binge_mode]] = True
    return Visits(idx, completion, ratings, avg_rating, sat)
