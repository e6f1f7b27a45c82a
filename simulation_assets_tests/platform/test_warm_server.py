"""The warm server (``simulate server``): real processes, real sockets, bounded times.

A command through the server must do what it does in-process (same files, bytes, exit codes, run
in the instance, the client's environment, folder and umask), a Ctrl-C must reach it, two clients
get a child each, edited code is never served, and no server outlives its test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulation_assets_tests.postgres_cluster import free_port

ROOT = Path(__file__).resolve().parents[2]
SIMULATE = Path(sys.executable).with_name("simulate")  # the console script a user runs
TIMEOUT = 120

pytestmark = [
    pytest.mark.xdist_group("warm_server"),
    pytest.mark.skipif(not SIMULATE.exists(), reason="the simulate console script is not installed"),
]


def _server_pids(folder: Path) -> list[int]:
    """Pids of live processes started as a warm server with sockets in ``folder``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(b"commands.server import serve" in c for c in cmdline):
            if f"SIMULATE_SERVER_DIR={folder}".encode() in environ:
                pids.append(int(entry.name))
    return pids


def _wait_for(predicate, seconds: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"waited {seconds} s for {what}")


class Warm:
    """Commands with the warm server on, in a runtime folder of their own."""

    def __init__(self, runtime: Path, pythonpath: Path = ROOT, **env: str) -> None:
        self.runtime, self.pythonpath, self.extra = runtime, pythonpath, env

    def env(self, folder: Path, server: bool = True) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIMULATE_SERVER")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return {
            **env,
            "SIMULATE_SERVER": "1" if server else "0",
            "SIMULATE_SERVER_DIR": str(self.runtime),
            "SIMULATE_SERVER_IDLE": "120",
            "SIMULATE_SERVER_CHECK": "0.3",
            "PYTHONPATH": str(self.pythonpath),
            "DAGSTER_HOME": str(folder / "home"),
            "SIMULATION_DATA_DIR": str(folder / "data"),
            **self.extra,
        }

    def run(self, folder: Path, *argv: str, server: bool = True, **kwargs) -> subprocess.CompletedProcess:  # noqa: ANN003
        folder.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            [str(SIMULATE), *argv],
            env=self.env(folder, server),
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            **kwargs,
        )

    def status(self, folder: Path) -> dict | None:
        done = self.run(folder, "server", "status", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def start(self, folder: Path) -> dict:
        done = self.run(folder, "server", "start", "--json", "--wait", "90")
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def stop_all(self, folder: Path) -> None:
        self.run(folder, "server", "stop", "--all")
        for pid in _server_pids(self.runtime):  # a server that did not answer: end it
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def warm() -> Iterator[tuple[Warm, dict]]:
    """A started server (module-wide: one start for the tests that share it); stopped and checked gone at the end."""
    runtime = Path(tempfile.mkdtemp(prefix="ss-", dir="/tmp"))  # short: a socket path holds 108 bytes
    work = Path(tempfile.mkdtemp(prefix="warm-"))
    helper = Warm(runtime)
    try:
        info = helper.start(work / "start")
        assert info["threads"] == 1  # single-threaded when it forks
        yield helper, info
        stopped = helper.run(work / "stop", "server", "stop")
        assert stopped.returncode == 0 and str(info["pid"]) in stopped.stdout, stopped.stdout
        assert not _server_pids(runtime) and not list(runtime.glob("*.sock"))
        assert helper.status(work / "stop") is None
    finally:
        helper.stop_all(work / "stop")
        assert not _server_pids(runtime)
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _served(helper: Warm, folder: Path) -> int:
    info = helper.status(folder)
    assert info is not None, "the server is gone"
    return info["served"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_command_through_the_server_is_the_in_process_command(warm, tmp_path: Path) -> None:
    import dagster as dg

    helper, _info = warm
    local, served = tmp_path / "local", tmp_path / "served"
    argv = (
        "hogflix",
        "--days",
        "1",
        "--pool",
        "50",
        "--traffic-days",
        "0",
        "--output",
        "out",
    )  # relative path
    in_process = helper.run(local, *argv, server=False, umask=0o027)
    _ready_spare(helper, served)  # the usual path: a spare that imported Polars & co. before the request
    before = helper.status(served)
    through = helper.run(served, *argv, umask=0o027)
    assert in_process.returncode == through.returncode == 0, through.stdout + through.stderr
    after = helper.status(served)
    assert after["served"] == before["served"] + 1  # it went through the server
    assert after["served_by_spare"] == before["served_by_spare"] + 1  # ... to its spare

    # Same files, same bytes (the summary's run id and timing aside), same permissions (umask).
    mine, theirs = _files(local / "out"), _files(served / "out")
    assert sorted(mine) == sorted(theirs) and len(mine) >= 3
    for name in mine:
        if name != "summary.json":
            assert mine[name] == theirs[name], name
    summary_local, summary = json.loads(mine["summary.json"]), json.loads(theirs["summary.json"])
    for volatile in ("seconds", "dagster_runs"):
        summary_local.pop(volatile), summary.pop(volatile)
    assert summary == summary_local
    assert list((served / "data").iterdir())  # the state went to the client's SIMULATION_DATA_DIR
    for name in mine:
        assert (local / "out" / name).stat().st_mode == (served / "out" / name).stat().st_mode
    assert (served / "out" / "summary.json").stat().st_mode & 0o777 == 0o640
    assert f"Wrote {served / 'out'}" in through.stdout  # printed on the client's stdout

    # The run is in the client's instance (DAGSTER_HOME), with its materializations and checks.
    for home in (local / "home", served / "home"):
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs()
            assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
            records = instance.get_records_for_run(runs[0].run_id).records
            kinds = {
                r.event_log_entry.dagster_event_type for r in records if r.event_log_entry.is_dagster_event
            }
            assert dg.DagsterEventType.ASSET_MATERIALIZATION in kinds
            assert dg.DagsterEventType.ASSET_CHECK_EVALUATION in kinds

    # Bad input: exit code 2 and the same message, through the server too.
    bad = ("hogflix", "--days", "0", "--output", "out")
    before = _served(helper, served)
    in_process, through = helper.run(local, *bad, server=False), helper.run(served, *bad)
    assert in_process.returncode == through.returncode == 2
    assert through.stdout == in_process.stdout and "--days must be a positive integer" in through.stdout
    assert _served(helper, served) == before + 1


def test_two_clients_at_once_get_a_child_each(warm, tmp_path: Path) -> None:
    helper, _info = warm
    before = _served(helper, tmp_path / "ctl")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    procs = [
        subprocess.Popen(
            [str(SIMULATE), "activity", "--ticks", "1", "--output", "out"],
            env=helper.env(tmp_path / name),
            cwd=tmp_path / name,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert _served(helper, tmp_path / "ctl") == before + 2
    for name in ("a", "b"):
        assert (tmp_path / name / "out" / "events.parquet").exists()


def test_signals_on_the_client_reach_the_command(warm, tmp_path: Path) -> None:
    """Three activity dashboards (they run until stopped) through the server at once: Ctrl-C on the
    first client, SIGTERM on the second, SIGKILL on the third; each child must stop serving."""
    helper, _info = warm
    dashboards = []
    for name in ("int", "term", "kill"):
        folder, port = tmp_path / name, free_port()
        folder.mkdir()
        client = _dashboard(helper, folder, port, 30)
        dashboards.append((client, f"http://127.0.0.1:{port}/"))
    try:
        for _client, url in dashboards:
            _wait_for(lambda url=url: _answers(url), 90, f"the dashboard on {url} to answer")
        assert len(helper.status(tmp_path / "ctl")["running"]) == 3  # each served by a child of its own
        for (client, _url), signum in zip(dashboards, (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)):
            client.send_signal(signum)
        outs = [client.communicate(timeout=30) for client, _url in dashboards]
    finally:
        for client, _url in dashboards:
            client.kill()
    codes = [client.returncode for client, _url in dashboards]
    assert codes[0] == 0, outs[0]  # Ctrl-C is the dashboard's own way to stop, as in-process
    assert "Ctrl+C to stop" in outs[0][0]
    assert codes[1] in (0, -signal.SIGTERM), outs[1]  # stopped by it, or ended by it as the child was
    assert codes[2] == -signal.SIGKILL
    _wait_for(lambda: not helper.status(tmp_path / "ctl")["running"], 15, "the children to end")
    assert not any(_answers(url) for _client, url in dashboards)


def _children(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _ready_spare(helper: Warm, folder: Path, not_pid: int | None = None) -> int:
    """Wait until the server has a spare that has imported everything (another than ``not_pid``); its pid."""
    info: dict = {}

    def ready() -> bool:
        info.update(helper.status(folder) or {})
        return bool(info.get("spare_ready")) and info.get("spare") not in (None, not_pid)

    _wait_for(ready, 60, "a ready spare")
    return int(info["spare"])


def _modules(pid: int) -> str:
    """The shared libraries mapped by ``pid`` (what it has imported, for native extensions)."""
    return Path(f"/proc/{pid}/maps").read_text()


def test_back_to_back_commands_are_served_by_warm_spares_and_one_spare_waits_at_most(
    warm, tmp_path: Path
) -> None:
    """The server keeps one spare that has imported Polars, NumPy, PyArrow and the project's modules
    before any request; a command goes to it, and the server forks the next spare meanwhile."""
    helper, info = warm
    server = info["pid"]
    spare = _ready_spare(helper, tmp_path)
    maps = _modules(spare)
    assert (
        "_polars_runtime" in maps and "numpy" in maps and "libarrow" in maps
    )  # imported ahead of the request
    assert _children(server) == [spare]  # one spare, nothing else
    before = helper.status(tmp_path)
    first = helper.run(tmp_path / "a", "activity", "--ticks", "1", "--output", "out")
    assert first.returncode == 0, first.stdout + first.stderr
    second_spare = _ready_spare(helper, tmp_path, not_pid=spare)  # a new spare, warm again
    second = helper.run(tmp_path / "b", "activity", "--ticks", "1", "--output", "out")
    assert second.returncode == 0, second.stdout + second.stderr
    after = helper.status(tmp_path)
    assert after["served"] == before["served"] + 2
    assert after["served_by_spare"] == before["served_by_spare"] + 2  # both went to a ready spare
    assert after["spare"] not in (spare, second_spare)  # each spare serves one command, then is gone
    _ready_spare(helper, tmp_path)
    assert len(_children(server)) == 1  # memory: one spare waits, no more
    for name in ("a", "b"):
        assert (tmp_path / name / "out" / "events.parquet").exists()


def test_a_spare_killed_while_idle_is_replaced(warm, tmp_path: Path) -> None:
    helper, info = warm
    spare = _ready_spare(helper, tmp_path)
    os.kill(spare, signal.SIGKILL)
    replacement = _ready_spare(helper, tmp_path, not_pid=spare)
    assert _children(info["pid"]) == [replacement]
    before = helper.status(tmp_path)["served_by_spare"]
    done = helper.run(tmp_path / "w", "activity", "--ticks", "0", "--output", "out")
    assert done.returncode == 2 and "must be a positive integer" in done.stdout  # served, bad input as always
    assert helper.status(tmp_path)["served_by_spare"] == before + 1


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_spare_never_imports_while_a_command_runs(warm, tmp_path: Path) -> None:
    """A spare that has not finished importing when a command arrives is stopped until no command
    runs (its imports would share the CPU with the command), and no new spare starts meanwhile."""
    helper, info = warm
    spare = _ready_spare(helper, tmp_path)
    os.kill(spare, signal.SIGKILL)  # its replacement starts importing at once
    port = free_port()
    (tmp_path / "dash").mkdir()
    client = _dashboard(helper, tmp_path / "dash", port, 30)
    try:
        _wait_for(lambda: _answers(f"http://127.0.0.1:{port}/"), 90, "the dashboard to answer")
        during = helper.status(tmp_path)
        assert len(during["running"]) == 1
        if during["spare"] is not None and not during["spare_ready"]:  # it was importing: paused
            assert during["spare_paused"] and _state(during["spare"]) == "T", during
        # else the replacement was ready first and serves the dashboard; no new spare while it runs
        assert during["spare"] is None or during["spare_ready"] or during["spare_paused"], during
        time.sleep(1.0)
        assert helper.status(tmp_path)["spare_ready"] == during["spare_ready"]  # nothing imported meanwhile
        client.send_signal(signal.SIGINT)
        client.communicate(timeout=30)
    finally:
        client.kill()
    assert client.returncode == 0
    _ready_spare(helper, tmp_path)  # resumed (or forked) once nothing runs, and ready
    assert len(_children(info["pid"])) == 1


def test_what_the_spare_imports_reads_no_environment_outside_the_key() -> None:
    """A spare imports before it knows the command's environment: every variable those imports read
    must be part of the key (so a client with another value has another server). Traced in a fresh
    process by recording the reads of ``os.environ`` after the server's own pre-imports."""
    probe = """
import json, os, sys
from simulation_assets.commands import server
for name in server.PREIMPORTS:
    __import__(name)
read = set()
class Recording(type(os.environ)):
    def __getitem__(self, key):
        read.add(key)
        return super().__getitem__(key)
    def __contains__(self, key):
        read.add(key)
        return super().__contains__(key)
    def get(self, key, default=None):
        read.add(key)
        return super().get(key, default)
env = os.environ
os.environ = Recording(env._data, env.encodekey, env.decodekey, env.encodevalue, env.decodevalue)
modules = server.spare_modules()
for name in modules:
    __import__(name)
print(json.dumps({"read": sorted(read), "modules": modules, "defs": [m for m in sys.modules if ".defs." in m]}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    from simulation_assets.commands import server

    assert {"numpy", "polars", "pyarrow"} <= set(found["modules"])
    assert any(m.startswith("simulation_assets.core.hogflix") for m in found["modules"])
    assert not any(m.startswith(server.SPARE_SKIP) for m in found["modules"])
    assert found["defs"] == []  # the definitions read the command's environment: never in a spare
    assert found["read"], "the probe saw no read at all: it would prove nothing"
    outside = [
        k
        for k in found["read"]
        if not (k.startswith(server.IMPORT_TIME_ENV_PREFIXES) or k in server.IMPORT_TIME_ENV)
    ]
    assert outside == []


@contextlib.contextmanager
def _dashboard_on_a_server_of_its_own(
    folder: Path, ticks: int
) -> Iterator[tuple[Warm, dict, subprocess.Popen, str]]:
    """A server started in a runtime folder of its own, a dashboard client served by it and answering on its
    URL; yields (helper, server info, client, url). On the way out the client is killed, every server of
    that runtime folder is stopped, and none may be left."""
    runtime = Path(tempfile.mkdtemp(prefix="ss-", dir="/tmp"))
    helper = Warm(runtime)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    try:
        info = helper.start(folder / "ctl")
        (folder / "dash").mkdir()
        client = _dashboard(helper, folder / "dash", port, ticks)
        try:
            _wait_for(lambda: _answers(url), 60, "the dashboard to answer")
            yield helper, info, client, url
        finally:
            client.kill()
    finally:
        helper.stop_all(folder)
        shutil.rmtree(runtime, ignore_errors=True)
    assert not _server_pids(runtime)


def test_a_server_that_dies_mid_command_takes_its_child_and_the_client_says_so(tmp_path: Path) -> None:
    with _dashboard_on_a_server_of_its_own(tmp_path, 20) as (_helper, info, client, url):
        os.kill(info["pid"], signal.SIGKILL)
        _out, err = client.communicate(timeout=30)
        assert client.returncode == 1
        assert "connection closed before the command reported its exit status" in err, err
        _wait_for(lambda: not _answers(url), 10, "the child to die with its server")


def test_a_server_that_stops_while_a_command_runs_waits_for_it_without_spinning(tmp_path: Path) -> None:
    """Asked to stop (SIGTERM) while a command runs, the server stops accepting, sleeps until its
    child ends (no busy loop: it used to poll with a zero timeout), then exits."""
    with _dashboard_on_a_server_of_its_own(tmp_path, 30) as (helper, info, client, url):
        os.kill(info["pid"], signal.SIGTERM)
        _wait_for(lambda: helper.status(tmp_path / "ctl") is None, 10, "the server to stop accepting")
        stat = Path(f"/proc/{info['pid']}/stat")
        before = sum(int(v) for v in stat.read_text().rsplit(")", 1)[1].split()[11:13])
        time.sleep(1.0)
        spent = sum(int(v) for v in stat.read_text().rsplit(")", 1)[1].split()[11:13]) - before
        assert spent / os.sysconf("SC_CLK_TCK") < 0.2  # asleep, not polling
        assert _answers(url)  # the command goes on
        client.send_signal(signal.SIGINT)
        client.communicate(timeout=30)
        assert client.returncode == 0
        _wait_for(
            lambda: info["pid"] not in _server_pids(helper.runtime), 15, "the server to exit after its child"
        )


def _dashboard(helper: Warm, folder: Path, port: int, ticks: int) -> subprocess.Popen:
    """Start ``simulate activity --dashboard`` on ``port`` from ``folder`` through the warm server (it runs
    until ``ticks`` ticks of 1 s or a signal)."""
    return subprocess.Popen(
        [str(SIMULATE), "activity", "--dashboard", "--host", "127.0.0.1", "--port", str(port)]
        + ["--interval", "1", "--max-ticks", str(ticks)],
        env=helper.env(folder),
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_edited_code_is_never_served_stale(tmp_path: Path) -> None:
    """A copy of the package: its server serves it; after an edit the client runs the new code and the old server exits."""
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "simulation_assets",
        copy / "simulation_assets",
        ignore=shutil.ignore_patterns("__pycache__", "node_modules", "static"),
    )
    runtime = Path(tempfile.mkdtemp(prefix="ss-", dir="/tmp"))
    helper = Warm(runtime, pythonpath=copy)
    folder = tmp_path / "work"
    try:
        old = helper.start(folder)
        first = helper.run(folder, "activity", "--ticks", "0", "--output", "out")
        assert first.returncode == 2 and "must be a positive integer" in first.stdout
        assert helper.status(folder)["served"] == 1

        common = copy / "simulation_assets" / "commands" / "activity.py"  # imported by the server
        common.write_text(
            common.read_text().replace("must be a positive integer", "must be a whole number above 0")
        )
        edited = helper.run(folder, "activity", "--ticks", "0", "--output", "out")
        assert edited.returncode == 2 and "must be a whole number above 0" in edited.stdout, edited.stdout
        _wait_for(lambda: old["pid"] not in _server_pids(runtime), 15, "the stale server to exit")
        assert helper.status(folder) is None  # nothing serves the edited code until a command starts it
        assert "the code or the environment changed" in Path(old["log"]).read_text()
    finally:
        helper.stop_all(folder)
        shutil.rmtree(runtime, ignore_errors=True)
    assert not _server_pids(runtime)


def test_a_first_command_and_two_starts_at_once_never_run_two_servers_and_it_idles_out(
    tmp_path: Path,
) -> None:
    """An in-process command and two ``server start`` at once: never two servers of a key at a time
    (the file lock), the server started after the command does not hold the command's pipes, and a
    server leaves after its idle timeout (2 s here)."""
    runtime = Path(tempfile.mkdtemp(prefix="ss-", dir="/tmp"))
    helper = Warm(runtime, SIMULATE_SERVER_IDLE="2")
    try:
        procs = []
        for name, argv in (
            ("cmd", ["activity", "--ticks", "1", "--output", "out"]),
            ("s1", ["server", "start", "--wait", "90"]),
            ("s2", ["server", "start", "--wait", "90"]),
        ):
            (tmp_path / name).mkdir()
            procs.append(
                subprocess.Popen(
                    [str(SIMULATE), *argv],
                    env=helper.env(tmp_path / name),
                    cwd=tmp_path / name,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        # communicate() returns when the pipes close: a server holding them would make this time out.
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outs
        assert "Wrote" in outs[0][0]
        # A server the command started exists by now (its Popen returned after the exec).
        _wait_for(lambda: not _server_pids(runtime), 60, "the servers to leave after 2 s idle")
        assert not list(runtime.glob("*.sock"))
        # The log: each server's "serving" ... "exits" before the next one's "serving" (one at a time),
        # one or two of them (the command may finish after the first one idled out), each idled out.
        events = [
            (line.split("[", 1)[1].split("]")[0], "serving" if " serving " in line else "exits")
            for line in next(runtime.glob("*.log")).read_text().splitlines()
            if " serving " in line or " exits after " in line
        ]
        assert 2 <= len(events) <= 4 and len(events) % 2 == 0, events
        for i in range(0, len(events), 2):
            assert events[i][1] == "serving" and events[i + 1] == (events[i][0], "exits"), events
        assert next(runtime.glob("*.log")).read_text().count("idle for 2 s") == len(events) // 2
    finally:
        helper.stop_all(tmp_path)
        shutil.rmtree(runtime, ignore_errors=True)
    assert not _server_pids(runtime)


def test_the_server_a_first_command_starts_serves_the_next_command(tmp_path: Path) -> None:
    """The server an in-process command starts must have the key the next client computes. The command's
    libraries add variables to its environment when imported (Polars ``_RJEM_MALLOC_CONF``); a server
    keyed and launched with that environment was never found again, and every command ran cold."""
    runtime = Path(tempfile.mkdtemp(prefix="ss-", dir="/tmp"))
    helper = Warm(runtime)
    folder = tmp_path / "cmd"
    try:
        first = helper.run(folder, "activity", "--ticks", "1", "--output", "out1")
        assert first.returncode == 0, first.stderr
        _wait_for(lambda: helper.status(folder) is not None, 90, "the server the command started to answer")
        before = helper.status(folder)
        second = helper.run(folder, "activity", "--ticks", "1", "--output", "out2")
        assert second.returncode == 0, second.stderr
        after = helper.status(folder)
        assert after["pid"] == before["pid"] and after["served"] == before["served"] + 1, (before, after)
        assert len(list(runtime.glob("*.sock"))) == 1
    finally:
        helper.stop_all(tmp_path)
        shutil.rmtree(runtime, ignore_errors=True)
    assert not _server_pids(runtime)


def test_the_key_follows_the_code_and_the_import_time_environment(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from simulation_assets.commands import server

    key = server.environment_key()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))  # read at run time: same server
    monkeypatch.setenv("HOGFLIX_START_DATE", "2024-01-01")
    assert server.environment_key() == key
    monkeypatch.setenv("SIMULATION_SEED", "7")  # read by the command: the child has the client's
    assert server.environment_key() == key
    monkeypatch.setenv("POLARS_MAX_THREADS", "1")  # Polars is imported by the spare before the request
    assert server.environment_key() != key
    monkeypatch.delenv("POLARS_MAX_THREADS")
    monkeypatch.setenv("DAGSTER_RECORD_DEFENSIVE_CHECKS", "1")  # read while Dagster is imported
    assert server.environment_key() != key
    monkeypatch.delenv("DAGSTER_RECORD_DEFENSIVE_CHECKS")
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path)])
    assert server.environment_key() != key


def test_the_runtime_folder_must_be_private(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from simulation_assets.commands import server

    folder = tmp_path / "rt"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    monkeypatch.setenv("SIMULATE_SERVER_DIR", str(folder))
    monkeypatch.setenv("SIMULATE_SERVER", "1")
    assert server.runtime_dir() is None  # readable by others: never listen or connect there
    assert server.run_through_server(["activity", "--ticks", "1"]) is None
    folder.chmod(0o700)
    assert server.runtime_dir() == folder
