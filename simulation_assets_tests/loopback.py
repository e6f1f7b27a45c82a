"""The loopback HTTP servers of the tests and benchmarks: start on a free port, serve from a thread, stop.

A test server subclasses ``LoopbackServer`` (its state, its ``handler_cls``) and is used as a
context manager; a handler reaches its server's state through ``self.server.owner``.
``JsonHandler`` is the quiet request handler that answers JSON.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output quiet (no line per request)."""

    def log_message(self, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))


class JsonHandler(QuietHandler):
    """Answers with JSON bodies; headers and body leave at once (no wait for the client's delayed ACK)."""

    disable_nagle_algorithm = True  # headers and body are two writes: do not wait for delayed ACKs

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class LoopbackServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) serving ``handler_cls`` from a daemon thread."""

    handler_cls: type[BaseHTTPRequestHandler]
    poll_interval = 0.5  # how often serve_forever looks for shutdown (seconds)

    def __enter__(self) -> Self:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler_cls)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(self.poll_interval,), daemon=True
        )
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"
