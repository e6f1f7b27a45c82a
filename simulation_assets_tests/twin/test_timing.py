"""When sessions happen: a user's own leaning toward days of several sessions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from simulation_assets.core.twin import activity as act
from simulation_assets.core.twin.generate import Generator
from simulation_assets.core.twin.spec import TwinSpec


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
    tables = {**spec.tables, "sessions_per_day": half.cast(spec.tables["sessions_per_day"].schema)}

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
