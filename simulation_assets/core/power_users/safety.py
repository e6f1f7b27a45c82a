"""Refusals that keep a power-user run away from real money and real people."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulation_assets.core.power_users.config import SIMULATED_EMAIL_DOMAIN, Scenario

LIVE_KEY_PREFIXES = ("sk_live_", "pk_live_", "rk_live_")
STRIPE_KEY_VARIABLES = ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_API_KEY", "STRIPE_KEY")


class SafetyError(ValueError):
    """The run would touch live payments or non-synthetic people; the message says what and where."""


def _strings(obj: Any, where: str):  # noqa: ANN202
    if isinstance(obj, str):
        yield where, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _strings(v, f"{where}[{i}]")


def check_scenario(scenario: Scenario, env: Mapping[str, str]) -> None:
    """Raise SafetyError on a live Stripe key (environment or file) or a non-simulated e-mail."""
    for name in STRIPE_KEY_VARIABLES:
        value = (env.get(name) or "").strip()
        if value.startswith(LIVE_KEY_PREFIXES):
            raise SafetyError(
                f"refusing to run: ${name} holds a live Stripe key ({value[:8]}…); use a test key "
                "(sk_test_/pk_test_) or unset it"
            )
    # Clones of a population share their archetype's actions: scan each action object once.
    parts = [("scenario.simulation_config", scenario.simulation_config)]
    seen: set[int] = set()
    for i, persona in enumerate(scenario.simulations):
        where = f"scenario.simulations[{i}]"
        parts.append((where, persona.model_copy(update={"actions": []})))
        for j, action in enumerate(persona.actions):
            if id(action) not in seen:
                seen.add(id(action))
                parts.append((f"{where}.actions[{j}]", action))
    for where, part in parts:
        for at, text in _strings(part.model_dump(mode="json", by_alias=True), where):
            if any(prefix in text for prefix in LIVE_KEY_PREFIXES):
                raise SafetyError(f"refusing to run: {at} contains a live Stripe key; use test keys only")
    suffix = "@" + SIMULATED_EMAIL_DOMAIN
    for i, persona in enumerate(scenario.simulations):
        emails = [("email", persona.email)]
        for j, action in enumerate(persona.actions):
            if "email" in (action.model_extra or {}):
                emails.append((f"actions[{j}].email", str(action.model_extra["email"])))
            emails += [(f"actions[{j}].vary.email", str(e)) for e in action.vary.get("email", [])]
        for field, email in emails:
            if not email.lower().endswith(suffix):
                raise SafetyError(
                    f"refusing to run: simulations[{i}].{field} is {email!r}; persona e-mails must end "
                    f"with {suffix} so no real person is contacted"
                )
