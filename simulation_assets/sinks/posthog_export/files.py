"""Finding an export's files, their format and columns, and how its columns map to the normalized ones."""

from __future__ import annotations

import glob as globlib
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl

from simulation_assets.sinks.posthog_export.mapping import (
    _ALIASES,
    _COMPRESSIONS,
    _IGNORED,
    _PROPERTY_PREFIXES,
    _SKIPPED_FILES,
    _SUFFIXES,
    OWN_COLUMNS,
    ColumnMapping,
    ExportError,
    FileFormat,
    PropertiesArg,
    Shape,
)
from simulation_assets.sinks.posthog_export.source import ExportSource
from simulation_assets.sinks.posthog_export.sql import _duckdb_problem, _sql_str

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
                if number == 1 and line.lstrip().startswith("["):
                    raise ExportError(
                        file,
                        "holds a JSON array, not JSON lines: write one event object per line "
                        "(e.g. jq -c '.[]' events.json > events.jsonl)",
                    )
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    spread = (
                        " (an object spread over several lines? write one per line)"
                        if line.strip() == "{"
                        else ""
                    )
                    raise ExportError(
                        file, f"line {number} is not JSON ({exc.msg} at column {exc.colno}){spread}"
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


def _zstd_lines(file: str, wanted: int = 200) -> Iterator[str]:
    """Yield the first lines of a zstd-compressed file (through DuckDB, which reads zstd natively: each line read
    whole as one text field, no delimiter or quote of its own; ``read_text`` would not decompress it)."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT line FROM read_csv({_sql_str(file)}, columns = {{'line': 'VARCHAR'}}, header = false, "
            f"delim = chr(1), quote = '', escape = '', compression = 'zstd', auto_detect = false) LIMIT {wanted}"
        ).fetchall()
    except duckdb.Error as exc:
        raise ExportError(file, _duckdb_problem(exc)) from None
    finally:
        con.close()
    yield from (row[0] or "" for row in rows)


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
        props = {k: c for k, c in props.items() if k not in OWN_COLUMNS}
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
    props = {k: c for k, c in props.items() if k not in OWN_COLUMNS}
    return ExportSource(source, files, file_format, shape, raw_columns, fields, json_col, props)


def _strip_prefix(column: str) -> str:
    for prefix in _PROPERTY_PREFIXES:
        if column.startswith(prefix):
            return column[len(prefix) :]
    return column
