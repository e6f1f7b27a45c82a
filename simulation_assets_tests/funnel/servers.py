"""A loopback Stripe-style webhook endpoint: checks signatures, answers 429/503 to a share of deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading

from simulation_assets_tests.loopback import JsonHandler, LoopbackServer


class _Handler(JsonHandler):
    def do_POST(self) -> None:  # noqa: N802
        owner: WebhookServer = self.server.owner  # type: ignore[attr-defined]
        body = self._body()
        with owner.lock:
            owner.deliveries += 1
            if owner.rng.random() < owner.failure_rate:
                owner.failures_injected += 1
                status = owner.rng.choice((429, 503))
                self._reply(status, {"error": "injected"}, {"Retry-After": "0"} if status == 429 else None)
                return
            if not owner.signature_ok(self.headers.get("Stripe-Signature", ""), body):
                owner.bad_signatures += 1
                self._reply(400, {"error": "bad signature"})
                return
            owner.received.append(json.loads(body))
        self._reply(200, {"received": True})


class WebhookServer(LoopbackServer):
    """Accepts Stripe webhook deliveries signed with ``secret``; fails ``failure_rate`` of them with 429/503."""

    handler_cls = _Handler

    def __init__(self, secret: str, failure_rate: float = 0.0, seed: int = 5) -> None:
        self.secret = secret
        self.failure_rate = failure_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.received: list[dict] = []
        self.deliveries = 0
        self.failures_injected = 0
        self.bad_signatures = 0

    @property
    def url(self) -> str:
        return f"{super().url}/webhooks/stripe"

    def signature_ok(self, header: str, body: bytes) -> bool:
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        expected = hmac.new(
            self.secret.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, parts.get("v1", ""))
