"""When sessions happen: a user's own leaning toward days of several sessions, and lifetimes corrected by simulation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from simulation_assets.core.twin import activity as act
from simulation_assets.core.twin.features import Window
from simulation_assets.core.twin.fit import calibrate_survival, simulated_activity
from simulation_assets.core.twin.generate import Generator
from simulation_assets.core.twin.spec import KINDS, TwinSpec


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
