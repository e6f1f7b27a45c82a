"""The shared rate limiter: spacing and windows measured on the clock, from threads and from asyncio."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from simulation_assets.sinks.rate_limit import RateLimiter

# The limiter's guarantees are checked on its own admission times (``granted_at``, the clock it
# decides on), never on a time the caller reads after ``acquire()`` returns: on a loaded machine the
# caller may be woken late, which moves its stamp but not the limiter's decision. No upper bounds on
# elapsed time either: load can stretch any of them.


def _windows_hold(grants: list[float], calls: int, seconds: float) -> bool:
    """Return whether no ``calls + 1`` admissions fall inside any window of ``seconds``.

    Sorted first: a thread that waited is admitted at the time it planned to wake, which can be
    earlier than the time of another thread's admission recorded just before it.
    """
    grants = sorted(grants)
    return all(grants[i + calls] - grants[i] >= seconds for i in range(len(grants) - calls))


def test_every_spaces_acquisitions_at_least_the_interval_apart() -> None:
    limiter = RateLimiter.every(0.2)
    for _ in range(4):
        limiter.acquire()
    grants = limiter.granted_at
    assert len(grants) == 4
    assert _windows_hold(grants, 1, 0.2), grants
    assert limiter.waited_seconds >= 0.6 - 0.01  # the first goes at once, three wait ~0.2 s each


def test_a_window_lets_a_burst_through_then_holds_the_rest() -> None:
    limiter = RateLimiter(5, 0.5)
    for _ in range(12):
        limiter.acquire()
    grants = limiter.granted_at
    assert len(grants) == 12
    assert _windows_hold(grants, 5, 0.5), grants  # never six in any half second
    assert grants[5] - grants[0] >= 0.5 and grants[10] - grants[0] >= 1.0


def test_threads_share_one_limit() -> None:
    limiter = RateLimiter.every(0.1)

    def worker() -> None:
        for _ in range(3):
            limiter.acquire()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grants = limiter.granted_at
    assert len(grants) == 9
    assert _windows_hold(grants, 1, 0.1), grants  # one limit across the three threads


def test_tasks_wait_without_blocking_the_event_loop() -> None:
    limiter = RateLimiter(4, 0.4)

    async def run() -> list[float]:
        beats: list[float] = []
        done = asyncio.Event()

        async def heartbeat() -> None:
            while not done.is_set():
                beats.append(time.monotonic())
                await asyncio.sleep(0.02)

        beat = asyncio.create_task(heartbeat())
        await asyncio.gather(*[limiter.acquire_async() for _ in range(10)])
        done.set()
        await beat
        return beats

    beats = asyncio.run(run())
    grants = sorted(limiter.granted_at)
    assert len(grants) == 10
    assert _windows_hold(grants, 4, 0.4), grants
    # The loop kept running while tasks waited: the heartbeat beat between the first admissions and
    # the last ones (a limiter that slept on the loop's thread would let it beat only before or after).
    waiting = [t for t in beats if grants[3] < t < grants[8]]
    assert len(waiting) >= 2, (grants, beats)


def test_unlimited_and_per_second() -> None:
    free = RateLimiter.unlimited()
    started = time.monotonic()
    for _ in range(1000):
        free.acquire()
    assert time.monotonic() - started < 0.5 and not free.limited
    assert RateLimiter.per_second(0).limited is False
    assert (RateLimiter.per_second(5).calls, RateLimiter.per_second(5).per_seconds) == (5, 1.0)
    assert RateLimiter.per_second(0.2).per_seconds == pytest.approx(5.0)


def test_invalid_limits_are_refused_with_the_numbers() -> None:
    with pytest.raises(ValueError, match="3 per 0"):
        RateLimiter(3, 0)
