"""Validation of the normalized rows, and the small SQL builders the reader uses."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import polars as pl

from simulation_assets.sinks.posthog_export.mapping import EXPORT_SCHEMA, ExportError

if TYPE_CHECKING:
    from simulation_assets.sinks.posthog_export.source import ExportSource

# ---- validation ------------------------------------------------------------------------------------------------


def _validated(export: ExportSource, frame: pl.DataFrame) -> pl.DataFrame:
    """Raise ExportError when rows lack an event, a distinct id or a readable timestamp; drop helper columns."""
    if frame.is_empty():
        return _typed(frame.drop("__raw_timestamp", strict=False))
    problems = []
    for name, label in (("event", "an event name"), ("distinct_id", "a distinct id")):
        bad = frame[name].is_null()
        if bad.any():
            problems.append(f"{int(bad.sum())} row(s) without {label} ({_field_label(export, name)})")
    bad_ts = frame["timestamp"].is_null()
    if bad_ts.any():
        raw = (
            frame.filter(bad_ts)["__raw_timestamp"]
            if "__raw_timestamp" in frame.columns
            else pl.Series([None])
        )
        example = raw.drop_nulls().head(1).to_list()
        shown = f", e.g. {example[0]!r}" if example else " (empty)"
        problems.append(
            f"{int(bad_ts.sum())} row(s) whose {_field_label(export, 'timestamp')} is not a timestamp{shown}; "
            "expected ISO 8601 (2024-05-22T17:09:29.220Z) or epoch seconds/milliseconds"
        )
    if problems:
        raise ExportError(export.source if len(export.files) != 1 else export.files[0], "; ".join(problems))
    return _typed(frame.drop("__raw_timestamp", strict=False))


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    casts = [pl.col(k).cast(t) for k, t in EXPORT_SCHEMA.items() if k in frame.columns]
    rest = [
        pl.col(c) if c == "__uuid_hash" else pl.col(c).cast(pl.String)
        for c in frame.columns
        if c not in EXPORT_SCHEMA
    ]
    return frame.select(*casts, *rest)


def _field_label(export: ExportSource, name: str) -> str:
    column = export.fields.get(name)
    return f"column {column!r}" if column else name


# ---- SQL helpers -----------------------------------------------------------------------------------------------


def _sql_str(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json_path(key: str) -> str:
    """Return the SQL literal of the JSON path of a top-level ``key`` (quoted: keys start with ``$``)."""
    return _sql_str('$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"')


def _epoch_sql(value: str) -> str:
    """Numbers as epoch time: seconds below 1e11 (year 5138), milliseconds below 1e14, else microseconds."""
    v = f"CAST({value} AS DOUBLE)"
    return (
        f"CASE WHEN abs({v}) < 1e11 THEN to_timestamp({v}) "
        f"WHEN abs({v}) < 1e14 THEN to_timestamp({v} / 1000.0) ELSE to_timestamp({v} / 1000000.0) END"
    )


def _duckdb_problem(exc: Exception) -> str:
    """Return DuckDB's message without its error-class prefix, on one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^[A-Za-z ]*Error: ", "", text)
