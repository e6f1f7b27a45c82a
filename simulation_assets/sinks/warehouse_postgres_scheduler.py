"""Runs a load plan on several connections: longest chain first, never two tasks whose table locks conflict.

``run_plan`` starts one thread per connection; each takes the next ready task (all its
dependencies done, no lock conflict with what runs), runs it and reports back. The first error
cancels the statements the other connections are running and is raised once every thread stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from simulation_assets.sinks.warehouse_postgres_plan import Task, locks_conflict


class Scheduler:
    """Hand out ready tasks, longest chain first, never two whose table locks conflict."""

    def __init__(self, tasks: list[Task]) -> None:
        self.waiting = sorted(tasks, key=lambda t: -t.priority)
        self.done: set[str] = set()
        self.held: list[tuple[str, str]] = []
        self.running = 0
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def take(self) -> Task | None:
        """Return the next task to run (waiting until one is ready), or None when all is done or failed."""
        with self.cond:
            while True:
                if self.error is not None or not self.waiting:
                    return None
                for task in self.waiting:
                    if task.deps <= self.done and not locks_conflict(self.held, task.locks):
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
        """Release ``task``'s locks and record it done, or record the first error."""
        with self.cond:
            for lock in task.locks:
                self.held.remove(lock)
            self.running -= 1
            if error is not None and self.error is None:
                self.error = error
            if error is None:
                self.done.add(task.key)
            self.cond.notify_all()

    def fail(self, error: BaseException) -> None:
        """Record an error that happened outside any task (e.g. connecting)."""
        with self.cond:
            self.error = self.error or error
            self.cond.notify_all()


def run_plan(
    tasks: list[Task],
    connections: int,
    connect: Callable[[], Any],
    execute: Callable[[Any, Task], None],
) -> None:
    """Run ``tasks`` on ``connections`` connections from ``connect()``, each task by ``execute(conn, task)``;
    on the first error cancel the others' statements and raise it. Sets each task's ``started`` and ``seconds``."""
    scheduler = Scheduler(tasks)
    active: dict[int, Any] = {}
    lock = threading.Lock()

    def worker() -> None:
        conn = None
        try:
            conn = connect()
            with lock:
                active[threading.get_ident()] = conn
            while (task := scheduler.take()) is not None:
                task.started = time.perf_counter()
                try:
                    execute(conn, task)
                except BaseException as exc:
                    scheduler.finish(task, exc)
                    cancel_others(active, lock, conn)
                    return
                task.seconds = time.perf_counter() - task.started
                scheduler.finish(task, None)
        except BaseException as exc:  # noqa: BLE001 (connecting failed)
            scheduler.fail(exc)
        finally:
            with lock:
                active.pop(threading.get_ident(), None)
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if scheduler.error is not None:
        raise scheduler.error


def cancel_others(active: dict[int, Any], lock: threading.Lock, own: Any) -> None:
    """Ask the server to cancel the statement every other connection of the load is running."""
    with lock:
        others = [c for c in active.values() if c is not own]
    for conn in others:
        try:
            conn.cancel_safe(timeout=5)
        except Exception:  # noqa: BLE001 (best effort: the statement may just have finished)
            pass
