"""The local instance's compute logs: Dagster's files and reader, mirrored by a thread instead of processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from simulation_assets.sinks.local_compute_logs import ThreadedComputeLogManager
from simulation_assets.sinks.local_instance import _stock_logs_yaml, ensure_local_instance, instance_yaml

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh process whose stdout/stderr are pipes the test reads (pytest's own capture has no
# file descriptors to redirect). Reports what the run's captured logs hold, read as the UI reads them.
_NOISY_RUN = r"""
import json, os, subprocess, sys
import dagster as dg
from dagster._core.storage.compute_log_manager import ComputeIOType
from simulation_assets.commands.common import dagster_instance

STARTED = []
def audit(event, args):
    if event == "subprocess.Popen":
        STARTED.append(os.path.basename(str(args[0])))
sys.addaudithook(audit)

@dg.asset
def noisy() -> None:
    print("python print to stdout")
    print("python print to stderr", file=sys.stderr)
    sys.stdout.flush()
    os.write(1, b"bytes on file descriptor 1\n")
    subprocess.run(["echo", "a child process"], check=True)

instance = dagster_instance()
result = dg.materialize([noisy], instance=instance)
manager = instance.compute_log_manager
keys = [  # as the UI finds a run's logs: the file key of its LOGS_CAPTURED event
    manager.build_log_key_for_run(result.run_id, e.event_specific_data.file_key)
    for e in result.all_events
    if e.event_type_value == "LOGS_CAPTURED"
]
logs = {
    kind: manager.get_log_data(keys[0]).__getattribute__(kind).decode()
    for kind in ("stdout", "stderr")
}
with open(os.environ["REPORT"], "w") as report:
    json.dump({
        "manager": type(manager).__name__,
        "keys": len(keys),
        "complete": manager.is_capture_complete(keys[0]),
        "logs": logs,
        "started": STARTED,
        "log_key": keys[0],
    }, report)
"""


def _run_noisy(tmp_path: Path, home: Path) -> tuple[dict, str, str]:
    report = tmp_path / "report.json"
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT), "REPORT": str(report)}
    done = subprocess.run(
        [sys.executable, "-c", _NOISY_RUN], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(report.read_text()), done.stdout, done.stderr


def test_a_runs_output_is_in_the_ui_logs_and_on_the_terminal_with_no_process_started(tmp_path: Path) -> None:
    report, stdout, stderr = _run_noisy(tmp_path, tmp_path / "home")
    assert report["manager"] == "ThreadedComputeLogManager" and report["keys"] == 1 and report["complete"]
    for line in ("python print to stdout", "bytes on file descriptor 1", "a child process"):
        assert line in report["logs"]["stdout"]  # what the UI's stdout tab shows
        assert line in stdout  # and the terminal still gets it
    assert "python print to stderr" in report["logs"]["stderr"] and "python print to stderr" in stderr
    assert "STEP_SUCCESS" in report["logs"]["stderr"]  # Dagster's own log lines, as before
    assert report["started"] == ["echo"]  # the asset's child only: no `tail`, no watcher process
    # The UI's own query (dagster-graphql, code location in a gRPC process as under `dagster dev`).
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    os.environ["DAGSTER_HOME"] = str(tmp_path / "home")  # the autouse fixture restores it
    query = "query($key: [String!]!) { capturedLogs(logKey: $key) { stdout stderr } }"
    with dg.DagsterInstance.get() as instance:
        with define_out_of_process_context(
            str(Path(__file__).with_name("ui_defs.py")), "defs", instance
        ) as ui:
            shown = execute_dagster_graphql(ui, query, variables={"key": report["log_key"]})
    assert not shown.errors, shown.errors
    assert "a child process" in shown.data["capturedLogs"]["stdout"]
    assert "python print to stderr" in shown.data["capturedLogs"]["stderr"]


_LINGERING_CHILD = r"""
import json, os, subprocess, sys, time
import dagster as dg
from simulation_assets.commands.common import dagster_instance
from simulation_assets.sinks import local_compute_logs

local_compute_logs.DRAIN_SECONDS = 60.0  # a capture that waited for the pipe to close would wait for the child
CHILD = []

@dg.asset
def starts_a_worker() -> None:
    print("before the worker", flush=True)
    CHILD.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(6); print('late line', flush=True)"]))

instance = dagster_instance()
started = time.perf_counter()
result = dg.materialize([starts_a_worker], instance=instance)
seconds = time.perf_counter() - started
alive_after_run = CHILD[0].poll() is None
CHILD[0].wait(60)
time.sleep(0.5)  # the copier follows the child's output into the run's file, as Dagster's tail did
manager = instance.compute_log_manager
key = next(
    manager.build_log_key_for_run(result.run_id, e.event_specific_data.file_key)
    for e in result.all_events
    if e.event_type_value == "LOGS_CAPTURED"
)
with open(os.environ["REPORT"], "w") as report:
    json.dump({"seconds": seconds, "alive_after_run": alive_after_run,
               "stdout": manager.get_log_data(key).stdout.decode()}, report)
"""


def test_a_child_process_left_running_holds_neither_the_run_nor_its_output(tmp_path: Path) -> None:
    """A pool of workers started by a step keeps the pipe open: the run ends anyway, the child's lines still land."""
    report = tmp_path / "report.json"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(ROOT),
        "REPORT": str(report),
    }
    done = subprocess.run(
        [sys.executable, "-c", _LINGERING_CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(report.read_text())
    assert found["alive_after_run"] and found["seconds"] < 5  # waiting for the pipe to close: 6 s or more
    assert found["stdout"].splitlines() == ["before the worker", "late line"]
    assert "late line" in done.stdout  # mirrored to the terminal too


def test_dagsters_own_manager_starts_a_tail_and_a_watcher_per_stream(tmp_path: Path) -> None:
    """The cost the threaded manager removes (it fails if Dagster stops starting them)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "# stock logs\n" + _stock_logs_yaml(home / "storage")
    )  # kept as custom
    report, stdout, _ = _run_noisy(tmp_path, home)
    assert report["manager"] == "LocalComputeLogManager"
    assert "python print to stdout" in report["logs"]["stdout"]
    assert sorted(report["started"]) == ["echo", "python", "python", "tail", "tail"]


def test_an_instance_with_dagsters_compute_logs_from_an_earlier_version_gets_the_threaded_one(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.environ["DAGSTER_HOME"] = str(home)  # the autouse fixture restores it
    (home / "dagster.yaml").write_text(_stock_logs_yaml(home / "storage"))
    (home / ".instance-ready").write_text("an earlier marker")
    ensure_local_instance()
    assert (home / "dagster.yaml").read_text() == instance_yaml(home / "storage")
    with dg.DagsterInstance.get() as instance:
        manager = instance.compute_log_manager
        assert isinstance(manager, ThreadedComputeLogManager)
        assert manager._base_dir == str(home / "storage")  # where Dagster's default kept them


def test_the_manager_keeps_its_files_under_dagster_home_by_default(tmp_path: Path) -> None:
    os.environ["DAGSTER_HOME"] = str(tmp_path / "elsewhere")
    assert ThreadedComputeLogManager()._base_dir == str((tmp_path / "elsewhere" / "storage").resolve())


_GC = r"""
import gc, sys, time
from simulation_assets.commands import common
assert gc.isenabled()
common.defer_gc()
assert not gc.isenabled()
common.resume_gc()
assert gc.isenabled() and gc.get_freeze_count() > 1_000, gc.get_freeze_count()
gc.disable(); common.resume_gc(); assert not gc.isenabled()  # once only
gc.enable(); gc.unfreeze()
common.STARTUP_GC_SECONDS = 0.05  # a command that never opens the instance gets collection back
common.defer_gc()
assert not gc.isenabled()
time.sleep(1.0)
assert gc.isenabled()
"""


def test_collection_is_off_while_a_command_starts_and_back_when_the_instance_opens_or_later() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _GC], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_copier_finds_a_mark_split_across_reads_and_keeps_everything_else(tmp_path: Path) -> None:
    import time

    from simulation_assets.sinks.local_compute_logs import MARK, _Copier

    source, sink = os.pipe()
    terminal_read, terminal = os.pipe()
    copier = _Copier(source, str(tmp_path / "log.out"), terminal)
    copier.start()
    pieces = [b"first line\n", b"no newline yet \x00 nul", MARK[:7], MARK[7:], b"a child's later line\n"]
    for piece in pieces:
        os.write(sink, piece)
        time.sleep(0.05)  # separate reads
        if piece is pieces[2]:
            assert not copier.marked.is_set()
    assert copier.marked.wait(5)
    os.close(sink)
    copier.join(5)
    expected = b"first line\nno newline yet \x00 nul" + b"a child's later line\n"
    assert (tmp_path / "log.out").read_bytes() == expected
    received = b""
    while chunk := os.read(terminal_read, 1 << 16):
        received += chunk
    assert received == expected
    assert not copier.is_alive()
