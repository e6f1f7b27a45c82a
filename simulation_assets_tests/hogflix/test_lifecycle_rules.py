"""Each lifecycle rule pinned with its number, on hand-made pools."""

import datetime as dt
import re

import numpy as np
import pytest
from pydantic import ValidationError

from simulation_assets.core.hogflix.config import (
    LIFE_EVENTS,
    PATTERNS,
    LifecycleConfig,
    lifecycle_config_from_env,
)
from simulation_assets.core.hogflix.frames import to_frame
from simulation_assets.core.hogflix.lifecycle import churn_chance, lapse_chance, return_probability, step_day
from simulation_assets.core.hogflix.persona_state import (
    ACTIVE,
    BINGE,
    CASUAL,
    CHURNED,
    DAILY,
    DORMANT,
    MONTHLY,
    NEW,
    REGULAR,
    WEEKEND,
    day_number,
)
from simulation_assets.core.hogflix.viewing import flixbuddy_count
from simulation_assets_tests.hogflix.helpers import DAY, no_events, pool, share

UNSCALED = LifecycleConfig(return_scale=1.0, seasons={"enabled": False})
SCALED = LifecycleConfig(seasons={"enabled": False})  # the calibrated return_scale, on an ordinary day


def prob(
    day: dt.date,
    pattern: int,
    state: int = ACTIVE,
    score: int = 50,
    streak: int = 0,
    event: int = -1,
    binging: bool = False,
    lapsed: bool = False,
    cfg: LifecycleConfig = UNSCALED,
) -> float:
    one = lambda v, t: np.array([v], dtype=t)  # noqa: E731
    return float(
        return_probability(
            cfg,
            day_number(day),
            one(state, np.int8),
            one(pattern, np.int8),
            one(score, np.int32),
            one(streak, np.int32),
            one(event, np.int8),
            one(binging, np.bool_),
            one(lapsed, np.bool_),
        )[0]
    )


MONDAY, WEDNESDAY, THURSDAY, SATURDAY = (dt.date(2026, 1, d) for d in (12, 14, 15, 17))


@pytest.mark.parametrize(
    ("pattern", "day", "expected"),
    [
        (DAILY, MONDAY, 0.85),
        (REGULAR, MONDAY, 0.45),
        (REGULAR, THURSDAY, 0.55),
        (REGULAR, SATURDAY, 0.55),
        (WEEKEND, WEDNESDAY, 0.15),
        (WEEKEND, SATURDAY, 0.85),
        (BINGE, MONDAY, 0.05),
        (MONTHLY, WEDNESDAY, 0.03),
        (MONTHLY, dt.date(2026, 2, 2), 0.80),
        (MONTHLY, dt.date(2026, 2, 3), 0.80),
        (MONTHLY, dt.date(2026, 2, 4), 0.03),
    ],
)
def test_pattern_base_returns_follow_the_calendar(pattern, day, expected):
    assert prob(day, pattern) == pytest.approx(expected, abs=1e-6)


def test_binge_periods_return_ninety_percent():
    assert prob(MONDAY, BINGE, binging=True) == pytest.approx(0.90, abs=1e-6)


def test_new_users_return_at_eighty_five_percent_whatever_the_pattern():
    assert prob(MONDAY, MONTHLY, state=NEW) == pytest.approx(0.85, abs=1e-6)
    # The calibration's return_scale leaves NEW users at the specified "80%+".
    assert prob(MONDAY, MONTHLY, state=NEW, cfg=SCALED) == pytest.approx(0.85, abs=1e-6)


def test_dormant_modifier_multiplies_return_by_030_and_churned_never_return():
    active = prob(MONDAY, REGULAR, score=70)
    assert prob(MONDAY, REGULAR, score=70, state=DORMANT) == pytest.approx(0.30 * active, abs=1e-6)
    assert prob(MONDAY, DAILY, score=100, state=CHURNED) == 0.0


@pytest.mark.parametrize(("event", "expected"), [(0, 0.0), (1, 0.10), (2, 0.20), (3, 0.95)])
def test_life_events_replace_the_return_probability(event, expected):
    assert LIFE_EVENTS[event] in ("VACATION", "SICK", "BUSY_WORK", "NEW_RELEASE_HYPE")
    assert prob(MONDAY, DAILY, score=100, streak=12, event=event) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("streak", "bonus"), [(2, 0.0), (3, 0.05), (6, 0.10), (11, 0.15), (12, 0.20), (40, 0.20)]
)
def test_streak_bonus_is_five_points_per_three_days_capped_at_twenty(streak, bonus):
    assert prob(MONDAY, REGULAR, streak=streak) == pytest.approx(0.45 + bonus, abs=1e-6)


@pytest.mark.parametrize(("score", "effect"), [(50, 0.0), (90, 0.20), (10, -0.20), (100, 0.25)])
def test_engagement_score_shifts_return_by_score_minus_50_over_200(score, effect):
    assert prob(MONDAY, REGULAR, score=score) == pytest.approx(0.45 + effect, abs=1e-6)


def test_default_return_scale_multiplies_every_probability():
    scaled = SCALED
    assert prob(MONDAY, REGULAR, cfg=scaled) == pytest.approx(0.45 * scaled.return_scale, abs=1e-6)


def test_dormant_users_churn_three_percent_a_day_after_30_days():
    cfg = LifecycleConfig(crowding_churn=0.0)  # the seed's rule alone (crowding: churn_chance below)
    n = 200_000
    state = pool(
        cfg,
        n,
        state=DORMANT,
        consecutive_missed_days=40,
        lapsed=True,
        pattern=MONTHLY,
        engagement_score=0,
        history=0,
    )
    after = step_day(state, DAY, cfg, seed=5)
    still_inactive = ~after.cols["active_today"][:n]
    churned = after.cols["churned_today"][:n]
    assert share(churned[still_inactive]) == pytest.approx(0.03, abs=0.002)
    assert not churned[~still_inactive].any()
    marked = after.cols["marked_for_cleanup"][:n][churned]
    assert share(marked) == pytest.approx(0.90, abs=0.02)
    assert (after.cols["state"][:n][churned] == CHURNED).all()


@pytest.mark.parametrize(
    ("pool_size", "chance"), [(300, 0.03), (380, 0.03), (400, 0.03 * 8), (420, 0.03 * 15), (440, 0.03 * 22)]
)
def test_churn_chance_is_three_percent_at_the_bottom_of_the_band_and_rises_with_crowding(pool_size, chance):
    """crowding_churn = 14: the base 3 % at 380 and below, x (1 + 14 x (pool - 380) / 40) above."""
    assert churn_chance(LifecycleConfig(), pool_size) == pytest.approx(chance)
    # The same shape at ten times the pool: the band is 3,800-4,200.
    assert churn_chance(LifecycleConfig(persona_pool=4_000), pool_size * 10) == pytest.approx(chance)


def test_dormant_users_under_30_days_inactive_never_churn():
    cfg = LifecycleConfig()
    state = pool(cfg, 50_000, state=DORMANT, consecutive_missed_days=20, lapsed=True, history=0)
    after = step_day(state, DAY, cfg, seed=5)
    assert not after.cols["churned_today"][:50_000].any()


def test_churned_personas_marked_for_cleanup_are_gone_the_next_day_and_the_rest_stay_churned():
    cfg = LifecycleConfig(
        dormant_daily_churn=1.0, churn_by_plan={"Premium": 1.0, "Standard": 1.0, "Basic": 1.0}
    )
    state = pool(cfg, 2_000, state=DORMANT, consecutive_missed_days=45, lapsed=True, history=0)
    day1 = step_day(state, DAY, cfg, seed=3)
    churned = day1.cols["churned_today"][:2_000]
    marked = int(day1.cols["marked_for_cleanup"].sum())
    day2 = step_day(day1, DAY + 1, cfg, seed=3)
    kept = day2.cols["state"] == CHURNED
    assert int(kept.sum()) == int(churned.sum()) - marked
    assert not day2.cols["active_today"][kept].any()


def test_engagement_score_gains_two_loses_one_and_ten_more_on_breaking_a_week_streak():
    cfg = no_events(return_scale=1.0, traits={"enabled": False})  # the specification's rule alone
    active = pool(cfg, 3, pattern=DAILY, engagement_score=[60, 99, 100], consecutive_active_days=2)
    after = step_day(active, DAY, cfg, seed=1)
    assert after.cols["active_today"][:3].all()
    assert after.cols["engagement_score"][:3].tolist() == [62, 100, 100]
    assert after.cols["consecutive_active_days"][:3].tolist() == [3, 3, 3]

    vacation = dict(event=LIFE_EVENTS.index("VACATION"), event_ends=DAY + 5)
    idle = pool(
        cfg, 3, pattern=DAILY, engagement_score=[60, 60, 5], consecutive_active_days=[0, 8, 9], **vacation
    )
    after = step_day(idle, DAY, cfg, seed=1)
    assert not after.cols["active_today"][:3].any()
    assert after.cols["engagement_score"][:3].tolist() == [59, 49, 0]
    assert after.cols["consecutive_active_days"][:3].tolist() == [0, 0, 0]
    assert after.cols["consecutive_missed_days"][:3].tolist() == [1, 1, 1]


def test_life_events_start_at_their_daily_chances_and_last_their_durations():
    cfg = LifecycleConfig()
    n = 400_000
    after = step_day(pool(cfg, n), DAY, cfg, seed=11)
    event, ends = after.cols["event"][:n], after.cols["event_ends"][:n]
    for index, name in enumerate(LIFE_EVENTS):
        rule = cfg.life_events[name]
        started = event == index
        assert share(started) == pytest.approx(rule.daily_chance, rel=0.08), name
        duration = ends[started] - DAY
        assert duration.min() == rule.duration_days.low and duration.max() == rule.duration_days.high, name


def test_life_events_clear_when_their_duration_expires():
    cfg = no_events()
    state = pool(cfg, 10, event=LIFE_EVENTS.index("SICK"), event_ends=[DAY] * 5 + [DAY + 1] * 5)
    after = step_day(state, DAY, cfg, seed=2)
    assert (after.cols["event"][:5] == -1).all()
    assert (after.cols["event"][5:10] == LIFE_EVENTS.index("SICK")).all()


def test_binge_cycle_runs_three_to_seven_days_then_cools_down_ten_to_twenty_one():
    cfg = LifecycleConfig()
    n = 20_000
    flags = np.arange(n) % 2 == 0
    state = pool(cfg, n, pattern=BINGE, binge_phase_ends=DAY, binge_is_binging=flags)
    after = step_day(state, DAY, cfg, seed=4)
    length = after.cols["binge_phase_ends"][:n] - DAY
    cooled, started = length[flags], length[~flags]
    assert not after.cols["binge_is_binging"][:n][flags].any()
    assert after.cols["binge_is_binging"][:n][~flags].all()
    assert (cooled.min(), cooled.max()) == (10, 21)
    assert (started.min(), started.max()) == (3, 7)
    assert (after.cols["binge_day"][:n][~flags] == 1).all()


def test_patterns_are_assigned_on_day_14_from_the_plan_table():
    cfg = LifecycleConfig()
    n = 60_000
    state = pool(cfg, n, days_since_signup=13, pattern=DAILY, plan=0)  # Premium
    after = step_day(state, DAY, cfg, seed=8)
    shares = np.bincount(after.cols["pattern"][:n], minlength=5) / n
    assert shares == pytest.approx(cfg.pattern_weights["Premium"], abs=0.01)
    younger = pool(cfg, 1_000, days_since_signup=5, pattern=DAILY)
    assert (step_day(younger, DAY, cfg, seed=8).cols["pattern"][:1_000] == DAILY).all()


def test_fourteen_inactive_days_make_a_persona_dormant_and_a_visit_reactivates_it():
    cfg = no_events(return_scale=1.0, dormant_return_modifier=1.0)
    vacation = dict(event=LIFE_EVENTS.index("VACATION"), event_ends=DAY + 3)
    drifting = pool(cfg, 2, consecutive_missed_days=[12, 13], history=0, **vacation)
    after = step_day(drifting, DAY, cfg, seed=1)
    assert after.cols["state"][:2].tolist() == [CASUAL, DORMANT]

    dormant = pool(
        cfg,
        1,
        state=DORMANT,
        consecutive_missed_days=20,
        pattern=DAILY,
        engagement_score=100,
        lapsed=True,
        history=0,
    )
    cfg_visit = no_events(return_scale=1.0, dormant_return_modifier=1.0, lapsed_return_modifier=1.0)
    back = step_day(dormant, DAY, cfg_visit, seed=1)
    assert back.cols["active_today"][0] and back.cols["reactivated_today"][0]
    assert back.cols["state"][0] == CASUAL  # one visit in the last 14 days
    assert not back.cols["lapsed"][0]


def test_casual_means_one_visit_in_the_last_14_days_and_active_more():
    cfg = no_events()
    vacation = dict(event=LIFE_EVENTS.index("VACATION"), event_ends=DAY + 3)
    state = pool(cfg, 2, history=[0b1, 0b11], consecutive_missed_days=0, **vacation)
    after = step_day(state, DAY, cfg, seed=1)
    assert after.cols["state"][:2].tolist() == [CASUAL, ACTIVE]


def test_new_signups_have_synthetic_identities_and_start_new_and_daily():
    cfg = LifecycleConfig()
    after = step_day(pool(cfg, 300), DAY, cfg, seed=9)
    frame = to_frame(after).filter(signed_up_today=True)
    low, high = cfg.signup_range
    assert low <= frame.height <= high
    assert (frame["state"] == "NEW").all() and (frame["activity_pattern"] == "DAILY").all()
    assert frame["engagement_score"].is_between(85, 95).all()
    assert frame["is_synthetic"].all()
    for distinct_id, email in zip(frame["distinct_id"], frame["email"]):
        assert re.fullmatch(r"p_\d{5,}_\d{13}", distinct_id)
        assert email == f"{distinct_id}@hogflix-synthetic.test"
    assert frame["user_id"].n_unique() == frame.height


SATURDAY_DAY = day_number(dt.date(2026, 1, 10))
SICK = 1  # LIFE_EVENTS index


@pytest.mark.parametrize(
    ("columns", "day", "videos", "completion"),
    [
        ({"pattern": DAILY}, DAY, (5, 10), 72),  # pattern table: DAILY 5-10 at 70 %+
        ({"pattern": REGULAR}, DAY, (2, 5), 60),
        ({"pattern": WEEKEND}, DAY, (1, 3), 50),  # light on weekdays
        ({"pattern": WEEKEND}, SATURDAY_DAY, (4, 8), 75),  # binge-deep on Saturday and Sunday
        ({"pattern": MONTHLY}, DAY, (1, 3), 55),  # check-ins
        ({"pattern": BINGE, "binge_is_binging": True, "binge_phase_ends": DAY + 3}, DAY, (10, 15), 85),
        ({"pattern": BINGE, "binge_phase_ends": DAY + 9}, DAY, (1, 3), 50),  # cooldown
        ({"state": NEW, "days_since_signup": 2, "pattern": DAILY}, DAY, (3, 8), 45),  # state table: NEW
        ({"pattern": DAILY, "days_since_signup": 9}, DAY, (2, 5), 65),  # no permanent pattern yet: ACTIVE row
        ({"pattern": DAILY, "history": 0}, DAY, (1, 3), 50),  # one visit in 14 days: CASUAL
        ({"pattern": DAILY, "event": SICK, "event_ends": DAY + 3}, DAY, (1, 2), 40),  # SICK wins over all
    ],
)
def test_depth_follows_one_rule_of_state_pattern_and_life_event(columns, day, videos, completion):
    cfg = no_events(
        return_scale=1.0, traits={"enabled": False}
    )  # satisfaction moves completion (test_traits)
    n = 20_000
    after = step_day(pool(cfg, n, day=day, engagement_score=100, **columns), day, cfg, seed=6)
    active = after.cols["active_today"][:n]
    watched = after.cols["videos_today"][:n][active]
    assert active.sum() > 1_000
    assert (watched.min(), watched.max()) == videos
    assert after.cols["completion_today"][:n][active].mean() == pytest.approx(completion, abs=1.0)


def test_active_days_rate_add_to_the_watchlist_and_ask_flixbuddy_at_the_specified_rates():
    cfg = LifecycleConfig()
    n = 50_000
    after = step_day(pool(cfg, n, pattern=DAILY, engagement_score=100), DAY, cfg, seed=6)
    active = after.cols["active_today"][:n] & (after.cols["state"][:n] == ACTIVE)
    videos = after.cols["videos_today"][:n][active]
    assert after.cols["ratings_today"][:n][active].sum() / videos.sum() == pytest.approx(0.20, abs=0.01)
    assert share(after.cols["watchlist_adds_today"][:n][active] > 0) == pytest.approx(0.30, abs=0.01)
    assert int(after.cols["flixbuddy_today"].sum()) == 12  # 10 % of the visitors, kept within 8-12


@pytest.mark.parametrize(("active", "chats"), [(100, 10), (40, 8), (200, 12), (5, 5), (0, 0)])
def test_flixbuddy_talks_to_ten_percent_of_visitors_within_eight_to_twelve_a_day(active, chats):
    assert flixbuddy_count(LifecycleConfig(), active) == chats


def test_flixbuddy_band_scales_with_the_pool_but_never_exceeds_fifty_a_day():
    assert flixbuddy_count(LifecycleConfig(persona_pool=800), 180) == 18
    assert flixbuddy_count(LifecycleConfig(persona_pool=40_000), 9_000) == 50


def test_invalid_configuration_names_the_field():
    with pytest.raises(ValidationError, match="plan_weights"):
        LifecycleConfig(plan_weights={"Premium": 0.5, "Standard": 0.5, "Basic": 0.5})
    with pytest.raises(ValidationError, match="persona_pool"):
        LifecycleConfig(persona_pool=0)
    with pytest.raises(ValidationError, match="dormant_daily_churn"):
        LifecycleConfig(dormant_daily_churn=1.5)


def test_persona_pool_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PERSONA_POOL", "1200")
    assert lifecycle_config_from_env().persona_pool == 1200
    monkeypatch.setenv("PERSONA_POOL", "many")
    with pytest.raises(ValueError, match="PERSONA_POOL"):
        lifecycle_config_from_env()


def test_patterns_are_listed_in_the_spec_order():
    assert PATTERNS == ("DAILY", "REGULAR", "WEEKEND", "BINGE", "MONTHLY")


FIRST_OF_MONTH, SECOND_OF_MONTH = dt.date(2026, 2, 1), dt.date(2026, 2, 2)


def test_a_monthly_check_in_brings_back_a_dormant_persona_that_has_not_lapsed():
    cfg = SCALED
    check_in = 0.80 * cfg.return_scale
    # On the check-in days DORMANT's 0.30 does not apply to a persona kept away by its cadence ...
    assert prob(FIRST_OF_MONTH, MONTHLY, state=DORMANT, cfg=cfg) == pytest.approx(check_in, abs=1e-6)
    assert prob(FIRST_OF_MONTH, MONTHLY, state=ACTIVE, cfg=cfg) == pytest.approx(check_in, abs=1e-6)
    # ... but a persona that lost interest is still DORMANT x lapsed.
    lapsed = prob(FIRST_OF_MONTH, MONTHLY, state=DORMANT, lapsed=True, cfg=cfg)
    assert lapsed == pytest.approx(check_in * 0.30 * cfg.lapsed_return_modifier, abs=1e-6)
    assert prob(MONDAY, MONTHLY, state=ACTIVE, cfg=cfg) == pytest.approx(0.03 * cfg.return_scale, abs=1e-6)
    # A binge is a defining peak that keeps its specified 90 % (not scaled).
    assert prob(MONDAY, BINGE, state=ACTIVE, binging=True, cfg=cfg) == pytest.approx(0.90, abs=1e-6)


def test_a_monthly_persona_checks_in_once_a_month():
    cfg = no_events()
    n = 40_000
    day2 = day_number(SECOND_OF_MONTH)
    came_yesterday = step_day(pool(cfg, n, day=day2, pattern=MONTHLY, history=0b1), day2, cfg, seed=8)
    not_yet = step_day(pool(cfg, n, day=day2, pattern=MONTHLY, history=0b10), day2, cfg, seed=8)
    assert share(not_yet.cols["active_today"][:n]) == pytest.approx(0.80 * cfg.return_scale, abs=0.01)
    assert share(came_yesterday.cols["active_today"][:n]) == pytest.approx(0.03 * cfg.return_scale, abs=0.005)


@pytest.mark.parametrize(("pool_size", "factor"), [(400, 1.0), (420, 1.0), (440, 4.0), (460, 7.0)])
def test_lapse_chance_rises_only_above_the_band(pool_size, factor):
    cfg = LifecycleConfig()
    assert lapse_chance(cfg, pool_size) == pytest.approx(cfg.lapse_daily_chance * factor)
