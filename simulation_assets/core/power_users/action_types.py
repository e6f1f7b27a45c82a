"""Action types: how an action becomes one HTTP call, and the built-in ones of the PropIQ-like API.

An action type is a plain HTTP call (method, path, body templates, values to capture), so a
scenario file adds new ones without code. Paths of the built-ins follow the reference target in
``simulation_assets.target``; point a scenario at another API by overriding a type under
``simulation_config.action_types`` with the same name.
"""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


def template_fields(obj: Any) -> set[str]:
    """Return the ``{names}`` used by the string templates inside ``obj`` (dicts, lists, strings)."""
    if isinstance(obj, str):
        return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(obj) if f}
    if isinstance(obj, dict):
        return set().union(*(template_fields(v) for v in obj.values()), *(template_fields(k) for k in obj))
    if isinstance(obj, list | tuple):
        return set().union(*(template_fields(v) for v in obj))
    return set()


class ActionType(BaseModel):
    """How an action is performed: one HTTP call with templated path, query, headers and body."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(description="path below base_url; may use {templates}")
    auth: bool = Field(default=True, description="send 'Authorization: Bearer {token}'")
    body: dict[str, Any] | None = Field(default=None, alias="json")
    params: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict, description="template values when unset")
    capture: dict[str, str] = Field(
        default_factory=dict, description="context variable -> dotted path in the JSON response"
    )
    meter: Literal["none", "analysis", "payment"] = Field(
        default="none", description="'analysis' counts AI tokens, 'payment' counts a charge"
    )
    harness: bool = Field(
        default=False, description="a simulation hook; skipped when the target does not offer hooks"
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with '/', got {value!r}")
        return value

    def templates(self) -> set[str]:
        """Return the template variables the type uses."""
        return template_fields([self.path, self.body, self.params, self.headers])


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
