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


def draw_ms_of_day(u_hour: np.ndarray, u_within: np.ndarray) -> np.ndarray:
    """Return milliseconds after midnight (int64), hour from the profile and uniform within the hour.

    ``u_hour`` and ``u_within`` are uniforms in [0, 1) of equal shape.
    """
    hour = np.searchsorted(_HOURLY_CDF.astype(u_hour.dtype), u_hour, side="right").clip(0, 23)
    return hour.astype(np.int64) * MS_PER_HOUR + (u_within * MS_PER_HOUR).astype(np.int64)
