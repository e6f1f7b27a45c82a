"""The HTTP client of power-user runs: httpx on the lean HTTP/1.1 transport, and the event loop.

Requests go through an ``httpx.AsyncClient`` (:class:`RunnerClient`) on
:class:`~simulation_assets.sinks.http1_transport.Http1Transport`: on the reference machine the
stock httpx client managed ~650 requests/s on loopback, several times less than Locust.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from simulation_assets.sinks.http1_transport import Http1Transport

USER_AGENT = "simulation-assets-power-users/1"


class _LazyCookies(httpx.Cookies):
    """Cookie jar that only parses responses carrying ``Set-Cookie`` (httpx parses every one)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class RunnerClient(httpx.AsyncClient):
    """httpx client tuned for many small requests: absolute URLs cached per path, lazy cookie parsing.

    Merging a relative path with ``base_url`` and parsing cookies were about half of httpx's own
    cost per request on loopback.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cookies = _LazyCookies()
        self._urls: dict[str, httpx.URL] = {}

    def url_for(self, path: str) -> httpx.URL:
        """Return the absolute URL of ``path`` below ``base_url`` (cached)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._merge_url(path)
        return url


def new_client(base_url: str, max_connections: int = 100, timeout_s: float = 10.0) -> RunnerClient:
    """Return an httpx client for ``base_url`` on the lean HTTP/1.1 transport."""
    return RunnerClient(
        base_url=base_url,
        transport=Http1Transport(max_connections),
        timeout=httpx.Timeout(timeout_s),
        headers={"User-Agent": USER_AGENT},
    )


async def probe_hooks(client: httpx.AsyncClient) -> bool:
    """Return whether the target's ``/health`` advertises simulation hooks (reference target only)."""
    try:
        response = await client.get("/health", timeout=5.0)
        return bool(response.status_code == 200 and response.json().get("simulation_hooks"))
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def run_async(coro: Any) -> Any:
    """Run ``coro`` to completion on uvloop when available, else on asyncio's default loop."""
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    except ImportError:
        return asyncio.run(coro)
