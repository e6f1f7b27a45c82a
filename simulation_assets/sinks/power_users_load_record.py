"""How a load sends one request and records it: the logins before the load, each request's attempt row.

A mixin of ``power_users_load.LoadRun`` (it holds the state these methods use).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from simulation_assets.core.power_users.action_types import ActionType
from simulation_assets.core.power_users.actions import json_path
from simulation_assets.core.power_users.config import CONNECTION_ERROR_STATUS, TIMEOUT_STATUS, LoadTask
from simulation_assets.sinks.power_users_load_requests import VirtualUser

# Users log in all at once before the load starts, each on a connection of its own that the load
# then reuses (as each user's browser would); opening them during the load would delay its start.
SETUP_CONCURRENCY = 10_000
# action_index of the requests that are not load tasks (tasks count from 0)
SETUP_RESET, SETUP_LOGIN, RELOGIN = -3, -2, -1


class RequestRecorder:
    """Sends a load's requests (logins, resets, tasks) and records each answer as a row."""

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
