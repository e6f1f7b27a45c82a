"""The PostgreSQL load plan and its scheduler, without a server: dependencies, locks, order, failures."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.config import row_counts
from simulation_assets.sinks.warehouse_postgres_copy import MAX_RUNS, KeyOrderTracker
from simulation_assets.sinks.warehouse_postgres_plan import Task, fk_index_sql, locks_conflict, plan
from simulation_assets.sinks.warehouse_postgres_scheduler import run_plan


class _Connection:
    def close(self) -> None:
        pass


def _by_key(tasks: list[Task]) -> dict[str, Task]:
    return {t.key: t for t in tasks}


def test_a_foreign_key_waits_for_the_childs_copy_and_the_parents_primary_key() -> None:
    tasks = _by_key(plan(["accounts", "locations"], {"accounts": 100, "locations": 150}))
    assert set(tasks) == {
        "copy:accounts", "index:accounts_pkey", "pkey:accounts",
        "copy:locations", "index:locations_pkey", "pkey:locations", "index:locations_account_id_idx",
        "fk_add:locations_account_id_fkey", "fk_validate:locations_account_id_fkey",
    }  # fmt: skip
    add = tasks["fk_add:locations_account_id_fkey"]
    assert add.deps == {"copy:locations", "pkey:accounts"}
    assert "REFERENCES raw_loading.accounts (account_id) NOT VALID" in add.sql[0]
    assert tasks["fk_validate:locations_account_id_fkey"].deps == {"fk_add:locations_account_id_fkey"}
    # a table's index builds wait for its foreign-key checks (which would block them)
    assert "fk_validate:locations_account_id_fkey" in tasks["index:locations_account_id_idx"].deps
    assert tasks["pkey:accounts"].deps == {"index:accounts_pkey"}


def test_a_partial_reload_points_foreign_keys_at_the_tables_that_stay_and_skips_absent_parents() -> None:
    tasks = _by_key(plan(["tap_events"], {"tap_events": 10}, kept=frozenset({"devices", "accounts"})))
    device_fk = tasks["fk_add:tap_events_device_id_fkey"]
    assert "REFERENCES raw.devices (device_id)" in device_fk.sql[0]
    assert device_fk.deps == {"copy:tap_events"}
    assert ("raw.devices", "SHARE ROW EXCLUSIVE") in device_fk.locks
    assert "fk_add:tap_events_location_id_fkey" not in tasks  # locations neither loaded nor kept


def test_the_longest_chain_starts_first_in_a_full_load() -> None:
    tasks = plan(list(schema.TABLE_NAMES), row_counts("qa"))
    first = max(tasks, key=lambda t: t.priority)
    assert first.key == "copy:tap_events"
    # every task's priority exceeds that of each task waiting on it
    by_key = _by_key(tasks)
    for task in tasks:
        for dep in task.deps:
            assert by_key[dep].priority > task.priority, (dep, task.key)


def test_lock_conflicts_follow_postgresql_on_the_same_table_only() -> None:
    assert not locks_conflict([("t", "SHARE")], [("t", "SHARE")])  # two index builds side by side
    assert locks_conflict([("t", "SHARE")], [("t", "ACCESS EXCLUSIVE")])
    assert locks_conflict([("t", "SHARE UPDATE EXCLUSIVE")], [("t", "SHARE")])  # validate vs index build
    assert not locks_conflict([("t", "ACCESS EXCLUSIVE")], [("u", "ACCESS EXCLUSIVE")])
    assert not locks_conflict([("raw.t", "ROW SHARE")], [("raw.t", "SHARE ROW EXCLUSIVE")])


def test_brin_only_for_big_columns_stored_in_key_order_when_auto() -> None:
    task = Task(
        "index:tap_events_device_id_idx", "index", "tap_events", [], [], rows=2_000_000, column="device_id"
    )
    assert "USING brin (device_id)" in fk_index_sql(task, {"device_id"}, "auto")
    assert "brin" not in fk_index_sql(task, set(), "auto")  # not in key order
    assert "brin" not in fk_index_sql(task, {"device_id"}, "btree")
    assert "brin" not in fk_index_sql(task, {"device_id"}, "auto", brin_min_rows=3_000_000)


def test_key_order_tracker_counts_ascending_runs_across_batches() -> None:
    tracker = KeyOrderTracker(["a", "b", "c"])
    tracker.update(pa.table({"a": [1, 2, 3], "b": [3, 2, 1], "c": [1, None, 2]}))
    tracker.update(pa.table({"a": [3, 4], "b": [1, 0], "c": [2, 3]}))
    assert tracker.runs["a"] == 1 and tracker.runs["b"] == 4
    assert tracker.clustered() == {"a", "b"}  # c has a null: never treated as ordered
    shuffled = KeyOrderTracker(["a"])
    shuffled.update(pa.table({"a": list(range(2 * MAX_RUNS + 2, 0, -1))}))
    assert shuffled.clustered() == set()


def test_the_scheduler_runs_every_task_after_its_deps_and_never_two_conflicting_ones() -> None:
    tasks = plan(list(schema.TABLE_NAMES), row_counts("dev"))
    done: set[str] = set()
    running: list[Task] = []
    violations: list[str] = []
    guard = threading.Lock()

    def execute(conn: _Connection, task: Task) -> None:
        with guard:
            if not task.deps <= done:
                violations.append(f"{task.key} before {task.deps - done}")
            held = [lock for other in running for lock in other.locks]
            if locks_conflict(held, task.locks):
                violations.append(f"{task.key} conflicts with {[t.key for t in running]}")
            running.append(task)
        time.sleep(0.0005)
        with guard:
            running.remove(task)
            done.add(task.key)

    run_plan(tasks, 3, _Connection, execute)
    assert violations == []
    assert done == {t.key for t in tasks}


def test_the_first_failure_stops_the_load_and_is_raised() -> None:
    tasks = plan(["accounts", "locations"], {"accounts": 1, "locations": 1})
    ran: list[str] = []

    def execute(conn: _Connection, task: Task) -> None:
        if task.key == "pkey:accounts":
            raise ValueError("duplicate key value violates unique constraint accounts_pkey")
        ran.append(task.key)

    with pytest.raises(ValueError, match="accounts_pkey"):
        run_plan(tasks, 2, _Connection, execute)
    assert "fk_add:locations_account_id_fkey" not in ran  # it needed the failed primary key


def test_a_plan_that_cannot_progress_is_reported_not_hung() -> None:
    stuck = [Task("index:x", "index", "x", [], [("x", "SHARE")], {"copy:missing"})]
    with pytest.raises(RuntimeError, match="load plan stuck at"):
        run_plan(stuck, 2, _Connection, lambda conn, task: None)
