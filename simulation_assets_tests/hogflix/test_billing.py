"""Plan changes, monthly payments and dunning: each rule pinned with its numbers, and seen in the rows."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.hogflix import billing
from simulation_assets.core.hogflix.app_rows import PAYMENT_HOUR, payment_rows
from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.frames import from_frame, to_frame
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.persona_state import CHURNED, REGULAR, day_date, day_number
from simulation_assets_tests.hogflix.helpers import DAY, no_events, pool, share

N = 90_000
PLAN_OF = np.arange(N) % 3  # Premium, Standard, Basic


def _billing(cfg: LifecycleConfig, **update: object) -> LifecycleConfig:
    return cfg.model_copy(update={"billing": cfg.billing.model_copy(update=update)})


def test_billing_day_is_the_signups_day_of_month_at_most_the_28th():
    days = [day_number(dt.date(2026, 1, d)) for d in (1, 7, 28, 29, 31)]
    assert billing.billing_day(np.array(days)).tolist() == [1, 7, 28, 28, 28]


def test_charges_fail_with_the_plans_chance_and_start_dunning():
    cfg = LifecycleConfig()
    state = pool(cfg, N, billing_day=day_date(DAY).day, pattern=REGULAR)
    state.cols["plan"][:] = PLAN_OF
    c = state.cols
    alive = np.ones(N, bool)
    churned = billing.payments(c, DAY, cfg, np.random.default_rng(1), alive)
    assert churned.size == 0 and (c["payment_attempt_today"] == 1).all()
    failed = c["payment_failed_today"]
    rates = [share(failed[PLAN_OF == p]) for p in range(3)]
    assert rates == pytest.approx([0.02, 0.03, 0.05], abs=0.003)
    assert (c["payment_state"][failed] == billing.PAYMENT_DUNNING).all()
    assert (c["next_payment_retry"][failed] == DAY + 3).all()
    # Nobody else is charged today: a persona is billed on its own day of the month only.
    c["billing_day"][:] = (day_date(DAY).day % 28) + 1
    billing.payments(c, DAY, cfg, np.random.default_rng(2), alive)
    assert (c["payment_attempt_today"][~failed] == 0).all()


def test_dunning_retries_three_five_and_seven_days_apart_then_churns():
    cfg = _billing(
        no_events(), recovery_chance=0.0, failure_chance={"Premium": 1.0, "Standard": 1.0, "Basic": 1.0}
    )
    state = pool(cfg, 2_000, billing_day=day_date(DAY).day, pattern=REGULAR)
    attempts_by_day = {}
    for day in range(DAY, DAY + 16):
        state = step_day(state, day, cfg, seed=3)
        n = 2_000
        c = state.cols
        attempts_by_day[day - DAY] = set(np.unique(c["payment_attempt_today"][:n]).tolist())
    assert attempts_by_day[0] == {1} and attempts_by_day[3] == {2} and attempts_by_day[8] == {3}
    assert attempts_by_day[15] == {4}
    assert all(attempts_by_day[d] == {0} for d in range(16) if d not in (0, 3, 8, 15))
    frame = to_frame(state).head(2_000)
    assert (frame["state"] == "CHURNED").all()
    assert frame["churn_reason"].unique().to_list() == ["payment_failed"]
    assert frame["churned_at"].dt.date().unique().to_list() == [day_date(DAY + 15)]
    # The state survives its table: the reason and the dunning columns read back the same.
    back = from_frame(to_frame(state))
    assert np.array_equal(back.cols["churn_reason"], state.cols["churn_reason"])
    assert np.array_equal(back.cols["next_payment_retry"], state.cols["next_payment_retry"])


def test_retries_recover_less_often_for_price_sensitive_personas():
    cfg = LifecycleConfig()
    c = pool(cfg, N, pattern=REGULAR).cols
    c["payment_state"][:] = billing.PAYMENT_DUNNING
    c["next_payment_retry"][:] = DAY
    c["price_sensitivity"][:] = np.where(np.arange(N) % 2 == 0, 0.2, 0.8)
    billing.payments(c, DAY, cfg, np.random.default_rng(5), np.ones(N, bool))
    recovered = c["payment_recovered_today"]
    assert (c["payment_attempt_today"] == 2).all()
    # recovery 0.35 x (1.5 - sensitivity): 0.455 and 0.245
    assert share(recovered[::2]) == pytest.approx(0.455, abs=0.01)
    assert share(recovered[1::2]) == pytest.approx(0.245, abs=0.01)
    assert (c["payment_state"][recovered] == billing.PAYMENT_OK).all()
    assert (c["next_payment_retry"][~recovered] == DAY + 5).all()


def test_satisfied_personas_upgrade_and_dissatisfied_ones_downgrade():
    cfg = _billing(LifecycleConfig(), upgrade_chance=0.05, downgrade_chance=0.05, pattern_redraw_share=0.0)
    outcome = {}
    for s in (0.3, 0.9):
        c = pool(cfg, N, pattern=REGULAR, satisfaction=s, price_sensitivity=0.5, active_today=True).cols
        c["plan"][:] = PLAN_OF
        billing.plan_changes(c, DAY, cfg, np.random.default_rng(7), np.ones(N, bool))
        outcome[s] = c["plan_changed_today"].copy(), c["plan"].copy(), c["previous_plan"].copy()
    for changed, plan, before in outcome.values():
        assert not (changed[PLAN_OF == 0] == 1).any()  # nothing above Premium
        assert not (changed[PLAN_OF == 2] == -1).any()  # nothing below Basic
        assert np.array_equal(plan, PLAN_OF - changed) and np.array_equal(
            before[changed != 0], PLAN_OF[changed != 0]
        )
    up = {s: share(outcome[s][0][PLAN_OF == 1] == 1) for s in outcome}
    down = {s: share(outcome[s][0][PLAN_OF == 1] == -1) for s in outcome}
    # 0.05 x (1 + 3 (s - 0.6)) x (1.5 - 0.5): upgrades 0.005 and 0.095; downgrades the reverse
    assert up[0.3] == pytest.approx(0.005, abs=0.003) and up[0.9] == pytest.approx(0.095, abs=0.006)
    assert down[0.9] == pytest.approx(0.005, abs=0.003) and down[0.3] == pytest.approx(0.095, abs=0.006)


def test_billing_can_be_switched_off():
    cfg = _billing(LifecycleConfig(), plan_changes_enabled=False, payments_enabled=False)
    c = pool(cfg, N, pattern=REGULAR, active_today=True, billing_day=day_date(DAY).day).cols
    g = np.random.default_rng(8)
    billing.plan_changes(c, DAY, cfg, g, np.ones(N, bool))
    assert billing.payments(c, DAY, cfg, g, np.ones(N, bool)).size == 0
    assert not c["plan_changed_today"].any() and not c["payment_attempt_today"].any()


def test_payment_rows_are_the_days_charges_with_stable_ids():
    cfg = LifecycleConfig()
    state = pool(cfg, 3_000, billing_day=day_date(DAY).day, pattern=REGULAR)
    state = step_day(state, DAY, cfg, seed=11)
    frame = to_frame(state)
    key = day_date(DAY).isoformat()
    rows = payment_rows(frame, key, 11, cfg.billing.price_cents)
    charged = frame.filter(pl.col("payment_attempt_today") > 0)
    assert rows.height == charged.height > 2_500
    assert rows["status"].value_counts().sort("status")["count"].to_list() == [
        int(charged["payment_failed_today"].sum()),
        int((~charged["payment_failed_today"]).sum()),
    ]
    prices = dict(zip(*rows.group_by("plan").agg(pl.col("amount_cents").first()).to_dict().values()))
    assert prices == {p: cfg.billing.price_cents[p] for p in prices}
    assert rows.equals(payment_rows(frame, key, 11, cfg.billing.price_cents))
    assert rows["id"].n_unique() == rows.height
    assert (rows["created_at"].dt.hour() == PAYMENT_HOUR).all()


def test_a_year_of_billing_at_pool_400_changes_plans_and_churns_some_on_payment():
    cfg = LifecycleConfig()
    state = initial_state(cfg, 21, day_number(dt.date(2026, 1, 1)) - 1, 400)
    totals = {"up": 0, "down": 0, "charges": 0, "failures": 0, "payment_churn": 0, "churn": 0}
    for day in range(state.day + 1, state.day + 366):
        state = step_day(state, day, cfg, seed=21)
        c = state.cols
        totals["up"] += int((c["plan_changed_today"] == 1).sum())
        totals["down"] += int((c["plan_changed_today"] == -1).sum())
        totals["charges"] += int((c["payment_attempt_today"] == 1).sum())
        totals["failures"] += int((c["payment_failed_today"] & (c["payment_attempt_today"] == 1)).sum())
        churned = c["churned_today"]
        totals["churn"] += int(churned.sum())
        totals["payment_churn"] += int((churned & (c["churn_reason"] == billing.CHURN_PAYMENT)).sum())
    assert totals["charges"] == pytest.approx(12 * 400, rel=0.1)
    assert 0.02 < totals["failures"] / totals["charges"] < 0.045
    assert totals["up"] > 0 and totals["down"] > 0
    assert 0 < totals["payment_churn"] < 0.25 * totals["churn"]
    assert (state.cols["state"][state.cols["churn_reason"] == billing.CHURN_PAYMENT] == CHURNED).all()
