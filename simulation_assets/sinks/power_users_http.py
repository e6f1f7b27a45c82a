"""The HTTP client of power-user runs: httpx on the lean HTTP/1.1 transport, and the event loop.

Requests go through an ``httpx.AsyncClient`` (:class:`RunnerClient`) on
:class:`~simulation_assets.sinks.http1_transport.Http1Transport`: on the reference machine the
stock httpx client managed ~650 requests/s on loopback, several times less than Locust.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from simulation_assets.sinks.http1_transport import Answer, Http1Transport

USER_AGENT = "simulation-assets-power-users/1"


class _LazyCookies(httpx.Cookies):
    """Cookie jar that only parses responses carrying ``Set-Cookie`` (httpx parses every one)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class RunnerClient(httpx.AsyncClient):
    """httpx client tuned for many small requests: absolute URLs cached per path, lazy cookie parsing.

    Merging a relative path with ``base_url`` and parsing cookies were about half of httpx's own
    cost per request on loopback. Loads skip httpx altogether (:meth:`encode` and
    :meth:`roundtrip` on the same transport and connections): building and reading httpx's
    Request and Response objects was ~40 % of the load generator's CPU per request.
    """

    def __init__(self, *args: Any, transport: Http1Transport, **kwargs: Any) -> None:
        super().__init__(*args, transport=transport, **kwargs)
        self._cookies = _LazyCookies()
        self._urls: dict[str, httpx.URL] = {}
        self._lean = transport
        # send_nowait(key, data, timeout, on_answer) -> bool: write a request made by :meth:`encode`
        # on an idle connection now (False, nothing sent, if none is free); ``on_answer(status,
        # body, error)`` gets the answer (status 0 and the httpx.TransportError when none came).
        # The transport's own method, so a load's request costs no call through this class.
        self.send_nowait: Callable[[tuple[str, str, int], bytes, float, Answer], bool] = transport.send_nowait
        self._targets: dict[str, tuple[tuple[str, str, int], bytes, bytes]] = {}
        self._timeout = kwargs["timeout"]

    def url_for(self, path: str) -> httpx.URL:
        """Return the absolute URL of ``path`` below ``base_url`` (cached)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._merge_url(path)
        return url

    def _target(self, path: str) -> tuple[tuple[str, str, int], bytes, bytes]:
        """Return (connection key, request target, the fixed header lines) of ``path`` (cached)."""
        known = self._targets.get(path)
        if known is None:
            url = self.url_for(path)
            if url.scheme not in ("http", "https"):
                raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
            port = url.port or (443 if url.scheme == "https" else 80)
            host = url.host if url.port is None else f"{url.host}:{url.port}"
            fixed = [(b"Host", host.encode("ascii"))] + [
                (name, value) for name, value in self.headers.raw if name.lower() != b"accept-encoding"
            ]
            lines = b"".join(name + b": " + value + b"\r\n" for name, value in fixed)
            known = self._targets[path] = ((url.scheme, url.host, port), url.raw_path, lines)
        return known

    def encode(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> tuple[tuple[str, str, int], bytes]:
        """Return (connection key, the whole HTTP/1.1 request) for :meth:`roundtrip`.

        The request carries the client's default headers (no ``Accept-Encoding``: answers come
        uncompressed), ``params`` as the query string and ``json_body`` encoded as httpx does.
        No cookies: loads authenticate with the bearer tokens the action types send.
        """
        key, target, fixed = self._target(path)
        if params:
            query = urlencode([(k, _primitive(v)) for k, v in params.items()]).encode("ascii")
            target = target + (b"&" if b"?" in target else b"?") + query
        out = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n", fixed]
        if headers:
            out += [f"{k}: {v}\r\n".encode() for k, v in headers.items()]
        if json_body is None:
            if method in ("POST", "PUT", "PATCH"):
                out.append(b"Content-Length: 0\r\n")
            out.append(b"\r\n")
            return key, b"".join(out)
        body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        out.append(b"Content-Length: %d\r\nContent-Type: application/json\r\n\r\n" % len(body))
        out.append(body)
        return key, b"".join(out)

    async def roundtrip(
        self, key: tuple[str, str, int], data: bytes, timeout: float | None = None
    ) -> tuple[int, bytes]:
        """Send a request made by :meth:`encode`; return (status, body). Raises httpx.TransportError."""
        if timeout is None:
            timeout = self._timeout.read
        status, _, body = await self._lean.roundtrip(key, data, timeout, timeout, False)
        return status, body


def _primitive(value: Any) -> str:
    """Return a query-string value as httpx writes it (true/false, '' for None)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


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
    """Run ``coro`` to completion on uvloop when available, else on asyncio's default loop; return its result."""
    box: list[Any] = []

    async def main() -> None:
        # The result leaves through ``box``, not the main task: on Python 3.11 the runner's SIGINT
        # handling formats the finished task, result included, which took ~80 ms for a load's tables.
        box.append(await coro)

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    return box[0]
