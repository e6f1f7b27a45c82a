"""A Postgres-backed Dagster deployment in subprocesses: one gRPC code server and one daemon.

It is laid out like deploy/docker-compose.yml without containers: deploy/dagster.yaml as the
instance, a workspace that points at the code server, the daemon as its own process. Runs are
subprocesses of the code server, so they outlive a daemon restart exactly as containers would.
"""

from __future__ import annotations

import os
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
        log = open(self.root / log_name, "ab")  # noqa: SIM115 - closed with the process
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

    def stop_daemon(self, crash: bool = False, timeout: float = 40) -> int:
        """Stop the daemon (SIGKILL when ``crash``, else SIGTERM) and return its exit code."""
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        return self.daemon.wait(timeout)

    def log(self, name: str) -> str:
        path = self.root / name
        return path.read_text(errors="replace") if path.exists() else ""

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
