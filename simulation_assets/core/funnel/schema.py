"""The canonical event (tracking plan section 10) and its validation against the taxonomy.

Two shapes of the same data:

* a single event as a dict / :class:`CanonicalEvent` (what a client or CAPI sees), and
* an events *frame*: one row per event, the eight top-level fields as columns and
  every property as its own column (null where an event does not carry it). Frames
  are what the generator emits and what Parquet, DuckDB and the models read.

``validate_event`` checks one event and names the first missing property;
``validate_frame`` checks a whole frame with column operations and returns every
problem it finds.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from simulation_assets.core.funnel.taxonomy import GLOBAL_PROPERTIES, PROPERTIES, TAXONOMY, PropertySpec

TOP_LEVEL_COLUMNS: tuple[str, ...] = (
    "event",
    "timestamp",
    "source",
    "environment",
    "distinct_id",
    "user_id",
    "session_id",
)
SOURCES = ("web", "server", "worker")
ENVIRONMENTS = ("prod", "staging", "dev", "simulation")

_POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "number": pl.Float64(),
    "integer": pl.Int64(),
    "boolean": pl.Boolean(),
}


def polars_type(spec: PropertySpec) -> pl.DataType:
    """Return the column type of a property in an events frame."""
    return _POLARS_TYPES[spec.type]


def event_columns() -> list[tuple[str, pl.DataType]]:
    """Return the columns of an events frame: the top-level fields, then every known property (sorted)."""
    top: list[tuple[str, pl.DataType]] = [
        ("event", pl.String()),
        ("timestamp", pl.Datetime("ms", "UTC")),
        ("source", pl.String()),
        ("environment", pl.String()),
        ("distinct_id", pl.String()),
        ("user_id", pl.String()),
        ("session_id", pl.String()),
    ]
    return top + [(name, polars_type(spec)) for name, spec in sorted(PROPERTIES.items())]


EVENT_SCHEMA: dict[str, pl.DataType] = dict(event_columns())
"""Columns and types of an events frame (what the cohorts write and the learners read)."""

COLUMN_DESCRIPTIONS: dict[str, str] = {
    "event": "taxonomy event name (section 2)",
    "timestamp": "when it happened, UTC, millisecond precision",
    "source": "emitting layer: web, server or worker",
    "environment": "prod, staging, dev or simulation",
    "distinct_id": "anonymous id in the browser; the user id on server and worker events after login",
    "user_id": "set from login_success on (identity stitching)",
    "session_id": "browser session of the event",
    **{name: spec.description for name, spec in PROPERTIES.items() if spec.description},
}
"""Descriptions of the events-frame columns shown in the UI."""


class EventValidationError(ValueError):
    """An event does not follow the taxonomy; the message names the event and the property."""


class CanonicalEvent(BaseModel):
    """One event in the canonical shape: what happened (``event``) and why (``properties``)."""

    model_config = ConfigDict(extra="forbid")

    event: str
    timestamp: dt.datetime
    source: Literal["web", "server", "worker"]
    environment: str
    distinct_id: str
    user_id: str | None = None
    session_id: str
    properties: dict[str, Any]

    @field_validator("event")
    @classmethod
    def _known_event(cls, value: str) -> str:
        if value not in TAXONOMY:
            raise ValueError(f"unknown event {value!r}: not in the tracking plan")
        return value

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a timezone (ISO 8601 with Z or an offset)")
        return value

    def to_json(self) -> dict[str, Any]:
        """Return the event as JSON-ready dict with an ISO 8601 millisecond UTC timestamp."""
        data = self.model_dump()
        data["timestamp"] = iso_ms(self.timestamp)
        return data


def iso_ms(ts: dt.datetime) -> str:
    """Return ``ts`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC."""
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _type_ok(spec: PropertySpec, value: Any) -> bool:
    if spec.type == "boolean":
        return isinstance(value, bool)
    if spec.type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if spec.type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def validate_event(event: dict[str, Any] | CanonicalEvent) -> CanonicalEvent:
    """Return the event as a :class:`CanonicalEvent` or raise :class:`EventValidationError`.

    Checks the top-level shape, that every required property of the event is present
    (non-null unless the plan allows null), and the type and allowed values of each
    property the plan knows.
    """
    try:
        parsed = event if isinstance(event, CanonicalEvent) else CanonicalEvent.model_validate(event)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        name = event.get("event") if isinstance(event, dict) else None
        raise EventValidationError(f"event {name!r}: field {where!r}: {first['msg']}") from None
    spec = TAXONOMY[parsed.event]
    props = parsed.properties
    for prop in (*_globals(), *spec.required):
        if prop.name not in props:
            raise EventValidationError(f"event {parsed.event!r} is missing required property {prop.name!r}")
        if props[prop.name] is None and not prop.nullable:
            raise EventValidationError(f"event {parsed.event!r}: required property {prop.name!r} is null")
    for name, value in props.items():
        prop = PROPERTIES.get(name)
        if prop is None or value is None:
            continue
        if not _type_ok(prop, value):
            raise EventValidationError(
                f"event {parsed.event!r}: property {name!r} must be {prop.type}, got {type(value).__name__}"
            )
        if prop.choices is not None and value not in prop.choices:
            raise EventValidationError(
                f"event {parsed.event!r}: property {name!r} must be one of {list(prop.choices)}, got {value!r}"
            )
    if parsed.event == "login_success" and not parsed.user_id:
        raise EventValidationError("event 'login_success' must carry user_id (identity stitching point)")
    return parsed


def _globals() -> tuple[PropertySpec, ...]:
    return GLOBAL_PROPERTIES


class FrameProblem(BaseModel):
    """One rule broken by some rows of an events frame."""

    event: str
    rule: str
    rows: int


def validate_frame(frame: pl.DataFrame) -> list[FrameProblem]:
    """Return every taxonomy rule the events frame breaks (empty list: all rows valid).

    Column-wise: unknown events, missing or null required properties per event,
    property columns of the wrong type, values outside an enum, bad sources,
    login_success without user_id.
    """
    problems: list[FrameProblem] = []
    for col in TOP_LEVEL_COLUMNS:
        if col not in frame.columns:
            problems.append(
                FrameProblem(event="*", rule=f"missing top-level column {col!r}", rows=frame.height)
            )
    if problems:
        return problems
    schema = frame.schema  # built anew (~1 ms for a wide frame) on each access of ``frame.schema``
    for name, spec in PROPERTIES.items():
        if name in schema and schema[name] != polars_type(spec) and schema[name] != pl.Null:
            problems.append(
                FrameProblem(
                    event="*",
                    rule=f"column {name!r} is {schema[name]}, expected {spec.type}",
                    rows=frame.height,
                )
            )
    for col in ("distinct_id", "session_id", "timestamp", "environment"):
        nulls = frame[col].null_count()
        if nulls:
            problems.append(FrameProblem(event="*", rule=f"{col} is null", rows=nulls))
    bad_source = frame.filter(~pl.col("source").is_in(SOURCES)).height
    if bad_source:
        problems.append(FrameProblem(event="*", rule=f"source outside {SOURCES}", rows=bad_source))
    # One pass over the frame per kind of rule: per event, its row count, the nulls of every column a
    # rule needs non-null, and the values outside each enum; the rules then read that small table.
    non_null = sorted(
        {p.name for spec in TAXONOMY.values() for p in (*_globals(), *spec.required) if not p.nullable}
        & set(frame.columns)
        | {"user_id"}
    )
    enums = {
        name: spec.choices
        for name, spec in PROPERTIES.items()
        if spec.choices is not None and name in frame.columns
    }
    per_event = frame.group_by("event", maintain_order=True).agg(
        pl.len().alias("rows"),
        *[pl.col(col).null_count().alias(f"null {col}") for col in non_null],
        *[
            (pl.col(name).is_not_null() & ~pl.col(name).is_in(choices)).sum().alias(f"outside {name}")
            for name, choices in enums.items()
        ],
    )
    for stats in per_event.iter_rows(named=True):
        name = stats["event"]
        if name not in TAXONOMY:
            problems.append(FrameProblem(event=str(name), rule="unknown event", rows=int(stats["rows"])))
            continue
        spec = TAXONOMY[name]
        for prop in (*_globals(), *spec.required):
            if prop.name not in frame.columns:
                problems.append(
                    FrameProblem(
                        event=name, rule=f"missing required property {prop.name!r}", rows=stats["rows"]
                    )
                )
                continue
            if not prop.nullable and stats[f"null {prop.name}"]:
                problems.append(
                    FrameProblem(
                        event=name,
                        rule=f"required property {prop.name!r} is null",
                        rows=stats[f"null {prop.name}"],
                    )
                )
        for pname, choices in enums.items():
            if stats[f"outside {pname}"]:
                problems.append(
                    FrameProblem(
                        event=name,
                        rule=f"property {pname!r} outside {list(choices)}",
                        rows=stats[f"outside {pname}"],
                    )
                )
        if name == "login_success" and stats["null user_id"]:
            problems.append(
                FrameProblem(event=name, rule="login_success without user_id", rows=stats["null user_id"])
            )
    return problems


def property_columns(frame: pl.DataFrame) -> list[str]:
    """Return the property columns of an events frame (everything but the top-level fields)."""
    return [c for c in frame.columns if c not in TOP_LEVEL_COLUMNS]


def to_canonical(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Return the frame's rows as canonical JSON events, each carrying only its non-null properties.

    Required properties that may be null (``fbclid``, ``failure_reason`` ...) are kept as null
    on the events that require them.
    """
    props = property_columns(frame)
    keep_null = {
        name: {p.name for p in (*_globals(), *spec.required) if p.nullable} for name, spec in TAXONOMY.items()
    }
    out = []
    ts_iso = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_list()
    for i, row in enumerate(frame.iter_rows(named=True)):
        nullable = keep_null.get(row["event"], set())
        out.append(
            {
                "event": row["event"],
                "timestamp": ts_iso[i],
                "source": row["source"],
                "environment": row["environment"],
                "distinct_id": row["distinct_id"],
                "user_id": row["user_id"],
                "session_id": row["session_id"],
                "properties": {k: row[k] for k in props if row[k] is not None or k in nullable},
            }
        )
    return out


def dumps(events: list[dict[str, Any]]) -> str:
    """Return events as newline-delimited JSON."""
    return "\n".join(json.dumps(e, separators=(",", ":")) for e in events)
