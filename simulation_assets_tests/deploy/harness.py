"""A Postgres-backed Dagster deployment in subprocesses: one gRPC code server and one daemon.

It is laid out like deploy/docker-compose.yml without containers: deploy/dagster.yaml as the
instance, a workspace that points at the code server, the daemon as its own process. Runs are
subprocesses of the code server, so they outlive a daemon restart exactly as containers would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import yaml

from simulation_assets_tests.postgres_cluster import PostgresCluster, free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
T = TypeVar("T")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RUN_LIFECYCLE = {
    "PIPELINE_ENQUEUED",
    "PIPELINE_DEQUEUED",
    "PIPELINE_STARTING",
    "PIPELINE_START",
    "PIPELINE_SUCCESS",
    "PIPELINE_FAILURE",
    "PIPELINE_CANCELED",
}


def wait_for(check: Callable[[], T], timeout: float, what: str, every: float = 0.5) -> T:
    """Return the first truthy ``check()`` within ``timeout`` seconds; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def _is_failure_context(entry) -> bool:  # noqa: ANN001
    kind = entry.dagster_event.event_type_value if entry.dagster_event else None
    return kind in ("ENGINE_EVENT", "PIPELINE_FAILURE", "RUN_FAILURE")


def _event_text(entry) -> str:  # noqa: ANN001
    """Return an event's message and, when it carries one, its error's message (each cut to 300 chars)."""
    error = getattr(entry.dagster_event.event_specific_data, "error", None)
    text = (entry.message or "")[:300]
    return f"{text} | {error.message.strip()[:300]}" if error is not None else text


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """Return the largest number of [start, end) intervals that hold at one instant."""
    edges = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    current = peak = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


class Deployment:
    """Postgres storage + code server + daemon, configured by the files in deploy/."""

    def __init__(
        self, root: Path, cluster: PostgresCluster, module: str, location: str, extra_env: dict[str, str]
    ):
        self.root = root
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True)
        self.module, self.location = module, location
        self.db = f"dagster_{os.getpid()}_{int(time.time())}"
        cluster.create_database(self.db)
        self.port = free_port()
        self.env = {
            **os.environ,
            **extra_env,
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_POSTGRES_HOST": "127.0.0.1",
            "DAGSTER_POSTGRES_PORT": str(cluster.port),
            "DAGSTER_POSTGRES_DB": self.db,
            "DAGSTER_POSTGRES_USER": cluster.user,
            "DAGSTER_POSTGRES_PASSWORD": "unused-with-trust-auth",
            "PYTHONWARNINGS": "ignore",
            # Logs reach the file as written (a killed daemon loses nothing) and a SIGABRT dumps
            # every thread's stack into them (see stop_daemon).
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",
        }
        shutil.copy(DEPLOY / "dagster.yaml", self.home / "dagster.yaml")
        self.workspace_file = self.home / "workspace.yaml"
        self.workspace_file.write_text(
            yaml.safe_dump(
                {
                    "load_from": [
                        {"grpc_server": {"host": "127.0.0.1", "port": self.port, "location_name": location}}
                    ]
                }
            )
        )
        self.code_server: subprocess.Popen | None = None
        self.daemon: subprocess.Popen | None = None
        self.daemon_starts = 0
        self.notes: dict = {}
        self._saved_env: dict[str, str | None] = {}
        self._instance = None
        self._workspace = None

    # -- processes ------------------------------------------------------------------------------
    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        # the child keeps its own copy of the descriptor; ours is closed at once
        with open(self.root / log_name, "ab") as log:
            return subprocess.Popen(args, env=self.env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT)

    def start_code_server(self, timeout: float = 180) -> None:
        """Start ``dagster api grpc`` for the module and wait until it answers a ping."""
        from dagster._grpc.client import DagsterGrpcClient

        self.code_server = self._spawn(
            [
                str(BIN / "dagster"),
                "api",
                "grpc",
                "-m",
                self.module,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--location-name",
                self.location,
            ],
            "code_server.log",
        )
        client = DagsterGrpcClient(port=self.port, host="127.0.0.1")

        def answers() -> bool:
            if self.code_server.poll() is not None:
                raise AssertionError(f"code server exited: {self.log('code_server.log')[-2000:]}")
            try:
                return client.ping("ok").get("echo") == "ok"
            except Exception:  # noqa: BLE001 - not up yet
                return False

        wait_for(answers, timeout, "the code server to answer")

    def start_daemon(self) -> None:
        """Start ``dagster-daemon run`` on the workspace (all daemons: scheduler, sensors, queue, backfills)."""
        assert self.daemon is None or self.daemon.poll() is not None, "daemon already running"
        self.daemon_starts += 1
        self.daemon = self._spawn(
            [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace_file)],
            f"daemon_{self.daemon_starts}.log",
        )

    def stop_daemon(
        self, crash: bool = False, timeout: float = 40, while_stopping: Callable[[], None] | None = None
    ) -> int:
        """Stop the daemon (SIGKILL when ``crash``, else SIGTERM) and return its exit code;
        ``while_stopping`` runs between the signal and the wait for the exit."""
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        if while_stopping is not None:
            while_stopping()
        try:
            return self.daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            self.daemon.send_signal(signal.SIGABRT)  # faulthandler writes where each thread is stuck
            self.daemon.wait(30)
            log = f"daemon_{self.daemon_starts}.log"
            raise AssertionError(
                f"the daemon did not exit {timeout:.0f} s after SIGTERM; its threads, from {self.root / log}:\n"
                + _ANSI.sub("", self.log(log))[-6000:]
            ) from None

    def wait_for_daemon_log(self, text: str, timeout: float = 120) -> None:
        """Wait until the running daemon's log holds ``text`` (a line Dagster logs at a known point)."""
        log = f"daemon_{self.daemon_starts}.log"
        wait_for(lambda: text in self.log(log), timeout, f"{text!r} in {log}", every=0.05)

    def log(self, name: str) -> str:
        path = self.root / name
        return path.read_text(errors="replace") if path.exists() else ""

    def daemon_problems(self) -> list[str]:
        """Return the WARNING/ERROR lines (with their tracebacks' last line) of every daemon log."""
        problems = []
        for start in range(1, self.daemon_starts + 1):
            lines = _ANSI.sub("", self.log(f"daemon_{start}.log")).splitlines()
            for i, line in enumerate(lines):
                if " - WARNING - " in line or " - ERROR - " in line:
                    tail = next(
                        (t for t in lines[i + 1 : i + 40] if re.match(r"^[\w.]+(Error|Exception)\b", t)), ""
                    )
                    problems.append(f"daemon_{start}: {line[26:]}" + (f" | {tail}" if tail else ""))
        return problems

    # -- evidence: what the runs were, kept with the test's temporary folder ---------------------
    def run_evidence(self, **filters) -> list[dict]:  # noqa: ANN003
        """Return one record per run (oldest first): partition, status, retry lineage, failure messages."""
        import dagster as dg

        instance = self.instance()
        records = instance.get_run_records(filters=dg.RunsFilter(**filters) if filters else None)
        rows = []
        for record in reversed(records):
            run, tags = record.dagster_run, record.dagster_run.tags
            row = {
                "run_id": run.run_id[:8],
                "job": run.job_name,
                "partition": tags.get("dagster/partition"),
                "status": run.status.value,
                "backfill": tags.get("dagster/backfill"),
                "retry_number": tags.get("dagster/retry_number"),
                "parent_run_id": (run.parent_run_id or "")[:8] or None,
                "root_run_id": (run.root_run_id or "")[:8] or None,
                "failure_reason": tags.get("dagster/failure_reason"),
                "will_retry": tags.get("dagster/will_retry"),
                "created": record.create_timestamp.timestamp(),
                "start": record.start_time,
                "end": record.end_time,
            }
            logs = instance.all_logs(run.run_id)
            row["events"] = [
                f"{entry.timestamp - row['created']:+.1f}s {entry.dagster_event.event_type_value}"
                for entry in logs
                if entry.dagster_event and entry.dagster_event.event_type_value in _RUN_LIFECYCLE
            ]
            row["launch_started_at"] = next(
                (
                    e.timestamp
                    for e in logs
                    if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_STARTING"
                ),
                None,
            )
            # The default launcher's launch returns once the run's process has started.
            row["process_started_at"] = next(
                (e.timestamp for e in logs if (e.message or "").startswith("Started process for run")), None
            )
            if run.status == dg.DagsterRunStatus.FAILURE:
                row["failure"] = [_event_text(e) for e in logs if _is_failure_context(e)][-4:]
            rows.append(row)
        return rows

    def runs_table(self, **filters) -> str:  # noqa: ANN003
        """Return the runs (see run_evidence) one per line, for an assertion message."""
        lines = [f"evidence kept in {self.root / 'evidence.json'}; runs, oldest first:"]
        for r in self.run_evidence(**filters):
            lines.append(
                f"  {r['run_id']} {r['job']} {r['partition']} {r['status']} retry={r['retry_number']}"
                f" parent={r['parent_run_id']} {' '.join(r['events'])} {r.get('failure', '')}"
            )
        return "\n".join(lines)

    def write_evidence(self) -> Path:
        """Write every run's record and the daemons' warnings/errors to evidence.json; return its path."""
        path = self.root / "evidence.json"
        evidence = {"notes": {k: sorted(v) if isinstance(v, set) else v for k, v in self.notes.items()}}
        try:
            evidence["runs"] = self.run_evidence()
        except Exception as exc:  # noqa: BLE001 - keep what can be kept
            evidence["runs_error"] = repr(exc)
        evidence["daemon_problems"] = self.daemon_problems()
        path.write_text(json.dumps(evidence, indent=1, default=str))
        return path

    # -- the same instance and workspace, seen from the test process -----------------------------
    def instance(self):  # noqa: ANN201
        import dagster as dg

        if self._instance is None:
            for key in (
                "DAGSTER_POSTGRES_HOST",
                "DAGSTER_POSTGRES_PORT",
                "DAGSTER_POSTGRES_DB",
                "DAGSTER_POSTGRES_USER",
                "DAGSTER_POSTGRES_PASSWORD",
            ):
                self._saved_env.setdefault(key, os.environ.get(key))
                os.environ[key] = self.env[key]
            self._instance = dg.DagsterInstance.from_config(str(self.home))
        return self._instance

    def workspace(self):  # noqa: ANN201
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import WorkspaceFileTarget

        if self._workspace is None:
            self._workspace = WorkspaceProcessContext(
                self.instance(), WorkspaceFileTarget(paths=[str(self.workspace_file)])
            )
        return self._workspace

    def repository(self):  # noqa: ANN201
        """Return the remote repository the code server serves."""
        location = self.workspace().create_request_context().get_code_location(self.location)
        return next(iter(location.get_repositories().values()))

    def close(self) -> None:
        if self._instance is not None:
            self.write_evidence()
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.kill()  # its state is in Postgres; nothing to flush
            self.daemon.wait(10)
        for proc in (self.code_server,):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if self._workspace is not None:
            self._workspace.__exit__(None, None, None)
        if self._instance is not None:
            self._instance.dispose()
        for key, value in self._saved_env.items():  # the instance read them from this process
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
