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
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from simulation_assets.core.power_users.config import LoadTask, Persona, Scenario
from simulation_assets.core.power_users.rhythm import rhythm_columns
from simulation_assets.core.power_users.shapes import Day, day_profile, level_at, requested_per_second
from simulation_assets.core.rng import stream
from simulation_assets.sinks.power_users_http import RunnerClient, new_client
from simulation_assets.sinks.power_users_load_progress import Progress, sleeps
from simulation_assets.sinks.power_users_load_record import RequestRecorder
from simulation_assets.sinks.power_users_load_requests import LoadRequests, VirtualUser
from simulation_assets.sinks.power_users_load_schedule import ArrivalScheduler
from simulation_assets.sinks.power_users_session import Clock, RunTables, utc_stamp

PROGRESS_EVERY_S = 1.0


class LoadRun(ArrivalScheduler, RequestRecorder):
    """Runs one load shape's share for ``users`` against ``client``, appending rows to ``tables``.

    When its requests go out is ``ArrivalScheduler``'s part (power_users_load_schedule), how each
    is sent and recorded ``RequestRecorder``'s (power_users_load_record); the live line's counts are
    ``power_users_load_progress.Progress``.
    """

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
        self.counts = Progress()
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
        self.counts = Progress()  # the live line counts the load, not the logins before it
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
        cpu0, sent0, sleeps0 = time.process_time(), self.counts.sent, sleeps()
        try:
            if self.shape.model == "open":
                await self._open()
            else:
                await self._closed()
        finally:
            reporter.cancel()
            gc.unfreeze()
        self.t.load_cpu_seconds += time.process_time() - cpu0
        self.t.load_sleeps += sleeps() - sleeps0
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
