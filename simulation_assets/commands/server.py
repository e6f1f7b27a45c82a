"""``simulate server``: a warm process that runs each command in a fork of itself.

Every command pays, before its own work, for importing Dagster and its SQLite storage
(SQLAlchemy, Alembic, the daemon modules): about 0.9 s of CPU that no instance setting removes.
A warm server has imported them once; ``simulate`` then hands it the command and the server forks
a child that runs it, through the same code path as an in-process command (``cli.run_command``),
so the run is recorded in the instance and shows in the UI with its checks and metadata.

How a command goes through it:

- The ``simulate`` client (this module, standard library only) computes the *key* of its
  environment (``environment_key``): the interpreter and its flags, ``sys.path``, the package's
  folder and the size and modification time of every ``.py`` file in it, the modification time
  of every ``sys.path`` folder (an install or upgrade changes its site-packages), Dagster's
  version file, and the environment variables libraries read at import time (``IMPORT_TIME_ENV``).
  The server listens on ``<runtime dir>/<key>.sock``: edited code or another environment has
  another key, so it is never served by a stale process.
- The client connects, passes its stdin/stdout/stderr (SCM_RIGHTS), argv, working directory,
  full environment, umask and ``sys.path``; the server forks; the child takes them over and runs
  the command; the server waits for the child and sends back its exit status, which the client
  exits with. Ctrl-C, SIGTERM and SIGHUP on the client are forwarded to the child's process group;
  a client that dies without its status kills its child (SIGKILL), as its own death would have.
- When no server answers, the command runs in-process as before and, afterwards, starts a
  detached server for the next command (new session, stdio to ``<key>.log``, never the caller's
  pipes). Only one server per key starts (a file lock), and it exits after ``SIMULATE_SERVER_IDLE``
  seconds without a command (default 600) or as soon as its key no longer matches the files.

The server pre-imports only libraries that start no thread and read no configuration of the
command at import time (``PREIMPORTS``); the project's definitions read environment variables when
they are imported, so each child imports them itself. Before every fork the server checks it has a
single thread; if not, it refuses and the client runs the command in-process.

Turn it off with ``SIMULATE_SERVER=0`` (nothing is started or used); ``simulate server status``
shows the server of this environment, ``simulate server stop [--all]`` stops it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

ENABLE_VAR = "SIMULATE_SERVER"  # 0/off/false/no: never use or start a server
DIR_VAR = "SIMULATE_SERVER_DIR"  # folder of the sockets, locks and logs (default: per-user runtime folder)
IDLE_VAR = "SIMULATE_SERVER_IDLE"  # seconds without a command before the server exits
DEFAULT_IDLE_SECONDS = 600.0
SPARE_VAR = "SIMULATE_SERVER_SPARE"  # 0/off/false/no: no pre-forked spare (the server forks per command)
CHECK_VAR = "SIMULATE_SERVER_CHECK"  # seconds between the server's comparisons of its key with the files
DEFAULT_CHECK_SECONDS = 5.0
PROTOCOL = b"SIMSRV1"
_HEADER = struct.Struct("!7sI")  # protocol, length of the JSON request that follows
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes

# Environment variables that libraries the server pre-imports (or Python itself) read while they
# are imported (measured by tracing os.environ during the imports): they are part of the key.
# Everything else in the environment is read by the command at run time, from the client's values.
IMPORT_TIME_ENV_PREFIXES = (
    "PYTHON",
    "DAGSTER_",  # dagster._time, dagster_shared.record, the daemon modules' page sizes ...
    "PYDANTIC_",
    "TQDM_",
    "HUMANFRIENDLY_",
    "GRPC_",
    "SSL_CERT_",
    "FSSPEC_",
    "LC_",
    # what the spare's libraries read when loaded (NumPy, OpenBLAS, Polars and its allocator, Arrow)
    "NPY_",
    "NUMPY_",
    "OPENBLAS_",
    "OMP_",
    "MKL_",
    "POLARS_",
    "RAYON_",
    "ARROW_",
    "_RJEM_",
    "WEBSOCKETS_",  # uvicorn's websockets protocol (the power-user run's reference API)
)
IMPORT_TIME_ENV = (
    "LANG",
    "LANGUAGE",
    "NO_COLOR",
    "FORCE_COLOR",
    "TERM",
    "MALLOC_CONF",
    "BUILDING_SPHINX_DOCS",
    "SPHINX_BUILD",
)
RUN_TIME_ENV = ("DAGSTER_HOME", "DAGSTER_DISABLE_TELEMETRY")  # read when the instance opens
# The environment as the command was started (this module is imported before the command's libraries):
# some libraries add variables to os.environ when imported (Polars _RJEM_MALLOC_CONF, scikit-learn
# KMP_*), so a server started after an in-process command is keyed and launched with this copy, the
# environment the next command's client will have, not the one the command left behind.
LAUNCH_ENV: dict[str, str] = dict(os.environ)

# Imported once by the server: each measured to start no thread and to read no setting of the
# command at import time (their import-time variables are in the key). Not here: Polars and
# PyArrow start threads when imported that a fork does not stop (jemalloc background threads,
# Polars' spill cleaner), so a fork would copy a process whose other threads vanish; and the
# project's definitions read the command's environment variables (seed, start date, sinks) at
# import time. NumPy's OpenBLAS worker does stop at a fork (pthread_atfork; measured), so NumPy could
# be pre-imported behind one trial fork; side by side (6 warm HogFlix days each, twice, load 14) that
# saved no measurable CPU (medians 0.68-0.91 s with it, 0.74-0.78 without), so it is not.
PREIMPORTS = (
    "dagster",
    "simulation_assets.sinks.local_instance",  # SQLAlchemy (Alembic and dagster._daemon deferred)
    "simulation_assets.sinks.local_compute_logs",
    # what a run imports on its way (measured: modules a command loads after the ones above)
    "dagster._core.definitions.external_asset",
    "dagster._core.definitions.materialize",
    "dagster._core.definitions.repository_definition.repository_data_builder",
    "dagster._core.execution.api",
    "dagster._core.execution.execute_in_process",
    "dagster._core.execution.plan.active",
    "dagster._core.execution.plan.execute_plan",
    "dagster._core.executor.in_process",
    "dagster._core.instance.factory",
    "dagster._core.instance.runs.run_domain",
    "dagster._core.secrets.env_file",
    "dagster._core.secrets.loader",
    "dagster._core.storage.root",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.system_config.composite_descent",
    "dagster._core.types.primitive_mapping",
    "dagster._core.types.transform_typing",
    "cloudpickle",
    "dotenv",
    "fsspec.implementations.local",
    "tenacity",
    "upath",
    "_strptime",
    "duckdb",
    "filelock",
    "rich.console",
    "rich.progress",
    "rich.table",
    # the power-user runner's HTTP client and the reference API it serves (measured: no thread at import)
    "httpx",
    "starlette.applications",
    "starlette.routing",
    "uvicorn",
)


# The spare: a child forked ahead of the next command that imports, before any request, what the
# commands' children would import themselves: the libraries that start threads (harmless in a
# process that never forks again) and the project modules the definitions import (pure or doing
# their I/O in functions; each checked to read no environment variable at import but those in the
# key). Not the definitions themselves (they read the command's environment when imported), not
# the warehouse's dbt parts (loaded only for --dbt) and not the twin's model modules (SciPy: ~0.7 s
# and ~90 MiB that only twin commands need; they import them themselves).
SPARE_LIBRARIES = (
    "numpy",
    "polars",
    "pyarrow",
    "pyarrow.parquet",
    # the power-user run's reference API, which the command serves in-process (uvicorn's choices of
    # event loop and protocols are imported when a server is configured)
    "simulation_assets.target.server",
    "simulation_assets.target.propiq",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
)
SPARE_SKIP = (
    "simulation_assets.sinks.warehouse_dbt",
    "simulation_assets.core.twin",
    "simulation_assets.sinks.twin_",
)
SPARE_FAILURES_MAX = 3  # spares in a row that die before serving: stop making them (the log says why)


def spare_modules() -> list[str]:
    """Return what a spare imports: ``SPARE_LIBRARIES``, then the project modules the definitions import.

    The project modules are read from the ``from simulation_assets.core/sinks... import`` lines at
    the top level of ``defs/*.py`` (so the list follows the code), minus ``SPARE_SKIP``.
    """
    import ast

    names: set[str] = set()
    for path in sorted((_package_dir() / "defs").glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
    project = sorted(
        n
        for n in names
        if n.startswith(("simulation_assets.core.", "simulation_assets.sinks."))
        and not n.startswith(SPARE_SKIP)
    )
    return [*SPARE_LIBRARIES, *project]


class ServerError(RuntimeError):
    """The server could not be reached, started or asked."""


# ------------------------------------------------------------------------------------------ the key


def enabled(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Return False when ``SIMULATE_SERVER`` turns the warm server off."""
    return env.get(ENABLE_VAR, "1").strip().lower() not in ("0", "off", "false", "no")


def runtime_dir(create: bool = True) -> Path | None:
    """Return this user's folder for servers (0700, owned by the user), or None when it is not safe."""
    chosen = os.environ.get(DIR_VAR)
    if chosen:
        path = Path(chosen)
    else:
        base = os.environ.get("XDG_RUNTIME_DIR")
        path = (
            Path(base) / "simulation-assets"
            if base and os.path.isdir(base)
            else Path("/tmp") / f"simulation-assets-{os.getuid()}"
        )
    try:
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None  # someone else's folder, or open to others: never listen or connect there
    return path


def _package_dir() -> Path:
    import simulation_assets

    return Path(simulation_assets.__file__).resolve().parent


def key_parts(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return what the key is made of (each part cheap to compute: stat calls, no imports), for the
    environment ``environ`` (default: this process's)."""
    environ = os.environ if environ is None else environ
    package = _package_dir()
    files = []
    for folder, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "node_modules"))
        for name in sorted(names):
            if name.endswith(".py"):
                info = os.stat(os.path.join(folder, name))
                files.append(
                    f"{os.path.relpath(os.path.join(folder, name), package)}:{info.st_size}:{info.st_mtime_ns}"
                )
    installed = {}  # an install, upgrade or removal renames entries of site-packages: its mtime moves
    dagster_version = ""
    for entry in sys.path:
        if os.path.basename(entry) in ("site-packages", "dist-packages"):
            try:
                installed[entry] = os.stat(entry).st_mtime_ns
            except OSError:
                installed[entry] = None
        version_file = os.path.join(entry, "dagster", "version.py")
        if not dagster_version and entry and os.path.isfile(version_file):
            with open(version_file, encoding="utf-8") as handle:
                dagster_version = handle.read()
    env = {
        k: v
        for k, v in environ.items()
        if (k.startswith(IMPORT_TIME_ENV_PREFIXES) or k in IMPORT_TIME_ENV) and k not in RUN_TIME_ENV
    }
    return {
        "python": [
            sys.executable,
            sys.version,
            repr(sys.flags),
            sys.warnoptions,
            sorted(sys._xoptions.items()),
        ],
        "sys_path": list(sys.path),
        "installed": installed,
        "package": str(package),
        "sources": hashlib.sha1("\n".join(files).encode()).hexdigest(),
        "dagster": dagster_version,
        "env": env,
        "uid": os.getuid(),
    }


def environment_key(parts: dict[str, Any] | None = None) -> str:
    """Return the key of this environment (see the module's docstring): 20 hex digits."""
    parts = key_parts() if parts is None else parts
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _paths(key: str, folder: Path) -> dict[str, Path]:
    return {s: folder / f"{key}.{s}" for s in ("sock", "lock", "log", "pid", "refused")}


# ----------------------------------------------------------------------------------------- the client


def _send_request(sock: socket.socket, payload: dict[str, Any], fds: Sequence[int] = ()) -> None:
    body = json.dumps(payload).encode()
    header = _HEADER.pack(PROTOCOL, len(body))
    if fds:
        socket.send_fds(sock, [header], list(fds))
    else:
        sock.sendall(header)
    sock.sendall(body)


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _Lines:
    """Newline-delimited JSON messages read from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def next(self) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def _connect(key: str, folder: Path) -> socket.socket | None:
    path = _paths(key, folder)["sock"]
    if len(str(path)) > MAX_SOCKET_PATH or not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _stdio_fds() -> list[int]:
    """Return fds 0, 1, 2 (a closed one replaced by /dev/null, as the child must have all three)."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_through_server(argv: Sequence[str]) -> int | None:
    """Run ``simulate argv`` in a warm server's child; return its exit code, or None when no server took it.

    None means nothing ran: the caller runs the command in-process.
    """
    if not enabled():
        return None
    folder = runtime_dir(create=False)
    if folder is None:
        return None
    key = environment_key()
    sock = _connect(key, folder)
    if sock is None:
        return None
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        cwd = os.getcwd()
    except OSError:  # the folder was removed: let the in-process path report it as it always has
        sock.close()
        return None
    request = {
        "op": "run",
        "key": key,
        "argv": list(sys.argv[:1]) + list(argv),
        "cwd": cwd,
        "env": dict(os.environ),
        "umask": umask,
        "sys_path": list(sys.path),
    }

    signals: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        signals.append(signum)
        try:
            sock.sendall(json.dumps({"signal": signum}).encode() + b"\n")
        except OSError:
            pass

    # From here a Ctrl-C goes to the command (queued in the socket until its child exists).
    previous = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS}
    try:
        try:
            _send_request(sock, request, _stdio_fds())
        except OSError:
            return None
        replies = _Lines(sock)
        first = replies.next()
        if first is None or "started" not in first:  # refused, or the server was stopping: nothing ran
            if signals:
                raise KeyboardInterrupt
            return None
        status = replies.next()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
    if status is None or "exit" not in status:
        log = _paths(key, folder)["log"]
        print(
            f"simulate: the warm server's connection closed before the command reported its exit status "
            f"(server log: {log}); set {ENABLE_VAR}=0 to run commands in-process",
            file=sys.stderr,
        )
        return 1
    if status.get("error"):
        print(f"simulate: {status['error']}", file=sys.stderr)
    killed_by = status.get("signal")
    if killed_by in (*FORWARDED_SIGNALS, signal.SIGKILL):  # end as the child ended
        sys.stderr.flush()
        signal.signal(killed_by, signal.SIG_DFL)
        os.kill(os.getpid(), killed_by)
    return int(status["exit"])


def _lock(path: Path, blocking: bool) -> int | None:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        return None
    return fd


def start_server(wait: float = 0.0) -> int | None:
    """Start a detached server for this environment unless one runs; return its pid (None if none started).

    With ``wait`` > 0, wait up to that many seconds until the server answers (a server that was
    already running answers at once).
    """
    import subprocess

    folder = runtime_dir()
    if folder is None:
        return None
    key = environment_key(key_parts(LAUNCH_ENV))
    paths = _paths(key, folder)
    if len(str(paths["sock"])) > MAX_SOCKET_PATH:
        return None
    if paths["refused"].exists():  # this environment's server could not fork safely (see its log)
        return None
    held = _lock(paths["lock"], blocking=False)
    pid = None
    if held is not None:  # nobody serves this key: start one (it takes the lock itself)
        os.close(held)
        log = os.open(paths["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        boot = (
            "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
            "from simulation_assets.cli import run_command; "
            "from simulation_assets.commands.server import serve; sys.exit(serve(sys.argv[2], run_command))"
        )
        try:
            child = subprocess.Popen(
                [
                    sys.executable,
                    *subprocess._args_from_interpreter_flags(),
                    "-c",
                    boot,
                    json.dumps(sys.path),
                    key,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                env=LAUNCH_ENV,
                start_new_session=True,
                close_fds=True,
            )
            child.returncode = 0  # never waited for here: it outlives this process (no ResourceWarning)
            pid = child.pid
        finally:
            os.close(log)
    if wait > 0:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            info = status(key, folder)
            if info is not None:
                return int(info["pid"])
            time.sleep(0.05)
        raise ServerError(f"the warm server did not answer within {wait:g} s (log: {paths['log']})")
    return pid


def start_after_command() -> None:
    """After an in-process command: start a server for the next one (unless turned off); never fails."""
    if not enabled():
        return
    try:
        start_server()
    except Exception:  # noqa: BLE001 - a convenience for the next command must never fail this one
        pass


def _ask(key: str, folder: Path, op: str) -> dict[str, Any] | None:
    sock = _connect(key, folder)
    if sock is None:
        return None
    try:
        sock.settimeout(5.0)
        _send_request(sock, {"op": op, "key": key})
        return _Lines(sock).next()
    except OSError:
        return None
    finally:
        sock.close()


def status(key: str | None = None, folder: Path | None = None) -> dict[str, Any] | None:
    """Return the running server's description (pid, key, children, served ...), or None."""
    folder = folder or runtime_dir(create=False)
    if folder is None:
        return None
    return _ask(key or environment_key(), folder, "status")


def all_keys(folder: Path | None = None) -> list[str]:
    """Return the keys of the sockets in the runtime folder (servers of every environment)."""
    folder = folder or runtime_dir(create=False)
    return sorted(p.stem for p in folder.glob("*.sock")) if folder else []


def stop(key: str | None = None, folder: Path | None = None, timeout: float = 10.0) -> list[int]:
    """Ask the server of ``key`` (default: this environment) to stop; return the pids that stopped."""
    folder = folder or runtime_dir(create=False)
    if folder is None:
        return []
    key = key or environment_key()
    reply = _ask(key, folder, "stop")
    if reply is None:
        return []
    pid = int(reply["pid"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.02)
    return [pid]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (ended, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ----------------------------------------------------------------------------------------- the server


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{os.getpid()}] {message}", flush=True)


class _Server:
    def __init__(self, key: str, folder: Path, run: Callable[..., int]) -> None:
        self.key, self.folder, self.paths, self.run_command = key, folder, _paths(key, folder), run
        self.idle_seconds = float(os.environ.get(IDLE_VAR) or DEFAULT_IDLE_SECONDS)
        self.check_seconds = float(os.environ.get(CHECK_VAR) or DEFAULT_CHECK_SECONDS)
        self.children: dict[int, socket.socket] = {}  # child pid -> its client's connection
        self.served = 0
        self.started = time.time()
        self.last_active = time.monotonic()
        self.stopping = ""
        self.listener: socket.socket | None = None
        self.wake_r, self.wake_w = os.pipe()
        self.pid = os.getpid()
        self.lock_fd: int | None = None  # the key's lock: a child must not hold it after the server is gone
        self.spare: tuple[int, socket.socket] | None = None  # (pid, the server's end of its socket pair)
        self.spare_ready = False  # the spare has imported what it imports and waits for a command
        self.spare_closed = False  # its socket reached EOF (it is ending)
        self.spare_paused = False  # stopped (SIGSTOP) while commands run, as it had not finished importing
        self.spare_served = 0
        self.spare_failures = 0  # spares in a row that died before serving
        if os.environ.get(SPARE_VAR, "1").strip().lower() in ("0", "off", "false", "no"):
            self.spare_failures = SPARE_FAILURES_MAX  # never make one

    # -- setup

    def listen(self) -> None:
        path = self.paths["sock"]
        path.unlink(missing_ok=True)  # left by a server that died (we hold the lock)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old)
        listener.listen(16)
        self.listener = listener
        self.paths["pid"].write_text(f"{os.getpid()}\n")

    def close_listener(self, reason: str) -> None:
        if self.listener is not None:
            _log(f"stops accepting commands: {reason}")
            self.stopping = reason
            self.paths["sock"].unlink(missing_ok=True)  # ours: the lock is held while we listen
            self.paths["pid"].unlink(missing_ok=True)
            self.listener.close()
            self.listener = None
        self.drop_spare()

    # -- loop

    def loop(self) -> None:
        import selectors

        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select (via the wakeup fd)
        signal.signal(signal.SIGTERM, lambda *_: self.close_listener("SIGTERM"))
        signal.signal(signal.SIGINT, lambda *_: self.close_listener("SIGINT"))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        next_key_check = time.monotonic() + self.check_seconds
        while self.listener is not None or self.children:
            if self.spare is None and not self.children:
                # at the start, and after a spare served or died: only while no command runs, so that
                # its imports (~0.5 s of CPU) never compete with a command for the CPU
                self.fork_spare()
            elif self.spare is not None and self.spare_paused and not self.children:
                self.resume_spare()
            with selectors.DefaultSelector() as sel:
                sel.register(self.wake_r, selectors.EVENT_READ, "wake")
                if self.listener is not None:
                    sel.register(self.listener, selectors.EVENT_READ, "accept")
                for conn in self.children.values():
                    sel.register(conn, selectors.EVENT_READ, "client")
                if self.spare is not None and not self.spare_ready and not self.spare_closed:
                    sel.register(self.spare[1], selectors.EVENT_READ, "spare")
                now = time.monotonic()
                # no longer accepting: sleep until a child ends (SIGCHLD) or a client writes
                timeout = (
                    max(0.0, min(next_key_check, self.last_active + self.idle_seconds) - now)
                    if self.listener is not None
                    else None
                )
                events = sel.select(timeout)
            self.reap()
            for selected, _mask in events:
                if selected.data == "wake":
                    try:
                        os.read(self.wake_r, 512)
                    except BlockingIOError:
                        pass
                elif selected.data == "accept" and self.listener is not None:
                    try:
                        conn, _ = self.listener.accept()
                    except OSError:
                        continue
                    self.handle(conn)
                elif selected.data == "client":
                    self.client_message(selected.fileobj)  # type: ignore[arg-type]
                elif selected.data == "spare":
                    self.spare_message()
            self.reap()
            now = time.monotonic()
            if self.children:
                self.last_active = now
            if (
                self.listener is not None
                and not self.children
                and now >= self.last_active + self.idle_seconds
            ):
                self.close_listener(f"idle for {self.idle_seconds:g} s")
            if self.listener is not None and now >= next_key_check:
                next_key_check = now + self.check_seconds
                try:
                    current = environment_key()
                except Exception as exc:  # noqa: BLE001 - a vanished file: the code changed
                    current = f"unreadable: {exc}"
                if current != self.key:
                    self.close_listener("the code or the environment changed")

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        fds: list[int] = []
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
            if len(data) < _HEADER.size:
                data += _read_exact(conn, _HEADER.size - len(data))
            protocol, size = _HEADER.unpack(data)
            if protocol != PROTOCOL:
                raise ValueError(f"unknown protocol {protocol!r}")
            request = json.loads(_read_exact(conn, size))
        except (OSError, ValueError, ConnectionError) as exc:
            _log(f"dropped a malformed request: {exc}")
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        op = request.get("op")
        if op == "status":
            self.reply(conn, self.describe())
            conn.close()
        elif op == "stop":
            self.reply(conn, {"pid": os.getpid(), "stopping": True})
            conn.close()
            self.close_listener("asked to stop")
        elif op == "run":
            self.run(conn, request, fds)
        else:
            self.reply(conn, {"refused": f"unknown request {op!r}"})
            conn.close()
        for fd in fds if op != "run" else ():
            os.close(fd)

    def describe(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "key": self.key,
            "socket": str(self.paths["sock"]),
            "log": str(self.paths["log"]),
            "started": self.started,
            "served": self.served,
            "running": sorted(self.children),
            "spare": self.spare[0] if self.spare is not None else None,
            "spare_ready": self.spare_ready,
            "spare_paused": self.spare_paused,
            "served_by_spare": self.spare_served,
            "idle_timeout_s": self.idle_seconds,
            "threads": _threads(),
            "python": sys.executable,
            "package": str(_package_dir()),
        }

    @staticmethod
    def reply(conn: socket.socket, message: dict[str, Any]) -> bool:
        try:
            conn.sendall(json.dumps(message).encode() + b"\n")
            return True
        except OSError:
            return False

    def run(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        refusal = ""
        if request.get("key") != self.key:
            refusal = "another environment"
        elif len(fds) != 3:
            refusal = f"expected 3 file descriptors, got {len(fds)}"
        elif _threads() != 1:  # fork only a single-threaded process
            refusal = f"the server has {_threads()} threads"
            self.close_listener(refusal)
        if refusal:
            self.reply(conn, {"refused": refusal})
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        if not self.reply(conn, {"started": True}):
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        pid = self.hand_to_spare(request, fds)
        if pid is not None:
            for fd in fds:
                os.close(fd)
            conn.settimeout(None)
            self.children[pid] = conn
            self.served += 1
            self.spare_served += 1
            self.last_active = time.monotonic()
            return  # the next spare is forked once no command runs (see loop)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: nothing ran
            _log(f"fork failed: {exc}")
            self.reply(conn, {"exit": 1, "error": f"the warm server could not fork: {exc}"})
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        if pid == 0:  # the child never returns to the server's loop
            _run_and_exit(lambda: self.child(conn, request, fds))
        for fd in fds:
            os.close(fd)
        conn.settimeout(None)
        self.children[pid] = conn
        self.served += 1
        self.last_active = time.monotonic()

    def child(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> int:
        self.leave_server(conn)
        return self.take_over(request, fds)

    def leave_server(self, *also: socket.socket) -> None:
        """In a fork: drop the server's signal handlers, sockets and descriptors; become a process group."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        spare = [self.spare[1]] if self.spare is not None else []
        for sock in (self.listener, *also, *self.children.values(), *spare):
            if sock is not None:
                sock.close()
        for fd in (self.wake_r, self.wake_w, self.lock_fd):
            if fd is not None:
                os.close(fd)
        os.setpgid(0, 0)  # its own process group: forwarded signals reach what the command starts
        _die_with_parent(self.pid)

    def take_over(self, request: dict[str, Any], fds: list[int]) -> int:
        """In a fork: take the client's descriptors, folder, environment, umask and argv; run the command."""
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        os.umask(int(request["umask"]))
        sys.argv = list(request["argv"])
        sys.path[:] = request["sys_path"]
        _reopen_stdio()
        # cli.run_command ends the process itself, unless a thread of the command still runs
        code = self.run_command(sys.argv[1:], start_server=False)
        import atexit
        import threading

        threading._shutdown()  # type: ignore[attr-defined]  # wait for the command's threads, as Python's exit does
        atexit._run_exitfuncs()
        return code

    # -- the spare

    def fork_spare(self) -> None:
        """Fork the spare for the next command (at most one; none while stopping or after repeated deaths)."""
        if self.spare is not None or self.listener is None or self.spare_failures >= SPARE_FAILURES_MAX:
            return
        if _threads() != 1:  # never fork a process with other threads (see run)
            return
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            _log(f"could not fork a spare: {exc}")
            mine.close()
            theirs.close()
            return
        if pid == 0:  # the spare never returns to the server's loop
            mine.close()
            _run_and_exit(lambda: self.spare_main(theirs))
        theirs.close()
        self.spare, self.spare_ready, self.spare_closed, self.spare_paused = (pid, mine), False, False, False

    def spare_main(self, sock: socket.socket) -> int:
        """In the spare: import ``spare_modules()``, say so, wait for a command and run it (or exit on EOF)."""
        self.leave_server()  # the server's sockets (this pair's other end is closed already)
        import gc
        import importlib

        for name in spare_modules():
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - the command will meet (and report) it itself
                _log(f"spare: import of {name} failed: {exc}")
        gc.collect()
        gc.freeze()  # as in the server: what the imports left is never scanned again
        try:
            sock.sendall(b"ready\n")
            data, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, 3)
            if not data:  # the server let it go (stopping) or died
                return 0
            if len(data) < _HEADER.size:
                data += _read_exact(sock, _HEADER.size - len(data))
            _protocol, size = _HEADER.unpack(data)
            request = json.loads(_read_exact(sock, size))
        except (OSError, ConnectionError, ValueError):
            return 0
        sock.close()
        return self.take_over(request, fds)

    def spare_message(self) -> None:
        if self.spare is None:
            return
        try:
            data = self.spare[1].recv(64)
        except OSError:
            data = b""
        if data.startswith(b"ready"):
            self.spare_ready = True
        elif not data:  # it is ending: reap() replaces it
            self.spare_closed = True

    def hand_to_spare(self, request: dict[str, Any], fds: list[int]) -> int | None:
        """Give the command to the spare when it is ready; return its pid, or None (the server forks)."""
        if self.spare is None:
            return None
        if not self.spare_ready:  # still importing: it would make this command wait for all of it
            if not self.spare_paused:  # and its imports would share the CPU with the command: pause them
                try:
                    os.kill(self.spare[0], signal.SIGSTOP)
                    self.spare_paused = True
                except OSError:
                    pass
            return None
        pid, sock = self.spare
        self.spare, self.spare_ready = None, False
        try:
            _send_request(sock, request, fds)
        except OSError as exc:  # it died meanwhile
            _log(f"spare {pid} did not take the command: {exc}")
            self.kill(pid, signal.SIGKILL)
            sock.close()
            self.spare_failures += 1
            return None
        sock.close()
        self.spare_failures = 0
        return pid

    def resume_spare(self) -> None:
        """Let a paused spare go on importing (no command runs any more)."""
        if self.spare is not None and self.spare_paused:
            self.spare_paused = False
            try:
                os.kill(self.spare[0], signal.SIGCONT)
            except OSError:
                pass

    def drop_spare(self) -> None:
        """End the spare (the server stops accepting commands)."""
        if self.spare is not None:
            pid, sock = self.spare
            self.spare, self.spare_ready = None, False
            sock.close()
            self.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    def client_message(self, conn: socket.socket) -> None:
        pid = next((p for p, c in self.children.items() if c is conn), None)
        if pid is None:
            return
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if not data:  # the client went away: end its command at once, as the client's own death would have
            _log(f"client of child {pid} went away; killing it")
            self.kill(pid, signal.SIGKILL)
            return
        for line in data.splitlines():
            try:
                signum = int(json.loads(line)["signal"])
            except (ValueError, KeyError, TypeError):
                continue
            if signum in FORWARDED_SIGNALS:
                self.kill(pid, signum)

    @staticmethod
    def kill(pid: int, signum: int) -> None:
        try:
            os.killpg(pid, signum)
        except OSError:
            try:
                os.kill(pid, signum)
            except OSError:
                pass

    def reap(self) -> None:
        while self.children or self.spare is not None:
            try:
                pid, wait_status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and pid == self.spare[0]:  # it died waiting (killed, out of memory ...)
                self.spare_failures += 1
                _log(f"spare {pid} ended before serving (status {wait_status})")
                self.spare[1].close()
                self.spare, self.spare_ready = None, False
                continue
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            message: dict[str, Any] = {"cpu_s": round(usage.ru_utime + usage.ru_stime, 4)}
            if os.WIFSIGNALED(wait_status):
                signum = os.WTERMSIG(wait_status)
                message.update(exit=128 + signum, signal=signum)
            else:
                message["exit"] = os.waitstatus_to_exitcode(wait_status)
            self.reply(conn, message)
            conn.close()
            self.last_active = time.monotonic()


def _die_with_parent(parent: int) -> None:
    """Linux: end this child if the server dies (SIGKILL, OOM), since no one would relay its status."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the server died between fork and here
            os._exit(1)
    except (OSError, AttributeError):
        pass


def _run_and_exit(main: Callable[[], int]) -> NoReturn:
    """Run a forked child's ``main`` and end the process with its code, as the interpreter would end it:
    an uncaught SystemExit gives its code (a message is printed), Ctrl-C ends by SIGINT, any other
    exception is printed and gives 1. Never returns (``os._exit``: the server's state is not unwound)."""
    code = 1
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        _flush_stdio()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:  # noqa: BLE001 - as the interpreter reports an uncaught exception
        import traceback

        traceback.print_exc()
    finally:
        _flush_stdio()
        os._exit(code)


def _flush_stdio() -> None:
    for out in (sys.stdout, sys.stderr):
        try:
            out.flush()
        except (OSError, ValueError, AttributeError):
            pass


def _reopen_stdio() -> None:
    """Give the child text streams over its new fds 0/1/2, buffered as a fresh process would be."""
    import io

    def stream(fd: int, template: Any, line_buffering: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        return io.TextIOWrapper(
            buffered,  # type: ignore[arg-type]
            encoding=getattr(template, "encoding", None) or "utf-8",
            errors=getattr(template, "errors", None) or "strict",
            line_buffering=line_buffering,
            write_through=fd != 0 and bool(os.environ.get("PYTHONUNBUFFERED")),
        )

    sys.stdin = sys.__stdin__ = stream(0, sys.__stdin__, False)
    sys.stdout = sys.__stdout__ = stream(1, sys.__stdout__, os.isatty(1))
    sys.stderr = sys.__stderr__ = stream(2, sys.__stderr__, True)


def serve(key: str, run: Callable[..., int]) -> int:
    """Run the server of ``key`` (the process ``start_server`` starts): 0 when it ends normally.

    ``run(args, start_server=False)`` is what a child runs: ``cli.run_command``, the in-process path
    of ``simulate`` (passed in by the process's start-up line, so this module never imports the CLI).
    """
    folder = runtime_dir()
    if folder is None:
        _log("no private runtime folder: not serving")
        return 3
    paths = _paths(key, folder)
    lock = _lock(paths["lock"], blocking=False)
    if lock is None:
        return 0  # another server of this key runs or is starting
    mine = environment_key()
    if mine != key:
        _log(f"this process's environment has key {mine}, asked for {key}: not serving")
        return 3
    started = time.process_time()
    from simulation_assets.sinks import code_cache, deferred_imports

    deferred_imports.install()  # as a command has it: Alembic and the daemons only when used
    code_cache.install()
    for name in PREIMPORTS:
        try:
            __import__(name)
        except ImportError as exc:
            _log(f"pre-import of {name} failed: {exc}")
    code_cache.save()  # now, not at the server's end: its children inherit nothing left to write
    from simulation_assets.commands import command_modules

    command_modules()
    import gc

    gc.collect()
    gc.freeze()  # what the imports left is shared with every child and never scanned again
    threads = _threads()
    if threads != 1:
        _log(f"the pre-imports left {threads - 1} other thread(s): a fork would not be safe; not serving")
        paths["refused"].write_text(f"{threads} threads after the pre-imports\n")  # no new start for this key
        return 3
    server = _Server(key, folder, run)
    server.lock_fd = lock
    server.listen()
    _log(f"serving {key} on {paths['sock']} (imports {time.process_time() - started:.2f} s CPU, "
         f"idle timeout {server.idle_seconds:g} s)")  # fmt: skip
    try:
        server.loop()
    finally:
        server.close_listener("exiting")
        os.close(lock)
    _log(f"exits after {server.served} command(s)")
    return 0


# ------------------------------------------------------------------------------------ the sub-command


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``server`` sub-command (status, start, stop of the warm server)."""
    p = sub.add_parser(
        "server",
        help="the warm server that runs commands without re-importing Dagster (status/start/stop)",
        description=(
            "A warm process that has imported Dagster runs each command in a fork of itself. "
            f"The first command starts it; it exits after {DEFAULT_IDLE_SECONDS:g} s idle "
            f"({IDLE_VAR}) or when the code changes. {ENABLE_VAR}=0 turns it off."
        ),
    )
    p.add_argument("action", choices=("status", "start", "stop"))
    p.add_argument("--all", action="store_true", help="stop: every server of this user")
    p.add_argument("--json", action="store_true", help="status/start: print the description as JSON")
    p.add_argument(
        "--wait", type=float, default=30.0, help="start: seconds to wait until it answers (default 30)"
    )
    p.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    from simulation_assets.commands.common import UsageError

    if args.action == "start":
        if not enabled():
            raise UsageError(f"the warm server is turned off ({ENABLE_VAR}={os.environ[ENABLE_VAR]})")
        try:
            start_server(wait=args.wait)
        except ServerError as exc:
            print(f"simulate server: {exc}", file=sys.stderr)
            return 1
        info = status()
        print(
            json.dumps(info)
            if args.json
            else f"warm server {info['pid']} serves {info['key']}"
            if info
            else "no server"
        )
        return 0 if info else 1
    if args.action == "stop":
        keys = all_keys() if args.all else [environment_key()]
        stopped = [pid for key in keys for pid in stop(key)]
        print(f"stopped {len(stopped)} server(s)" + (f": {', '.join(map(str, stopped))}" if stopped else ""))
        return 0
    info = status()
    if args.json:
        print(json.dumps(info))
    elif info is None:
        print(f"no warm server for this environment (key {environment_key()}); the next command starts one"
              if enabled() else f"the warm server is turned off ({ENABLE_VAR}={os.environ[ENABLE_VAR]})")  # fmt: skip
    else:
        print(
            f"warm server {info['pid']} (key {info['key']}): {info['served']} command(s) served, "
            f"{len(info['running'])} running, idle timeout {info['idle_timeout_s']:g} s; "
            f"spare {info['spare'] or 'none'}{' (ready)' if info['spare_ready'] else ''}, "
            f"{info['served_by_spare']} served by spares; log {info['log']}"
        )
    return 0
