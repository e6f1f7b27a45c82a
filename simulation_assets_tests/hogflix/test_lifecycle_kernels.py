"""The array shortcuts inside the day step give the same answers as their plain definitions."""

from __future__ import annotations

import numpy as np
import pytest

from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.draws import smallest
from simulation_assets.core.hogflix.lifecycle import STATE_BY_FLAGS
from simulation_assets.core.hogflix.persona_state import (
    ACTIVE,
    CASUAL,
    CHURNED,
    DORMANT,
    NEW,
    PER_DAY_COLUMNS,
)
from simulation_assets.core.hogflix.signups import new_personas
from simulation_assets.core.hogflix.timeofday import _HOURLY_CDF, MS_PER_HOUR, draw_ms_of_day
from simulation_assets_tests.hogflix.helpers import DAY, pool


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hour_of_day_lookup_matches_a_binary_search_at_every_boundary(dtype):
    cdf = _HOURLY_CDF.astype(dtype)
    below = np.nextafter(cdf, dtype(0))
    above = np.nextafter(cdf, dtype(1))
    edges = np.concatenate([[dtype(0)], cdf, below, above, np.random.default_rng(3).random(50_000, dtype)])
    edges = edges[edges < 1].astype(dtype)
    within = np.full(edges.size, 0.5, dtype)
    expected = np.searchsorted(cdf, edges, side="right").clip(0, 23) * MS_PER_HOUR + MS_PER_HOUR // 2
    assert np.array_equal(draw_ms_of_day(edges, within), expected)


@pytest.mark.parametrize(("size", "k"), [(10, 10), (1_000, 1), (200_000, 50), (300, 120)])
def test_smallest_returns_exactly_the_k_smallest_draws(size, k):
    values = np.random.default_rng(size).random(size, dtype=np.float32)
    assert sorted(smallest(values, k).tolist()) == sorted(np.argsort(values)[:k].tolist())


def test_state_flags_give_churned_over_dormant_over_new_over_casual_over_active():
    def flags(casual=0, new=0, dormant=0, churned=0):
        return casual | new << 1 | dormant << 2 | churned << 3

    assert STATE_BY_FLAGS[flags()] == ACTIVE
    assert STATE_BY_FLAGS[flags(casual=1)] == CASUAL
    assert STATE_BY_FLAGS[flags(casual=1, new=1)] == NEW
    assert STATE_BY_FLAGS[flags(casual=1, new=1, dormant=1)] == DORMANT
    assert STATE_BY_FLAGS[flags(1, 1, 1, 1)] == CHURNED
    assert STATE_BY_FLAGS[flags(churned=1)] == CHURNED


def test_take_then_append_keeps_every_row_and_leaves_the_source_untouched():
    cfg = LifecycleConfig()
    state = pool(cfg, 50)
    before = {k: v.copy() for k, v in state.cols.items()}
    keep = np.arange(50) % 3 != 0
    taken = state.take(keep, fresh=PER_DAY_COLUMNS, spare=7)
    joined = new_personas(cfg, 0, DAY, 5, 1_000, np.random.default_rng(1))
    grown = taken.append(joined)
    assert len(grown) == int(keep.sum()) + 5
    for k, v in grown.cols.items():
        head = np.zeros(keep.sum(), v.dtype) if k in PER_DAY_COLUMNS else before[k][keep]
        assert np.array_equal(v, np.concatenate([head, joined.cols[k]])), k
        assert np.array_equal(state.cols[k], before[k]), k
    # No room left in the buffers: appending again copies instead of overwriting.
    again = grown.append(joined)
    assert np.array_equal(again.cols["persona_number"][-10:], np.tile(joined.cols["persona_number"], 2))
    assert np.array_equal(grown.cols["persona_number"][-5:], joined.cols["persona_number"])
