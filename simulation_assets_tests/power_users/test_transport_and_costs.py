"""The runner's HTTP/1.1 transport against a real loopback server, and the pure cost arithmetic."""

from __future__ import annotations

import asyncio

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


async def _slow(request: Request) -> Response:
    await asyncio.sleep(1.0)
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
