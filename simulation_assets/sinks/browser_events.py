"""Where browser-made HogFlix events go: the same Parquet store as the server tier, and PostHog.

Browser events are kept beside the server tier's ``events`` dataset as
``browser_events`` (one file per half-hour window, the window of each event's
own timestamp). ``merge`` adds events to their windows (used by the capture
endpoint of ``simulate target serve``, which receives events as they come);
``replace`` rewrites a window (used by the browser-tier asset, so a re-run
replaces its output). When the events sink is PostHog, ``forward`` delivers
them to ``/batch/`` through the ``PostHogEvents`` resource with the SDK's own
uuids and timestamps and every batch confirmed.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import httpx
import polars as pl

from simulation_assets.core.hogflix.browser_events import BROWSER_EVENT_SCHEMA, encode_for_batch, events_frame
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.posthog_events import DeliveryReport, PostHogEvents

_LOCK = threading.Lock()


class BrowserEventsStore:
    """Reads and writes the ``browser_events`` windows of one dataset of a ``LocalParquetStore``."""

    def __init__(self, store: LocalParquetStore, dataset: str) -> None:
        self.store = store
        self.dataset = dataset

    def merge(self, events: list[dict]) -> int:
        """Add decoded SDK events to their windows (deduplicated by uuid); return how many were new."""
        frame = events_frame(events)
        added = 0
        with _LOCK:
            for (key,), part in frame.group_by("partition_key", maintain_order=True):
                old = self.read(key)
                merged = pl.concat([old, part], how="vertical_relaxed").unique("uuid", keep="first")
                added += merged.height - old.height
                self.store.write(self.dataset, key, merged.sort("timestamp", "uuid"))
        return added

    def replace(self, key: str, frame: pl.DataFrame) -> None:
        """Rewrite window ``key`` with ``frame`` (its events only)."""
        with _LOCK:
            self.store.write(self.dataset, key, frame.sort("timestamp", "uuid"))

    def read(self, key: str) -> pl.DataFrame:
        """Return window ``key`` (empty frame when never written)."""
        if not self.store.exists(self.dataset, key):
            return pl.DataFrame(schema=BROWSER_EVENT_SCHEMA)
        return self.store.read(self.dataset, key)


def forward(posthog: PostHogEvents, frame: pl.DataFrame, now: dt.datetime | None = None) -> DeliveryReport:
    """Deliver browser events to PostHog when its mode is ``posthog`` (else report nothing sent).

    Uses the resource's confirmed, retried POST; ``sent_at`` is left out, so
    PostHog keeps the SDK's timestamps exactly (a re-send deduplicates by uuid).
    """
    posthog.validate_config()
    report = DeliveryReport(mode=posthog.mode)
    if posthog.mode != "posthog" or frame.is_empty():
        return report
    now = now or dt.datetime.now(dt.UTC)
    ordered = frame.sort("timestamp")
    encoded = encode_for_batch(ordered)
    stamps = ordered["timestamp"].to_list()
    url = posthog.host.rstrip("/") + "/batch/"
    api_key = posthog.api_key
    started = time.perf_counter()
    with httpx.Client(timeout=posthog.timeout_seconds) as client:
        for i in range(0, len(encoded), posthog.batch_size):
            chunk = encoded[i : i + posthog.batch_size]
            historical = posthog._historical(stamps[min(i + posthog.batch_size, len(stamps)) - 1], now)
            body = (
                '{"api_key":' + json.dumps(api_key) + ',"historical_migration":'
                + ("true" if historical else "false") + ',"batch":[' + ",".join(chunk) + "]}"
            )  # fmt: skip
            # The token the browser used is replaced by the project key the server tier sends with.
            posthog._post(client, url, body.encode(), report)
            report.events += len(chunk)
            report.batches += 1
            report.historical_batches += int(historical)
    report.seconds = time.perf_counter() - started
    return report
