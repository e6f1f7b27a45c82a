"""FlixBuddy conversations: who asks what, and the in-process deterministic responder.

A conversation is created for every ``flixbuddy_interaction`` event (10 % of
the day's active personas, decided by the lifecycle). The first question is one
of the eight templates; a multi-turn conversation (``conversation_turns``) goes
on for 2-6 user messages, the later ones follow-ups, one every 20 s, each sent
with the conversation so far. The built-in responder answers with three catalog
titles that fit the question, always the same for the same conversation and turn.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.hogflix.app_rows import APP_TABLES
from simulation_assets.core.hogflix.catalog import catalog
from simulation_assets.core.hogflix.ids import hash_unit
from simulation_assets.core.hogflix.traffic_config import FLIXBUDDY_FOLLOW_UPS
from simulation_assets.core.rng import stable_uuid

# Question template -> genre it asks for (None: anything popular).
QUESTION_GENRES: tuple[str | None, ...] = (
    "action", "comedy", "sci-fi", "family", None, "thriller", "documentary", None,
)  # fmt: skip
RESPONSE_DELAY_MS = 2_500  # the assistant's answer lands this long after the question (choice)
TURN_GAP_MS = 20_000  # a follow-up comes this long after the previous question (choice)


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


def _conversation_keys(conversation_ids: list[str], *extra: object) -> np.ndarray:
    return np.array(
        [
            np.frombuffer(stable_uuid(0, "flixbuddy", c, *extra).bytes[:8], np.int64)[0]
            for c in conversation_ids
        ],
        np.int64,
    )


def turn_counts(conversation_ids: list[str], weights: dict[int, float] | None) -> np.ndarray:
    """Return the number of user messages of each conversation (int8): drawn from ``weights`` (turns ->
    weight) by a hash of the conversation id, so a re-run asks the same; 1 each when ``weights`` is None."""
    if weights is None or not conversation_ids:
        return np.ones(len(conversation_ids), np.int8)
    turns = np.array(sorted(weights), np.int8)
    cum = np.cumsum([weights[t] for t in turns])
    u = hash_unit(0, 37, _conversation_keys(conversation_ids)) * cum[-1]
    return turns[np.minimum(np.searchsorted(cum, u, side="right"), turns.size - 1)]


def conversation_turns(asked: pl.DataFrame, weights: dict[int, float] | None) -> pl.DataFrame:
    """Return one row per user message of the conversations in ``asked`` (``conversations``' rows):
    turn 0 is the template question, later turns are distinct follow-ups, ``TURN_GAP_MS`` apart.

    Columns: those of ``asked`` plus ``turn`` (Int8), ordered by time.
    """
    if asked.is_empty():
        return asked.with_columns(pl.lit(0, pl.Int8).alias("turn"))
    ids = asked["conversation_id"].to_list()
    first_follow_up = np.floor(hash_unit(0, 41, _conversation_keys(ids)) * len(FLIXBUDDY_FOLLOW_UPS))
    rows = (
        asked.with_columns(
            pl.Series("_turns", turn_counts(ids, weights)),
            pl.Series("_first", first_follow_up.astype(np.int64)),
        )
        .with_columns(pl.int_ranges(0, pl.col("_turns"), dtype=pl.Int8).alias("turn"))
        .explode("turn")
    )
    follow_up = (
        (pl.col("_first") + pl.col("turn").cast(pl.Int64) - 1) % len(FLIXBUDDY_FOLLOW_UPS)
    ).replace_strict(dict(enumerate(FLIXBUDDY_FOLLOW_UPS)), return_dtype=pl.String)
    return (
        rows.with_columns(
            pl.when(pl.col("turn") == 0).then(pl.col("question")).otherwise(follow_up).alias("question"),
            (
                pl.col("asked_at") + pl.duration(milliseconds=pl.col("turn").cast(pl.Int64) * TURN_GAP_MS)
            ).alias("asked_at"),
        )
        .drop("_turns", "_first")
        .sort("asked_at", "conversation_id")
    )


def deterministic_reply(
    question_template: int, conversation_id: str, catalog_size: int = 240, turn: int = 0
) -> str:
    """Return the built-in responder's answer: three titles that fit the conversation's question, stable
    for a conversation and turn (a follow-up gets other titles of the same kind)."""
    cat = catalog(catalog_size)
    genre = QUESTION_GENRES[question_template % len(QUESTION_GENRES)]
    pool = cat if genre is None else cat.filter(pl.col("genre") == genre)
    pool = pool.sort("popularity", descending=True).head(12)
    key = _conversation_keys([conversation_id], *((turn,) if turn else ()))
    start = int(np.floor(hash_unit(0, 31, key)[0] * pool.height))
    picks = [pool.row((start + 4 * i) % pool.height, named=True) for i in range(3)]
    listed = "; ".join(f"{p['title']} ({p['genre']}, {p['minutes']} min)" for p in picks)
    if turn:
        lead = "A few more" if genre is None else f"A few more {genre} titles"
        return f"{lead}: {listed}. Anything else?"
    lead = "Here are three picks" if genre is None else f"Three {genre} picks you might like"
    return f"{lead}: {listed}. Want more like one of these?"


def chat_rows(asked: pl.DataFrame, replies: list[str | None], seed: int) -> dict[str, pl.DataFrame]:
    """Return ``chat_conversations`` and ``chat_messages`` rows for user messages and their replies.

    ``asked`` holds one row per user message (``conversation_turns``; without a ``turn`` column, one
    per conversation). A ``None`` reply (the endpoint was not called within the per-run limit) keeps
    that user message only, and the conversation's later messages were never sent.
    """
    if asked.is_empty():
        return {t: pl.DataFrame(schema=APP_TABLES[t]) for t in ("chat_conversations", "chat_messages")}
    if "turn" not in asked.columns:
        asked = asked.with_columns(pl.lit(0, pl.Int8).alias("turn"))
    unanswered = pl.Series("_unanswered", [r is None for r in replies], dtype=pl.Int32)
    asked = asked.with_columns(unanswered, pl.Series("_reply", replies, dtype=pl.String))
    before = (pl.col("_unanswered").cum_sum() - pl.col("_unanswered")).over("conversation_id")
    asked = asked.filter(before == 0)
    replies = asked["_reply"].to_list()
    conv = asked.filter(pl.col("turn") == 0).select(
        pl.col("conversation_id").alias("id"),
        "user_id",
        "profile_id",
        pl.col("question").alias("title"),
        pl.col("asked_at").alias("created_at"),
        pl.lit(True).alias("is_synthetic"),
        "partition_key",
    )
    ids = asked["conversation_id"].to_list()
    turns = asked["turn"].to_list()

    def message_id(c: str, role: str, turn: int) -> str:
        return str(stable_uuid(seed, "hogflix", "chat", c, role, *((turn,) if turn else ())))

    user_msgs = asked.select(
        pl.Series("id", [message_id(c, "user", t) for c, t in zip(ids, turns)], dtype=pl.String),
        pl.col("conversation_id"), "user_id", pl.lit("user").alias("role"), pl.col("question").alias("content"),
        pl.col("asked_at").alias("created_at"), pl.lit(True).alias("is_synthetic"), "partition_key",
    )  # fmt: skip
    answered = pl.Series([r is not None for r in replies], dtype=pl.Boolean)
    bot = asked.filter(answered).select(
        pl.Series("id", [message_id(c, "assistant", t) for c, t, r in zip(ids, turns, replies) if r is not None],
                  dtype=pl.String),
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
