"""A pool of a few hundred personas is filtered and named by NumPy alone: the same values as the Arrow paths."""

from __future__ import annotations

import numpy as np
import pytest

from simulation_assets.core.hogflix import ids, persona_state


@pytest.mark.parametrize("dtype", [np.int64, np.int16, np.int8, np.bool_])
def test_numpy_and_arrow_filters_keep_the_same_rows_and_the_same_room(monkeypatch, dtype) -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 100, 700).astype(dtype)
    v = base[:500]  # a column viewing a buffer with 200 rows of room
    mask = rng.random(500) < 0.9
    small = persona_state._filter_with_room(v, mask, 150, {})
    monkeypatch.setattr(persona_state, "ARROW_FILTER_ROWS", 0)
    arrow = persona_state._filter_with_room(v, mask, 150, {})
    assert small is not None and arrow is not None
    assert small.dtype == arrow.dtype == dtype and small.flags.writeable
    assert np.array_equal(small, arrow) and small.size == mask.sum() + 200
    assert np.array_equal(small[: mask.sum()], v[mask])


def test_numpy_and_arrow_uuid_strings_are_the_same(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    high, low = (rng.integers(0, 2**63, 300, dtype=np.uint64) * 2 for _ in range(2))
    small = ids.format_uuid_words(high, low)
    monkeypatch.setattr(ids, "_ARROW_STRINGS", 0)
    arrow = ids.format_uuid_words(high, low)
    assert small.dtype == arrow.dtype and small.equals(arrow) and small.name == arrow.name
    assert small[0] == f"{int(high[0]):016x}{int(low[0]):016x}"[:8] + "-" + small[0][9:]
