"""New users per day: the smooth arrival model scaled week by week to the export's own level."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from simulation_assets.core.twin.arrivals import fit_arrivals, week_factors
from simulation_assets.core.twin.generate import Generator
from simulation_assets.core.twin.spec import TwinSpec

WINDOW_FIRST = 20_454  # 2026-01-01 as a day number


def _stopped_arrivals(seed: int = 3) -> np.ndarray:
    """First days of users who arrive ~180 a day over the first 42 days of a 131-day window, then none."""
    g = np.random.default_rng(seed)
    counts = g.poisson(180, 42)
    return WINDOW_FIRST + np.repeat(np.arange(42), counts)


def test_arrivals_follow_the_exports_weekly_level_and_stop_when_it_stops() -> None:
    first = _stopped_arrivals()
    a = fit_arrivals(first, WINDOW_FIRST, 131)
    counts = np.bincount(first - WINDOW_FIRST, minlength=131)
    assert len(a.week_factor) == 19  # 18 full weeks and the last 5 days as a block of their own
    new, old = a.expected(np.arange(131), 3)  # 2026-01-01 is a Thursday
    by_block = np.bincount(np.minimum(np.arange(131) // 7, 18), weights=new + old)
    seen = np.bincount(np.minimum(np.arange(131) // 7, 18), weights=counts)
    # Each block's expectation is its count, or within two Poisson standard deviations of it.
    assert (np.abs(by_block - seen) <= 2 * np.sqrt(np.maximum(by_block, 1.0)) + 1e-3).all()
    assert sum(f != 1.0 for f in a.week_factor) >= 13  # the model misses at least the 13 empty weeks
    assert (new + old)[42:].sum() == 0.0
    # Beyond the window the trend goes on at the last block's level: still none.
    beyond_new, beyond_old = a.expected(np.arange(131, 200), 3)
    assert beyond_new.sum() + beyond_old.sum() == 0.0
    # The smooth model alone cannot stop: it brings in over a tenth of the users after day 42.
    smooth_new, smooth_old = replace(a, week_factor=()).expected(np.arange(131), 3)
    smooth = smooth_new + smooth_old
    assert smooth[42:].sum() / smooth.sum() > 0.10


def test_week_factors_merge_a_short_last_block_and_follow_only_clear_misses() -> None:
    counts = np.r_[np.full(14, 10.0), np.zeros(7), np.full(2, 4.0)]  # 23 days: 3 weeks + 2 days
    expected = np.r_[np.full(14, 5.0), np.zeros(7), np.full(2, 1.0)]
    # Week 3 expects and gets nobody; the 2 last days join it (8 seen over 2 expected).
    assert week_factors(counts, expected) == (2.0, 2.0, 4.0)
    assert week_factors(np.zeros(7), np.full(7, 3.0)) == (0.0,)  # 21 expected, none came
    assert week_factors(np.zeros(7), np.zeros(7)) == (1.0,)
    # 80 seen over 70 expected is within two standard deviations (16.7): the model stands.
    assert week_factors(np.full(7, 80 / 7), np.full(7, 10.0)) == (1.0,)


def test_generated_users_arrive_only_in_the_weeks_the_spec_gives_them(spec: TwinSpec) -> None:  # noqa: ANN001
    doc = spec.document
    days = doc.generation.days
    blocks = days // 7
    stopped = doc.model_copy(
        update={"arrivals": doc.arrivals.model_copy(update={"week_factor": [1.0] * 3 + [0.0] * (blocks - 3)})}
    )
    first = Generator(TwinSpec(stopped, spec.tables)).population.first
    assert first.max() < 21
    # The same spec without the weekly level keeps users arriving after the third week.
    smooth = doc.model_copy(update={"arrivals": doc.arrivals.model_copy(update={"week_factor": []})})
    assert (Generator(TwinSpec(smooth, spec.tables)).population.first >= 21).mean() > 0.05
