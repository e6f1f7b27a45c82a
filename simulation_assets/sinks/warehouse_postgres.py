"""The real warehouse: PostgreSQL, schema ``raw``, bulk-loaded with ``COPY`` over several connections.

A load never touches ``raw`` until everything is in: rows are copied into a
staging schema (``raw_loading``) in parallel (one connection per worker, one
Parquet row group per ``COPY``), primary keys, foreign-key indexes and foreign
keys are added there in dependency order, and then one transaction drops the
old tables and moves the new ones into ``raw``. A failure drops the staging
schema and leaves ``raw`` as it was; re-loading an environment replaces it.
The DSN comes from the caller or ``WAREHOUSE_POSTGRES_DSN``; no secret is stored.
"""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.integrity import Check, CheckResult, evaluate
from simulation_assets.sinks.warehouse_parquet import table_paths

RAW = "raw"
STAGING = "raw_loading"


def _ddl(table: str) -> str:
    spec = schema.table(table)
    return ", ".join(f"{c.name} {schema.TYPES[c.type][2]}" for c in spec.columns)


def csv_bytes(batch) -> bytes:  # noqa: ANN001 (pyarrow Table or RecordBatch)
    """Return a pyarrow table as header-less CSV that PostgreSQL's ``COPY ... (FORMAT csv)`` reads."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    plain = pa.table(columns, names=batch.column_names)
    buf = io.BytesIO()
    pacsv.write_csv(plain, buf, pacsv.WriteOptions(include_header=False, batch_size=65_536))
    return buf.getvalue()


class PostgresWarehouse:
    """Load, query and check schema ``raw`` of a PostgreSQL database."""

    kind = "postgres"

    def __init__(self, dsn: str, connections: int = 3, maintenance_work_mem: str = "256MB") -> None:
        self.dsn = dsn
        self.maintenance_work_mem = maintenance_work_mem
        self.connections = max(1, int(connections))
        self.last_timings: dict[str, float] = {}

    def describe(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        try:
            info = conninfo_to_dict(self.dsn)
        except Exception:  # noqa: BLE001
            return "postgres:<invalid dsn>"
        return f"postgres://{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"

    def connect(self, autocommit: bool = True, maintenance: bool = False):  # noqa: ANN201
        """Return a connection; ``maintenance`` gives index builds more sort memory (a session setting)."""
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=autocommit, connect_timeout=5)
        if maintenance:
            conn.execute(f"SET maintenance_work_mem = '{self.maintenance_work_mem}'")
        return conn

    def validate(self) -> None:
        """Raise ValueError with the server's reason when the DSN is malformed or the database unreachable."""
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        if not self.dsn:
            raise ValueError("a PostgreSQL DSN is required (--dsn or WAREHOUSE_POSTGRES_DSN)")
        try:
            conninfo_to_dict(self.dsn)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"malformed PostgreSQL DSN: {exc}") from None
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"cannot connect to PostgreSQL at {self.describe()}: {reason}") from None

    # ------------------------------------------------------------------ loading
    def load(self, root: Path, tables: list[str]) -> dict[str, float]:
        """Replace ``raw.<table>`` for each table from the Parquet files under ``root``; return seconds per table."""
        import pyarrow.parquet as pq

        order = [t for t in schema.TABLE_NAMES if t in set(tables)]
        with self.connect() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {STAGING} CASCADE")
            conn.execute(f"CREATE SCHEMA {STAGING}")
            for name in order:
                conn.execute(f"CREATE TABLE {STAGING}.{name} ({_ddl(name)})")
        try:
            units = []
            for name in order:
                for path in table_paths(root, name):
                    if not path.exists():
                        raise FileNotFoundError(f"{name}: missing Parquet file {path}")
                    for group in range(pq.ParquetFile(path).num_row_groups):
                        units.append((name, path, group))
            t0 = time.perf_counter()
            seconds = self._copy_all(units)
            t1 = time.perf_counter()
            self._constraints(order)
            t2 = time.perf_counter()
            self._swap(order)
            self.last_timings = {"copy": t1 - t0, "constraints": t2 - t1, "swap": time.perf_counter() - t2}
        except BaseException:
            with self.connect() as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {STAGING} CASCADE")
            raise
        return seconds

    def _copy_all(self, units: list[tuple[str, Path, int]]) -> dict[str, float]:
        import pyarrow.parquet as pq

        local = threading.local()
        lock = threading.Lock()
        seconds: dict[str, float] = {}
        opened: list = []

        def copy(unit: tuple[str, Path, int]) -> None:
            name, path, group = unit
            if not hasattr(local, "conn"):
                local.conn = self.connect()
                with lock:
                    opened.append(local.conn)
            started = time.perf_counter()
            data = csv_bytes(pq.ParquetFile(path).read_row_group(group))
            cols = ", ".join(schema.table(name).column_names)
            with (
                local.conn.cursor() as cur,
                cur.copy(f"COPY {STAGING}.{name} ({cols}) FROM STDIN (FORMAT csv)") as cp,
            ):
                view = memoryview(data)
                for i in range(0, len(view), 8 << 20):
                    cp.write(view[i : i + (8 << 20)])
            with lock:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started

        try:
            with ThreadPoolExecutor(max_workers=self.connections) as pool:
                # biggest units first keeps every connection busy until the end
                for fut in [pool.submit(copy, u) for u in sorted(units, key=lambda u: -u[1].stat().st_size)]:
                    fut.result()
        finally:
            for conn in opened:
                conn.close()
        return seconds

    def _parallel(self, statements: list[str]) -> None:
        if not statements:
            return
        local = threading.local()
        opened: list = []
        lock = threading.Lock()

        def run(sql: str) -> None:
            if not hasattr(local, "conn"):
                local.conn = self.connect(maintenance=True)
                with lock:
                    opened.append(local.conn)
            local.conn.execute(sql)

        try:
            with ThreadPoolExecutor(max_workers=self.connections) as pool:
                for fut in [pool.submit(run, s) for s in statements]:
                    fut.result()
        finally:
            for conn in opened:
                conn.close()

    def _constraints(self, order: list[str]) -> None:
        """Primary keys, then foreign-key indexes, then foreign keys, all on the staging tables."""
        loaded = set(order)
        self._parallel(
            [
                f"ALTER TABLE {STAGING}.{t} ADD CONSTRAINT {t}_pkey PRIMARY KEY ({schema.table(t).primary_key})"
                for t in order
            ]
        )
        index, fks, validate = [], [], []
        for t in order:
            for fk in schema.table(t).foreign_keys:
                index.append(f"CREATE INDEX {t}_{fk.column}_idx ON {STAGING}.{t} ({fk.column})")
                if fk.parent in loaded:
                    name = f"{t}_{fk.column}_fkey"
                    fks.append(
                        f"ALTER TABLE {STAGING}.{t} ADD CONSTRAINT {name} FOREIGN KEY ({fk.column}) "
                        f"REFERENCES {STAGING}.{fk.parent} ({fk.parent_column}) NOT VALID"
                    )
                    validate.append(f"ALTER TABLE {STAGING}.{t} VALIDATE CONSTRAINT {name}")
        self._parallel(index)
        # Adding foreign keys locks parent and child against each other, so add them (unchecked, instant)
        # on one connection; validating takes weaker locks, so the scans run in parallel.
        if fks:
            with self.connect() as conn:
                for stmt in fks:
                    conn.execute(stmt)
        self._parallel(validate)

    def _swap(self, order: list[str]) -> None:
        """Move the staging tables into ``raw`` in one transaction (foreign keys to unloaded parents added here)."""
        loaded = set(order)
        with self.connect(autocommit=False) as conn:
            existing = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (RAW,)
                ).fetchall()
            }
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW}")
            for t in order:
                conn.execute(f"DROP TABLE IF EXISTS {RAW}.{t} CASCADE")
            for t in order:
                conn.execute(f"ALTER TABLE {STAGING}.{t} SET SCHEMA {RAW}")
            for t in order:
                for fk in schema.table(t).foreign_keys:
                    if fk.parent not in loaded and fk.parent in existing:
                        conn.execute(
                            f"ALTER TABLE {RAW}.{t} ADD CONSTRAINT {t}_{fk.column}_fkey FOREIGN KEY ({fk.column}) "
                            f"REFERENCES {RAW}.{fk.parent} ({fk.parent_column})"
                        )
            conn.execute(f"DROP SCHEMA {STAGING} CASCADE")
            conn.commit()
        # planner statistics are left to autovacuum: an ANALYZE here would lengthen every load

    # ------------------------------------------------------------------ reading
    def query(self, sql: str) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(sql).fetchall()

    def tables(self) -> list[str]:
        rows = self.query(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{RAW}' ORDER BY 1"
        )
        return [r[0] for r in rows]

    def run_checks(self, checks: list[Check]) -> list[CheckResult]:
        with self.connect() as conn:
            return [evaluate(c, conn.execute(c.sql).fetchall()) for c in checks]
