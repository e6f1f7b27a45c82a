"""The Stripe events a run's payments produce, and the Slack messages announcing them.

The scenario's four: a new signup or upgrade (``checkout.session.completed``), the subscription's
paid invoice (``invoice.payment_succeeded``; Stripe sends it with every successful subscription
charge, renewals included), a declined charge (``invoice.payment_failed``) and a subscription
ended by a downgrade to the free tier (``customer.subscription.deleted``).
"""

from __future__ import annotations

from typing import Any

import polars as pl

EVENTS = {
    "checkout.session.completed": ("✅", "New signup"),
    "invoice.payment_succeeded": ("✅", "Recurring payment"),
    "invoice.payment_failed": ("⚠️", "Payment failed"),
    "customer.subscription.deleted": ("📉", "Subscription canceled"),
}
EVENT_SCHEMA = {
    "event": pl.String,
    "user": pl.String,
    "tier": pl.String,
    "amount_usd": pl.Float64,
    "at": pl.String,
}


def stripe_events(requests: pl.DataFrame) -> pl.DataFrame:
    """Return one row per Stripe event of the run's requests (event, user, tier, amount in USD, time)."""
    two_xx = (pl.col("status") >= 200) & (pl.col("status") < 300)
    paid = requests.filter((pl.col("meter") == "payment") & two_xx & (pl.col("payment_usd") > 0))
    declined = requests.filter((pl.col("meter") == "payment") & (pl.col("status") == 402))
    canceled = requests.filter((pl.col("action_type") == "downgrade") & two_xx & (pl.col("tier") == "free"))
    columns = [pl.col("user"), pl.col("tier"), pl.col("payment_usd").alias("amount_usd"), pl.col("at")]
    frames = [
        paid.select(pl.lit("checkout.session.completed").alias("event"), *columns),
        paid.select(pl.lit("invoice.payment_succeeded").alias("event"), *columns),
        declined.select(pl.lit("invoice.payment_failed").alias("event"), *columns),
        canceled.select(pl.lit("customer.subscription.deleted").alias("event"), *columns),
    ]
    return pl.concat([f.cast(EVENT_SCHEMA) for f in frames]).sort("at", maintain_order=True)


def slack_message(event: dict[str, Any], product: str = "PropIQ") -> dict[str, Any]:
    """Return a Slack incoming-webhook payload (``text`` plus one ``mrkdwn`` block) for one event."""
    emoji, title = EVENTS[event["event"]]
    amount = f" ${event['amount_usd']:,.2f}" if event["amount_usd"] else ""
    text = f"{emoji} {product} {title}: {event['user']} ({event['tier'] or 'unknown tier'}){amount}"
    detail = f"*{emoji} {title}*\n`{event['event']}` · {event['user']} · tier {event['tier']}{amount} · {event['at']}"
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": detail}}]}
