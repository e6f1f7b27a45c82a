"""A load's requests: encoded once per user, task and ``vary`` item, and again when the user's token changes.

An arrival's request reads the user's identity and token, the task's templates and its ``vary``
lists (item ``i % len``): arrivals of one user and task repeat after the lists' common length, so
their bytes are kept and written again. A task whose templates read the arrival number ``{i}``
itself is encoded for every arrival.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from simulation_assets.core.power_users.action_types import ActionType
from simulation_assets.core.power_users.actions import render, template_fields
from simulation_assets.core.power_users.config import LoadTask, Persona
from simulation_assets.core.power_users.rhythm import session_id
from simulation_assets.sinks.power_users_http import RunnerClient

# encoded requests kept at most (bounded so a huge population cannot grow the cache without end)
MAX_CACHED_REQUESTS = 200_000
MAX_PERIOD = 64  # vary lists whose common length is longer are encoded for every arrival

Encoded = tuple[tuple[str, str, int], bytes]  # (connection key, the whole HTTP/1.1 request)


class VirtualUser:
    """A load user: the persona's identity and its access token."""

    def __init__(self, persona: Persona, seed: int, day: str) -> None:
        self.persona = persona
        self.session_id = session_id(seed, persona.name, f"{day}/load")
        self.context: dict[str, Any] = {
            "email": persona.email,
            "password": persona.password,
            "user_id": persona.user_id,
            "name": persona.name,
            "tier": "elite",
            "token": "",
        }


class LoadRequests:
    """The encoded requests of one load's tasks, for its users."""

    def __init__(self, types: dict[str, ActionType], tasks: list[LoadTask], client: RunnerClient) -> None:
        self.types, self.tasks, self.client = types, tasks, client
        self.periods = [self.period(t) for t in tasks]
        self.cache: dict[tuple[int, int, int], tuple[str, Encoded | httpx.TransportError]] = {}

    def period(self, task: LoadTask) -> int:
        """Return after how many arrivals a user's request of ``task`` repeats (0: it never does)."""
        kind = self.types[task.type]
        body = task.body if task.body is not None else kind.body
        read = template_fields([kind.path, kind.params, task.params, body, kind.headers, task.headers])
        if "i" in read:
            return 0
        period = math.lcm(*(len(v) for v in task.vary.values())) if task.vary else 1
        return period if period <= MAX_PERIOD else 0

    def for_arrival(
        self, who: int, vu: VirtualUser, task_index: int, i: int
    ) -> Encoded | httpx.TransportError:
        """Return the request of arrival ``i`` by user number ``who`` (``vu``) for task ``task_index``."""
        task, period = self.tasks[task_index], self.periods[task_index]
        if period:
            key = (who, task_index, i % period)
            known = self.cache.get(key)
            if known is not None and known[0] == vu.context["token"]:
                return known[1]
        kind = self.types[task.type]
        request = self.encode(vu, kind, {**kind.defaults, **vu.context, **task.variables(i), "i": i}, task)
        if period and len(self.cache) < MAX_CACHED_REQUESTS:
            self.cache[key] = (vu.context["token"], request)
        return request

    def encode(
        self, vu: VirtualUser, kind: ActionType, variables: dict[str, Any], task: LoadTask | None
    ) -> Encoded | httpx.TransportError:
        """Return ``kind``'s request filled from ``variables`` (and ``task``'s own params, headers, body).

        A URL the transport cannot use comes back as the error, recorded as the request's answer.
        """
        path = render(kind.path, variables)
        params = render({**kind.params, **(task.params if task else {})}, variables) or None
        body = render(task.body if task and task.body is not None else kind.body, variables)
        headers = render({**kind.headers, **(task.headers if task else {})}, variables)
        if kind.auth and vu.context["token"]:
            headers["Authorization"] = f"Bearer {vu.context['token']}"
        headers["X-Simulation-User"] = vu.persona.name
        try:
            return self.client.encode(kind.method, path, params, headers, body)
        except httpx.TransportError as exc:
            return exc
