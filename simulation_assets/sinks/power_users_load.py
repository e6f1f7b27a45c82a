"""A closed-loop load: ``users`` concurrent loops hammering one path, for the benchmark."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from simulation_assets.sinks.power_users_http import new_client


async def load_loop(
    base_url: str, users: int, duration_s: float, path: str = "/health", max_connections: int | None = None
) -> dict[str, Any]:
    """Hammer ``path`` with ``users`` concurrent loops for ``duration_s``; return counts and latencies.

    The same client as scenario runs; used by the benchmark.
    """
    latencies: list[float] = []
    errors = 0
    async with new_client(base_url, max_connections or users, 10.0) as client:
        deadline = time.perf_counter() + duration_s
        t0 = time.perf_counter()
        url = client.url_for(path)

        async def user() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                    bad = response.status_code >= 400
                except httpx.HTTPError:
                    bad = True
                latencies.append((time.perf_counter() - started) * 1000.0)
                errors += bad

        await asyncio.gather(*(user() for _ in range(users)))
        seconds = time.perf_counter() - t0
    return {"requests": len(latencies), "errors": errors, "seconds": seconds, "latencies_ms": latencies}
