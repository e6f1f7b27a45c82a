"""The web app's own capture endpoint: decode what posthog-js sends and keep the events.

posthog-js posts arrays of events to ``/e/`` (and ``/i/v0/e/``, ``/batch/``),
gzip-compressed by default (``compression=gzip-js``: raw gzip bytes, sniffed by
their magic number as PostHog's capture does), as a ``data=`` base64 form field
when compression is base64, or as plain JSON. ``decode_capture`` accepts all
three; ``CaptureLog`` keeps the decoded events in memory (thread-safe, for the
browser-tier asset and the tests) and hands each request's events to an
optional callback (``simulate target serve`` writes them into the events store).
``core/hogflix/browser_events.py`` turns them into the events-store shape.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

GZIP_MAGIC = b"\x1f\x8b"


class CaptureDecodeError(ValueError):
    """A capture request whose body is not an event, a list of events or a batch."""


def decode_capture(body: bytes, content_type: str = "", query: str = "") -> list[dict]:
    """Return the events of one capture request (gzip, base64 ``data=`` form, or plain JSON)."""
    raw = body
    if not raw and "data=" in query:
        raw = query.encode()
        content_type = "application/x-www-form-urlencoded"
    if raw[:2] == GZIP_MAGIC:
        raw = gzip.decompress(raw)
    elif "x-www-form-urlencoded" in content_type or raw[:5] == b"data=":
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))
        data = (form.get("data") or [""])[0]
        try:
            raw = base64.b64decode(data + "=" * (-len(data) % 4))
        except ValueError as exc:
            raise CaptureDecodeError(f"data= field is not base64: {exc}") from None
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptureDecodeError(f"body is not JSON after decoding: {exc}") from None
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        payload = payload["batch"]
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list) or not all(isinstance(e, dict) and e.get("event") for e in payload):
        raise CaptureDecodeError("expected an event object, a list of events or {'batch': [...]}")
    return payload


@dataclass
class CaptureLog:
    """Thread-safe record of every event the capture endpoint accepted, plus request counters."""

    on_events: Callable[[list[dict]], None] | None = None
    events: list[dict] = field(default_factory=list)
    requests: int = 0
    rejected: int = 0
    recordings: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, events: list[dict]) -> None:
        with self._lock:
            self.requests += 1
            self.events.extend(events)
        if self.on_events is not None:
            self.on_events(events)

    def reject(self) -> None:
        with self._lock:
            self.rejected += 1

    def add_recording(self) -> None:
        with self._lock:
            self.recordings += 1

    def snapshot(self) -> list[dict]:
        """Return a copy of the events received so far."""
        with self._lock:
            return list(self.events)

    def take(self, synthetic_sessions: set[str] | None = None) -> list[dict]:
        """Remove and return the events (of the given ``synthetic_session`` ids only, when given)."""
        with self._lock:
            if synthetic_sessions is None:
                taken, self.events = self.events, []
                return taken
            taken = [e for e in self.events if _session_ref(e) in synthetic_sessions]
            self.events = [e for e in self.events if _session_ref(e) not in synthetic_sessions]
            return taken


def _session_ref(event: dict) -> str | None:
    return (event.get("properties") or {}).get("synthetic_session")
