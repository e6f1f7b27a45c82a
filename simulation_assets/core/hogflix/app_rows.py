"""Rows of the HogFlix app database derived from sessions and events.

The app keeps what the events describe: a profile and a subscription per
persona (created at its first session in the database), one watch-progress row
per played video, the ratings, watchlist additions and support tickets. Row ids
are the uuids of the events they come from, so a re-run writes the same keys,
and every row carries ``is_synthetic = true`` and its partition key.
"""

from __future__ import annotations

import polars as pl

from simulation_assets.core.rng import stable_uuid

TS = pl.Datetime("ms", "UTC")

APP_TABLES: dict[str, dict[str, pl.DataType]] = {
    "profiles": {
        "id": pl.String(), "user_id": pl.String(), "email": pl.String(), "display_name": pl.String(),
        "plan": pl.String(), "acquisition_source": pl.String(), "created_at": TS, "is_synthetic": pl.Boolean(),
        "partition_key": pl.String(),
    },
    "user_subscriptions": {
        "id": pl.String(), "user_id": pl.String(), "profile_id": pl.String(), "plan": pl.String(),
        "status": pl.String(), "started_at": TS, "is_synthetic": pl.Boolean(), "partition_key": pl.String(),
    },
    "watch_progress": {
        "id": pl.String(), "user_id": pl.String(), "profile_id": pl.String(), "video_id": pl.String(),
        "progress_seconds": pl.Int64(), "duration_seconds": pl.Int64(), "progress_percent": pl.Float64(),
        "completed": pl.Boolean(), "updated_at": TS, "is_synthetic": pl.Boolean(), "partition_key": pl.String(),
    },
    "video_ratings": {
        "id": pl.String(), "user_id": pl.String(), "profile_id": pl.String(), "video_id": pl.String(),
        "rating": pl.Int32(), "created_at": TS, "is_synthetic": pl.Boolean(), "partition_key": pl.String(),
    },
    "user_watchlist": {
        "id": pl.String(), "user_id": pl.String(), "profile_id": pl.String(), "video_id": pl.String(),
        "added_at": TS, "is_synthetic": pl.Boolean(), "partition_key": pl.String(),
    },
    "support_tickets": {
        "id": pl.String(), "user_id": pl.String(), "email": pl.String(), "category": pl.String(),
        "subject": pl.String(), "status": pl.String(), "created_at": TS, "is_synthetic": pl.Boolean(),
        "partition_key": pl.String(),
    },
    "chat_conversations": {
        "id": pl.String(), "user_id": pl.String(), "profile_id": pl.String(), "title": pl.String(),
        "created_at": TS, "is_synthetic": pl.Boolean(), "partition_key": pl.String(),
    },
    "chat_messages": {
        "id": pl.String(), "conversation_id": pl.String(), "user_id": pl.String(), "role": pl.String(),
        "content": pl.String(), "created_at": TS, "is_synthetic": pl.Boolean(), "partition_key": pl.String(),
    },
}  # fmt: skip
# Tables whose rows belong to one partition (replaced on re-run); the others are upserted by id.
PARTITION_TABLES = ("watch_progress", "video_ratings", "user_watchlist", "support_tickets")
CHAT_TABLES = ("chat_conversations", "chat_messages")
UPSERT_TABLES = ("profiles", "user_subscriptions")
# Tables that carry an e-mail address (the synthetic domain also marks a row as synthetic).
EMAIL_TABLES = ("profiles", "support_tickets")


def _typed(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    schema = APP_TABLES[name]
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def empty_table(name: str) -> pl.DataFrame:
    """Return an empty frame with the columns of app table ``name``."""
    return pl.DataFrame(schema=APP_TABLES[name])


def app_rows(sessions: pl.DataFrame, events: pl.DataFrame, seed: int) -> dict[str, pl.DataFrame]:
    """Return the app tables (except chat) for ``sessions`` and their ``events``."""
    if sessions.is_empty():
        return {name: empty_table(name) for name in (*UPSERT_TABLES, *PARTITION_TABLES)}
    who = sessions.select(
        pl.col("session_id").alias("$session_id"), "user_id", "profile_id", "email",
        pl.col("partition_key").alias("session_partition"),
    )  # fmt: skip
    ev = events.join(who, on="$session_id", how="left")
    first = sessions.sort("session_start_at").unique("user_id", keep="first", maintain_order=True)
    profiles, subs = _profile_rows(first, seed)
    common = [pl.lit(True).alias("is_synthetic"), pl.col("session_partition").alias("partition_key")]
    leave = ev.filter((pl.col("event") == "$pageleave") & pl.col("watch_seconds").is_not_null())
    watch = leave.select(
        "uuid", "user_id", "profile_id", "video_id", pl.col("watch_seconds").alias("progress_seconds"),
        pl.col("video_duration_seconds").alias("duration_seconds"),
        pl.col("completion_percent").alias("progress_percent"),
        (pl.col("completion_percent") >= 95.0).alias("completed"), pl.col("timestamp").alias("updated_at"),
        *common,
    ).rename({"uuid": "id"})  # fmt: skip
    ratings = ev.filter(pl.col("event") == "video_rated").select(
        pl.col("uuid").alias("id"), "user_id", "profile_id", "video_id", "rating",
        pl.col("timestamp").alias("created_at"), *common,
    )  # fmt: skip
    watchlist = ev.filter(pl.col("event") == "watchlist_added").select(
        pl.col("uuid").alias("id"), "user_id", "profile_id", "video_id", pl.col("timestamp").alias("added_at"),
        *common,
    )  # fmt: skip
    tickets = ev.filter(pl.col("event") == "support_ticket_created").select(
        pl.col("uuid").alias("id"), "user_id", "email", pl.col("ticket_category").alias("category"),
        (pl.lit("Help with ") + pl.col("ticket_category").str.replace("_", " ")).alias("subject"),
        pl.lit("open").alias("status"), pl.col("timestamp").alias("created_at"), *common,
    )  # fmt: skip
    out = {
        "profiles": profiles,
        "user_subscriptions": subs,
        "watch_progress": watch,
        "video_ratings": ratings,
        "user_watchlist": watchlist,
        "support_tickets": tickets,
    }
    return {name: _typed(name, frame) for name, frame in out.items()}


def _profile_rows(people: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (profiles, user_subscriptions) rows of ``people`` (one row per user, with partition_key)."""
    profiles = people.select(
        pl.col("profile_id").alias("id"), "user_id", "email", pl.col("distinct_id").alias("display_name"),
        pl.col("plan").cast(pl.String), pl.col("source").alias("acquisition_source"),
        pl.col("signed_up_at").alias("created_at"), pl.lit(True).alias("is_synthetic"), "partition_key",
    )  # fmt: skip
    subs = people.select(
        pl.Series("id", [str(stable_uuid(seed, "hogflix", "subscription", u)) for u in people["user_id"]],
                  dtype=pl.String),
        "user_id", "profile_id", pl.col("plan").cast(pl.String), pl.lit("active").alias("status"),
        pl.col("signed_up_at").alias("started_at"), pl.lit(True).alias("is_synthetic"), "partition_key",
    )  # fmt: skip
    return _typed("profiles", profiles), _typed("user_subscriptions", subs)


def pool_profiles(personas: pl.DataFrame, partition_key: str, seed: int) -> dict[str, pl.DataFrame]:
    """Return profiles and subscriptions of every persona of a day's table.

    Written with the day's first window, so every member of the pool has its
    account rows (the specification's ``db_initialized``), visits or not;
    churned personas keep theirs until the daily cleanup removes the 90 %
    marked for it (the other 10 % stay, as the specification keeps them).
    """
    people = personas.select(
        "user_id", "profile_id", "email", "distinct_id", "plan", "source",
        pl.col("created_at").alias("signed_up_at"), pl.lit(partition_key).alias("partition_key"),
    )  # fmt: skip
    profiles, subs = _profile_rows(people, seed)
    return {"profiles": profiles, "user_subscriptions": subs}
