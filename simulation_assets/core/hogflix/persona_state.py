"""The array form of a HogFlix persona pool (``PersonaState``), its column layout and day numbers.

A pool is a struct of NumPy arrays, one per numeric column, ordered by
ascending ``persona_number``; the string columns (ids, e-mail, source) live in
a separate identity registry so the day step never touches strings. Days are
integers counted from 1970-01-01; instants are int64 milliseconds since the
epoch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.hogflix.config import PATTERNS, STATES

if TYPE_CHECKING:
    import pyarrow as pa

EPOCH = dt.date(1970, 1, 1)
NEW, ACTIVE, CASUAL, DORMANT, CHURNED = range(len(STATES))
DAILY, REGULAR, WEEKEND, BINGE, MONTHLY = range(len(PATTERNS))
NO_EVENT = -1
NO_DAY = -1
NO_MS = -1
# Buffers up to this many rows are filtered by NumPy; larger ones by Arrow (see ``_filter_with_room``), whose
# compute module costs ~0.2 G instructions to import: more than a pool of 400 saves in a year of days.
ARROW_FILTER_ROWS = 1 << 16

# Numeric columns of the state and their dtypes. The day step is bound by memory traffic (it copies every
# kept row each day and makes whole-column passes), so each column is as narrow as its range allows: the
# score is 0-100 (int8); day counts, streaks, visits (at most one a day), watchlist and FlixBuddy totals
# (at most one a day) and the binge day fit int16 for 89 years; the activity history keeps at most 16
# days (uint16, ``LifecycleConfig.casual_window_days``); the average completion, a percentage rounded to
# 0.01, is kept as its whole number of hundredths (int16). The tables widen them to the schema's types.
NUMERIC_COLUMNS: dict[str, type] = {
    "persona_number": np.int64,
    "plan": np.int8,
    "state": np.int8,
    "pattern": np.int8,
    "created_ms": np.int64,
    "state_changed_ms": np.int64,
    "last_active_ms": np.int64,
    "days_since_signup": np.int16,
    "consecutive_active_days": np.int16,
    "consecutive_missed_days": np.int16,
    "total_sessions": np.int16,
    "engagement_score": np.int8,
    "videos_watched": np.int32,
    "avg_watch_completion_bp": np.int16,  # the table's avg_watch_completion (0.01 % steps) in hundredths of a percent
    "ratings_given": np.int32,
    "watchlist_size": np.int16,
    "flixbuddy_conversations": np.int16,
    "event": np.int8,
    "event_ends": np.int32,
    "binge_is_binging": np.bool_,
    "binge_day": np.int16,
    "binge_phase_ends": np.int32,
    "churned_day": np.int32,
    "lapsed": np.bool_,
    "history": np.uint16,
    "marked_for_cleanup": np.bool_,
    "signed_up_today": np.bool_,
    "active_today": np.bool_,
    "reactivated_today": np.bool_,
    "lapsed_today": np.bool_,
    "churned_today": np.bool_,
    "session_start_ms": np.int64,
    "videos_today": np.int16,
    "completion_today": np.float64,
    "ratings_today": np.int16,
    "watchlist_adds_today": np.int8,
    "flixbuddy_today": np.bool_,
    "binge_mode_today": np.bool_,
    # hidden traits (traits.py): static from signup, except satisfaction which moves every day
    "favorite_genre": np.int8,
    "price_sensitivity": np.float32,
    "region": np.int8,
    "satisfaction": np.float32,
    "avg_rating_today": np.float32,
    # subscription (billing.py)
    "previous_plan": np.int8,
    "plan_changes": np.int16,
    "plan_changed_today": np.int8,  # +1 upgrade, -1 downgrade
    "billing_day": np.int8,
    "payment_state": np.int8,  # 0 paid up, 1 in dunning
    "dunning_attempts": np.int8,
    "next_payment_retry": np.int32,
    "payment_attempt_today": np.int8,  # 0 none, 1 monthly charge, 2-4 retry
    "payment_failed_today": np.bool_,
    "payment_recovered_today": np.bool_,
    "churn_reason": np.int8,  # billing.CHURN_REASONS, when churned
}
HISTORY_DAYS = 8 * np.dtype(NUMERIC_COLUMNS["history"]).itemsize  # days the activity history can keep


def conform(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return ``cols`` with each numeric column in its ``NUMERIC_COLUMNS`` dtype (a column already in it is
    kept as it is): for code that builds columns whole, so that every pool has the same layout."""
    return {k: np.asarray(v).astype(NUMERIC_COLUMNS[k], copy=False) if k in NUMERIC_COLUMNS else v
            for k, v in cols.items()}  # fmt: skip


IDENTITY_COLUMNS = ("distinct_id", "email", "user_id", "profile_id", "source")
# Columns that describe only the current day: they start from zero every day.
PER_DAY_COLUMNS = (
    "signed_up_today",
    "active_today",
    "reactivated_today",
    "lapsed_today",
    "churned_today",
    "flixbuddy_today",
    "binge_mode_today",
    "videos_today",
    "ratings_today",
    "watchlist_adds_today",
    "completion_today",
    "avg_rating_today",
    "plan_changed_today",
    "payment_attempt_today",
    "payment_failed_today",
    "payment_recovered_today",
    "marked_for_cleanup",
    "session_start_ms",
)
# A column gathered by ``PersonaState.take`` gets room for this many days of ``spare`` rows: each later
# day filters the whole buffer (room included) and appends into the room left, until it runs short.
ROOM_DAYS = 8
# Per-day columns the day step sets whole (``streaks_and_score``, ``states``, ``visit_times``, and the billing
# rules ``plan_changes`` and ``payments``, which zero their own): not zeroed first.
SET_WHOLE_COLUMNS = (
    "active_today",
    "reactivated_today",
    "session_start_ms",
    "plan_changed_today",
    "payment_attempt_today",
    "payment_failed_today",
    "payment_recovered_today",
)


@dataclass
class PersonaState:
    """A persona pool on one day.

    ``cols`` holds the numeric columns, one array each, ordered by ascending
    ``persona_number``. ``identity`` is a registry of the string columns keyed
    by ``persona_number`` (also ascending); it may still list personas that
    have since been deleted, so the day step never has to touch strings.
    """

    day: int
    cols: dict[str, np.ndarray]
    identity: pl.DataFrame
    next_number: int = field(default=1)
    # Buffers that ``take`` and ``append`` allocated for this pool and that nothing else was built
    # on (columns read from a file or made by the rules may be shared, e.g. with a polars frame):
    # the only ones ``buffers`` offers for reuse.
    owned: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.cols["state"])

    def take(
        self,
        mask: np.ndarray,
        fresh: tuple[str, ...] = (),
        spare: int = 0,
        into: dict[str, np.ndarray] | None = None,
        unset: tuple[str, ...] = (),
    ) -> PersonaState:
        """Return the personas where ``mask`` is true; columns named in ``fresh`` come back zeroed
        (those also named in ``unset``: not even zeroed, for a caller that sets them whole).

        Each column is a view of a buffer with ``spare`` more rows, so that
        ``append`` can add that many personas without copying the pool again.
        ``into`` offers buffers to reuse (``buffers()`` of a pool nobody reads any more): a column
        goes into the one of its name when it is large enough, of its dtype and apart from this
        pool's own; fresh memory is not touched for the first time each day (no page faults).
        The identity registry is compacted when it is mostly stale.
        """
        size = int(np.count_nonzero(mask))
        keep = None  # the kept positions, made for the first column that is gathered
        into = into or {}
        cols, owned = {}, {}
        masks: dict[int, pa.Array | np.ndarray] = {}  # filter masks by length of the buffer filtered
        for k, v in self.cols.items():
            if k not in fresh and (filtered := _filter_with_room(v, mask, spare, masks)) is not None:
                cols[k] = filtered[:size]
                continue
            buf = into.get(k)
            zero = k in fresh and k not in unset
            # a gathered column gets the room of several days' appends: the next days filter it (above)
            room = spare if k in fresh else spare * ROOM_DAYS
            if buf is None or buf.dtype != v.dtype or buf.size < size + room or np.may_share_memory(buf, v):
                buf = (np.zeros if zero else np.empty)(size + room, v.dtype)
            elif zero:
                buf[:size].fill(0)
            owned[k] = buf
            if k in fresh:
                cols[k] = buf[:size]
            else:
                keep = np.flatnonzero(mask) if keep is None else keep
                cols[k] = np.take(v, keep, out=buf[:size], mode="clip")  # "clip": no buffered copy
        identity = self.identity
        if identity.height > 2 * max(size, 1):
            identity = identity.filter(
                pl.col("persona_number").is_in(pl.Series(cols["persona_number"]).implode())
            )
        return PersonaState(
            day=self.day, cols=cols, identity=identity, next_number=self.next_number, owned=owned
        )

    def append(self, other: PersonaState) -> PersonaState:
        """Return this pool followed by ``other`` (same day, higher persona numbers).

        Columns that still view a buffer made by ``take`` with room to spare are
        extended in place inside that buffer; the others are concatenated.
        """
        n, m = len(self), len(other)
        cols, owned = {}, dict(self.owned)
        for k, v in self.cols.items():
            buf = v.base
            if (
                buf is not None
                and buf.ndim == 1
                and buf.dtype == v.dtype
                and buf.size >= n + m
                and (v.ctypes.data == buf.ctypes.data and v.strides == buf.strides)
            ):
                buf[n : n + m] = other.cols[k]
                cols[k] = buf[: n + m]
            else:
                cols[k] = owned[k] = np.concatenate([v, other.cols[k]])
        return PersonaState(
            day=self.day,
            cols=cols,
            identity=pl.concat([self.identity, other.identity]),
            next_number=max(self.next_number, other.next_number),
            owned=owned,
        )

    def buffers(self) -> dict[str, np.ndarray]:
        """Return this pool's own buffers by column (``owned``), for ``take(into=...)`` once the pool and
        every frame made from it are done with."""
        return dict(self.owned)

    def identity_rows(self) -> pl.DataFrame:
        """Return the identity columns aligned row by row with ``cols``."""
        registry = self.identity["persona_number"].to_numpy()
        rows = np.searchsorted(registry, self.cols["persona_number"])
        return self.identity[rows].select(list(IDENTITY_COLUMNS))


def _filter_with_room(
    v: np.ndarray, mask: np.ndarray, spare: int, masks: dict[int, pa.Array | np.ndarray]
) -> np.ndarray | None:
    """Return ``v[mask]`` followed by at least ``spare`` rows of room, in a new writable buffer, or None
    when this way does not apply (``v`` without ``spare`` more rows of its own buffer).

    The rows to drop are a small share of the pool: Arrow's filter copies the runs of kept rows
    block by block, where a gather (``np.take``) pays for every row. It filters the whole buffer
    under ``v`` (its rows past ``len(v)`` kept as they are, contents unused), so that the result
    has the room ``append`` needs after the kept rows without another copy. A bool column is filtered
    as the bytes it is made of (Arrow's own booleans are bits). Below ``ARROW_FILTER_ROWS`` NumPy does the
    same filter: the same rows, without loading Arrow's compute functions.
    """
    base = v.base
    if (
        not isinstance(base, np.ndarray)
        or base.ndim != 1
        or base.dtype != v.dtype
        or not base.flags.c_contiguous
        or v.ctypes.data != base.ctypes.data
        or v.strides != base.strides
        or base.size - v.size < spare
    ):
        return None
    small = base.size < ARROW_FILTER_ROWS
    if base.size not in masks:
        whole = np.ones(base.size, np.bool_)
        whole[: v.size] = mask
        masks[base.size] = whole if small else _arrow().array(whole)
    if small:
        return base[masks[base.size]]
    pa = _arrow()
    import pyarrow.compute as pc

    values = pa.array(base.view(np.uint8) if base.dtype == np.bool_ else base)
    out = pc.filter(values, masks[base.size], memory_pool=pa.system_memory_pool())
    return np.frombuffer(out.buffers()[1], v.dtype, count=len(out), offset=out.offset * v.itemsize)


def _arrow():  # noqa: ANN202 (the pyarrow module)
    import pyarrow

    return pyarrow


def day_number(date: dt.date) -> int:
    """Return days since 1970-01-01."""
    return (date - EPOCH).days


def day_date(day: int) -> dt.date:
    """Return the calendar date of a day number."""
    return EPOCH + dt.timedelta(days=int(day))
