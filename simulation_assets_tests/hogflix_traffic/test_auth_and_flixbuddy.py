"""Supabase auth admin users and the FlixBuddy endpoint, against loopback servers."""

from __future__ import annotations

import datetime as dt
import uuid

import jwt
import numpy as np
import polars as pl
import pytest

from simulation_assets.core.hogflix.flixbuddy import chat_rows, conversation_turns, turn_counts
from simulation_assets.core.hogflix.traffic_config import FLIXBUDDY_FOLLOW_UPS, TrafficConfig
from simulation_assets.sinks.flixbuddy import FlixBuddyClient
from simulation_assets.sinks.supabase_auth import SupabaseAuthAdmin
from simulation_assets_tests.hogflix_traffic.servers import FlixBuddyServer, SupabaseAuthServer


@pytest.fixture
def service_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = jwt.encode(
        {"role": "service_role", "iss": "supabase"},
        "test-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
    return key


def _users(n: int) -> pl.DataFrame:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    return pl.DataFrame(
        {
            "user_id": ids,
            "email": [f"p_{i:05d}_1@hogflix-synthetic.test" for i in range(n)],
            "display_name": [f"p_{i:05d}_1" for i in range(n)],
            "plan": ["Basic"] * n,
        }
    )


def test_auth_users_are_created_flagged_and_only_synthetic_ones_deleted(service_key: str) -> None:
    users = _users(6)
    with SupabaseAuthServer(fail_every=4) as server:
        real_id = str(uuid.uuid4())
        server.plant(real_id, "grace@example.com", {"is_synthetic": False})
        admin = SupabaseAuthAdmin(
            url=server.url, service_role_key=service_key, backoff_seconds=0.01, creates_per_second=0
        )
        assert admin.create_users(users) == {"created": 6, "existing": 0}
        assert admin.create_users(users.head(2)) == {"created": 0, "existing": 2}  # re-run: idempotent
        created = [server.users[u] for u in users["user_id"]]
        assert all(u["user_metadata"]["is_synthetic"] is True for u in created)
        assert sorted(admin.synthetic_user_ids()) == sorted(users["user_id"].to_list())
        result = admin.delete_users([*users["user_id"].head(3).to_list(), real_id, str(uuid.uuid4())])
        assert result == {"deleted": 3, "missing": 1, "refused_non_synthetic": 1}
        assert real_id in server.users and len(server.users) == 4
        assert sorted(server.deleted) == sorted(users["user_id"].head(3).to_list())


def test_auth_admin_is_a_no_op_without_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    admin = SupabaseAuthAdmin(url="")
    assert admin.create_users(_users(2)) == {"created": 0, "existing": 0}
    assert admin.delete_users(["x"])["deleted"] == 0


def _asked(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "question": ["Show me sci-fi movies"] * n,
            "question_template": [2] * n,
            "conversation_id": [str(uuid.uuid4()) for _ in range(n)],
        }
    )


def test_flixbuddy_endpoint_is_throttled_retried_and_capped() -> None:
    with FlixBuddyServer(reject_first=1) as server:
        client = FlixBuddyClient(
            endpoint=server.url, min_interval_seconds=0.2, max_per_run=3, backoff_seconds=0.01
        )
        replies, report = client.answer(_asked(5))
    assert replies[:3] == ["You asked: Show me sci-fi movies Try 'Midnight Harbor'."] * 3
    assert replies[3:] == [None, None] and report.skipped_over_cap == 2
    assert report.calls == 3 and report.retries == 1 and len(server.arrivals) == 4
    # One request per interval, retries included. The client stamps each request as the limiter lets
    # it go; the server's own stamps are not used: on a busy machine the first can lag by most of a
    # second and shrink the span it sees (only lower bounds here, none that load can break).
    sent = report.call_started
    assert len(sent) == 4 and sent[-1] - sent[0] >= 3 * 0.2 - 0.02, sent
    assert all(b - a >= 0.15 for a, b in zip(sent, sent[1:])), sent  # unthrottled: milliseconds


def test_in_process_responder_answers_every_question_deterministically() -> None:
    asked = _asked(3)
    a, report = FlixBuddyClient(endpoint="").answer(asked)
    b, _ = FlixBuddyClient(endpoint="").answer(asked)
    assert a == b and report.mode == "in-process" and all("sci-fi" in r for r in a)


def _turns(n: int, turns: int) -> pl.DataFrame:
    """``n`` conversations of exactly ``turns`` messages each, one second apart."""
    asked = _asked(n).with_columns(
        pl.Series("asked_at", [dt.datetime(2026, 3, 1, 20, 0, i, tzinfo=dt.UTC) for i in range(n)]),
        pl.lit("u").alias("user_id"),
        pl.lit("p").alias("profile_id"),
        pl.lit("2026-03-01-20:00").alias("partition_key"),
    )
    return conversation_turns(asked, {turns: 1.0})


def test_multi_turn_conversations_send_the_history_and_stop_at_the_cap() -> None:
    asked = _turns(2, 3)  # six messages, the two conversations interleaved in time
    assert asked["turn"].to_list() == [0, 0, 1, 1, 2, 2]
    with FlixBuddyServer() as server:
        client = FlixBuddyClient(endpoint=server.url, min_interval_seconds=0.0, max_per_run=4)
        replies, report = client.answer(asked)
    assert report.calls == 4 and report.skipped_over_cap == 2 and replies[4:] == [None, None]
    # Each call carries the conversation so far: user, assistant, user, ...
    first = [m for m in server.bodies if m["conversation_id"] == asked["conversation_id"][0]]
    assert [len(b["messages"]) for b in first] == [1, 3]
    assert [m["role"] for m in first[1]["messages"]] == ["user", "assistant", "user"]
    assert first[1]["messages"][1]["content"] == replies[0]
    assert first[1]["messages"][2]["content"] == asked["question"][2] in FLIXBUDDY_FOLLOW_UPS
    rows = chat_rows(asked, replies, 1)
    # Answered turns keep both messages; the first unanswered message is kept alone.
    assert rows["chat_conversations"].height == 2 and rows["chat_messages"].height == 2 * 4 + 2
    assert rows["chat_messages"]["id"].n_unique() == 10


def test_turns_are_two_to_six_stable_and_off_means_one_question() -> None:
    ids = [str(uuid.UUID(int=i)) for i in range(4_000)]
    weights = TrafficConfig().flixbuddy_turn_weights
    turns = turn_counts(ids, weights)
    assert turns.min() == 2 and turns.max() == 6 and np.array_equal(turns, turn_counts(ids, weights))
    shares = np.bincount(turns, minlength=7)[2:] / turns.size
    assert shares == pytest.approx([0.35, 0.25, 0.20, 0.12, 0.08], abs=0.025)
    assert turn_counts(ids, None).tolist() == [1] * 4_000
    asked = _turns(5, 4)
    followups = asked.filter(pl.col("turn") > 0)
    assert (
        followups.group_by("conversation_id").agg(pl.col("question").n_unique())["question"].to_list()
        == [3] * 5
    )
    gaps = (
        asked.filter(pl.col("conversation_id") == asked["conversation_id"][0])["asked_at"].diff().drop_nulls()
    )
    assert (gaps == dt.timedelta(seconds=20)).all()
    replies, _ = FlixBuddyClient(endpoint="").answer(asked)
    assert len(set(replies)) > 5 and all(r.startswith("A few more sci-fi") for r in replies[5:])
    chats = chat_rows(asked, replies, 3)
    assert chats["chat_messages"].height == 2 * 4 * 5 and chats["chat_conversations"].height == 5
    # The first turn keeps the ids of a one-question conversation (re-runs of older data match).
    single = chat_rows(asked.filter(pl.col("turn") == 0).drop("turn"), replies[:5], 3)
    assert set(single["chat_messages"]["id"]) < set(chats["chat_messages"]["id"])
