"""Personas and actions of a power-user run, as typed configuration.

A scenario file has two keys (the shape the scenario document uses):

``simulation_config``
    where to send requests (``base_url``), how (parallel, think time, timeouts, backoff), what
    things cost, thresholds for the checks, and extra ``action_types``: an action type is a
    plain HTTP call (method, path, body templates, values to capture), so new ones need no code.
``simulations``
    the personas: ``name``, ``user_id``, ``email``, ``persona`` (free-form profile), ``actions``.

Every action names a ``type``, the ``expected_status`` (one code, a list, or ``timeout``) and a
``probability``; ``count``/``concurrency`` make bursts; ``edge_case`` names what the action
provokes, ``trigger_status``/``expect_json`` say how to recognise it. Any other key of an
action is a template variable (``{address}``); a list is cycled over the burst.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulation_assets.core.power_users.action_types import BUILTIN_ACTION_TYPES, ActionType, template_fields
from simulation_assets.core.power_users.costs import CostModel
from simulation_assets.core.power_users.population import PopulationSpec, clone_population
from simulation_assets.core.power_users.rhythm import (
    Rhythm,
    RhythmSpec,
    ThinkTime,
    default_think_times,
    resolve,
)
from simulation_assets.core.power_users.shapes import LoadShape
from simulation_assets.core.power_users.tiers import TierTable

SIMULATED_EMAIL_DOMAIN = "simulated.propiq.test"
TIMEOUT_STATUS = 0  # status recorded when the client gave up waiting
CONNECTION_ERROR_STATUS = -1  # status recorded when no HTTP response arrived at all
# Sent with every scripted request: when the persona sends it on the session's simulated clock
# (Unix seconds: start, think times and the script's pauses; not the time requests took). The
# reference target's rate limiter counts on it, so a burst is a burst however loaded the machine.
SIMULATION_CLOCK_HEADER = "X-Simulation-Clock"
DEFAULT_PROFILES = Path(__file__).with_name("profiles.yaml")
ROUTINE_COUNT = "analyses_per_session"  # an action count drawn from the persona's analyses_per_session

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(ValueError):
    """A scenario file that cannot be used; the message names the bad field."""


def _status_codes(value: Any) -> tuple[int, ...]:
    """Normalise ``200``, ``[200, 429]`` or ``"timeout"`` to a tuple of status codes."""
    items = value if isinstance(value, list | tuple) else [value]
    codes = []
    for item in items:
        if isinstance(item, str) and item.strip().lower() == "timeout":
            codes.append(TIMEOUT_STATUS)
        elif (
            isinstance(item, int)
            and not isinstance(item, bool)
            and (100 <= item <= 599 or item == TIMEOUT_STATUS)
        ):
            codes.append(item)
        else:
            raise ValueError(f"expected an HTTP status 100-599 or 'timeout', got {item!r}")
    if not codes:
        raise ValueError("needs at least one status")
    return tuple(codes)


class Action(BaseModel):
    """One step of a persona's session; extra keys are template variables."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str
    expected_status: tuple[int, ...] = (200,)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    count: int | tuple[int, int] | Literal["analyses_per_session"] = Field(
        default=1,
        description="requests, [low, high] drawn per run, or analyses_per_session (the persona's routine work)",
    )
    concurrency: int = Field(default=1, ge=1, le=100, description="requests in flight at once")
    edge_case: str | None = None
    trigger_status: tuple[int, ...] | None = Field(
        default=None, description="statuses that prove the edge case (default: expected_status)"
    )
    trigger: Literal["any", "all"] = Field(
        default="all", description="'any': one request proving it is enough; 'all': every request must"
    )
    expect_json: dict[str, Any] = Field(
        default_factory=dict, description="dotted path -> value the response must hold to prove it"
    )
    retries: int = Field(default=0, ge=0, le=10, description="retries with backoff on retry_on statuses")
    retry_on: tuple[int, ...] = (429, 500, 502, 503, 504)
    timeout_s: float | None = Field(default=None, gt=0, le=300)
    think_ms: float | None = Field(
        default=None,
        ge=0,
        le=600_000,
        description="pause before each wave of requests (default: think_time_ms)",
    )
    vary_ip: bool = Field(default=False, description="send a different X-Forwarded-For per request")
    body: dict[str, Any] | None = Field(default=None, alias="json", description="replaces the type's body")
    params: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    vary: dict[str, list[Any]] = Field(
        default_factory=dict, description="template variables whose list is walked request by request"
    )
    description: str = ""

    @field_validator("vary")
    @classmethod
    def _lists(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, v in value.items() if not v]
        if empty:
            raise ValueError(f"needs at least one value for {', '.join(empty)}")
        return value

    @field_validator("expected_status", "trigger_status", "retry_on", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        return None if value is None else _status_codes(value)

    @field_validator("count", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        if value == ROUTINE_COUNT:
            return value
        if isinstance(value, list | tuple):
            if (
                len(value) != 2
                or not all(isinstance(v, int) and v >= 0 for v in value)
                or value[0] > value[1]
            ):
                raise ValueError(f"a range must be [low, high] with 0 <= low <= high, got {value!r}")
            return tuple(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"must be a non-negative integer or [low, high], got {value!r}")
        return value

    @field_validator("edge_case")
    @classmethod
    def _edge_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9_]+", value):
            raise ValueError(f"edge case names are snake_case (a-z, 0-9, _), got {value!r}")
        return value

    def variables(self, i: int = 0) -> dict[str, Any]:
        """Return the action's template variables for request ``i``: its extra keys, then ``vary`` items."""
        return {**(self.model_extra or {}), **{k: v[i % len(v)] for k, v in self.vary.items()}}

    @property
    def routine(self) -> bool:
        """Return whether the action is the persona's routine work (its count is ``analyses_per_session``)."""
        return self.count == ROUTINE_COUNT

    def count_range(self) -> tuple[int, int]:
        """Return (low, high) request counts; (0, 0) for routine work, whose count the session draws."""
        if isinstance(self.count, str):
            return (0, 0)
        return self.count if isinstance(self.count, tuple) else (self.count, self.count)


class LoadTask(Action):
    """One kind of request a load shape's arrivals send, with its share of the arrivals."""

    weight: float = Field(default=1.0, gt=0, description="relative share of arrivals")


def default_load_tasks() -> list[LoadTask]:
    """Return the default request mix of load shapes: reads, analyses and calculations of a working day."""
    return [
        LoadTask(type="view_account", weight=3),
        LoadTask(type="analyze_property", weight=2),
        LoadTask(type="use_calculator", weight=2),
        LoadTask(type="view_pricing", weight=2),
        LoadTask(type="view_history", weight=1),
    ]


class SloSpec(BaseModel):
    """Service-level objectives the load checks hold the API (and the generator) to."""

    model_config = ConfigDict(extra="forbid")

    p95_ms: float = Field(default=500.0, gt=0, description="95th percentile latency from the scheduled send")
    error_rate: float = Field(
        default=0.01, ge=0, le=1, description="share of requests without the expected answer"
    )
    rate_tolerance: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="open model: achieved arrivals may differ from requested by this share",
    )


class PersonaProfile(RhythmSpec):
    """Who the persona is and when they come (rhythm fields); free-form beyond the typed keys."""

    model_config = ConfigDict(extra="allow")

    role: str = ""
    starting_tier: str = "free"
    target_tier: str | None = None
    archetype: str | None = Field(default=None, description="the persona this one was cloned from")


class Persona(BaseModel):
    """A scripted power user."""

    model_config = ConfigDict(extra="forbid")

    name: str
    user_id: str
    email: str
    password: str = "SimPassword2025!"
    persona: PersonaProfile = Field(default_factory=PersonaProfile)
    actions: list[Action] = Field(min_length=1)

    @field_validator("name", "user_id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"use letters, digits, '-', '_' or '.', got {value!r}")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"not an e-mail address: {value!r}")
        return value.lower()

    def edge_cases(self) -> list[str]:
        """Return the edge cases the persona's actions provoke, in order, without repeats."""
        return list(dict.fromkeys(a.edge_case for a in self.actions if a.edge_case))

    @property
    def archetype(self) -> str:
        """Return the name of the persona this one was cloned from (its own name if not a clone)."""
        return self.persona.archetype or self.name

    def rhythm(self) -> Rhythm:
        """Return the persona's resolved rhythm (sessions per week, weekdays, start hours, ranges)."""
        return resolve(self.persona)


class SimulationSettings(BaseModel):
    """``simulation_config``: target, pacing, retries, prices, thresholds and extra action types."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(default="", description="empty: start the reference target on loopback")
    product_name: str = "PropIQ"
    seed: int = Field(default=42, ge=0)
    parallel: bool = True
    think_time_ms: float = Field(default=30.0, ge=0, le=60_000, description="pause between actions")
    request_timeout_s: float = Field(default=10.0, gt=0, le=300)
    backoff_base_s: float = Field(default=0.05, ge=0, le=30)
    backoff_max_s: float = Field(default=2.0, ge=0, le=300)
    max_connections: int = Field(default=100, ge=1, le=10_000)
    success_rate_threshold: float = Field(default=0.9, ge=0, le=1)
    cost_budget_usd: float = Field(default=25.0, ge=0)
    costs: CostModel = Field(default_factory=CostModel)
    tiers: TierTable = Field(default_factory=TierTable)
    action_types: dict[str, ActionType] = Field(default_factory=dict)
    load_shapes: dict[str, LoadShape] = Field(default_factory=dict, description="named load shapes (--shape)")
    load_tasks: list[LoadTask] = Field(default_factory=default_load_tasks, min_length=1)
    load_users: int = Field(
        default=100, ge=1, le=1_000_000, description="virtual users of a load without a population"
    )
    slo: SloSpec = Field(default_factory=SloSpec)
    think_times: dict[str, ThinkTime] = Field(
        default_factory=default_think_times,
        description="simulated pause before each action, per action type ('default' for the rest)",
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:8000, got {value!r}")
        return value.rstrip("/")


class Scenario(BaseModel):
    """A whole scenario file: settings plus personas (a value: derive a changed one with ``model_copy``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    simulation_config: SimulationSettings = Field(default_factory=SimulationSettings)
    simulations: list[Persona] = Field(min_length=1)
    population: PopulationSpec = Field(default_factory=PopulationSpec)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = [p.name for p in self.simulations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"persona names must be unique; repeated: {', '.join(duplicates)}")
        types = self.action_types()
        tiers = self.simulation_config.tiers.tiers
        for i, persona in enumerate(self.simulations):
            where = f"simulations[{i}]"
            for tier_field in ("starting_tier", "target_tier"):
                tier = getattr(persona.persona, tier_field)
                if tier is not None and tier not in tiers:
                    raise ValueError(
                        f"{where}.persona.{tier_field}: unknown tier {tier!r}; valid: {', '.join(tiers)} "
                        f"(persona {persona.name})"
                    )
            for j, action in enumerate(persona.actions):
                try:
                    _check_action(f"{where}.actions[{j}]", action, types)
                except ValueError as exc:
                    raise ValueError(f"{exc} (persona {persona.name})") from None
        for j, task in enumerate(self.simulation_config.load_tasks):
            _check_action(f"simulation_config.load_tasks[{j}]", task, types)
            if types[task.type].harness:
                raise ValueError(
                    f"simulation_config.load_tasks[{j}].type: {task.type!r} is a simulation hook"
                )
        return self

    def load_shape(self, name: str) -> LoadShape:
        """Return the load shape called ``name``; raise ConfigError listing the shapes defined."""
        shapes = self.simulation_config.load_shapes
        if name not in shapes:
            raise ConfigError(
                f"no load shape named {name!r}; defined under simulation_config.load_shapes: "
                f"{', '.join(shapes) or 'none'}"
            )
        return shapes[name]

    def action_types(self) -> dict[str, ActionType]:
        """Return the built-in action types overlaid with the file's own."""
        return {**BUILTIN_ACTION_TYPES, **self.simulation_config.action_types}

    def populated(self, size: int | None = None) -> Scenario:
        """Return the scenario with its personas cloned into ``size`` users (default: ``population.size``).

        Size 0 keeps one user per archetype. Raises ConfigError on a population that cannot be built.
        """
        spec = self.population if size is None else self.population.model_copy(update={"size": size})
        if spec.size == 0:
            return self
        try:
            clones = clone_population(self.simulations, self.simulation_config.seed, spec)
        except ValueError as exc:
            raise ConfigError(f"population: {exc}") from None
        return self.model_copy(update={"simulations": clones, "population": spec})

    def archetypes(self) -> list[str]:
        """Return the archetype names in scenario order (each persona's own name before cloning)."""
        return list(dict.fromkeys(p.archetype for p in self.simulations))

    def persona(self, name: str) -> Persona:
        """Return the persona called ``name``; raise ConfigError listing the valid names."""
        for p in self.simulations:
            if p.name == name:
                return p
        raise ConfigError(f"no persona named {name!r}; valid: {', '.join(p.name for p in self.simulations)}")

    def edge_cases(self) -> list[str]:
        """Return every edge case the scenario is configured to provoke."""
        return list(dict.fromkeys(e for p in self.simulations for e in p.edge_cases()))


_ACTION_FIELDS = set(Action.model_fields) | {"json"}
# Template values every request has: the persona's own, the burst index, and what login/checkout capture.
_PERSONA_CONTEXT = {"email", "password", "user_id", "name", "tier", "token", "refresh_token", "i"}


def _check_action(where: str, action: Action, types: dict[str, ActionType]) -> None:
    """Raise ValueError naming the field when ``action`` refers to something that does not exist."""
    if action.type not in types:
        hint = difflib.get_close_matches(action.type, list(types), n=1)
        raise ValueError(
            f"{where}.type: unknown action type {action.type!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + "; add it under simulation_config.action_types"
        )
    kind = types[action.type]
    used = kind.templates() | template_fields([action.body, action.params, action.headers])
    for key in action.variables():
        if key in used or key in kind.defaults:
            continue
        hint = difflib.get_close_matches(key, sorted(_ACTION_FIELDS), n=1, cutoff=0.75)
        if hint:
            raise ValueError(f"{where}.{key}: unknown field (did you mean {hint[0]!r}?)")
        raise ValueError(
            f"{where}.{key}: not a field of an action and not a variable used by action type "
            f"{action.type!r} (its templates use: {', '.join(sorted(used)) or 'none'})"
        )
    for key, path in kind.capture.items():
        if not path:
            raise ValueError(f"{where}: action type {action.type!r} captures {key!r} from an empty path")
    captured = {key for t in types.values() for key in t.capture}
    missing = used - set(action.variables()) - set(kind.defaults) - _PERSONA_CONTEXT - captured
    if missing:
        names = ", ".join(sorted(missing))
        raise ValueError(
            f"{where}: action type {action.type!r} needs a value for {names}; set it on the action "
            f"(e.g. {sorted(missing)[0]}: ...) or under defaults of the action type"
        )


def _format_error(exc: ValidationError, source: str) -> str:
    """Return one line per problem, each naming the field path (``simulations[0].actions[2].probability``)."""
    lines = []
    for err in exc.errors():
        parts: list[str] = []
        for loc in err["loc"]:
            if isinstance(loc, int):
                parts.append(f"[{loc}]")
            elif loc in ("function-after[_consistent()]",) or str(loc).startswith(("function-", "tagged-")):
                continue
            else:
                parts.append(("." if parts else "") + str(loc))
        field = "".join(parts) or "(file)"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{field}: {message}" if field != "(file)" else message)
    return f"invalid scenario {source}:\n  " + "\n  ".join(lines)


def parse_scenario(data: Any, source: str = "<data>") -> Scenario:
    """Return the validated scenario from already-parsed YAML; raise ConfigError naming bad fields."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid scenario {source}: the top level must be a mapping with 'simulations'")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None
