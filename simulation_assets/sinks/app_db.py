"""The HogFlix app database: one interface, a DuckDB file (default) or PostgreSQL / Supabase behind it.

The project creates the schema itself (``ensure_schema``): profiles,
user_subscriptions, watch_progress, video_ratings, user_watchlist,
chat_conversations, chat_messages, support_tickets, each with
``is_synthetic`` and ``partition_key``. Writes are idempotent per partition:
one transaction deletes the synthetic rows of the partitions being written and
inserts the new rows (PostgreSQL: ``COPY`` into a temporary table, then
``INSERT ... ON CONFLICT DO NOTHING``); profiles and subscriptions are upserted
by their deterministic ids. Deletes only ever match synthetic rows: the
``is_synthetic`` flag, or for tables with an e-mail the synthetic domain.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.hogflix.app_rows import APP_TABLES, EMAIL_TABLES, UPSERT_TABLES, UPSERT_UPDATES
from simulation_assets.paths import data_dir
from simulation_assets.sinks.config_files import from_env

BACKENDS = ("duckdb", "postgres")
DSN_ENV_VAR = "HOGFLIX_APP_DB_DSN"
_SCHEMA_READY: set[tuple[str, str, str]] = set()
SYNTHETIC_DOMAIN = "hogflix-synthetic.test"
UUID_COLUMNS = {"id", "user_id", "profile_id", "video_id", "conversation_id"}
# Children first, so deletes never leave a message without its conversation for a moment.
TABLE_ORDER = (
    "chat_messages", "chat_conversations", "watch_progress", "video_ratings", "user_watchlist",
    "support_tickets", "plan_changes", "payments", "user_subscriptions", "profiles",
)  # fmt: skip


def _sql_type(column: str, dtype: pl.DataType) -> str:
    if column in UUID_COLUMNS:
        return "uuid"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Int32:
        return "integer"
    if dtype == pl.Int64:
        return "bigint"
    if dtype == pl.Float64:
        return "double precision"
    if isinstance(dtype, pl.Datetime):
        return "timestamptz"
    return "text"


def synthetic_predicate(table: str) -> str:
    """Return the SQL condition that marks a row of ``table`` as synthetic (the only rows ever deleted)."""
    if table in EMAIL_TABLES:
        suffix = "@" + SYNTHETIC_DOMAIN  # no LIKE: '%' would clash with driver placeholders
        return f"(is_synthetic OR coalesce(right(email, {len(suffix)}) = '{suffix}', false))"
    return "is_synthetic"


def ddl(schema: str) -> list[str]:
    """Return the CREATE statements of the app schema (PostgreSQL and DuckDB accept both)."""
    out = [f"CREATE SCHEMA IF NOT EXISTS {schema}"]
    for table, cols in APP_TABLES.items():
        lines = []
        for name, dtype in cols.items():
            kind = _sql_type(name, dtype)
            if name == "id":
                lines.append(f"id {kind} PRIMARY KEY")
            elif name == "is_synthetic":
                lines.append("is_synthetic boolean NOT NULL DEFAULT false")
            else:
                lines.append(f"{name} {kind}")
        out.append(f"CREATE TABLE IF NOT EXISTS {schema}.{table} ({', '.join(lines)})")
        if "user_id" in cols:
            out.append(f"CREATE INDEX IF NOT EXISTS {table}_user_idx ON {schema}.{table} (user_id)")
        if "partition_key" in cols and table not in UPSERT_TABLES:
            out.append(
                f"CREATE INDEX IF NOT EXISTS {table}_partition_idx ON {schema}.{table} (partition_key)"
            )
    return out


def postgres_functions(schema: str) -> list[str]:
    """Return ``count_synthetic_data()`` and ``cleanup_synthetic_data()`` for PostgreSQL (same predicates).

    They let an operator count or remove the synthetic data from SQL (e.g. Supabase's editor)
    with exactly the rules ``simulate cleanup`` applies.
    """
    counts = " UNION ALL ".join(
        f"SELECT '{t}'::text, count(*) FROM {schema}.{t} WHERE {synthetic_predicate(t)}" for t in TABLE_ORDER
    )
    deletes = "\n".join(
        f"  DELETE FROM {schema}.{t} WHERE {synthetic_predicate(t)}; GET DIAGNOSTICS n = ROW_COUNT;\n"
        f"  table_name := '{t}'; deleted_rows := n; RETURN NEXT;"
        for t in TABLE_ORDER
    )
    return [
        f"CREATE OR REPLACE FUNCTION {schema}.count_synthetic_data() "
        f"RETURNS TABLE(table_name text, synthetic_rows bigint) LANGUAGE sql AS $fn$ {counts} $fn$",
        f"CREATE OR REPLACE FUNCTION {schema}.cleanup_synthetic_data() "
        f"RETURNS TABLE(table_name text, deleted_rows bigint) LANGUAGE plpgsql AS $fn$\n"
        f"DECLARE n bigint;\nBEGIN\n{deletes}\nEND\n$fn$",
    ]


class HogflixAppDatabase(dg.ConfigurableResource):
    """The app database the HogFlix assets write to; ``DuckDBAppDatabase`` and ``PostgresAppDatabase`` implement it.

    Everything but connecting is shared: the schema, idempotent writes per
    partition, deletes that only ever match synthetic rows, counts and reads.
    """

    schema_name: str = "public"
    backend: ClassVar[str] = ""

    # ------------------------------------------------------------------ what an implementation provides

    def location(self) -> str:
        """Return where the rows go, without secrets (a file path or host/database)."""
        raise NotImplementedError

    @contextmanager
    def _connect(self) -> Iterator[_Connection]:
        """Yield a connection inside one transaction: committed on success, rolled back on error."""
        raise NotImplementedError
        yield  # pragma: no cover

    def _schema_statements(self) -> list[str]:
        return ddl(self.schema_name)

    def _validate_backend(self) -> None:
        """Raise ValueError naming the setting when the database cannot be reached as configured."""

    # ------------------------------------------------------------------ shared

    def validate_config(self) -> None:
        """Raise ValueError naming the setting when the database cannot be reached as configured."""
        if not self.schema_name.isidentifier():
            raise ValueError(f"schema_name must be a plain SQL identifier, got {self.schema_name!r}")
        self._validate_backend()

    def ensure_schema(self) -> None:
        """Create the schema and tables when missing (once per process and database)."""
        key = (self.backend, self.location(), self.schema_name)
        if key in _SCHEMA_READY and self._schema_still_there():
            return
        with self._connect() as db:
            for statement in self._schema_statements():
                db.execute(statement)
        _SCHEMA_READY.add(key)

    def _schema_still_there(self) -> bool:
        return True

    # ------------------------------------------------------------------ writes

    def write(self, tables: dict[str, pl.DataFrame], partitions: Sequence[str]) -> dict[str, Any]:
        """Replace the synthetic rows of ``partitions`` in the given tables (upsert tables: insert new ids).

        Returns {"inserted": {table: rows}, "replaced": {table: rows deleted first}, "new_profiles": frame}.
        """
        self.ensure_schema()
        inserted: dict[str, int] = {}
        replaced: dict[str, int] = {}
        new_profiles = pl.DataFrame(schema={"id": pl.String(), "user_id": pl.String(), "email": pl.String()})
        keys = list(partitions)
        with self._connect() as db:
            for table in reversed(TABLE_ORDER):  # parents first on insert
                if table not in tables:
                    continue
                frame = tables[table]
                if table not in UPSERT_TABLES:
                    replaced[table] = db.delete_where(
                        self.schema_name, table, "partition_key", keys, synthetic_predicate(table)
                    )
                ids = db.insert(self.schema_name, table, frame)
                inserted[table] = len(ids)
                if table == "profiles" and ids:
                    new_profiles = frame.filter(pl.col("id").is_in(ids)).select("id", "user_id", "email")
        return {"inserted": inserted, "replaced": replaced, "new_profiles": new_profiles}

    # ------------------------------------------------------------------ deletes

    def delete_users(self, user_ids: Sequence[str]) -> dict[str, Any]:
        """Delete every synthetic row of ``user_ids`` in every table; non-synthetic rows are never matched.

        Returns {"deleted": {table: rows}, "non_synthetic_before": n, "non_synthetic_after": n}.
        """
        self.ensure_schema()
        ids = [str(u) for u in user_ids]
        with self._connect() as db:
            before = self._non_synthetic(db)
            deleted = {
                t: db.delete_where(self.schema_name, t, "user_id", ids, synthetic_predicate(t))
                for t in TABLE_ORDER
            }
            after = self._non_synthetic(db)
            if after != before:  # impossible by the predicate; roll back rather than trust it
                raise RuntimeError(f"non-synthetic rows changed ({before} -> {after}); rolled back")
        return {"deleted": deleted, "non_synthetic_before": before, "non_synthetic_after": after}

    def count_synthetic(self) -> dict[str, int]:
        """Return the number of synthetic rows per table (the specification's ``count_synthetic_data``)."""
        self.ensure_schema()
        with self._connect() as db:
            return {
                t: db.scalar(f"SELECT count(*) FROM {self.schema_name}.{t} WHERE {synthetic_predicate(t)}")
                for t in TABLE_ORDER
            }

    def cleanup_synthetic(self) -> dict[str, Any]:
        """Delete every synthetic row of every table (``cleanup_synthetic_data``); return counts."""
        self.ensure_schema()
        with self._connect() as db:
            before = self._non_synthetic(db)
            deleted = {
                t: db.rowcount(f"DELETE FROM {self.schema_name}.{t} WHERE {synthetic_predicate(t)}")
                for t in TABLE_ORDER
            }
            after = self._non_synthetic(db)
            if after != before:  # impossible by the predicate; roll back rather than trust it
                raise RuntimeError(f"non-synthetic rows changed ({before} -> {after}); rolled back")
        return {"deleted": deleted, "non_synthetic_before": before, "non_synthetic_after": after}

    def non_synthetic_rows(self) -> int:
        """Return how many rows of the app tables are not synthetic (the rows cleanup must never touch)."""
        self.ensure_schema()
        with self._connect() as db:
            return self._non_synthetic(db)

    def _non_synthetic(self, db: _Connection) -> int:
        return sum(
            db.scalar(f"SELECT count(*) FROM {self.schema_name}.{t} WHERE NOT {synthetic_predicate(t)}")
            for t in TABLE_ORDER
        )

    # ------------------------------------------------------------------ reads

    def table_counts(self) -> dict[str, int]:
        """Return the row count of every app table."""
        self.ensure_schema()
        with self._connect() as db:
            return {t: db.scalar(f"SELECT count(*) FROM {self.schema_name}.{t}") for t in TABLE_ORDER}

    def orphan_rows(self) -> dict[str, int]:
        """Return, per table, synthetic rows whose user has no profile (or messages without a conversation).

        Only the simulator's own rows are looked at: a real application sharing
        the database may keep rows of its own that point nowhere, and those are
        neither counted nor touched.
        """
        self.ensure_schema()
        s = self.schema_name
        with self._connect() as db:
            out = {
                t: db.scalar(
                    f"SELECT count(*) FROM {s}.{t} x WHERE {synthetic_predicate(t)} AND NOT EXISTS "
                    f"(SELECT 1 FROM {s}.profiles p WHERE p.user_id = x.user_id)"
                )
                for t in TABLE_ORDER
                if t != "profiles"
            }
            out["chat_messages_without_conversation"] = db.scalar(
                f"SELECT count(*) FROM {s}.chat_messages m WHERE {synthetic_predicate('chat_messages')} "
                f"AND NOT EXISTS (SELECT 1 FROM {s}.chat_conversations c WHERE c.id = m.conversation_id)"
            )
        return out

    def read_table(self, table: str) -> pl.DataFrame:
        """Return the synthetic rows of ``table`` as a frame (ids as strings).

        The rows of a real application sharing the database are never read: what
        the simulator exports is its own data only.
        """
        if table not in APP_TABLES:
            raise ValueError(f"unknown app table {table!r}; valid: {sorted(APP_TABLES)}")
        self.ensure_schema()
        cols = ", ".join(f"{c}::text AS {c}" if c in UUID_COLUMNS else c for c in APP_TABLES[table])
        with self._connect() as db:
            frame = db.frame(
                f"SELECT {cols} FROM {self.schema_name}.{table} WHERE {synthetic_predicate(table)} ORDER BY id"
            )
        return frame.select([pl.col(c).cast(t) for c, t in APP_TABLES[table].items()]) if frame.height else (
            pl.DataFrame(schema=APP_TABLES[table])
        )  # fmt: skip


class DuckDBAppDatabase(HogflixAppDatabase):
    """The app database as a local DuckDB file (the embedded default)."""

    backend: ClassVar[str] = "duckdb"
    duckdb_path: str = Field(default="", description="DuckDB file; empty: <data dir>/hogflix/app.duckdb")

    def location(self) -> str:
        return str(self._duckdb_file())

    def _duckdb_file(self) -> Path:
        path = Path(self.duckdb_path) if self.duckdb_path else data_dir() / "hogflix" / "app.duckdb"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _schema_still_there(self) -> bool:
        return self._duckdb_file().exists()  # a test or a user may have deleted the file

    @contextmanager
    def _connect(self) -> Iterator[_Connection]:
        import duckdb

        self.validate_config()
        con = duckdb.connect(str(self._duckdb_file()))
        try:
            con.execute("BEGIN TRANSACTION")
            yield _DuckDbConnection(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()


class PostgresAppDatabase(HogflixAppDatabase):
    """The app database in PostgreSQL (Supabase's database included), reached by a DSN."""

    backend: ClassVar[str] = "postgres"
    # Bound as dg.EnvVar where the definitions are built (sinks/config_files.from_env).
    ENV: ClassVar[dict[str, str]] = {"dsn": DSN_ENV_VAR}

    dsn: str = Field(default="", description=f"PostgreSQL DSN (${DSN_ENV_VAR}, bound as an EnvVar).")

    def _validate_backend(self) -> None:
        if not self.dsn:
            raise ValueError(f"the postgres app database needs a DSN (--dsn or ${DSN_ENV_VAR})")

    def location(self) -> str:
        import psycopg

        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        return f"postgresql://{info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    def _schema_statements(self) -> list[str]:
        return ddl(self.schema_name) + postgres_functions(self.schema_name)

    @contextmanager
    def _connect(self) -> Iterator[_Connection]:
        import psycopg

        self.validate_config()
        with psycopg.connect(self.dsn) as con:  # commits on success, rolls back on error
            yield _PostgresConnection(con)


def app_database(backend: str, duckdb_path: str = "", dsn: str = "") -> HogflixAppDatabase:
    """Return the app database of ``backend`` (duckdb or postgres); ValueError names a bad value."""
    if backend == "duckdb":
        return DuckDBAppDatabase(duckdb_path=duckdb_path)
    if backend == "postgres":
        return PostgresAppDatabase(dsn=dsn)
    raise ValueError(f"HOGFLIX_APP_DB / --app-db must be one of {BACKENDS}, got {backend!r}")


def app_database_from_env() -> HogflixAppDatabase:
    """Return the app database the Dagster definitions use: ``$HOGFLIX_APP_DB`` (duckdb by default).

    For postgres the DSN is bound to ``dg.EnvVar("HOGFLIX_APP_DB_DSN")``: resolved when a run starts
    and shown in the UI as the variable's name, never its value.
    """
    backend = os.environ.get("HOGFLIX_APP_DB") or "duckdb"
    if backend == "postgres":
        return from_env(PostgresAppDatabase)
    return app_database(backend)


def _follow_updates(schema: str, table: str, incoming: str) -> str:
    """Return the UPDATE that brings existing synthetic rows of an upserted table up to date (a plan
    change, a subscription falling into dunning)."""
    columns = UPSERT_UPDATES[table]
    sets = ", ".join(f"{c} = i.{c}" for c in columns)
    differs = " OR ".join(f"t.{c} IS DISTINCT FROM i.{c}" for c in columns)
    return (
        f"UPDATE {schema}.{table} AS t SET {sets} FROM {incoming} AS i "
        f"WHERE t.id = CAST(i.id AS UUID) AND t.is_synthetic AND ({differs})"
    )


class _Connection:
    """The few statements the sink needs, on an open connection inside a transaction."""

    def __init__(self, con: Any) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.con.execute(sql, list(params))

    def scalar(self, sql: str) -> int:
        return int(self.execute(sql).fetchone()[0])

    def rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def frame(self, sql: str) -> pl.DataFrame:
        raise NotImplementedError

    def delete_where(self, schema: str, table: str, column: str, values: list[str], predicate: str) -> int:
        """Delete the rows whose ``column`` is in ``values`` and that match ``predicate``; return how many."""
        raise NotImplementedError

    def insert(self, schema: str, table: str, frame: pl.DataFrame) -> list[str]:
        """Insert ``frame`` (skipping ids already present); return the ids inserted."""
        raise NotImplementedError


class _DuckDbConnection(_Connection):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.con.execute(sql.replace("%s", "?"), list(params))

    def rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        return len(self.execute(sql + " RETURNING 1", params).fetchall())

    def frame(self, sql: str) -> pl.DataFrame:
        return self.con.sql(sql).pl()

    def delete_where(self, schema: str, table: str, column: str, values: list[str], predicate: str) -> int:
        if not values:
            return 0
        cast = "::UUID[]" if column in UUID_COLUMNS else "::VARCHAR[]"
        sql = f"DELETE FROM {schema}.{table} WHERE list_contains(%s{cast}, {column}) AND {predicate}"
        return self.rowcount(sql, [values])

    def insert(self, schema: str, table: str, frame: pl.DataFrame) -> list[str]:
        if frame.is_empty():
            return []
        cols = list(APP_TABLES[table])
        col_list = ", ".join(cols)
        self.con.register("incoming_rows", frame.select(cols).to_arrow())
        try:
            rows = self.con.execute(
                f"INSERT INTO {schema}.{table} ({col_list}) SELECT {col_list} FROM incoming_rows "
                "ON CONFLICT DO NOTHING RETURNING id::VARCHAR"
            ).fetchall()
            if table in UPSERT_UPDATES:
                self.execute(_follow_updates(schema, table, "incoming_rows"))
        finally:
            self.con.unregister("incoming_rows")
        return [r[0] for r in rows]


class _PostgresConnection(_Connection):
    def rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self.execute(sql, params).rowcount)

    def frame(self, sql: str) -> pl.DataFrame:
        cur = self.con.execute(sql)
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
        return pl.DataFrame(rows, schema=names, orient="row") if rows else pl.DataFrame(schema=names)

    def delete_where(self, schema: str, table: str, column: str, values: list[str], predicate: str) -> int:
        if not values:
            return 0
        cast = "::uuid[]" if column in UUID_COLUMNS else "::text[]"
        sql = f"DELETE FROM {schema}.{table} WHERE {column} = ANY(%s{cast}) AND {predicate}"
        return self.rowcount(sql, [values])

    def insert(self, schema: str, table: str, frame: pl.DataFrame) -> list[str]:
        """COPY into a temporary table, then insert the ids not present yet."""
        if frame.is_empty():
            return []
        cols = list(APP_TABLES[table])
        col_list = ", ".join(cols)
        tmp = f"incoming_{table}"
        self.con.execute(f"CREATE TEMP TABLE {tmp} (LIKE {schema}.{table}) ON COMMIT DROP")
        csv = frame.select(cols).write_csv(
            include_header=False, null_value="\\N", datetime_format="%Y-%m-%dT%H:%M:%S%.3f%z"
        )
        with self.con.cursor().copy(
            f"COPY {tmp} ({col_list}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        ) as cp:
            cp.write(csv.encode())
        rows = self.con.execute(
            f"INSERT INTO {schema}.{table} ({col_list}) SELECT {col_list} FROM {tmp} "
            "ON CONFLICT (id) DO NOTHING RETURNING id::text"
        ).fetchall()
        if table in UPSERT_UPDATES:
            self.execute(_follow_updates(schema, table, tmp))
        self.con.execute(f"DROP TABLE {tmp}")
        return [r[0] for r in rows]
