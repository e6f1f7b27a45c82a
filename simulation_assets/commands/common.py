"""What every sub-command shares: input errors, output folders, progress, running assets."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


_CONSOLE: list[Console] = []


def rich_console() -> Console:
    """Return the one rich console of the CLI (rich is imported on first use: ``--help`` never loads it)."""
    if not _CONSOLE:
        from rich.console import Console

        _CONSOLE.append(Console(stderr=False, highlight=False, soft_wrap=True))
    return _CONSOLE[0]


# What rich would render differently from the text itself: markup ([bold]...) and emoji codes (:smile:);
# with markup off, only the emoji codes.
_RICH_TEXT = re.compile(r"\[|:[\w+-]+:")
_EMOJI_CODE = re.compile(r":[\w+-]+:")
_PLAIN_OPTIONS = {"markup", "highlight"}  # options that, turned off, leave a plain line as it is


class _LazyConsole:
    """Stands for ``rich_console()`` until something is printed (pass ``rich_console()`` to rich itself).

    A line of plain text (no markup, no emoji code; no options but markup or highlighting turned off)
    while rich is not loaded yet is written as it is, which is what rich would write: a command that only
    reports its summary does not import rich's console for it (~75 M instructions).
    """

    def print(self, *objects: Any, **kwargs: Any) -> None:
        text = objects[0] if len(objects) == 1 else None
        if not _CONSOLE and isinstance(text, str) and _plain(text, kwargs):
            sys.stdout.write(text + "\n")
            return
        rich_console().print(*objects, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(rich_console(), name)


def _plain(text: str, options: dict[str, Any]) -> bool:
    """True when rich would print ``text`` with ``options`` as the text itself."""
    if set(options) - _PLAIN_OPTIONS or any(value is not False for value in options.values()):
        return False
    return not (_EMOJI_CODE if options.get("markup") is False else _RICH_TEXT).search(text)


console: Console = _LazyConsole()  # type: ignore[assignment]


class UsageError(Exception):
    """Bad input from the user: the CLI prints the message and exits with code 2."""


def positive_int(name: str, value: int) -> int:
    """Return ``value`` or raise UsageError naming ``name`` when it is not > 0."""
    if value is None or value <= 0:
        raise UsageError(f"{name} must be a positive integer, got {value}")
    return value


def iso_date(name: str, value: str) -> dt.date:
    """Parse YYYY-MM-DD or raise UsageError naming ``name``."""
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a date as YYYY-MM-DD, got {value!r}") from None


def prepare_output(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and prove it is writable; raise UsageError otherwise."""
    out = Path(path).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"output folder {str(out)!r} is not writable: {exc.strerror or exc}") from None
    return out.resolve()


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (atomically) and return the path."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


def progress(min_total: int = 0) -> Progress:
    """Return a progress bar that shows completed/total and elapsed time.

    With ``min_total``, the bar (and rich) appears only once a visible task of at least that many steps
    is added: a command of one tick or one day shows its summary line only.
    """
    if min_total:
        return _BarWhenWorthIt(min_total)  # type: ignore[return-value]
    return _rich_progress()


class _BarWhenWorthIt:
    """The ``progress()`` bar, made when a visible task of ``min_total`` steps or more is added; the tasks
    added before it are added to it then, with their progress."""

    def __init__(self, min_total: int) -> None:
        self.min_total = min_total
        self.bar: Progress | None = None
        self.tasks: list[dict[str, Any]] = []

    def __enter__(self) -> _BarWhenWorthIt:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def add_task(self, description: str, total: float | None = None, visible: bool = True) -> int:
        self.tasks.append({"description": description, "total": total, "visible": visible, "completed": 0})
        if self.bar is None and visible and (total is None or total >= self.min_total):
            self.bar = _rich_progress()
            self.bar.__enter__()
            for task in self.tasks:
                task["id"] = self.bar.add_task(**{k: v for k, v in task.items() if k != "id"})
        elif self.bar is not None:
            self.tasks[-1]["id"] = self.bar.add_task(description, total=total, visible=visible)
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.tasks[task]["completed"] += advance
        if self.bar is not None:
            self.bar.advance(self.tasks[task]["id"], advance)


def _rich_progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=rich_console(),
        transient=False,
    )


def chunks(keys: list[str], size: int) -> Iterable[list[str]]:
    """Yield consecutive slices of ``keys`` of at most ``size``."""
    for i in range(0, len(keys), size):
        yield keys[i : i + size]


# While a command starts it imports Dagster, Polars, SQLAlchemy ... and builds its definitions: a
# million or more objects that live until the process ends, and no cyclic garbage. Python's collector
# would scan them again and again (0.08 s of the 1.7 s CPU of `simulate funnel`); it stays off until
# the command opens the Dagster instance (its run is next), then everything alive is frozen out of
# later collections and collection resumes. A command that never opens the instance (a server) gets
# it back after ``STARTUP_GC_SECONDS`` at the latest.
STARTUP_GC_SECONDS = 20.0
_GC_DEFERRED: list[bool] = []


def defer_gc() -> None:
    """Collect no cyclic garbage until ``resume_gc`` (the instance opens) or ``STARTUP_GC_SECONDS`` pass."""
    if gc.isenabled() and not _GC_DEFERRED:
        gc.disable()
        _GC_DEFERRED.append(True)
        timer = threading.Timer(STARTUP_GC_SECONDS, resume_gc)
        timer.daemon = True
        timer.start()


def resume_gc() -> None:
    """Freeze what the start-up left alive (never scanned again) and collect garbage again; once."""
    if _GC_DEFERRED and _GC_DEFERRED.pop():
        gc.freeze()
        gc.enable()


def dagster_instance():  # noqa: ANN201
    """Return the local Dagster instance the UI uses (creating ``./.dagster_home`` once, safely, if needed)."""
    import dagster as dg

    from simulation_assets.sinks.local_instance import ensure_local_instance

    ensure_local_instance()
    resume_gc()  # the run comes next: its garbage is collected as usual
    return dg.DagsterInstance.get()


class InterruptWatch:
    """Notices a Ctrl-C or SIGTERM that arrived while Dagster ran something: ``check()`` acts on it.

    Dagster's in-process execution takes SIGINT (and SIGTERM) over while a run executes; a signal
    that arrives outside a step's own code is recorded and then forgotten when the run ends, so a
    command that chains many short runs (the activity fast-forward) would never stop. Python writes
    every signal it receives to the wakeup fd whichever handler is installed: ``check()`` after each
    run reads it and raises ``KeyboardInterrupt`` for SIGINT, and for SIGTERM ends the process by it.
    Main thread only (elsewhere it watches nothing); the previous wakeup fd is restored on exit.
    """

    def __enter__(self) -> InterruptWatch:
        import signal

        self.fds: tuple[int, int] | None = None
        if threading.current_thread() is threading.main_thread():
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_blocking(write, False)
            self.previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
            self.fds = (read, write)
        return self

    def check(self) -> None:
        import signal

        if self.fds is None:
            return
        try:
            received = os.read(self.fds[0], 512)
        except BlockingIOError:
            return
        if signal.SIGTERM in received:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        if signal.SIGINT in received:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        import signal

        if self.fds is not None:
            signal.set_wakeup_fd(self.previous)
            for fd in self.fds:
                os.close(fd)


def run_resources(resources: dict[str, object]) -> dict[str, object]:
    """Return ``resources`` for ``dg.materialize`` with the run's IO manager: Dagster's default one, opened when first used.

    Every run builds an IO manager; Dagster's default makes its universal-pathlib path at once (and
    imports universal-pathlib and fsspec), though no asset of this project hands it a value.
    ``local_io_manager`` is the same manager in the same folder, making its path on a first value.
    A given ``io_manager``, or Dagster's ``DAGSTER_DEFAULT_IO_MANAGER_*`` override, is kept.
    """
    if "io_manager" in resources or os.environ.get("DAGSTER_DEFAULT_IO_MANAGER_MODULE"):
        return dict(resources)
    from simulation_assets.sinks.local_instance import local_io_manager

    return {**resources, "io_manager": local_io_manager}


# Step-by-step run logs belong in the Dagster UI, not on the terminal.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def materialize_range(
    assets: list[object], resources: dict[str, object], first: str, last: str, instance: object
):  # noqa: ANN201
    """Materialize ``assets`` over the partition range [first, last] as one run; raise on failure."""
    import dagster as dg

    result = dg.materialize(
        assets,  # type: ignore[arg-type]
        resources=run_resources(resources),
        instance=instance,  # type: ignore[arg-type]
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        run_config=QUIET_RUN_CONFIG,
        raise_on_error=True,
    )
    return result
