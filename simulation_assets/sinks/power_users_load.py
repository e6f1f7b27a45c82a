"""Load against the API: a shape's arrivals (open model) or virtual users (closed model), every request recorded.

Open model: arrival times are drawn up front (Poisson at the shape's rate); a scheduler sends each
request at its time whether or not earlier ones have come back, so a slow API cannot slow the
arrivals down. Each request's latency is measured from its *scheduled* time, not from when it
was actually sent: if the generator itself falls behind, that delay counts (no coordinated
omission). Closed model: the shape sets how many virtual users are busy; each sends, waits for
the answer, thinks (exponential, mean ``think_s``) and sends again, so its latency is the
service time only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gc
import json
import logging
import math
import resource
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from simulation_assets.core.power_users.action_types import ActionType
from simulation_assets.core.power_users.actions import json_path
from simulation_assets.core.power_users.config import (
    CONNECTION_ERROR_STATUS,
    TIMEOUT_STATUS,
    LoadTask,
    Persona,
    Scenario,
)
from simulation_assets.core.power_users.rhythm import rhythm_columns
from simulation_assets.core.power_users.shapes import (
    Day,
    arrival_times,
    day_profile,
    level_at,
    requested_per_second,
)
from simulation_assets.core.rng import stream
from simulation_assets.sinks.power_users_http import RunnerClient, new_client
from simulation_assets.sinks.power_users_load_requests import LoadRequests, VirtualUser
from simulation_assets.sinks.power_users_session import Clock, RunTables, utc_stamp

# Users log in all at once before the load starts, each on a connection of its own that the load
# then reuses (as each user's browser would); opening them during the load would delay its start.
SETUP_CONCURRENCY = 10_000
# action_index of the requests that are not load tasks (tasks count from 0)
SETUP_RESET, SETUP_LOGIN, RELOGIN = -3, -2, -1
PROGRESS_EVERY_S = 1.0
# An arrival due within this much of now is sent now rather than after one more timer wake-up
# (the loop's timers are no finer); it is never sent earlier than that.
DUE_SLACK_S = 0.0005


def _sleeps() -> int:
    """Return how many times this process has gone to sleep waiting (voluntary context switches)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def _percentile(ordered: list[float], q: float) -> float:
    """Return the ``q`` quantile of ascending ``ordered`` (linear, as numpy's default; 0 when empty).

    A live line a second over a few thousand latencies: numpy's percentile cost ~8 % of a load's CPU.
    """
    if not ordered:
        return 0.0
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


class _Progress:
    """Counts for the live line: sent, answered, errors, recent latencies."""

    def __init__(self) -> None:
        self.sent = self.done = self.errors = self.in_flight = 0
        self.recent: deque[tuple[float, float]] = deque()

    def line(self, now: float, elapsed: float, target: str) -> str:
        """Return the live line at ``now`` (the run clock's Unix seconds), ``elapsed`` into the load."""
        while self.recent and self.recent[0][0] < now - 5.0:
            self.recent.popleft()
        p95 = _percentile(sorted(ms for _, ms in self.recent), 0.95)
        rate = sum(1 for at, _ in self.recent if at >= now - 1.0)
        return (
            f"t={elapsed:6.1f}s  sent {self.sent:>7} ({target})  {rate:>6} req/s  "
            f"p95 {p95:7.1f} ms  errors {100.0 * self.errors / max(self.done, 1):5.2f} %  in flight {self.in_flight}"
        )


class LoadRun:
    """Runs one load shape's share for ``users`` against ``client``, appending rows to ``tables``."""

    def __init__(
        self,
        scenario: Scenario,
        users: list[Persona],
        client: RunnerClient,
        tables: RunTables,
        log: logging.Logger,
        clock: Clock,
        hooks: bool,
        shape_name: str,
        share: float,
        day: str,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = scenario.simulation_config
        self.types = scenario.action_types()
        self.shape = scenario.load_shape(shape_name)
        if isinstance(self.shape, Day):  # the whole population's rhythm on this day, whatever the shard
            rhythms = [p.rhythm() for p in scenario.simulations]
            self.shape = self.shape.with_profile(day_profile(rhythms, dt.date.fromisoformat(day)))
        self.shape_name, self.share, self.day = shape_name, share, day
        self.client, self.t, self.log, self.clock, self.hooks = client, tables, log, clock, hooks
        self.vus = [VirtualUser(p, self.settings.seed, day) for p in users]
        self.tasks: list[LoadTask] = list(self.settings.load_tasks)
        weights = np.array([t.weight for t in self.tasks])
        self.weights = weights / weights.sum()
        self.rng = stream(
            self.settings.seed, "power_users", "load", shape_name, day, users[0].name if users else ""
        )
        self.progress = progress
        self.counts = _Progress()
        self.start = 0.0
        self.timeout = self.settings.request_timeout_s
        self.requests = LoadRequests(self.types, self.tasks, client)
        self.pending: set[asyncio.Future] = set()  # arrivals (or their logins) sent by a task
        self.arrivals = 0  # open model: arrivals sent and not answered yet, against max_in_flight
        self.room: asyncio.Future | None = None  # set when an arrival is answered
        self.loop: asyncio.AbstractEventLoop | None = None
        # the open model's plan (due times, users, tasks), the next arrival, and whether the cap holds it
        self.due: list[float] = []
        self.who: list[int] = []
        self.chosen: list[int] = []
        self.next, self.blocked = 0, False
        self.launched: asyncio.Future | None = None  # set once every arrival has been sent

    async def run(self) -> None:
        """Log the users in, run the shape, then add a users row per user and the plan's load rows."""
        started_at, wall0 = utc_stamp(), self.clock.now()
        await self._setup()
        self.counts = _Progress()  # the live line counts the load, not the logins before it
        self.start = self.clock.now() + 0.05
        self.log.info(
            "load %s (%s model): %d users, %.0f%% of the shape, %.0f s",
            self.shape_name,
            self.shape.model,
            len(self.vus),
            100 * self.share,
            self.shape.duration,
        )
        reporter = asyncio.create_task(self._report())
        self.loop = asyncio.get_running_loop()
        # Everything alive before the load (imports, Dagster, the scenario) stays out of the cyclic
        # garbage collector's full passes during it: they scanned it all, ~2 % of the load's CPU.
        gc.freeze()
        cpu0, sent0, sleeps0 = time.process_time(), self.counts.sent, _sleeps()
        try:
            if self.shape.model == "open":
                await self._open()
            else:
                await self._closed()
        finally:
            reporter.cancel()
            gc.unfreeze()
        self.t.load_cpu_seconds += time.process_time() - cpu0
        self.t.load_sleeps += _sleeps() - sleeps0
        self.t.load_requests += self.counts.sent - sent0
        requested = (
            requested_per_second(self.shape, self.share)
            if self.shape.model == "open"
            else level_at(self.shape, np.arange(np.ceil(self.shape.duration))) * self.share
        )
        wall = self.clock.now() - wall0
        archetypes: dict[str, int] = {}
        for vu in self.vus:
            p, r = vu.persona, vu.persona.rhythm()
            archetypes[p.archetype] = archetypes.get(p.archetype, 0) + 1
            self.t.users.append(
                (p.name, p.archetype, self.day, started_at, utc_stamp(), wall, 0, 0, "", True, vu.session_id)
                + (r.time_zone, None, self.shape.duration / 60.0, 0, 0.0, *rhythm_columns(r))
            )
        first = int(np.floor(self.start))
        for archetype, count in archetypes.items():
            part = count / len(self.vus)
            offset = self.start - first  # the plan's seconds are whole Unix seconds from the load's start
            for k, expected in enumerate(requested):
                self.t.load.append(
                    (archetype, self.shape_name, self.shape.model, first + k, float(expected) * part, offset)
                )

    async def _setup(self) -> None:
        gate = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def one(k: int, vu: VirtualUser) -> None:
            async with gate:
                if self.hooks:
                    kind = self.types["reset_user"]
                    fresh = {
                        **kind.defaults,
                        **vu.context,
                        "usage_used": 0,
                        "history_items": 20,
                        "exists": True,
                    }
                    await self._send(vu, SETUP_RESET, "reset_user", k, self.clock.now(), fresh)
                await self._login(vu, k, SETUP_LOGIN)

        await asyncio.gather(*(one(k, vu) for k, vu in enumerate(self.vus)))

    async def _login(self, vu: VirtualUser, index: int, step: int) -> None:
        kind = self.types["login"]
        variables = {**kind.defaults, **vu.context}
        payload = await self._send(vu, step, "login", index, self.clock.now(), variables)
        token = json_path(payload, "access_token") if isinstance(payload, dict) else None
        vu.context["token"] = token or vu.context["token"]

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

    async def _task(
        self, who: int, task_index: int, i: int, due: float, request: tuple[Any, bytes] | httpx.TransportError
    ) -> None:
        vu, task = self.vus[who], self.tasks[task_index]
        payload = await self._send(vu, task_index, task.type, i, due, request, task)
        if isinstance(payload, dict) and payload.get("error") in ("token_expired", "session_timeout"):
            await self._login(vu, i, RELOGIN)

    def _begin(self, now: float | None = None) -> float:
        """Count a request as sent; return its send time (``now`` when the caller just read the clock)."""
        counts = self.counts
        counts.sent += 1
        counts.in_flight += 1
        return self.clock.now() if now is None else now

    def _unbegin(self) -> None:
        self.counts.sent -= 1
        self.counts.in_flight -= 1

    async def _send(
        self,
        vu: VirtualUser,
        task_index: int,
        action_type: str,
        i: int,
        due: float,
        request: dict[str, Any] | tuple[Any, bytes] | httpx.TransportError,
        task: LoadTask | None = None,
    ) -> Any:
        """Send one request due at ``due`` (Unix seconds), record its attempt and request rows; return its JSON.

        ``request`` is the encoded request, or the template variables to encode it from.
        """
        if isinstance(request, dict):
            request = self.requests.encode(vu, self.types[action_type], request, task)
        started = self._begin()
        status, content, error = 0, b"", None
        try:
            if isinstance(request, httpx.TransportError):
                raise request
            status, content = await self.client.roundtrip(request[0], request[1], self.timeout)
        except httpx.TransportError as exc:
            error = exc
        return self._record(vu, task_index, action_type, i, due, started, status, content, error, task)

    def _record(
        self,
        vu: VirtualUser,
        task_index: int,
        action_type: str,
        i: int,
        due: float,
        started: float,
        status: int,
        content: bytes,
        error: Exception | None,
        task: LoadTask | None,
    ) -> Any:
        """Record an answered (or failed) request (its attempt and request rows); return its JSON if read."""
        ended = self.clock.now()
        kind: ActionType = self.types[action_type]
        payload, message = None, None
        if error is not None:
            if isinstance(error, httpx.TimeoutException):
                status, message = TIMEOUT_STATUS, f"no response within {self.timeout:g} s"
            else:
                status, message = CONNECTION_ERROR_STATUS, str(error) or type(error).__name__
        elif not 200 <= status < 300 or kind.meter == "analysis" or kind.capture:
            # decode only what is read: errors, analyses (tokens) and captured values (the login token)
            try:
                payload = json.loads(content)
            except ValueError:
                payload = None
        counts = self.counts
        counts.in_flight -= 1
        latency_ms = (ended - started) * 1000.0
        expected = task.expected_status if task else (200,)
        ok = status in expected
        counts.done += 1
        counts.errors += not ok
        counts.recent.append((ended, (ended - due) * 1000.0))
        two_xx = 200 <= status < 300
        if message is None and not two_xx and isinstance(payload, dict):
            message = str(payload.get("error") or payload.get("detail") or "")
        if two_xx and kind.meter == "analysis":
            costs = self.settings.costs
            tokens_in = int(json_path(payload, "tokens.input") or costs.default_input_tokens)
            tokens_out = int(json_path(payload, "tokens.output") or costs.default_output_tokens)
            address, score = str(json_path(payload, "address")), int(json_path(payload, "deal_score") or 0)
        else:
            tokens_in = tokens_out = 0
            address = score = None
        # one row for both tables, made into their rows at the end (RunTables.frames)
        self.t.load_rows.append(
            (
                vu.persona.name,
                task_index,
                action_type,
                i,
                status,
                ok,
                latency_ms,
                message,
                kind.meter,
                tokens_in,
                tokens_out,
                vu.session_id,
                vu.context["tier"],
                address,
                score,
                due,
                started,
                ended,
                task is not None,
            )
        )
        return payload

    async def _report(self) -> None:
        planned = float(requested_per_second(self.shape, self.share).sum())
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            elapsed = self.clock.now() - self.start
            if self.shape.model == "open":
                target = f"of {planned:.0f} planned"
            else:
                target = f"{level_at(self.shape, [elapsed])[0] * self.share:.0f} users"
            line = self.counts.line(self.clock.now(), elapsed, target)
            self.log.info("%s", line)
            if self.progress is not None:
                self.progress(line)


async def load_loop(
    base_url: str, users: int, duration_s: float, path: str = "/health", max_connections: int | None = None
) -> dict[str, Any]:
    """Hammer ``path`` with ``users`` concurrent loops for ``duration_s``; return counts and latencies.

    The same client as scenario runs; used by the benchmark.
    """
    latencies: list[float] = []
    errors = 0
    async with new_client(base_url, max_connections or users, 10.0) as client:
        deadline = time.perf_counter() + duration_s
        t0 = time.perf_counter()
        url = client.url_for(path)

        async def user() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                    bad = response.status_code >= 400
                except httpx.HTTPError:
                    bad = True
                latencies.append((time.perf_counter() - started) * 1000.0)
                errors += bad

        await asyncio.gather(*(user() for _ in range(users)))
        seconds = time.perf_counter() - t0
    return {"requests": len(latencies), "errors": errors, "seconds": seconds, "latencies_ms": latencies}
