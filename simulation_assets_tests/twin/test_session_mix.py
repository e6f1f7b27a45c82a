"""Who fills a session how: users as deep who spend very different times per event, and occasional users.

Small one-class products whose sessions are blocks of three events (a video: play, tick, stop, a
minute apart; or a page: view, scroll, leave, seconds apart), the session ending with a chance after
each block. In the first every session ends with chance 1/4, so all users are equally deep, but half
are viewers (four blocks in five are videos) and half browsers (one in five): depth groups alone
cannot tell them apart (users as deep share one chain, and every twin user's sessions come out with
the same mix), the depth groups split by seconds per event keep the two kinds. In the second the
occasional users' sessions are short and the regulars' long: the twin's occasional users must be as
shallow as the export's, which needs each user's depth judged against users of their own activity
band (judged against the whole class, a user of one or two visits was put in a middle group).
Each figure is also measured with the part removed, so the test shows the part is what keeps it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.twin import fit as fit_module
from simulation_assets.core.twin.config import FitConfig
from simulation_assets.core.twin.fit import Prepared
from simulation_assets.core.twin.flows import depth_pace_groups
from simulation_assets.core.twin.spec import TwinSpec
from simulation_assets_tests.twin.conftest import CFG, block_sessions, fit_file, prepared_twin

START = dt.date(2026, 3, 2)
ONE_CLASS = CFG.model_copy(update={"max_classes": 1})


def _export(
    active: np.ndarray, video_share: np.ndarray, end: np.ndarray, g: np.random.Generator
) -> pl.DataFrame:
    """Return the events (account, at_ms, action) of one session per active (user, day), block by block."""
    page, watch = (
        [("view", 5.0), ("scroll", 5.0), ("leave", 1.0)],
        [("play", 60.0), ("tick", 60.0), ("stop", 1.0)],
    )
    return block_sessions(active, g, START, video_share, end, page, watch)


def _fit(path: Path, cfg: FitConfig) -> tuple[Prepared, TwinSpec]:
    return fit_file(path, cfg)


def _twin(spec: TwinSpec) -> Prepared:
    return prepared_twin(spec, ONE_CLASS)


def _pace_split(p: Prepared) -> float:
    """Return the mean log seconds per event of the slowest half of users over the quickest half's (4+ sessions)."""
    per = (
        p.sessions.filter(pl.col("n_events") >= 2)
        .with_columns((pl.col("duration_s") / (pl.col("n_events") - 1)).log().alias("x"))
        .group_by("user")
        .agg(pl.col("x").mean(), pl.len().alias("n"))
        .filter(pl.col("n") >= 4)
        .sort("x")
    )
    x = per["x"].to_numpy()
    half = x.size // 2
    return float(x[half:].mean() - x[:half].mean())


def test_users_keep_their_own_time_per_event_at_the_same_depth(tmp_path: Path) -> None:
    g = np.random.default_rng(4)
    users, days = 200, 14
    active = g.random((users, days)) < 0.5
    active[:, 0] = True
    viewers = np.arange(users) % 2 == 0
    path = tmp_path / "events.parquet"
    _export(active, np.where(viewers, 0.8, 0.2), np.full(users, 0.25), g).write_parquet(path)
    real, spec = _fit(path, ONE_CLASS)
    assert spec.document.flow["depth_groups"] == ONE_CLASS.depth_groups * ONE_CLASS.pace_groups
    want = _pace_split(real)
    assert want >= 1.0, want  # viewers ~45 s an event, browsers ~12 s
    got = _pace_split(_twin(spec))
    assert got >= want - 0.25, (got, want)
    # The same fit with depth groups only: every user's mix comes out alike.
    _, flat = _fit(path, ONE_CLASS.model_copy(update={"pace_groups": 1}))
    assert flat.document.flow["depth_groups"] == ONE_CLASS.depth_groups
    lost = _pace_split(_twin(flat))
    assert lost <= got - 0.5, (lost, got, want)  # measured: 1.36 real, 1.31 twin, 0.62 without the split


def _occasional_depth(p: Prepared) -> float:
    """Return the mean events per session of the least active third of users over that of the most active third."""
    eps = p.user_stats.sort("active_days", "user")["events_per_session"].to_numpy()
    third = eps.size // 3
    return float(eps[:third].mean() / eps[-third:].mean())


def test_occasional_users_keep_their_own_session_depth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = np.random.default_rng(8)
    users, days = 300, 28
    # A third come once or twice a month and leave after a block or two; the others come often and stay for ~eight.
    occasional = np.arange(users) % 3 == 0
    rate = np.where(occasional, g.uniform(0.02, 0.1, users), g.uniform(0.3, 0.8, users))
    active = g.random((users, days)) < rate[:, None]
    active[:, 0] = True
    path = tmp_path / "events.parquet"
    _export(active, np.full(users, 0.3), np.where(occasional, 0.6, 0.12), g).write_parquet(path)
    real, spec = _fit(path, ONE_CLASS)
    want = _occasional_depth(real)
    assert want <= 0.3, want
    got = _occasional_depth(_twin(spec))
    # Measured 0.22 in the export, 0.25 in the twin and 0.36 with depths shrunk toward the class's mean (0.19-0.22,
    # 0.21-0.25 and 0.33-0.36 over three seeds).
    assert got <= want + 0.06, (got, want)
    # Each user's depth shrunk toward the class's mean instead of their band's.
    monkeypatch.setattr(fit_module, "depth_pace_groups",
                        lambda s, ids, c, band, d, p: depth_pace_groups(s, ids, c, np.zeros_like(band), d, p))  # fmt: skip
    _, by_class = _fit(path, ONE_CLASS)
    lost = _occasional_depth(_twin(by_class))
    assert lost >= got + 0.07, (lost, got, want)
