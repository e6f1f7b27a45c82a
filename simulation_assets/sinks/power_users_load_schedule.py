"""When a load sends its requests: the open model's arrival plan and timer, the closed model's users.

Open model: arrival times are drawn up front and each is sent at its time whether or not earlier
ones have come back (up to the shape's ``max_in_flight``); closed model: the shape sets how many
virtual users are busy, each sending, waiting and thinking in turn. A mixin of
``power_users_load.LoadRun`` (it holds the state these methods use).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from typing import Any

from simulation_assets.core.power_users.shapes import arrival_times, level_at
from simulation_assets.core.rng import stream
from simulation_assets.sinks.power_users_load_record import RELOGIN

# An arrival due within this much of now is sent now rather than after one more timer wake-up
# (the loop's timers are no finer); it is never sent earlier than that.
DUE_SLACK_S = 0.0005


class ArrivalScheduler:
    """Sends a load's arrivals on time (open model) or keeps its virtual users busy (closed model)."""

    async def _open(self) -> None:
        times = arrival_times(self.shape, self.rng, self.share)
        n = len(times)
        self.chosen = self.rng.choice(len(self.tasks), size=n, p=self.weights).tolist()
        self.who = self.rng.integers(len(self.vus), size=n).tolist()
        self.due = (self.start + times).tolist()
        loop = self.loop
        assert loop is not None
        self.launched = loop.create_future()
        self._tick()
        await self.launched
        while self.arrivals or self.pending:
            if self.pending:
                await asyncio.gather(*list(self.pending))
            else:
                self.room = loop.create_future()
                await self.room

    def _tick(self) -> None:
        """Send every arrival due by now, then set a timer for the next (a callback: no task or future).

        At ``max_in_flight`` pending arrivals it stops until an answer makes room (then the waiting
        counts in the latency, as it would for the users who arrived).
        """
        assert self.loop is not None and self.launched is not None
        due, n, i = self.due, len(self.due), self.next
        try:
            now = self.clock.now()  # the send time of this wake-up's arrivals (microseconds apart)
            horizon = now + DUE_SLACK_S
            while i < n and due[i] <= horizon:
                if self.arrivals >= self.shape.max_in_flight:
                    self.next, self.blocked = i, True
                    return
                self._arrive(self.who[i], self.chosen[i], i, due[i], now)
                i += 1
        except Exception as exc:  # a callback's error would otherwise only reach the loop's log
            if not self.launched.done():
                self.launched.set_exception(exc)
            return
        self.next = i
        if i < n:
            self.loop.call_later(self._delay_until(due[i]), self._tick)
        elif not self.launched.done():
            self.launched.set_result(None)

    def _delay_until(self, due: float) -> float:
        """Return the timer delay that wakes the loop no earlier than ``DUE_SLACK_S`` before ``due``.

        uvloop (libuv) counts timers in whole milliseconds from its clock's last whole millisecond,
        so a timer asked for ``d`` seconds fires up to 1 ms early: for an arrival due in 0.5-1.5 ms
        that was often before it was due, and the wake-up sent nothing (8 % of them). The delay is
        counted from the loop's clock and rounded up to its millisecond; the wake-up then comes
        between ``DUE_SLACK_S`` before ``due`` and as much after it.
        """
        assert self.loop is not None
        behind = time.monotonic() - self.loop.time()  # how far the loop's clock lags (0-1 ms on uvloop)
        ahead = due - DUE_SLACK_S - self.clock.now() + behind
        return math.ceil(ahead * 1000.0) / 1000.0 if ahead > 0 else 0.0

    def _arrive(self, who: int, task_index: int, i: int, due: float, now: float) -> None:
        """Send arrival ``i``: written on an idle connection at once, else by a task that waits for one.

        The direct write answers through :meth:`_answered` with no task, future or coroutine per
        request; those were about a third of the generator's CPU per request.
        """
        self.arrivals += 1
        request = self.requests.for_arrival(who, self.vus[who], task_index, i)
        if isinstance(request, tuple):
            started = self._begin(now)
            answered = functools.partial(self._answered, who, task_index, i, due, started)
            if self.client.send_nowait(request[0], request[1], self.timeout, answered):
                return
            self._unbegin()
        self._spawn(self._task(who, task_index, i, due, request))

    def _spawn(self, coro: Any) -> None:
        job = self.loop.create_task(coro)
        self.pending.add(job)
        job.add_done_callback(self._finished)

    def _finished(self, job: asyncio.Task) -> None:
        self.pending.discard(job)
        self.arrivals -= 1
        self._make_room()

    def _make_room(self) -> None:
        if self.blocked:
            self.blocked = False
            assert self.loop is not None
            self.loop.call_soon(self._tick)
        if self.room is not None and not self.room.done():
            self.room.set_result(None)

    def _answered(
        self,
        who: int,
        task_index: int,
        i: int,
        due: float,
        started: float,
        status: int,
        content: bytes,
        error: Exception | None,
    ) -> None:
        """Record the answer to a directly written arrival; log the user in again if its token ran out."""
        vu, task = self.vus[who], self.tasks[task_index]
        payload = self._record(vu, task_index, task.type, i, due, started, status, content, error, task)
        self.arrivals -= 1
        self._make_room()
        if isinstance(payload, dict) and payload.get("error") in ("token_expired", "session_timeout"):
            self.arrivals += 1  # the login belongs to this arrival (and counts against the cap)
            self._spawn(self._login(vu, i, RELOGIN))

    async def _closed(self) -> None:
        end = self.start + self.shape.duration
        counter = iter(range(1 << 62))
        running: list[tuple[asyncio.Task, asyncio.Event]] = []

        async def loop(k: int, stop: asyncio.Event) -> None:
            rng = stream(self.settings.seed, "power_users", "load-user", self.shape_name, self.day, k)
            vu = k % len(self.vus)
            while not stop.is_set() and self.clock.now() < end:
                task = int(rng.choice(len(self.tasks), p=self.weights))
                i = next(counter)
                await self._task(
                    vu, task, i, self.clock.now(), self.requests.for_arrival(vu, self.vus[vu], task, i)
                )
                think = float(rng.exponential(self.shape.think_s)) if self.shape.think_s else 0.0
                try:  # think, unless the shape ends or lets this user go first
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, min(think, end - self.clock.now())))
                except TimeoutError:
                    pass

        while self.clock.now() < end:
            want = int(round(float(level_at(self.shape, [self.clock.now() - self.start])[0]) * self.share))
            while len(running) < want:
                stop = asyncio.Event()
                running.append((asyncio.create_task(loop(len(running), stop)), stop))
            while len(running) > want:
                running.pop()[1].set()
            await asyncio.sleep(min(0.05, max(0.0, end - self.clock.now())))
        for _, stop in running:
            stop.set()
        await asyncio.gather(*(job for job, _ in running))
