"""A loopback HTTP server that answers from a script: one (status, headers) per request, then 200s."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DROP = -1  # script entry: close the connection without answering (a network error for the client)


class ScriptedServer:
    """Answers request n with ``script[n]`` (status or (status, headers)); 200 after the script ends."""

    def __init__(self, script: list[int | tuple[int, dict[str, str]]] | None = None) -> None:
        self.script = list(script or [])
        self.arrivals: list[float] = []
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    def __enter__(self) -> ScriptedServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
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

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    @property
    def requests(self) -> int:
        return len(self.arrivals)
