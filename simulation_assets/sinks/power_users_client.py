"""Drive a target API with scripted power users over async HTTP and record every request.

``PowerUserTarget`` is the Dagster resource: it names the API (``base_url``) and the scenario
file. An empty ``base_url`` means "the bundled reference API": whoever runs the personas (the
Dagster asset) serves it on a free loopback port and passes its URL to :meth:`PowerUserTarget.run`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import polars as pl
from pydantic import Field

from simulation_assets.core.power_users.action_types import ActionType
from simulation_assets.core.power_users.actions import (
    json_path,
    plan_session,
    proves_edge_case,
    render,
)
from simulation_assets.core.power_users.config import (
    CONNECTION_ERROR_STATUS,
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
    REQUEST_SCHEMA,
    USER_SCHEMA,
    build_report,
    console_summary,
)
from simulation_assets.core.power_users.safety import check_scenario
from simulation_assets.core.rng import stream
from simulation_assets.sinks.http_retry import HttpRetry, RetryableAnswer, retry_after_seconds
from simulation_assets.sinks.power_users_http import RunnerClient, new_client, probe_hooks, run_async
from simulation_assets.sinks.power_users_scenario import load_scenario

LOGGER_NAME = "simulation_assets.power_users"
LOG_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"


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

    def frames(self, run_columns: dict[str, Any]) -> dict[str, pl.DataFrame]:
        """Return the four tables keyed ``requests``, ``attempts``, ``edges``, ``users``.

        ``run_columns`` (base URL, reference target, mode) are the same for every user of the run.
        """
        per_user = {k: v for k, v in USER_SCHEMA.items() if k not in run_columns}
        users = pl.DataFrame(self.users, schema=per_user, orient="row").with_columns(
            pl.lit(v, dtype=USER_SCHEMA[k]).alias(k) for k, v in run_columns.items()
        )
        return {
            "requests": pl.DataFrame(self.requests, schema=REQUEST_SCHEMA, orient="row"),
            "attempts": pl.DataFrame(self.attempts, schema=ATTEMPT_SCHEMA, orient="row"),
            "edges": pl.DataFrame(self.edges, schema=EDGE_SCHEMA, orient="row"),
            "users": users.select(list(USER_SCHEMA)),
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
        latency_ms = (ended - started) * 1000.0
        self.t.attempts.append(
            (self.p.name, action.type, status, latency_ms, started - self.origin, ended - self.origin)
        )
        outcome["response"], outcome["error"] = response, error
        return status, latency_ms


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
        hooks = await probe_hooks(client)
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

    ``base_url`` empty (default) means the bundled reference API, served on a free loopback port
    for each run; set it (or ``POWER_USERS_BASE_URL``) to drive another deployment of the API.
    """

    base_url: str = Field(
        default="",
        description="API to drive (env POWER_USERS_BASE_URL); empty: the scenario's base_url, else the reference API",
    )
    scenario_path: str = Field(
        default="",
        description="YAML scenario file (env POWER_USERS_SCENARIO); empty: the packaged five personas",
    )

    def scenario(self) -> Scenario:
        """Return the validated scenario (raises ConfigError naming the bad field)."""
        return load_scenario(self.scenario_path or None)

    def target_url(self, scenario: Scenario) -> str:
        """Return the API to drive (resource, then scenario file); empty means the bundled reference API."""
        return (self.base_url or scenario.simulation_config.base_url).rstrip("/")

    def run(
        self,
        personas: list[str] | None = None,
        day: str | None = None,
        sequential: bool | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        scenario: Scenario | None = None,
        reference_url: str = "",
    ) -> RunResult:
        """Run the named personas (default: all) for ``day`` and return tables, report and summary.

        Safety checks run first: a live Stripe key or a non-simulated e-mail raises SafetyError
        before any request is sent. With no API configured, ``reference_url`` is the address of
        the served reference API.
        """
        scenario = scenario or self.scenario()
        check_scenario(scenario, os.environ if env is None else env)
        chosen = [scenario.persona(n) for n in personas] if personas else list(scenario.simulations)
        settings = scenario.simulation_config
        day = day or dt.date.today().isoformat()
        parallel = settings.parallel if sequential is None else not sequential
        configured = self.target_url(scenario)
        url = configured or reference_url.rstrip("/")
        if not url:
            raise ValueError(
                "no API to drive: set base_url (env POWER_USERS_BASE_URL or the scenario's "
                "simulation_config.base_url) or serve the reference target and pass its reference_url"
            )
        started = utc_stamp()
        log, _ = _file_logger(log_path)
        try:
            t0 = time.perf_counter()
            tables = run_async(run_personas(scenario, chosen, url, day, parallel, log))
            seconds = time.perf_counter() - t0
        finally:
            for h in list(log.handlers):
                log.removeHandler(h)
                h.close()
            logging.Logger.manager.loggerDict.pop(log.name, None)  # one logger per run: do not keep them
        mode = "parallel" if parallel else "sequential"
        frames = tables.frames({"base_url": url, "reference_target": not configured, "mode": mode})
        order = {p.name: i for i, p in enumerate(chosen)}
        frames["users"] = frames["users"].sort(pl.col("user").replace_strict(order, return_dtype=pl.Int32))
        meta = {
            "base_url": url,
            "reference_target": not configured,
            "day": day,
            "mode": mode,
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
