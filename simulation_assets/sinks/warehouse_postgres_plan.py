"""The plan of a PostgreSQL warehouse load: which statements run, after what, holding which table locks.

Pure: no connection, no I/O. ``plan`` turns the tables to load into ``Task``s (copy, unique index,
primary key, foreign-key indexes, foreign keys added ``NOT VALID`` then validated) with their
dependencies, the table locks each takes and a priority (its own cost plus the longest chain that
waits on it), so the scheduler starts the longest chains first and never runs two statements whose
locks conflict. ``fk_index_sql`` chooses each foreign-key column's index once its copy has shown
whether the column arrives in key order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulation_assets.core.warehouse import schema

RAW = "raw"
STAGING = "raw_loading"
# How foreign-key columns are indexed: "btree" always, or "auto": BRIN for a column whose rows arrive
# in key order (children laid out parent by parent), B-tree for the others.
FK_INDEX_METHODS = ("auto", "btree")
BRIN_PAGES = 16  # block range of a BRIN index: ~1,400 tap events
BRIN_MIN_ROWS = 1_000_000  # smaller tables keep B-trees: cheap to build, and the best for lookups

# PostgreSQL's table-lock conflicts, for the modes the load takes
# (https://www.postgresql.org/docs/15/explicit-locking.html).
LOCK_CONFLICTS = {
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
TASK_COST_PER_ROW = {"copy": 1.0, "index": 0.4, "pkey": 0.0, "fk_add": 0.0, "fk_validate": 0.12}


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


def column_ddl(table: str) -> str:
    """Return the PostgreSQL column definitions of ``table`` (types and NOT NULL)."""
    spec = schema.table(table)
    return ", ".join(
        f"{c.name} {schema.TYPES[c.type][2]}{'' if c.nullable else ' NOT NULL'}" for c in spec.columns
    )


def locks_conflict(held: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> bool:
    """Return True when a lock in ``wanted`` conflicts with one in ``held`` on the same table."""
    return any(
        table == held_table and mode in LOCK_CONFLICTS[want]
        for table, want in wanted
        for held_table, mode in held
    )


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
    _set_priorities(tasks)
    return tasks


def _set_priorities(tasks: list[Task]) -> None:
    """Give each task its own cost plus the cost of the longest chain of tasks that waits on it."""
    children: dict[str, list[Task]] = {task.key: [] for task in tasks}
    for task in tasks:
        for dep in task.deps:
            children[dep].append(task)

    def bottom(task: Task) -> float:
        if not task.priority:
            own = TASK_COST_PER_ROW[task.kind] * task.rows + 1.0
            task.priority = own + max((bottom(c) for c in children[task.key]), default=0.0)
        return task.priority

    for task in tasks:
        bottom(task)


def fk_index_sql(task: Task, ordered: set[str], fk_index: str, brin_min_rows: int = BRIN_MIN_ROWS) -> str:
    """Return the ``CREATE INDEX`` of a foreign-key column: BRIN when its rows are stored in key order
    (a few ascending runs, e.g. one per chunk file), the table is big enough and ``fk_index`` is
    ``auto``; a B-tree otherwise."""
    t, col = task.table, task.column
    if fk_index == "auto" and col in ordered and task.rows >= brin_min_rows:
        # every block range holds a narrow band of keys, so a lookup reads a few ranges; no sort to build
        return f"CREATE INDEX {t}_{col}_idx ON {STAGING}.{t} USING brin ({col}) WITH (pages_per_range = {BRIN_PAGES})"
    return f"CREATE INDEX {t}_{col}_idx ON {STAGING}.{t} ({col})"
