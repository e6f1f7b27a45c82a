"""The shared rate limiter: spacing and windows measured on the clock, from threads and from asyncio."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from simulation_assets.sinks.rate_limit import RateLimiter


def test_every_spaces_acquisitions_at_least_the_interval_apart() -> None:
    limiter = RateLimiter.every(0.2)
    stamps = []
    for _ in range(4):
        limiter.acquire()
        stamps.append(time.monotonic())
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    # A stamp is taken just after acquire returns, so a busy machine can delay one and shorten the
    # next gap: hold the span to the intervals, each gap to most of one, and the upper bound loose.
    assert 0.6 <= stamps[-1] - stamps[0] < 1.5, gaps
    assert all(g >= 0.15 for g in gaps), gaps
    assert limiter.waited_seconds >= 0.6


def test_a_window_lets_a_burst_through_then_holds_the_rest() -> None:
    limiter = RateLimiter(5, 0.5)
    started = time.monotonic()
    stamps = []
    for _ in range(12):
        limiter.acquire()
        stamps.append(time.monotonic() - started)
    assert stamps[4] < 0.4 <= 0.5 <= stamps[5]  # the first five go at once, the sixth waits for the window
    # never more than five in any half second (50 ms for a stamp taken late on a busy machine)
    assert all(stamps[i + 5] - stamps[i] >= 0.45 for i in range(len(stamps) - 5)), stamps
    assert 1.0 <= stamps[-1] < 3.0


def test_threads_share_one_limit() -> None:
    limiter = RateLimiter.every(0.1)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert len(stamps) == 9
    # Stamps are taken after acquire returns, so one thread's scheduling can shift a single stamp:
    # hold the span and every pair of gaps, not each gap alone.
    assert stamps[-1] - stamps[0] >= 0.75
    assert all(stamps[i + 2] - stamps[i] >= 0.15 for i in range(len(stamps) - 2)), stamps


def test_tasks_wait_without_blocking_the_event_loop() -> None:
    limiter = RateLimiter(4, 0.4)

    async def run() -> tuple[list[float], int]:
        ticks = 0
        done = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.02)

        beat = asyncio.create_task(heartbeat())
        started = time.monotonic()
        stamps: list[float] = []

        async def one() -> None:
            await limiter.acquire_async()
            stamps.append(time.monotonic() - started)

        await asyncio.gather(*[one() for _ in range(10)])
        done.set()
        await beat
        return sorted(stamps), ticks

    stamps, ticks = asyncio.run(run())
    assert all(stamps[i + 4] - stamps[i] >= 0.35 for i in range(len(stamps) - 4)), stamps
    assert 0.8 <= stamps[-1] < 3.0
    assert ticks >= 20  # the loop kept running while tasks waited


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
