"""Checks of the traffic: session and event ids, sessions per day, the app database, FlixBuddy, the
cleanup and the browser tier."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from simulation_assets.core.hogflix.checks.outcome import CheckOutcome
from simulation_assets.core.hogflix.ids import uuid7_ms


def _uuid7_times(ids: Iterable[str]) -> np.ndarray:
    return np.array([uuid7_ms(s) for s in ids], dtype=np.int64)


def session_ids_are_uuidv7_at_start(sessions: pl.DataFrame) -> CheckOutcome:
    """Every ``session_id`` is a UUIDv7 whose embedded time is the session start (PostHog drops others)."""
    bad = 0
    if sessions.height:
        embedded = _uuid7_times(sessions["session_id"].to_list())
        starts = sessions["session_start_at"].dt.epoch("ms").to_numpy()
        versions = sessions["session_id"].str.slice(14, 1).to_numpy()
        bad = int(((embedded != starts) | (versions != "7")).sum())
    return CheckOutcome(bad == 0, {"sessions": sessions.height, "bad_session_ids": bad})


def event_uuids_unique(events: pl.DataFrame) -> CheckOutcome:
    """No event ``uuid`` appears twice (they become the app rows' primary keys and PostHog's dedupe key)."""
    duplicates = events.height - events["uuid"].n_unique() if events.height else 0
    return CheckOutcome(duplicates == 0, {"events": events.height, "duplicate_uuids": duplicates})


def event_uuid_hashes_unique(hashes: pl.Series) -> CheckOutcome | None:
    """``event_uuids_unique`` on 64-bit hashes of the uuids (a day kept window by window): passes when
    every hash is distinct; None when two collide (then the uuids themselves must be compared)."""
    if hashes.n_unique() != hashes.len():
        return None
    return CheckOutcome(True, {"events": hashes.len(), "duplicate_uuids": 0})


def session_start_not_after_first_event(events: pl.DataFrame) -> CheckOutcome:
    """No session's UUIDv7 time is later than its first event (PostHog's sessions table would drop it)."""
    late = 0
    sessions = 0
    if events.height:
        first = events.group_by("$session_id").agg(pl.col("timestamp").min().dt.epoch("ms").alias("first"))
        sessions = first.height
        late = int((_uuid7_times(first["$session_id"].to_list()) > first["first"].to_numpy()).sum())
    return CheckOutcome(late == 0, {"sessions": sessions, "sessions_with_uuid_time_after_first_event": late})


def per_day_in_range(daily: pl.DataFrame, column: str, band: tuple[int, int]) -> CheckOutcome:
    """Every day's ``column`` (sessions or events of ``hogflix_traffic_daily``) is inside ``band``."""
    low, high = band
    ok = daily[column].is_between(low, high)
    return CheckOutcome(
        bool(ok.all()),
        {
            "range": f"{low}-{high}",
            "days_outside": int((~ok).sum()),
            "min": int(daily[column].min() or 0),
            "max": int(daily[column].max() or 0),
        },
    )


def mean_day_in_range(
    daily: pl.DataFrame, column: str, band: tuple[int, int], tolerance: float
) -> CheckOutcome:
    """The run's mean day of ``column`` is inside ``band`` and every day within ``tolerance`` of its edges."""
    low, high = band
    wide = daily[column].is_between(low * (1 - tolerance), high * (1 + tolerance))
    mean = float(daily[column].mean()) if daily.height else float("nan")
    return CheckOutcome(
        bool(low <= mean <= high and wide.all()),
        {
            "range": f"{low}-{high}",
            "mean": round(mean, 1),
            "days_outside_range": int((~daily[column].is_between(low, high)).sum()),
            "days_beyond_tolerance": int((~wide).sum()),
            "tolerance": tolerance,
            "min": int(daily[column].min() or 0),
            "max": int(daily[column].max() or 0),
        },
    )


# --------------------------------------------------------------------------- app database, FlixBuddy, cleanup


def no_orphan_rows(orphans: Mapping[str, int]) -> CheckOutcome:
    """No synthetic app row points at a user without a profile (or a message at a missing conversation).

    ``orphans`` counts the simulator's own rows only (``HogflixAppDatabase.orphan_rows``): rows a real
    application keeps in the same database are none of this check's business.
    """
    total = int(sum(orphans.values()))
    return CheckOutcome(total == 0, {"orphans": dict(orphans), "total": total})


APP_ROWS_FROM_EVENTS = {
    "video_ratings": "video_rated",
    "user_watchlist": "watchlist_added",
    "support_tickets": "support_ticket_created",
    "watch_progress": "video_started",
    "plan_changes": "plan_changed",
}


def rows_match_events(tables: Mapping[str, pl.DataFrame], events: pl.DataFrame) -> CheckOutcome:
    """Each app table got one row per event it records (a rating per ``video_rated``, ...)."""
    counts = dict(events.group_by("event").len().iter_rows()) if events.height else {}
    expected = {table: int(counts.get(event, 0)) for table, event in APP_ROWS_FROM_EVENTS.items()}
    written = {table: tables[table].height for table in APP_ROWS_FROM_EVENTS}
    return CheckOutcome(written == expected, {"rows": written, "events": expected})


def questions_from_templates_within_cap(
    asked: pl.DataFrame,
    templates: Sequence[str],
    calls: int,
    cap: int,
    turns: tuple[int, int] | None = None,
) -> CheckOutcome:
    """Every FlixBuddy question is one of the templates (or follow-ups), the endpoint was called at most
    ``cap`` times, and (given ``turns``) every conversation has between ``turns[0]`` and ``turns[1]``
    user messages; reports the conversations and their messages."""
    unknown = int((~asked["question"].is_in(list(templates))).sum()) if asked.height else 0
    conversations = asked["conversation_id"].n_unique() if asked.height else 0
    outside = 0
    if turns is not None and asked.height:
        per = asked.group_by("conversation_id").len()["len"]
        outside = int((~per.is_between(turns[0], turns[1])).sum())
    return CheckOutcome(
        unknown == 0 and calls <= cap and outside == 0,
        {
            "conversations_outside_turns": outside,
            "unknown_questions": unknown,
            "calls": calls,
            "cap": cap,
            "conversations": conversations,
            "messages": asked.height,
            "turns_per_conversation": round(asked.height / conversations, 2) if conversations else None,
        },
    )


def cleanup_touched_only_synthetic(
    non_synthetic_before: int, non_synthetic_after: int, auth_refused_non_synthetic: int = 0
) -> CheckOutcome:
    """The count of non-synthetic rows is unchanged and no non-synthetic auth user was deleted."""
    unchanged = non_synthetic_before == non_synthetic_after
    return CheckOutcome(
        unchanged and auth_refused_non_synthetic == 0,
        {
            "non_synthetic_rows_before": non_synthetic_before,
            "non_synthetic_rows_after": non_synthetic_after,
            "auth_refused_non_synthetic": auth_refused_non_synthetic,
        },
    )


# --------------------------------------------------------------------------- browser tier

BROWSER_SESSION_SCHEMA = {
    "session_id": pl.String(),
    "distinct_id": pl.String(),
    "ok": pl.Boolean(),
    "capture_ok": pl.Int64(),
    "sdk_distinct_id": pl.String(),
    "sdk_device_id": pl.String(),
    "previous_device_id": pl.String(),
    "returning": pl.Boolean(),
}


def every_browser_session_produced_events(
    browser_sessions: pl.DataFrame, events: pl.DataFrame, captured_locally: bool
) -> CheckOutcome:
    """Every browser session succeeded and left events: in the local capture, or acknowledged by the site.

    ``browser_sessions`` has ``BROWSER_SESSION_SCHEMA`` columns (one row per session played);
    ``events`` the captured events with their ``synthetic_session``.
    """
    s = browser_sessions
    if captured_locally:
        seen = set(events["synthetic_session"].drop_nulls().to_list()) if events.height else set()
        quiet = ~s["session_id"].is_in(list(seen)) if s.height else pl.Series([], dtype=pl.Boolean)
    else:
        quiet = s["capture_ok"] == 0
    silent = s.filter(~s["ok"] | quiet)["session_id"].to_list() if s.height else []
    return CheckOutcome(
        not silent,
        {"browser_sessions": s.height, "without_events": len(silent), "examples": silent[:10]},
    )


def persona_identities_persisted(browser_sessions: pl.DataFrame) -> CheckOutcome:
    """posthog-js identified every played session as its persona, on the device it used last time."""
    s = browser_sessions.filter(pl.col("ok")) if browser_sessions.height else browser_sessions
    wrong_person = s["sdk_distinct_id"] != s["distinct_id"]
    new_device = (s["previous_device_id"] != "") & (s["sdk_device_id"] != s["previous_device_id"])
    bad = int((wrong_person | new_device).sum()) if s.height else 0
    return CheckOutcome(
        bad == 0,
        {
            "sessions_checked": s.height,
            "returning_browsers": int(s["returning"].sum()) if s.height else 0,
            "identity_mismatches": bad,
        },
    )
