"""Compute logs of the local instance: Dagster's files and UI, mirrored to the terminal by a thread.

Dagster's ``LocalComputeLogManager`` captures a run's stdout and stderr in files the UI reads
(``<storage>/<run id>/compute_logs/<key>.out|.err``), and mirrors them to the terminal with a
``tail -F`` process per stream, each watched by a fresh Python process (``watch_orphans.py``)
that kills it if the run dies: four processes started and stopped for every run, up to ~0.05 s
of CPU and 0.05-0.15 s of wall time per run on this machine (measured side by side, see
docs/architecture.md). ``ThreadedComputeLogManager`` writes the same files through the same
class, so the UI and ``dagster dev`` read them unchanged; each stream is redirected (at the file
descriptor, like Dagster, so output of C code and child processes is captured too) into a pipe,
and a thread of the run's own process copies the pipe to the file and to the original stream.
Nothing is left behind if the process dies: the thread dies with it. A child process the run
leaves running (a pool of workers) keeps writing into the same file, as under Dagster's ``tail``.
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

# When a capture ends, the process writes this mark into the pipe, hands the stream back, and waits
# until the copier has passed the mark: everything it wrote is then in the file. It does not wait for
# the pipe to close: a child process started during the run (a pool of workers) may hold it open; the
# copier keeps copying that child's output, as Dagster's `tail` kept following the file.
MARK = b"\x00simulation-assets compute log end\x00"
CHUNK = 1 << 16
DRAIN_SECONDS = 30.0  # at most, for the copier to pass the mark (it is behind only by what is unread)


def _fileno(stream: IO[Any]) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError):  # pytest's capture, a closed stream
        return None
    return fd if isinstance(fd, int) else None


def _mark_start(data: bytes) -> int:
    """Return how many bytes at the end of ``data`` could be the start of a mark split across reads (0 nearly always)."""
    for size in range(min(len(MARK) - 1, len(data)), 0, -1):
        if data.endswith(MARK[:size]):
            return size
    return 0


class _Copier(threading.Thread):
    """Copies a pipe to a file and to the stream's former target until the pipe closes; flags the mark."""

    def __init__(self, source: int, path: str, mirror: int) -> None:
        super().__init__(name="compute-log-copy", daemon=True)
        self.source, self.path, self.mirror = source, path, mirror
        self.marked = threading.Event()
        self._terminal_ok = True

    def _out(self, file: IO[bytes], data: bytes) -> None:
        if not data:
            return
        file.write(data)
        view = memoryview(data)
        while self._terminal_ok and view:
            try:
                view = view[os.write(self.mirror, view) :]  # a write to a pipe may take only part
            except OSError:  # the terminal went away: the file still gets everything
                self._terminal_ok = False

    def run(self) -> None:
        pending = b""
        with open(self.path, "ab", buffering=0) as file:
            while chunk := os.read(self.source, CHUNK):
                pending += chunk
                if not self.marked.is_set() and MARK in pending:
                    before, after = pending.split(MARK, 1)
                    self._out(file, before)
                    self.marked.set()
                    pending = after
                held = 0 if self.marked.is_set() else _mark_start(pending)
                self._out(file, pending[: len(pending) - held])
                pending = pending[len(pending) - held :]
            self._out(file, pending)
        self.marked.set()
        os.close(self.source)
        os.close(self.mirror)


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
    copier = _Copier(source, path, mirror)
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
        try:
            os.write(fd, MARK)  # smaller than PIPE_BUF: one piece, never mixed with another writer's bytes
            drain = DRAIN_SECONDS
        except OSError:  # the run closed the stream itself: nothing more of ours can come
            drain = 0.0
        os.dup2(mirror, fd)  # the stream writes where it did before
        copier.marked.wait(drain)


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
