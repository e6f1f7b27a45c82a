"""A loopback API that holds every pricing request for a while and counts how many it holds at once."""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HOLD_S = float(os.environ.get("CROWD_HOLD_S", "3.5"))
busy = {"now": 0, "max": 0, "logins": 0}


async def login(request: Request) -> JSONResponse:
    busy["logins"] += 1
    return JSONResponse({"access_token": "t"})


async def hold(request: Request) -> JSONResponse:
    busy["now"] += 1
    busy["max"] = max(busy["max"], busy["now"])
    await asyncio.sleep(HOLD_S)
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
