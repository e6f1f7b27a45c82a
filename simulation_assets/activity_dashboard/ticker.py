"""A background thread that applies a tick every ``interval_seconds`` while the dashboard is served."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Ticker:
    """Calls ``tick`` once at start, then every ``interval_seconds`` (measured start to start), until stopped.

    ``max_ticks`` (optional) stops it after that many calls. Errors are kept in ``status()``
    and logged; the next tick is tried on schedule, since each tick is safe to retry.
    """

    def __init__(
        self, tick: Callable[[], object], interval_seconds: float, max_ticks: int | None = None
    ) -> None:
        self._tick = tick
        self.interval_seconds = interval_seconds
        self.max_ticks = max_ticks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="activity-ticker", daemon=True)
        self.ticks_done = 0
        self.failures = 0
        self.last_error: str | None = None
        self.next_tick_at: dt.datetime | None = None
        self.busy = False

    def start(self) -> Ticker:
        """Start the thread; return self."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to stop after the current tick and wait up to ``timeout`` seconds."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Return whether the thread is alive and not asked to stop."""
        return self._thread.is_alive() and not self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.busy = True
            try:
                self._tick()
                self.ticks_done += 1
                self.last_error = None
            except Exception as exc:  # keep ticking: a tick is retried on the next beat
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("activity tick failed")
            finally:
                self.busy = False
            if self.max_ticks is not None and self.ticks_done >= self.max_ticks:
                self.next_tick_at = None
                return
            wait = max(0.0, self.interval_seconds - (time.monotonic() - started))
            self.next_tick_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
            self._stop.wait(wait)
        self.next_tick_at = None

    def status(self) -> dict[str, object]:
        """Return a JSON-ready view of the ticker for the dashboard."""
        return {
            "running": self.running,
            "busy": self.busy,
            "interval_seconds": self.interval_seconds,
            "ticks_done": self.ticks_done,
            "failures": self.failures,
            "last_error": self.last_error,
            "next_tick_at": self.next_tick_at.isoformat() if self.next_tick_at else None,
        }
