"""A loopback API that holds pricing requests until CROWD_SIZE are held at once (or CROWD_HOLD_S passed).

It counts the most requests it ever held together: the proof that a generator keeps that many
virtual users busy at the same moment.
"""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HOLD_S = float(os.environ.get("CROWD_HOLD_S", "9"))
SIZE = int(os.environ.get("CROWD_SIZE", "2000"))
busy = {"now": 0, "max": 0, "logins": 0}
_everyone_here = asyncio.Event()


async def login(request: Request) -> JSONResponse:
    busy["logins"] += 1
    return JSONResponse({"access_token": "t"})


async def hold(request: Request) -> JSONResponse:
    busy["now"] += 1
    busy["max"] = max(busy["max"], busy["now"])
    if busy["now"] >= SIZE:
        _everyone_here.set()
    try:
        await asyncio.wait_for(_everyone_here.wait(), HOLD_S)
    except TimeoutError:
        pass
    busy["now"] -= 1
    return JSONResponse({"ok": True})


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(busy)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/auth/login", login, methods=["POST"]),
        Route("/api/v1/pricing", hold),
        Route("/stats", stats),
        Route("/health", health),
    ]
)
