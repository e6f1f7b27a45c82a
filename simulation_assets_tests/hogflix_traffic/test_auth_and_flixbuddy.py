"""Supabase auth admin users and the FlixBuddy endpoint, against loopback servers."""

from __future__ import annotations

import uuid

import jwt
import polars as pl
import pytest

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
    # it go (the server's own stamps can lag by most of a second on a busy machine); the server's
    # span still covers the intervals.
    sent = report.call_started
    assert len(sent) == 4 and sent[-1] - sent[0] >= 3 * 0.2 - 0.02, sent
    assert all(b - a >= 0.15 for a, b in zip(sent, sent[1:])), sent  # unthrottled: milliseconds
    assert server.arrivals[-1] - server.arrivals[0] >= 3 * 0.2 - 0.05


def test_in_process_responder_answers_every_question_deterministically() -> None:
    asked = _asked(3)
    a, report = FlixBuddyClient(endpoint="").answer(asked)
    b, _ = FlixBuddyClient(endpoint="").answer(asked)
    assert a == b and report.mode == "in-process" and all("sci-fi" in r for r in a)
