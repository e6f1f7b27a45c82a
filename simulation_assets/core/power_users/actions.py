"""Pure helpers that plan a persona's session, fill request templates and judge edge cases."""

from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulation_assets.core.power_users.config import Action, Persona
from simulation_assets.core.power_users.rhythm import plan_session_time
from simulation_assets.core.rng import stream


@dataclass(frozen=True)
class PlannedAction:
    """An action the run will perform: its position, how many requests, and whether it is routine work."""

    index: int
    action: Action
    requests: int

    @property
    def routine(self) -> bool:
        """Return whether the requests are the persona's routine analyses."""
        return self.action.routine


def plan_session(persona: Persona, seed: int, day: str, analyses: int | None = None) -> list[PlannedAction]:
    """Return the actions of ``persona`` for ``day`` that pass their probability draw, with drawn counts.

    Actions counted ``analyses_per_session`` get ``analyses`` requests (default: the session's draw
    from the persona's rhythm). Draws come from the stream (seed, power_users, plan, persona, day):
    the same inputs give the same plan.
    """
    if analyses is None:
        analyses = plan_session_time(
            persona.rhythm(), seed, persona.name, dt.date.fromisoformat(day)
        ).analyses
    n = len(persona.actions)
    rng = stream(seed, "power_users", "plan", persona.name, day)
    keep = rng.random(n) < np.array([a.probability for a in persona.actions])
    ranges = np.array([a.count_range() for a in persona.actions], dtype=np.int64).reshape(n, 2)
    counts = rng.integers(ranges[:, 0], ranges[:, 1] + 1)
    counts[[a.routine for a in persona.actions]] = analyses
    return [
        PlannedAction(index=i, action=persona.actions[i], requests=int(counts[i]))
        for i in np.flatnonzero(keep & (counts > 0))
    ]


class _Missing(dict):
    def __missing__(self, key: str) -> Any:
        raise KeyError(key)


def render(template: Any, variables: dict[str, Any]) -> Any:
    """Return ``template`` with ``{name}`` filled from ``variables``.

    A string that is exactly ``{name}`` takes the variable's own value and type (numbers stay
    numbers, lists stay lists). Raises KeyError naming a missing variable.
    """
    if isinstance(template, str):
        if "{" not in template:  # most strings hold no template: skip the parser (hot in loads)
            return template
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        if not fields:
            return template
        values = _Missing(variables)
        if len(fields) == 1 and template == "{" + fields[0] + "}":
            return values[fields[0]]
        return template.format_map(values)
    if isinstance(template, dict):
        return {render(k, variables): render(v, variables) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, variables) for v in template]
    return template


def template_fields(template: Any) -> set[str]:
    """Return the names of the ``{name}`` variables ``template`` (a string, dict or list) reads."""
    if isinstance(template, str):
        if "{" not in template:
            return set()
        fields = (f for _, f, _, _ in string.Formatter().parse(template) if f)
        return {f.split(".")[0].split("[")[0] for f in fields}  # {a.b} and {a[0]} read a
    if isinstance(template, dict):
        return set().union(*(template_fields(k) | template_fields(v) for k, v in template.items()))
    if isinstance(template, list):
        return set().union(*(template_fields(v) for v in template))
    return set()


def json_path(payload: Any, path: str) -> Any:
    """Return the value at dotted ``path`` (``usage.warning``, ``items.0``) or None when absent."""
    node = payload
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def json_matches(payload: Any, expected: dict[str, Any]) -> bool:
    """Return whether every dotted path holds its value (a list matches when it contains the value)."""
    for path, want in expected.items():
        got = json_path(payload, path)
        if isinstance(got, list) and not isinstance(want, list):
            if want not in got:
                return False
        elif got != want:
            return False
    return True


def proves_edge_case(
    action: Action, statuses_seen: list[list[int]], payloads: list[Any]
) -> tuple[bool, bool]:
    """Return (triggered, as_expected) for an action's requests.

    ``statuses_seen`` holds every attempt's status per request, ``payloads`` each final JSON body.
    A request proves the edge case when one of its attempts got a trigger status and its final
    body holds ``expect_json``; ``trigger`` says whether one or all requests must prove it.
    ``as_expected`` says whether every final status was an expected one.
    """
    wanted = set(action.trigger_status or action.expected_status)
    proofs = [
        bool(wanted.intersection(seen)) and (not action.expect_json or json_matches(body, action.expect_json))
        for seen, body in zip(statuses_seen, payloads)
    ]
    expected = set(action.expected_status)
    as_expected = all(seen[-1] in expected for seen in statuses_seen) if statuses_seen else False
    if not proofs:
        return False, as_expected
    return (any(proofs) if action.trigger == "any" else all(proofs)), as_expected
