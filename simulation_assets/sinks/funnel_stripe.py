"""Stripe test-mode webhook events of the funnel: written to a file always, posted only when configured.

Embedded default: newline-delimited JSON under ``<data dir>/funnel/stripe/``. Real component:
with ``FUNNEL_STRIPE_WEBHOOK_URL`` and ``FUNNEL_STRIPE_WEBHOOK_SECRET`` (the endpoint's
``whsec_...`` signing secret, bound as a ``dg.EnvVar``), each event is posted the way Stripe
delivers it: one event per request with a ``Stripe-Signature: t=...,v1=...`` header
(HMAC-SHA256 of ``"<t>.<body>"``), so the product's own signature check runs. Only
test-mode events (``livemode: false``) are ever sent, and a live secret key (``sk_live_`` /
``rk_live_``) is refused. Every event must be acknowledged with 2xx: 408/429/5xx and
network errors are retried by the shared HTTP policy, anything else fails the run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import dagster as dg
from pydantic import Field

from simulation_assets.paths import data_dir
from simulation_assets.sinks.atomic_files import write_json_lines
from simulation_assets.sinks.http_retry import (
    RetrySettings,
    send,
)
from simulation_assets.sinks.meta_capi import SendReport

if TYPE_CHECKING:
    import httpx

LIVE_PREFIXES = ("sk_live_", "rk_live_", "pk_live_")


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """Return the ``Stripe-Signature`` header value Stripe would send for ``body`` at ``timestamp``."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class StripeWebhookSink(dg.ConfigurableResource, RetrySettings):
    """Writes Stripe test-mode events as JSON lines; posts them to a webhook endpoint when configured."""

    ENV: ClassVar[dict[str, str]] = {
        "webhook_url": "FUNNEL_STRIPE_WEBHOOK_URL",
        "webhook_secret": "FUNNEL_STRIPE_WEBHOOK_SECRET",
    }

    output_dir: str = Field(
        default="", description="Folder for event files; empty: <data dir>/funnel/stripe."
    )
    webhook_url: str = Field(
        default="", description="Webhook endpoint ($FUNNEL_STRIPE_WEBHOOK_URL); empty: files only."
    )
    webhook_secret: str = Field(
        default="", description="The endpoint's signing secret, whsec_... ($FUNNEL_STRIPE_WEBHOOK_SECRET)."
    )
    timeout_seconds: float = 10.0

    def folder(self) -> Path:
        """Return the folder event files go to."""
        return Path(self.output_dir).resolve() if self.output_dir else data_dir() / "funnel" / "stripe"

    def write(self, name: str, events: list[dict[str, Any]]) -> Path:
        """Replace ``<folder>/<name>.jsonl`` with one event per line; return its path."""
        return write_json_lines(self.folder() / f"{name}.jsonl", events)

    def is_live(self) -> bool:
        """Return whether a webhook endpoint and its secret are both configured."""
        return bool(self.webhook_url and self.webhook_secret)

    def validate_config(self) -> None:
        """Refuse live Stripe keys and endpoints that are not HTTP(S)."""
        if self.webhook_secret.startswith(LIVE_PREFIXES):
            raise ValueError(
                "FUNNEL_STRIPE_WEBHOOK_SECRET holds a live Stripe key: only test-mode events are sent"
            )
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError(f"FUNNEL_STRIPE_WEBHOOK_URL must be an http(s) URL, got {self.webhook_url!r}")

    def send(self, events: list[dict[str, Any]]) -> SendReport:
        """Post each event, signed; return the report. Raises ``DeliveryError`` if one is not acknowledged."""
        self.validate_config()
        if not self.is_live():
            return SendReport(
                attempted=0,
                acknowledged=0,
                requests=0,
                skipped_reason="FUNNEL_STRIPE_WEBHOOK_URL and FUNNEL_STRIPE_WEBHOOK_SECRET not both set: "
                "events written only",
            )
        if any(e.get("livemode") for e in events):
            raise ValueError(
                "refusing to send a livemode event: the funnel only sends Stripe test-mode events"
            )
        import httpx  # only when something is sent: a run that writes files only never loads it

        policy = self.retry_policy()
        requests = 0

        def count(_: httpx.Response) -> None:
            nonlocal requests
            requests += 1

        with httpx.Client(timeout=self.timeout_seconds) as client:
            for event in events:
                body = json.dumps(event, separators=(",", ":")).encode()
                # Stripe signs every delivery attempt anew; one timestamp per event is enough here.
                header = signature_header(self.webhook_secret, body, int(time.time()))
                send(
                    client,
                    "POST",
                    self.webhook_url,
                    policy,
                    what="Stripe webhook event",
                    on_response=count,
                    content=body,
                    headers={"Content-Type": "application/json", "Stripe-Signature": header},
                )
        return SendReport(attempted=len(events), acknowledged=len(events), requests=requests)
