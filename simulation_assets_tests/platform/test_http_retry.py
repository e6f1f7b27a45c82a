"""The shared HTTP retry policy, against a real loopback server that answers from a script."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import dagster as dg
import httpx
import pytest

from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.http_retry import (
    STEP_RETRIES,
    TOTAL_ATTEMPTS,
    DeliveryError,
    HttpRetry,
    call,
    retry_after_seconds,
    send,
    send_async,
)
from simulation_assets_tests.platform.scripted_server import DROP, ScriptedServer

FAST = HttpRetry(max_retries=3, backoff_seconds=0.01, max_backoff_seconds=0.05)


def test_429_503_and_a_dropped_connection_are_retried_until_the_2xx() -> None:
    with ScriptedServer([429, 503, DROP]) as server, httpx.Client() as client:
        seen: list[int] = []
        response = send(
            client, "POST", server.url, FAST, json={"x": 1}, on_response=lambda r: seen.append(r.status_code)
        )
    assert response.status_code == 200
    assert server.requests == 4
    assert seen == [429, 503, 200]  # the dropped connection never produced an answer


def test_a_refusal_is_tried_once_and_tells_dagster_not_to_rerun_the_step() -> None:
    with ScriptedServer([400]) as server, httpx.Client() as client:
        with pytest.raises(DeliveryError) as caught:
            send(client, "POST", server.url, FAST, what="batch", content=b"{}")
    assert server.requests == 1
    assert caught.value.retryable is False and caught.value.allow_retries is False
    assert caught.value.status == 400
    assert "batch refused: HTTP 400" in str(caught.value)
    assert isinstance(caught.value, dg.Failure)


def test_running_out_of_the_sinks_share_leaves_the_rest_to_the_step_retry() -> None:
    policy = HttpRetry(max_retries=2, backoff_seconds=0.01, max_backoff_seconds=0.02)
    with ScriptedServer([503] * 10) as server, httpx.Client() as client:
        with pytest.raises(DeliveryError) as caught:
            send(client, "POST", server.url, policy, what="batch")
    assert server.requests == 3
    assert caught.value.retryable is True and caught.value.allow_retries is True
    assert "not accepted after 3 attempts" in str(caught.value)


def test_one_budget_bounds_the_attempts_of_sink_and_step_together() -> None:
    default = HttpRetry()
    assert NETWORK_RETRY.max_retries == STEP_RETRIES
    assert default.attempts * (1 + NETWORK_RETRY.max_retries) == TOTAL_ATTEMPTS == 12


def test_retry_after_is_honoured_as_a_lower_bound_on_the_wait() -> None:
    policy = HttpRetry(max_retries=1, backoff_seconds=0.001, max_backoff_seconds=5.0)
    with ScriptedServer([(429, {"Retry-After": "0.4"})]) as server, httpx.Client() as client:
        send(client, "POST", server.url, policy)
    gap = server.arrivals[1] - server.arrivals[0]
    assert 0.4 <= gap < 3.0


def test_retry_after_is_capped_by_the_longest_backoff() -> None:
    policy = HttpRetry(max_retries=1, backoff_seconds=0.001, max_backoff_seconds=0.2)
    with ScriptedServer([(503, {"Retry-After": "3600"})]) as server, httpx.Client() as client:
        started = time.monotonic()
        send(client, "POST", server.url, policy)
    assert time.monotonic() - started < 3.0  # not the hour the server asked for


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_backoff_doubles_with_jitter_between_half_and_one_and_a_half_times() -> None:
    policy = HttpRetry(backoff_seconds=1.0, max_backoff_seconds=30.0)
    assert [policy.wait_seconds(n, unit=0.5) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert policy.wait_seconds(3, unit=0.0) == 2.0 and policy.wait_seconds(3, unit=0.999) < 6.0
    assert policy.wait_seconds(10, unit=0.999) == 30.0  # the cap holds after jitter
    assert policy.wait_seconds(1, retry_after=12.0, unit=0.5) == 12.0


def test_no_attempt_starts_after_the_time_budget() -> None:
    """50 retries would take 2.5-5 s; the budget stops them near 0.35 s, never before 0.25 s (it stops when the
    next wait, 0.05-0.1 s with jitter, would end past it). A loaded machine only makes attempts slower, so
    fewer of them: the bounds hold at any load."""
    policy = HttpRetry(max_retries=50, backoff_seconds=0.1, max_backoff_seconds=0.1, budget_seconds=0.35)
    with ScriptedServer([503] * 100) as server, httpx.Client() as client:
        start = time.monotonic()
        with pytest.raises(DeliveryError):
            send(client, "POST", server.url, policy)
        took = time.monotonic() - start
    # at most 7 tries: each retry is decided with its wait (>= 0.05 s) still ending within 0.35 s
    assert 1 <= server.requests <= 7
    assert took >= 0.25  # the budget was spent, not cut short


def test_every_attempt_passes_the_rate_limiter_hook() -> None:
    calls: list[float] = []
    with ScriptedServer([502, 502]) as server, httpx.Client() as client:
        send(client, "POST", server.url, FAST, before_attempt=lambda: calls.append(time.monotonic()))
    assert len(calls) == server.requests == 3


def test_async_send_retries_the_same_way() -> None:
    async def run() -> int:
        async with httpx.AsyncClient() as client:
            response = await send_async(client, "POST", server.url, FAST)
            return response.status_code

    with ScriptedServer([429, DROP]) as server:
        assert asyncio.run(run()) == 200
    assert server.requests == 3


class _VendorError(Exception):
    def __init__(self, status: int | None) -> None:
        super().__init__(f"vendor said {status}")
        self.status = status


def test_call_retries_a_vendor_clients_retryable_statuses_and_accepts_done_ones() -> None:
    answers = iter([_VendorError(503), _VendorError(None), "created"])

    def create() -> str:
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item

    assert call(create, FAST, what="create user") == "created"

    def exists() -> str:
        raise _VendorError(409)

    assert call(exists, FAST, done_statuses=(409,)) is None

    def forbidden() -> str:
        raise _VendorError(403)

    with pytest.raises(DeliveryError, match=r"delete user refused \(HTTP 403\)") as caught:
        call(forbidden, FAST, what="delete user")
    assert caught.value.retryable is False


def test_invalid_policies_name_the_field() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        HttpRetry(max_retries=-1)
