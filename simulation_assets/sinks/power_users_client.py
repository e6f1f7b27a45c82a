"""Drive a target API with scripted power users over async HTTP and record every request.

``PowerUserTarget`` is the Dagster resource: with an empty ``base_url`` (the embedded default)
it serves the bundled reference API on a free loopback port for the length of a run; with a
URL it talks to that API instead, through the same methods.

Requests go through an ``httpx.AsyncClient`` (:class:`RunnerClient`) on
:class:`~simulation_assets.sinks.http1_transport.Http1Transport`: on the reference machine the
stock httpx client managed ~650 requests/s on loopback, several times less than Locust.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import polars as pl
from pydantic import Field

from simulation_assets.core.power_users.actions import (
    backoff_seconds,
    json_path,
    plan_session,
    proves_edge_case,
    render,
)
from simulation_assets.core.power_users.config import (
    CONNECTION_ERROR_STATUS,
    TIMEOUT_STATUS,
    Action,
    ActionType,
    ConfigError,
    Persona,
    Scenario,
)
from simulation_assets.core.power_users.edge_cases import category
from simulation_assets.core.power_users.report import (
    ATTEMPT_SCHEMA,
    EDGE_SCHEMA,
    REQUEST_SCHEMA,
    USER_SCHEMA,
    build_report,
    console_summary,
)
from simulation_assets.core.power_users.safety import check_scenario
from simulation_assets.core.rng import stream
from simulation_assets.sinks.http1_transport import Http1Transport
from simulation_assets.sinks.power_users_scenario import load_scenario

LOGGER_NAME = "simulation_assets.power_users"
LOG_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"


class _LazyCookies(httpx.Cookies):
    """Cookie jar that only parses responses carrying ``Set-Cookie`` (httpx parses every one)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class RunnerClient(httpx.AsyncClient):
    """httpx client tuned for many small requests: absolute URLs cached per path, lazy cookie parsing.

    Merging a relative path with ``base_url`` and parsing cookies were about half of httpx's own
    cost per request on loopback.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cookies = _LazyCookies()
        self._urls: dict[str, httpx.URL] = {}

    def url_for(self, path: str) -> httpx.URL:
        """Return the absolute URL of ``path`` below ``base_url`` (cached)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._merge_url(path)
        return url


def new_client(base_url: str, max_connections: int = 100, timeout_s: float = 10.0) -> RunnerClient:
    """Return an httpx client for ``base_url`` on the lean HTTP/1.1 transport."""
    return RunnerClient(
        base_url=base_url,
        transport=Http1Transport(max_connections),
        timeout=httpx.Timeout(timeout_s),
        headers={"User-Agent": "simulation-assets-power-users/1"},
    )


def utc_stamp() -> str:
    """Return the current UTC time as ``2025-10-22T19:15:32.123Z``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class RunTables:
    """Everything one run recorded, as rows ready for polars (schemas in ``core.power_users.report``)."""

    requests: list[tuple] = field(default_factory=list)
    attempts: list[tuple] = field(default_factory=list)
    edges: list[tuple] = field(default_factory=list)
    users: list[tuple] = field(default_factory=list)

    def frames(self) -> dict[str, pl.DataFrame]:
        """Return the four tables as frames keyed ``requests``, ``attempts``, ``edges``, ``users``."""
        return {
            "requests": pl.DataFrame(self.requests, schema=REQUEST_SCHEMA, orient="row"),
            "attempts": pl.DataFrame(self.attempts, schema=ATTEMPT_SCHEMA, orient="row"),
            "edges": pl.DataFrame(self.edges, schema=EDGE_SCHEMA, orient="row"),
            "users": pl.DataFrame(self.users, schema=USER_SCHEMA, orient="row"),
        }


@dataclass
class RunResult:
    """A finished run: its tables, the report dict and the console summary text."""

    frames: dict[str, pl.DataFrame]
    report: dict[str, Any]
    summary: str
    base_url: str


class _PersonaRun:
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
        origin: float,
    ) -> None:
        self.s, self.p, self.client, self.t, self.log = scenario, persona, client, tables, log
        self.settings = scenario.simulation_config
        self.types = scenario.action_types()
        self.day, self.hooks, self.origin = day, hooks, origin
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

    async def run(self) -> None:
        started_at, t0 = utc_stamp(), time.perf_counter()
        plan = plan_session(self.p, self.settings.seed, self.day)
        skipped = 0
        self.log.info("[%s] starting: %d of %d actions planned", self.p.name, len(plan), len(self.p.actions))
        for step in plan:
            kind = self.types[step.action.type]
            if kind.harness and not self.hooks:
                skipped += 1
                self.log.info(
                    "[%s] %s skipped: the target offers no simulation hooks", self.p.name, kind.path
                )
                continue
            await self._perform(step.index, step.action, kind, step.requests)
        duration = time.perf_counter() - t0
        self.t.users.append(
            (
                self.p.name,
                started_at,
                utc_stamp(),
                duration,
                len(plan),
                skipped,
                ",".join(self.p.edge_cases()),
            )
        )
        self.log.info("[%s] finished in %.1fs", self.p.name, duration)

    async def _perform(self, index: int, action: Action, kind: ActionType, count: int) -> None:
        think = (self.settings.think_time_ms if action.think_ms is None else action.think_ms) / 1000.0
        seen: list[list[int]] = []
        bodies: list[Any] = []
        for start in range(0, count, action.concurrency):
            if think:
                await asyncio.sleep(think)
            wave = range(start, min(start + action.concurrency, count))
            results = await asyncio.gather(*(self._request(index, action, kind, i) for i in wave))
            for statuses, body in results:
                seen.append(statuses)
                bodies.append(body)
        if action.edge_case:
            triggered, as_expected = proves_edge_case(action, seen, bodies)
            self.t.edges.append(
                (
                    self.p.name,
                    index,
                    action.type,
                    action.edge_case,
                    category(action.edge_case),
                    triggered,
                    as_expected,
                    ";".join(",".join(map(str, s)) for s in seen),
                    utc_stamp(),
                )
            )
            self.log.log(
                logging.INFO if triggered else logging.WARNING,
                "[%s] EDGE CASE %s: %s (statuses %s, expected %s)",
                self.p.name,
                "triggered" if triggered else "NOT triggered",
                action.edge_case,
                ";".join(",".join(map(str, s)) for s in seen),
                ",".join(map(str, action.trigger_status or action.expected_status)),
            )

    async def _request(self, index: int, action: Action, kind: ActionType, i: int) -> tuple[list[int], Any]:
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
        timeout = action.timeout_s or self.settings.request_timeout_s
        statuses: list[int] = []
        total_ms, payload, error, response = 0.0, None, None, None
        for attempt in range(1, action.retries + 2):
            started = time.perf_counter()
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
            ended = time.perf_counter()
            latency = (ended - started) * 1000.0
            total_ms += latency
            statuses.append(status)
            self.t.attempts.append(
                (self.p.name, action.type, status, latency, started - self.origin, ended - self.origin)
            )
            if status in action.retry_on and attempt <= action.retries:
                wait = self._backoff(index, i, attempt, response)
                self.log.info(
                    "[%s] %s -> %s, retry %d/%d in %.2fs",
                    self.p.name,
                    action.type,
                    status,
                    attempt,
                    action.retries,
                    wait,
                )
                await asyncio.sleep(wait)
                continue
            break
        if response is not None:
            try:
                payload = response.json()
            except ValueError:
                payload = None
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
        if two_xx and kind.meter == "analysis":
            costs = self.settings.costs
            tokens_in = int(json_path(payload, "tokens.input") or costs.default_input_tokens)
            tokens_out = int(json_path(payload, "tokens.output") or costs.default_output_tokens)
        elif two_xx and kind.meter == "payment":
            amount = json_path(payload, "amount_usd")
            if amount is None:
                tier = str((body or {}).get("tier", ""))
                amount = self.settings.tiers.tiers[tier].price_usd if tier in self.settings.tiers.tiers else 0
            paid = float(amount)
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
        return statuses, payload

    def _backoff(self, index: int, i: int, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            return min(float(retry_after), self.settings.backoff_max_s)
        jitter = float(
            stream(self.settings.seed, "power_users", "backoff", self.p.name, index, i, attempt).random()
        )
        return backoff_seconds(attempt, self.settings.backoff_base_s, self.settings.backoff_max_s, jitter)


async def _probe_hooks(client: httpx.AsyncClient) -> bool:
    """Return whether the target's ``/health`` advertises simulation hooks (reference target only)."""
    try:
        response = await client.get("/health", timeout=5.0)
        return bool(response.status_code == 200 and response.json().get("simulation_hooks"))
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


async def run_personas(
    scenario: Scenario,
    personas: list[Persona],
    base_url: str,
    day: str,
    parallel: bool,
    log: logging.Logger,
) -> RunTables:
    """Run ``personas`` against ``base_url`` (all at once or one after another) and return the tables."""
    tables = RunTables()
    settings = scenario.simulation_config
    async with new_client(base_url, settings.max_connections, settings.request_timeout_s) as client:
        hooks = await _probe_hooks(client)
        log.info(
            "target %s (simulation hooks: %s), %d personas", base_url, "yes" if hooks else "no", len(personas)
        )
        origin = time.perf_counter()
        runs = [_PersonaRun(scenario, p, client, tables, log, day, hooks, origin) for p in personas]
        if parallel:
            await asyncio.gather(*(r.run() for r in runs))
        else:
            for r in runs:
                await r.run()
    return tables


def run_async(coro: Any) -> Any:
    """Run ``coro`` to completion on uvloop when available, else on asyncio's default loop."""
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _file_logger(log_path: Path | None) -> tuple[logging.Logger, logging.Handler | None]:
    log = logging.getLogger(f"{LOGGER_NAME}.{id(log_path)}.{time.monotonic_ns()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = None
    if log_path is None:
        log.addHandler(logging.NullHandler())  # no file asked for: stay silent, not Python's stderr fallback
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        log.addHandler(handler)
    return log, handler


class PowerUserTarget(dg.ConfigurableResource):
    """Where power-user runs send their requests and which scenario file they follow.

    ``base_url`` empty (default) serves the bundled reference API on a free loopback port for
    each run; set it (or ``POWER_USERS_BASE_URL``) to drive another deployment of the API.
    """

    base_url: str = Field(
        default_factory=lambda: os.environ.get("POWER_USERS_BASE_URL", ""),
        description="API to drive; empty means the scenario's base_url, else the local reference target",
    )
    scenario_path: str = Field(
        default_factory=lambda: os.environ.get("POWER_USERS_SCENARIO", ""),
        description="YAML scenario file; empty means the packaged five personas",
    )

    def scenario(self) -> Scenario:
        """Return the validated scenario (raises ConfigError naming the bad field)."""
        return load_scenario(self.scenario_path or None)

    def run(
        self,
        personas: list[str] | None = None,
        day: str | None = None,
        sequential: bool | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        scenario: Scenario | None = None,
    ) -> RunResult:
        """Run the named personas (default: all) for ``day`` and return tables, report and summary.

        Safety checks run first: a live Stripe key or a non-simulated e-mail raises SafetyError
        before any request is sent.
        """
        scenario = scenario or self.scenario()
        check_scenario(scenario, os.environ if env is None else env)
        chosen = [scenario.persona(n) for n in personas] if personas else list(scenario.simulations)
        settings = scenario.simulation_config
        day = day or dt.date.today().isoformat()
        parallel = settings.parallel if sequential is None else not sequential
        url = (self.base_url or settings.base_url).rstrip("/")
        started = utc_stamp()
        log, handler = _file_logger(log_path)
        target: AbstractContextManager[Any]
        if url:
            target = nullcontext(None)
        else:
            from simulation_assets.target.server import LocalTarget

            target = LocalTarget()
        try:
            with target as local:
                url = url or local.base_url
                t0 = time.perf_counter()
                tables = run_async(run_personas(scenario, chosen, url, day, parallel, log))
                seconds = time.perf_counter() - t0
        finally:
            for h in list(log.handlers):
                log.removeHandler(h)
                h.close()
            logging.Logger.manager.loggerDict.pop(log.name, None)  # one logger per run: do not keep them
        frames = tables.frames()
        order = {p.name: i for i, p in enumerate(chosen)}
        frames["users"] = frames["users"].sort(pl.col("user").replace_strict(order, return_dtype=pl.Int32))
        meta = {
            "base_url": url,
            "reference_target": not (self.base_url or settings.base_url),
            "day": day,
            "mode": "parallel" if parallel else "sequential",
            "seed": settings.seed,
            "started_at": started,
            "finished_at": utc_stamp(),
            "duration_seconds": round(seconds, 3),
            "requests": frames["attempts"].height,
            "requests_per_second": round(frames["attempts"].height / seconds, 2) if seconds else 0.0,
        }
        report = build_report(
            frames["requests"], frames["attempts"], frames["edges"], frames["users"], settings.costs, meta
        )
        summary = console_summary(report, settings.product_name)
        if log_path is not None:
            with log_path.open("a", encoding="utf-8") as fh:
                fh.write(summary + "\n")
        return RunResult(frames=frames, report=report, summary=summary, base_url=url)


async def load_loop(
    base_url: str, users: int, duration_s: float, path: str = "/health", max_connections: int | None = None
) -> dict[str, Any]:
    """Hammer ``path`` with ``users`` concurrent loops for ``duration_s``; return counts and latencies.

    The same client and request recording as scenario runs; used by the benchmark.
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
