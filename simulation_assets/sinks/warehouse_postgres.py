"""The real warehouse: PostgreSQL, schema ``raw``, bulk-loaded with binary ``COPY`` over several connections.

A load never touches ``raw`` until everything is in. Each table is created in a
staging schema (``raw_loading``) and filled by one binary ``COPY ... FREEZE`` in
the same transaction (rows land frozen, in primary-key order, so the later
index builds and foreign-key scans never rewrite a page). The work after the
copies is a small dependency graph run by several connections at once:

* a table's unique (primary-key) index and its foreign-key indexes are built as
  soon as its own ``COPY`` (and its foreign-key checks) are done, while other
  tables are still copying. A foreign-key column of a big table whose rows
  arrive in key order (the generator lays children out parent by parent) gets
  a BRIN index: a lookup reads a few block ranges, and the build is one pass
  without a sort, about a third of a B-tree's cost; every other column gets a
  B-tree (``fk_index="btree"`` gives B-trees everywhere);
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

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.integrity import Check, CheckResult, evaluate
from simulation_assets.sinks.warehouse_parquet import table_paths

RAW = "raw"
STAGING = "raw_loading"
# How foreign-key columns are indexed: "btree" always, or "auto": BRIN for a column whose rows arrive
# in key order (children laid out parent by parent), B-tree for the others.
FK_INDEX_METHODS = ("auto", "btree")
BRIN_PAGES = 16  # block range of a BRIN index: ~1,400 tap events
BRIN_MIN_ROWS = 1_000_000  # smaller tables keep B-trees: cheap to build, and the best for lookups
MAX_RUNS = 64  # a column that arrives in at most this many ascending runs counts as stored in key order


def _ddl(table: str) -> str:
    spec = schema.table(table)
    return ", ".join(
        f"{c.name} {schema.TYPES[c.type][2]}{'' if c.nullable else ' NOT NULL'}" for c in spec.columns
    )


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
    column: str = ""  # a foreign-key index: its column (the index method is chosen after the copy)
    priority: float = 0.0
    started: float = 0.0
    seconds: float = 0.0


def plan(order: list[str], rows: dict[str, int], kept: frozenset[str] = frozenset()) -> list[Task]:
    """Return the tasks that load ``order`` into the staging schema, with dependencies and lock needs.

    The copy tasks carry no SQL here (the loader streams the Parquet files); everything after them
    is plain DDL: unique index, primary key on it, one index per foreign-key column, foreign keys
    (to the staged parent, or to the one in ``raw`` for a parent in ``kept``, a table not re-loaded).
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
                Task(f"index:{t}_{fk.column}_idx", "index", t, [], [(t, "SHARE")], {f"copy:{t}"}, n, fk.column)
            )  # fmt: skip
        for fk in spec.foreign_keys:
            if fk.parent in loaded:
                parent, lock_key, deps = (
                    f"{STAGING}.{fk.parent}",
                    fk.parent,
                    {f"copy:{t}", f"pkey:{fk.parent}"},
                )
            elif fk.parent in kept:
                parent, lock_key, deps = f"{RAW}.{fk.parent}", f"{RAW}.{fk.parent}", {f"copy:{t}"}
            else:
                continue  # the parent is in neither: no foreign key until it is loaded
            name = f"{t}_{fk.column}_fkey"
            tasks.append(
                Task(f"fk_add:{name}", "fk_add", t,
                     [f"ALTER TABLE {STAGING}.{t} ADD CONSTRAINT {name} FOREIGN KEY ({fk.column}) "
                      f"REFERENCES {parent} ({fk.parent_column}) NOT VALID"],
                     [(t, "SHARE ROW EXCLUSIVE"), (lock_key, "SHARE ROW EXCLUSIVE")], deps, n)
            )  # fmt: skip
            tasks.append(
                Task(f"fk_validate:{name}", "fk_validate", t,
                     [f"ALTER TABLE {STAGING}.{t} VALIDATE CONSTRAINT {name}"],
                     [(t, "SHARE UPDATE EXCLUSIVE"), (lock_key, "ROW SHARE")], {f"fk_add:{name}"}, n)
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
            in_raw = {r[0] for r in conn.execute(_RAW_TABLES, (RAW,)).fetchall()}
        try:
            t0 = time.perf_counter()
            tasks = plan(order, rows, frozenset(in_raw - set(order)))
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
        ordered: dict[str, set[str]] = {}  # table -> its foreign-key columns stored in key order
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
                            ordered[task.table] = self._copy(conn, task.table, root)
                        elif task.column:
                            conn.execute(self._fk_index_sql(task, ordered.get(task.table, set())))
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

    def _fk_index_sql(self, task: Task, ordered: set[str]) -> str:
        """Return the ``CREATE INDEX`` of a foreign-key column: BRIN when its rows are stored in key order
        (a few ascending runs, e.g. one per chunk file) and ``fk_index`` is ``auto``, a B-tree otherwise."""
        t, col = task.table, task.column
        if self.fk_index == "auto" and col in ordered and task.rows >= self.brin_min_rows:
            # every block range holds a narrow band of keys, so a lookup reads a few ranges; no sort to build
            return f"CREATE INDEX {t}_{col}_idx ON {STAGING}.{t} USING brin ({col}) WITH (pages_per_range = {BRIN_PAGES})"
        return f"CREATE INDEX {t}_{col}_idx ON {STAGING}.{t} ({col})"

    def _copy(self, conn, name: str, root: Path) -> set[str]:  # noqa: ANN001
        """Create ``raw_loading.<name>`` and fill it in one transaction with a binary ``COPY ... FREEZE``;
        return the foreign-key columns whose values came in a few ascending runs (no nulls)."""
        import pyarrow.parquet as pq
        from pgpq import ArrowToPostgresBinaryEncoder
        from psycopg.copy import QueuedLibpqWriter

        target = arrow_schema(name)
        encoder = ArrowToPostgresBinaryEncoder(target)
        cols = ", ".join(target.names)
        order = _OrderTracker([fk.column for fk in schema.table(name).foreign_keys])
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {STAGING}.{name} ({_ddl(name)})")
            sql = f"COPY {STAGING}.{name} ({cols}) FROM STDIN (FORMAT binary, FREEZE)"
            # the queued writer sends on its own thread while this one decodes and encodes the next group
            with cur.copy(sql, writer=QueuedLibpqWriter(cur)) as cp:
                cp.write(encoder.write_header())
                for path in table_paths(root, name):
                    parquet = pq.ParquetFile(path)
                    for group in range(parquet.num_row_groups):
                        # one thread per read: pyarrow's reader threads cost four times the CPU for no gain
                        # here, and CPU is what the server's side of the load is short of
                        table = parquet.read_row_group(group, columns=target.names, use_threads=False)
                        batch = conform_batch(table, target)
                        order.update(batch)
                        for rb in batch.to_batches(max_chunksize=262_144):
                            cp.write(encoder.write_batch(rb))
                cp.write(encoder.finish())
        return order.clustered()

    def _swap(self, order: list[str]) -> None:
        """Move the staging tables into ``raw`` in one transaction, with the foreign keys between re-loaded
        tables and the ones that stay.

        Views on the replaced tables (dbt's staging views, a user's own) would go with the old tables,
        so their definitions are read first and they are created again on the new tables; one that no
        longer fits the new columns is left out (named in ``last_views``) rather than failing the load.
        """
        loaded = set(order)
        with self.connect(autocommit=False) as conn:
            # every name in a saved definition schema-qualified, so it reads the same when run again
            conn.execute("SET LOCAL search_path = ''")
            existing = {r[0] for r in conn.execute(_RAW_TABLES, (RAW,)).fetchall()}
            replaced = [f"{RAW}.{t}" for t in order if t in existing]
            views = conn.execute(_DEPENDENT_VIEWS, (replaced,)).fetchall() if replaced else []
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW}")
            for t in order:
                conn.execute(f"DROP TABLE IF EXISTS {RAW}.{t} CASCADE")
            for t in order:
                conn.execute(f"ALTER TABLE {STAGING}.{t} SET SCHEMA {RAW}")
            # the foreign keys of the tables that stay to the re-loaded ones (the DROP ... CASCADE took
            # them), checked here against the new rows; those the other way were added while staging
            for t in [t for t in schema.TABLE_NAMES if t in existing and t not in loaded]:
                for fk in schema.table(t).foreign_keys:
                    if fk.parent in loaded:
                        conn.execute(
                            f"ALTER TABLE {RAW}.{t} ADD CONSTRAINT {t}_{fk.column}_fkey FOREIGN KEY ({fk.column}) "
                            f"REFERENCES {RAW}.{fk.parent} ({fk.parent_column})"
                        )
            self.last_views = _recreate_views(conn, views)
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


_RAW_TABLES = (
    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'"
)

# Views (and materialized views) that read the given tables, directly or through other views, each with
# the depth of its longest path to a table, so creating them by increasing depth respects their order.
_DEPENDENT_VIEWS = """
WITH RECURSIVE dep(oid, depth) AS (
    SELECT r.ev_class, 1
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid = ANY(%s::regclass[]) AND r.ev_class <> d.refobjid
  UNION ALL
    SELECT r.ev_class, dep.depth + 1
    FROM dep
    JOIN pg_depend d ON d.refobjid = dep.oid AND d.refclassid = 'pg_class'::regclass
                    AND d.classid = 'pg_rewrite'::regclass
    JOIN pg_rewrite r ON r.oid = d.objid
    WHERE r.ev_class <> dep.oid AND dep.depth < 100
)
SELECT n.nspname, c.relname, c.relkind, pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class'),
       max(dep.depth) AS depth
FROM dep JOIN pg_class c ON c.oid = dep.oid JOIN pg_namespace n ON n.oid = c.relnamespace
GROUP BY c.oid, n.nspname, c.relname, c.relkind
ORDER BY depth, n.nspname, c.relname
"""


def _recreate_views(conn, views: list[tuple]) -> dict[str, list[str]]:  # noqa: ANN001
    """Create ``views`` (rows of ``_DEPENDENT_VIEWS``) again, each behind a savepoint; return which came back."""
    from psycopg import sql

    done: dict[str, list[str]] = {"recreated": [], "dropped": []}
    for nsp, name, kind, definition, comment, _depth in views:
        ident = sql.Identifier(nsp, name)
        what = sql.SQL("MATERIALIZED VIEW" if kind == "m" else "VIEW")
        label = f"{nsp}.{name}"
        try:
            with conn.transaction():  # a savepoint: a view that no longer fits is skipped, not fatal
                conn.execute(
                    sql.SQL("CREATE {} {} AS ").format(what, ident) + sql.SQL(definition.rstrip("; \n"))
                )
                if comment is not None:
                    conn.execute(sql.SQL("COMMENT ON {} {} IS {}").format(what, ident, sql.Literal(comment)))
            done["recreated"].append(label)
        except Exception:  # noqa: BLE001 (the definition refers to something the new tables lack)
            done["dropped"].append(label)
    return done


class _OrderTracker:
    """Count, for each of ``columns``, the ascending runs its values arrive in over the batches of a copy."""

    def __init__(self, columns: list[str]) -> None:
        self.runs = dict.fromkeys(columns, 1)
        self.last: dict[str, object] = {}

    def update(self, batch) -> None:  # noqa: ANN001 (pyarrow Table)
        import pyarrow.compute as pc

        for col, runs in self.runs.items():
            if runs > MAX_RUNS or batch.num_rows == 0:
                continue
            values = batch.column(col)
            if values.null_count:
                self.runs[col] = MAX_RUNS + 1
                continue
            n = len(values)
            if col in self.last and self.last[col] > values[0].as_py():
                runs += 1
            if n > 1:
                runs += pc.sum(pc.less(values.slice(1), values.slice(0, n - 1))).as_py() or 0
            self.runs[col] = runs
            self.last[col] = values[-1].as_py()

    def clustered(self) -> set[str]:
        return {col for col, runs in self.runs.items() if runs <= MAX_RUNS}
