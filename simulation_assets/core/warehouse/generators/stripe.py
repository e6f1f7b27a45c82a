"""Stripe billing: customers, prices, subscriptions and their items, invoices, charges and the event trail.

Stripe subscriptions mirror the app's subscriptions one to one; each is invoiced per period of its
price, 95 % of invoices are paid, and every paid invoice has one successful charge of its amount.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.warehouse import geography
from simulation_assets.core.warehouse.generators import health
from simulation_assets.core.warehouse.generators.text import concat, strings
from simulation_assets.core.warehouse.sampling import (
    DAY,
    HOUR,
    MONTH,
    NULL_TS,
    allocate,
    apportion,
    choice,
    labels,
    local_index,
    prefix_ids,
    to_seconds,
    ts,
    ts_nullable,
)

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse

EVENT_TYPES = (
    "customer.created", "customer.updated", "customer.subscription.created", "customer.subscription.updated",
    "customer.subscription.deleted", "invoice.created", "invoice.finalized", "invoice.paid",
    "invoice.payment_failed", "charge.succeeded",
)  # fmt: skip


def customers(wh: Warehouse) -> pl.DataFrame:
    """One Stripe customer per account, with the account id in its metadata."""
    table, rng = wh.whole("accounts"), wh.rng("stripe_customers")
    n = table.height
    ids = np.arange(1, n + 1)
    return pl.DataFrame(
        {
            "customer_id": prefix_ids("cus_", ids),
            "account_id": ids,
            "email": concat("billing@", table["domain"]),
            "name": table["account_name"],
            "currency": np.full(n, "usd"),
            "delinquent": rng.random(n) < 0.02,
            "metadata": concat('{"account_id": ', pl.Series(ids), "}"),
            "created": table["created_at"],
        }
    )


def _price_rows(wh: Warehouse) -> pl.DataFrame:
    spec = wh.cfg.subscriptions
    rows = []
    for kind, items in (("plan", spec.plan_monthly_cents), ("addon", spec.addon_monthly_cents)):
        for name, cents in items.items():
            for interval in ("month", "year"):
                amount = cents if interval == "month" else round(cents * 12 * (1 - spec.annual_discount))
                rows.append(
                    {
                        "price_id": f"price_{name.lower()}_{interval}ly",
                        "product_id": f"prod_{name.lower()}",
                        "nickname": f"{name.replace('_', ' ').title()} ({interval}ly)",
                        "plan": name if kind == "plan" else f"addon:{name}",
                        "recurring_interval": interval,
                        "unit_amount": amount,
                    }
                )
    return pl.DataFrame(rows)


def prices(wh: Warehouse) -> pl.DataFrame:
    """The 12 prices: three plans and three add-ons, monthly and annual."""
    table = _price_rows(wh)
    n = table.height
    return table.with_columns(
        currency=pl.lit("usd"), active=pl.lit(True), created=ts(np.full(n, wh.history_start - 30 * DAY))
    )


def periods(wh: Warehouse) -> dict[str, np.ndarray]:
    """Return the billing anchor, period length, period count and end of every Stripe subscription."""
    subs = wh.whole("subscriptions")
    started = to_seconds(subs["started_at"])
    trial_end = to_seconds(subs["trial_end"])
    ended = to_seconds(subs["ended_at"])
    end = np.where(ended == NULL_TS, wh.history_end, ended)
    expired = subs["status"].to_numpy() == "trial_expired"
    paid_from = np.where(trial_end != NULL_TS, trial_end, started)
    period = np.where(subs["billing_interval"].to_numpy() == "year", 12 * MONTH, MONTH)
    count = np.where(expired, 0, np.maximum(np.ceil((end - paid_from) / period), 0)).astype(np.int64)
    created = started + wh.rng("stripe_subscriptions", 0, "lag").integers(0, 600, len(started))
    return {"paid_from": paid_from, "period": period, "periods": count, "end": end,
            "created": created, "account": subs["account_id"].to_numpy() - 1}  # fmt: skip


def subscriptions(wh: Warehouse) -> pl.DataFrame:
    """Stripe subscriptions mirroring the app's, with the current billing period."""
    subs = wh.whole("subscriptions")
    billing = wh.stripe_periods
    n = subs.height
    status = subs["status"].to_numpy()
    ref = np.maximum(billing["end"] - 1, billing["paid_from"])
    index = np.maximum((ref - billing["paid_from"]) // billing["period"], 0)
    period_start = np.where(
        status == "trial_expired",
        to_seconds(subs["trial_start"]),
        billing["paid_from"] + index * billing["period"],
    )
    period_end = np.where(status == "trial_expired", billing["end"], period_start + billing["period"])
    ended = subs["ended_at"].is_not_null().to_numpy()
    ended_s = to_seconds(subs["ended_at"])
    return pl.DataFrame(
        {
            "stripe_subscription_id": prefix_ids("sub_", np.arange(1, n + 1)),
            "customer_id": prefix_ids("cus_", billing["account"] + 1),
            "subscription_id": subs["subscription_id"],
            "status": np.where(status == "trial_expired", "incomplete_expired", status),
            "billing_interval": subs["billing_interval"],
            "created": ts(billing["created"]),
            "start_date": subs["started_at"],
            "trial_start": subs["trial_start"],
            "trial_end": subs["trial_end"],
            "current_period_start": ts(period_start),
            "current_period_end": ts(period_end),
            "canceled_at": ts_nullable(ended_s - DAY, ended),
            "ended_at": subs["ended_at"],
        }
    )


def subscription_items(wh: Warehouse) -> pl.DataFrame:
    """The plan item of every subscription plus add-on items (more for bigger tiers)."""
    rng, n_items = wh.rng("stripe_subscription_items"), wh.rows["stripe_subscription_items"]
    subs = wh.whole("subscriptions")
    billing = wh.stripe_periods
    weight = subs["plan_tier"].replace_strict(wh.cfg.accounts.size_weight, return_dtype=pl.Float64).to_numpy()
    addons = list(wh.cfg.subscriptions.addon_monthly_cents)
    counts = allocate(rng, n_items, weight, 1, 1 + len(addons))
    parent, position = local_index(counts)
    interval = subs["billing_interval"].to_numpy()[parent]
    plan = subs["plan_tier"].to_numpy()[parent]
    addon = np.array(addons + [""])[np.maximum(position - 1, 0)]
    name = np.where(position == 0, np.char.lower(plan.astype(str)), addon)
    price = concat("price_", strings(name), "_", strings(interval), "ly")
    created = billing["created"][parent] + np.where(
        position == 0,
        0,
        (rng.random(len(parent)) * 0.3 * (billing["end"][parent] - billing["created"][parent])).astype(
            np.int64
        ),
    )
    quantity = np.where(position == 0, 1, 1 + rng.integers(0, 3, len(parent)))
    return pl.DataFrame(
        {
            "subscription_item_id": prefix_ids("si_", np.arange(1, len(parent) + 1)),
            "stripe_subscription_id": prefix_ids("sub_", parent + 1),
            "price_id": price,
            "quantity": quantity.astype(np.int32),
            "created": ts(created),
        }
    )


def invoice_plan(wh: Warehouse) -> dict[str, np.ndarray]:
    """Return every invoice's subscription, period, amount and payment (shared by invoices, charges, events)."""
    spec, rng = wh.cfg.subscriptions, wh.rng("stripe_invoices")
    n_invoices, n_paid = wh.rows["stripe_invoices"], wh.rows["stripe_charges"]
    if n_paid > n_invoices:
        raise ValueError("stripe_charges cannot exceed stripe_invoices (one charge per paid invoice)")
    billing = wh.stripe_periods
    subs = wh.whole("subscriptions")
    per_subscription = (
        apportion(n_invoices, billing["periods"].astype(float))
        if billing["periods"].sum()
        else apportion(n_invoices, np.ones(len(billing["periods"])))
    )
    parent, position = local_index(per_subscription)
    index = np.maximum(billing["periods"] - per_subscription, 0)[parent] + position
    manual = index >= billing["periods"][parent]
    span = np.maximum(billing["end"] - billing["paid_from"], DAY)[parent]
    m = len(parent)
    period_start = np.where(
        manual,
        billing["paid_from"][parent] + (rng.random(m) * (span - DAY)).astype(np.int64),
        billing["paid_from"][parent] + index * billing["period"][parent],
    )
    period_end = np.where(manual, period_start + DAY, period_start + billing["period"][parent])
    created = np.minimum(period_start + 600 + rng.integers(0, 3000, m), wh.history_end - 1)
    created = np.maximum(created, billing["created"][parent])
    mrr = subs["mrr_usd"].to_numpy()[parent]
    annual = billing["period"][parent] > MONTH
    amount = np.round(mrr * 100 * np.where(annual, 12 * (1 - spec.annual_discount), 1.0)).astype(np.int64)
    amount = np.where(manual, np.round(amount * 0.2), amount).astype(np.int64)
    # unpaid invoices: exactly m - n_paid of them, drawn with weight exp(-sensitivity x health) of the
    # account in the invoice's month (exponential keys over weights: a weighted draw without replacement)
    account = billing["account"][parent]
    health_now = wh.account_health[account, health.month_of(wh, period_start)].astype(np.float64)
    failing = np.exp(-wh.cfg.health.payment_failure_sensitivity * health_now)
    paid = np.ones(m, dtype=bool)
    paid[np.argsort(rng.exponential(1.0, m) / failing, kind="stable")[: m - n_paid]] = False
    late = rng.random(m) < spec.late_payment_share
    lag = np.where(late, (3 + 27 * rng.random(m)) * DAY, HOUR + rng.random(m) * 47 * HOUR).astype(np.int64)
    paid_at = np.maximum(np.minimum(created + lag, wh.history_end - 1), created)
    return {"parent": parent, "idx": index, "manual": manual, "period_start": period_start,
            "period_end": period_end, "created": created, "amount": amount, "paid": paid,
            "late": late, "paid_at": paid_at}  # fmt: skip


def invoices(wh: Warehouse) -> pl.DataFrame:
    """Invoices per billing period: paid, or open / uncollectible / void after four attempts."""
    plan, rng = wh.invoice_plan, wh.rng("stripe_invoices", 0, "status")
    billing = wh.stripe_periods
    m = len(plan["parent"])
    recent = plan["created"] > wh.history_end - 30 * DAY
    unpaid_status = np.where(recent, "open", np.where(rng.random(m) < 0.6, "uncollectible", "void"))
    status = np.where(plan["paid"], "paid", unpaid_status)
    reason = np.where(
        plan["manual"], "manual", np.where(plan["idx"] == 0, "subscription_create", "subscription_cycle")
    )
    paid_amount = np.where(plan["paid"], plan["amount"], 0)
    attempts = np.where(plan["paid"], np.where(plan["late"], 2 + rng.integers(0, 3, m), 1), 4).astype(
        np.int32
    )
    ids = np.arange(1, m + 1)
    return pl.DataFrame(
        {
            "invoice_id": prefix_ids("in_", ids),
            "customer_id": prefix_ids("cus_", billing["account"][plan["parent"]] + 1),
            "stripe_subscription_id": prefix_ids("sub_", plan["parent"] + 1),
            "number": concat("INV-", pl.Series(ids).cast(pl.String).str.zfill(8)),
            "status": status,
            "billing_reason": reason,
            "amount_due": plan["amount"],
            "amount_paid": paid_amount,
            "amount_remaining": plan["amount"] - paid_amount,
            "currency": np.full(m, "usd"),
            "attempt_count": attempts,
            "period_start": ts(plan["period_start"]),
            "period_end": ts(plan["period_end"]),
            "created": ts(plan["created"]),
            "due_date": ts(plan["created"] + 7 * DAY),
            "paid_at": ts_nullable(plan["paid_at"], plan["paid"]),
        }
    )


def charges(wh: Warehouse) -> pl.DataFrame:
    """One successful charge per paid invoice, for the amount paid, with the account's payment method."""
    plan, rng = wh.invoice_plan, wh.rng("stripe_charges")
    billing = wh.stripe_periods
    paid_invoice = np.flatnonzero(plan["paid"])
    n = len(paid_invoice)
    account = billing["account"][plan["parent"][paid_invoice]]
    methods = wh.cfg.subscriptions.payment_methods
    method_of_account = choice(wh.rng("stripe_charges", 0, "method"), wh.rows["accounts"], methods)
    # billed to the account's address; paid from its city's addresses, some from elsewhere (core/warehouse/geography)
    geo = wh.rng("stripe_charges", 0, "geo")
    home = wh.account_city[account]
    away = geo.random(n) < wh.cfg.geography.away_charge_share
    paid_from = np.where(away, wh.cities.draw_anywhere(geo, wh.cfg.locations.states, n), home)
    return pl.DataFrame(
        {
            "charge_id": prefix_ids("ch_", np.arange(1, n + 1)),
            "invoice_id": prefix_ids("in_", paid_invoice + 1),
            "customer_id": prefix_ids("cus_", account + 1),
            "amount": plan["amount"][paid_invoice],
            "amount_refunded": np.zeros(n, dtype=np.int64),
            "currency": np.full(n, "usd"),
            "status": np.full(n, "succeeded"),
            "paid": np.ones(n, dtype=bool),
            "payment_method_type": labels(method_of_account[account], methods),
            "outcome_type": np.full(n, "authorized"),
            "created": ts(plan["paid_at"][paid_invoice] + rng.integers(0, 2, n)),
            "billing_state": wh.cities.state_labels(home),
            "billing_city": wh.cities.city_labels(home),
            "ip_address": geography.dotted(geography.addresses(geo, paid_from)),
        }
    )


def events(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the audit trail: customer, subscription, invoice and charge events at their times."""
    start, stop = wh.chunk_rows("stripe_events", k)
    n, rng = stop - start, wh.rng("stripe_events", k)
    acc_created, _ = wh.account_span
    billing = wh.stripe_periods
    plan = wh.invoice_plan
    paid_invoices = np.flatnonzero(plan["paid"])
    kind = choice(rng, n, [0.06, 0.08, 0.60, 0.26])  # customer, subscription, invoice, charge
    sub_step = rng.integers(0, 3, n)
    inv_step = rng.integers(0, 3, n)
    u = rng.random(n)
    event = np.zeros(n, dtype=np.int16)  # index into EVENT_TYPES
    obj_id = np.zeros(n, dtype=np.int64)
    customer = np.zeros(n, dtype=np.int64)
    created = np.zeros(n, dtype=np.int64)
    # customers
    m = kind == 0
    i = (u[m] * len(acc_created)).astype(np.int64)
    updated = sub_step[m] > 0
    event[m] = np.where(updated, 1, 0)
    obj_id[m], customer[m] = i, i
    created[m] = acc_created[i] + np.where(updated, (rng.random(int(m.sum())) * 30 * DAY).astype(np.int64), 0)
    # subscriptions
    m = kind == 1
    i = (u[m] * len(billing["created"])).astype(np.int64)
    step = sub_step[m]
    has_end = billing["end"][i] < wh.history_end
    step = np.where((step == 2) & ~has_end, 1, step)
    event[m] = 2 + step
    obj_id[m], customer[m] = i, billing["account"][i]
    mid = billing["created"][i] + (
        (billing["end"][i] - billing["created"][i]) * rng.random(int(m.sum()))
    ).astype(np.int64)
    created[m] = np.select([step == 0, step == 1], [billing["created"][i], mid], billing["end"][i])
    # invoices
    m = kind == 2
    i = (u[m] * len(plan["created"])).astype(np.int64)
    step = inv_step[m]
    paid = plan["paid"][i]
    event[m] = 5 + np.where((step == 2) & ~paid, 3, step)
    obj_id[m], customer[m] = i, billing["account"][plan["parent"][i]]
    final = np.where(paid, plan["paid_at"][i], plan["created"][i] + DAY)
    created[m] = np.select([step == 0, step == 1], [plan["created"][i], plan["created"][i] + 60], final)
    # charges
    m = kind == 3
    i = (u[m] * max(len(paid_invoices), 1)).astype(np.int64)
    invoice = paid_invoices[i] if len(paid_invoices) else np.zeros(int(m.sum()), dtype=np.int64)
    event[m], obj_id[m] = 9, i
    customer[m] = billing["account"][plan["parent"][invoice]]
    created[m] = plan["paid_at"][invoice]
    created = np.minimum(np.maximum(created, acc_created[customer]), wh.history_end - 1)
    object_kind = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 3], dtype=np.int8)[event]
    object_prefix = labels(object_kind, ["cus_", "sub_", "in_", "ch_"])
    object_id = concat(object_prefix, pl.Series(obj_id + 1).cast(pl.String).str.zfill(14))
    # our webhook endpoint receives each event once, 1-30 s after Stripe created it (own stream: the event
    # columns above do not change); delivery_id is the receiver's key of a delivery
    received = created + wh.rng("stripe_events", k, "delivery").integers(1, 31, n)
    return pl.DataFrame(
        {
            "delivery_id": np.arange(start + 1, stop + 1),
            "event_id": prefix_ids("evt_", np.arange(start + 1, stop + 1)),
            "type": labels(event, EVENT_TYPES),
            "object_type": labels(object_kind, ["customer", "subscription", "invoice", "charge"]),
            "object_id": object_id,
            "customer_id": prefix_ids("cus_", customer + 1),
            "created": ts(created),
            "received_at": ts(received),
            "api_version": np.full(n, "2024-06-20"),
            "livemode": np.zeros(n, dtype=bool),
        }
    )
