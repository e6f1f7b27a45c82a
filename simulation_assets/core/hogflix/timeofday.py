"""When in the day HogFlix personas show up: an evening-peaked hourly profile.

Relative weights per UTC hour, shaped after published viewing-by-hour figures
(lowest around 03-04, rising through the afternoon, highest at 20-21).
"""

from __future__ import annotations

import numpy as np

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000

HOURLY_WEIGHTS = np.array(
    [6, 4, 2, 1, 1, 2, 4, 6, 7, 8, 9, 11, 13, 13, 13, 14, 17, 24, 38, 48, 59, 52, 35, 16],
    dtype=np.float64,
)
HOURLY_SHARE = HOURLY_WEIGHTS / HOURLY_WEIGHTS.sum()
_HOURLY_CDF = np.cumsum(HOURLY_SHARE)


def _hour_lookup(cdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return a bucket table that finds the hour of a uniform without a binary search.

    The unit interval is cut into 2**k equal buckets, fine enough that no bucket
    holds more than one hour boundary; the table gives the hour at each bucket's
    left edge, and one comparison with the next boundary finishes the search.
    The answer equals ``searchsorted(cdf, u, side="right")`` exactly.
    """
    buckets = 1 << max(8, int(np.ceil(np.log2(2.0 / np.diff(cdf, prepend=0.0).min()))))
    edges = np.arange(buckets + 1, dtype=cdf.dtype) / cdf.dtype.type(buckets)
    first = np.searchsorted(cdf, edges, side="right")
    assert np.diff(first).max() <= 1, "hour buckets must hold at most one boundary"
    return first[:-1].astype(np.intp), np.append(cdf, np.inf).astype(cdf.dtype)


_HOUR_TABLES = {np.dtype(t): _hour_lookup(_HOURLY_CDF.astype(t)) for t in (np.float32, np.float64)}


def draw_ms_of_day(u_hour: np.ndarray, u_within: np.ndarray) -> np.ndarray:
    """Return milliseconds after midnight (int64), hour from the profile and uniform within the hour.

    ``u_hour`` and ``u_within`` are uniforms in [0, 1) of equal shape (float32 or float64).
    """
    first, bounds = _HOUR_TABLES[u_hour.dtype]
    start = np.take(first, (u_hour * len(first)).astype(np.intp))
    hour = np.add(start, np.take(bounds, start) <= u_hour, out=start)
    ms = np.minimum(hour, 23, out=hour)
    ms *= MS_PER_HOUR
    ms += (u_within * MS_PER_HOUR).astype(np.int64)
    return ms
