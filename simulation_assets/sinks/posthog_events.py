"""Where HogFlix product events go: Parquet files (default) or a PostHog project's ``/batch/`` endpoint.

The PostHog path posts the same body the ``posthog`` client's ``batch_post``
sends (``{"api_key", "historical_migration", "batch": [...]}``, gzip), but
confirms every batch itself: a batch counts as delivered only on HTTP 2xx;
429, 408, 5xx and network errors are retried by the shared HTTP policy
(``http_retry``: exponential backoff with jitter, ``Retry-After`` honoured); any
other answer, or running out of retries, raises ``PostHogDeliveryError`` so the
run fails instead of dropping events. Event uuids are deterministic, so a retried or re-run batch never
creates duplicates in PostHog. ``sent_at`` is deliberately not sent: PostHog
would shift each event by the clock skew it implies, and a re-sent event must
keep the exact timestamp to deduplicate.

Throughput: a few worker threads each take a chunk of whole batches, encode it
to JSON with Polars in one call, and gzip (ISA-L) and post its batches over a
kept-alive connection; all three steps release the GIL, so encoding overlaps
with sending and with the server's parsing.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.sinks.http_retry import (
    DeliveryError,
    RetrySettings,
    send,
)

if TYPE_CHECKING:
    import httpx

try:  # ISA-L's gzip: the same format, about five times faster than zlib at the fastest level
    from isal import igzip as _gzip

    _MAX_GZIP_LEVEL = 3
except ImportError:  # pragma: no cover - isal is a declared dependency
    import gzip as _gzip

    _MAX_GZIP_LEVEL = 9

MODES = ("parquet", "posthog")
HISTORICAL_MODES = ("auto", "always", "never")
_REPORT_LOCK = threading.Lock()


class PostHogDeliveryError(DeliveryError):
    """A batch was not accepted by PostHog after all retries (or was refused outright)."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message, retryable=retryable, status=status)


@dataclass
class DeliveryReport:
    """What a delivery did: events and batches confirmed, retries, historical batches."""

    mode: str
    events: int = 0
    batches: int = 0
    retries: int = 0
    historical_batches: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, object]:
        return {
            "sink": self.mode,
            "events_delivered": self.events,
            "batches": self.batches,
            "retries": self.retries,
            "historical_batches": self.historical_batches,
            "bytes_sent": self.bytes_sent,
            "http_statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


_ISO_MS = "%Y-%m-%dT%H:%M:%S%.3fZ"


def property_columns_by_event(
    events: pl.DataFrame, property_columns: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Return, per event name, the property columns that are not null for every event of that name.

    ``property_columns`` are the frame's property columns (default: HogFlix's event frame).
    """
    if property_columns is None:
        from simulation_assets.core.hogflix.event_frame import PROPERTY_COLUMNS as property_columns
    props = [c for c in property_columns if c in events.columns]
    counts = events.group_by("event").agg(pl.len().alias("__n"), *[pl.col(c).null_count() for c in props])
    return {row["event"]: [c for c in props if row[c] < row["__n"]] for row in counts.iter_rows(named=True)}


def _json_expressions(keep: dict[str, list[str]]) -> dict[str, pl.Expr]:
    """Return, per event name, the expression encoding one event as a JSON object."""
    head = [
        pl.col("uuid"),
        pl.col("event"),
        pl.col("distinct_id"),
        pl.col("timestamp").dt.strftime(_ISO_MS).alias("timestamp"),
    ]
    out = {}
    for name, cols in keep.items():
        if cols:
            out[name] = pl.struct(*head, pl.struct(cols).alias("properties")).struct.json_encode()
        else:  # nothing to say but the event itself: an empty properties object
            out[name] = pl.struct(*head).struct.json_encode().str.strip_suffix("}") + pl.lit(
                ',"properties":{}}'
            )
    return out


def _json_objects(events: pl.DataFrame, exprs: dict[str, pl.Expr]) -> pl.Series:
    """Return one JSON object per row of ``events``, in row order (``exprs`` from ``_json_expressions``)."""
    frame = events.with_row_index("__row")
    parts = [
        group.select("__row", exprs[name].alias("json"))
        for (name,), group in frame.group_by("event", maintain_order=True)
    ]
    return pl.concat(parts).sort("__row")["json"]


def encode_events(events: pl.DataFrame, property_columns: Sequence[str] | None = None) -> list[str]:
    """Return one JSON object per event (uuid, event, distinct_id, ISO timestamp, properties), in order.

    Properties are the event frame's property columns; a column that is null
    for every event of one name is left out of that name's events.
    """
    if events.is_empty():
        return []
    return _json_objects(
        events, _json_expressions(property_columns_by_event(events, property_columns))
    ).to_list()


def _compress(payload: bytes, level: int) -> bytes:
    return _gzip.compress(payload, compresslevel=max(0, min(level, _MAX_GZIP_LEVEL)))


class PostHogEvents(dg.ConfigurableResource, RetrySettings):
    """Delivers HogFlix events to PostHog, or leaves them in Parquet (the default).

    Environment: ``HOGFLIX_EVENTS_SINK`` (parquet|posthog), ``PH_HOST``, and the
    project API key in ``PH_PROJECT_API_KEY`` (bound as a ``dg.EnvVar``: the UI shows
    the variable's name, the value is read when a run starts).
    """

    ENV: ClassVar[dict[str, str]] = {
        "mode": "HOGFLIX_EVENTS_SINK",
        "host": "PH_HOST",
        "api_key": "PH_PROJECT_API_KEY",
    }

    mode: str = Field(
        default="parquet",
        description="parquet (events stay in the local store) or posthog (also POSTed to /batch/).",
    )
    host: str = Field(default="https://us.i.posthog.com", description="PostHog host ($PH_HOST).")
    api_key: str = Field(default="", description="Project API key ($PH_PROJECT_API_KEY).")
    batch_size: int = 1000
    gzip: bool = True
    historical_migration: str = Field(
        default="auto", description="auto: batches whose newest event is older than historical_after_hours"
    )
    historical_after_hours: float = 48.0
    max_future_hours: float = 23.0  # PostHog clamps anything later to the ingestion time
    timeout_seconds: float = 30.0
    concurrency: int = 2  # batches in flight at once
    gzip_level: int = 1  # fastest: JSON of events still compresses ~10x (ISA-L levels are 0-3)

    @property
    def _lock(self) -> threading.Lock:
        return _REPORT_LOCK

    def validate_config(self) -> None:
        """Raise ValueError naming the field when the configuration cannot work."""
        if self.mode not in MODES:
            raise ValueError(f"HOGFLIX_EVENTS_SINK / mode must be one of {MODES}, got {self.mode!r}")
        if self.historical_migration not in HISTORICAL_MODES:
            raise ValueError(f"historical_migration must be one of {HISTORICAL_MODES}")
        if self.batch_size <= 0 or self.max_retries < 0:
            raise ValueError("batch_size must be > 0 and max_retries >= 0")
        if self.mode == "posthog":
            if not self.api_key:
                raise ValueError("PostHog delivery needs the project API key in $PH_PROJECT_API_KEY")
            if not self.host.startswith(("http://", "https://")):
                raise ValueError(f"PH_HOST must be an http(s) URL, got {self.host!r}")

    def deliver(
        self,
        events: pl.DataFrame,
        now: dt.datetime | None = None,
        property_columns: Sequence[str] | None = None,
    ) -> DeliveryReport:
        """Send ``events`` (parquet mode: nothing to send); return the report or raise PostHogDeliveryError.

        ``events`` has ``uuid, event, distinct_id, timestamp`` and property columns:
        ``property_columns`` names them (default: HogFlix's event frame).
        """
        self.validate_config()
        report = DeliveryReport(mode=self.mode)
        if self.mode == "parquet" or events.is_empty():
            return report
        now = now or dt.datetime.now(dt.UTC)
        latest = events["timestamp"].max()
        if latest is not None and latest > now + dt.timedelta(hours=self.max_future_hours):
            raise PostHogDeliveryError(
                f"refusing to send events dated {latest.isoformat()}: more than {self.max_future_hours} h "
                "after now, PostHog would move them to the ingestion time"
            )
        import httpx  # only when something is sent: a Parquet-only run never loads it

        keep = property_columns_by_event(events, property_columns)
        exprs = _json_expressions(keep)
        # Batches go out in timestamp order, with only the columns that are sent.
        sent = [
            "uuid",
            "event",
            "distinct_id",
            "timestamp",
            *dict.fromkeys(c for cols in keep.values() for c in cols),
        ]
        frame = events.select(sent).sort("timestamp", maintain_order=True)
        started = time.perf_counter()
        prefix = '{"api_key":' + json.dumps(self.api_key) + ',"historical_migration":'
        url = self.host.rstrip("/") + "/batch/"
        # Work is handed out in chunks of whole batches (~10k events): Polars encodes a chunk in one call
        # (per-call overhead would dominate batch by batch), then the worker posts the chunk's batches.
        per_chunk = self.batch_size * max(1, 10_000 // self.batch_size)
        chunks = [(a, min(a + per_chunk, frame.height)) for a in range(0, frame.height, per_chunk)]

        def send(a: int, b: int, client: httpx.Client) -> None:
            # Polars' JSON encoder, gzip and the socket all release the GIL: while one worker encodes
            # or compresses, another one's batch is on the wire or being parsed by the server.
            chunk = frame.slice(a, b - a)
            objects = _json_objects(chunk, exprs)
            stamps = chunk["timestamp"]
            for i in range(0, b - a, self.batch_size):
                n = min(self.batch_size, b - a - i)
                historical = self._historical(stamps[i + n - 1], now)
                head = prefix + ("true" if historical else "false") + ',"batch":['
                batch = objects.slice(i, n).str.join(",").cast(pl.Binary).item()
                self._post(client, url, b"".join((head.encode(), batch, b"]}")), report)
                with self._lock:
                    report.events += n
                    report.batches += 1
                    report.historical_batches += int(historical)

        workers = max(1, min(self.concurrency, len(chunks)))
        with httpx.Client(
            timeout=self.timeout_seconds, limits=httpx.Limits(max_connections=workers)
        ) as client:
            if workers == 1:
                for a, b in chunks:
                    send(a, b, client)
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    futures = [pool.submit(send, a, b, client) for a, b in chunks]
                    try:
                        for future in futures:
                            future.result()  # the first failure propagates: the run fails loudly
                    except BaseException:
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise
        report.seconds = time.perf_counter() - started
        return report

    def _historical(self, newest: dt.datetime, now: dt.datetime) -> bool:
        if self.historical_migration != "auto":
            return self.historical_migration == "always"
        return newest < now - dt.timedelta(hours=self.historical_after_hours)

    def _post(self, client: httpx.Client, url: str, payload: bytes, report: DeliveryReport) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "simulation-assets/hogflix"}
        if self.gzip:
            payload = _compress(payload, self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        policy = self.retry_policy()

        def count_status(response: httpx.Response) -> None:
            with self._lock:
                report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1

        def count_retry(_error: BaseException, _wait: float) -> None:
            with self._lock:
                report.retries += 1

        try:
            send(
                client,
                "POST",
                url,
                policy,
                what="PostHog batch",
                on_response=count_status,
                on_retry=count_retry,
                content=payload,
                headers=headers,
            )
        except DeliveryError as exc:
            raise PostHogDeliveryError(str(exc), retryable=exc.retryable, status=exc.status) from exc
        with self._lock:
            report.bytes_sent += len(payload)
