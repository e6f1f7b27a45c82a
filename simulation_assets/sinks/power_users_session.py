"""One power user's session against the API: its planned actions on a simulated clock, every attempt recorded.

The session follows the persona's rhythm (``core.power_users.rhythm``): it starts at a drawn
local time, think times drawn per action type add up to the drawn session length, and the
routine analyses number ``analyses_per_session``. Think times pass on a simulated clock by
default (the run takes seconds); with a pace of 1 they are slept in real time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import polars as pl

from simulation_assets.core.power_users.action_types import ActionType
from simulation_assets.core.power_users.actions import json_path, plan_session, proves_edge_case, render
from simulation_assets.core.power_users.config import (
    CONNECTION_ERROR_STATUS,
    SIMULATION_CLOCK_HEADER,
    TIMEOUT_STATUS,
    Action,
    ConfigError,
    Persona,
    Scenario,
)
from simulation_assets.core.power_users.edge_cases import category
from simulation_assets.core.power_users.report import (
    ATTEMPT_SCHEMA,
    EDGE_SCHEMA,
    LOAD_ROW_SCHEMA,
    LOAD_SCHEMA,
    REQUEST_SCHEMA,
    USER_SCHEMA,
    load_requests,
)
from simulation_assets.core.power_users.rhythm import (
    SessionPlan,
    is_active,
    plan_session_time,
    rhythm_columns,
    think_seconds,
)
from simulation_assets.core.rng import stream
from simulation_assets.sinks.http_retry import HttpRetry, RetryableAnswer, retry_after_seconds
from simulation_assets.sinks.power_users_http import RunnerClient


def utc_stamp(at: dt.datetime | None = None) -> str:
    """Return ``at`` (default: now) in UTC as ``2025-10-22T19:15:32.123Z``."""
    return (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class RunTables:
    """Everything one run recorded, as rows ready for polars (schemas in ``core.power_users.report``)."""

    requests: list[tuple] = field(default_factory=list)
    attempts: list[tuple] = field(default_factory=list)
    edges: list[tuple] = field(default_factory=list)
    users: list[tuple] = field(default_factory=list)
    load: list[tuple] = field(default_factory=list)
    # a load's requests, one row each for both tables (LOAD_ROW_SCHEMA): built into request and
    # attempt rows by polars at the end rather than per request while the load runs
    load_rows: list[tuple] = field(default_factory=list)
    # the load generator's own cost: process CPU seconds from the load's first arrival to its last answer
    load_cpu_seconds: float = 0.0
    load_requests: int = 0
    load_sleeps: int = 0  # times the process slept waiting (for an arrival's time or an answer)

    def frames(self, run_columns: dict[str, Any]) -> dict[str, pl.DataFrame]:
        """Return the tables keyed ``requests``, ``attempts``, ``edges``, ``users`` and ``load``.

        ``run_columns`` (base URL, reference target, mode) are the same for every user of the run.
        """
        per_user = {k: v for k, v in USER_SCHEMA.items() if k not in run_columns}
        users = pl.DataFrame(self.users, schema=per_user, orient="row").with_columns(
            pl.lit(v, dtype=USER_SCHEMA[k]).alias(k) for k, v in run_columns.items()
        )
        requests = pl.DataFrame(self.requests, schema=REQUEST_SCHEMA, orient="row")
        attempts = pl.DataFrame(self.attempts, schema=ATTEMPT_SCHEMA, orient="row")
        if self.load_rows:
            loaded = pl.DataFrame(self.load_rows, schema=LOAD_ROW_SCHEMA, orient="row")
            requests = pl.concat([requests, load_requests(loaded)])
            attempts = pl.concat([attempts, loaded.select(list(ATTEMPT_SCHEMA))])
        return {
            "requests": requests,
            "attempts": attempts,
            "edges": pl.DataFrame(self.edges, schema=EDGE_SCHEMA, orient="row"),
            "users": users.select(list(USER_SCHEMA)),
            "load": pl.DataFrame(self.load, schema=LOAD_SCHEMA, orient="row"),
        }


@dataclass(frozen=True)
class SessionOptions:
    """How sessions run: follow the rhythm's active days or always run, the pace of think times, or a load.

    ``speed`` 0 keeps think times on the simulated clock only; 1 sleeps them in real time (and waits
    for a session's start time); ``k`` sleeps them ``k`` times faster than real time.
    """

    follow_rhythm: bool = False
    speed: float = 0.0
    shape: str = ""  # a load shape of the scenario: run it instead of the scripted sessions
    progress: Callable[[str], None] | None = field(default=None, compare=False)  # live load lines


class Clock:
    """Wall time as Unix seconds from one origin, so attempts of every session share one time axis."""

    def __init__(self) -> None:
        self.epoch0, self.perf0 = time.time(), time.perf_counter()

    def now(self) -> float:
        """Return the current time in Unix seconds (monotonic within the run)."""
        return self.epoch0 + (time.perf_counter() - self.perf0)


class PersonaSession:
    """Performs one persona's planned actions against the client, appending rows to ``tables``."""

    def __init__(
        self,
        scenario: Scenario,
        persona: Persona,
        client: RunnerClient,
        tables: RunTables,
        log: logging.Logger,
        day: str,
        hooks: bool,
        clock: Clock,
        options: SessionOptions,
    ) -> None:
        self.p, self.client, self.t, self.log = persona, client, tables, log
        self.settings = scenario.simulation_config
        self.types = scenario.action_types()
        self.day, self.hooks, self.clock, self.options = day, hooks, clock, options
        self.plan_time: SessionPlan = plan_session_time(
            persona.rhythm(), self.settings.seed, persona.name, dt.date.fromisoformat(day)
        )
        self.think_total = 0.0  # simulated seconds of think time so far
        self.slept_total = 0.0  # wall seconds actually slept for think time so far
        self.paused = 0.0  # seconds of the script's own pauses (think_ms) so far, slept in real time
        self.wall_start = 0.0
        self.context: dict[str, Any] = {
            "email": persona.email,
            "password": persona.password,
            "user_id": persona.user_id,
            "name": persona.name,
            "tier": persona.persona.starting_tier,
            "token": "",
            "refresh_token": "",
            "checkout_session_id": "",
        }

    def sim_now(self) -> dt.datetime:
        """Return the session's simulated time: its start, plus think time, plus real time spent otherwise."""
        busy = self.clock.now() - self.wall_start - self.slept_total
        return self.plan_time.start_utc + dt.timedelta(seconds=self.think_total + busy)

    async def run(self) -> None:
        """Run the session (or record the persona as inactive on a day outside its rhythm)."""
        p, seed = self.p, self.settings.seed
        rhythm = p.rhythm()
        active = not self.options.follow_rhythm or is_active(
            rhythm, seed, p.name, dt.date.fromisoformat(self.day)
        )
        if self.options.speed == 1.0 and active:
            wait = (self.plan_time.start_utc - dt.datetime.now(dt.UTC)).total_seconds()
            if wait > 0:
                self.log.info("[%s] waiting %.0f s for the session start", p.name, wait)
                await asyncio.sleep(wait)
        started_at, self.wall_start = utc_stamp(), self.clock.now()
        plan = plan_session(p, seed, self.day, self.plan_time.analyses) if active else []
        pauses = think_seconds(
            [step.action.type for step in plan],
            self.settings.think_times,
            self.plan_time.minutes * 60.0,
            stream(seed, "power_users", "think", p.name, self.day),
        )
        skipped = 0
        if active:
            self.log.info(
                "[%s] session %s at %s (%s): %d of %d actions planned, %.0f min",
                p.name,
                self.plan_time.session_id,
                self.plan_time.start_local.isoformat(),
                rhythm.time_zone,
                len(plan),
                len(p.actions),
                self.plan_time.minutes,
            )
        else:
            self.log.info("[%s] no session on %s (%s)", p.name, self.day, p.persona.usage_frequency)
        for step, pause in zip(plan, pauses):
            kind = self.types[step.action.type]
            if kind.harness and not self.hooks:
                skipped += 1
                self.log.info("[%s] %s skipped: the target offers no simulation hooks", p.name, kind.path)
                continue
            await self._think(float(pause))
            await self._perform(step.index, step.action, kind, step.requests)
        wall = self.clock.now() - self.wall_start
        minutes = (self.sim_now() - self.plan_time.start_utc).total_seconds() / 60.0 if active else 0.0
        self.t.users.append(
            (
                p.name,
                p.archetype,
                self.day,
                started_at,
                utc_stamp(),
                wall,
                len(plan),
                skipped,
                ",".join(p.edge_cases()) if active else "",
                active,
                self.plan_time.session_id if active else None,
                rhythm.time_zone,
                self.plan_time.start_local.isoformat() if active else None,
                minutes,
                sum(step.requests for step in plan if step.routine),
                float(pauses.sum()),
                *rhythm_columns(rhythm),
            )
        )
        self.log.info("[%s] finished in %.1fs (%.1f simulated minutes)", p.name, wall, minutes)

    async def _think(self, seconds: float) -> None:
        """Pass ``seconds`` of think time: on the simulated clock, and in real time at the run's pace."""
        if self.options.speed > 0 and seconds > 0:
            slept = seconds / self.options.speed
            await asyncio.sleep(slept)
            self.slept_total += slept
        self.think_total += seconds

    async def _perform(self, index: int, action: Action, kind: ActionType, count: int) -> None:
        think = (self.settings.think_time_ms if action.think_ms is None else action.think_ms) / 1000.0
        seen: list[list[int]] = []
        bodies: list[Any] = []
        for start in range(0, count, action.concurrency):
            if think:
                await asyncio.sleep(think)
                self.paused += think
            wave = range(start, min(start + action.concurrency, count))
            results = await asyncio.gather(*(self._request(index, action, kind, i) for i in wave))
            for statuses, body in results:
                seen.append(statuses)
                bodies.append(body)
        if action.edge_case:
            triggered, as_expected = proves_edge_case(action, seen, bodies)
            shown = ";".join(",".join(map(str, s)) for s in seen)
            self.t.edges.append(
                (
                    self.p.name,
                    index,
                    action.type,
                    action.edge_case,
                    category(action.edge_case),
                    triggered,
                    as_expected,
                    shown,
                    utc_stamp(),
                )
            )
            self.log.log(
                logging.INFO if triggered else logging.WARNING,
                "[%s] EDGE CASE %s: %s (statuses %s, expected %s)",
                self.p.name,
                "triggered" if triggered else "NOT triggered",
                action.edge_case,
                shown,
                ",".join(map(str, action.trigger_status or action.expected_status)),
            )

    def _render(self, index: int, action: Action, kind: ActionType, i: int) -> tuple[str, dict, dict, Any]:
        variables = {**kind.defaults, **self.context, **action.variables(i), "i": i}
        try:
            path = render(kind.path, variables)
            params = render({**kind.params, **action.params}, variables)
            headers = render({**kind.headers, **action.headers}, variables)
            body = render(action.body if action.body is not None else kind.body, variables)
        except KeyError as exc:
            raise ConfigError(
                f"{self.p.name} action {index} ({action.type}): template variable {exc.args[0]!r} has no value"
            ) from None
        if kind.auth and self.context["token"]:
            headers["Authorization"] = f"Bearer {self.context['token']}"
        if action.vary_ip:
            headers["X-Forwarded-For"] = f"203.0.113.{(i % 250) + 1}"
        headers["X-Simulation-User"] = self.p.name
        return path, params, headers, body

    async def _request(self, index: int, action: Action, kind: ActionType, i: int) -> tuple[list[int], Any]:
        path, params, headers, body = self._render(index, action, kind, i)
        timeout = action.timeout_s or self.settings.request_timeout_s
        sim_at = utc_stamp(self.sim_now())
        # when it is sent on the simulated clock: pauses only, so a burst's requests share one instant
        paced_at = self.plan_time.start_utc.timestamp() + self.think_total + self.paused
        backed_off = [0.0]  # the retry back-offs before the current attempt
        statuses: list[int] = []
        total_ms, payload = 0.0, None
        outcome: dict[str, Any] = {"response": None, "error": None}
        policy = HttpRetry(
            max_retries=action.retries,
            backoff_seconds=self.settings.backoff_base_s,
            max_backoff_seconds=self.settings.backoff_max_s,
            statuses=frozenset(action.retry_on),
        )
        draws: list[Any] = []

        def jitter() -> float:
            # Seeded: the same persona, action and burst index wait the same on every run (drawn lazily,
            # since most requests are never retried).
            if not draws:
                draws.append(stream(self.settings.seed, "power_users", "backoff", self.p.name, index, i))
            return float(draws[0].random())

        def on_retry(error: BaseException, wait: float) -> None:
            backed_off[0] += wait
            self.log.info(
                "[%s] %s -> %s, retry %d/%d in %.2fs",
                self.p.name,
                action.type,
                statuses[-1],
                len(statuses),
                action.retries,
                wait,
            )

        try:
            async for attempt in policy.retrying_async(on_retry, unit=jitter):
                with attempt:
                    headers[SIMULATION_CLOCK_HEADER] = f"{paced_at + backed_off[0]:.3f}"
                    status, latency_ms = await self._attempt(
                        action, kind, path, params, headers, body, timeout, outcome
                    )
                    total_ms += latency_ms
                    statuses.append(status)
                    if status in policy.statuses:
                        response = outcome["response"]
                        retry_after = response.headers.get("retry-after") if response is not None else None
                        raise RetryableAnswer(status, action.type, retry_after_seconds(retry_after))
        except RetryableAnswer:
            pass  # out of retries: the last answer stands and is judged like any other
        response, error = outcome["response"], outcome["error"]
        if response is not None:
            try:
                payload = response.json()
            except ValueError:
                payload = None
        self._record(index, action, kind, i, path, statuses, total_ms, payload, error, body, sim_at)
        return statuses, payload

    def _record(
        self,
        index: int,
        action: Action,
        kind: ActionType,
        i: int,
        path: str,
        statuses: list[int],
        total_ms: float,
        payload: Any,
        error: str | None,
        body: Any,
        sim_at: str,
    ) -> None:
        """Append the request's row (final status, costs, analysis fields) and log it."""
        status = statuses[-1]
        ok = status in action.expected_status
        two_xx = 200 <= status < 300
        if two_xx and isinstance(payload, dict):
            for key, where in kind.capture.items():
                value = json_path(payload, where)
                if value is not None:
                    self.context[key] = value
        tokens_in = tokens_out = 0
        paid = 0.0
        address = score = None
        if two_xx and kind.meter == "analysis":
            costs = self.settings.costs
            tokens_in = int(json_path(payload, "tokens.input") or costs.default_input_tokens)
            tokens_out = int(json_path(payload, "tokens.output") or costs.default_output_tokens)
            address = json_path(payload, "address") or (body or {}).get("address")
            score = json_path(payload, "deal_score")
        elif two_xx and kind.meter == "payment":
            amount = json_path(payload, "amount_usd")
            if amount is None:
                tier = str((body or {}).get("tier", ""))
                amount = self.settings.tiers.tiers[tier].price_usd if tier in self.settings.tiers.tiers else 0
            paid = float(amount)
        tier = json_path(payload, "tier") if two_xx else None
        if isinstance(tier, str):
            self.context["tier"] = tier
        if error is None and not two_xx and isinstance(payload, dict):
            error = str(payload.get("error") or payload.get("detail") or "")
        self.t.requests.append(
            (
                self.p.name,
                index,
                action.type,
                i,
                status,
                len(statuses),
                ",".join(map(str, statuses)),
                ok,
                total_ms,
                utc_stamp(),
                error,
                kind.meter,
                tokens_in,
                tokens_out,
                paid,
                self.plan_time.session_id,
                sim_at,
                action.routine,
                str(self.context["tier"]),
                str(address) if address is not None else None,
                int(score) if isinstance(score, int | float) else None,
            )
        )
        self.log.log(
            logging.INFO if ok else logging.WARNING,
            "[%s] %s %s%s -> %s (%.1f ms)%s",
            self.p.name,
            kind.method,
            path,
            f" #{i + 1}" if i else "",
            "timeout" if status == TIMEOUT_STATUS else status,
            total_ms,
            "" if ok else f" UNEXPECTED, wanted {','.join(map(str, action.expected_status))}",
        )

    async def _attempt(
        self,
        action: Action,
        kind: ActionType,
        path: str,
        params: dict[str, Any],
        headers: dict[str, str],
        body: Any,
        timeout: float,
        outcome: dict[str, Any],
    ) -> tuple[int, float]:
        """Send one HTTP attempt, record it, keep its response in ``outcome``; return (status, latency ms).

        A timeout is recorded as ``TIMEOUT_STATUS`` and a failed connection as
        ``CONNECTION_ERROR_STATUS``; they are retried only when the action lists that status.
        """
        started = self.clock.now()
        try:
            response = await self.client.request(
                kind.method,
                self.client.url_for(path),
                params=params or None,
                headers=headers,
                json=body,
                timeout=timeout,
            )
            status, error = response.status_code, None
        except httpx.TimeoutException:
            status, error, response = TIMEOUT_STATUS, f"no response within {timeout:g} s", None
        except httpx.TransportError as exc:
            status, error, response = CONNECTION_ERROR_STATUS, str(exc) or type(exc).__name__, None
        ended = self.clock.now()
        latency_ms = (ended - started) * 1000.0
        self.t.attempts.append((self.p.name, action.type, status, latency_ms, started, started, ended, False))
        outcome["response"], outcome["error"] = response, error
        return status, latency_ms
