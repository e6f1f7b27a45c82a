"""Writing an event frame in the same shapes (batch Parquet / JSON lines, the UI's CSV, a table)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import polars as pl

# ---- writing (the same shapes, from an event frame) ------------------------------------------------------------

WriteShape = Literal["batch-parquet", "batch-jsonl", "csv", "table"]
_HEAD = ("uuid", "event", "distinct_id", "timestamp")
_ISO_US = "%Y-%m-%dT%H:%M:%S%.6fZ"


def write_export(
    events: pl.DataFrame,
    path: str | Path,
    shape: WriteShape = "batch-parquet",
    property_columns: Sequence[str] | None = None,
    person_id: str | None = None,
) -> Path:
    """Write an event frame (``uuid``, ``event``, ``distinct_id``, ``timestamp`` + property columns) in an export shape.

    ``batch-parquet`` / ``batch-jsonl``: PostHog's batch-export events model
    (properties as a JSON string / a nested object, timestamps as Parquet
    timestamps / ISO text); ``csv``: the UI's flattened ``properties.<key>``
    columns; ``table``: the frame as it is, in Parquet. ``property_columns``
    defaults to every column but the four above; ``person_id`` names the column
    copied to ``person_id``. The file appears whole or not at all. Returns the path.
    """
    missing = [c for c in _HEAD if c not in events.columns]
    if missing:
        raise ValueError(f"write_export needs the columns {', '.join(missing)}")
    props = [c for c in (property_columns or events.columns) if c not in _HEAD and c in events.columns]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if shape == "table":
            events.write_parquet(tmp, compression="zstd")
        elif shape == "csv":
            flat = events.select(
                *_HEAD[:3],
                pl.col(person_id).cast(pl.String).alias("person_id")
                if person_id
                else pl.lit(None, pl.String).alias("person_id"),
                pl.col("timestamp").dt.convert_time_zone("UTC").dt.strftime(_ISO_US),
                *[_flat_text(events, c).alias(f"properties.{c}") for c in props],
            )
            flat.write_csv(tmp)
        else:
            frame = _batch_frame(events, props, person_id)
            if shape == "batch-parquet":
                frame.write_parquet(tmp, compression="zstd")
            elif shape == "batch-jsonl":
                iso = [pl.col(c).dt.strftime(_ISO_US) for c in ("timestamp", "created_at", "_inserted_at")]
                text = frame.with_columns(*iso).select(
                    pl.concat_str(
                        pl.lit("{"),
                        pl.struct("uuid", "event", "distinct_id", "person_id")
                        .struct.json_encode()
                        .str.slice(1)
                        .str.strip_suffix("}"),
                        pl.lit(',"properties":'),
                        pl.col("properties"),
                        pl.lit(',"person_properties":{},"elements_chain":"",'),
                        pl.struct("timestamp", "created_at", "_inserted_at")
                        .struct.json_encode()
                        .str.slice(1),
                    )
                )
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write("\n".join(text.to_series().to_list()))
                    fh.write("\n")
            else:
                raise ValueError(
                    f"unknown export shape {shape!r}; shapes are batch-parquet, batch-jsonl, csv, table"
                )
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _flat_text(events: pl.DataFrame, column: str) -> pl.Expr:
    """Return ``column`` as the text a flattened CSV cell holds (nested values as JSON)."""
    dtype = events.schema[column]
    if isinstance(dtype, pl.Struct):
        return pl.when(pl.col(column).is_not_null()).then(pl.col(column).struct.json_encode())
    if isinstance(dtype, pl.List | pl.Array):
        return pl.struct(column).struct.json_encode().str.extract(r"^\{\"(?:[^\"\\]|\\.)*\":(.*)\}$", 1)
    if dtype == pl.Boolean:
        return pl.when(pl.col(column)).then(pl.lit("true")).when(~pl.col(column)).then(pl.lit("false"))
    return pl.col(column).cast(pl.String)


def _batch_frame(events: pl.DataFrame, props: list[str], person_id: str | None) -> pl.DataFrame:
    """Return the batch-export events model of ``events``: properties as one JSON object per row.

    Each event name's JSON carries only the properties that some row of that name has (a posthog-js
    event never carries a key that does not apply to it); nulls inside are left out row by row.
    """
    frame = events.with_row_index("__row")
    parts = []
    for (_name,), group in frame.group_by("event", maintain_order=True):
        cols = [c for c in props if group[c].null_count() < group.height]
        if cols:
            encoded = pl.struct(cols).struct.json_encode()
            # Keys whose value is null on this row are dropped, as a client would not have sent them.
            encoded = encoded.str.replace_all(r'"(?:[^"\\]|\\.)*":null,?', "").str.replace(r",\}$", "}")
        else:
            encoded = pl.lit("{}")
        parts.append(group.select("__row", encoded.alias("properties")))
    properties = pl.concat(parts).sort("__row")["properties"]
    ts = pl.col("timestamp").cast(pl.Datetime("us", "UTC"))
    return events.select(
        pl.col("uuid").cast(pl.String),
        pl.col("event").cast(pl.String),
        pl.col("distinct_id").cast(pl.String),
        (pl.col(person_id).cast(pl.String) if person_id else pl.lit(None, pl.String)).alias("person_id"),
        properties.alias("properties"),
        pl.lit("{}").alias("person_properties"),
        pl.lit("").alias("elements_chain"),
        ts.alias("timestamp"),
        ts.alias("created_at"),
        ts.alias("_inserted_at"),
    )
