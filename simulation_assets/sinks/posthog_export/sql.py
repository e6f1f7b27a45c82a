"""Validation of the normalized rows, and the small SQL builders the reader uses."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from simulation_assets.sinks.posthog_export.mapping import EXPORT_SCHEMA, ExportError

if TYPE_CHECKING:
    from simulation_assets.sinks.posthog_export.source import ExportSource

# ---- validation ------------------------------------------------------------------------------------------------


def _validated(export: ExportSource, frame: pl.DataFrame) -> pl.DataFrame:
    """Raise ExportError when rows lack an event, a distinct id or a readable timestamp; drop helper columns."""
    if frame.is_empty():
        return _typed(frame.drop("__raw_timestamp", strict=False))
    if "__raw_timestamp" in frame.columns and frame["timestamp"].null_count():
        frame = _text_timestamps(frame)
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


def _text_timestamps(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill the null timestamps whose ``__raw_timestamp`` text the general reading understands.

    ``ExportSource.select_sql`` casts the usual ISO 8601 text alone; the other rows (few, usually none)
    get the general chain here, through DuckDB, so every row is read as the chain alone would read it.
    """
    todo = frame["timestamp"].is_null() & frame["__raw_timestamp"].is_not_null()
    if not todo.any():
        return frame
    rows = frame.filter(todo).select(pl.col("__raw_timestamp").alias("raw"))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("__texts", rows.to_arrow())
        read = con.sql(f"SELECT {_text_timestamp_sql('raw')} AS ts FROM __texts").to_arrow_table()
    finally:
        con.close()
    parsed = pl.from_arrow(read)
    assert isinstance(parsed, pl.DataFrame)
    values = parsed["ts"].cast(frame.schema["timestamp"])
    filled = frame["timestamp"].scatter(todo.arg_true(), values)
    return frame.with_columns(filled.alias("timestamp"))


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    casts = [pl.col(k).cast(t) for k, t in EXPORT_SCHEMA.items() if k in frame.columns]
    rest = [
        pl.col(c)
        if c in ("__uuid_hash", "__sid_probe", "__kept", "__kept_columns")
        else pl.col(c).cast(pl.String)
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


def _text_timestamp_sql(raw: str) -> str:
    """Text as a timestamp: ISO 8601 (with or without zone; without means UTC) or epoch numbers written as text."""
    text = f"TRIM({raw})"
    return (
        f"CASE WHEN regexp_full_match({text}, '-?[0-9]+(\\.[0-9]+)?') "
        f"THEN {_epoch_sql(f'TRY_CAST({text} AS DOUBLE)')} "
        f"ELSE COALESCE(TRY_CAST({text} AS TIMESTAMPTZ), timezone('UTC', TRY_CAST({text} AS TIMESTAMP))) END"
    )


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
