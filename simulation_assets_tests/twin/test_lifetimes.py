"""Lifetimes: who counts as gone at the end of an export, and how long the others stay at risk."""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.twin.activity import (
    UserSpans,
    beta_binomial,
    churn_weights,
    first_last_days,
    kaplan_meier,
    returns_by_fate,
    self_consistent_survival,
    survival_at,
    trim_edge,
    user_spans,
)
from simulation_assets.core.twin.features import Window


def test_users_who_may_come_back_stay_at_risk_until_the_window_ends() -> None:
    # 50 users last seen on day 5 who may still come back (churn chance 0), observed until day 20,
    # 50 who churned on day 10 and 50 on day 15. Censored at their last visit, the first group would
    # leave the risk set at day 5, and a half instead of a third would seem to leave on day 10.
    duration = np.r_[np.full(50, 5), np.full(50, 10), np.full(50, 15)]
    churned = np.r_[np.zeros(50), np.ones(100)]
    observed = np.r_[np.full(50, 20), np.full(50, 10), np.full(50, 15)]
    assert np.isclose(kaplan_meier(duration, churned, 30).survival[11], 1 / 2)  # the bias
    fair = kaplan_meier(duration, churned, 30, observed).survival
    assert np.isclose(fair[11], 2 / 3) and np.isclose(fair[16], 1 / 3) and np.isclose(fair[20], 1 / 3)
    # A share of a churn counts as that share at its last visit and the rest stays at risk.
    half = kaplan_meier(np.full(10, 5), np.full(10, 0.5), 30, np.full(10, 20))
    assert np.isclose(half.survival[6], 0.5) and np.isclose(half.survival[20], 0.5)


def test_a_class_that_never_comes_back_is_gone_after_its_first_day() -> None:
    # One-and-done visitors: 200 users, each seen on one day, all absent for weeks since. Their curve is
    # one age long; its tail must end them there (a tail hazard of 0 made them immortal, and a twin of an
    # ad-landing export had users active on 29 days where the real ones came on 1.3).
    life, chance = self_consistent_survival(np.zeros(200), np.ones(200), 90, np.full(200, 60))
    assert np.allclose(chance, 1.0) and life.tail_hazard == 1.0
    assert survival_at(life, np.array([0, 1, 30])).tolist() == [1.0, 0.0, 0.0]
    # A curve of one age with nobody gone keeps everyone (no hazard seen).
    assert kaplan_meier(np.zeros(5), np.zeros(5), 0).tail_hazard == 0.0


def test_absence_is_judged_by_the_gaps_of_users_who_lived_as_long() -> None:
    # One class: short-lived users come every day (gaps of 1 day); long-lived ones (8+ weeks) also take
    # 20-day breaks. A long-lived user absent 10 days may be on such a break; a short-lived one is gone.
    rows = []
    for u in range(300):  # short-lived: 10 daily visits
        rows += [(u, d) for d in range(10)]
    for u in range(300, 600):  # long-lived: daily, a 20-day break, daily again (70 days)
        rows += [(u, d) for d in range(30)] + [(u, d) for d in range(50, 70)]
    activity = pl.DataFrame(rows, schema={"user": pl.Int64, "day": pl.Int64}, orient="row")
    users = np.arange(602)
    cls = np.zeros(602, np.int64)
    lived = np.r_[np.full(300, 9), np.full(300, 69), 9, 69]  # the last two are judged
    absence = np.r_[np.zeros(600), 10, 10]
    weight = churn_weights(activity, users, cls, lived, absence)
    # The short-lived user is judged by everyone's gaps (300 breaks in 17,400 gaps), the long-lived one
    # by the long-lived users' own (300 in 14,700): more of theirs are as long, so less likely gone.
    assert np.isclose(weight[600], 1 - 300 / 17_400) and np.isclose(weight[601], 1 - 300 / 14_700)
    assert weight[601] < weight[600]
    assert weight[:600].max() == 0.0  # seen on the last day: not gone


def test_churn_chances_agree_with_the_survival_curve_they_make() -> None:
    # 4,000 users seen from day 0 of a 60-day window, each leaving with a daily hazard of 1 %, visiting
    # every alive day with chance 0.3 (gaps geometric). The plain weight (the share of gaps no longer
    # than the absence) counts nearly every user absent a week or more at the end as gone, so the
    # curve drops at the window's end (to 0.365 at day 58 against a true 0.558). Weighed against the
    # curve's own chance of leaving in that time, the chances move the end toward the truth and leave
    # the ages the window has seen through alone.
    g = np.random.default_rng(11)
    n, days, rate = 4_000, 60, 0.3
    life = g.geometric(0.01, n) - 1
    visits = g.random((n, days)) < rate
    visits[:, 0] = True
    visits &= np.arange(days)[None, :] <= life[:, None]
    last = days - 1 - np.argmax(visits[:, ::-1], axis=1)
    absence = days - 1 - last
    plain = 1 - (1 - rate) ** absence
    observed = np.full(n, days - 1)
    naive = kaplan_meier(last, plain, days, observed).survival
    fitted, chances = self_consistent_survival(last, plain, days, observed)
    truth = 0.99 ** np.arange(days)
    assert abs(fitted.survival[30] - truth[30]) < 0.03 and abs(fitted.survival[30] - naive[30]) < 1e-3
    assert naive[58] < truth[58] - 0.15
    # The curve's last week is left to the tail hazard of the ages before it (trim_edge).
    end = survival_at(fitted, np.array([58]))[0]
    # Measured: 0.511 against a true 0.558 (0.365 with the plain weights).
    assert naive[58] + 0.1 < end and abs(end - truth[58]) < 0.06, (naive[58], end, truth[58])
    assert np.all(chances[absence == 0] == 0) and np.all((chances >= 0) & (chances <= 1))


def test_a_daily_users_absence_is_judged_by_daily_users_gaps() -> None:
    # One class: 200 daily users, 200 coming every third day, 200 weekly, all seen from the first week
    # of a 70-day window. Two daily and two weekly ones were last seen 5 days before the end: long for
    # a daily user (no daily gap is that long), short for a weekly one. Pooled, the class's gaps
    # (mostly daily ones) would call both gone.
    daily = [(u, d) for u in range(200) for d in range(70 if u >= 2 else 65)]
    third = [(u, d) for u in range(200, 400) for d in range(0, 70, 3)]
    weekly = [(u, d) for u in range(400, 600) for d in (range(6, 70, 7) if u >= 402 else range(1, 65, 7))]
    activity = pl.DataFrame(daily + third + weekly, schema={"user": pl.Int64, "day": pl.Int64}, orient="row")
    users = first_last_days(activity)
    spans = user_spans(users, activity, np.zeros(600, np.int64), Window(0, 69))
    weight = dict(zip(spans.user.tolist(), spans.churn_weight.tolist(), strict=True))
    assert weight[0] == weight[1] == 1.0  # daily users 5 days away: gone
    assert weight[400] == weight[401] == 0.0  # weekly users 5 days away: between two visits
    pooled = churn_weights(activity, spans.user, np.zeros(600, np.int64), spans.lifetime, 69 - spans.last)
    assert pooled[400] > 0.8  # what the class's pooled gaps would say


def test_return_chances_are_banded_as_the_twin_bands_its_users() -> None:
    # Two users of a 60-day window who came on day 0 and day 9 (2 active days), then nothing: gone on
    # day 9 (lifetime 9, band 1-3 weeks) with chance 0.7, else still there and seen for 59 days (band
    # 6 weeks+), as a twin user who lives past the run is banded by the days it lives in it.
    spans = UserSpans(user=np.arange(2), first=np.zeros(2, np.int64), last=np.full(2, 9),
                      active_days=np.full(2, 2), churned=np.ones(2, np.bool_), lifetime=np.full(2, 9),
                      churn_weight=np.full(2, 0.7))  # fmt: skip
    succ, trials, band, weight = returns_by_fate(spans, Window(0, 59), np.array([0.7, 0.0]))
    assert succ.tolist() == [0, 0, 1, 1] and trials.tolist() == [8, 8, 59, 59]
    assert band.tolist() == [1, 1, 3, 3] and np.allclose(weight, [0.7, 0.0, 0.3, 1.0])
    # A weight counts as that many users: weight 2 is the same fit as the records twice.
    g = np.random.default_rng(1)
    n = g.integers(5, 40, 300)
    s = g.binomial(n, g.beta(2.0, 5.0, 300))
    twice = beta_binomial(np.r_[s, s], np.r_[n, n])
    assert np.allclose(beta_binomial(s, n, np.full(300, 2.0)), twice, rtol=1e-4)
    assert not np.allclose(beta_binomial(s, n, np.where(s > n / 3, 3.0, 1.0)), twice, rtol=1e-2)


def test_a_cohort_seen_to_the_end_does_not_fall_off_a_cliff_at_the_windows_last_days() -> None:
    # 500 weekday users of a 70-day window, all there on day 0, last seen on the last Friday (two days
    # before the end: 80 % of their gaps are that short), and 100 who left on day 20. Absences of two
    # days say little, yet the curve at those last ages is made of them alone: it drops there.
    lifetime = np.r_[np.full(500, 67), np.full(100, 20)]
    observed = np.full(600, 69)
    weight = np.r_[np.full(500, 0.8), np.ones(100)]
    life, chance = self_consistent_survival(lifetime, weight, 70, observed)
    cliff = kaplan_meier(lifetime, chance, 70, observed)
    assert cliff.survival[-1] <= 0.6 * cliff.survival[50]  # the drop the trimmed curve leaves out
    assert len(life.survival) == len(cliff.survival) - 7
    assert np.isclose(life.survival[-1], 5 / 6) and life.tail_hazard <= 1e-6
    assert trim_edge(kaplan_meier(np.full(10, 5), np.ones(10), 12)).survival.size == 6  # short: kept whole


def test_a_life_ends_on_a_day_its_user_would_come(spec) -> None:
    # A business tool used on weekdays only: a life that ends on a Saturday was last used on the Friday.
    # With the last day of every life always active, lives ending at a weekend came out as weekend
    # visits (2 in 7 of the last visits; in a 14-day-trial export 15-32 % of the twin's last visits
    # against 5-13 %), and users who came on a Monday kept no more of their third week than the others.
    from simulation_assets.core.twin.features import weekday
    from simulation_assets.core.twin.generate import Generator
    from simulation_assets.core.twin.spec import TwinSpec

    doc = spec.document
    weekdays_only = [
        cd.model_copy(update={"weekday_multipliers": [1.2] * 5 + [0.01] * 2}) for cd in doc.classes
    ]
    twin = TwinSpec(doc.model_copy(update={"classes": weekdays_only}), spec.tables).with_generation(
        users=8000
    )
    gen = Generator(twin)
    pop, days = gen.population, twin.document.generation.days
    last_day = np.full(len(pop.cls), -1)
    for d, who in enumerate(gen.active_by_day):
        last_day[who] = d
    ended = (pop.first + pop.lifetime < days - 1) & (pop.lifetime >= 7)
    assert ended.sum() > 300
    weekend = weekday(gen.start_day + last_day[ended]) >= 5
    assert weekend.mean() < 0.05
    # Nobody comes after their life's end, and the last visit is at most six days before it.
    assert np.all(last_day[ended] <= pop.first[ended] + pop.lifetime[ended])
    assert np.all(last_day[ended] >= pop.first[ended] + pop.lifetime[ended] - 6)
    # A week without quiet days keeps every life's last day.
    even = [cd.model_copy(update={"weekday_multipliers": [1.1, 0.9] * 3 + [1.0]}) for cd in doc.classes]
    flat = Generator(TwinSpec(doc.model_copy(update={"classes": even}), spec.tables)).population
    assert np.array_equal(flat.last_visit, flat.lifetime)
