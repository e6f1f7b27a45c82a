"""The runner's HTTP/1.1 transport against a real loopback server, and the pure cost arithmetic."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from simulation_assets.core.power_users.costs import CostModel, cost_breakdown, hosting_usd, stripe_fee_usd
from simulation_assets.sinks.power_users_http import new_client, run_async
from simulation_assets.target.server import LocalTarget


async def _echo(request: Request) -> Response:
    return JSONResponse(
        {"method": request.method, "body": await request.json(), "q": request.query_params.get("q")}
    )


async def _chunks(request: Request) -> Response:
    async def parts():
        for i in range(5):
            yield f"part{i};".encode()

    return StreamingResponse(parts(), media_type="text/plain")


SLOW_S = 2.5  # /slow answers this late: a timeout well below it fires first even on a loaded machine


async def _slow(request: Request) -> Response:
    await asyncio.sleep(SLOW_S)
    return JSONResponse({"late": True})


async def _close(request: Request) -> Response:
    return JSONResponse({"bye": True}, headers={"Connection": "close"})


@pytest.fixture(scope="module")
def server():
    app = Starlette(
        routes=[
            Route("/echo", _echo, methods=["POST"]),
            Route("/chunks", _chunks),
            Route("/slow", _slow),
            Route("/close", _close),
        ]
    )
    with LocalTarget(app) as target:
        yield target.base_url


def test_transport_sends_bodies_reads_chunked_and_survives_timeouts_and_closes(server):
    async def scenario() -> dict:
        async with new_client(server, max_connections=4) as client:
            echo = await client.post(client.url_for("/echo"), json={"café": 1}, params={"q": "Résidence"})
            chunked = await client.get("/chunks")
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/slow", timeout=0.2)
            after_timeout = await client.post("/echo", json=[1, 2])
            closed = await client.get("/close")
            after_close = await client.post("/echo", json={"again": True})
            many = await asyncio.gather(*(client.post("/echo", json={"i": i}) for i in range(20)))
            return {
                "echo": echo.json(),
                "chunked": chunked.text,
                "after_timeout": after_timeout.json()["body"],
                "closed": closed.json(),
                "after_close": after_close.status_code,
                "many": sorted(r.json()["body"]["i"] for r in many),
            }

    out = run_async(scenario())
    assert out["echo"] == {"method": "POST", "body": {"café": 1}, "q": "Résidence"}
    assert out["chunked"] == "part0;part1;part2;part3;part4;"
    assert out["after_timeout"] == [1, 2]
    assert out["closed"] == {"bye": True} and out["after_close"] == 200
    assert out["many"] == list(range(20))


def test_transport_reports_refused_connections_as_connect_errors():
    async def scenario() -> None:
        async with new_client("http://127.0.0.1:9") as client:
            await client.get("/health")

    with pytest.raises(httpx.ConnectError, match="could not connect to 127.0.0.1:9"):
        run_async(scenario())


def test_encoded_requests_reach_the_server_as_httpx_would_send_them(server):
    async def scenario() -> tuple[dict, dict, bytes]:
        async with new_client(server, max_connections=2) as client:
            key, data = client.encode(
                "POST", "/echo", {"q": "Résidence", "flag": True}, {"X-Who": "p"}, {"café": 1}
            )
            status, body = await client.roundtrip(key, data, 2.0)
            via_httpx = (await client.post("/echo", json={"café": 1}, params={"q": "Résidence"})).json()
            return {"status": status, **json.loads(body)}, via_httpx, data

    raw, via_httpx, data = run_async(scenario())
    assert raw == {"status": 200, **via_httpx}
    assert data.startswith(b"POST /echo?q=R%C3%A9sidence&flag=true HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nX-Who: p\r\n" in data and b"Accept-Encoding" not in data
    assert data.endswith(b'Content-Type: application/json\r\n\r\n{"caf\xc3\xa9":1}')


def test_send_nowait_answers_by_callback_times_out_and_needs_an_idle_connection(server):
    """The load path: written at once on an idle connection, answered through a callback, no task."""

    async def scenario() -> dict:
        loop = asyncio.get_running_loop()
        answers: list[tuple[int, bytes, Exception | None]] = []
        async with new_client(server, max_connections=2) as client:
            key, echo = client.encode("POST", "/echo", None, None, {"n": 1})
            cold = client.send_nowait(key, echo, 2.0, lambda *a: answers.append(a))  # nothing open yet
            await asyncio.gather(client.roundtrip(key, echo), client.roundtrip(key, echo))  # two idle now
            started = loop.time()
            sent = [
                client.send_nowait(key, echo, 2.0, lambda *a: answers.append(a)),
                client.send_nowait(key, client.encode("GET", "/slow")[1], 0.3, lambda *a: answers.append(a)),
            ]
            full = client.send_nowait(key, echo, 2.0, lambda *a: answers.append(a))  # both busy
            while len(answers) < 2:
                await asyncio.sleep(0.01)
            return {
                "cold": cold,
                "sent": sent,
                "full": full,
                "answers": answers,
                "timed_out_after": loop.time() - started,
            }

    out = run_async(scenario())
    assert out["cold"] is False and out["sent"] == [True, True] and out["full"] is False
    (status, body, error), (slow_status, _, slow_error) = out["answers"]
    assert (status, json.loads(body)["body"], error) == (200, {"n": 1}, None)
    # it timed out (before the answer that would have come at SLOW_S), and not early
    assert slow_status == 0 and isinstance(slow_error, httpx.ReadTimeout)
    assert 0.29 <= out["timed_out_after"]


def test_a_short_timeout_sent_after_a_long_one_still_fires_on_time(server):
    """One timer serves every deadline: a later, shorter deadline re-arms it earlier."""

    async def scenario() -> tuple[tuple[str, float], tuple[str, float]]:
        loop = asyncio.get_running_loop()
        async with new_client(server, max_connections=4) as client:
            key, slow = client.encode("GET", "/slow")  # answers after SLOW_S
            started = loop.time()

            async def timed(timeout: float) -> tuple[str, float]:
                try:
                    await client.roundtrip(key, slow, timeout)
                    return "answered", loop.time() - started
                except httpx.ReadTimeout:
                    return "timed out", loop.time() - started

            patient = asyncio.create_task(timed(4 * SLOW_S))
            await asyncio.sleep(0.05)
            return await timed(0.2), await patient

    # Only bounds load cannot break. Had the timer stayed armed for the patient deadline (4 x SLOW_S),
    # the short request would have been answered at SLOW_S: its time-out proves the timer re-armed.
    (short, short_at), (long, long_at) = run_async(scenario())
    assert short == "timed out" and 0.24 <= short_at
    assert long == "answered" and SLOW_S <= long_at


def test_send_nowait_resends_once_when_the_server_dropped_the_kept_alive_connection():
    """A server that answers one request per connection, then hangs up without saying so."""
    served: list[int] = []

    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        served.append(len(served))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(served[-1])), served[-1]))
        await writer.drain()
        await asyncio.sleep(0.05)  # the next request arrives on a connection about to be dropped
        writer.close()

    async def scenario() -> list:
        server = await asyncio.start_server(one_answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        answers: list = []
        async with server, new_client(f"http://127.0.0.1:{port}") as client:
            key, get = client.encode("GET", "/")
            first = await client.roundtrip(key, get, 2.0)
            assert client.send_nowait(key, get, 2.0, lambda *a: answers.append(a))
            while not answers:
                await asyncio.sleep(0.01)
        return [first, answers[0]]

    first, (status, body, error) = run_async(scenario())
    assert first == (200, b"0") and (status, body, error) == (200, b"1", None)
    assert served == [0, 1]


def test_cost_breakdown_per_user_matches_the_seed_prices():
    model = CostModel()
    users = ["Paula", "Frank", "Will"]
    request_users = np.array([0, 0, 0, 1, 1, 2])
    tokens_in = np.array([500, 500, 0, 500, 0, 500])
    tokens_out = np.array([1500, 1500, 0, 1500, 0, 1500])
    payments = np.array([0.0, 0.0, 149.0, 0.0, 69.0, 0.0])
    costs = cost_breakdown(users, request_users, tokens_in, tokens_out, payments, model)
    per_analysis = 500 * 0.00015 / 1000 + 1500 * 0.0006 / 1000
    assert per_analysis == pytest.approx(0.000975)  # seed: ~$0.001 per analysis
    assert costs.openai_usd == pytest.approx([2 * per_analysis, per_analysis, per_analysis])
    assert costs.stripe_fees_usd == pytest.approx([4.621, 2.301, 0.0])  # seed: $4.62 and $2.30
    assert costs.stripe_transactions == [1, 1, 0]
    assert hosting_usd(model) == pytest.approx(0.2333, abs=1e-4)  # seed: $7/month, $0.23/day
    assert costs.hosting_usd == pytest.approx([0.2333 / 3] * 3, abs=1e-4)
    assert costs.totals["total_usd"] == pytest.approx(4 * per_analysis + 6.922 + 7 / 30, abs=1e-6)
    assert stripe_fee_usd(np.array([0.0, -5.0]), model).tolist() == [0.0, 0.0]
