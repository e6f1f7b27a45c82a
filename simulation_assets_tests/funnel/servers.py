"""A loopback Stripe-style webhook endpoint: checks signatures, answers 429/503 to a share of deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookServer:
    """Accepts Stripe webhook deliveries signed with ``secret``; fails ``failure_rate`` of them with 429/503."""

    def __init__(self, secret: str, failure_rate: float = 0.0, seed: int = 5) -> None:
        self.secret = secret
        self.failure_rate = failure_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.received: list[dict] = []
        self.deliveries = 0
        self.failures_injected = 0
        self.bad_signatures = 0

    def __enter__(self) -> WebhookServer:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/stripe"

    def signature_ok(self, header: str, body: bytes) -> bool:
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        expected = hmac.new(
            self.secret.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, parts.get("v1", ""))


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        owner: WebhookServer = self.server.owner  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with owner.lock:
            owner.deliveries += 1
            if owner.rng.random() < owner.failure_rate:
                owner.failures_injected += 1
                self._reply(owner.rng.choice((429, 503)), {"error": "injected"})
                return
            if not owner.signature_ok(self.headers.get("Stripe-Signature", ""), body):
                owner.bad_signatures += 1
                self._reply(400, {"error": "bad signature"})
                return
            owner.received.append(json.loads(body))
        self._reply(200, {"received": True})
