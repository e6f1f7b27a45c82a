"""The five per-tick behaviours, each alone, with the numbers of the configuration."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from simulation_assets.core.activity.config import ActivityConfig
from simulation_assets.core.activity.customers import (
    customer_names,
    initial_customers,
    new_customer_arrives,
    step_tick,
)
from simulation_assets.core.activity.schema import CUSTOMER_SCHEMA
from simulation_assets_tests.activity.helpers import AT, isolate, pool

N = 20_000


def test_active_customers_call_the_api_with_probability_point_eight_and_five_to_fifty_calls():
    before = pool(N)
    result = step_tick(before, 1, isolate(api_call_probability=0.8), 1, AT)
    calls = result.customers["calls_last_tick"].to_numpy()
    callers = calls > 0
    assert abs(callers.mean() - 0.8) < 0.015
    assert calls[callers].min() == 5 and calls[callers].max() == 50
    assert abs(calls[callers].mean() - 27.5) < 0.5
    assert (result.customers["total_api_calls"] - before["total_api_calls"]).to_list() == calls.tolist()
    last = result.customers["last_api_call_at"]
    assert (last.filter(pl.Series(callers)) == AT).all()
    assert (last.filter(pl.Series(~callers)) == before["last_api_call_at"].filter(pl.Series(~callers))).all()
    assert result.summary["api_calls"] == int(calls.sum())
    assert (result.events.filter(pl.col("kind") == "api_calls")).height == int(callers.sum())


def test_increasing_usage_makes_one_point_six_times_the_calls_of_stable_usage():
    cfg = isolate(api_call_probability=1.0)
    stable = step_tick(pool(N, trend="stable"), 1, cfg, 3, AT).customers["calls_last_tick"].mean()
    rising = step_tick(pool(N, trend="increasing"), 1, cfg, 3, AT).customers["calls_last_tick"].mean()
    falling = step_tick(pool(N, trend="declining"), 1, cfg, 3, AT).customers["calls_last_tick"].mean()
    assert rising / stable == pytest.approx(1.6, rel=0.02)
    assert falling / stable == pytest.approx(0.5, rel=0.03)


def test_error_rates_spike_by_eight_to_twenty_points_for_six_percent_of_active_customers():
    before = pool(N, error_rate=0.02)
    result = step_tick(before, 1, isolate(error_spike_probability=0.06), 5, AT)
    rise = result.customers["error_rate"].to_numpy() - 0.02
    spiked = rise > 0
    assert abs(spiked.mean() - 0.06) < 0.006
    assert rise[spiked].min() >= 0.08 - 1e-12 and rise[spiked].max() <= 0.20 + 1e-12
    spikes = result.events.filter(pl.col("kind") == "error_spike")
    assert spikes.height == int(spiked.sum())
    assert spikes["message"][0].startswith("🚨 ") and "2.0% → " in spikes["message"][0]


def test_spikes_only_hit_active_customers_and_never_exceed_the_cap():
    onboarding = pool(1000, stage="ONBOARDING", error_rate=0.02)
    result = step_tick(onboarding, 1, isolate(error_spike_probability=1.0), 5, AT)
    assert (result.customers["error_rate"] == 0.02).all()
    hot = pool(1000, error_rate=0.55)
    capped = step_tick(hot, 1, isolate(error_spike_probability=1.0), 5, AT).customers["error_rate"]
    assert capped.max() == pytest.approx(0.6)


def test_elevated_error_rates_are_fixed_back_to_the_baseline_35_percent_of_the_time():
    before = pool(N, error_rate=0.30)
    result = step_tick(before, 1, isolate(error_fix_probability=0.35), 9, AT)
    after = result.customers["error_rate"].to_numpy()
    fixed = after < 0.30
    assert abs(fixed.mean() - 0.35) < 0.015
    assert after[fixed].min() >= 0.005 and after[fixed].max() <= 0.05
    healthy = step_tick(pool(1000, error_rate=0.03), 1, isolate(error_fix_probability=1.0), 9, AT)
    assert (healthy.customers["error_rate"] == 0.03).all()  # a healthy rate is not "fixed"


def test_stable_usage_changes_ten_percent_of_ticks_evenly_up_or_down():
    result = step_tick(
        pool(N, trend="stable"), 1, isolate(trend_change_probability=(0.25, 0.10, 0.25)), 11, AT
    )
    trends = result.customers["usage_trend"].value_counts()
    share = {r["usage_trend"]: r["count"] / N for r in trends.to_dicts()}
    assert abs(share["increasing"] + share["declining"] - 0.10) < 0.008
    assert abs(share["increasing"] - share["declining"]) < 0.01
    assert result.events.filter(pl.col("kind") == "trend_change").height == round(
        (share["increasing"] + share["declining"]) * N
    )


def test_rising_usage_changes_a_quarter_of_ticks_mostly_back_to_stable():
    result = step_tick(
        pool(N, trend="increasing"), 1, isolate(trend_change_probability=(0.25, 0.10, 0.25)), 11, AT
    )
    share = {
        r["usage_trend"]: r["count"] / N for r in result.customers["usage_trend"].value_counts().to_dicts()
    }
    assert abs(share["stable"] - 0.25 * 0.75) < 0.01
    assert abs(share["declining"] - 0.25 * 0.25) < 0.006
    assert abs(share["increasing"] - 0.75) < 0.01


def test_onboarding_customers_make_a_first_call_and_become_active_a_quarter_of_ticks():
    before = pool(N, stage="ONBOARDING")
    result = step_tick(before, 4, isolate(first_call_probability=0.25), 13, AT)
    after = result.customers
    activated = after["stage"] == "ACTIVE"
    assert abs(activated.mean() - 0.25) < 0.015
    first = after.filter(activated)
    assert first["total_api_calls"].min() >= 5 and (first["stage_since_tick"] == 4).all()
    assert (first["last_api_call_at"] == AT).all()
    assert (after.filter(~activated)["total_api_calls"] == 0).all()
    assert result.summary["first_api_calls"] == first.height


def test_new_customers_subscribe_to_a_trial_35_percent_of_ticks():
    result = step_tick(pool(N, stage="NEW"), 2, isolate(subscribe_probability=0.35), 13, AT)
    subscribed = result.customers.filter(pl.col("stage") == "ONBOARDING")
    assert abs(subscribed.height / N - 0.35) < 0.015
    assert (subscribed["plan"] == "trial").all() and (subscribed["stage_since_tick"] == 2).all()


def test_a_new_customer_signs_up_in_about_ten_percent_of_ticks():
    cfg = isolate(new_customer_probability=0.10)
    arrivals = [new_customer_arrives(cfg, 17, t) for t in range(1, 5001)]
    assert 440 <= sum(arrivals) <= 560  # binomial(5000, 0.1): mean 500, sd 21
    empty = pl.DataFrame(schema=CUSTOMER_SCHEMA)
    for tick in range(1, 41):  # the tick itself follows the same draw
        joined = step_tick(empty, tick, cfg, 17, AT).customers
        assert joined.height == int(arrivals[tick - 1])
    newcomer = step_tick(empty, arrivals.index(True) + 1, cfg, 17, AT).customers.row(0, named=True)
    assert newcomer["stage"] == "NEW" and newcomer["plan"] == "none" and newcomer["total_api_calls"] == 0
    assert newcomer["customer_no"] == 0 and newcomer["last_api_call_at"] is None


def test_new_customers_get_the_next_customer_number_and_a_stable_id():
    cfg = isolate(new_customer_probability=1.0)
    before = pool(5)
    first = step_tick(before, 1, cfg, 17, AT)
    again = step_tick(before, 1, cfg, 17, AT)
    assert first.customers.height == 6 and first.customers["customer_no"].to_list() == [0, 1, 2, 3, 4, 5]
    assert first.customers["customer_id"].n_unique() == 6
    assert first.customers.equals(again.customers)
    assert first.events.filter(pl.col("kind") == "new_customer")["customer_name"].to_list() == [
        first.customers["name"][-1]
    ]


def test_a_tick_is_deterministic_for_a_seed_and_tick_number():
    cfg = ActivityConfig(initial_customers=200)
    start = initial_customers(cfg, 21, AT)
    a = step_tick(start, 1, cfg, 21, AT)
    b = step_tick(start, 1, cfg, 21, AT)
    c = step_tick(start, 2, cfg, 21, AT)
    assert a.customers.equals(b.customers) and a.events.equals(b.events)
    assert not a.customers.equals(c.customers)


def test_counters_never_decrease_over_two_hundred_ticks():
    cfg = ActivityConfig(initial_customers=50)
    state = initial_customers(cfg, 23, AT)
    for tick in range(1, 201):
        after = step_tick(state, tick, cfg, 23, AT).customers
        assert after.height >= state.height
        previous = state["total_api_calls"].to_numpy()
        assert np.all(after["total_api_calls"].to_numpy()[: state.height] >= previous)
        state = after
    assert state.height > 50


def test_customer_names_are_unique_for_the_first_320_customers():
    names = customer_names(42, np.arange(320))
    assert len(set(names)) == 320
    assert customer_names(42, np.arange(5)) == names[:5]
    assert customer_names(42, np.array([320]))[0].endswith(" 2")


def test_configuration_errors_name_the_field():
    with pytest.raises(ValidationError, match="initial_stage_shares must sum to 1"):
        ActivityConfig(initial_stage_shares=(0.5, 0.5, 0.5))
    with pytest.raises(ValidationError, match="new_customer_probability"):
        ActivityConfig(new_customer_probability=1.5)
    with pytest.raises(ValidationError, match="error_rate_threshold"):
        ActivityConfig(baseline_error_rate={"low": 0.01, "high": 0.2})
