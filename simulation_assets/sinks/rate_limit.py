"""The one rate limiter of the project's sinks (pyrate-limiter), usable from threads and from asyncio.

``RateLimiter(calls, per_seconds)`` lets at most ``calls`` acquisitions through in any
window of ``per_seconds`` (a sliding window: no burst across a window edge), shared by
every thread and task that holds the same object. ``acquire()`` blocks the calling
thread until a slot is free; ``await acquire_async()`` waits without blocking the loop.

Typical uses: ``RateLimiter.every(5.0)`` for "one request every 5 s" (FlixBuddy),
``RateLimiter(5, 1.0)`` for "5 user creations a second" (Supabase auth), and
``RateLimiter.unlimited()`` where a sink is configured without a limit. Pass
``limiter.acquire`` as ``before_attempt`` to ``http_retry.send`` so retries are
throttled too.
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from typing import Any

# pyrate-limiter sleeps this much past the computed free slot; a few ms is enough on one machine.
_BUFFER_MS = 5
GRANTS_KEPT = 1000  # the admission times a limiter remembers (``granted_at``)


@functools.cache
def _recording_bucket() -> type:
    """Return pyrate-limiter's in-memory bucket that also remembers when it admitted each acquisition.

    pyrate-limiter is imported when a limiter first limits (0.015 s of CPU that a command whose sinks
    send nothing, e.g. a HogFlix day without FlixBuddy calls, does not pay).
    """
    from pyrate_limiter import InMemoryBucket, Rate, RateItem

    class RecordingBucket(InMemoryBucket):
        def __init__(self, rates: list[Rate]) -> None:
            super().__init__(rates)
            self.admitted_ms: deque[int] = deque(maxlen=GRANTS_KEPT)

        def put(self, item: RateItem) -> bool:
            with self._lock:
                admitted = super().put(item)
                if admitted:
                    self.admitted_ms.append(item.timestamp)
                return admitted

    return RecordingBucket


class RateLimiter:
    """At most ``calls`` acquisitions per ``per_seconds``; ``calls == 0`` means no limit."""

    def __init__(self, calls: int, per_seconds: float) -> None:
        if calls < 0 or per_seconds < 0 or (calls and per_seconds <= 0):
            raise ValueError(
                f"a rate limit needs calls >= 0 and per_seconds > 0, got {calls} per {per_seconds} s"
            )
        self.calls = calls
        self.per_seconds = per_seconds
        self.waited_seconds = 0.0  # total time callers spent waiting for a slot
        self._bucket: Any = None
        self._limiter: Any = None
        if calls:
            from pyrate_limiter import Duration, Limiter, Rate

            self._bucket = _recording_bucket()([Rate(calls, max(1, round(per_seconds * Duration.SECOND)))])
            self._limiter = Limiter(self._bucket, buffer_ms=_BUFFER_MS)

    @classmethod
    def every(cls, seconds: float) -> RateLimiter:
        """Return a limiter that spaces acquisitions at least ``seconds`` apart (0: no limit)."""
        return cls(1, seconds) if seconds > 0 else cls.unlimited()

    @classmethod
    def per_second(cls, rate: float) -> RateLimiter:
        """Return a limiter of ``rate`` acquisitions a second (0 or less: no limit)."""
        if rate <= 0 or math.isinf(rate):
            return cls.unlimited()
        if float(rate).is_integer():
            return cls(int(rate), 1.0)
        return cls.every(1.0 / rate)  # a fractional rate: evenly spaced acquisitions

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """Return a limiter that never waits."""
        return cls(0, 0)

    @property
    def granted_at(self) -> list[float]:
        """Return when the last acquisitions (up to ``GRANTS_KEPT``) were admitted, in ``time.monotonic()`` seconds.

        These are the limiter's own decisions, on its own clock: an acquisition that had to wait is
        stamped with the time it was due to wake, not the (later) time a loaded machine woke it. The
        window holds on these stamps; they are in admission order, which after a wait need not be
        time order (sort them to check a window).
        """
        return [ms / 1000 for ms in self._bucket.admitted_ms] if self._bucket else []

    @property
    def limited(self) -> bool:
        """Return whether this limiter can make a caller wait."""
        return self._limiter is not None

    def acquire(self) -> None:
        """Block until a slot is free, then take it."""
        if self._limiter is None:
            return
        started = time.monotonic()
        self._limiter.try_acquire("sink", blocking=True)
        self.waited_seconds += time.monotonic() - started

    async def acquire_async(self) -> None:
        """Wait (without blocking the event loop) until a slot is free, then take it."""
        if self._limiter is None:
            return
        started = time.monotonic()
        await self._limiter.try_acquire_async("sink", blocking=True)
        self.waited_seconds += time.monotonic() - started

    def close(self) -> None:
        """Stop the limiter's background bookkeeping (it also stops with the process)."""
        if self._limiter is not None:
            self._limiter.close()

    def __enter__(self) -> RateLimiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RateLimiter({self.calls} per {self.per_seconds} s)"
            if self.limited
            else "RateLimiter(unlimited)"
        )
