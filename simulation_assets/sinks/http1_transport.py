"""A lean HTTP/1.1 keep-alive transport for httpx: asyncio protocols with the httptools parser.

Power-user runs send many small requests; httpx's default transport (httpcore + h11, pure
Python) spends most of each request's time in parsing and pool bookkeeping. This transport
writes the request in one call, parses the answer with httptools (C, the parser uvicorn uses)
and keeps idle connections per host. It speaks plain HTTP and HTTPS (asyncio TLS); it does not
do proxies or HTTP/2.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import defaultdict

import httptools
import httpx


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False
        self._waiter: asyncio.Future[None] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self.received = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0
        self.keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Requests are written whole; never let Nagle hold one back waiting for an ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self._parser is None:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(httpx.RemoteProtocolError("server closed the connection before answering"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self._parser is not None
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self._parser = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    async def exchange(self, data: bytes, timeout: float | None) -> bool:
        """Send ``data`` and wait for the whole response; return whether any byte came back.

        Raises httpx.ReadTimeout after ``timeout`` seconds (and closes the connection, whose late
        answer could otherwise be read as the next request's).
        """
        loop = asyncio.get_running_loop()
        self.used, self.received = True, False
        self.headers, self.body, self.status = [], [], 0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter = loop.create_future()
        assert self.transport is not None
        self.transport.write(data)
        timer = loop.call_later(timeout, self._expire) if timeout else None
        try:
            await self._waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None
        return self.received

    def _expire(self) -> None:
        self._fail(httpx.ReadTimeout("no response in time"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Http1Transport(httpx.AsyncBaseTransport):
    """httpx transport: HTTP/1.1 with keep-alive, at most ``max_connections`` per host."""

    def __init__(self, max_connections: int = 100, verify: bool | ssl.SSLContext = True) -> None:
        self._limit = max_connections
        self._idle: dict[tuple[str, str, int], list[_Connection]] = defaultdict(list)
        self._slots: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._ssl: ssl.SSLContext | None = None
        self._verify = verify

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            if isinstance(self._verify, ssl.SSLContext):
                self._ssl = self._verify
            else:
                self._ssl = ssl.create_default_context()
                if not self._verify:
                    self._ssl.check_hostname = False
                    self._ssl.verify_mode = ssl.CERT_NONE
        return self._ssl

    async def _connect(self, key: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls = self._ssl_context() if scheme == "https" else None
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                ),
                timeout,
            )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"could not connect to {host}:{port} in {timeout} s") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"could not connect to {host}:{port}: {exc.strerror or exc}") from exc
        return conn

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on an idle or new connection and return the complete response."""
        try:
            return await self._send(request)
        except httpx.TransportError as exc:
            exc.request = request
            raise

    async def _send(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        if request.method == "HEAD":
            raise httpx.UnsupportedProtocol("HEAD is not supported by this transport")
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout") or {}
        body = await request.aread()
        target = url.raw_path
        head = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        data = b"".join(head) + body
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self._limit)
        async with slots:
            for attempt in (1, 2):
                idle = self._idle[key]
                conn = None
                while idle:
                    candidate = idle.pop()
                    if not candidate.closed:
                        conn = candidate
                        break
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(key, timeouts.get("connect"))
                try:
                    await conn.exchange(data, timeouts.get("read"))
                except httpx.RemoteProtocolError:
                    conn.close()
                    # A kept-alive connection the server had already closed: send once more on a fresh one.
                    if reused and attempt == 1 and not conn.received:
                        continue
                    raise
                except BaseException:
                    conn.close()
                    raise
                break
            if conn.keep_alive and not conn.closed:
                self._idle[key].append(conn)
            else:
                conn.close()
            return httpx.Response(
                conn.status,
                headers=conn.headers,
                content=b"".join(conn.body),
                request=request,
                extensions={"http_version": b"HTTP/1.1"},
            )

    async def aclose(self) -> None:
        """Close every idle connection."""
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
