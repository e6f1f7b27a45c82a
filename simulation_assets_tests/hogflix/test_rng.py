import numpy as np
import pytest

from simulation_assets.core import rng


def test_same_seed_and_keys_give_the_same_numbers():
    assert np.array_equal(
        rng.stream(7, "hogflix", "2026-01-01").random(5), rng.stream(7, "hogflix", "2026-01-01").random(5)
    )


def test_different_keys_or_seeds_give_independent_streams():
    a = rng.stream(7, "hogflix", "2026-01-01").random(1000)
    assert not np.array_equal(a, rng.stream(7, "hogflix", "2026-01-02").random(1000))
    assert not np.array_equal(a, rng.stream(8, "hogflix", "2026-01-01").random(1000))
    assert abs(np.corrcoef(a, rng.stream(7, "hogflix", "2026-01-02").random(1000))[0, 1]) < 0.15


def test_a_stream_does_not_depend_on_which_streams_were_made_before():
    alone = rng.stream(1, "b").random(3)
    rng.stream(1, "a").random(100)
    assert np.array_equal(alone, rng.stream(1, "b").random(3))


def test_stable_uuid_is_deterministic_and_key_sensitive():
    assert rng.stable_uuid(1, "x", 2) == rng.stable_uuid(1, "x", 2)
    assert rng.stable_uuid(1, "x", 2) != rng.stable_uuid(1, "x", 3)


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="seed"):
        rng.stream(-1, "x")
