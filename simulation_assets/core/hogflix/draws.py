"""Small maps from uniforms to the integers and categories the lifecycle rules draw."""

from __future__ import annotations

import numpy as np


def uniform_ints(u: np.ndarray, low: int, high: int) -> np.ndarray:
    """Map uniforms to integers uniformly in [low, high] (int32)."""
    return (low + np.floor(u * (high - low + 1))).astype(np.int32)


def subset_ints(
    g: np.random.Generator, idx: np.ndarray, low: np.ndarray | int, high: np.ndarray | int
) -> np.ndarray:
    """Return uniform integers in [low, high] for the personas at ``idx`` (bounds may be per persona)."""
    return (low + np.floor(g.random(idx.size) * (np.asarray(high) - low + 1))).astype(np.int32)


def choice(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Map uniforms to category indices (int8) with the given (row-wise or shared) weights."""
    if weights.ndim == 1:
        cdf = np.cumsum(weights) / weights.sum()
        return np.searchsorted(cdf, u, side="right").clip(0, len(weights) - 1).astype(np.int8)
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    return (u[:, None] >= cdf).sum(axis=1).clip(0, weights.shape[1] - 1).astype(np.int8)


def smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Return the positions of the ``k`` smallest of ``values`` (uniforms in [0, 1)), in linear time.

    Only the values under a cut-off that keeps about four times ``k`` of them
    are partitioned; when too few fall under it, all of them are.
    """
    cut = min(1.0, 4.0 * k / values.size + 1e-3)
    pool = np.flatnonzero(values < cut)
    if pool.size < k:
        pool = np.arange(values.size)
    return pool[np.argpartition(values[pool], k - 1)[:k]]
