"""The load's live line: requests sent and answered, errors, the last seconds' rate and p95 latency."""

from __future__ import annotations

import resource
from collections import deque


def sleeps() -> int:
    """Return how many times this process has gone to sleep waiting (voluntary context switches)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def percentile(ordered: list[float], q: float) -> float:
    """Return the ``q`` quantile of ascending ``ordered`` (linear, as numpy's default; 0 when empty).

    A live line a second over a few thousand latencies: numpy's percentile cost ~8 % of a load's CPU.
    """
    if not ordered:
        return 0.0
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


class Progress:
    """Counts for the live line: sent, answered, errors, recent latencies."""

    def __init__(self) -> None:
        self.sent = self.done = self.errors = self.in_flight = 0
        self.recent: deque[tuple[float, float]] = deque()

    def line(self, now: float, elapsed: float, target: str) -> str:
        """Return the live line at ``now`` (the run clock's Unix seconds), ``elapsed`` into the load."""
        while self.recent and self.recent[0][0] < now - 5.0:
            self.recent.popleft()
        p95 = percentile(sorted(ms for _, ms in self.recent), 0.95)
        rate = sum(1 for at, _ in self.recent if at >= now - 1.0)
        return (
            f"t={elapsed:6.1f}s  sent {self.sent:>7} ({target})  {rate:>6} req/s  "
            f"p95 {p95:7.1f} ms  errors {100.0 * self.errors / max(self.done, 1):5.2f} %  in flight {self.in_flight}"
        )
