"""Compute logs of the local instance: Dagster's files and UI, mirrored to the terminal by a thread.

Dagster's ``LocalComputeLogManager`` captures a run's stdout and stderr in files the UI reads
(``<storage>/<run id>/compute_logs/<key>.out|.err``), and mirrors them to the terminal with a
``tail -F`` process per stream, each watched by a fresh Python process (``watch_orphans.py``)
that kills it if the run dies: four processes started and stopped for every run, ~0.1 s of wall
time and ~0.06 s of CPU per command on this machine (measured side by side, see
docs/architecture.md). ``ThreadedComputeLogManager`` writes the same files through the same
class, so the UI and ``dagster dev`` read them unchanged; each stream is redirected (at the file
descriptor, like Dagster, so output of C code and child processes is captured too) into a pipe,
and a thread of the run's own process copies the pipe to the file and to the original stream.
Nothing is left behind if the process dies: the thread dies with it.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from dagster import Field, Float, StringSource
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._serdes import ConfigurableClassData
from dagster._utils import ensure_file, touch_file

# After a run, how long to wait for the copy of the last bytes. The pipe closes as soon as the run
# hands its streams back, unless a child process it started still holds them: then stop waiting
# (the thread keeps copying what that child writes, to the same file).
DRAIN_SECONDS = 2.0
CHUNK = 1 << 16


def _fileno(stream: IO[Any]) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError):  # pytest's capture, a closed stream
        return None
    return fd if isinstance(fd, int) else None


def _copy(source: int, path: str, mirror: int) -> None:
    """Copy ``source`` (a pipe) to the file at ``path`` and to ``mirror`` until the pipe closes."""
    with open(path, "ab", buffering=0) as file:
        terminal_ok = True
        while chunk := os.read(source, CHUNK):
            file.write(chunk)
            if terminal_ok:
                try:
                    os.write(mirror, chunk)
                except OSError:  # the terminal went away: the file still gets everything
                    terminal_ok = False
    os.close(source)
    os.close(mirror)


@contextmanager
def mirror_stream_to_file(stream: IO[Any], path: str) -> Iterator[None]:
    """While inside, send what is written to ``stream`` (its file descriptor) to ``path`` and to where it went before."""
    ensure_file(path)
    fd = _fileno(stream)
    if fd is None:  # no file descriptor to redirect (e.g. under pytest): Dagster captures nothing either
        yield
        return
    stream.flush()
    mirror = os.dup(fd)
    source, sink = os.pipe()
    copier = threading.Thread(target=_copy, args=(source, path, mirror), name="compute-log-copy", daemon=True)
    copier.start()
    os.dup2(sink, fd)
    os.close(sink)
    try:
        yield
    finally:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
        os.dup2(mirror, fd)  # the stream writes where it did before; the pipe's last writer is gone
        copier.join(DRAIN_SECONDS)


class ThreadedComputeLogManager(LocalComputeLogManager):
    """``LocalComputeLogManager`` (same files, same UI) that mirrors a run's output with a thread, not processes.

    ``base_dir`` defaults to ``$DAGSTER_HOME/storage``, where Dagster's default manager keeps them.
    """

    def __init__(
        self,
        base_dir: str | None = None,
        polling_timeout: float | None = None,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        from simulation_assets.sinks.local_instance import dagster_home

        super().__init__(base_dir or str(dagster_home() / "storage"), polling_timeout, inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "base_dir": Field(StringSource, is_required=False),
            "polling_timeout": Field(Float, is_required=False),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> ThreadedComputeLogManager:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Generator[CapturedLogContext, None, None]:
        if os.name == "nt":  # no fork cost to save there; Dagster's own way
            with super().capture_logs(log_key) as context:
                yield context
            return
        out = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        err = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with mirror_stream_to_file(sys.stdout, out), mirror_stream_to_file(sys.stderr, err):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))  # the UI's sign that the capture is complete
