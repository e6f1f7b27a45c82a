"""FlixBuddy conversations: who asks what, and the in-process deterministic responder.

A conversation is created for every ``flixbuddy_interaction`` event (10 % of
the day's active personas, decided by the lifecycle). The question is one of
the eight templates; the built-in responder answers with three catalog titles
that fit the question, always the same for the same conversation.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.hogflix.app_rows import APP_TABLES
from simulation_assets.core.hogflix.catalog import catalog
from simulation_assets.core.hogflix.ids import hash_unit
from simulation_assets.core.rng import stable_uuid

# Question template -> genre it asks for (None: anything popular).
QUESTION_GENRES: tuple[str | None, ...] = (
    "action", "comedy", "sci-fi", "family", None, "thriller", "documentary", None,
)  # fmt: skip
RESPONSE_DELAY_MS = 2_500  # the assistant's answer lands this long after the question (choice)


def conversations(events: pl.DataFrame, sessions: pl.DataFrame, max_per_run: int) -> pl.DataFrame:
    """Return one row per FlixBuddy question in ``events`` (at most ``max_per_run``, earliest first).

    Columns: conversation_id, user_id, profile_id, question, question_template, asked_at, partition_key.
    """
    who = sessions.select(pl.col("session_id").alias("$session_id"), "user_id", "profile_id", "partition_key")
    asked = (
        events.filter(pl.col("event") == "flixbuddy_interaction")
        .join(who, on="$session_id", how="inner", suffix="_s")
        .select(
            "conversation_id",
            "user_id",
            "profile_id",
            "question",
            pl.col("question_template").cast(pl.Int32),
            pl.col("timestamp").alias("asked_at"),
            pl.col("partition_key_s").alias("partition_key"),
        )
        .sort("asked_at", "conversation_id")
    )
    return asked.head(max_per_run)


def deterministic_reply(question_template: int, conversation_id: str, catalog_size: int = 240) -> str:
    """Return the built-in responder's answer: three fitting titles, stable for a conversation."""
    cat = catalog(catalog_size)
    genre = QUESTION_GENRES[question_template % len(QUESTION_GENRES)]
    pool = cat if genre is None else cat.filter(pl.col("genre") == genre)
    pool = pool.sort("popularity", descending=True).head(12)
    key = np.frombuffer(stable_uuid(0, "flixbuddy", conversation_id).bytes[:8], np.int64)
    start = int(np.floor(hash_unit(0, 31, key)[0] * pool.height))
    picks = [pool.row((start + 4 * i) % pool.height, named=True) for i in range(3)]
    listed = "; ".join(f"{p['title']} ({p['genre']}, {p['minutes']} min)" for p in picks)
    lead = "Here are three picks" if genre is None else f"Three {genre} picks you might like"
    return f"{lead}: {listed}. Want more like one of these?"


def chat_rows(asked: pl.DataFrame, replies: list[str | None], seed: int) -> dict[str, pl.DataFrame]:
    """Return ``chat_conversations`` and ``chat_messages`` rows for questions and their replies.

    A ``None`` reply (the endpoint was not called within the per-run limit) keeps the
    user's message only.
    """
    if asked.is_empty():
        return {t: pl.DataFrame(schema=APP_TABLES[t]) for t in ("chat_conversations", "chat_messages")}
    conv = asked.select(
        pl.col("conversation_id").alias("id"),
        "user_id",
        "profile_id",
        pl.col("question").alias("title"),
        pl.col("asked_at").alias("created_at"),
        pl.lit(True).alias("is_synthetic"),
        "partition_key",
    )
    ids = asked["conversation_id"].to_list()
    user_msgs = asked.select(
        pl.Series("id", [str(stable_uuid(seed, "hogflix", "chat", c, "user")) for c in ids]),
        pl.col("conversation_id"), "user_id", pl.lit("user").alias("role"), pl.col("question").alias("content"),
        pl.col("asked_at").alias("created_at"), pl.lit(True).alias("is_synthetic"), "partition_key",
    )  # fmt: skip
    answered = pl.Series([r is not None for r in replies], dtype=pl.Boolean)
    bot = asked.filter(answered).select(
        pl.Series("id", [str(stable_uuid(seed, "hogflix", "chat", c, "assistant")) for c, r in zip(ids, replies)
                         if r is not None], dtype=pl.String),
        pl.col("conversation_id"), "user_id", pl.lit("assistant").alias("role"),
        pl.Series("content", [r for r in replies if r is not None], dtype=pl.String),
        (pl.col("asked_at") + pl.duration(milliseconds=RESPONSE_DELAY_MS)).alias("created_at"),
        pl.lit(True).alias("is_synthetic"), "partition_key",
    )  # fmt: skip
    msgs = pl.concat([user_msgs, bot]).sort("created_at", "role", descending=[False, True])
    schema = APP_TABLES
    return {
        "chat_conversations": conv.select(
            [pl.col(c).cast(t) for c, t in schema["chat_conversations"].items()]
        ),
        "chat_messages": msgs.select([pl.col(c).cast(t) for c, t in schema["chat_messages"].items()]),
    }
