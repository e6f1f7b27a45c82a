"""The app database rows behind funnel events: users, their credit ledger, their purchases.

What a product's own database (Supabase/PostgreSQL) would hold after the same day, derived
from the events only, so analytics and the app's tables can be reconciled:

* ``users``: one row per person who logged in (id, synthetic e-mail, signup time, source);
* ``credit_ledger``: every change of a person's credits (free credits, -1 per job, +1 per
  refunded job, credits bought or renewed) with the balance after it;
* ``purchases``: every charge (first purchase, later packs, renewals, a move to a yearly plan),
  ``refunded`` when a refund of its order followed.

Every row is flagged ``is_synthetic`` and every e-mail ends in the synthetic domain, so a
sink can prove it only ever replaces simulated rows.
"""

from __future__ import annotations

import polars as pl

from simulation_assets.core.funnel.capi import SYNTHETIC_EMAIL_DOMAIN

USERS_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "anonymous_id": pl.String(),
    "email": pl.String(),
    "email_domain_type": pl.String(),
    "signed_up_at": pl.Datetime("ms", "UTC"),
    "country": pl.String(),
    "utm_source": pl.String(),
    "utm_campaign": pl.String(),
    "is_synthetic": pl.Boolean(),
}
LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "entry_id": pl.String(),
    "user_id": pl.String(),
    "at": pl.Datetime("ms", "UTC"),
    "delta": pl.Int64(),
    "reason": pl.String(),
    "reference": pl.String(),
    "balance_after": pl.Int64(),
    "is_synthetic": pl.Boolean(),
}
PURCHASES_SCHEMA: dict[str, pl.DataType] = {
    "purchase_id": pl.String(),
    "order_id": pl.String(),
    "user_id": pl.String(),
    "at": pl.Datetime("ms", "UTC"),
    "kind": pl.String(),
    "sku": pl.String(),
    "plan": pl.String(),
    "billing_period": pl.String(),
    "amount_cents": pl.Int64(),
    "currency": pl.String(),
    "coupon": pl.String(),
    "status": pl.String(),
    "is_synthetic": pl.Boolean(),
}
TABLES: dict[str, dict[str, pl.DataType]] = {
    "users": USERS_SCHEMA,
    "credit_ledger": LEDGER_SCHEMA,
    "purchases": PURCHASES_SCHEMA,
}
KEYS = {"users": "user_id", "credit_ledger": "entry_id", "purchases": "purchase_id"}

_CHARGES = ("purchase_completed", "topup_purchased", "subscription_renewed", "plan_changed")


def app_rows(events: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Return the ``users``, ``credit_ledger`` and ``purchases`` rows of an events frame."""
    e = pl.col("event")
    users = (
        events.filter(e == "login_success")
        .sort("timestamp")
        .unique("user_id", keep="first", maintain_order=True)
        .select(
            "user_id",
            pl.col("distinct_id").alias("anonymous_id"),
            (pl.col("user_id") + "@" + SYNTHETIC_EMAIL_DOMAIN).alias("email"),
            "email_domain_type",
            pl.col("timestamp").alias("signed_up_at"),
            pl.col("geo").alias("country"),
            "utm_source",
            "utm_campaign",
            pl.lit(True).alias("is_synthetic"),
        )
    )
    first_orders = events.filter(e == "purchase_completed")["order_id"].implode()
    charged = events.filter(
        e.is_in(["purchase_completed", "subscription_renewed"])
        | ((e == "topup_purchased") & ~pl.col("order_id").is_in(first_orders))
        | ((e == "plan_changed") & (pl.col("billing_period") == "yearly"))
    )
    refunded = events.filter(e == "refund_issued")["order_id"].implode()
    purchases = charged.sort("timestamp").select(
        pl.col("event_id").alias("purchase_id"),
        "order_id",
        "user_id",
        pl.col("timestamp").alias("at"),
        pl.col("event")
        .replace({"purchase_completed": "first_purchase", "topup_purchased": "credit_pack"})
        .alias("kind"),
        "sku",
        "plan",
        "billing_period",
        (pl.col("price") * 100).round(0).cast(pl.Int64).alias("amount_cents"),
        pl.col("currency").str.to_lowercase().alias("currency"),
        "coupon",
        pl.when((e == "purchase_completed") & pl.col("order_id").is_in(refunded))
        .then(pl.lit("refunded"))
        .otherwise(pl.lit("paid"))
        .alias("status"),
        pl.lit(True).alias("is_synthetic"),
    )
    credit = pl.col("credits_added")
    moves = events.filter(
        e.is_in(["credits_granted", "job_created", "job_refunded"])
        | (e.is_in(_CHARGES) & (credit > 0) & (pl.col("event_id").is_in(purchases["purchase_id"].implode())))
    ).select(
        pl.col("event_id").alias("entry_id"),
        "user_id",
        pl.col("timestamp").alias("at"),
        pl.when(e == "job_created")
        .then(pl.lit(-1, dtype=pl.Int64))
        .when(e == "job_refunded")
        .then(pl.lit(1, dtype=pl.Int64))
        .otherwise(credit.cast(pl.Int64))
        .alias("delta"),
        pl.col("event").alias("reason"),
        pl.coalesce("job_id", "order_id").alias("reference"),
    )
    ledger = (
        moves.sort("user_id", "at", "entry_id")
        .with_columns(
            pl.col("delta").cum_sum().over("user_id").alias("balance_after"),
            pl.lit(True).alias("is_synthetic"),
        )
        .select(list(LEDGER_SCHEMA))
    )
    return {
        "users": users.cast(USERS_SCHEMA),  # type: ignore[arg-type]
        "credit_ledger": ledger.cast(LEDGER_SCHEMA),  # type: ignore[arg-type]
        "purchases": purchases.cast(PURCHASES_SCHEMA),  # type: ignore[arg-type]
    }
