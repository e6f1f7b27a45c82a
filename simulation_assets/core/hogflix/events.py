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

from functools import lru_cache

import numpy as np
import polars as pl
import pyarrow as pa

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.hogflix.catalog import GENRES, catalog, pick_videos
from simulation_assets.core.hogflix.ids import event_uuids, hash_unit
from simulation_assets.core.hogflix.traffic_config import FLIXBUDDY_QUESTIONS, TrafficConfig

EVENTS = (
    "$pageview",
    "$pageleave",
    "$identify",
    "user_signed_up",
    "video_opened",
    "watchlist_added",
    "video_started",
    "video_progress",
    "video_completed",
    "video_rated",
    "flixbuddy_interaction",
    "support_ticket_created",
)
(PAGEVIEW, PAGELEAVE, IDENTIFY, SIGNED_UP, OPENED, WATCHLIST, STARTED, PROGRESS, COMPLETED, RATED, FLIXBUDDY,
 TICKET) = range(len(EVENTS))  # fmt: skip

# Pages: listing pages first (indexed by entry point), then the fixed pages.
PAGES = (
    "/",  # homepage entry
    "/search",  # search entry (with ?q=)
    "/browse/{genre}",  # category entry
    "/watchlist",
    "/flixbuddy",
    "/browse/popular",  # homepage continuation: homepage -> popular -> video -> watch
    "/browse/related",  # search continuation: search -> video -> watch -> related
    "/title/{slug}",
    "/watch/{slug}",
    "/signup",
    "/help",
)
HOME, SEARCH, CATEGORY, WATCHLIST_PAGE, FLIXBUDDY_PAGE, POPULAR, RELATED, TITLE, WATCH, SIGNUP, HELP = range(
    len(PAGES)
)
_ENTRY_PAGE = {"homepage": HOME, "search": SEARCH, "category": CATEGORY, "watchlist": WATCHLIST_PAGE,
               "flixbuddy": FLIXBUDDY_PAGE}  # fmt: skip
_NEXT_PAGE = {"homepage": POPULAR, "search": RELATED, "category": CATEGORY, "watchlist": WATCHLIST_PAGE,
              "flixbuddy": FLIXBUDDY_PAGE}  # fmt: skip
_TICKET_CATEGORIES = ("playback", "billing", "account", "content_request")
_REFERRERS = {  # acquisition source -> (referrer, utm_source, utm_medium) of a signup's landing page
    "organic_search": ("https://www.google.com/", None, None),
    "paid_social": ("https://www.facebook.com/", "facebook", "paid_social"),
    "referral": ("https://www.reddit.com/", None, None),
    "direct": ("$direct", None, None),
    "newsletter": ("$direct", "newsletter", "email"),
    "paid_search": ("https://www.google.com/", "google", "cpc"),
    "partner": ("https://partner.example/", "partner", "affiliate"),
}
LIB_VERSION = "1.418.10"
# Lookup tables by event or page code (indexing them is cheaper than np.isin on every event).
_VIDEO_EVENT = np.isin(np.arange(len(EVENTS)), (OPENED, WATCHLIST, STARTED, PROGRESS, COMPLETED, RATED))
_VIDEO_PAGE = np.isin(np.arange(len(PAGES)), (TITLE, WATCH))
_GENRE_PAGE = np.isin(np.arange(len(PAGES)), (SEARCH, CATEGORY))
_ANON_PAGE = np.isin(np.arange(len(PAGES)), (HOME, SIGNUP))


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


def session_events(sessions: pl.DataFrame, seed: int, cfg: TrafficConfig, stream_key: str) -> pl.DataFrame:
    """Return the events of ``sessions`` (``SESSION_SCHEMA`` rows), ordered by session then time.

    ``stream_key`` names the random stream (the partition key), so the same
    sessions and key always give the same events, uuids included.
    """
    if sessions.is_empty():
        return empty_events(cfg)
    g = rng_mod.stream(seed, "hogflix", "events", stream_key)
    cat = catalog(cfg.catalog_size)
    s = sessions
    n_sess = s.height
    entry = s["entry_point"].to_list()
    entry_page = np.array([_ENTRY_PAGE[e] for e in entry], np.int8)
    next_page = np.array([_NEXT_PAGE[e] for e in entry], np.int8)
    videos = s["videos"].to_numpy().astype(np.int64)
    opened = s["titles_opened"].to_numpy().astype(np.int64)
    listings = s["listing_pages"].to_numpy().astype(np.int64)
    ratings = s["ratings"].to_numpy().astype(np.int64)
    wl_adds = s["watchlist_adds"].to_numpy().astype(np.int64)
    tickets = s["support_tickets"].to_numpy().astype(np.int64)
    signup = s["is_signup"].to_numpy()
    completion_mean = s["completion_percent"].to_numpy() / 100.0
    genre_idx = np.array([GENRES.index(x) for x in s["genre"].to_list()], np.int64)
    restricted = np.isin(entry_page, (CATEGORY, FLIXBUDDY_PAGE))

    # ---- listing slots: which are skipped, opened, played; which played titles are rated or saved
    sess, pos = _expand(listings)
    n_slots = sess.size
    u = g.random((6, n_slots))
    skip = _rank_within(sess, u[0]) < (listings - opened)[sess]
    open_rank = _rank_within(sess, np.where(skip, 2.0, u[1]))
    played = ~skip & (open_rank < videos[sess])
    play_rank = _rank_within(sess, np.where(played, u[2], 2.0))
    rated = played & (play_rank < ratings[sess])
    saved_rank = _rank_within(sess, np.where(skip, 2.0, u[3]))
    saved = ~skip & (saved_rank < wl_adds[sess])
    page = np.where(pos == 0, entry_page[sess], next_page[sess]).astype(np.int8)
    video = pick_videos(cfg.catalog_size, u[4], np.where(restricted[sess], genre_idx[sess], -1))
    minutes = cat["minutes"].to_numpy()[video].astype(np.float64)
    completion = np.where(played, video_completion(g, cfg, completion_mean[sess]), 0.0)
    watch_s = completion * minutes * 60.0

    dwell_list = _lognormal(g, cfg.listing_dwell_s, n_slots)
    dwell_list += np.where(
        (pos == 0) & (page == FLIXBUDDY_PAGE), _lognormal(g, cfg.flixbuddy_chat_s, n_slots), 0
    )
    dwell_title = _lognormal(g, cfg.title_dwell_s, n_slots)
    # Slot length: listing, then title page if opened, then the watch page if played.
    length = dwell_list + 0.5
    length += np.where(~skip, dwell_title + 0.5, 0.0)
    length += np.where(played, 2.0 + watch_s + 6.0, 0.0)

    signup_s = np.where(signup, _lognormal(g, cfg.signup_flow_s, n_sess), 0.0)
    slot_start = np.cumsum(length) - length
    sess_first = np.cumsum(listings) - listings
    slot_start = slot_start - slot_start[sess_first][sess] + signup_s[sess]

    f = _Families()
    t0 = slot_start
    f.add(sess, t0, PAGEVIEW, page, np.arange(n_slots))
    fb0 = (pos == 0) & (page == FLIXBUDDY_PAGE)
    f.add(sess[fb0], t0[fb0] + 0.5 * dwell_list[fb0], FLIXBUDDY, FLIXBUDDY_PAGE, np.flatnonzero(fb0))
    o = ~skip
    f.add(sess[o], t0[o] + dwell_list[o] - 0.3, OPENED, page[o], np.flatnonzero(o))
    f.add(sess, t0 + dwell_list, PAGELEAVE, page, np.arange(n_slots), order=1)
    tt = t0 + dwell_list + 0.5
    f.add(sess[o], tt[o], PAGEVIEW, TITLE, np.flatnonzero(o))
    f.add(sess[saved], tt[saved] + 0.5 * dwell_title[saved], WATCHLIST, TITLE, np.flatnonzero(saved))
    f.add(sess[o], tt[o] + dwell_title[o], PAGELEAVE, TITLE, np.flatnonzero(o), order=1)
    p = played
    tw = tt + dwell_title + 0.5
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
    # Plan-based star rating ("Rating Distributions"), normal then rounded and clipped to 1-5.
    plans = s["plan"].to_list()
    mean = np.array([cfg.ratings[x].mean for x in plans])[sess[rated]]
    std = np.array([cfg.ratings[x].std for x in plans])[sess[rated]]
    stars = np.clip(np.round(mean + std * g.standard_normal(mean.size)), 1, 5)
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

    # ---- support tickets after the last slot (capped per user and hour, see cap_per_user_hour)
    end = slot_start[sess_first + listings - 1] + length[sess_first + listings - 1]
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
    return _frame(s, seed, cfg, e_sess, ts, e_code, e_page, e_slot, e_value, seq, video, completion, watch_s)  # fmt: skip


def _or_null(table: pl.Series, idx: np.ndarray, mask: np.ndarray) -> pl.Series:
    """Return ``table[idx]`` where ``mask``, null elsewhere: one gather from the table plus a null row."""
    padded = table.extend_constant(None, 1).rechunk()  # one chunk: gathers from a single array are faster
    return padded.gather(np.where(mask, idx, table.len()))


def _sparse(table: pl.Series, idx: np.ndarray, mask: np.ndarray) -> pl.Series:
    """``_or_null`` for columns carried by few events: a null column with the few values scattered in.

    Cheaper than a full gather when ``mask`` is rare (no per-event read of the table).
    """
    rows = np.flatnonzero(mask)
    out = pl.repeat(None, len(mask), dtype=table.dtype, eager=True)
    return out.scatter(rows, table.gather(idx[rows])) if rows.size else out


def _rows_or_null(table: pl.DataFrame, idx: np.ndarray, mask: np.ndarray) -> pl.DataFrame:
    """Return ``table[idx]`` where ``mask``, null rows elsewhere (``_or_null`` for several columns)."""
    padded = pl.concat([table, table.clear(1)], rechunk=True)
    return padded[np.where(mask, idx, table.height)]


def _masked(values: np.ndarray, mask: np.ndarray, dtype: pl.DataType) -> pl.Series:
    """Return numeric ``values`` as a Series, null where ``mask`` is false."""
    return pl.Series(pa.array(values, mask=~mask)).cast(dtype)


def _frame(s, seed, cfg, e_sess, ts, code, page, slot, value, seq, video, completion, watch_s):  # noqa: ANN001, ANN202
    """Return the event frame: identity, uuid, page and product properties as columns.

    Every string column is a gather: from the session table (by session), the catalog (by video),
    the page table (by page) or a small list of constants, with one extra null row for events that
    do not carry the property, so no per-event string is built and no column is filtered twice.
    """
    cat = catalog(cfg.catalog_size)
    n = code.size
    persona = s["persona_number"].to_numpy()[e_sess]
    has_slot = slot >= 0
    in_slot = np.maximum(slot, 0)
    is_pv, is_leave = code == PAGEVIEW, code == PAGELEAVE
    view_or_leave = is_pv | is_leave
    is_video_event = _VIDEO_EVENT[code] | (view_or_leave & _VIDEO_PAGE[page])
    vid = np.where(has_slot & is_video_event, video[in_slot], -1)
    anonymous = (value == 1.0) & view_or_leave & _ANON_PAGE[page]

    # Pages: every page an event can be on is a row of one small table of paths and URLs; events hold an
    # index into it, so the page strings (and the previous page's, for $prev_pageview_* and $referrer) are
    # gathers. Events are ordered by session then time and every session opens with a $pageview, so the
    # page an event is on is the latest $pageview row at or before it, and the previous page the one before.
    host = cfg.host
    paths, urls, offsets = _page_tables(cfg.catalog_size, host)
    genre_idx = np.array([GENRES.index(x) for x in s["genre"].to_list()], np.int64)
    video_ev = np.where(has_slot, video[in_slot], 0)
    variant = np.where(_GENRE_PAGE[page], genre_idx[e_sess], np.where(_VIDEO_PAGE[page], video_ev, 0))
    url_id = offsets[page] + variant
    rows = np.arange(n)
    first_of_row = rows - seq
    cur = np.maximum.accumulate(np.where(is_pv, rows, 0))
    prev = np.r_[0, cur[:-1]]
    prev_ok = (prev >= first_of_row) & (rows > first_of_row)
    first_pv = is_pv & ~prev_ok
    # $prev_pageview_*: a leave describes the page being left, a view the page before it.
    before = np.where(is_leave, cur, prev)
    has_before = is_leave | (is_pv & prev_ok)
    duration = np.where(has_before, (ts - ts[before]) / 1000.0, np.nan)
    scroll = np.where(has_before, hash_unit(seed, 22, persona, ts).round(2), np.nan)
    # $referrer: the previous page inside the site; a session's first view: the acquisition source for an
    # anonymous visitor (their landing page), $direct otherwise. External referrers follow the URLs.
    externals = ["$direct", *sorted({r for r, _, _ in _REFERRERS.values()} - {"$direct"})]
    source_ref = np.array(
        [externals.index(_REFERRERS.get(x, ("$direct",))[0]) for x in s["source"].to_list()], np.int64
    )
    ref_id = np.where(
        first_pv,
        np.where(anonymous, len(urls) + source_ref[e_sess], len(urls)),
        np.where(is_pv & prev_ok, url_id[prev], -1),
    )
    ref_table = pl.Series([*urls, *externals])
    ref_domains = pl.Series([host] * len(urls) + ["$direct", *(r.split("/")[2] for r in externals[1:])])
    path_s, url_s = pl.Series(paths), pl.Series(urls)

    # Session-level values: one gather of the session table by session for the dense ones; the sparse
    # ones come from the same table padded with a null row, gathered only where the events carry them.
    # Video properties: one gather of the catalog (also padded).
    utm = {k: v for k, v in _REFERRERS.items() if v[1]}
    base = s.select(
        "session_id", "distinct_id", "device_id", "partition_key", "browser", "os", "device_type",
        "screen_width", "screen_height", "country", "state", "activity_pattern", "plan", "entry_point",
    )[e_sess]  # fmt: skip
    sparse_table = s.select(
        "anon_distinct_id", "conversation_id", "source",
        pl.col("source").replace_strict({k: v[1] for k, v in utm.items()}, default=None).alias("utm_source"),
        pl.col("source").replace_strict({k: v[2] for k, v in utm.items()}, default=None).alias("utm_medium"),
        pl.when(pl.col("source").is_in(list(utm))).then(pl.lit("hogflix_launch")).alias("utm_campaign"),
        pl.struct("email", "plan", pl.lit(True).alias("is_synthetic")).alias("$set"),
    )  # fmt: skip
    is_flixbuddy, is_ticket, is_identify = code == FLIXBUDDY, code == TICKET, code == IDENTIFY
    entry_anon = first_pv & anonymous
    identify = _rows_or_null(sparse_table.select("anon_distinct_id", "$set"), e_sess, is_identify)
    both_ids = pl.concat([s["distinct_id"], s["anon_distinct_id"]], rechunk=True)
    videos = _rows_or_null(
        cat.select("video_id", pl.col("title").alias("video_title"), "genre", (pl.col("minutes") * 60).alias("duration")),
        vid, vid >= 0,
    )  # fmt: skip
    fb_q = hash_unit(
        seed, 21, s["persona_number"].to_numpy(), s["session_start_at"].dt.epoch("ms").to_numpy()
    )
    question_idx = np.floor(fb_q * len(FLIXBUDDY_QUESTIONS)).astype(np.int64)[e_sess]
    watch_end = ((code == COMPLETED) | is_leave) & (page == WATCH)
    slot_completion = np.where(has_slot, np.round(completion[in_slot] * 100, 1), 0.0)
    slot_watch_s = np.where(has_slot, np.round(watch_s[in_slot]), 0).astype(np.int64)
    value_int = np.nan_to_num(value).astype(np.int32)
    ticket_cat = (persona + value_int) % len(_TICKET_CATEGORIES)
    uuids = event_uuids(seed, persona, ts, seq)
    cols = {
        "uuid": uuids,
        "event": pl.Series(EVENTS).gather(code),
        "timestamp": pl.Series(ts).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
        "distinct_id": both_ids.gather(e_sess + np.where(anonymous, s.height, 0)),
        "persona_distinct_id": base["distinct_id"],
        "persona_number": pl.Series(persona, dtype=pl.Int64),
        "partition_key": base["partition_key"],
        "sequence": pl.Series(seq.astype(np.int32)),
        "$session_id": base["session_id"],
        "$window_id": base["session_id"],
        "$device_id": base["device_id"],
        "$current_url": url_s.gather(url_id),
        "$host": pl.repeat(host, n, eager=True),
        "$pathname": path_s.gather(url_id),
        "$referrer": _or_null(ref_table, ref_id, ref_id >= 0),
        "$referring_domain": _or_null(ref_domains, ref_id, ref_id >= 0),
        "utm_source": _sparse(sparse_table["utm_source"], e_sess, entry_anon),
        "utm_medium": _sparse(sparse_table["utm_medium"], e_sess, entry_anon),
        "utm_campaign": _sparse(sparse_table["utm_campaign"], e_sess, entry_anon),
        "$pageview_id": uuids.gather(cur),
        "$prev_pageview_pathname": _or_null(path_s, url_id[before], has_before),
        "$prev_pageview_duration": pl.Series(duration).fill_nan(None),
        "$prev_pageview_max_scroll_percentage": pl.Series(scroll).fill_nan(None),
        "$lib": pl.repeat("web", n, eager=True),
        "$lib_version": pl.repeat(LIB_VERSION, n, eager=True),
        "$browser": base["browser"],
        "$os": base["os"],
        "$device_type": base["device_type"],
        "$screen_width": base["screen_width"],
        "$screen_height": base["screen_height"],
        "$geoip_country_code": base["country"],
        "$is_identified": pl.Series(~anonymous),
        "title": _or_null(pl.Series(["HogFlix"]), np.zeros(n, np.int64), is_pv),
        "state": base["state"],
        "activity_pattern": base["activity_pattern"],
        "plan": base["plan"],
        "is_synthetic": pl.repeat(True, n, eager=True),
        "entry_point": base["entry_point"],
        "video_id": videos["video_id"],
        "video_title": videos["video_title"],
        "genre": videos["genre"],
        "video_duration_seconds": videos["duration"],
        "progress_percent": _masked(value, code == PROGRESS, pl.Float64),
        "completion_percent": _masked(slot_completion, watch_end, pl.Float64),
        "watch_seconds": _masked(slot_watch_s, watch_end, pl.Int64),
        "rating": _masked(value_int, code == RATED, pl.Int32),
        "question": _sparse(pl.Series(FLIXBUDDY_QUESTIONS), question_idx, is_flixbuddy),
        "question_template": _masked(question_idx, is_flixbuddy, pl.Int64),
        "conversation_id": _sparse(sparse_table["conversation_id"], e_sess, is_flixbuddy),
        "ticket_category": _sparse(pl.Series(_TICKET_CATEGORIES), ticket_cat, is_ticket),
        "ticket_number": _masked(value_int, is_ticket, pl.Int32),
        "$anon_distinct_id": identify["anon_distinct_id"],
        "$set": identify["$set"],
        "signup_source": _sparse(sparse_table["source"], e_sess, code == SIGNED_UP),
    }
    ev = pl.DataFrame([series.alias(name) for name, series in cols.items()])
    return cap_per_user_hour(ev, "support_ticket_created", cfg.support_tickets_per_user_hour)


PROPERTY_COLUMNS = (
    "$session_id", "$window_id", "$device_id", "$current_url", "$host", "$pathname", "$referrer",
    "$referring_domain", "utm_source", "utm_medium", "utm_campaign", "$pageview_id", "$prev_pageview_pathname",
    "$prev_pageview_duration", "$prev_pageview_max_scroll_percentage", "$lib", "$lib_version", "$browser", "$os",
    "$device_type", "$screen_width", "$screen_height", "$geoip_country_code", "$is_identified", "title", "state",
    "activity_pattern", "plan", "is_synthetic", "entry_point", "video_id", "video_title", "genre",
    "video_duration_seconds", "progress_percent", "completion_percent", "watch_seconds", "rating", "question",
    "question_template", "conversation_id", "ticket_category", "ticket_number", "$anon_distinct_id", "$set",
    "signup_source",
)  # fmt: skip


def cap_per_user_hour(events: pl.DataFrame, event: str, limit: int) -> pl.DataFrame:
    """Drop ``event`` rows beyond ``limit`` per distinct id and clock hour (the support-ticket rate limit).

    Only the (few) ``event`` rows are ranked; the other rows are kept as they are, in order.
    """
    rows = np.flatnonzero((events["event"] == event).to_numpy())
    if rows.size <= limit:
        return events
    hour = pl.col("timestamp").dt.truncate("1h")
    rank = pl.col("timestamp").rank("ordinal").over(["distinct_id", hour])
    over = events[rows].select(rank > limit).to_series().to_numpy()
    if not over.any():
        return events
    keep = np.ones(events.height, np.bool_)
    keep[rows[over]] = False
    return events.filter(pl.Series(keep))


@lru_cache(maxsize=1)
def _event_schema() -> pl.Schema:
    """Return the event frame's schema (it does not depend on the configuration's numbers)."""
    from simulation_assets.core.hogflix.sessions import SESSION_SCHEMA

    values = {
        "session_id": "018bcfe5-6800-70c2-9273-bd9fb92433ce", "partition_key": "2024-01-01-00:00",
        "session_start_at": 1_700_000_000_000, "persona_number": 1, "distinct_id": "p_1", "anon_distinct_id": "a",
        "device_id": "d", "user_id": "u", "profile_id": "r", "email": "e", "signed_up_at": 1_700_000_000_000,
        "plan": "Basic", "source": "direct", "state": "NEW", "activity_pattern": "DAILY", "is_signup": True,
        "entry_point": "flixbuddy", "genre": GENRES[0], "videos": 1, "titles_opened": 1, "listing_pages": 1,
        "completion_percent": 99.0, "ratings": 1, "watchlist_adds": 1, "flixbuddy": True, "conversation_id": "c",
        "binge_mode": False, "support_tickets": 1, "device_type": "Desktop", "os": "Linux", "browser": "Firefox",
        "screen_width": 1, "screen_height": 1, "country": "US", "is_synthetic": True,
    }  # fmt: skip
    one = pl.DataFrame({k: [values[k]] for k in SESSION_SCHEMA}).with_columns(
        [pl.col(k).cast(t) for k, t in SESSION_SCHEMA.items()]
    )
    return session_events(one, 0, TrafficConfig(), "schema").schema


def empty_events(cfg: TrafficConfig | None = None) -> pl.DataFrame:
    """Return an empty event frame with every column ``session_events`` produces."""
    return pl.DataFrame(schema=_event_schema())


@lru_cache(maxsize=4)
def _page_tables(catalog_size: int, host: str) -> tuple[list[str], list[str], np.ndarray]:
    """Return (paths, urls, offset per page code): every page an event can be on, indexed by page code
    plus a variant (genre for search and category pages, video for title and watch pages)."""
    slugs = catalog(catalog_size)["slug"].to_list()
    paths: list[str] = []
    urls: list[str] = []
    offsets = np.zeros(len(PAGES), np.int64)
    for code, template in enumerate(PAGES):
        offsets[code] = len(paths)
        if code == SEARCH:
            variants = [("/search", f"/search?q={g}") for g in GENRES]
        elif code == CATEGORY:
            variants = [(f"/browse/{g}", f"/browse/{g}") for g in GENRES]
        elif code in (TITLE, WATCH):
            variants = [(template.format(slug=x),) * 2 for x in slugs]
        else:
            variants = [(template, template)]
        paths += [p for p, _ in variants]
        urls += [f"https://{host}{u}" for _, u in variants]
    return paths, urls, offsets
