"""A loopback HTTP server that answers from a script: one (status, headers) per request, then 200s."""

from __future__ import annotations

import socket
import threading
import time

from simulation_assets_tests.loopback import LoopbackServer, QuietHandler

DROP = -1  # script entry: close the connection without answering (a network error for the client)


class _Handler(QuietHandler):
    def do_POST(self) -> None:  # noqa: N802
        owner: ScriptedServer = self.server.owner  # type: ignore[attr-defined]
        body = self._body()
        with owner.lock:
            n = len(owner.arrivals)
            owner.arrivals.append(time.monotonic())
            owner.bodies.append(body)
            entry = owner.script[n] if n < len(owner.script) else 200
        status, headers = entry if isinstance(entry, tuple) else (entry, {})
        if status == DROP:
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        data = b'{"ok": true}'
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST  # noqa: N815


class ScriptedServer(LoopbackServer):
    """Answers request n with ``script[n]`` (status or (status, headers)); 200 after the script ends."""

    handler_cls = _Handler
    poll_interval = 0.05

    def __init__(self, script: list[int | tuple[int, dict[str, str]]] | None = None) -> None:
        self.script = list(script or [])
        self.arrivals: list[float] = []
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{super().url}/"

    @property
    def requests(self) -> int:
        return len(self.arrivals)
