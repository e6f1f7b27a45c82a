"""Built-in action types (the PropIQ-like API's calls) and the pure helpers that plan and judge actions.

Paths follow the reference target in ``simulation_assets.target``; point a scenario at another
API by overriding a type under ``simulation_config.action_types`` with the same name.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulation_assets.core.power_users.config import Action, ActionType, Persona
from simulation_assets.core.rng import stream

_T = ActionType.model_validate

_ANALYSIS_BODY = {
    "address": "{address}",
    "purchase_price": "{purchase_price}",
    "monthly_rent": "{monthly_rent}",
    "property_type": "{property_type}",
    "state": "{state}",
}
_ANALYSIS_DEFAULTS = {
    "address": "1200 Oak Street, Austin, TX 78701",
    "purchase_price": 350_000,
    "monthly_rent": 2_600,
    "property_type": "single_family",
    "state": "",
}

BUILTIN_ACTION_TYPES: dict[str, ActionType] = {
    "health_check": _T({"method": "GET", "path": "/health", "auth": False}),
    "reset_user": _T(
        {
            "method": "POST",
            "path": "/sim/users/reset",
            "auth": False,
            "harness": True,
            "json": {
                "email": "{email}",
                "password": "{password}",
                "user_id": "{user_id}",
                "tier": "{tier}",
                "usage_used": "{usage_used}",
                "history_items": "{history_items}",
                "exists": "{exists}",
            },
            "defaults": {"usage_used": 0, "history_items": 0, "exists": True},
        }
    ),
    "signup": _T(
        {
            "method": "POST",
            "path": "/auth/signup",
            "auth": False,
            "json": {"email": "{email}", "password": "{password}", "user_id": "{user_id}"},
        }
    ),
    "login": _T(
        {
            "method": "POST",
            "path": "/auth/login",
            "auth": False,
            "json": {"email": "{email}", "password": "{password}"},
            "capture": {"token": "access_token", "refresh_token": "refresh_token"},
        }
    ),
    "refresh_token": _T(
        {
            "method": "POST",
            "path": "/auth/refresh",
            "auth": False,
            "json": {"refresh_token": "{refresh_token}"},
            "capture": {"token": "access_token"},
        }
    ),
    "logout": _T({"method": "POST", "path": "/auth/logout"}),
    "advance_clock": _T(
        {"method": "POST", "path": "/sim/clock", "harness": True, "json": {"minutes": "{minutes}"}}
    ),
    "set_usage": _T({"method": "POST", "path": "/sim/usage", "harness": True, "json": {"used": "{used}"}}),
    "view_account": _T({"method": "GET", "path": "/api/v1/account"}),
    "analyze_property": _T(
        {
            "method": "POST",
            "path": "/api/v1/propiq/analyze",
            "json": _ANALYSIS_BODY,
            "defaults": _ANALYSIS_DEFAULTS,
            "meter": "analysis",
        }
    ),
    "batch_analyze_properties": _T(
        {
            "method": "POST",
            "path": "/api/v1/propiq/analyze",
            "json": _ANALYSIS_BODY,
            "defaults": _ANALYSIS_DEFAULTS,
            "meter": "analysis",
        }
    ),
    "use_calculator": _T(
        {
            "method": "POST",
            "path": "/api/v1/calculator",
            "json": {
                "purchase_price": "{purchase_price}",
                "monthly_rent": "{monthly_rent}",
                "down_payment": "{down_payment}",
                "interest_rate": "{interest_rate}",
                "loan_term_years": "{loan_term_years}",
                "monthly_expenses": "{monthly_expenses}",
            },
            "defaults": {
                "purchase_price": 350_000,
                "monthly_rent": 2_600,
                "down_payment": 70_000,
                "interest_rate": 6.5,
                "loan_term_years": 30,
                "monthly_expenses": 600,
            },
        }
    ),
    "export_analyses": _T(
        {
            "method": "POST",
            "path": "/api/v1/export",
            "json": {"properties": "{properties}", "format": "{format}"},
            "defaults": {"properties": 5, "format": "csv"},
        }
    ),
    "view_history": _T(
        {
            "method": "GET",
            "path": "/api/v1/history",
            "params": {"limit": "{limit}"},
            "defaults": {"limit": 50},
        }
    ),
    "support_chat": _T(
        {
            "method": "POST",
            "path": "/api/v1/support/chat",
            "json": {"message": "{message}"},
            "defaults": {"message": "How is the deal score computed?"},
        }
    ),
    "view_pricing": _T({"method": "GET", "path": "/api/v1/pricing", "auth": False}),
    "checkout": _T(
        {
            "method": "POST",
            "path": "/api/v1/stripe/create-checkout-session",
            "json": {"tier": "{tier}", "payment_method": "{payment_method}"},
            "defaults": {"payment_method": "pm_card_visa"},
            "capture": {"checkout_session_id": "session_id"},
            "meter": "payment",
        }
    ),
    "stripe_webhook": _T(
        {
            "method": "POST",
            "path": "/api/v1/stripe/webhook",
            "auth": False,
            "json": {
                "id": "evt_{checkout_session_id}",
                "type": "checkout.session.completed",
                "data": {"object": {"id": "{checkout_session_id}"}},
            },
        }
    ),
    "downgrade": _T(
        {
            "method": "POST",
            "path": "/api/v1/subscription/downgrade",
            "json": {"tier": "{tier}", "confirm": "{confirm}"},
            "defaults": {"confirm": False},
        }
    ),
}


@dataclass(frozen=True)
class PlannedAction:
    """An action the run will perform: its position, how many requests, and at what concurrency."""

    index: int
    action: Action
    requests: int


def plan_session(persona: Persona, seed: int, day: str) -> list[PlannedAction]:
    """Return the actions of ``persona`` for ``day`` that pass their probability draw, with drawn counts.

    Draws come from the stream (seed, power_users, persona, day): the same inputs give the same plan.
    """
    n = len(persona.actions)
    rng = stream(seed, "power_users", "plan", persona.name, day)
    keep = rng.random(n) < np.array([a.probability for a in persona.actions])
    ranges = np.array([a.count_range() for a in persona.actions], dtype=np.int64).reshape(n, 2)
    counts = rng.integers(ranges[:, 0], ranges[:, 1] + 1)
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


def backoff_seconds(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Return the wait before retry ``attempt`` (1-based): exponential, capped, times (0.5 + jitter)."""
    return min(cap, base * (2 ** (attempt - 1))) * (0.5 + jitter)
