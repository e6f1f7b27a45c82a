"""``simulate``: a thin command-line front that materializes the project's assets in-process.

Runs are recorded in the local Dagster instance (``$DAGSTER_HOME``, default
``./.dagster_home``), so ``dagster dev`` started from the same folder shows them.
Exit codes: 0 success, 2 bad input, 1 failure.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from simulation_assets.commands import command_modules, demo_modules
from simulation_assets.commands.common import UsageError, console, defer_gc


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser with one sub-command per domain plus ``demo``; with ``command`` (the
    first word of the command line), only that sub-command's when it names one (see ``command_modules``)."""
    parser = argparse.ArgumentParser(
        prog="simulate",
        description="Simulate users and data as Dagster assets (see README.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run every domain small, on embedded defaults")
    demo.add_argument("--output", default="demo_output", help="folder for the results (default: demo_output)")
    demo.set_defaults(handler=_run_demo)
    for module in command_modules(command):
        module.register(sub)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from simulation_assets.commands.common import prepare_output

    root = prepare_output(args.output)
    for module in demo_modules():
        module.run_demo(Path(root))
    console.print(f"[bold green]Demo finished.[/] Results in {root}. Open the UI with: dagster dev")
    return 0


# A command creates a few million objects while it imports Dagster, Polars, SQLAlchemy ... and
# builds its definitions, almost none of them garbage: Python's default (a young collection every
# 700 new objects) spent 0.25-0.35 s of a 2.2 s HogFlix day scanning them. A young collection every
# 100,000 objects keeps memory bounded (cycles are still collected) and costs ~0.3 s less.
GC_THRESHOLDS = (100_000, 50, 100)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simulate`` console script; returns the exit code.

    Called with ``argv`` it runs the command in this process and returns. Called without (the
    console script, ``python -m simulation_assets.cli``) it reads ``sys.argv``, hands the command to
    the warm server of this environment when one runs (``commands/server.py``; ``SIMULATE_SERVER=0``
    turns it off), else runs it here (``run_command``) and ends the process itself.
    """
    if argv is not None:
        return _run(argv)
    args = sys.argv[1:]
    if _server_may_run(args):
        from simulation_assets.commands.server import run_through_server

        code = run_through_server(args)
        if code is not None:
            return code
    return run_command(args)


def _server_may_run(args: Sequence[str]) -> bool:
    """Whether a warm server may run (or be started for) ``args``: not for help or ``simulate server``."""
    return bool(args) and args[0] != "server" and not any(a in ("-h", "--help") for a in args)


def run_command(args: Sequence[str], start_server: bool = True) -> int:
    """Run ``simulate args`` in this process and end it (``exit_now``); the warm server's children run this too.

    Collects no cyclic garbage while the command starts and less often afterwards (see
    ``defer_gc``, ``GC_THRESHOLDS``). With ``start_server``, a command that got past its arguments
    then starts a warm server for the next one (unless ``SIMULATE_SERVER=0``).
    """
    gc.set_threshold(*GC_THRESHOLDS)
    defer_gc()  # no collection at all until the command opens the instance (see defer_gc)
    code = _run(list(args))
    if start_server and code != 2 and _server_may_run(args):
        from simulation_assets.commands.server import start_after_command

        start_after_command()
    exit_now(code)
    return code


def exit_now(code: int) -> None:
    """End the process with ``code`` once the command is done, without tearing down every module.

    A command loads Dagster, Polars, SQLAlchemy ... (thousands of modules); the interpreter's own
    teardown of them costs 0.5-0.7 s of CPU after the work is finished and everything is written.
    Exit handlers still run (logging flushes, temporary folders, the instance's resources), then the
    streams are flushed and the process ends. When a thread of the command is still running,
    Python's normal exit waits for it instead, and so it does under a profiler or a tracer (they
    write their report after the program returns).
    """
    import atexit
    import threading

    if sys.getprofile() is not None or sys.gettrace() is not None:
        return
    if any(t.is_alive() and not t.daemon and t is not threading.main_thread() for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to tell
            pass
    os._exit(code)


def _run(argv: Sequence[str] | None) -> int:
    # Dagster notes that a few APIs this project relies on are beta (see pyproject's filterwarnings):
    # that is for the maintainers, not for someone running a simulation. Deprecations still show.
    warnings.filterwarnings("ignore", message=r".* is currently in beta", category=Warning)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    words = list(argv) if argv is not None else sys.argv[1:]
    parser = build_parser(words[0] if words else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad input already
        return int(exc.code or 0)
    from simulation_assets.sinks import code_cache, deferred_imports

    deferred_imports.install()  # Alembic and Dagster's daemons load only if the command uses them
    code_cache.install()  # the source text libraries compile as they are imported, compiled once per Python
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 1


if __name__ == "__main__":
    sys.exit(main())
