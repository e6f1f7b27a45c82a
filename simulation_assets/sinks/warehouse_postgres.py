"""The real warehouse: PostgreSQL, schema ``raw``, bulk-loaded with binary ``COPY`` over several connections.

A load never touches ``raw`` until everything is in. Each table is created in a
staging schema (``raw_loading``) and filled by one binary ``COPY ... FREEZE`` in
the same transaction (rows land frozen, in primary-key order, so the later
index builds and foreign-key scans never rewrite a page). The work after the
copies is a small dependency graph run by several connections at once:

* a table's unique (primary-key) index and its foreign-key indexes are built as
  soon as its own ``COPY`` is done, while other tables are still copying;
* the primary key is attached to its unique index (``USING INDEX``);
* each foreign key is added ``NOT VALID`` once the parent's primary key exists,
  then ``VALIDATE``d (a join against the parent's key).

The biggest chains start first, and two statements whose table locks would
conflict are never run at the same time, so no connection sits waiting on
another. Then one transaction drops the old tables and moves the new ones into
``raw``. A failure cancels what is running, drops the staging schema and leaves
``raw`` as it was; re-loading an environment replaces it. The DSN comes from the
caller or ``WAREHOUSE_POSTGRES_DSN``; no secret is stored.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.integrity import Check, CheckResult, evaluate
from simulation_assets.sinks.warehouse_parquet import table_paths

RAW = "raw"
STAGING = "raw_loading"


def _ddl(table: str) -> str:
    spec = schema.table(table)
    return ", ".join(
        f"{c.name} {schema.TYPES[c.type][2]}{'' if c.nullable else ' NOT NULL'}" for c in spec.columns
    )


def csv_bytes(batch) -> bytes:  # noqa: ANN001 (pyarrow Table or RecordBatch)
    """Return a pyarrow table as header-less CSV that PostgreSQL's ``COPY ... (FORMAT csv)`` reads."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    plain = pa.table(columns, names=batch.column_names)
    buf = io.BytesIO()
    pacsv.write_csv(plain, buf, pacsv.WriteOptions(include_header=False, batch_size=65_536))
    return buf.getvalue()


def arrow_schema(table: str):  # noqa: ANN201
    """Return the Arrow schema whose binary COPY encoding matches the PostgreSQL columns of ``table``."""
    import pyarrow as pa

    arrow = {
        "bigint": pa.int64(),
        "int": pa.int32(),
        "smallint": pa.int16(),
        "double": pa.float64(),
        "real": pa.float32(),
        "text": pa.large_string(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us"),
        "date": pa.date32(),
    }
    return pa.schema([pa.field(c.name, arrow[c.type], c.nullable) for c in schema.table(table).columns])


def conform_batch(batch, target):  # noqa: ANN001, ANN201
    """Return ``batch`` (a pyarrow Table) with the column types of ``target`` (dictionaries decoded)."""
    import pyarrow as pa

    columns = []
    for f in target:
        col = batch.column(f.name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        columns.append(col if col.type == f.type else col.cast(f.type))
    return pa.table(columns, schema=target)


# --------------------------------------------------------------------------- the constraint graph
# PostgreSQL's table-lock conflicts, for the modes the load takes
# (https://www.postgresql.org/docs/15/explicit-locking.html).
_CONFLICTS = {
    "ROW SHARE": {"EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "SHARE UPDATE EXCLUSIVE": {"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "SHARE": {"SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "SHARE ROW EXCLUSIVE": {"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "ACCESS EXCLUSIVE": {
        "ROW SHARE",
        "SHARE UPDATE EXCLUSIVE",
        "SHARE",
        "SHARE ROW EXCLUSIVE",
        "ACCESS EXCLUSIVE",
    },
}

# rough server cost per row, only used to start the longest chains first
_COST = {"copy": 1.0, "index": 0.4, "pkey": 0.0, "fk_add": 0.0, "fk_validate": 0.12}


@dataclass
class Task:
    """One step of a load: ``sql`` run on one connection, after ``deps``, holding ``locks``."""

    key: str
    kind: str
    table: str
    sql: list[str]
    locks: list[tuple[str, str]]
    deps: set[str] = field(default_factory=set)
    rows: int = 0
    priority: float = 0.0
    started: float = 0.0
    seconds: float = 0.0


def plan(order: list[str], rows: dict[str, int]) -> list[Task]:
    """Return the tasks that load ``order`` into the staging schema, with dependencies and lock needs.

    The copy tasks carry no SQL here (the loader streams the Parquet files); everything after them
    is plain DDL: unique index, primary key on it, one index per foreign-key column, foreign keys.
    """
    loaded = set(order)
    tasks: list[Task] = []
    for t in order:
        spec = schema.table(t)
        n = rows.get(t, 0)
        tasks.append(Task(f"copy:{t}", "copy", t, [], [(t, "ACCESS EXCLUSIVE")], rows=n))
        tasks.append(
            Task(f"index:{t}_pkey", "index", t,
                 [f"CREATE UNIQUE INDEX {t}_pkey ON {STAGING}.{t} ({spec.primary_key})"],
                 [(t, "SHARE")], {f"copy:{t}"}, n)
        )  # fmt: skip
        tasks.append(
            Task(f"pkey:{t}", "pkey", t,
                 [f"ALTER TABLE {STAGING}.{t} ADD CONSTRAINT {t}_pkey PRIMARY KEY USING INDEX {t}_pkey"],
                 [(t, "ACCESS EXCLUSIVE")], {f"index:{t}_pkey"}, n)
        )  # fmt: skip
        for fk in spec.foreign_keys:
            if fk.column == spec.primary_key:
                continue  # the primary key's index already serves lookups on this column
            tasks.append(
                Task(f"index:{t}_{fk.column}_idx", "index", t,
                     [f"CREATE INDEX {t}_{fk.column}_idx ON {STAGING}.{t} ({fk.column})"],
                     [(t, "SHARE")], {f"copy:{t}"}, n)
            )  # fmt: skip
        for fk in spec.foreign_keys:
            if fk.parent not in loaded:
                continue  # added in the swap, against the parent already in raw
            name = f"{t}_{fk.column}_fkey"
            tasks.append(
                Task(f"fk_add:{name}", "fk_add", t,
                     [f"ALTER TABLE {STAGING}.{t} ADD CONSTRAINT {name} FOREIGN KEY ({fk.column}) "
                      f"REFERENCES {STAGING}.{fk.parent} ({fk.parent_column}) NOT VALID"],
                     [(t, "SHARE ROW EXCLUSIVE"), (fk.parent, "SHARE ROW EXCLUSIVE")],
                     {f"copy:{t}", f"pkey:{fk.parent}"}, n)
            )  # fmt: skip
            tasks.append(
                Task(f"fk_validate:{name}", "fk_validate", t,
                     [f"ALTER TABLE {STAGING}.{t} VALIDATE CONSTRAINT {name}"],
                     [(t, "SHARE UPDATE EXCLUSIVE"), (fk.parent, "ROW SHARE")], {f"fk_add:{name}"}, n)
            )  # fmt: skip
    # A table's foreign-key checks go before its index builds: a check locks the table against index
    # builds and against its other checks, so run last they would leave a tail on one connection,
    # whereas the index builds of one table run side by side until the end.
    checks: dict[str, set[str]] = {}
    for task in tasks:
        if task.kind == "fk_validate":
            checks.setdefault(task.table, set()).add(task.key)
    for task in tasks:
        if task.kind == "index":
            task.deps |= checks.get(task.table, set())
    children: dict[str, list[Task]] = {task.key: [] for task in tasks}
    for task in tasks:
        for dep in task.deps:
            children[dep].append(task)

    def bottom(task: Task) -> float:  # own cost plus the longest chain that waits on it
        if not task.priority:
            own = _COST[task.kind] * task.rows + 1.0
            task.priority = own + max((bottom(c) for c in children[task.key]), default=0.0)
        return task.priority

    for task in tasks:
        bottom(task)
    return tasks


class _Scheduler:
    """Hand out ready tasks, longest chain first, never two whose table locks conflict."""

    def __init__(self, tasks: list[Task]) -> None:
        self.waiting = sorted(tasks, key=lambda t: -t.priority)
        self.done: set[str] = set()
        self.held: list[tuple[str, str]] = []
        self.running = 0
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def _free(self, task: Task) -> bool:
        return not any(
            t == table and mode in _CONFLICTS[want] for table, want in task.locks for t, mode in self.held
        )

    def take(self) -> Task | None:
        with self.cond:
            while True:
                if self.error is not None or not self.waiting:
                    return None
                for task in self.waiting:
                    if task.deps <= self.done and self._free(task):
                        self.waiting.remove(task)
                        self.held.extend(task.locks)
                        self.running += 1
                        return task
                if not self.running:  # nothing runs and nothing can start: a bug in the plan
                    self.error = RuntimeError(f"load plan stuck at {[t.key for t in self.waiting][:5]}")
                    self.cond.notify_all()
                    return None
                self.cond.wait()

    def finish(self, task: Task, error: BaseException | None) -> None:
        with self.cond:
            for lock in task.locks:
                self.held.remove(lock)
            self.running -= 1
            if error is not None and self.error is None:
                self.error = error
            if error is None:
                self.done.add(task.key)
            self.cond.notify_all()


class PostgresWarehouse:
    """Load, query and check schema ``raw`` of a PostgreSQL database."""

    kind = "postgres"

    def __init__(self, dsn: str, connections: int = 2, maintenance_work_mem: str = "1GB") -> None:
        self.dsn = dsn
        self.maintenance_work_mem = maintenance_work_mem
        self.connections = max(1, int(connections))
        self.last_timings: dict[str, float] = {}
        self.last_tasks: list[Task] = []

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
        try:
            t0 = time.perf_counter()
            tasks = plan(order, rows)
            self._run(tasks, root)
            t1 = time.perf_counter()
            self._swap(order)
            self.last_tasks = tasks
            self.last_timings = {"build": t1 - t0, "swap": time.perf_counter() - t1}
            for kind in _COST:
                self.last_timings[f"{kind}_task_seconds"] = sum(t.seconds for t in tasks if t.kind == kind)
            copies = [t for t in tasks if t.kind == "copy"]
            self.last_timings["copies_done_at"] = max(t.started + t.seconds for t in copies) - t0
        except BaseException:
            with self.connect() as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {STAGING} CASCADE")
            raise
        return {t.table: t.seconds for t in tasks if t.kind == "copy"}

    def _run(self, tasks: list[Task], root: Path) -> None:
        """Run the plan on ``self.connections`` connections; on the first error cancel the rest and raise."""
        sched = _Scheduler(tasks)
        active: dict[int, object] = {}
        lock = threading.Lock()

        def worker() -> None:
            conn = None
            try:
                conn = self.connect(maintenance=True)
                with lock:
                    active[threading.get_ident()] = conn
                while (task := sched.take()) is not None:
                    task.started = time.perf_counter()
                    try:
                        if task.kind == "copy":
                            self._copy(conn, task.table, root)
                        else:
                            for sql in task.sql:
                                conn.execute(sql)
                    except BaseException as exc:
                        sched.finish(task, exc)
                        _cancel_others(active, lock, conn)
                        return
                    task.seconds = time.perf_counter() - task.started
                    sched.finish(task, None)
            except BaseException as exc:  # noqa: BLE001 (connecting failed)
                with sched.cond:
                    sched.error = sched.error or exc
                    sched.cond.notify_all()
            finally:
                with lock:
                    active.pop(threading.get_ident(), None)
                if conn is not None:
                    conn.close()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.connections)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if sched.error is not None:
            raise sched.error

    def _copy(self, conn, name: str, root: Path) -> None:  # noqa: ANN001
        """Create ``raw_loading.<name>`` and fill it in one transaction with a binary ``COPY ... FREEZE``."""
        import pyarrow.parquet as pq
        from pgpq import ArrowToPostgresBinaryEncoder
        from psycopg.copy import QueuedLibpqWriter

        target = arrow_schema(name)
        encoder = ArrowToPostgresBinaryEncoder(target)
        cols = ", ".join(target.names)
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {STAGING}.{name} ({_ddl(name)})")
            sql = f"COPY {STAGING}.{name} ({cols}) FROM STDIN (FORMAT binary, FREEZE)"
            # the queued writer sends on its own thread while this one decodes and encodes the next group
            with cur.copy(sql, writer=QueuedLibpqWriter(cur)) as cp:
                cp.write(encoder.write_header())
                for path in table_paths(root, name):
                    parquet = pq.ParquetFile(path)
                    for group in range(parquet.num_row_groups):
                        batch = conform_batch(parquet.read_row_group(group, columns=target.names), target)
                        for rb in batch.to_batches(max_chunksize=262_144):
                            cp.write(encoder.write_batch(rb))
                cp.write(encoder.finish())

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


def _cancel_others(active: dict, lock: threading.Lock, own) -> None:  # noqa: ANN001
    """Ask the server to cancel the statement every other connection of the load is running."""
    with lock:
        others = [c for c in active.values() if c is not own]
    for conn in others:
        try:
            conn.cancel_safe(timeout=5)
        except Exception:  # noqa: BLE001 (best effort: the statement may just have finished)
            pass
