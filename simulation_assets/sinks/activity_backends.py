"""The two implementations of ``ActivityStore``: a DuckDB file (default) and PostgreSQL.

``activity_store_from_env()`` returns the one ``$ACTIVITY_STORE`` names (``duckdb`` or
``postgres``), configured from the environment with ``dg.EnvVar`` bindings.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from pydantic import Field

from simulation_assets.core.activity.schema import conform
from simulation_assets.paths import data_dir
from simulation_assets.sinks.activity_store import ActivityStore, Transaction
from simulation_assets.sinks.config_files import ConfigFileError, from_env

BACKENDS = ("duckdb", "postgres")
_LOCAL_LOCKS: dict[str, threading.RLock] = {}
_LOCAL_LOCKS_GUARD = threading.Lock()
_SCHEMA_READY: set[tuple[str, str]] = set()  # (file or DSN, prefix) whose tables this process created
_HELD: dict[str, Any] = {}  # DuckDB file -> the connection a held() block keeps open
_PG_HELD = threading.local()  # per thread: DSN -> the connection a held() block keeps open
# A statement moves at most this many rows as Python values (a tick's dozen customers, its events, a
# few tick-log rows); more go through Arrow, which pays a fixed cost for every statement but scales.
VALUE_ROWS = 1_000


def duckdb_engine() -> Any:  # noqa: ANN401 (a module)
    """Return DuckDB's engine: its compiled module ``_duckdb`` alone when there is one, else ``duckdb``.

    The ``duckdb`` package is that module plus a Python relation layer (``sql()``, Arrow scans of
    Python objects), ~0.2 G instructions to import, a quarter of an activity tick's store work. A
    tick's statements need only ``connect``, ``execute`` and ``fetchall``; frames too large for
    values load the package then (``_arrow``).
    """
    try:
        import _duckdb
    except ImportError:  # a DuckDB that does not ship its engine as a module of its own
        import duckdb as _duckdb
    return _duckdb


def _arrow(con: Any) -> Any:  # noqa: ANN401
    """Return ``con`` once the ``duckdb`` package is loaded (Arrow results and scans of Python objects)."""
    import duckdb  # noqa: F401 (sets the connection's Arrow methods up)

    return con


class _DuckTx(Transaction):
    def __init__(self, con: Any, prefix: str) -> None:
        super().__init__(prefix)
        self.con = con

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        self.con.execute(sql, params or []).fetchall()

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def frame(
        self, sql: str, schema: dict[str, pl.DataType], params: list[Any] | None = None
    ) -> pl.DataFrame:
        cursor = self.con.execute(sql, params or [])
        found = cursor.fetchmany(VALUE_ROWS + 1)
        if len(found) <= VALUE_ROWS:
            names = [d[0] for d in cursor.description]
            if names == list(schema):
                return pl.DataFrame(found, schema=schema, orient="row")
            return conform(pl.DataFrame(found, schema=names, orient="row", infer_schema_length=None), schema)
        cursor.abort()  # the rest of this result is not read: the query runs again, whole, into Arrow
        table = _arrow(self.con).sql(sql, params=params or None).to_arrow_table()
        return conform(pl.from_arrow(table), schema)  # type: ignore[arg-type]

    def upsert(self, table: str, frame: pl.DataFrame, key: str) -> None:
        self._write(table, frame, key)

    def append(self, table: str, frame: pl.DataFrame, key: str) -> None:
        self._write(table, frame, None)  # a plain INSERT: about a third of an upsert's cost in DuckDB

    def _write(self, table: str, frame: pl.DataFrame, key: str | None) -> None:
        """INSERT ``frame`` into ``table``; with ``key``, rows whose key is there replace theirs."""
        if frame.height == 0:
            return
        names = ", ".join(frame.columns)
        if frame.height <= VALUE_ROWS:  # one statement with the rows as its parameters
            row = "(" + ", ".join("?" * frame.width) + ")"
            source = f"(VALUES {', '.join([row] * frame.height)}) AS _rows ({names})"
            values = [v for r in frame.iter_rows() for v in r]
        else:
            source, values = "_activity_frame", []
            con = _arrow(self.con)
            con.register(source, frame.to_arrow())
        try:
            sql = (
                self._upsert_sql(table, source, frame.columns, key)
                if key
                else f"INSERT INTO {table} ({names}) SELECT {names} FROM {source}"
            )
            self.execute(sql, values)
        finally:
            if not values:
                con.unregister(source)


class DuckDBActivityStore(ActivityStore):
    """The activity store in a DuckDB file (the embedded default)."""

    ENV: ClassVar[dict[str, str]] = {"duckdb_path": "ACTIVITY_DUCKDB_PATH"}

    duckdb_path: str = Field(
        default="",
        description="DuckDB file; empty means <data dir>/activity/activity.duckdb ($ACTIVITY_DUCKDB_PATH).",
    )

    def duckdb_file(self) -> Path:
        """Return the DuckDB file path."""
        return (
            Path(self.duckdb_path).resolve()
            if self.duckdb_path
            else data_dir() / "activity" / "activity.duckdb"
        )

    def location(self) -> str:
        return str(self.duckdb_file())

    def _lock(self, path: Path) -> threading.RLock:
        with _LOCAL_LOCKS_GUARD:
            return _LOCAL_LOCKS.setdefault(str(path), threading.RLock())

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep one connection to the file open for the block (nested blocks share it).

        This thread holds the file's lock for the whole block: other threads of the process wait
        for it to end, other processes for DuckDB's file lock (up to 15 s).
        """
        path = self.duckdb_file()
        with self._lock(path):
            if str(path) in _HELD:  # an outer block holds it
                yield
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # a deleted file gets its tables again
                _SCHEMA_READY.discard((str(path), self.table_prefix))
            _HELD[str(path)] = _connect_duckdb(duckdb_engine(), path)
            try:
                yield
            finally:
                _HELD.pop(str(path)).close()

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        path = self.duckdb_file()
        with self._lock(path):
            kept = _HELD.get(str(path))
            ready = (str(path), self.table_prefix)
            if kept is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.exists():  # a deleted file gets its tables again
                    _SCHEMA_READY.discard(ready)
            con = kept if kept is not None else _connect_duckdb(duckdb_engine(), path)
            try:
                con.execute("BEGIN TRANSACTION").fetchall()
                tx = _DuckTx(con, self.table_prefix)
                if ready not in _SCHEMA_READY:
                    self._ensure_schema(tx)
                    _SCHEMA_READY.add(ready)
                yield tx
                con.execute("COMMIT").fetchall()
            except BaseException:
                con.execute("ROLLBACK").fetchall()
                raise
            finally:
                if kept is None:
                    con.close()


class _PgTx(Transaction):
    def __init__(self, conn: Any, prefix: str) -> None:
        super().__init__(prefix)
        self.conn = conn

    @staticmethod
    def _pg(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        self.conn.execute(self._pg(sql), params or None)

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        return self.conn.execute(self._pg(sql), params or None).fetchall()

    def frame(
        self, sql: str, schema: dict[str, pl.DataType], params: list[Any] | None = None
    ) -> pl.DataFrame:
        cur = self.conn.execute(self._pg(sql), params or None)
        names = [d.name for d in cur.description]
        found = cur.fetchall()
        if not found:
            return pl.DataFrame(schema=schema)
        return conform(pl.DataFrame(found, schema=names, orient="row", infer_schema_length=None), schema)

    def upsert(self, table: str, frame: pl.DataFrame, key: str) -> None:
        if frame.height == 0:
            return
        staging = f"_stage_{table}"
        self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table}) ON COMMIT DELETE ROWS")
        self.conn.execute(f"DELETE FROM {staging}")
        names = ", ".join(frame.columns)
        with self.conn.cursor().copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in frame.iter_rows():
                copy.write_row(row)
        self.conn.execute(self._upsert_sql(table, staging, frame.columns, key))


class PostgresActivityStore(ActivityStore):
    """The activity store in a PostgreSQL database (shared by several processes or containers)."""

    ENV: ClassVar[dict[str, str | tuple[str, ...]]] = {"dsn": ("ACTIVITY_DATABASE_URL", "HOGFLIX_APP_DB_DSN")}

    dsn: str = Field(
        default="",
        description=(
            "PostgreSQL DSN ($ACTIVITY_DATABASE_URL, else the HogFlix app database's $HOGFLIX_APP_DB_DSN; "
            "bound as an EnvVar, so the DSN never shows in the UI)."
        ),
    )

    def _dsn(self) -> str:
        if not self.dsn:
            raise ValueError("the PostgreSQL activity store needs a DSN: set ACTIVITY_DATABASE_URL")
        return self.dsn

    def location(self) -> str:
        import psycopg.conninfo

        info = psycopg.conninfo.conninfo_to_dict(self._dsn())
        return (
            f"postgresql://{info.get('user', '')}@{info.get('host', '')}:{info.get('port', '5432')}/"
            f"{info.get('dbname', '')}"
        )

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep one connection open for the block, in this thread (nested blocks share it).

        Other threads and processes are not held up: each transaction still takes the advisory
        lock for its own duration only.
        """
        import psycopg

        kept = _pg_kept()
        dsn = self._dsn()
        if dsn in kept:
            yield
            return
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            kept[dsn] = conn
            try:
                yield
            finally:
                del kept[dsn]

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        import psycopg

        kept = _pg_kept().get(self._dsn())
        connection = (
            nullcontext(kept) if kept is not None else psycopg.connect(self._dsn(), connect_timeout=10)
        )
        with connection as conn, conn.transaction():
            tx = _PgTx(conn, self.table_prefix)
            tx.execute("SELECT pg_advisory_xact_lock(?)", [zlib.crc32(self.table_prefix.encode())])
            ready = (conn.info.dsn, self.table_prefix)
            if ready not in _SCHEMA_READY:
                self._ensure_schema(tx)
                _SCHEMA_READY.add(ready)
            yield tx

    def _ensure_schema(self, tx: Transaction) -> None:
        super()._ensure_schema(tx)
        tx.execute(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {tx.t('one_open_intervention')} "
            f"ON {tx.t('interventions')} (customer_id, type) WHERE status = 'open'"
        )


def activity_store_from_env(backend: str | None = None, **explicit: Any) -> ActivityStore:
    """Return the store ``backend`` names (default ``$ACTIVITY_STORE``, else duckdb), its fields bound to
    the environment (``config_files.from_env``); raise ConfigFileError naming the valid backends."""
    chosen = backend or os.environ.get("ACTIVITY_STORE") or "duckdb"
    if chosen not in BACKENDS:
        raise ConfigFileError(f"$ACTIVITY_STORE must be one of {', '.join(BACKENDS)}, got {chosen!r}")
    cls = DuckDBActivityStore if chosen == "duckdb" else PostgresActivityStore
    return from_env(cls, **explicit)


def _pg_kept() -> dict[str, Any]:
    """Return this thread's connections kept open by ``PostgresActivityStore.held()``, by DSN."""
    if not hasattr(_PG_HELD, "by_dsn"):
        _PG_HELD.by_dsn = {}
    return _PG_HELD.by_dsn


def _connect_duckdb(duckdb: Any, path: Path, wait_seconds: float = 15.0) -> Any:
    """Open ``path`` with the DuckDB module ``duckdb``, retrying while another process holds DuckDB's
    file lock: waits of 0.05, 0.1, 0.2, 0.4 then 0.5 s, a last try at ``wait_seconds``; then DuckDB's own
    error is raised."""
    deadline = time.monotonic() + wait_seconds
    wait = 0.05
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            left = deadline - time.monotonic()
            if "lock" not in str(exc).lower() or left <= 0:
                raise
        time.sleep(min(wait, left))
        wait = min(wait * 2, 0.5)
