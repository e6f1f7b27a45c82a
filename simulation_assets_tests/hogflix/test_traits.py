"""Hidden traits and the future items of the lifecycle: each pinned with its number, and seen to matter."""

import datetime as dt

import numpy as np
import pytest

from simulation_assets.core.hogflix import traits
from simulation_assets.core.hogflix.config import PLANS, LifecycleConfig
from simulation_assets.core.hogflix.lifecycle import season_factor, step_day
from simulation_assets.core.hogflix.persona_state import DORMANT, MONTHLY, REGULAR, day_number
from simulation_assets.core.hogflix.timeofday import MS_PER_DAY, MS_PER_HOUR
from simulation_assets_tests.hogflix.helpers import DAY, no_events, pool, share

PERSONAS = np.arange(1, 20_001)


def test_genre_affinity_is_a_stable_taste_with_a_favourite_or_two():
    a = traits.genre_affinity(7, PERSONAS, 1.5)
    assert a.shape == (20_000, 8) and np.allclose(a.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, traits.genre_affinity(7, PERSONAS, 1.5))  # a hash, not a draw
    assert not np.array_equal(a, traits.genre_affinity(8, PERSONAS, 1.5))
    assert a.max(axis=1).mean() == pytest.approx(0.44, abs=0.02)
    # Concentration 0 means no taste at all; every genre is somebody's favourite about as often.
    assert np.allclose(traits.genre_affinity(7, PERSONAS, 0.0), 1 / 8)
    favourites = np.bincount(traits.favorite_genre(7, PERSONAS, 1.5), minlength=8) / 20_000
    assert np.all(np.abs(favourites - 1 / 8) < 0.01)


def test_price_sensitivity_sits_around_the_plans_level():
    cfg = LifecycleConfig()
    for code, plan in enumerate(PLANS):
        values = traits.price_sensitivity(cfg, 3, PERSONAS, np.full(PERSONAS.size, code, np.int8))
        level = cfg.traits.price_sensitivity[plan]
        assert values.mean() == pytest.approx(level, abs=0.01)
        assert values.min() >= level - 0.2 - 1e-6 and values.max() <= level + 0.2 + 1e-6


def test_regions_follow_their_weights_and_time_zones():
    regions = traits.region(5, PERSONAS)
    shares = np.bincount(regions, minlength=len(traits.REGIONS)) / PERSONAS.size
    for (_, _, weight, _), got in zip(traits.REGIONS, shares):
        assert got == pytest.approx(weight, abs=0.01)
    assert traits.utc_offset_hours(np.array([0, 1, 2, 8], np.int8)).tolist() == [-5, -8, 0, 10]


def test_satisfaction_follows_the_days_experience_and_forgets_when_away():
    cfg = LifecycleConfig()
    s = np.full(4, 0.6, np.float32)
    active = np.array([True, True, True, False])
    completion = np.array([90.0, 30.0, 60.0, 0.0])
    rated = np.array([True, False, True, False])
    stars = np.array([5.0, 0.0, 1.0, 0.0], np.float32)
    after = traits.satisfaction_step(cfg, s, active, completion, rated, stars)
    # experience: 0.6 + 1.5 (c - 0.6) + 0.2 (stars - 3.7), clipped; a visit moves 10 % towards it
    experience = np.clip([0.6 + 1.5 * 0.3 + 0.2 * 1.3, 0.6 - 1.5 * 0.3, 0.6 + 0.2 * -2.7, 0.6], 0, 1)
    assert after[:3] == pytest.approx(0.6 + 0.1 * (experience[:3] - 0.6), abs=1e-5)
    assert after[3] == pytest.approx(0.6 + 0.02 * (0.60 - 0.6), abs=1e-6)
    # bounded: a long run of perfect days never leaves 0-1
    for _ in range(200):
        s = traits.satisfaction_step(cfg, s, active, completion, rated, stars)
    assert 0.0 <= s.min() and s.max() <= 1.0


def test_satisfied_personas_lapse_less_and_gain_score_faster():
    cfg = no_events(lapse_daily_chance=0.05, return_scale=1.0, crowding_lapse=0.0)
    n = 60_000
    low = step_day(pool(cfg, n, pattern=REGULAR, satisfaction=0.2), DAY, cfg, seed=4)
    high = step_day(pool(cfg, n, pattern=REGULAR, satisfaction=0.9), DAY, cfg, seed=4)
    # lapse chance x (1 + 1.0 x (0.6 - satisfaction)): 1.4 against 0.7
    assert share(low.cols["lapsed"][:n]) == pytest.approx(0.05 * 1.4, abs=0.004)
    assert share(high.cols["lapsed"][:n]) == pytest.approx(0.05 * 0.7, abs=0.004)
    visited_low = low.cols["active_today"][:n]
    visited_high = high.cols["active_today"][:n]
    # score 50, +2 for the visit, then round(4 x (s - 0.6)) for the day's satisfaction
    gain_low = low.cols["engagement_score"][:n][visited_low].mean() - 50
    gain_high = high.cols["engagement_score"][:n][visited_high].mean() - 50
    assert gain_high > gain_low + 1.5


def test_satisfied_personas_rate_higher():
    cfg = no_events(return_scale=1.0)
    n = 40_000
    days = [
        step_day(pool(cfg, n, pattern=REGULAR, satisfaction=s, plan=1), DAY, cfg, seed=9) for s in (0.2, 0.9)
    ]
    means = [d.cols["avg_rating_today"][:n][d.cols["ratings_today"][:n] > 0].mean() for d in days]
    # Standard's 3.8 shifted by 1.5 x (s - 0.6): 3.2 and 4.25 (less after clipping at 5 stars)
    assert means[0] == pytest.approx(3.8 - 0.6, abs=0.08) and means[1] > means[0] + 0.85


def test_visits_peak_in_the_evening_of_the_personas_own_time_zone():
    cfg = no_events(return_scale=1.0)
    n = 60_000
    after = step_day(pool(cfg, n, pattern=REGULAR), DAY, cfg, seed=2)
    c = after.cols
    active = c["active_today"][:n]
    utc_hour = (c["session_start_ms"][:n][active] % MS_PER_DAY) // MS_PER_HOUR
    offset = traits.utc_offset_hours(c["region"][:n][active]).astype(np.int64)
    local_hour = (utc_hour + offset) % 24
    assert np.bincount(local_hour, minlength=24).argmax() == 20  # the profile's peak, 20:00 local
    for region in (0, 1, 8):  # New York, Los Angeles, Sydney: the UTC peak moves with the offset
        utc = utc_hour[c["region"][:n][active] == region]
        assert np.bincount(utc, minlength=24).argmax() == (20 - traits.REGIONS[region][1]) % 24
    assert (c["session_start_ms"][:n][active] // MS_PER_DAY == DAY).all()  # still within the UTC day
    utc_only = cfg.model_copy(update={"regions_enabled": False})
    off = step_day(pool(utc_only, n, pattern=REGULAR), DAY, utc_only, seed=2)
    hours = (off.cols["session_start_ms"][:n][off.cols["active_today"][:n]] % MS_PER_DAY) // MS_PER_HOUR
    assert np.bincount(hours, minlength=24).argmax() == 20  # switched off: everyone on UTC


def test_seasons_lift_winter_and_holidays_and_can_be_switched_off():
    cfg = LifecycleConfig()
    jan15, jul15 = day_number(dt.date(2026, 1, 15)), day_number(dt.date(2026, 7, 15))
    assert season_factor(cfg, jan15) == pytest.approx(1.04, abs=1e-6)
    assert season_factor(cfg, jul15) == pytest.approx(1 - 0.04 * 0.9998, abs=1e-3)
    xmas, nye = day_number(dt.date(2026, 12, 25)), day_number(dt.date(2026, 12, 31))
    assert season_factor(cfg, xmas) > 1.10 and season_factor(cfg, nye) < 0.9
    off = cfg.model_copy(update={"seasons": cfg.seasons.model_copy(update={"enabled": False})})
    assert season_factor(off, xmas) == 1.0


def test_long_dormant_basic_customers_churn_more_than_premium_ones():
    cfg = LifecycleConfig(crowding_churn=0.0)
    n = 100_000
    state = pool(cfg, n, state=DORMANT, consecutive_missed_days=40, pattern=MONTHLY, history=0, lapsed=True)
    state.cols["plan"][:] = np.arange(n) % 3  # Premium, Standard, Basic
    after = step_day(state, DAY, cfg, seed=12)
    churned = after.cols["churned_today"][:n]
    rates = [share(churned[np.arange(n) % 3 == p]) for p in range(3)]
    assert rates == pytest.approx([0.03 * 0.8, 0.03, 0.03 * 1.25], abs=0.003)
