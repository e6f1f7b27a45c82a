"""Category D, monetization: the first-week purchase and everything billed after it.

A buyer views pricing, starts checkout (a share of checkouts offer a coupon, which the
price-sensitive apply), completes the purchase, and gets a credit pack
(``topup_purchased``) or a subscription (``subscription_started``); the price-sensitive
lean toward packs and the cheaper tiers. A few purchases are refunded (a refunded
subscription is canceled). Subscriptions follow their owner's activity, month by month
(months counted from the purchase): whoever is not retained cancels in month 1, whoever
lapses later cancels in that month; monthly plans of active owners renew at 30 and 60
days (some invoices fail first), and at the first renewal some subscribers move up a
tier (intent) or down (price sensitivity) with ``plan_changed``. Active pack buyers often
buy another pack early in month 2. People out of credits hit the paywall and buy a pack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort.draws import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    hex_ids,
    lognormal_ms,
    null_unless,
    select_all,
)
from simulation_assets.core.funnel.cohort.frame import EventBlocks
from simulation_assets.core.funnel.cohort.retention import Retention
from simulation_assets.core.funnel.cohort.traits import Traits, bernoulli, choose
from simulation_assets.core.funnel.config import TIERS, CohortConfig, Plan
from simulation_assets.core.funnel.hazard import calibrated_probability

COUPON_CODE = "WELCOME10"
COUPON_DISCOUNT = 0.10


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
    traits: Traits,
    first_download_ms: np.ndarray,
    t_login: np.ndarray,
) -> FirstPurchases:
    """Return the time and plan of each buyer's purchase: after the aha moment, within 7 days of login."""
    n = len(purchased)
    buyers = np.arange(n, dtype=np.int64)[purchased]
    remaining = np.maximum(t_login + 7 * DAY - first_download_ms - 10 * MINUTE, MINUTE)[buyers]
    t_buy = (
        first_download_ms[buyers]
        + 5 * MINUTE
        + (remaining * gen.beta(0.7, 2.5, len(buyers))).astype(np.int64)
    )
    weights = np.array([p.weight for p in config.plans])
    lean = np.array([p.price_sensitivity for p in config.plans])
    plan_idx = choose(gen, weights / weights.sum(), np.outer(traits.price_sensitivity[buyers], lean))
    return FirstPurchases(
        buyers=buyers,
        purchase_ms=t_buy,
        plan_index=plan_idx,
        credits_bought=np.array([p.credits for p in config.plans])[plan_idx],
        paid_ms=t_buy + 2 * MINUTE,
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
        **_order(hex_ids(gen, n, "ord_"), plan, price, price if ltv is None else ltv),
    )
    return price


def _order(
    order_ids: pl.Series, plan: Plan, price: np.ndarray, ltv: np.ndarray, coupon: pl.Series | None = None
) -> dict:
    n = len(price)
    return dict(
        order_id=order_ids,
        sku=plan.sku,
        plan=plan.plan,
        billing_period=plan.billing_period,
        price=price,
        currency="USD",
        credits_added=plan.credits,
        coupon=coupon if coupon is not None else pl.Series([None] * n, dtype=pl.String),
        payment_provider="stripe",
        is_trial=False,
        ltv_to_date=ltv,
    )


def emit_purchases(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    purchases: FirstPurchases,
    traits: Traits,
    credits_left: np.ndarray,
    outcome: Retention,
    t_login: np.ndarray,
) -> dict[int, np.ndarray]:
    """Emit every buyer's purchase and its follow-ups, plan by plan.

    Returns, for months 2 and 3, the credits each clicker receives before that month's
    returning session (renewals, plan changes, voluntary packs).
    """
    n = len(credits_left)
    later = {2: np.zeros(n, dtype=np.int64), 3: np.zeros(n, dtype=np.int64)}
    for k, plan in enumerate(config.plans):
        m = purchases.plan_index == k
        users, tb = purchases.buyers[m], purchases.purchase_ms[m]
        if len(users) == 0:
            continue
        paid, refunded, mon = _emit_checkout(blocks, gen, config, plan, users, tb, traits, credits_left)
        if plan.is_subscription:
            _emit_subscription_life(
                blocks, gen, config, plan, users, tb, paid, refunded, mon, traits, outcome, t_login, later
            )
        else:
            # active pack buyers often buy another pack early in month 2 (before that month's session)
            again = (
                outcome.active[1][users]
                & ~refunded
                & (gen.random(len(users)) < config.topup_rate_of_retained)
            )
            t_again = t_login[users] + 31 * DAY + (gen.random(len(users)) * 6 * DAY).astype(np.int64)
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
            np.add.at(later[2], users[again], plan.credits)
    return later


def _emit_checkout(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    plan: Plan,
    users: np.ndarray,
    tb: np.ndarray,
    traits: Traits,
    credits_left: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Emit pricing, checkout, purchase and its product event, and refunds; return paid, refunded, order."""
    nb = len(users)
    sess = hex_ids(gen, nb, "sess_")
    orders = hex_ids(gen, nb, "ord_")
    offered = gen.random(nb) < config.coupon_offer_rate
    applied = offered & bernoulli(gen, -0.5 + 1.2 * traits.price_sensitivity[users])
    paid = np.where(applied, np.round(plan.price * (1 - COUPON_DISCOUNT), 2), plan.price)
    blocks.add(
        "pricing_view",
        users,
        tb - 2 * MINUTE,
        sess,
        page_path="/pricing",
        pricing_time_spent_ms=lognormal_ms(
            gen, 20 * SECOND, 0.5, nb, shift=0.4 * traits.price_sensitivity[users]
        ),
        selected_pack=plan.sku,
        plan_viewed=plan.plan if plan.plan in TIERS else None,
    )
    coupon = null_unless(applied, pl.Series(np.full(nb, COUPON_CODE)))
    mon = _order(orders, plan, paid, np.zeros(nb), coupon)
    blocks.add(
        "checkout_started",
        users,
        tb - MINUTE,
        sess,
        **mon,
        credits_balance_at_checkout=credits_left[users],
        coupon_seen=offered,
    )
    blocks.add("checkout_step", users, tb - 30 * SECOND, sess, order_id=orders, step="payment_details")
    mon["ltv_to_date"] = paid
    blocks.add("purchase_completed", users, tb, sess, **mon)
    follow = "subscription_started" if plan.is_subscription else "topup_purchased"
    blocks.add(
        follow, users, tb + SECOND, sess, **mon, **({"subscription_month": 1} if plan.is_subscription else {})
    )
    refunded = gen.random(nb) < config.refund_rate
    refund_sess = hex_ids(gen, int(refunded.sum()), "sess_")  # two days later: a session of its own
    blocks.add(
        "refund_issued",
        users[refunded],
        tb[refunded] + 2 * DAY,
        refund_sess,
        **select_all(mon, refunded, ltv_to_date=np.zeros(int(refunded.sum()))),
    )
    if plan.is_subscription:
        blocks.add(
            "subscription_canceled",
            users[refunded],
            tb[refunded] + 2 * DAY + MINUTE,
            refund_sess,
            **select_all(mon, refunded, ltv_to_date=np.zeros(int(refunded.sum()))),
            subscription_month=1,
        )
    return paid, refunded, mon


def _emit_subscription_life(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    plan: Plan,
    users: np.ndarray,
    tb: np.ndarray,
    paid: np.ndarray,
    refunded: np.ndarray,
    mon: dict,
    traits: Traits,
    outcome: Retention,
    t_login: np.ndarray,
    later: dict[int, np.ndarray],
) -> None:
    """Emit cancellations, renewals and plan changes of one plan's subscribers over three months."""
    nb = len(users)
    keep = ~refunded
    active = [a[users] & keep for a in outcome.active]
    ltv = paid.astype(np.float64).copy()
    current = np.full(nb, config.plans.index(plan))
    prices = np.array([p.price for p in config.plans])
    monthly = np.array([p.billing_period == "monthly" for p in config.plans])
    # month 1: whoever is not retained cancels within the first month
    t_cancel = t_login[users] + 8 * DAY + (gen.random(nb) * 20 * DAY).astype(np.int64)
    _emit_billing(
        blocks, gen, "subscription_canceled", users, keep & ~active[0], t_cancel, mon, current, config, ltv, 1
    )
    for month in (2, 3):
        start = tb + (month - 1) * 30 * DAY
        renewing = active[month - 2] & monthly[current]
        if month == 2:
            new = _plan_changes(gen, config, users, renewing, current, traits)
            moved = new != current
            prepaid = moved & ~monthly[new]  # a move to a yearly plan is charged when it happens
            ltv = ltv + np.where(prepaid, prices[new], 0.0)
            previous = pl.Series([config.plans[c].plan for c in current[moved]], dtype=pl.String)
            _emit_billing(
                blocks,
                gen,
                "plan_changed",
                users,
                moved,
                start - HOUR,
                mon,
                new,
                config,
                ltv,
                2,
                previous_plan=previous,
            )
            current = new
        fail = renewing & (gen.random(nb) < config.invoice_fail_rate)
        _emit_billing(
            blocks, gen, "invoice_failed", users, fail, start - DAY, mon, current, config, ltv, month
        )
        renews = renewing & monthly[current]
        ltv = ltv + np.where(renews, prices[current], 0.0)
        _emit_billing(
            blocks, gen, "subscription_renewed", users, renews, start, mon, current, config, ltv, month
        )
        credits = np.array([config.plans[c].credits for c in current])
        np.add.at(later[month], users[renewing], credits[renewing])
        lapse = active[month - 2] & ~active[month - 1]
        t_cancel = start + (5 * DAY + gen.random(nb) * 17 * DAY).astype(np.int64)
        _emit_billing(
            blocks, gen, "subscription_canceled", users, lapse, t_cancel, mon, current, config, ltv, month
        )


def _plan_changes(
    gen: np.random.Generator,
    config: CohortConfig,
    users: np.ndarray,
    renewing: np.ndarray,
    current: np.ndarray,
    traits: Traits,
) -> np.ndarray:
    """Return each subscriber's plan after the first renewal: a tier up (intent), down (price), or the same."""
    by_tier = {p.plan: i for i, p in reversed(list(enumerate(config.plans))) if p.is_subscription}
    tier = [TIERS.index(config.plans[c].plan) if config.plans[c].plan in TIERS else -1 for c in current]
    up_to = np.array(
        [by_tier.get(TIERS[t + 1], -1) if 0 <= t < len(TIERS) - 1 else -1 for t in tier], dtype=np.int64
    )
    down_to = np.array([by_tier.get(TIERS[t - 1], -1) if t > 0 else -1 for t in tier], dtype=np.int64)
    intent, price = traits.intent[users], traits.price_sensitivity[users]
    can_up = renewing & (up_to >= 0)
    up = np.zeros(len(users), dtype=bool)
    up[can_up] = gen.random(int(can_up.sum())) < calibrated_probability(
        config.plan_upgrade_rate, (intent - 0.8 * price)[can_up]
    )
    can_down = renewing & ~up & (down_to >= 0)
    down = np.zeros(len(users), dtype=bool)
    down[can_down] = gen.random(int(can_down.sum())) < calibrated_probability(
        config.plan_downgrade_rate, (price - 0.6 * intent)[can_down]
    )
    return np.where(up, up_to, np.where(down, down_to, current))


def _emit_billing(
    blocks: EventBlocks,
    gen: np.random.Generator,
    event: str,
    users: np.ndarray,
    mask: np.ndarray,
    t_ms: np.ndarray,
    mon: dict,
    plan_index: np.ndarray,
    config: CohortConfig,
    ltv: np.ndarray,
    month: int,
    **extra: object,
) -> None:
    """Emit a subscription event (own session) for ``users[mask]``, each on their current plan at list price."""
    k = int(mask.sum())
    if k == 0:
        return
    plans = [config.plans[c] for c in plan_index[mask]]
    blocks.add(
        event,
        users[mask],
        t_ms[mask],
        hex_ids(gen, k, "sess_"),
        **select_all(
            mon,
            mask,
            sku=pl.Series([p.sku for p in plans], dtype=pl.String),
            plan=pl.Series([p.plan for p in plans], dtype=pl.String),
            billing_period=pl.Series([p.billing_period for p in plans], dtype=pl.String),
            credits_added=np.array([p.credits for p in plans], dtype=np.int64),
            price=np.array([p.price for p in plans]),
            coupon=pl.Series([None] * k, dtype=pl.String),
            ltv_to_date=ltv[mask],
        ),
        subscription_month=month,
        **extra,
    )
