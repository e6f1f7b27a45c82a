"""A lean HTTP/1.1 keep-alive transport for httpx: asyncio protocols with the httptools parser.

Power-user runs send many small requests; httpx's default transport (httpcore + h11, pure
Python) spends most of each request's time in parsing and pool bookkeeping. This transport
writes the request in one call, parses the answer with httptools (C, the parser uvicorn uses)
and keeps idle connections per host. It speaks plain HTTP and HTTPS (asyncio TLS); it does not
do proxies or HTTP/2.

Besides httpx's interface it offers two lower ones for load generators, which send already
encoded requests: :meth:`Http1Transport.roundtrip` (await the answer) and
:meth:`Http1Transport.send_nowait` (write on an idle connection now, a callback gets the answer:
no task, future or coroutine per request).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import defaultdict, deque
from collections.abc import Callable

import httptools
import httpx

# Read timeouts: every request in flight has a deadline, and one timer is armed for the earliest;
# it fires about once per timeout while requests keep being answered in time, instead of a timer
# armed and cancelled for every request.

Key = tuple[str, str, int]  # scheme, host, port
# called with (status, body, None) or, when no answer came, (0, b"", the httpx.TransportError)
Answer = Callable[[int, bytes, Exception | None], None]


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request in flight at a time, one parser for all its answers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pool: Http1Transport | None = None
        self.key: Key = ("", "", 0)
        self.closed = False
        self.used = False
        self._waiter: asyncio.Future[None] | None = None
        self.on_answer: Answer | None = None  # send_nowait's callback for the request in flight
        self.request, self.read_timeout = b"", None
        # llhttp starts over after each complete answer on a kept-alive connection. Two parsers,
        # used one answer at a time: one that hands over the headers, and one for callers that
        # read only the status and body (a load), which then costs no call or tuple per header.
        self._full = httptools.HttpResponseParser(self)
        self._lean = httptools.HttpResponseParser(_BodyOnly(self))
        self._parser = self._full
        self.awaiting = False  # a request was sent and its answer is not complete yet
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
        if not self.awaiting:  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
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
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self.awaiting = False
        if self.on_answer is not None:
            assert self.pool is not None
            self.pool._answered(self, None)
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        self.awaiting = False
        if self.on_answer is not None:
            assert self.pool is not None
            self.pool._answered(self, exc)
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _write(self, data: bytes, headers: bool = True) -> None:
        assert self.transport is not None
        self.used, self.received, self.awaiting = True, False, True
        self.headers, self.body, self.status = [], [], 0
        self._parser = self._full if headers else self._lean
        self.transport.write(data)

    async def exchange(self, data: bytes, headers: bool = True) -> bool:
        """Send ``data`` and wait for the whole response; return whether any byte came back.

        ``headers`` False leaves the answer's headers unread. Raises httpx.ReadTimeout when
        :meth:`expire` is called first (the transport's timeout timer).
        """
        assert self.loop is not None
        self._waiter = self.loop.create_future()
        self._write(data, headers)
        try:
            await self._waiter
        finally:
            self._waiter = None
        return self.received

    def content(self) -> bytes:
        """Return the body of the last answer."""
        return self.body[0] if len(self.body) == 1 else b"".join(self.body)

    def expire(self) -> None:
        """Fail the request in flight with ReadTimeout and close the connection.

        Its late answer could otherwise be read as the next request's.
        """
        self.close()
        self._fail(httpx.ReadTimeout("no response in time"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _BodyOnly:
    """The callbacks of a parser that skips headers: the connection's, less ``on_header``."""

    def __init__(self, conn: _Connection) -> None:
        self.on_body = conn.on_body
        self.on_message_complete = conn.on_message_complete


class Http1Transport(httpx.AsyncBaseTransport):
    """httpx transport: HTTP/1.1 with keep-alive, at most ``max_connections`` busy per host."""

    def __init__(self, max_connections: int = 100, verify: bool | ssl.SSLContext = True) -> None:
        self._limit = max_connections
        self._idle: dict[Key, list[_Connection]] = defaultdict(list)
        self._busy: dict[Key, int] = defaultdict(int)  # requests in flight per host
        self._queued: dict[Key, deque[asyncio.Future[None]]] = defaultdict(deque)  # waiting for room
        self._ssl: ssl.SSLContext | None = None
        self._verify = verify
        self._deadlines: dict[_Connection, float] = {}  # connections awaiting an answer, by loop time
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None
        self._sweep_at = 0.0
        self._resends: set[asyncio.Task] = set()

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

    async def _connect(self, key: Key, timeout: float | None) -> _Connection:
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
        conn.loop, conn.pool, conn.key = loop, self, key
        return conn

    # -- room per host: a counter, and futures for whoever waits (asyncio.Semaphore cost more per request)
    async def _acquire(self, key: Key) -> None:
        while self._busy[key] >= self._limit:
            room = asyncio.get_running_loop().create_future()
            self._queued[key].append(room)
            try:
                await room
            except asyncio.CancelledError:
                if room.done() and not room.cancelled():
                    self._wake(key)  # pass the room on
                raise
        self._busy[key] += 1

    def _release(self, key: Key) -> None:
        self._busy[key] -= 1
        self._wake(key)

    def _wake(self, key: Key) -> None:
        queue = self._queued.get(key)
        while queue:
            room = queue.popleft()
            if not room.done():
                room.set_result(None)
                return

    def _idle_connection(self, key: Key) -> _Connection | None:
        idle = self._idle[key]
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def _watch(self, conn: _Connection, read_timeout: float | None) -> None:
        """Give ``conn``'s request a deadline; arm the timeout timer if this one is the earliest."""
        if not read_timeout:
            return
        loop = conn.loop
        assert loop is not None
        deadline = self._deadlines[conn] = loop.time() + read_timeout
        if self._sweep is None or self._sweep_loop is not loop or deadline < self._sweep_at:
            self._arm(loop, deadline)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep_loop, self._sweep_at = loop, at
        self._sweep = loop.call_at(at, self._expire_late)

    def _expire_late(self) -> None:
        """Expire every request past its deadline; arm the timer for the earliest one left."""
        self._sweep = None
        loop = self._sweep_loop
        if not self._deadlines or loop is None:
            return
        now = loop.time() + 0.001  # the loop's timers may fire up to a millisecond early
        for conn, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[conn]
                conn.expire()
        if self._deadlines:
            self._arm(loop, min(self._deadlines.values()))

    def _put_back(self, conn: _Connection) -> None:
        if conn.keep_alive and not conn.closed:
            self._idle[conn.key].append(conn)
        else:
            conn.close()

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
        head = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        status, headers, content = await self.roundtrip(
            key, b"".join(head) + body, timeouts.get("connect"), timeouts.get("read")
        )
        return httpx.Response(
            status,
            headers=headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def roundtrip(
        self,
        key: Key,
        data: bytes,
        connect_timeout: float | None,
        read_timeout: float | None,
        headers: bool = True,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send the whole request ``data`` to ``key`` (scheme, host, port); return (status, headers, body).

        Uses an idle kept-alive connection when there is one (at most ``max_connections`` per host
        are busy at once). ``headers`` False returns no headers (they are not read). Raises
        httpx.TransportError subclasses (ConnectError, ReadTimeout, ...).
        """
        await self._acquire(key)
        try:
            for attempt in (1, 2):
                conn = self._idle_connection(key)
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(key, connect_timeout)
                self._watch(conn, read_timeout)
                try:
                    await conn.exchange(data, headers)
                except httpx.RemoteProtocolError:
                    conn.close()
                    # A kept-alive connection the server had already closed: send once more on a fresh one.
                    if reused and attempt == 1 and not conn.received:
                        continue
                    raise
                except BaseException:
                    conn.close()
                    raise
                finally:
                    self._deadlines.pop(conn, None)
                break
            self._put_back(conn)
            return conn.status, conn.headers, conn.content()
        finally:
            self._release(key)

    def send_nowait(self, key: Key, data: bytes, read_timeout: float | None, on_answer: Answer) -> bool:
        """Write ``data`` on an idle connection to ``key`` now; ``on_answer`` gets the answer later.

        Returns False, having sent nothing, when the host has no idle connection or is at
        ``max_connections`` (then use :meth:`roundtrip`). A kept-alive connection the server had
        closed is retried once on a fresh one, as :meth:`roundtrip` does.
        """
        if self._busy[key] >= self._limit:
            return False
        conn = self._idle_connection(key)
        if conn is None:
            return False
        self._busy[key] += 1
        conn.on_answer, conn.request, conn.read_timeout = on_answer, data, read_timeout
        self._watch(conn, read_timeout)
        conn._write(data, False)
        return True

    def _answered(self, conn: _Connection, error: Exception | None) -> None:
        """Finish a :meth:`send_nowait` request: free its room and connection, call its callback."""
        on_answer, data = conn.on_answer, conn.request
        assert on_answer is not None
        conn.on_answer, conn.request = None, b""
        self._deadlines.pop(conn, None)
        key = conn.key
        self._busy[key] -= 1
        if self._queued.get(key):
            self._wake(key)
        if error is None:  # the common case, inlined (this runs once per request of a load)
            if conn.keep_alive and not conn.closed:
                self._idle[key].append(conn)
            else:
                conn.close()
            body = conn.body
            on_answer(conn.status, body[0] if len(body) == 1 else b"".join(body), None)
            return
        conn.close()
        if isinstance(error, httpx.RemoteProtocolError) and not conn.received:
            resend = asyncio.ensure_future(
                self._resend(conn.key, data, conn.read_timeout, on_answer), loop=conn.loop
            )
            self._resends.add(resend)
            resend.add_done_callback(self._resends.discard)
            return
        on_answer(0, b"", error)

    async def _resend(self, key: Key, data: bytes, read_timeout: float | None, on_answer: Answer) -> None:
        try:
            status, _, body = await self.roundtrip(key, data, read_timeout, read_timeout, False)
        except httpx.TransportError as exc:
            on_answer(0, b"", exc)
        else:
            on_answer(status, body, None)

    async def aclose(self) -> None:
        """Close every idle connection."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
