"""Slack-compatible webhook notifications of a run's Stripe events (incoming-webhook JSON payloads)."""

from __future__ import annotations

import dagster as dg
import httpx
import polars as pl
from pydantic import Field

from simulation_assets.core.power_users.stripe_events import slack_message
from simulation_assets.sinks.http_retry import (
    BACKOFF_SECONDS,
    MAX_BACKOFF_SECONDS,
    RETRIES_PER_STEP,
    HttpRetry,
    send,
)
from simulation_assets.sinks.rate_limit import RateLimiter


class StripeEventWebhook(dg.ConfigurableResource):
    """Posts one Slack-style message per Stripe event to ``url``; posts nothing when ``url`` is empty."""

    url: str = Field(default="", description="incoming-webhook URL (env POWER_USERS_SLACK_WEBHOOK_URL)")
    per_second: float = Field(default=1.0, gt=0, description="messages per second (Slack allows about one)")
    max_retries: int = Field(default=RETRIES_PER_STEP, ge=0)
    backoff_seconds: float = Field(default=BACKOFF_SECONDS, ge=0)
    max_backoff_seconds: float = Field(default=MAX_BACKOFF_SECONDS, ge=0)

    def notify(self, events: pl.DataFrame, product: str = "PropIQ") -> int:
        """Post ``events`` (rows of ``core.power_users.stripe_events``); return how many were accepted."""
        if not self.url or events.is_empty():
            return 0
        policy = HttpRetry(
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
        )
        limiter = RateLimiter.per_second(self.per_second)
        sent = 0
        with httpx.Client(timeout=10.0) as client, limiter:
            for event in events.iter_rows(named=True):
                send(
                    client,
                    "POST",
                    self.url,
                    policy,
                    what="Slack notification",
                    before_attempt=limiter.acquire,
                    json=slack_message(event, product),
                )
                sent += 1
        return sent
