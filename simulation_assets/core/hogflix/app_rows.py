"""Rows of the HogFlix app database derived from sessions and events.

The app keeps what the events describe: a profile and a subscription per
persona (created at its first session in the database), one watch-progress row
per played video, the ratings, watchlist additions and support tickets. Row ids
are the uuids of the events they come from, so a re-run writes the same keys,
and every row carries ``is_synthetic = true`` and its partition key.
"""

from __future__ import annotations

import datetime as dt

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
    "plan_changes": {
        "id": pl.String(), "user_id": pl.String(), "profile_id": pl.String(), "from_plan": pl.String(),
        "to_plan": pl.String(), "direction": pl.String(), "changed_at": TS, "is_synthetic": pl.Boolean(),
        "partition_key": pl.String(),
    },
    "payments": {
        "id": pl.String(), "user_id": pl.String(), "plan": pl.String(), "amount_cents": pl.Int32(),
        "status": pl.String(), "attempt": pl.Int32(), "created_at": TS, "is_synthetic": pl.Boolean(),
        "partition_key": pl.String(),
    },
    "chat_messages": {
        "id": pl.String(), "conversation_id": pl.String(), "user_id": pl.String(), "role": pl.String(),
        "content": pl.String(), "created_at": TS, "is_synthetic": pl.Boolean(), "partition_key": pl.String(),
    },
}  # fmt: skip
# Tables whose rows belong to one partition (replaced on re-run); the others are upserted by id.
PARTITION_TABLES = (
    "watch_progress",
    "video_ratings",
    "user_watchlist",
    "support_tickets",
    "plan_changes",
    "payments",
)
CHAT_TABLES = ("chat_conversations", "chat_messages")
UPSERT_TABLES = ("profiles", "user_subscriptions")
# Columns of the upserted tables that follow the persona (a plan change, a payment falling due).
UPSERT_UPDATES = {"profiles": ("plan",), "user_subscriptions": ("plan", "status")}
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
        return {name: empty_table(name) for name in (*UPSERT_TABLES, *PARTITION_TABLES) if name != "payments"}
    who = sessions.select(
        pl.col("session_id").alias("$session_id"), "user_id", "profile_id", "email",
        pl.col("partition_key").alias("session_partition"),
    )  # fmt: skip
    ev = events.join(who, on="$session_id", how="left")
    first = sessions.sort("session_start_at").unique("user_id", keep="first", maintain_order=True)
    profiles, subs = _profile_rows(first.with_columns(pl.lit("active").alias("status")), seed)
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
    changes = ev.filter(pl.col("event") == "plan_changed").select(
        pl.col("uuid").alias("id"), "user_id", "profile_id", pl.col("previous_plan").alias("from_plan"),
        pl.col("plan").alias("to_plan"), pl.col("plan_change").alias("direction"),
        pl.col("timestamp").alias("changed_at"), *common,
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
        "plan_changes": changes,
    }
    return {name: _typed(name, frame) for name, frame in out.items()}


PAYMENT_HOUR = 6  # the monthly charge and dunning retries run at 06:00 UTC (choice)


def payment_rows(
    personas: pl.DataFrame, partition_key: str, seed: int, price_cents: dict[str, int]
) -> pl.DataFrame:
    """Return the ``payments`` rows of a day's persona table: today's charges and dunning retries.

    Ids are stable per (user, day, attempt), so a re-run writes the same keys.
    """
    charged = personas.filter(pl.col("payment_attempt_today") > 0)
    if charged.is_empty():
        return empty_table("payments")
    day = charged["snapshot_date"][0]
    at = dt.datetime.combine(day, dt.time(PAYMENT_HOUR), dt.UTC)
    ids = [
        str(stable_uuid(seed, "hogflix", "payment", u, day.isoformat(), int(a)))
        for u, a in zip(charged["user_id"].to_list(), charged["payment_attempt_today"].to_list())
    ]
    rows = charged.select(
        pl.Series("id", ids, dtype=pl.String),
        "user_id",
        pl.col("plan").cast(pl.String),
        pl.col("plan")
        .cast(pl.String)
        .replace_strict(price_cents, return_dtype=pl.Int32)
        .alias("amount_cents"),
        pl.when(pl.col("payment_failed_today"))
        .then(pl.lit("failed"))
        .otherwise(pl.lit("succeeded"))
        .alias("status"),
        pl.col("payment_attempt_today").alias("attempt"),
        (pl.lit(at) + pl.duration(minutes=pl.col("payment_attempt_today").cast(pl.Int64) - 1)).alias(
            "created_at"
        ),
        pl.lit(True).alias("is_synthetic"),
        pl.lit(partition_key).alias("partition_key"),
    )
    return _typed("payments", rows)


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
        "user_id", "profile_id", pl.col("plan").cast(pl.String), pl.col("status"),
        pl.col("signed_up_at").alias("started_at"), pl.lit(True).alias("is_synthetic"), "partition_key",
    )  # fmt: skip
    return _typed("profiles", profiles), _typed("user_subscriptions", subs)


def pool_profiles(personas: pl.DataFrame, partition_key: str, seed: int) -> dict[str, pl.DataFrame]:
    """Return profiles and subscriptions of every persona of a day's table.

    Written with the day's first window, so every member of the pool has its
    account rows (the specification's ``db_initialized``), visits or not;
    churned personas keep theirs until the daily cleanup removes the 90 %
    marked for it (the other 10 % stay, as the specification keeps them). The
    plan and the subscription's status (active, past_due in dunning, canceled)
    follow the persona: the database updates them on an existing row.
    """
    status = (
        pl.when(pl.col("state") == "CHURNED").then(pl.lit("canceled"))
        .when(pl.col("payment_status") == "dunning").then(pl.lit("past_due"))
        .otherwise(pl.lit("active"))
    )  # fmt: skip
    people = personas.select(
        "user_id", "profile_id", "email", "distinct_id", "plan", "source",
        pl.col("created_at").alias("signed_up_at"), pl.lit(partition_key).alias("partition_key"),
        status.alias("status"),
    )  # fmt: skip
    profiles, subs = _profile_rows(people, seed)
    return {"profiles": profiles, "user_subscriptions": subs}
