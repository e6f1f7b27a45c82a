"""Reads product-event exports into one normalized frame, streaming through DuckDB.

Three shapes are understood, each as one file, a folder of files (a batch export
split by size, with or without its ``manifest.json``) or a glob:

- **batch export** (S3 / file-download export, Parquet or JSON lines, optionally
  gzip/zstd): ``uuid``, ``event``, ``distinct_id``, ``person_id``, ``timestamp``
  and ``properties``: a JSON object (a JSON-encoded string in Parquet, a nested
  object in JSON lines). ``person_properties``, ``elements_chain``,
  ``created_at`` and ``_inserted_at`` are ignored.
- **UI CSV** (an events table exported from the app): nested values flattened
  with dots, so properties arrive as ``properties.$browser`` columns (or
  ``*.properties.$browser`` when the table's ``*`` column was exported).
- **generic table** (CSV, Parquet or JSON lines from any tracker): a user id, a
  timestamp, an event name, optionally a session id, and every other column
  (or one JSON column) as properties, named by a :class:`ColumnMapping`. A table
  whose columns are already called ``distinct_id``, ``timestamp`` and ``event``
  (e.g. ``simulate hogflix``'s ``events.parquet``) needs no mapping.

Every shape becomes the same columns (``EXPORT_SCHEMA``): ``uuid``, ``event``,
``distinct_id``, ``person_id``, ``timestamp`` (UTC, microseconds) and
``session_id`` (the ``$session_id`` property or mapped column; null when
absent), plus the properties either as one JSON text column ``properties`` or
as one text column per requested key. Property values are text (JSON numbers
and booleans as their JSON spelling), whatever the shape, so callers parse them
once, the same way.

Anything that cannot be read raises :class:`ExportError`, whose message names
the file and the problem (missing columns, no rows, malformed JSON, unparseable
timestamps, empty event names or ids); nothing is guessed silently.
"""

from simulation_assets.sinks.posthog_export.files import open_export, read_export
from simulation_assets.sinks.posthog_export.mapping import (
    EXPORT_SCHEMA,
    ColumnMapping,
    ExportError,
    FileFormat,
    PropertiesArg,
    Shape,
)
from simulation_assets.sinks.posthog_export.source import ExportSource
from simulation_assets.sinks.posthog_export.writing import WriteShape, write_export

__all__ = [
    "EXPORT_SCHEMA",
    "ColumnMapping",
    "ExportError",
    "ExportSource",
    "FileFormat",
    "PropertiesArg",
    "Shape",
    "WriteShape",
    "open_export",
    "read_export",
    "write_export",
]
