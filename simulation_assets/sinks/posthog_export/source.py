"""An opened export: what it holds, and its rows as normalized frames read through DuckDB."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import duckdb
import polars as pl
import pyarrow as pa

from simulation_assets.sinks.posthog_export.mapping import (
    _NUMERIC_TYPES,
    _SESSION_ID_PATTERN,
    ExportError,
    FileFormat,
    PropertiesArg,
    Shape,
)
from simulation_assets.sinks.posthog_export.sql import (
    _duckdb_problem,
    _epoch_sql,
    _ident,
    _json_path,
    _sql_str,
    _text_timestamp_sql,
    _validated,
)


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

    def _scan_sql(self, object_size: int = 1 << 28) -> str:
        """The scan of the export's files; ``object_size`` (JSON lines): the reader's ``maximum_object_size``,
        which also sizes the buffer it fills before the first row (a gzip-compressed file is inflated that far)."""
        files = "[" + ", ".join(_sql_str(f) for f in self.files) + "]"
        if self.file_format == "parquet":
            return f"read_parquet({files}, union_by_name = true)"
        if self.file_format == "csv":
            return f"read_csv({files}, header = true, all_varchar = true, union_by_name = true)"
        columns = ", ".join(f"{_sql_str(c)}: {_sql_str(t)}" for c, t in self.raw_columns.items())
        return (
            f"read_json({files}, format = 'newline_delimited', columns = {{{columns}}}, "
            f"maximum_object_size = {int(object_size)})"
        )

    def _field_sql(self, name: str) -> str:
        column = self.fields.get(name)
        if column is None:
            return "NULL::VARCHAR"
        return f"NULLIF(CAST({_ident(column)} AS VARCHAR), '')"

    def _timestamp_sql(self, fast: bool = False) -> str:
        """The timestamp as TIMESTAMPTZ; ``fast`` (text columns): only the usual ISO 8601 text, null for the rest.

        The rest (epoch numbers as text, padded text, text DuckDB reads only as a naive timestamp) are then
        read by :func:`~.sql._text_timestamps` from ``__raw_timestamp``, which holds their text alone.
        """
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
        raw = f"CAST({column} AS VARCHAR)"
        if fast:
            # A date first (a '-' fifth, which no number has): cast as it is, without the general chain's
            # trim and pattern match (which DuckDB computes for every row once the chain is in the query).
            return f"CASE WHEN substr({raw}, 5, 1) = '-' THEN TRY_CAST({raw} AS TIMESTAMPTZ) END"
        return _text_timestamp_sql(raw)

    def _text_timestamp(self) -> bool:
        """Whether the timestamp column is text (read by :meth:`_timestamp_sql`'s fast path and then the rest)."""
        kind = self.raw_columns.get(self.fields.get("timestamp") or "", "VARCHAR").upper()
        return not kind.startswith(("TIMESTAMP", "DATE")) and kind.split("(")[0] not in _NUMERIC_TYPES

    def _typed_timestamp(self) -> bool:
        """Whether the timestamp column is a typed timestamp or date (never unreadable, only null)."""
        kind = self.raw_columns.get(self.fields.get("timestamp") or "", "VARCHAR").upper()
        return kind.startswith(("TIMESTAMP", "DATE"))

    def _raw_projection(self) -> str:
        """The export's columns a normalized row is made of (the rest, e.g. large person properties, unread)."""
        used = [c for c in self.fields.values() if c] + list(self.property_columns.values())
        if self.json_properties:
            used.append(self.json_properties)
        return ", ".join(_ident(c) for c in dict.fromkeys(used)) or "*"

    def _properties_text_sql(self) -> str:
        """The properties as JSON text: an object as it is, or the object inside a JSON-encoded string."""
        raw = f"CAST({_ident(self.json_properties or '')} AS VARCHAR)"
        # Looking at the first character is much cheaper than asking json_type (which parses the object);
        # an object that starts right away (the usual case) is taken as it is before anything is trimmed
        # (ltrim copies the text: on a 10M-row export with three uses per row, 2-3 CPU seconds).
        return (
            f"CASE WHEN starts_with({raw}, '{{') THEN {raw} "
            f"WHEN starts_with(ltrim({raw}), '\"') THEN json_extract_string({raw}, '$') ELSE {raw} END"
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
            # A uuid (36 characters, what posthog-js sends) is cut out directly when its closing quote is
            # where a uuid's would be: half the CPU of splitting the 200 characters after the key.
            return (
                f"NULLIF(CASE WHEN {compact} > 0 AND substr({text}, {compact} + 51, 1) = '\"' "
                f"AND instr(substr({text}, {compact} + 15, 36), '\"') = 0 THEN substr({text}, {compact} + 15, 36) "
                f"WHEN {compact} > 0 THEN split_part(substr({text}, {compact} + 15, 200), '\"', 1) "
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
        uuid: bool = True,
        properties_of: Sequence[str] | None = None,
        uuid_hash: bool = False,
        session_probe: int | None = None,
        json_below: tuple[int, int] | None = None,
    ) -> str:
        """Return the SQL query of the normalized rows.

        ``where`` is a predicate on the normalized columns; ``raw_where`` one on the export's own
        columns, applied before anything is parsed; ``sample_rows`` keeps a seeded reservoir sample
        of that many raw rows (also before parsing, reading only the columns the rows need);
        ``uuid=False`` leaves the uuid column null (it is not read); ``properties_of`` reads the
        listed property keys only on events of those names (null on the others, which are not parsed);
        ``uuid_hash`` adds ``__uuid_hash``, a 64-bit hash of the event uuid (when the export has one), which finds
        re-delivered rows for an eighth of the memory of the uuid text. ``session_probe=N`` (JSON properties
        without a session id column) leaves ``session_id`` null, unsearched, and adds ``__sid_probe``: on about
        one row in N (by a hash of its id, time and event), whether its properties hold a ``$session_id`` key
        (null on the other rows); see :meth:`session_share_at_head`. ``json_below=(seed, bound)`` adds ``__kept``,
        whether the row's :func:`id_hash_sql` is below ``bound``, and ``__json``, those rows' properties as the
        ``properties="json"`` column gives them (null on the others); with property columns instead,
        ``__kept_columns``, a list of the values of ``property_columns`` as a list of keys gives them.
        """
        probing = (
            session_probe is not None
            and self.json_properties is not None
            and not self.fields.get("session_id")
        )
        fast_time = where is None and self._text_timestamp()
        cols = [
            f"{self._field_sql('uuid') if uuid else 'NULL::VARCHAR'} AS uuid",
            f"{self._field_sql('event')} AS event",
            f"{self._field_sql('distinct_id')} AS distinct_id",
            f"{self._field_sql('person_id')} AS person_id",
            f"{self._timestamp_sql(fast=fast_time)} AS timestamp",
            f"{'NULL::VARCHAR' if probing else self._session_sql()} AS session_id",
        ]
        if probing:
            picked = f"hash({_ident(self.fields['distinct_id'] or '')}, {_ident(self.fields['timestamp'] or '')}, {_ident(self.fields['event'] or '')}) % {int(session_probe or 1)} = 0"
            cols.append(
                f"CASE WHEN {picked} THEN contains({self._properties_text_sql()}, '\"$session_id\"') END AS __sid_probe"
            )
        if uuid_hash and self.fields.get("uuid") is not None:
            cols.append(f"hash({self._field_sql('uuid')}) AS __uuid_hash")
        if json_below is not None:
            kept = f"{id_hash_sql(self._field_sql('distinct_id'), json_below[0])} < {int(json_below[1])}"
            cols.append(f"{kept} AS __kept")
            if self.json_properties is not None:
                cols.append(
                    f"CASE WHEN {kept} THEN CAST({self._properties_json_sql()} AS VARCHAR) END AS __json"
                )
            else:  # property columns (the UI's CSV): one list per row, of each as a list of keys gives it
                # (one column: a column per key, mostly null, took 16 bytes a row each in polars, 2 GB on 10M rows)
                values = ", ".join(self.property_sql(k) for k in self.property_columns)
                cols.append(f"CASE WHEN {kept} THEN [{values}]::VARCHAR[] END AS __kept_columns")
        if fast_time:  # the text of the rows the fast path left null, for the general reading
            cols.append(f"CAST({self._field_sql('timestamp')} AS VARCHAR) AS __timestamp_text")
        elif not self._typed_timestamp():  # text or numbers: kept to quote an unreadable one in the error
            cols.append(f"CAST({self._field_sql('timestamp')} AS VARCHAR) AS __raw_timestamp")
        keys: list[str] = []
        if properties == "json":
            cols.append(f"CAST({self._properties_json_sql()} AS VARCHAR) AS properties")
        elif properties != "none":
            keys = list(properties)
            only = ""
            if properties_of is not None:
                names = ", ".join(_sql_str(e) for e in properties_of) or "NULL"
                only = f"WHEN {self._field_sql('event')} IN ({names}) THEN "
            if self.json_properties is not None and keys:
                # One parse of each object for all keys (a key at a time would parse it once per key).
                paths = ", ".join(_json_path(k) for k in keys)
                extract = f"json_extract_string({self._properties_text_sql()}, [{paths}])"
                cols.append(f"CASE {only}{extract} END AS __props" if only else f"{extract} AS __props")
            else:
                cols += [
                    f"CASE {only}{self.property_sql(k)} END AS {_ident(k)}"
                    if only
                    else f"{self.property_sql(k)} AS {_ident(k)}"
                    for k in keys
                ]
        source = self._scan_sql()
        if raw_where or sample_rows:
            filtered = f" WHERE {raw_where}" if raw_where else ""
            sampled = (
                f" USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE (42)" if sample_rows else ""
            )
            source = f"(SELECT {self._raw_projection()} FROM {source}{filtered}{sampled})"
        query = f"SELECT {', '.join(cols)} FROM {source}"
        if self.json_properties is not None and keys:
            unpacked = ", ".join(f"__props[{i + 1}] AS {_ident(k)}" for i, k in enumerate(keys))
            query = f"SELECT * EXCLUDE (__props), {unpacked} FROM ({query})"
        if fast_time:
            query = (
                "SELECT * EXCLUDE (__timestamp_text), CASE WHEN timestamp IS NULL THEN __timestamp_text END "
                f"AS __raw_timestamp FROM ({query})"
            )
        if where:
            query = f"SELECT * FROM ({query}) WHERE {where}"
        return query

    def frame(
        self,
        properties: PropertiesArg = "json",
        where: str | None = None,
        threads: int | None = None,
        distinct_ids: Sequence[str] | None = None,
        uuid: bool = True,
        properties_of: Sequence[str] | None = None,
        uuid_hash: bool = False,
        session_probe: int | None = None,
        json_below: tuple[int, int] | None = None,
    ) -> pl.DataFrame:
        """Return every (or every ``where``-selected) event as a normalized frame.

        ``properties``: ``"json"`` (one JSON text column), ``"none"``, or a list
        of property keys (one text column each). ``distinct_ids`` keeps only those
        users' rows; ``uuid=False`` skips reading event uuids (the column is null); ``properties_of``
        reads the listed keys only on events of those names, ``uuid_hash`` adds the uuid's hash,
        ``session_probe`` probes for session ids instead of reading them, ``json_below`` keeps some rows' JSON
        properties (see :meth:`select_sql`). Raises :class:`ExportError`
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
            query = self.select_sql(
                properties,
                where,
                raw_where=raw_where,
                uuid=uuid,
                properties_of=properties_of,
                uuid_hash=uuid_hash,
                session_probe=session_probe,
                json_below=json_below,
            )
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

    def session_share_at_head(self, rows_per_file: int = 2_000, files: int = 16) -> float | None:
        """Return the share of rows carrying a ``$session_id`` among the first rows of (up to ``files``) files.

        None when the export has a session id column or no JSON properties (nothing to search for). Cheap:
        a few thousand rows a file. Where it is low, the fit's read probes rows spread over the whole export
        instead of searching every row's properties (see ``select_sql``'s ``session_probe``).
        """
        if self.json_properties is None or self.fields.get("session_id"):
            return None
        picked = self.files[:: max(1, -(-len(self.files) // files))]
        # A 16 MB buffer: with the 256 MB one the first rows of a gzip-compressed JSON-lines file cost a
        # quarter of the file's whole read (0.4 of 0.5 CPU s for 611k rows; 0.04 with 16 MB).
        parts = " UNION ALL ".join(
            f"(SELECT {_ident(self.json_properties)} FROM {dataclasses.replace(self, files=(f,))._scan_sql(1 << 24)} "
            f"LIMIT {int(rows_per_file)})"
            for f in picked
        )
        text = self._properties_text_sql()
        con = self._connect()
        try:
            got = self._run(
                con,
                f"SELECT avg(CAST(contains({text}, '\"$session_id\"') AS DOUBLE)) AS share FROM ({parts})",
            )
        finally:
            con.close()
        share = got.column(0)[0].as_py()
        return None if share is None else float(share)

    def count(self) -> int:
        """Return the number of rows in the export."""
        con = self._connect()
        try:
            return int(self._run(con, f"SELECT count(*) AS n FROM {self._scan_sql()}").column(0)[0].as_py())
        finally:
            con.close()

    def property_keys(self, sample_rows: int | None = 20_000) -> pl.DataFrame:
        """Return, per event name and property key: rows carrying it, the event's rows, and the JSON type.

        Columns: ``event``, ``key``, ``rows``, ``event_rows``, ``share``, ``types``
        (the JSON types seen, e.g. ``VARCHAR,BIGINT``) and ``users`` (distinct persons, or distinct
        ids where the export names no person, carrying the key on that event). Reads a seeded reservoir sample of
        ``sample_rows`` rows from the whole export (every row when None): a key's types are read
        row by row, which costs about 75 us a row for a 40-key object.
        """
        con = self._connect()
        try:
            if self.json_properties is None and self.property_columns:
                table = self._run(con, self._column_key_stats_sql(sample_rows))
            else:
                table = self._run(con, _key_stats_sql(self.select_sql("json", sample_rows=sample_rows)))
        finally:
            con.close()
        return _key_stats_frame(table)

    def _column_key_stats_sql(self, sample_rows: int | None) -> str:
        """:func:`_key_stats_sql` for properties that are columns (the UI's CSV, HogFlix's Parquet), column by
        column: each value's JSON type as ``json_object`` would give it, without the object. Made into one
        object a row and read back key by key, a 300-column CSV cost 34 CPU seconds for 15,000 rows (every key
        parsed the whole object again); the same statistics this way cost a second."""
        sampled = f" USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE (42)" if sample_rows else ""
        source = f"(SELECT {self._raw_projection()} FROM {self._scan_sql()}{sampled})"
        types = ", ".join(
            f"coalesce(json_type(to_json({self._column_value(c)})), 'NULL') AS {_ident(k)}"
            for k, c in self.property_columns.items()
        )
        who = f"coalesce(CAST({self._field_sql('person_id')} AS VARCHAR), CAST({self._field_sql('distinct_id')} AS VARCHAR))"
        return f"""
            WITH e AS MATERIALIZED (SELECT {self._field_sql("event")} AS __event, {who} AS __who, {types} FROM {source}),
            n AS (SELECT __event AS event, count(*) AS event_rows FROM e GROUP BY __event),
            t AS (SELECT __event AS event, __who AS who, key, type
                  FROM (UNPIVOT e ON COLUMNS(* EXCLUDE (__event, __who)) INTO NAME key VALUE type))
            SELECT t.event, t.key, count(*) AS rows, any_value(n.event_rows) AS event_rows,
                   count(DISTINCT CASE WHEN t.type <> 'NULL' THEN t.who END) AS users,
                   string_agg(DISTINCT t.type, ',' ORDER BY t.type) AS types
            FROM t JOIN n USING (event)
            GROUP BY t.event, t.key ORDER BY t.event, t.key
        """

    def _run(self, con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
        try:
            return con.sql(query).to_arrow_table()
        except duckdb.Error as exc:
            raise ExportError(self.source, _duckdb_problem(exc)) from None


# ---- the properties of rows already read (a ``properties`` JSON text column) -------------------------------


def rows_property_keys(rows: pl.DataFrame, sample_rows: int | None = 20_000) -> pl.DataFrame:
    """Return :meth:`ExportSource.property_keys`'s table for ``rows`` read with ``properties="json"``.

    The ``sample_rows`` rows (all when None) with the lowest hash of their event and properties are
    looked at: the same rows whatever order ``rows`` come in (a reservoir sample depends on the order,
    and DuckDB's filtered scans do not keep the file's).
    """
    sampled = (
        f" ORDER BY hash(event, properties), event, properties LIMIT {int(sample_rows)}"
        if sample_rows
        else ""
    )
    con = duckdb.connect()
    try:
        ids = [c for c in ("distinct_id", "person_id") if c in rows.columns]
        con.register("__rows", rows.select("event", "properties", *ids).to_arrow())
        who = ", ".join(ids + ["NULL::VARCHAR AS " + c for c in ("distinct_id", "person_id") if c not in ids])
        table = con.sql(
            _key_stats_sql(f"SELECT event, properties, {who} FROM __rows{sampled}")
        ).to_arrow_table()
    finally:
        con.close()
    return _key_stats_frame(table)


def rows_properties(rows: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Return ``rows`` (read with ``properties="json"``) with one text column per key instead of ``properties``.

    The values are those :meth:`ExportSource.frame` gives for a list of keys (``json_extract_string``),
    with each object parsed once for all keys.
    """
    rest = rows.drop("properties")
    if not keys:
        return rest
    paths = ", ".join(_json_path(k) for k in keys)
    unpacked = ", ".join(f"__props[{i + 1}] AS {_ident(k)}" for i, k in enumerate(keys))
    con = duckdb.connect()
    try:
        con.register("__rows", rows.select("properties").to_arrow())
        query = f"SELECT {unpacked} FROM (SELECT json_extract_string(properties, [{paths}]) AS __props FROM __rows)"
        table = con.sql(query).to_arrow_table()
    finally:
        con.close()
    values = pl.from_arrow(table)
    assert isinstance(values, pl.DataFrame)
    return pl.concat([rest, values.select(pl.all().cast(pl.String))], how="horizontal")


def id_hash_sql(distinct_id: str, seed: int) -> str:
    """The SQL of a seeded 64-bit hash of the distinct id text ``distinct_id`` (an expression): the same in
    :meth:`ExportSource.select_sql`'s ``json_below`` and :func:`id_hashes`."""
    return f"hash({distinct_id}, CAST({int(seed)} AS UBIGINT))"


def id_hashes(ids: pl.Series, seed: int) -> pl.DataFrame:
    """Return ``distinct_id`` (the distinct ``ids``) and ``hash``, each one's :func:`id_hash_sql` (UInt64)."""
    con = duckdb.connect()
    try:
        con.register("__ids", pa.table({"distinct_id": ids.cast(pl.String).unique().to_arrow()}))
        table = con.sql(
            f"SELECT distinct_id, {id_hash_sql('distinct_id', seed)} AS hash FROM __ids"
        ).to_arrow_table()
    finally:
        con.close()
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out.with_columns(pl.col("distinct_id").cast(pl.String), pl.col("hash").cast(pl.UInt64))


def _key_stats_sql(base: str) -> str:
    """The query of :meth:`ExportSource.property_keys` over rows ``base`` (columns ``event``, ``properties``,
    ``distinct_id``, ``person_id``). ``users`` counts who carried the key with a value (not a JSON null: the
    UI's CSV gives every row every column)."""
    return f"""
        WITH e AS MATERIALIZED ({base}),
        n AS (SELECT event, count(*) AS event_rows FROM e GROUP BY event),
        k AS (SELECT event, unnest(json_keys(CAST(properties AS JSON))) AS key, properties,
                     coalesce(CAST(person_id AS VARCHAR), CAST(distinct_id AS VARCHAR)) AS who FROM e),
        t AS (SELECT event, key, who,
                     json_type(CAST(properties AS JSON) -> ('$."' || replace(key, '"', '\\"') || '"')) AS type FROM k)
        SELECT t.event, t.key, count(*) AS rows, any_value(n.event_rows) AS event_rows,
               count(DISTINCT CASE WHEN t.type <> 'NULL' THEN t.who END) AS users,
               string_agg(DISTINCT t.type, ',') AS types
        FROM t JOIN n USING (event)
        GROUP BY t.event, t.key ORDER BY t.event, t.key
    """


def _key_stats_frame(table: pa.Table) -> pl.DataFrame:
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
                "users": pl.Int64,
            }  # fmt: skip
        )
    return out.with_columns(
        pl.col("rows").cast(pl.Int64),
        pl.col("event_rows").cast(pl.Int64),
        (pl.col("rows") / pl.col("event_rows")).alias("share"),
        pl.col("users").cast(pl.Int64),
    ).select("event", "key", "rows", "event_rows", "share", "types", "users")
