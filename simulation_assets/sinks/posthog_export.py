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

from __future__ import annotations

import glob as globlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl
import pyarrow as pa

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


@dataclass(frozen=True)
class ExportSource:
    """A resolved export: its files, format, shape and where each normalized field comes from.

    Build one with :func:`open_export`; read it with :meth:`frame`, :meth:`batches`,
    :meth:`property_keys` or :meth:`count`.
    """

    source: str
    files: tuple[str, ...]
    file_format: FileFormat
    shape: Shape
    raw_columns: dict[str, str]  # column -> DuckDB type
    fields: dict[str, str | None]  # normalized field -> raw column (None: absent)
    json_properties: str | None  # raw column holding a JSON object of properties
    property_columns: dict[str, str] = field(default_factory=dict)  # property key -> raw column

    # ---- reading -------------------------------------------------------------------------------------------
    def _connect(self, threads: int | None = None) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(config={"threads": threads} if threads else {})
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        return con

    def _scan_sql(self) -> str:
        files = "[" + ", ".join(_sql_str(f) for f in self.files) + "]"
        if self.file_format == "parquet":
            return f"read_parquet({files}, union_by_name = true)"
        if self.file_format == "csv":
            return f"read_csv({files}, header = true, all_varchar = true, union_by_name = true)"
        columns = ", ".join(f"{_sql_str(c)}: {_sql_str(t)}" for c, t in self.raw_columns.items())
        return (
            f"read_json({files}, format = 'newline_delimited', columns = {{{columns}}}, "
            "maximum_object_size = 268435456)"
        )

    def _field_sql(self, name: str) -> str:
        column = self.fields.get(name)
        if column is None:
            return "NULL::VARCHAR"
        return f"NULLIF(CAST({_ident(column)} AS VARCHAR), '')"

    def _timestamp_sql(self) -> str:
        column = _ident(self.fields["timestamp"] or "")
        kind = self.raw_columns.get(self.fields["timestamp"] or "", "VARCHAR").upper()
        if kind.startswith("TIMESTAMP WITH TIME ZONE") or kind == "TIMESTAMPTZ":
            return f"CAST({column} AS TIMESTAMPTZ)"
        if kind.startswith("TIMESTAMP"):  # naive: exports are UTC
            return f"timezone('UTC', CAST({column} AS TIMESTAMP))"
        if kind.startswith("DATE"):
            return f"timezone('UTC', CAST({column} AS TIMESTAMP))"
        if kind.split("(")[0] in _NUMERIC_TYPES:
            return _epoch_sql(column)
        # Text: ISO 8601 (with or without zone; without means UTC) or epoch numbers written as text.
        text = f"TRIM(CAST({column} AS VARCHAR))"
        return (
            f"CASE WHEN regexp_full_match({text}, '-?[0-9]+(\\.[0-9]+)?') "
            f"THEN {_epoch_sql(f'TRY_CAST({text} AS DOUBLE)')} "
            f"ELSE COALESCE(TRY_CAST({text} AS TIMESTAMPTZ), timezone('UTC', TRY_CAST({text} AS TIMESTAMP))) END"
        )

    def _properties_text_sql(self) -> str:
        """The properties as JSON text: an object as it is, or the object inside a JSON-encoded string."""
        raw = f"CAST({_ident(self.json_properties or '')} AS VARCHAR)"
        # Looking at the first character is much cheaper than asking json_type (which parses the object).
        return (
            f"CASE WHEN starts_with(ltrim({raw}), '\"') THEN json_extract_string({raw}, '$') ELSE {raw} END"
        )

    def _properties_json_sql(self) -> str:
        if self.json_properties is not None:
            return f"CAST({self._properties_text_sql()} AS JSON)"
        if not self.property_columns:
            return "'{}'::JSON"
        pairs = ", ".join(f"{_sql_str(k)}, {self._column_value(c)}" for k, c in self.property_columns.items())
        return f"json_object({pairs})"

    def _column_value(self, column: str) -> str:
        kind = self.raw_columns.get(column, "VARCHAR").upper()
        if kind.startswith(("STRUCT", "MAP")) or kind.endswith("[]"):
            return f"to_json({_ident(column)})"
        return f"NULLIF({_ident(column)}, '')" if kind == "VARCHAR" else _ident(column)

    def _session_sql(self) -> str:
        if self.fields.get("session_id") is not None:
            return self._field_sql("session_id")
        if self.json_properties is not None:
            text, pattern = self._properties_text_sql(), _sql_str(_SESSION_ID_PATTERN)
            compact = f'instr({text}, \'"$session_id":"\')'
            return (
                f"NULLIF(CASE WHEN {compact} > 0 THEN split_part(substr({text}, {compact} + 15, 200), '\"', 1) "
                f"WHEN instr({text}, '\"$session_id\"') > 0 THEN regexp_extract({text}, {pattern}, 1) END, '')"
            )
        return "NULL::VARCHAR"

    def property_sql(self, key: str) -> str:
        """Return the SQL expression giving property ``key`` as text (null when absent)."""
        if self.json_properties is not None:
            return f"json_extract_string({self._properties_text_sql()}, {_json_path(key)})"
        column = self.property_columns.get(key)
        if column is None:
            return "NULL::VARCHAR"
        kind = self.raw_columns.get(column, "VARCHAR").upper()
        if kind.startswith(("STRUCT", "MAP")) or kind.endswith("[]"):
            return f"CAST(to_json({_ident(column)}) AS VARCHAR)"
        return f"NULLIF(CAST({_ident(column)} AS VARCHAR), '')"

    def select_sql(
        self,
        properties: PropertiesArg = "json",
        where: str | None = None,
        raw_where: str | None = None,
        sample_rows: int | None = None,
    ) -> str:
        """Return the SQL query of the normalized rows.

        ``where`` is a predicate on the normalized columns; ``raw_where`` one on the export's own
        columns, applied before anything is parsed; ``sample_rows`` keeps a seeded reservoir sample
        of that many raw rows (also before parsing).
        """
        cols = [
            f"{self._field_sql('uuid')} AS uuid",
            f"{self._field_sql('event')} AS event",
            f"{self._field_sql('distinct_id')} AS distinct_id",
            f"{self._field_sql('person_id')} AS person_id",
            f"{self._timestamp_sql()} AS timestamp",
            f"{self._session_sql()} AS session_id",
            f"CAST({self._field_sql('timestamp')} AS VARCHAR) AS __raw_timestamp",
        ]
        keys: list[str] = []
        if properties == "json":
            cols.append(f"CAST({self._properties_json_sql()} AS VARCHAR) AS properties")
        elif properties != "none":
            keys = list(properties)
            if self.json_properties is not None and keys:
                # One parse of each object for all keys (a key at a time would parse it once per key).
                paths = ", ".join(_json_path(k) for k in keys)
                cols.append(f"json_extract_string({self._properties_text_sql()}, [{paths}]) AS __props")
            else:
                cols += [f"{self.property_sql(k)} AS {_ident(k)}" for k in keys]
        source = self._scan_sql()
        if raw_where or sample_rows:
            filtered = f" WHERE {raw_where}" if raw_where else ""
            sampled = (
                f" USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE (42)" if sample_rows else ""
            )
            source = f"(SELECT * FROM {source}{filtered}{sampled})"
        query = f"SELECT {', '.join(cols)} FROM {source}"
        if self.json_properties is not None and keys:
            unpacked = ", ".join(f"__props[{i + 1}] AS {_ident(k)}" for i, k in enumerate(keys))
            query = f"SELECT * EXCLUDE (__props), {unpacked} FROM ({query})"
        if where:
            query = f"SELECT * FROM ({query}) WHERE {where}"
        return query

    def frame(
        self,
        properties: PropertiesArg = "json",
        where: str | None = None,
        threads: int | None = None,
        distinct_ids: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Return every (or every ``where``-selected) event as a normalized frame.

        ``properties``: ``"json"`` (one JSON text column), ``"none"``, or a list
        of property keys (one text column each). ``distinct_ids`` keeps only those
        users' rows. Raises :class:`ExportError`
        on malformed input and when a row lacks an event name, a distinct id or
        a readable timestamp.
        """
        con = self._connect(threads)
        try:
            raw_where = None
            if distinct_ids is not None:
                con.register("__wanted", pa.table({"distinct_id": pa.array(list(distinct_ids), pa.string())}))
                column = _ident(self.fields["distinct_id"] or "distinct_id")
                raw_where = f"CAST({column} AS VARCHAR) IN (SELECT distinct_id FROM __wanted)"
            query = self.select_sql(properties, where, raw_where=raw_where)
            table = self._run(con, query)
        finally:
            con.close()
        out = _validated(self, pl.from_arrow(table))  # type: ignore[arg-type]
        if out.is_empty() and where is None and distinct_ids is None:
            raise ExportError(self.source, "the export holds no events")
        return out

    def batches(
        self, properties: PropertiesArg = "json", rows: int = 1_000_000, where: str | None = None
    ) -> Iterator[pl.DataFrame]:
        """Yield the normalized events in frames of about ``rows`` rows (memory bounded by ``rows``)."""
        con = self._connect()
        try:
            try:
                reader = con.sql(self.select_sql(properties, where)).to_arrow_reader(rows)
            except duckdb.Error as exc:
                raise ExportError(self.source, _duckdb_problem(exc)) from None
            seen = 0
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except (duckdb.Error, pa.ArrowInvalid) as exc:
                    raise ExportError(self.source, _duckdb_problem(exc)) from None
                if batch.num_rows:
                    seen += batch.num_rows
                    yield _validated(self, pl.from_arrow(pa.Table.from_batches([batch])))  # type: ignore[arg-type]
            if not seen and where is None:
                raise ExportError(self.source, "the export holds no events")
        finally:
            con.close()

    def count(self) -> int:
        """Return the number of rows in the export."""
        con = self._connect()
        try:
            return int(self._run(con, f"SELECT count(*) AS n FROM {self._scan_sql()}").column(0)[0].as_py())
        finally:
            con.close()

    def property_keys(self, sample_rows: int | None = 20_000) -> pl.DataFrame:
        """Return, per event name and property key: rows carrying it, the event's rows, and the JSON type.

        Columns: ``event``, ``key``, ``rows``, ``event_rows``, ``share`` and ``types``
        (the JSON types seen, e.g. ``VARCHAR,BIGINT``). Reads a seeded reservoir sample of
        ``sample_rows`` rows from the whole export (every row when None): a key's types are read
        row by row, which costs about 75 us a row for a 40-key object.
        """
        base = self.select_sql("json", sample_rows=sample_rows)
        query = f"""
            WITH e AS MATERIALIZED ({base}),
            n AS (SELECT event, count(*) AS event_rows FROM e GROUP BY event),
            k AS (SELECT event, unnest(json_keys(CAST(properties AS JSON))) AS key, properties FROM e)
            SELECT k.event, k.key, count(*) AS rows, any_value(n.event_rows) AS event_rows,
                   string_agg(DISTINCT json_type(CAST(k.properties AS JSON) -> ('$."' || replace(k.key, '"', '\\"') || '"')), ',') AS types
            FROM k JOIN n USING (event)
            GROUP BY k.event, k.key ORDER BY k.event, k.key
        """
        con = self._connect()
        try:
            table = self._run(con, query)
        finally:
            con.close()
        out = pl.from_arrow(table)
        assert isinstance(out, pl.DataFrame)
        if out.is_empty():
            return pl.DataFrame(
                schema={
                    "event": pl.String,
                    "key": pl.String,
                    "rows": pl.Int64,
                    "event_rows": pl.Int64,
                    "share": pl.Float64,
                    "types": pl.String,
                }  # fmt: skip
            )
        return out.with_columns(
            pl.col("rows").cast(pl.Int64),
            pl.col("event_rows").cast(pl.Int64),
            (pl.col("rows") / pl.col("event_rows")).alias("share"),
        ).select("event", "key", "rows", "event_rows", "share", "types")

    def _run(self, con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
        try:
            return con.sql(query).to_arrow_table()
        except duckdb.Error as exc:
            raise ExportError(self.source, _duckdb_problem(exc)) from None


# ---- opening ---------------------------------------------------------------------------------------------------


def open_export(source: str | Path, mapping: ColumnMapping | None = None) -> ExportSource:
    """Resolve ``source`` (a file, a folder of export files, or a glob) into an :class:`ExportSource`.

    Checks that the files exist, share one format, are not empty, and hold the
    fields the shape needs; raises :class:`ExportError` naming what is missing.
    """
    files = _export_files(source)
    formats = {_file_format(f) for f in files}
    if len(formats) > 1:
        raise ExportError(
            source, f"mixes file formats ({', '.join(sorted(formats))}); export one format per folder"
        )
    file_format = formats.pop()
    for f in files:
        if Path(f).stat().st_size == 0:
            raise ExportError(f, "the file is empty")
    raw_columns = _raw_columns(files, file_format)
    if not raw_columns:
        raise ExportError(files[0], "no columns could be read (is it an event export?)")
    return _resolve(str(source), files, file_format, raw_columns, mapping)


def read_export(
    source: str | Path, mapping: ColumnMapping | None = None, properties: PropertiesArg = "json"
) -> pl.DataFrame:
    """Return the whole export at ``source`` as a normalized frame (see the module docstring)."""
    return open_export(source, mapping).frame(properties)


def _export_files(source: str | Path) -> tuple[str, ...]:
    text = str(source)
    if any(ch in text for ch in "*?["):
        found = sorted(p for p in globlib.glob(text, recursive=True) if Path(p).is_file())
        if not found:
            raise ExportError(text, "no file matches this pattern")
        return tuple(str(Path(p).resolve()) for p in found)
    path = Path(text).expanduser()
    if not path.exists():
        raise ExportError(text, "no such file or folder")
    if path.is_file():
        return (str(path.resolve()),)
    found = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name not in _SKIPPED_FILES and _known_suffix(p)
    )
    if not found:
        raise ExportError(
            text, "the folder holds no export files (.parquet, .jsonl, .json, .csv, optionally .gz/.zst)"
        )
    return tuple(str(p.resolve()) for p in found)


def _known_suffix(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in _SUFFIXES


def _file_format(file: str) -> FileFormat:
    path = Path(file)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".br", ".brotli", ".lz4", ".snappy") and ".parquet" not in suffixes:
        raise ExportError(
            file,
            f"{suffixes[-1]} compression is not readable here; decompress the file or export as gzip/zstd",
        )
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    while suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes.pop()
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    # No telling suffix: look at the first bytes.
    with open(file, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        raise ExportError(file, "gzip-compressed without a telling name; name it *.jsonl.gz or *.csv.gz")
    if head.lstrip().startswith(b"{"):
        return "jsonl"
    return "csv"


def _raw_columns(files: tuple[str, ...], file_format: FileFormat) -> dict[str, str]:
    """Return the columns and DuckDB types of the export (union over the files)."""
    con = duckdb.connect()
    try:
        if file_format == "jsonl":
            return _jsonl_columns(files)
        listing = "[" + ", ".join(_sql_str(f) for f in files) + "]"
        if file_format == "parquet":
            scan = f"read_parquet({listing}, union_by_name = true)"
        else:
            scan = f"read_csv({listing}, header = true, all_varchar = true, union_by_name = true)"
        try:
            described = con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()
        except duckdb.Error as exc:
            raise ExportError(files[0] if len(files) == 1 else files[0], _duckdb_problem(exc)) from None
        return {str(row[0]): str(row[1]) for row in described}
    finally:
        con.close()


def _jsonl_columns(files: tuple[str, ...]) -> dict[str, str]:
    """Return the top-level keys of the first objects of each JSON-lines file, typed for ``read_json``."""
    keys: dict[str, str] = {}
    for file in files:
        try:
            for number, line in _first_lines(file):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ExportError(
                        file, f"line {number} is not JSON ({exc.msg} at column {exc.colno})"
                    ) from None
                if not isinstance(obj, dict):
                    raise ExportError(file, f"line {number} is not a JSON object")
                for key, value in obj.items():
                    nested = isinstance(value, dict | list) or key in ("properties", "person_properties")
                    keys.setdefault(key, "JSON" if nested else "VARCHAR")
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise ExportError(file, f"cannot be read as JSON lines ({exc})") from None
    return keys


def _first_lines(file: str, wanted: int = 20) -> list[tuple[int, str]]:
    """Return (line number, text) of the first ``wanted`` non-blank lines of a JSON-lines file."""
    import gzip

    lower = file.lower()
    if lower.endswith((".zst", ".zstd")):
        lines = list(_zstd_lines(file))
    else:
        opener = gzip.open if lower.endswith((".gz", ".gzip")) else open
        with opener(file, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
            lines = []
            for line in fh:
                lines.append(line)
                if sum(1 for x in lines if x.strip()) >= wanted:
                    break
    out = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    return out[:wanted]


def _zstd_lines(file: str) -> Iterator[str]:
    """Yield the first lines of a zstd-compressed file (through DuckDB, which reads zstd natively)."""
    con = duckdb.connect()
    try:
        rows = con.sql(
            f"SELECT content FROM read_text({_sql_str(file)})"
        ).fetchone()  # read_text decompresses by extension
    except duckdb.Error as exc:
        raise ExportError(file, _duckdb_problem(exc)) from None
    finally:
        con.close()
    text = rows[0] if rows else ""
    yield from text.splitlines()[:200]


def _resolve(
    source: str,
    files: tuple[str, ...],
    file_format: FileFormat,
    raw_columns: dict[str, str],
    mapping: ColumnMapping | None,
) -> ExportSource:
    names = list(raw_columns)
    where = files[0] if len(files) == 1 else source
    if mapping is not None:
        fields: dict[str, str | None] = {
            "uuid": mapping.uuid,
            "event": mapping.event,
            "distinct_id": mapping.user_id,
            "person_id": mapping.person_id,
            "timestamp": mapping.timestamp,
            "session_id": mapping.session_id,
        }
        missing = [f"{k}={v}" for k, v in fields.items() if v is not None and v not in raw_columns]
        if mapping.properties is not None and mapping.properties not in raw_columns:
            missing.append(f"properties={mapping.properties}")
        missing += [f"property column {c}" for c in mapping.property_columns or () if c not in raw_columns]
        if missing:
            raise ExportError(
                where,
                f"the column mapping names columns the export does not have: {', '.join(missing)}; "
                f"columns are: {', '.join(names)}",
            )
        used = {v for k, v in fields.items() if v and k != "session_id"}
        used |= {mapping.properties} if mapping.properties else set()
        if mapping.properties is not None:
            props: dict[str, str] = {}
        elif mapping.property_columns is not None:
            props = {c: c for c in mapping.property_columns}
        else:
            props = {c: c for c in names if c not in used and c not in _IGNORED}
        return ExportSource(
            source, files, file_format, "table", raw_columns, fields, mapping.properties, props
        )

    def first(field_name: str) -> str | None:
        return next((a for a in _ALIASES[field_name] if a in raw_columns), None)

    fields = {
        name: first(name) for name in ("uuid", "event", "distinct_id", "person_id", "timestamp", "session_id")
    }
    missing = [name for name in ("event", "distinct_id", "timestamp") if fields[name] is None]
    if missing:
        raise ExportError(
            where,
            f"no {' / '.join(missing)} column: a PostHog export has event, distinct_id and timestamp; for another "
            f"table pass a column mapping (e.g. user_id=...,timestamp=...,event=...). Columns are: {', '.join(names)}",
        )
    json_col = first("properties")
    flat = {c: c for c in names if c.startswith(_PROPERTY_PREFIXES)}
    if json_col is not None and raw_columns[json_col].upper() not in ("VARCHAR", "JSON"):
        raise ExportError(
            where, f"column {json_col!r} must hold JSON objects (text), not {raw_columns[json_col]}"
        )
    if json_col is not None:
        shape: Shape = "batch"
        props = {}
    elif flat:
        shape = "csv"
        props = {_strip_prefix(c): c for c in flat}
    else:
        shape = "table"
        used = {v for k, v in fields.items() if v and k != "session_id"}
        props = {c: c for c in names if c not in used and c not in _IGNORED}
    return ExportSource(source, files, file_format, shape, raw_columns, fields, json_col, props)


def _strip_prefix(column: str) -> str:
    for prefix in _PROPERTY_PREFIXES:
        if column.startswith(prefix):
            return column[len(prefix) :]
    return column


# ---- validation ------------------------------------------------------------------------------------------------


def _validated(export: ExportSource, frame: pl.DataFrame) -> pl.DataFrame:
    """Raise ExportError when rows lack an event, a distinct id or a readable timestamp; drop helper columns."""
    if frame.is_empty():
        return _typed(frame.drop("__raw_timestamp"))
    problems = []
    for name, label in (("event", "an event name"), ("distinct_id", "a distinct id")):
        bad = frame[name].is_null()
        if bad.any():
            problems.append(f"{int(bad.sum())} row(s) without {label} ({_field_label(export, name)})")
    bad_ts = frame["timestamp"].is_null()
    if bad_ts.any():
        example = frame.filter(bad_ts)["__raw_timestamp"].drop_nulls().head(1).to_list()
        shown = f", e.g. {example[0]!r}" if example else " (empty)"
        problems.append(
            f"{int(bad_ts.sum())} row(s) whose {_field_label(export, 'timestamp')} is not a timestamp{shown}; "
            "expected ISO 8601 (2024-05-22T17:09:29.220Z) or epoch seconds/milliseconds"
        )
    if problems:
        raise ExportError(export.source if len(export.files) != 1 else export.files[0], "; ".join(problems))
    return _typed(frame.drop("__raw_timestamp"))


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    casts = [pl.col(k).cast(t) for k, t in EXPORT_SCHEMA.items() if k in frame.columns]
    rest = [pl.col(c).cast(pl.String) for c in frame.columns if c not in EXPORT_SCHEMA]
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
