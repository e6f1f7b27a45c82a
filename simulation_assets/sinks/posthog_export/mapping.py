"""The export's normalized columns, its errors, and the column mapping of a generic table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

EXPORT_SCHEMA: dict[str, pl.DataType] = {
    "uuid": pl.String(),
    "event": pl.String(),
    "distinct_id": pl.String(),
    "person_id": pl.String(),
    "timestamp": pl.Datetime("us", "UTC"),
    "session_id": pl.String(),
}
Shape = Literal["batch", "csv", "table"]
FileFormat = Literal["parquet", "jsonl", "csv"]
PropertiesArg = Literal["json", "none"] | Sequence[str]

# Columns of PostHog's export models that are bookkeeping, never event properties.
_IGNORED = frozenset(
    {"person_properties", "elements_chain", "created_at", "_inserted_at", "team_id", "person", "time"}
)
# The columns a read gives besides the properties: a property key of one of these names (a CSV's
# `properties.timestamp`, a table's own `event` column beside event=action) is not read as a property.
OWN_COLUMNS = frozenset(
    {"uuid", "event", "distinct_id", "person_id", "timestamp", "session_id", "properties"}
)
# Header aliases of the core fields: batch exports and tables use the bare name; the UI's CSV of the
# events table flattens its "*" column, giving "*.event" and friends.
_ALIASES = {
    "uuid": ("uuid", "*.uuid"),
    "event": ("event", "*.event"),
    "distinct_id": ("distinct_id", "*.distinct_id"),
    "person_id": ("person_id", "*.person_id"),
    "timestamp": ("timestamp", "*.timestamp"),
    "session_id": (
        "$session_id",
        "*.$session_id",
        "session_id",
        "properties.$session_id",
        "*.properties.$session_id",
    ),  # fmt: skip
    "properties": ("properties", "*.properties"),
}
_PROPERTY_PREFIXES = ("*.properties.", "properties.")
_SUFFIXES: dict[str, FileFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
}
_COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_SKIPPED_FILES = {"manifest.json"}
_NUMERIC_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL"}  # fmt: skip
# "$session_id" is found in the JSON text without parsing it: a substring search for the compact
# spelling (what PostHog writes), a regular expression when the key is spaced out. Parsing every object
# to read one key was measured 2.2x slower (450k events of ~900 bytes: 2.14 s vs 0.99 s).
_SESSION_ID_PATTERN = r'"\$session_id"\s*:\s*"([^"\\]*)"'


class ExportError(ValueError):
    """An export that cannot be read: the message names the file and what is wrong with it."""

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns of a generic table hold the event fields.

    ``properties`` names one JSON column holding the properties; otherwise
    ``property_columns`` lists the columns that are properties (default: every
    column that is not a mapped field).
    """

    user_id: str = "distinct_id"
    timestamp: str = "timestamp"
    event: str = "event"
    session_id: str | None = None
    person_id: str | None = None
    uuid: str | None = None
    properties: str | None = None
    property_columns: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> ColumnMapping:
        """Return a mapping from ``FIELD=COLUMN`` pairs separated by commas.

        Example: ``user_id=uid,timestamp=ts,event=name,session_id=sid``; ``property_columns``
        takes columns separated by semicolons (``property_columns=plan;country``).
        """
        fields = set(cls.__dataclass_fields__)
        values: dict[str, object] = {}
        for pair in filter(None, (p.strip() for p in text.split(","))):
            name, sep, column = pair.partition("=")
            name, column = name.strip(), column.strip()
            if not sep or not column:
                raise ValueError(f"column mapping {pair!r}: expected FIELD=COLUMN")
            if name not in fields:
                raise ValueError(
                    f"column mapping {pair!r}: unknown field {name!r}; fields are {', '.join(sorted(fields))}"
                )
            if name == "property_columns":
                values[name] = tuple(c.strip() for c in column.split(";") if c.strip())
            else:
                values[name] = column
        return cls(**values)  # type: ignore[arg-type]
