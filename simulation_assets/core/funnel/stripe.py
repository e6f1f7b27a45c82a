"""Funnel monetization events as Stripe test-mode webhook events (``livemode: false``).

What a Stripe account in test mode would send a product's webhook endpoint for the same
purchases, so billing code can be exercised end to end before real payments:

=========================  ================================================================
funnel event               Stripe event type
=========================  ================================================================
purchase_completed         ``checkout.session.completed``
subscription_started       ``customer.subscription.created``
plan_changed               ``customer.subscription.updated`` (with ``previous_attributes``)
subscription_renewed       ``invoice.paid``
invoice_failed             ``invoice.payment_failed``
subscription_canceled      ``customer.subscription.deleted``
refund_issued              ``charge.refunded``
=========================  ================================================================

Ids are deterministic (from the canonical event id), so a re-sent event is the same event
and a webhook handler can deduplicate it by ``id``. Amounts are in cents.
"""

from __future__ import annotations

from typing import Any

import polars as pl

API_VERSION = "2024-06-20"
STRIPE_EVENT_TYPES: dict[str, str] = {
    "purchase_completed": "checkout.session.completed",
    "subscription_started": "customer.subscription.created",
    "plan_changed": "customer.subscription.updated",
    "subscription_renewed": "invoice.paid",
    "invoice_failed": "invoice.payment_failed",
    "subscription_canceled": "customer.subscription.deleted",
    "refund_issued": "charge.refunded",
}


def _ids(row: dict[str, Any]) -> tuple[str, str, str]:
    digits = row["event_id"][4:]
    return f"evt_test_{digits}", "cus_" + row["user_id"][4:], "sub_" + row["order_id"][4:]


def _object(row: dict[str, Any], kind: str, customer: str, subscription: str) -> dict[str, Any]:
    cents = int(round(row["price"] * 100))
    metadata = {"sku": row["sku"], "plan": row["plan"], "order_id": row["order_id"], "synthetic": "true"}
    if kind == "checkout.session.completed":
        return {
            "id": "cs_test_" + row["event_id"][4:],
            "object": "checkout.session",
            "customer": customer,
            "mode": "payment" if row["billing_period"] == "one-time" else "subscription",
            "amount_total": cents,
            "currency": row["currency"].lower(),
            "payment_status": "paid",
            "discounts": [{"coupon": row["coupon"]}] if row["coupon"] else [],
            "subscription": None if row["billing_period"] == "one-time" else subscription,
            "metadata": metadata,
            "livemode": False,
        }
    if kind.startswith("customer.subscription"):
        status = "canceled" if kind.endswith("deleted") else "active"
        return {
            "id": subscription,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "items": {"data": [{"price": {"id": "price_" + row["sku"], "unit_amount": cents,
                                          "recurring": {"interval": "year" if row["billing_period"] == "yearly" else "month"}}}]},
            "metadata": metadata,
            "livemode": False,
        }  # fmt: skip
    if kind.startswith("invoice"):
        paid = kind == "invoice.paid"
        return {
            "id": "in_test_" + row["event_id"][4:],
            "object": "invoice",
            "customer": customer,
            "subscription": subscription,
            "amount_due": cents,
            "amount_paid": cents if paid else 0,
            "currency": row["currency"].lower(),
            "status": "paid" if paid else "open",
            "attempted": True,
            "metadata": metadata,
            "livemode": False,
        }
    return {  # charge.refunded
        "id": "ch_test_" + row["order_id"][4:],
        "object": "charge",
        "customer": customer,
        "amount": cents,
        "amount_refunded": cents,
        "currency": row["currency"].lower(),
        "refunded": True,
        "metadata": metadata,
        "livemode": False,
    }


def stripe_events(events: pl.DataFrame) -> list[dict[str, Any]]:
    """Return one Stripe test-mode webhook event per monetization event of ``events``, in time order."""
    rows = events.filter(pl.col("event").is_in(list(STRIPE_EVENT_TYPES))).sort(
        "timestamp", maintain_order=True
    )
    created = (rows["timestamp"].dt.epoch("ms") // 1000).to_list()
    out = []
    for i, row in enumerate(rows.iter_rows(named=True)):
        kind = STRIPE_EVENT_TYPES[row["event"]]
        event_id, customer, subscription = _ids(row)
        data: dict[str, Any] = {"object": _object(row, kind, customer, subscription)}
        if kind == "customer.subscription.updated":
            data["previous_attributes"] = {"plan": {"nickname": row["previous_plan"]}}
        out.append(
            {
                "id": event_id,
                "object": "event",
                "api_version": API_VERSION,
                "created": int(created[i]),
                "livemode": False,
                "type": kind,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "data": data,
            }
        )
    return out
