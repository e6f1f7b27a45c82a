"""The one way configuration reaches the project from outside: YAML override files and environment variables.

- ``load_config(Model, path, source=..., overrides=...)`` reads an optional YAML file of
  overrides, merges explicit overrides on top (nested mappings merge key by key) and
  validates the result into a pydantic model. Any problem raises ``ConfigFileError``
  naming the file (and the variable that pointed at it) and every offending field by
  its dotted path, e.g. ``HOGFLIX_CONFIG file /x/pool.yaml: persona_pool: Input should
  be greater than 0 (got -1)``. Nothing is written before the configuration is valid.
- ``from_env(Resource, {"field": "ENV_NAME"}, **explicit)`` builds a Dagster resource whose
  fields that come from the environment are bound to ``dg.EnvVar``: the UI then shows the
  variable's name, never its value (DSNs, keys), and the value is read when a run starts.
  Fields whose variable is unset keep the resource's default; explicit values win.

A YAML file must hold a mapping of the model's fields; an empty file means "no overrides".
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import yaml
from dagster._config.field_utils import IntEnvVar
from pydantic import BaseModel, ValidationError

# PyYAML's safe loader on libyaml (same documents, same errors with line and column), ~10x faster than
# the pure-Python one: the power users' packaged scenario (1,400 nodes) took ~0.1 s per read.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=dg.ConfigurableResource)


class ConfigFileError(ValueError):
    """Configuration that cannot be used; the message names the file or variable and the fields."""


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated with ``extra``; where both hold a mapping under one key, merge it the same way."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _where(path: Path, source: str) -> str:
    return f"{source} file {path}" if source else f"config file {path}"


def read_overrides(path: str | os.PathLike[str], source: str = "") -> dict[str, Any]:
    """Return the mapping held by the YAML file at ``path`` (``{}`` when the file is empty).

    ``source`` names what pointed at the file (an environment variable or an option) for
    the error message. Raises ConfigFileError when the file is missing, is not YAML, or
    does not hold a mapping.
    """
    file = Path(path).expanduser()
    where = _where(file, source)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"{where} not found") from None
    except OSError as exc:
        raise ConfigFileError(f"{where} cannot be read: {exc.strerror or exc}") from None
    try:
        loaded = yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (the safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFileError(f"{where} is not valid YAML{at}: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise ConfigFileError(
            f"{where} must hold a mapping of field names to values, got a {type(loaded).__name__}"
        )
    return dict(loaded)


def describe_errors(error: ValidationError) -> str:
    """Return one ``dotted.field: message (got value)`` line per problem of a pydantic error."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        got = problem.get("input")
        shown = "" if isinstance(got, Mapping) or problem["type"] == "missing" else f" (got {got!r})"
        lines.append(f"{field}: {problem['msg']}{shown}")
    return "; ".join(lines)


def load_config(
    model: type[M],
    path: str | os.PathLike[str] | None = None,
    *,
    source: str = "",
    overrides: Mapping[str, Any] | None = None,
) -> M:
    """Return ``model`` validated from the YAML overrides at ``path`` (if any), then ``overrides``.

    ``source`` names the variable or option that gave ``path`` (for messages). Raises
    ConfigFileError naming the file and each invalid field.
    """
    values: dict[str, Any] = read_overrides(path, source) if path else {}
    if overrides:
        values = deep_merge(values, overrides)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        where = _where(Path(path), source) if path else f"{model.__name__} overrides"
        raise ConfigFileError(f"{where}: {describe_errors(exc)}") from None


def _field_type(resource: type[dg.ConfigurableResource], field: str) -> Any:
    hints = typing.get_type_hints(resource)
    if field not in hints:
        raise ConfigFileError(f"{resource.__name__} has no field {field!r}")
    return hints[field]


def env_value(resource: type[dg.ConfigurableResource], field: str, name: str) -> Any:
    """Return how ``field`` of ``resource`` takes the set variable ``name``: a ``dg.EnvVar`` for text and
    whole numbers (resolved when a run starts), else the value parsed now.

    Raises ConfigFileError naming the variable when its text does not fit the field.
    """
    kind = _field_type(resource, field)
    raw = os.environ[name]
    if kind is int:
        try:
            int(raw)
        except ValueError:
            raise ConfigFileError(f"${name} must be a whole number, got {raw!r}") from None
        return dg.EnvVar.int(name)
    if kind is str:
        return dg.EnvVar(name)
    try:  # Literal choices, floats, booleans: validated by the field's own type now
        from pydantic import TypeAdapter

        return TypeAdapter(kind).validate_python(raw)
    except ValidationError as exc:
        raise ConfigFileError(f"${name}: {describe_errors(exc)}") from None


def from_env(
    resource: type[R], env: Mapping[str, str | tuple[str, ...]] | None = None, /, **explicit: Any
) -> R:
    """Return ``resource(**explicit)`` with each field of ``env`` whose variable is set (and non-empty)
    bound to that variable; explicit values win over the environment.

    ``env`` maps a field to a variable name, or to a tuple of names of which the first one set is
    used; it defaults to the resource's own ``ENV`` class attribute.
    """
    env = getattr(resource, "ENV", {}) if env is None else env
    values: dict[str, Any] = {}
    for field, names in env.items():
        if field in explicit:
            continue
        for name in (names,) if isinstance(names, str) else names:
            if os.environ.get(name):
                values[field] = env_value(resource, field, name)
                break
    return resource(**values, **explicit)


def resolved(resource: R) -> R:
    """Return ``resource`` with its ``dg.EnvVar`` fields read now, for direct use outside a run.

    Reads each bound variable itself: Dagster's ``process_config_and_initialize`` would first build a
    throw-away in-memory instance (0.5-1 s of schema migrations) only to initialize the resource.
    A resource that nests other resources (none here yet) still goes through Dagster.
    """
    fields = type(resource).model_fields
    values = {name: getattr(resource, name) for name in fields}
    if any(isinstance(v, dg.ConfigurableResource) for v in values.values()):
        return resource.process_config_and_initialize()  # type: ignore[return-value]
    bound = {name: v for name, v in values.items() if isinstance(v, (dg.EnvVar, IntEnvVar))}
    if not bound:
        return resource
    for name, var in bound.items():
        raw = os.environ.get(var.env_var_name)
        if raw is None:
            raise ConfigFileError(f"${var.env_var_name} ({type(resource).__name__}.{name}) is not set")
        try:
            values[name] = int(raw) if isinstance(var, IntEnvVar) else raw
        except ValueError:
            raise ConfigFileError(f"${var.env_var_name} must be a whole number, got {raw!r}") from None
    return type(resource)(**values)
