"""Subscriptions over time: plan upgrades and downgrades, monthly payments, failed payments and dunning.

Two daily rules of the lifecycle (``lifecycle.step_day`` calls them after the
day's viewing):

* ``plan_changes``: an established visitor may move one plan up (more likely
  when satisfied and not price-sensitive) or down (when dissatisfied and
  price-sensitive). A change may re-draw the persona's activity pattern from
  the new plan's weights (``BillingConfig.pattern_redraw_share``).
* ``payments``: each persona is charged monthly on its billing day (the
  signup's day of month, at most the 28th). A charge fails with the plan's
  chance; a failed charge starts dunning: retries 3, 5 and 7 days apart, each
  recovering with a chance that falls with price sensitivity; when the last
  retry fails the persona churns (reason ``payment_failed``).
"""

from __future__ import annotations

import numpy as np

from simulation_assets.core.hogflix.config import PLANS, LifecycleConfig
from simulation_assets.core.hogflix.draws import choice, subset_ints
from simulation_assets.core.hogflix.persona_state import BINGE, CHURNED, NEW, NO_DAY, day_date

Columns = dict[str, np.ndarray]
PAYMENT_OK, PAYMENT_DUNNING = 0, 1
PAYMENT_STATES = ("ok", "dunning")
CHURN_INACTIVE, CHURN_PAYMENT = 0, 1
CHURN_REASONS = ("inactive_30_days", "payment_failed")


def billing_day(created_day: np.ndarray) -> np.ndarray:
    """Return each persona's billing day of month (int8): its signup's, at most the 28th."""
    days = np.asarray(created_day, np.int64).astype("datetime64[D]")
    of_month = (days - days.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    return np.minimum(of_month, 28).astype(np.int8)


def plan_changes(
    c: Columns, day: int, cfg: LifecycleConfig, g: np.random.Generator, alive: np.ndarray
) -> None:
    """Move today's established visitors one plan up or down with their chances (in place).

    Plans are ordered Premium (0), Standard (1), Basic (2): an upgrade lowers the index.
    """
    b = cfg.billing
    c["plan_changed_today"][:] = 0
    if not b.plan_changes_enabled:
        return
    idx = np.flatnonzero(
        c["active_today"] & alive & (c["state"] != NEW) & (c["days_since_signup"] >= cfg.new_days)
    )
    if idx.size == 0:
        return
    u = g.random(idx.size)
    # Satisfaction and price sensitivity are within 0-1: no persona's chance of a change exceeds
    # ``most``, so only the draws under it are looked at (a few percent of the visitors).
    pivot, w = cfg.traits.pivot, b.satisfaction_weight
    most = b.upgrade_chance * max(0.0, 1.0 + w * (1.0 - pivot), 1.0 + w * (0.0 - pivot)) * 1.5
    most += b.downgrade_chance * max(0.0, 1.0 + w * pivot, 1.0 + w * (pivot - 1.0)) * 1.5
    low = np.flatnonzero(u < most * 1.01 + 1e-9)
    idx, u = idx[low], u[low]
    s = c["satisfaction"][idx] if cfg.traits.enabled else np.full(idx.size, cfg.traits.pivot, np.float32)
    ps = c["price_sensitivity"][idx] if cfg.traits.enabled else np.full(idx.size, 0.5, np.float32)
    plan = c["plan"][idx]
    up = b.upgrade_chance * np.maximum(0.0, 1.0 + w * (s - pivot)) * (1.5 - ps)
    down = b.downgrade_chance * np.maximum(0.0, 1.0 + w * (pivot - s)) * (0.5 + ps)
    up = np.where(plan == 0, 0.0, up)  # Premium has nothing above it
    down = np.where(plan == len(PLANS) - 1, 0.0, down)  # Basic has nothing below it
    upgrade = u < up
    downgrade = ~upgrade & (u < up + down)
    moved = idx[upgrade | downgrade]
    step = np.where(upgrade, -1, 1)[upgrade | downgrade].astype(np.int8)
    c["previous_plan"][moved] = c["plan"][moved]
    c["plan"][moved] = c["plan"][moved] + step
    c["plan_changed_today"][moved] = -step  # +1 upgrade, -1 downgrade
    c["plan_changes"][moved] += 1
    # A new plan may bring a new rhythm: re-draw the permanent pattern from the new plan's weights.
    assigned = moved[c["days_since_signup"][moved] >= cfg.pattern_assignment_day]
    redraw = assigned[g.random(assigned.size) < b.pattern_redraw_share]
    weights = np.array([cfg.pattern_weights[p] for p in PLANS], dtype=np.float64)
    c["pattern"][redraw] = choice(g.random(redraw.size), weights[c["plan"][redraw]])
    new_binge = redraw[c["pattern"][redraw] == BINGE]
    c["binge_is_binging"][new_binge] = False
    c["binge_phase_ends"][new_binge] = day + subset_ints(g, new_binge, 1, cfg.binge_cooldown_days.high)


def payments(
    c: Columns, day: int, cfg: LifecycleConfig, g: np.random.Generator, alive: np.ndarray
) -> np.ndarray:
    """Charge today's billing personas and run dunning; return the positions of those who churn today.

    Sets ``payment_attempt_today`` (0 none, 1 the monthly charge, 2-4 a retry), ``payment_failed_today``
    and ``payment_recovered_today``.
    """
    b = cfg.billing
    c["payment_attempt_today"][:] = 0
    c["payment_failed_today"][:] = False
    c["payment_recovered_today"][:] = False
    if not b.payments_enabled:
        return np.zeros(0, np.intp)
    # Today's billing day first (a 28th of the pool at most), then who of them is due.
    charge = np.flatnonzero(c["billing_day"] == day_date(day).day)
    due = alive[charge] & (c["state"][charge] != CHURNED) & (c["days_since_signup"][charge] > 0)
    charge = charge[due & (c["payment_state"][charge] == PAYMENT_OK)]
    fail_chance = np.array([b.failure_chance[p] for p in PLANS], np.float32)[c["plan"][charge]]
    failed = charge[g.random(charge.size) < fail_chance]
    c["payment_attempt_today"][charge] = 1
    c["payment_failed_today"][failed] = True
    c["payment_state"][failed] = PAYMENT_DUNNING
    c["dunning_attempts"][failed] = 0
    c["next_payment_retry"][failed] = day + b.retry_after_days[0]
    # Retries due today: recover with a chance that falls with price sensitivity, else wait or churn.
    retry = np.flatnonzero(c["next_payment_retry"] == day)
    retry = retry[
        alive[retry] & (c["state"][retry] != CHURNED) & (c["payment_state"][retry] == PAYMENT_DUNNING)
    ]
    ps = c["price_sensitivity"][retry] if cfg.traits.enabled else np.full(retry.size, 0.5, np.float32)
    recovered = g.random(retry.size) < b.recovery_chance * (1.5 - ps)
    c["payment_attempt_today"][retry] = 2 + c["dunning_attempts"][retry]
    c["dunning_attempts"][retry] += 1
    ok = retry[recovered]
    c["payment_state"][ok] = PAYMENT_OK
    c["next_payment_retry"][ok] = NO_DAY
    c["payment_recovered_today"][ok] = True
    still = retry[~recovered]
    c["payment_failed_today"][still] = True
    attempts = c["dunning_attempts"][still]
    exhausted = attempts >= len(b.retry_after_days)
    waiting = still[~exhausted]
    c["next_payment_retry"][waiting] = day + np.array(b.retry_after_days, np.int32)[attempts[~exhausted]]
    return still[exhausted]
