"""Browser plans: which of a window's sessions a real browser plays, and the steps it takes.

The session model (``sessions.py``) and its events (``events.py``) already say
where each visit enters, which pages and titles it sees, how long it stays,
what it plays, rates, saves and asks. A browser plan is that same timeline
turned into user actions: visit a page, press play, let the clock run to a
progress milestone, stop, rate, add to the list, ask FlixBuddy, file a ticket,
sign up. The browser's SDK then emits the events itself. Selection is a stable
hash of (persona, session start), so the same share picks the same sessions in
any run. Pure and vectorized: no browser, no files.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.hogflix.ids import hash_unit

ACTIONS = ("visit", "play", "tick", "stop", "rate", "watchlist", "ask", "ticket", "signup")
STOP_BEFORE_LEAVE_MS = 6_000  # the model leaves a watch page 6 s after playback ends (events.py)

PLAN_SCHEMA: dict[str, pl.DataType] = {
    "session_id": pl.String(),
    "step": pl.Int32(),
    "at_ms": pl.Int64(),
    "action": pl.String(),
    "path": pl.String(),
    "value": pl.Float64(),
    "text": pl.String(),
}

# Session columns a browser needs: who the persona is, the device it uses, when the visit starts.
PERSONA_COLUMNS = (
    "session_id", "session_start_at", "persona_number", "distinct_id", "plan", "state", "activity_pattern",
    "entry_point", "source", "is_signup", "device_type", "os", "browser", "screen_width", "screen_height",
    "country",
)  # fmt: skip


def browser_session_mask(sessions: pl.DataFrame, share: float, seed: int) -> np.ndarray:
    """Return a boolean mask of the sessions a browser plays (about ``share`` of them, stable by hash)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"browser share must be between 0 and 1, got {share}")
    if sessions.is_empty():
        return np.zeros(0, bool)
    number = sessions["persona_number"].to_numpy().astype(np.int64)
    start = sessions["session_start_at"].dt.epoch("ms").to_numpy().astype(np.int64)
    return hash_unit(seed, 41, number, start) < share


def browser_plans(sessions: pl.DataFrame, events: pl.DataFrame, host: str) -> pl.DataFrame:
    """Return the steps (``PLAN_SCHEMA``) of ``sessions`` from their server-model ``events``.

    ``at_ms`` is the offset from the session start; ``path`` is the page to
    visit (path and query, without the model's host ``host``).
    """
    if sessions.is_empty() or events.is_empty():
        return pl.DataFrame(schema=PLAN_SCHEMA)
    ev = events.join(
        sessions.select(pl.col("session_id").alias("$session_id"), "session_start_at"), on="$session_id"
    ).with_columns(
        (pl.col("timestamp").dt.epoch("ms") - pl.col("session_start_at").dt.epoch("ms")).alias("at_ms"),
        pl.col("$current_url").str.replace(f"^https?://{_escape(host)}", "").alias("_path"),
    )
    name = pl.col("event")
    leaving_watch = (name == "$pageleave") & pl.col("$pathname").str.starts_with("/watch/")
    action = (
        pl.when(name == "$pageview").then(pl.lit("visit"))
        .when(name == "video_started").then(pl.lit("play"))
        .when(name.is_in(["video_progress", "video_completed"])).then(pl.lit("tick"))
        .when(leaving_watch).then(pl.lit("stop"))
        .when(name == "video_rated").then(pl.lit("rate"))
        .when(name == "watchlist_added").then(pl.lit("watchlist"))
        .when(name == "flixbuddy_interaction").then(pl.lit("ask"))
        .when(name == "support_ticket_created").then(pl.lit("ticket"))
        .when(name == "user_signed_up").then(pl.lit("signup"))
    )  # fmt: skip
    at = pl.when(leaving_watch).then(pl.col("at_ms") - STOP_BEFORE_LEAVE_MS).otherwise(pl.col("at_ms"))
    value = pl.when(name == "video_rated").then(pl.col("rating").cast(pl.Float64))
    value = value.when(name == "video_progress").then(pl.col("progress_percent").cast(pl.Float64))
    text = (
        pl.when(name == "flixbuddy_interaction").then(pl.col("question"))
        .when(name == "support_ticket_created").then(pl.col("ticket_category"))
    )  # fmt: skip
    steps = (
        ev.select(
            pl.col("$session_id").alias("session_id"),
            at.cast(pl.Int64).alias("at_ms"),
            action.alias("action"),
            pl.col("_path").alias("path"),
            value.alias("value"),
            text.alias("text"),
            pl.col("sequence"),
        )
        .filter(pl.col("action").is_not_null())
        .sort("session_id", "at_ms", "sequence")
        .with_columns(pl.int_range(pl.len()).over("session_id").cast(pl.Int32).alias("step"))
    )
    return steps.select([pl.col(k).cast(t) for k, t in PLAN_SCHEMA.items()])


def _escape(text: str) -> str:
    return "".join("\\" + c if c in ".^$*+?()[]{}|\\" else c for c in text)
