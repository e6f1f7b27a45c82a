"""The columns of a HogFlix event frame: identity, uuid, page and product properties, by gathers.

Every string column is a gather from a small table (sessions, catalog, pages,
constants) padded with one null row, so no per-event string is built.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.hogflix.catalog import GENRES, catalog
from simulation_assets.core.hogflix.event_pages import (
    ANON_PAGE,
    COMPLETED,
    EVENTS,
    FLIXBUDDY,
    GENRE_PAGE,
    IDENTIFY,
    LIB_VERSION,
    PAGELEAVE,
    PAGEVIEW,
    PLAN_CHANGED,
    PROGRESS,
    RATED,
    REFERRERS,
    SIGNED_UP,
    TICKET,
    TICKET_CATEGORIES,
    VIDEO_EVENT,
    VIDEO_PAGE,
    WATCH,
    page_tables,
)
from simulation_assets.core.hogflix.ids import event_uuids, hash_unit
from simulation_assets.core.hogflix.traffic_config import FLIXBUDDY_QUESTIONS


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
    import pyarrow as pa  # traffic only: a lifecycle day loads no PyArrow

    return pl.Series(pa.array(values, mask=~mask)).cast(dtype)


def event_frame(s, seed, cfg, e_sess, ts, code, page, slot, value, seq, video, completion, watch_s):  # noqa: ANN001, ANN202
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
    is_video_event = VIDEO_EVENT[code] | (view_or_leave & VIDEO_PAGE[page])
    vid = np.where(has_slot & is_video_event, video[in_slot], -1)
    anonymous = (value == 1.0) & view_or_leave & ANON_PAGE[page]

    # Pages: every page an event can be on is a row of one small table of paths and URLs; events hold an
    # index into it, so the page strings (and the previous page's, for $prev_pageview_* and $referrer) are
    # gathers. Events are ordered by session then time and every session opens with a $pageview, so the
    # page an event is on is the latest $pageview row at or before it, and the previous page the one before.
    host = cfg.host
    paths, urls, offsets = page_tables(cfg.catalog_size, host)
    genre_idx = np.array([GENRES.index(x) for x in s["genre"].to_list()], np.int64)
    video_ev = np.where(has_slot, video[in_slot], 0)
    variant = np.where(GENRE_PAGE[page], genre_idx[e_sess], np.where(VIDEO_PAGE[page], video_ev, 0))
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
    externals = ["$direct", *sorted({r for r, _, _ in REFERRERS.values()} - {"$direct"})]
    source_ref = np.array(
        [externals.index(REFERRERS.get(x, ("$direct",))[0]) for x in s["source"].to_list()], np.int64
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
    utm = {k: v for k, v in REFERRERS.items() if v[1]}
    base = s.select(
        "session_id", "distinct_id", "device_id", "partition_key", "browser", "os", "device_type",
        "screen_width", "screen_height", "country", "timezone", "state", "activity_pattern", "plan", "entry_point",
    )[e_sess]  # fmt: skip
    sparse_table = s.select(
        "anon_distinct_id", "conversation_id", "source", "previous_plan",
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
    ticket_cat = (persona + value_int) % len(TICKET_CATEGORIES)
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
        "$timezone": base["timezone"],
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
        "ticket_category": _sparse(pl.Series(TICKET_CATEGORIES), ticket_cat, is_ticket),
        "ticket_number": _masked(value_int, is_ticket, pl.Int32),
        "$anon_distinct_id": identify["anon_distinct_id"],
        "$set": identify["$set"],
        "signup_source": _sparse(sparse_table["source"], e_sess, code == SIGNED_UP),
        "previous_plan": _sparse(sparse_table["previous_plan"], e_sess, code == PLAN_CHANGED),
        "plan_change": _sparse(pl.Series(["downgrade", "", "upgrade"]), value_int + 1, code == PLAN_CHANGED),
    }
    ev = pl.DataFrame([series.alias(name) for name, series in cols.items()])
    return cap_per_user_hour(ev, "support_ticket_created", cfg.support_tickets_per_user_hour)


# Every column of an event frame, in order (a test pins it to what ``session_events`` returns).
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "uuid": pl.String(),
    "event": pl.String(),
    "timestamp": pl.Datetime("ms", "UTC"),
    "distinct_id": pl.String(),
    "persona_distinct_id": pl.String(),
    "persona_number": pl.Int64(),
    "partition_key": pl.String(),
    "sequence": pl.Int32(),
    "$session_id": pl.String(),
    "$window_id": pl.String(),
    "$device_id": pl.String(),
    "$current_url": pl.String(),
    "$host": pl.String(),
    "$pathname": pl.String(),
    "$referrer": pl.String(),
    "$referring_domain": pl.String(),
    "utm_source": pl.String(),
    "utm_medium": pl.String(),
    "utm_campaign": pl.String(),
    "$pageview_id": pl.String(),
    "$prev_pageview_pathname": pl.String(),
    "$prev_pageview_duration": pl.Float64(),
    "$prev_pageview_max_scroll_percentage": pl.Float64(),
    "$lib": pl.String(),
    "$lib_version": pl.String(),
    "$browser": pl.String(),
    "$os": pl.String(),
    "$device_type": pl.String(),
    "$screen_width": pl.Int32(),
    "$screen_height": pl.Int32(),
    "$geoip_country_code": pl.String(),
    "$timezone": pl.String(),
    "$is_identified": pl.Boolean(),
    "title": pl.String(),
    "state": pl.String(),
    "activity_pattern": pl.String(),
    "plan": pl.String(),
    "is_synthetic": pl.Boolean(),
    "entry_point": pl.String(),
    "video_id": pl.String(),
    "video_title": pl.String(),
    "genre": pl.String(),
    "video_duration_seconds": pl.Int32(),
    "progress_percent": pl.Float64(),
    "completion_percent": pl.Float64(),
    "watch_seconds": pl.Int64(),
    "rating": pl.Int32(),
    "question": pl.String(),
    "question_template": pl.Int64(),
    "conversation_id": pl.String(),
    "ticket_category": pl.String(),
    "ticket_number": pl.Int32(),
    "$anon_distinct_id": pl.String(),
    "$set": pl.Struct({"email": pl.String(), "plan": pl.String(), "is_synthetic": pl.Boolean()}),
    "signup_source": pl.String(),
    "previous_plan": pl.String(),
    "plan_change": pl.String(),
}

PROPERTY_COLUMNS = (
    "$session_id", "$window_id", "$device_id", "$current_url", "$host", "$pathname", "$referrer",
    "$referring_domain", "utm_source", "utm_medium", "utm_campaign", "$pageview_id", "$prev_pageview_pathname",
    "$prev_pageview_duration", "$prev_pageview_max_scroll_percentage", "$lib", "$lib_version", "$browser", "$os",
    "$device_type", "$screen_width", "$screen_height", "$geoip_country_code", "$timezone", "$is_identified", "title", "state",
    "activity_pattern", "plan", "is_synthetic", "entry_point", "video_id", "video_title", "genre",
    "video_duration_seconds", "progress_percent", "completion_percent", "watch_seconds", "rating", "question",
    "question_template", "conversation_id", "ticket_category", "ticket_number", "$anon_distinct_id", "$set",
    "signup_source", "previous_plan", "plan_change",
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
