"""The real warehouse: PostgreSQL, schema ``raw``, bulk-loaded with binary ``COPY`` over several connections.

A load never touches ``raw`` until everything is in. It runs in three steps, each in its own module:

1. ``warehouse_postgres_plan``: the tasks (copy, unique index, primary key, foreign-key indexes,
   foreign keys added ``NOT VALID`` then validated), their dependencies and table locks (pure);
2. ``warehouse_postgres_scheduler`` runs them on several connections, longest chain first, never
   two whose locks conflict; each copy (``warehouse_postgres_copy``) fills a staging table with one
   binary ``COPY ... FREEZE``, and a table's indexes are built as soon as its own copy and
   foreign-key checks are done, while other tables are still copying;
3. ``warehouse_postgres_swap`` moves the staged tables into ``raw`` in one transaction, keeping
   the views on them.

A failure cancels what is running, drops the staging schema and leaves ``raw`` as it was;
re-loading an environment replaces it. The DSN comes from the caller; no secret is stored.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.checks import Check, CheckResult, run_checks
from simulation_assets.sinks.warehouse_parquet import table_paths
from simulation_assets.sinks.warehouse_postgres_copy import copy_table
from simulation_assets.sinks.warehouse_postgres_plan import (
    BRIN_MIN_ROWS,
    FK_INDEX_METHODS,
    RAW,
    STAGING,
    TASK_COST_PER_ROW,
    Task,
    fk_index_sql,
    plan,
)
from simulation_assets.sinks.warehouse_postgres_scheduler import run_plan
from simulation_assets.sinks.warehouse_postgres_swap import RAW_TABLES_SQL, swap_into_raw


class PostgresWarehouse:
    """Load, query and check schema ``raw`` of a PostgreSQL database."""

    kind = "postgres"

    def __init__(
        self,
        dsn: str,
        connections: int = 2,
        maintenance_work_mem: str = "1GB",
        fk_index: str = "auto",
        brin_min_rows: int = BRIN_MIN_ROWS,
    ) -> None:
        if fk_index not in FK_INDEX_METHODS:
            raise ValueError(f"fk_index must be one of {', '.join(FK_INDEX_METHODS)}, got {fk_index!r}")
        self.dsn = dsn
        self.fk_index = fk_index
        self.brin_min_rows = brin_min_rows
        self.maintenance_work_mem = maintenance_work_mem
        self.connections = max(1, int(connections))
        self.last_timings: dict[str, float] = {}
        self.last_tasks: list[Task] = []
        self.last_views: dict[str, list[str]] = {"recreated": [], "dropped": []}

    def describe(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        try:
            info = conninfo_to_dict(self.dsn)
        except Exception:  # noqa: BLE001
            return "postgres:<invalid dsn>"
        return f"postgres://{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"

    def connect(self, autocommit: bool = True, maintenance: bool = False):  # noqa: ANN201
        """Return a connection; ``maintenance`` sets the load's session settings (sort memory, one
        process per statement since the load runs several statements side by side, no commit wait)."""
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=autocommit, connect_timeout=5)
        if maintenance:
            conn.execute(f"SET maintenance_work_mem = '{self.maintenance_work_mem}'")
            conn.execute("SET max_parallel_maintenance_workers = 0")
            conn.execute("SET synchronous_commit = off")
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
        """Replace ``raw.<table>`` for each table from the Parquet files under ``root``; return seconds per table
        (its ``COPY``)."""
        import pyarrow.parquet as pq

        order = [t for t in schema.TABLE_NAMES if t in set(tables)]
        rows: dict[str, int] = {}
        for name in order:
            rows[name] = 0
            for path in table_paths(root, name):
                if not path.exists():
                    raise FileNotFoundError(f"{name}: missing Parquet file {path}")
                rows[name] += pq.ParquetFile(path).metadata.num_rows
        with self.connect() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {STAGING} CASCADE")
            conn.execute(f"CREATE SCHEMA {STAGING}")
            in_raw = {r[0] for r in conn.execute(RAW_TABLES_SQL, (RAW,)).fetchall()}
        try:
            t0 = time.perf_counter()
            tasks = plan(order, rows, frozenset(in_raw - set(order)))
            ordered: dict[str, set[str]] = {}  # table -> its foreign-key columns stored in key order

            def execute(conn: Any, task: Task) -> None:
                if task.kind == "copy":
                    ordered[task.table] = copy_table(conn, task.table, root)
                elif task.column:
                    conn.execute(
                        fk_index_sql(task, ordered.get(task.table, set()), self.fk_index, self.brin_min_rows)
                    )
                else:
                    for sql in task.sql:
                        conn.execute(sql)

            run_plan(tasks, self.connections, lambda: self.connect(maintenance=True), execute)
            t1 = time.perf_counter()
            with self.connect(autocommit=False) as conn:
                self.last_views = swap_into_raw(conn, order)
            # planner statistics are left to autovacuum: an ANALYZE here would lengthen every load
            self.last_tasks = tasks
            self.last_timings = {"build": t1 - t0, "swap": time.perf_counter() - t1}
            for kind in TASK_COST_PER_ROW:
                self.last_timings[f"{kind}_task_seconds"] = sum(t.seconds for t in tasks if t.kind == kind)
            copies = [t for t in tasks if t.kind == "copy"]
            self.last_timings["copies_done_at"] = max(t.started + t.seconds for t in copies) - t0
        except BaseException:
            with self.connect() as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {STAGING} CASCADE")
            raise
        return {t.table: t.seconds for t in tasks if t.kind == "copy"}

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
            return run_checks(checks, lambda sql: conn.execute(sql).fetchall())

    def dbt_env(self) -> dict[str, str]:
        """Return the variables that point ``dbt/profiles.yml`` at this database."""
        import os

        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(self.dsn)
        return {
            "WAREHOUSE_DBT_TARGET": "postgres",
            "WAREHOUSE_PG_HOST": str(info.get("host") or "127.0.0.1"),
            "WAREHOUSE_PG_PORT": str(info.get("port") or "5432"),
            "WAREHOUSE_PG_USER": str(info.get("user") or os.environ.get("PGUSER", "postgres")),
            "WAREHOUSE_PG_PASSWORD": str(info.get("password") or os.environ.get("PGPASSWORD", "")),
            "WAREHOUSE_PG_DBNAME": str(info.get("dbname") or "postgres"),
        }
