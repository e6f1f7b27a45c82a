"""Product events of HogFlix sessions, shaped like posthog-js sends them, fully vectorized.

A session is a run of listing pages (the entry page, then the entry's
continuation page). Each listing page either ends without a click (25 %), or
opens a title (75 %); an opened title is either played (60 %) or left. A played
title has a watch page with ``video_started``, ``video_progress`` heartbeats at
the milestones it passes, ``video_completed``, maybe ``video_rated``. How many
titles are played, rated and added to the watchlist is the persona table's
count for the day; only the pages around them are drawn here. A signup session
starts anonymous and ends the signup flow with ``$identify``; a FlixBuddy
session opens on the chat page with ``flixbuddy_interaction``; a support
session ends on the help page with ``support_ticket_created``.

Every event family is built as arrays (one row per event) and the families
are concatenated and ordered once; there is no loop over sessions or events.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.hogflix.catalog import GENRES, catalog, pick_videos
from simulation_assets.core.hogflix.config import TraitsConfig
from simulation_assets.core.hogflix.event_frame import EVENT_SCHEMA, event_frame
from simulation_assets.core.hogflix.event_pages import (
    ACCOUNT,
    CATEGORY,
    COMPLETED,
    ENTRY_PAGE,
    FLIXBUDDY,
    FLIXBUDDY_PAGE,
    HELP,
    HOME,
    IDENTIFY,
    NEXT_PAGE,
    OPENED,
    PAGELEAVE,
    PAGEVIEW,
    PLAN_CHANGED,
    PROGRESS,
    RATED,
    SIGNED_UP,
    SIGNUP,
    STARTED,
    TICKET,
    TITLE,
    WATCH,
    WATCHLIST,
)
from simulation_assets.core.hogflix.flixbuddy import RESPONSE_DELAY_MS, TURN_GAP_MS, turn_counts
from simulation_assets.core.hogflix.traffic_config import TrafficConfig
from simulation_assets.core.hogflix.traits import genre_affinity


def _lognormal(g: np.random.Generator, spec: tuple[float, float], n: int) -> np.ndarray:
    median, sigma = spec
    return median * np.exp(sigma * g.standard_normal(n))


def _rank_within(group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Return each row's 0-based rank by ``u`` (values in [0, 2]) among the rows of its ``group``.

    Groups are contiguous. The sort key packs the group and ``u`` (40 bits) into one int64, whose
    stable argsort is several times faster than a two-key ``lexsort``.
    """
    n = len(group)
    if n and int(group.max()) < (1 << 21):
        key = (group.astype(np.int64) << np.int64(42)) | (u * float(1 << 40)).astype(np.int64)
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((u, group))
    starts = np.r_[0, np.flatnonzero(np.diff(group[order])) + 1]
    first = np.zeros(n, np.int64)
    first[starts] = starts
    first = np.maximum.accumulate(first)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - first
    return rank


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (owner index, position within owner) for ``counts[i]`` rows per owner i."""
    owner = np.repeat(np.arange(len(counts)), counts)
    offsets = np.cumsum(counts) - counts
    return owner, np.arange(owner.size) - offsets[owner]


class _Families:
    """Accumulates event rows: session index, time offset (s), event code, page, slot, value."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, sess, t, event, page, slot=None, value=None, order=0) -> None:  # noqa: ANN001
        n = len(sess)
        self.parts.append(
            (
                np.asarray(sess, np.int64),
                np.asarray(t, np.float64),
                np.full(n, event, np.int8),
                np.broadcast_to(np.asarray(page, np.int8), (n,)),
                np.full(n, -1, np.int64) if slot is None else np.asarray(slot, np.int64),
                np.full(n, np.nan) if value is None else np.asarray(value, np.float64),
                np.full(n, order, np.int8),
            )
        )

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate(col) for col in zip(*self.parts))


def _session_mean(sess: np.ndarray, values: np.ndarray, mask: np.ndarray, n_sess: int) -> np.ndarray:
    """Return, per session, the mean of ``values`` over its slots where ``mask`` (1 where none)."""
    total = np.bincount(sess[mask], weights=values[mask], minlength=n_sess)
    count = np.bincount(sess[mask], minlength=n_sess)
    return np.where(count > 0, total / np.maximum(count, 1), 1.0)


def video_completion(g: np.random.Generator, cfg: TrafficConfig, day_mean: np.ndarray) -> np.ndarray:
    """Return how far (0-1) each started video is watched, around the persona's completion of the day.

    Viewers either give up in the first half or keep watching, mostly to the end: a video passes
    the halfway mark with the chance that keeps the mean at ``day_mean``, given the mean completion
    of abandoned (``abandoned_mean``) and of kept videos (``kept_mean``). Within each branch the
    completion is Beta-spread (``completion_concentration``) over its half of the range.
    """
    m = np.clip(day_mean, 0.0, 1.0)
    lo = np.minimum(cfg.abandoned_mean, m)
    hi = np.maximum(cfg.kept_mean, m)
    keep = g.random(m.size) < np.clip((m - lo) / np.maximum(hi - lo, 1e-9), 0.0, 1.0)
    k = cfg.completion_concentration
    within = np.clip(np.where(keep, (hi - 0.5) / 0.5, lo / 0.5), 0.02, 0.98)
    spread = g.beta(within * k, (1.0 - within) * k)
    return np.where(keep, 0.5 + 0.5 * spread, 0.5 * spread * (1.0 - 1e-9))


def _chat_turns_s(sessions: pl.DataFrame, cfg: TrafficConfig) -> np.ndarray:
    """Return, per session, the seconds its FlixBuddy follow-ups keep it on the chat page: the turns
    after the first (``conversation_turns``, ``TURN_GAP_MS`` apart) and the last answer's delay."""
    extra = np.zeros(sessions.height)
    conv = sessions["conversation_id"]
    has = conv.is_not_null().to_numpy()
    if cfg.flixbuddy_multi_turn and has.any():
        turns = turn_counts(conv.drop_nulls().to_list(), cfg.flixbuddy_turn_weights).astype(np.float64)
        extra[has] = ((turns - 1) * TURN_GAP_MS + RESPONSE_DELAY_MS) / 1000.0
    return extra


def session_events(
    sessions: pl.DataFrame, seed: int, cfg: TrafficConfig, stream_key: str, traits: TraitsConfig | None = None
) -> pl.DataFrame:
    """Return the events of ``sessions`` (``SESSION_SCHEMA`` rows), ordered by session then time.

    ``stream_key`` names the random stream (the partition key), so the same
    sessions and key always give the same events, uuids included.
    """
    traits = traits or TraitsConfig()
    if sessions.is_empty():
        return empty_events(cfg)
    g = rng_mod.stream(seed, "hogflix", "events", stream_key)
    cat = catalog(cfg.catalog_size)
    s = sessions
    n_sess = s.height
    entry = s["entry_point"].to_list()
    entry_page = np.array([ENTRY_PAGE[e] for e in entry], np.int8)
    next_page = np.array([NEXT_PAGE[e] for e in entry], np.int8)
    videos = s["videos"].to_numpy().astype(np.int64)
    autoplay = s["autoplay_videos"].to_numpy().astype(np.int64)
    opened = s["titles_opened"].to_numpy().astype(np.int64)
    listings = s["listing_pages"].to_numpy().astype(np.int64)
    ratings = s["ratings"].to_numpy().astype(np.int64)
    wl_adds = s["watchlist_adds"].to_numpy().astype(np.int64)
    tickets = s["support_tickets"].to_numpy().astype(np.int64)
    signup = s["is_signup"].to_numpy()
    completion_mean = s["completion_percent"].to_numpy() / 100.0
    genre_idx = np.array([GENRES.index(x) for x in s["genre"].to_list()], np.int64)
    restricted = np.isin(entry_page, (CATEGORY, FLIXBUDDY_PAGE))

    # ---- slots: a session's listing pages, then its next-episode plays (``autoplay``, no listing or
    # title page); which listing pages are skipped, opened, played; which plays are rated or saved
    sess, pos = _expand(listings + autoplay)
    n_slots = sess.size
    auto = pos >= listings[sess]
    # The last listing page always leads to a play, so next episodes follow a watch page.
    last = pos == listings[sess] - 1
    u = g.random((7, n_slots))
    # Which title each slot shows: a next episode stays in the session's genre; a category or
    # FlixBuddy page shows the session's genre; other listing pages show one of the persona's genres
    # (its tastes, ``affinity_pick_share`` of the time) or a popular title.
    affinity = genre_affinity(seed, s["persona_number"].to_numpy(), traits.genre_concentration)
    liked = (u[5][:, None] >= np.cumsum(affinity[sess], axis=1)).sum(axis=1).clip(0, len(GENRES) - 1)
    taste = np.where(u[6] < cfg.affinity_pick_share, liked, -1) if traits.enabled else np.full(n_slots, -1)
    slot_genre = np.where(restricted[sess] | auto, genre_idx[sess], taste)
    video = pick_videos(cfg.catalog_size, u[4], slot_genre)
    # How much the persona likes the title's genre, relative to its favourite (0-1; 1 without traits).
    rel = (
        affinity[sess, video % len(GENRES)] / affinity.max(axis=1)[sess]
        if traits.enabled
        else np.ones(n_slots)
    )
    # Liked titles are skipped less, played more and saved more (ranks: the lower, the likelier chosen).
    skip = ~auto & (
        _rank_within(sess, np.where(auto | last, 2.0, u[0] * (0.5 + rel))) < (listings - opened)[sess]
    )
    open_rank = _rank_within(sess, np.where(skip | auto, 2.0, np.where(last, 0.0, u[1] * (1.5 - rel))))
    played = auto | (~skip & (open_rank < (videos - autoplay)[sess]))
    play_rank = _rank_within(sess, np.where(played, u[2], 2.0))
    rated = played & (play_rank < ratings[sess])
    titled = ~skip & ~auto  # slots with a title page
    saved_rank = _rank_within(sess, np.where(titled, u[3] * (1.5 - rel), 2.0))
    saved = titled & (saved_rank < wl_adds[sess])
    page = np.where(pos == 0, entry_page[sess], np.where(auto, WATCH, next_page[sess])).astype(np.int8)
    minutes = cat["minutes"].to_numpy()[video].astype(np.float64)
    # A title's completion: the persona's completion of the day, higher for liked genres (centred on
    # the session's played titles, so the session keeps the day's mean).
    rel_played = _session_mean(sess, rel, played, n_sess)
    slot_mean = np.clip(
        completion_mean[sess] + cfg.affinity_completion_shift * (rel - rel_played[sess]), 0.02, 0.98
    )
    completion = np.where(played, video_completion(g, cfg, slot_mean), 0.0)
    watch_s = completion * minutes * 60.0

    dwell_list = _lognormal(g, cfg.listing_dwell_s, n_slots)
    fb0 = (pos == 0) & (page == FLIXBUDDY_PAGE)
    # The chat page: the first question half-way through the listing and first-answer time, then each
    # follow-up (``turns_s``) before the persona leaves, so the page's dwell grows with the turns.
    turns_s = np.where(fb0, _chat_turns_s(s, cfg)[sess], 0.0)
    dwell_list += np.where(fb0, _lognormal(g, cfg.flixbuddy_chat_s, n_slots) + turns_s, 0)
    dwell_title = _lognormal(g, cfg.title_dwell_s, n_slots)
    # Slot length: listing, then title page if opened, then the watch page if played.
    list_len = np.where(auto, 0.0, dwell_list + 0.5)
    title_len = np.where(titled, dwell_title + 0.5, 0.0)
    length = list_len + title_len + np.where(played, 2.0 + watch_s + 6.0, 0.0)

    signup_s = np.where(signup, _lognormal(g, cfg.signup_flow_s, n_sess), 0.0)
    slot_start = np.cumsum(length) - length
    slots = listings + autoplay
    sess_first = np.cumsum(slots) - slots
    slot_start = slot_start - slot_start[sess_first][sess] + signup_s[sess]

    f = _Families()
    t0 = slot_start
    li = np.flatnonzero(~auto)  # listing pages
    f.add(sess[li], t0[li], PAGEVIEW, page[li], li)
    first_question = t0 + 0.5 * (dwell_list - turns_s)
    f.add(sess[fb0], first_question[fb0], FLIXBUDDY, FLIXBUDDY_PAGE, np.flatnonzero(fb0))
    o = titled
    f.add(sess[o], t0[o] + dwell_list[o] - 0.3, OPENED, page[o], np.flatnonzero(o))
    f.add(sess[li], t0[li] + dwell_list[li], PAGELEAVE, page[li], li, order=1)
    tt = t0 + list_len
    f.add(sess[o], tt[o], PAGEVIEW, TITLE, np.flatnonzero(o))
    f.add(sess[saved], tt[saved] + 0.5 * dwell_title[saved], WATCHLIST, TITLE, np.flatnonzero(saved))
    f.add(sess[o], tt[o] + dwell_title[o], PAGELEAVE, TITLE, np.flatnonzero(o), order=1)
    p = played
    tw = tt + title_len
    pi = np.flatnonzero(p)
    f.add(sess[p], tw[p], PAGEVIEW, WATCH, pi)
    f.add(sess[p], tw[p] + 1.5, STARTED, WATCH, pi, value=np.zeros(pi.size))
    for milestone in cfg.progress_milestones:
        hit = p & (completion * 100.0 >= milestone)
        hi = np.flatnonzero(hit)
        f.add(sess[hit], tw[hit] + 1.5 + milestone / 100.0 * minutes[hit] * 60.0, PROGRESS, WATCH, hi,
              value=np.full(hi.size, float(milestone)))  # fmt: skip
    done = p & (completion * 100.0 >= cfg.completed_at_percent)
    f.add(sess[done], tw[done] + 1.5 + watch_s[done], COMPLETED, WATCH, np.flatnonzero(done))
    # Stars: the persona-day's mean (drawn by the lifecycle from the plan's "Rating Distributions"),
    # higher for liked genres (centred on the day's rated titles), rounded and clipped to 1-5.
    rel_rated = _session_mean(sess, rel, rated, n_sess)
    day_mean = s["avg_rating"].to_numpy().astype(np.float64)
    shift = cfg.affinity_rating_shift * (rel - rel_rated[sess])
    stars_raw = day_mean[sess] + shift + cfg.rating_spread * g.standard_normal(n_slots)
    stars = np.clip(np.round(stars_raw[rated]), 1, 5)
    f.add(
        sess[rated], tw[rated] + 1.5 + watch_s[rated] + 3.0, RATED, WATCH, np.flatnonzero(rated), value=stars
    )
    f.add(sess[p], tw[p] + 1.5 + watch_s[p] + 6.0, PAGELEAVE, WATCH, pi, order=1)

    # ---- signup flow before the first listing: anonymous landing page, signup page, $identify
    sidx = np.flatnonzero(signup)
    land = signup_s[sidx] * 0.3
    f.add(sidx, np.zeros(sidx.size), PAGEVIEW, HOME, value=np.ones(sidx.size))  # value 1 = anonymous
    f.add(sidx, land, PAGELEAVE, HOME, value=np.ones(sidx.size), order=1)
    f.add(sidx, land + 0.4, PAGEVIEW, SIGNUP, value=np.ones(sidx.size))
    f.add(sidx, signup_s[sidx] - 2.0, IDENTIFY, SIGNUP)
    f.add(sidx, signup_s[sidx] - 1.5, SIGNED_UP, SIGNUP)
    f.add(sidx, signup_s[sidx] - 0.5, PAGELEAVE, SIGNUP, order=1)

    # ---- a plan change on the account page after the last slot ("Subscription upgrades/downgrades")
    end = slot_start[sess_first + slots - 1] + length[sess_first + slots - 1]
    change = s["plan_change"].to_numpy()
    acc = np.flatnonzero(change != 0)
    account_s = _lognormal(g, cfg.title_dwell_s, n_sess) * 2.0
    f.add(acc, end[acc] + 1.0, PAGEVIEW, ACCOUNT)
    f.add(
        acc,
        end[acc] + 1.0 + 0.7 * account_s[acc],
        PLAN_CHANGED,
        ACCOUNT,
        value=change[acc].astype(np.float64),
    )
    f.add(acc, end[acc] + 1.0 + account_s[acc], PAGELEAVE, ACCOUNT, order=1)
    end = end + np.where(change != 0, 2.0 + account_s, 0.0)

    # ---- support tickets after the last slot (capped per user and hour, see cap_per_user_hour)
    tix = np.flatnonzero(tickets > 0)
    f.add(tix, end[tix] + 1.0, PAGEVIEW, HELP)
    owner, nth = _expand(tickets[tix])
    f.add(tix[owner], end[tix][owner] + 40.0 + 90.0 * nth, TICKET, HELP, value=nth.astype(np.float64))
    f.add(tix, end[tix] + 60.0 + 90.0 * tickets[tix], PAGELEAVE, HELP, order=1)

    e_sess, e_t, e_code, e_page, e_slot, e_value, e_order = f.arrays()
    start_ms = s["session_start_at"].dt.epoch("ms").to_numpy().astype(np.int64)
    ts = start_ms[e_sess] + np.round(e_t * 1000.0).astype(np.int64)
    # Order by session, time, then leave-after-view: one packed int64 key (stable), else a lexsort.
    offset = ts - start_ms[e_sess]
    if offset.size and offset.min() >= 0 and offset.max() < (1 << 38) and n_sess < (1 << 24):
        key = (e_sess << np.int64(39)) | (offset << np.int64(1)) | e_order.astype(np.int64)
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((e_order, ts, e_sess))
    e_sess, ts, e_code, e_page, e_slot, e_value = (
        a[order] for a in (e_sess, ts, e_code, e_page, e_slot, e_value)
    )
    first = np.r_[0, np.flatnonzero(np.diff(e_sess)) + 1]
    seq = np.arange(e_sess.size) - np.repeat(first, np.diff(np.r_[first, e_sess.size]))
    return event_frame(s, seed, cfg, e_sess, ts, e_code, e_page, e_slot, e_value, seq, video, completion, watch_s)  # fmt: skip


def empty_events(cfg: TrafficConfig | None = None) -> pl.DataFrame:
    """Return an empty event frame with every column ``session_events`` produces."""
    return pl.DataFrame(schema=EVENT_SCHEMA)
