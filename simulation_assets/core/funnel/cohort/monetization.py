"""Category D, monetization: the first-week purchase and everything billed after it.

A buyer views pricing, starts checkout (sometimes with a coupon), completes the
purchase, and gets a credit pack (``topup_purchased``) or a subscription
(``subscription_started``). A few purchases are refunded. Retained monthly subscribers
renew at 30 and 60 days (some invoices fail first); churned subscribers cancel within
the first month; retained pack buyers often buy another pack in the second month.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort.draws import (
    DAY,
    MINUTE,
    SECOND,
    hex_ids,
    lognormal_ms,
    null_unless,
    select_all,
)
from simulation_assets.core.funnel.cohort.frame import EventBlocks
from simulation_assets.core.funnel.config import CohortConfig, Plan


@dataclass(frozen=True)
class FirstPurchases:
    """When each buyer pays in their first week and for which plan (one entry per buyer)."""

    buyers: np.ndarray
    purchase_ms: np.ndarray
    plan_index: np.ndarray
    """Index into ``config.plans``."""
    credits_bought: np.ndarray
    paid_ms: np.ndarray
    """When the bought credits land on the balance (two minutes after the purchase)."""


def draw_first_purchases(
    gen: np.random.Generator,
    config: CohortConfig,
    purchased: np.ndarray,
    first_download_ms: np.ndarray,
    t_login: np.ndarray,
) -> FirstPurchases:
    """Return the time and plan of each buyer's purchase: after the aha moment, within 7 days of login."""
    n = len(purchased)
    t_buy = np.zeros(n, dtype=np.int64)
    remaining = np.maximum(t_login + 7 * DAY - first_download_ms - 10 * MINUTE, MINUTE)
    t_buy[purchased] = (
        first_download_ms[purchased]
        + 5 * MINUTE
        + (remaining[purchased] * gen.beta(0.7, 2.5, int(purchased.sum()))).astype(np.int64)
    )
    weights = np.array([p.weight for p in config.plans])
    plan_idx = gen.choice(len(config.plans), size=n, p=weights / weights.sum())
    plan_credits = np.array([p.credits for p in config.plans])[plan_idx]
    return FirstPurchases(
        buyers=np.arange(n, dtype=np.int64)[purchased],
        purchase_ms=t_buy[purchased],
        plan_index=plan_idx[purchased],
        credits_bought=plan_credits[purchased],
        paid_ms=(t_buy + 2 * MINUTE)[purchased],
    )


def emit_order(
    blocks: EventBlocks,
    gen: np.random.Generator,
    event: str,
    user: np.ndarray,
    t_ms: np.ndarray,
    session: pl.Series,
    plan: Plan,
    ltv: np.ndarray | None,
) -> np.ndarray:
    """Emit one monetization event per user for ``plan`` at list price; return the prices charged."""
    n = len(user)
    price = np.full(n, plan.price)
    blocks.add(
        event,
        user,
        t_ms,
        session,
        order_id=hex_ids(gen, n, "ord_"),
        sku=plan.sku,
        plan=plan.plan,
        billing_period=plan.billing_period,
        price=price,
        currency="USD",
        credits_added=plan.credits,
        coupon=pl.Series([None] * n, dtype=pl.String),
        payment_provider="stripe",
        is_trial=False,
        ltv_to_date=price if ltv is None else ltv,
    )
    return price


def emit_purchases(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    purchases: FirstPurchases,
    credits_left: np.ndarray,
    retained: np.ndarray,
    churned: np.ndarray,
    t_login: np.ndarray,
) -> None:
    """Emit the first-week purchase of each buyer and what follows it within the horizon, plan by plan."""
    for k, plan in enumerate(config.plans):
        m = purchases.plan_index == k
        users, tb = purchases.buyers[m], purchases.purchase_ms[m]
        if len(users) == 0:
            continue
        _emit_plan_purchases(blocks, gen, config, plan, users, tb, credits_left, retained, churned, t_login)


def _emit_plan_purchases(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    plan: Plan,
    users: np.ndarray,
    tb: np.ndarray,
    credits_left: np.ndarray,
    retained: np.ndarray,
    churned: np.ndarray,
    t_login: np.ndarray,
) -> None:
    nb = len(users)
    sess = hex_ids(gen, nb, "sess_")
    orders = hex_ids(gen, nb, "ord_")
    coupon = gen.random(nb) < 0.1
    paid = np.where(coupon, np.round(plan.price * 0.9, 2), plan.price)
    blocks.add(
        "pricing_view",
        users,
        tb - 2 * MINUTE,
        sess,
        page_path="/pricing",
        pricing_time_spent_ms=lognormal_ms(gen, 20 * SECOND, 0.5, nb),
        selected_pack=plan.sku,
    )
    mon = dict(
        order_id=orders,
        sku=plan.sku,
        plan=plan.plan,
        billing_period=plan.billing_period,
        price=paid,
        currency="USD",
        credits_added=plan.credits,
        coupon=null_unless(coupon, pl.Series(np.full(nb, "WELCOME10"))),
        payment_provider="stripe",
        is_trial=False,
        ltv_to_date=np.zeros(nb),
    )
    blocks.add(
        "checkout_started", users, tb - MINUTE, sess, **mon, credits_balance_at_checkout=credits_left[users]
    )
    blocks.add("checkout_step", users, tb - 30 * SECOND, sess, order_id=orders, step="payment_details")
    mon["ltv_to_date"] = paid
    blocks.add("purchase_completed", users, tb, sess, **mon)
    follow = "topup_purchased" if plan.billing_period == "one-time" else "subscription_started"
    blocks.add(follow, users, tb + SECOND, sess, **mon)
    refunded = gen.random(nb) < config.refund_rate
    blocks.add(
        "refund_issued",
        users[refunded],
        tb[refunded] + 2 * DAY,
        sess.filter(pl.Series(refunded)),
        **select_all(mon, refunded, ltv_to_date=np.zeros(int(refunded.sum()))),
    )
    keep = ~refunded
    ret = retained[users] & keep
    if plan.billing_period == "monthly":
        # retained subscribers renew at 30 and 60 days; churned ones cancel within the first month
        for months in (1, 2):
            rs = hex_ids(gen, nb, "sess_")
            fail = ret & (gen.random(nb) < config.invoice_fail_rate)
            t_renew = tb + months * 30 * DAY
            ltv = paid + months * plan.price
            blocks.add(
                "invoice_failed",
                users[fail],
                t_renew[fail] - DAY,
                rs.filter(pl.Series(fail)),
                **select_all(mon, fail, ltv_to_date=(ltv - plan.price)[fail]),
            )
            blocks.add(
                "subscription_renewed",
                users[ret],
                t_renew[ret],
                rs.filter(pl.Series(ret)),
                **select_all(mon, ret, ltv_to_date=ltv[ret], price=np.full(int(ret.sum()), plan.price)),
            )
    cancel = churned[users] & keep & (plan.billing_period != "one-time")
    t_cancel = t_login[users] + 8 * DAY + (gen.random(nb) * 20 * DAY).astype(np.int64)
    blocks.add(
        "subscription_canceled",
        users[cancel],
        t_cancel[cancel],
        hex_ids(gen, int(cancel.sum()), "sess_"),
        **select_all(mon, cancel, ltv_to_date=paid[cancel]),
    )
    if plan.billing_period == "one-time":
        # retained pack buyers often buy again in the second month (LTV 60/90)
        again = ret & (gen.random(nb) < config.topup_rate_of_retained)
        t_again = t_login[users] + 31 * DAY + (gen.random(nb) * 28 * DAY).astype(np.int64)
        emit_order(
            blocks,
            gen,
            "topup_purchased",
            users[again],
            t_again[again],
            hex_ids(gen, int(again.sum()), "sess_"),
            plan,
            ltv=(paid + plan.price)[again],
        )
