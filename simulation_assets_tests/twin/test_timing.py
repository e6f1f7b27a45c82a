"""When sessions happen: a user's own leaning toward days of several sessions, and lifetimes corrected by simulation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.twin import activity as act
from simulation_assets.core.twin.arrivals import calendar_days, with_calendar
from simulation_assets.core.twin.features import Window
from simulation_assets.core.twin.fit import calibrate_calendar, calibrate_survival, simulated_activity
from simulation_assets.core.twin.generate import Generator
from simulation_assets.core.twin.spec import KINDS, CalendarDay, TwinSpec


def _days(sessions: np.ndarray) -> pl.DataFrame:
    """Active days of users (rows) over days (columns): user, day, sessions."""
    users, days = np.indices(sessions.shape)
    return pl.DataFrame({"user": users.ravel(), "day": days.ravel(), "sessions": sessions.ravel()})


def test_persistence_is_how_much_a_users_days_agree_on_several_sessions() -> None:
    g = np.random.default_rng(3)
    pmf = np.r_[0.0, 0.5, 0.0, 0.5]  # one session or three, half the days each
    # Half the users always come once a day, the others three times: their days agree fully.
    fixed = np.repeat(np.where(np.arange(400) < 200, 1, 3)[:, None], 20, axis=1)
    assert act.sessions_persistence(_days(fixed), pmf, 5) >= 0.9
    # Every day a fresh coin: nothing beyond the noise of 20 days.
    fresh = np.where(g.random((400, 20)) < 0.5, 1, 3)
    assert act.sessions_persistence(_days(fresh), pmf, 5) < 0.05
    # Users whose own chance of a busy day is 0.2 or 0.8: in between, and the copula's spread is theirs.
    own = np.where(np.arange(400) < 200, 0.2, 0.8)[:, None]
    mixed = np.where(g.random((400, 20)) < own, 3, 1)
    rho = act.sessions_persistence(_days(mixed), pmf, 5)
    assert 0.3 < rho < 0.9
    assert abs(act.multi_share_spread(rho, 0.0) - 0.09) < 0.01  # the chances' variance: 0.3 ** 2


def test_a_user_keeps_their_leaning_in_the_twin(spec: TwinSpec) -> None:
    # Two sessions or one, half the days each, in every class. With persistence, users' shares of busy days
    # spread far beyond the binomial noise; without, they do not; either way half the days are busy.
    classes = len(spec.document.classes)
    half = pl.DataFrame(
        {"class": np.repeat(np.arange(classes), 2), "sessions": np.tile([1, 2], classes), "share": 0.5}
    )
    tables = {**spec.tables, "sessions_per_day": half.cast(spec.tables["sessions_per_day"].schema),
              "sessions_by_activity": spec.tables["sessions_by_activity"].clear()}  # fmt: skip

    def busy_shares(rho: float) -> tuple[float, float]:
        docs = [cd.model_copy(update={"sessions_persistence": rho}) for cd in spec.document.classes]
        gen = Generator(TwinSpec(spec.document.model_copy(update={"classes": docs}), tables))
        start = spec.document.generation.start
        frame = pl.concat([gen.day(start + dt.timedelta(days=i)).select("user_number", "$session_id", "timestamp")
                           for i in range(28)])  # fmt: skip
        per_day = frame.group_by("user_number", pl.col("timestamp").dt.date()).agg(
            pl.col("$session_id").n_unique()
        )
        per_user = per_day.group_by("user_number").agg(
            (pl.col("$session_id") >= 2).mean().alias("busy"), pl.len().alias("days")
        ).filter(pl.col("days") >= 8)  # fmt: skip
        return float((per_day["$session_id"] >= 2).mean()), float(per_user["busy"].std())  # type: ignore[arg-type]

    share_0, spread_0 = busy_shares(0.0)
    share_9, spread_9 = busy_shares(0.9)
    assert abs(share_0 - 0.5) < 0.03 and abs(share_9 - 0.5) < 0.05
    assert spread_0 < 0.16 and spread_9 > 0.3  # binomial noise of 8-28 days: at most 0.18


def _estimated(spec: TwinSpec, days: int) -> tuple[TwinSpec, dict[tuple[int, int], np.ndarray]]:
    """Return the spec with the lifetime estimator's curves of its own simulated users, and their true curves."""
    gen, activity, frame = simulated_activity(spec, 20_000, days)
    ids = frame["user"].to_numpy()
    cls, kind, lifetime = (
        gen.population.cls[ids].astype(np.int64),
        gen.population.kind[ids],
        gen.population.lifetime[ids],
    )
    window = Window(0, days - 1)
    spans = act.user_spans(frame, activity, cls, window)
    rows, truth, tails = [], {}, {}
    for c in range(len(spec.document.classes)):
        for kind_id, name in enumerate(KINDS):
            m = (cls == c) & (kind == kind_id)
            if m.sum() < act.MIN_STRATUM_USERS:
                m = cls == c
            life, _ = act.self_consistent_survival(
                spans.lifetime[m], spans.churn_weight[m], days, window.last - spans.first[m]
            )
            rows.append(
                pl.DataFrame(
                    {
                        "class": c,
                        "kind": name,
                        "age_days": np.arange(len(life.survival)),
                        "survival": life.survival,
                    }
                )
            )
            truth[(c, kind_id)] = (lifetime[m][None, :] >= np.arange(days)[:, None]).mean(axis=1)
            tails.setdefault(c, {})[name] = life.tail_hazard
    docs = [cd.model_copy(update={"tail_hazard": tails[c]}) for c, cd in enumerate(spec.document.classes)]
    table = pl.concat(rows).cast(spec.tables["survival"].schema)
    return TwinSpec(
        spec.document.model_copy(update={"classes": docs}), {**spec.tables, "survival": table}
    ), truth


def test_lifetimes_are_corrected_for_the_bias_of_their_estimator(spec: TwinSpec) -> None:
    # The twin's own users have known lifetimes. The estimator, run on their activity, ends too many of them
    # (long gaps do not fit in the window, so absences look like departures); the curves corrected by
    # simulation (from the estimates alone) are close to the truth again.
    days = spec.document.source.days
    estimated, truth = _estimated(spec, days)
    corrected = calibrate_survival(estimated, Window(0, days - 1))
    gen_est, gen_cor = Generator(estimated), Generator(corrected)
    late = np.arange(28, days)
    err_est, err_cor = [], []
    for (c, kind_id), true in truth.items():
        if (c, kind_id) not in gen_est.survival:
            continue
        for gen, err in ((gen_est, err_est), (gen_cor, err_cor)):
            curve = act.Lifetime(gen.survival[(c, kind_id)], float(gen.tail[c, kind_id]))
            err.append(act.survival_at(curve, late) - true[late])
    bias_est, bias_cor = float(np.mean(err_est)), float(np.mean(err_cor))
    assert bias_est < -0.02  # the estimator's own bias, 4-6 weeks into a life
    assert abs(bias_cor) < abs(bias_est) / 2


def test_persistence_leaves_out_what_a_users_activity_band_says() -> None:
    # The most frequent third of the users come three times on most days, the others once: the class's
    # users differ, but their bands say it all, so nothing is left for the copula within a band.
    g = np.random.default_rng(5)
    frequent = (np.arange(600) >= 400)[:, None]
    usual = g.random((600, 20)) < 0.85
    sessions = np.where(frequent, np.where(usual, 3, 1), np.where(usual, 1, 3))
    active = g.random(sessions.shape) < np.where(frequent, 0.9, 0.25)
    days = _days(sessions).filter(pl.Series(active.ravel()))
    pmf = act.sessions_per_day_pmf(days, 5)
    assert act.sessions_persistence(days, pmf, 5) >= 0.5  # over the whole class: a strong leaning
    counts = days.group_by("user").len().sort("user")
    user_band = act.activity_bands(counts["len"].to_numpy().astype(np.float64), np.zeros(counts.height, np.int64),
                                   act.SESSION_BAND_CUTS)  # fmt: skip
    row_band = user_band[np.searchsorted(counts["user"].to_numpy(), days["user"].to_numpy())]
    by_band = act.sessions_per_day_by_band(days, row_band, len(act.SESSION_BAND_CUTS) + 1, pmf, 5)
    assert by_band[0, 1] > 0.8 and by_band[3, 3] > 0.8  # the occasional once a day, the busiest thrice
    assert act.sessions_persistence(days, by_band, 5, row_band) < 0.05


def test_frequent_users_keep_their_bands_sessions_per_day_in_the_twin(spec: TwinSpec) -> None:
    # The busiest tenth of each class opens three sessions a day, the rest one: the twin's users whose days
    # put them in that band do; with the table empty (older specs), every band has the class's mix.
    classes = len(spec.document.classes)
    bands = len(act.SESSION_BAND_CUTS) + 1
    banded = pl.DataFrame(
        {"class": np.repeat(np.arange(classes), bands), "band": np.tile(np.arange(bands), classes)}
    )
    banded = banded.with_columns(pl.when(pl.col("band") == bands - 1).then(3).otherwise(1).alias("sessions"),
                                 pl.lit(1.0).alias("share"))  # fmt: skip

    def sessions_by_band(table: pl.DataFrame) -> np.ndarray:
        tables = {
            **spec.tables,
            "sessions_by_activity": table.cast(spec.tables["sessions_by_activity"].schema),
        }
        docs = [cd.model_copy(update={"sessions_persistence": 0.0}) for cd in spec.document.classes]
        gen = Generator(TwinSpec(spec.document.model_copy(update={"classes": docs}), tables))
        start = spec.document.generation.start
        frame = pl.concat([gen.day(start + dt.timedelta(days=i)).select("user_number", "$session_id")
                           for i in range(0, 28, 3)])  # fmt: skip
        per = frame.group_by("user_number").agg(pl.col("$session_id").n_unique().alias("s"))
        per = per.with_columns(pl.Series("band", gen.session_band[per["user_number"].to_numpy()]))
        days = per.join(pl.DataFrame({"user_number": np.concatenate([gen.active_by_day[i] for i in range(0, 28, 3)])})
                        .group_by("user_number").len(), on="user_number")  # fmt: skip
        return np.array([(lambda b: b["s"].sum() / b["len"].sum())(days.filter(pl.col("band") == k))
                         for k in range(bands)])  # fmt: skip

    with_bands = sessions_by_band(banded)
    assert np.allclose(with_bands[:-1], 1.0) and abs(with_bands[-1] - 3.0) < 0.05
    without = sessions_by_band(banded.clear())
    assert without[-1] < 2.5


def test_a_day_between_active_days_is_placed_by_them() -> None:
    # Days after an active day start in the small hours (an evening past midnight UTC); the others at
    # noon. The tilt keeps the two apart; over all days alone it could not.
    g = np.random.default_rng(2)
    n = 4000
    neighbours = g.integers(0, act.NEIGHBOURS, n)
    after = (neighbours & 1) == 1
    hour = np.where(after, g.integers(0, 3, n), g.integers(11, 14, n))
    first = pl.DataFrame(
        {"user": np.arange(n), "weekday": 0, "hour": hour, "bucket": 0, "neighbours": neighbours}
    )
    _, tilt = act.first_hour_tilt(first)
    assert tilt.shape == (act.DAY_SESSION_BUCKETS, act.NEIGHBOURS, 24)
    for nb in range(act.NEIGHBOURS):
        early = tilt[0, nb, :3].sum() / tilt[0, nb].sum()
        assert early > 0.85 if nb & 1 else early < 0.1


def test_the_twin_places_a_users_first_session_by_the_days_around_it(spec: TwinSpec) -> None:
    # A tilt that puts days after an active day at 02:00 and the others at 14:00: the twin's first sessions
    # follow it; the same factors for any neighbours (older specs) make no difference between the two.
    rows = [(b, nb, h, float(h == 2) if nb & 1 else float(h == 14))
            for b in range(act.DAY_SESSION_BUCKETS) for nb in range(act.NEIGHBOURS) for h in range(24)]  # fmt: skip
    tilt = pl.DataFrame(rows, schema=["bucket", "neighbours", "hour", "factor"], orient="row")

    def first_hours(table: pl.DataFrame) -> tuple[float, float]:
        tables = {**spec.tables, "first_hour_tilt": table.cast(spec.tables["first_hour_tilt"].schema)}
        gen = Generator(TwinSpec(spec.document, tables))
        start = spec.document.generation.start
        out = []
        for i in range(1, 15):
            day = gen.day(start + dt.timedelta(days=i))
            first = day.group_by("user_number").agg(pl.col("timestamp").min().dt.hour().alias("h"))
            before = set(gen.active_by_day[i - 1].tolist())
            out.append(first.with_columns(pl.col("user_number").is_in(list(before)).alias("after")))
        both = pl.concat(out)
        return tuple(float(both.filter(pl.col("after") == a)["h"].median()) for a in (True, False))  # type: ignore[return-value]

    after, other = first_hours(tilt)
    assert after == 2 and other == 14
    any_day = tilt.filter(pl.col("neighbours") == 1).with_columns(pl.lit(-1).alias("neighbours"))
    after, other = first_hours(any_day)
    assert after == other == 2


def test_calendar_days_are_the_dates_that_depart_from_their_weekdays_level() -> None:
    # Eight weeks of a weekly rhythm with Poisson noise; a day in the news (four times the newcomers) and
    # a holiday (a quarter of the returning users) stand out; the first week (all newcomers) is not judged.
    g = np.random.default_rng(4)
    rhythm = np.tile([1.0, 1.0, 1.1, 1.0, 0.9, 0.6, 0.5], 8)
    new, returning = g.poisson(60 * rhythm).astype(float), g.poisson(700 * rhythm).astype(float)
    new[:7] *= 10
    new[30] *= 4
    returning[45] *= 0.25
    found = calendar_days(new, returning)
    assert [d for d, _, _ in found] == [30, 45]
    others = np.delete(rhythm[28:35], 2).mean()  # the newcomers' factor is over the block's other days
    assert abs(found[0][1] / (4 * rhythm[30] / others) - 1) < 0.15 and found[0][2] == 1.0
    assert found[1][1] == 1.0 and abs(found[1][2] - 0.25) < 0.03


def test_a_calendar_days_newcomers_come_from_its_week() -> None:
    mean = np.full(14, 10.0)
    out = with_calendar(mean, np.arange(100, 114), {102: 3.0, 111: 0.0})
    assert out[2] == pytest.approx(70 * 30 / 90) and out[11] == 0.0  # 3 x the other days' mean of 10
    assert out[:7].sum() == pytest.approx(70.0) and out[7:].sum() == pytest.approx(70.0)


def test_the_twin_follows_its_calendar_days(spec: TwinSpec) -> None:
    # A holiday that keeps nine in ten returning users away and a launch day with eight times the newcomers:
    # the twin's active users those days follow; without the calendar they are the weekday's usual.
    start = spec.document.generation.start
    holiday, launch = start + dt.timedelta(days=30), start + dt.timedelta(days=44)

    def counts(calendar: list[CalendarDay]) -> tuple[float, float, float, float]:
        dated = TwinSpec(spec.document.model_copy(update={"calendar": calendar}), spec.tables)
        gen = Generator(dated.with_generation(users=20_000))
        first = gen.population.first
        sizes = [(a.size, int((first[a] == d).sum())) for d, a in enumerate(gen.active_by_day)]
        near = lambda d, k: np.mean([sizes[d + s][k] for s in (-14, -7, 7, 14)])  # noqa: E731
        return sizes[30][0] / near(30, 0), sizes[44][1] / max(near(44, 1), 1.0), sizes[30][0], sizes[44][1]

    plain = counts([])
    assert 0.8 < plain[0] < 1.25 and plain[1] < 1.6
    dated = counts([CalendarDay(date=holiday, activity=0.1), CalendarDay(date=launch, arrivals=8.0)])
    assert (
        dated[0] < 0.5 and dated[1] > 2.5
    )  # odds x 0.1: a daily user's 0.9 becomes 0.47; 8 / 14 of the block


def test_calendar_factors_are_calibrated_to_the_exports_day(spec: TwinSpec) -> None:
    # The spec's own twin stands for the export, with a holiday on day 30 that keeps 85 % of the returning
    # users away. The calendar is found and its factor calibrated: the twin's active users that day are the
    # export's within a tenth; the other days keep their level.
    days = spec.document.source.days
    _, activity, frame = simulated_activity(spec, 20_000, days)
    first = frame.select("user", "first_day")
    activity = activity.join(first, on="user")
    g = np.random.default_rng(1)
    away = (
        (activity["day"] == 30)
        & (activity["day"] != activity["first_day"])
        & pl.Series(g.random(activity.height) < 0.85)
    )
    export = activity.filter(~away)
    start = (spec.document.generation.start - dt.date(1970, 1, 1)).days  # the fit's days are day numbers
    dated = calibrate_calendar(spec, export.with_columns(pl.col("day") + start), frame["first_day"].to_numpy() + start,
                               Window(start, start + days - 1))  # fmt: skip
    assert [c.date for c in dated.document.calendar] == [
        spec.document.generation.start + dt.timedelta(days=30)
    ]
    assert dated.document.calendar[0].activity < 0.3 and dated.document.calendar[0].arrivals == 1.0
    _, twin, _ = simulated_activity(dated, 20_000, days)
    real_dau, twin_dau = (
        np.bincount(export["day"].to_numpy(), minlength=days),
        np.bincount(twin["day"].to_numpy(), minlength=days),
    )
    assert abs(twin_dau[30] / real_dau[30] - 1) < 0.1
    assert abs(twin_dau[37] / real_dau[37] - 1) < 0.1


def test_calendar_days_weigh_nothing_in_the_activity_fits() -> None:
    # A holiday on day 9 would read as a quiet second week of age; skipped, its user-days weigh nothing.
    activity = pl.DataFrame({"user": np.repeat([0, 1], 14), "day": np.tile(np.arange(14), 2)})
    users = act.first_last_days(activity).with_columns(pl.col("user"))
    window = Window(0, 13)
    spans = act.user_spans(users, activity, np.zeros(2, np.int64), window)
    members = np.ones(2, bool)
    plain = act.daily_grid(spans, activity, window, members)
    skipped = act.daily_grid(spans, activity, window, members, np.array([9]))
    assert plain is not None and skipped is not None
    assert (plain.weight[plain.day == 9] > 0).all() and (skipped.weight[skipped.day == 9] == 0).all()
    assert (skipped.weight[skipped.day != 9] == plain.weight[plain.day != 9]).all()
