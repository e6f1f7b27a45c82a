"""Canonical events -> Meta Conversions API server events (tracking plan section 11).

Each mapped event becomes one CAPI ``data`` item: ``event_name``, ``event_time``
(Unix seconds), ``event_id`` (the canonical event's id, which the browser Pixel
sends as ``eventID`` too, so Meta keeps one of the two copies), ``action_source``,
hashed ``user_data`` (SHA-256 of normalised values, as Meta requires) and, for
checkout and purchase, ``custom_data`` with ``value`` and ``currency``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import polars as pl

from simulation_assets.core.funnel.identity import stitch

# Section 11: funnel stage -> (Meta standard event, canonical event).
CAPI_EVENT_MAP: dict[str, str] = {
    "landing_view": "PageView",
    "pricing_view": "ViewContent",
    "signup_start": "Lead",
    "login_success": "CompleteRegistration",
    "checkout_started": "InitiateCheckout",
    "purchase_completed": "Purchase",
    "processing_completed": "AddToCart",  # first completed job only (optional in the plan)
}
VALUE_EVENTS = ("InitiateCheckout", "Purchase")
# Simulated people have no real e-mail; this reserved domain makes that explicit.
SYNTHETIC_EMAIL_DOMAIN = "funnel-synthetic.test"
SITE_URL = "https://app.example.com"


def sha256_normalized(value: str) -> str:
    """Return the hex SHA-256 of ``value`` trimmed and lower-cased (Meta's normalisation)."""
    return hashlib.sha256(value.strip().lower().encode("utf-8")).hexdigest()


def synthetic_email(person_id: str) -> str:
    """Return the synthetic address of a simulated person."""
    return f"{person_id}@{SYNTHETIC_EMAIL_DOMAIN}"


def select_capi_events(events: pl.DataFrame) -> pl.DataFrame:
    """Return the events that map to Meta events (first completed job only), stitched, with ``meta_event``."""
    mapped = stitch(events.filter(pl.col("event").is_in(list(CAPI_EVENT_MAP))))
    first_job = pl.col("event") != "processing_completed"
    first_job = first_job | (
        pl.col("timestamp")
        == pl.col("timestamp").filter(pl.col("event") == "processing_completed").min().over("person_id")
    )
    return mapped.filter(first_job).with_columns(
        pl.col("event").replace_strict(CAPI_EVENT_MAP).alias("meta_event")
    )


def capi_payloads(events: pl.DataFrame, test_event_code: str | None = None) -> list[dict[str, Any]]:
    """Return one CAPI server event per mapped canonical event, ordered by time."""
    rows = select_capi_events(events).sort("timestamp")
    secs = (rows["timestamp"].dt.epoch("ms") // 1000).to_list()
    ms = rows["timestamp"].dt.epoch("ms").to_list()
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows.iter_rows(named=True)):
        identified = row["user_id"] is not None or row["person_id"].startswith("usr_")
        user_data: dict[str, Any] = {"external_id": [sha256_normalized(row["person_id"])]}
        if identified:
            user_data["em"] = [sha256_normalized(synthetic_email(row["person_id"]))]
        if row.get("geo"):
            user_data["country"] = [sha256_normalized(row["geo"])]
        if row.get("fbclid"):
            user_data["fbc"] = f"fb.1.{ms[i]}.{row['fbclid']}"
        item: dict[str, Any] = {
            "event_name": row["meta_event"],
            "event_time": int(secs[i]),
            "event_id": row["event_id"],
            "action_source": "website",
            "event_source_url": SITE_URL + (row.get("page_path") or "/"),
            "user_data": user_data,
        }
        if row["meta_event"] in VALUE_EVENTS and row.get("price") is not None:
            item["custom_data"] = {
                "value": float(row["price"]),
                "currency": row.get("currency") or "USD",
                "order_id": row.get("order_id"),
                "content_ids": [row.get("sku")],
            }
        out.append(item)
    if test_event_code:
        for item in out:
            item["test_event_code"] = test_event_code
    return out


def batches(payloads: list[dict[str, Any]], size: int = 1000) -> list[dict[str, Any]]:
    """Return request bodies of at most ``size`` events each (Meta accepts up to 1,000 per request)."""
    return [{"data": payloads[i : i + size]} for i in range(0, len(payloads), size)]
