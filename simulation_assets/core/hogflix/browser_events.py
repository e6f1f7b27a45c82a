"""Browser-made HogFlix events in the events-store shape: schema, decoding into frames, encoding for PostHog.

posthog-js events arrive as JSON objects (the web app's capture endpoint
decodes the request); ``events_frame`` turns a list of them into the frame the
events store keeps beside the server tier's events, and ``encode_for_batch``
turns stored rows back into PostHog ``/batch/`` objects with the SDK's own
properties, uuids and timestamps.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

TIER = "browser"

# Properties kept as their own columns (the rest stays in the ``properties`` JSON column).
PROPERTY_COLUMNS: dict[str, pl.DataType] = {
    "$session_id": pl.String(),
    "$window_id": pl.String(),
    "$device_id": pl.String(),
    "$current_url": pl.String(),
    "$host": pl.String(),
    "$pathname": pl.String(),
    "$referrer": pl.String(),
    "$referring_domain": pl.String(),
    "$pageview_id": pl.String(),
    "$prev_pageview_pathname": pl.String(),
    "$prev_pageview_duration": pl.Float64(),
    "$lib": pl.String(),
    "$lib_version": pl.String(),
    "$browser": pl.String(),
    "$os": pl.String(),
    "$device_type": pl.String(),
    "$anon_distinct_id": pl.String(),
    "$event_type": pl.String(),
    "is_synthetic": pl.Boolean(),
    "synthetic_session": pl.String(),
    "plan": pl.String(),
    "state": pl.String(),
    "activity_pattern": pl.String(),
    "entry_point": pl.String(),
    "video_id": pl.String(),
    "video_title": pl.String(),
    "genre": pl.String(),
    "progress_percent": pl.Float64(),
    "rating": pl.Int32(),
    "question": pl.String(),
    "ticket_category": pl.String(),
}
BROWSER_EVENT_SCHEMA: dict[str, pl.DataType] = {
    "uuid": pl.String(),
    "event": pl.String(),
    "timestamp": pl.Datetime("ms", "UTC"),
    "distinct_id": pl.String(),
    "persona_distinct_id": pl.String(),
    "partition_key": pl.String(),
    "tier": pl.String(),
    **PROPERTY_COLUMNS,
    "properties": pl.String(),
}


def distinct_id_of(event: dict) -> str | None:
    """Return the event's distinct id the way PostHog's capture reads it (top level, then properties)."""
    props = event.get("properties") or {}
    value = event.get("distinct_id") or event.get("$distinct_id") or props.get("distinct_id")
    return None if value is None else str(value)[:200]


def persona_of(event: dict) -> str | None:
    """Return the persona a synthetic event belongs to (``synthetic_persona`` super property)."""
    props = event.get("properties") or {}
    value = props.get("synthetic_persona")
    return None if value is None else str(value)


def _timestamp(event: dict) -> dt.datetime | None:
    value = event.get("timestamp") or (event.get("properties") or {}).get("$time")
    if value is None:
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def window_of(moment: dt.datetime) -> str:
    """Return the half-hourly partition key (``YYYY-MM-DD-HH:MM``) containing ``moment``."""
    floored = moment.astimezone(dt.UTC).replace(minute=moment.minute - moment.minute % 30, second=0,
                                                microsecond=0)  # fmt: skip
    return floored.strftime("%Y-%m-%d-%H:%M")


def events_frame(events: list[dict]) -> pl.DataFrame:
    """Return the events in the events-store shape (``BROWSER_EVENT_SCHEMA``), ordered by time.

    ``partition_key`` is the half-hour of the event's own timestamp, so browser
    events land in the same windows as the server tier's events of that time.
    Events the SDK sent twice (same uuid) appear once.
    """
    rows = []
    for event in events:
        props = event.get("properties") or {}
        moment = _timestamp(event) or dt.datetime.now(dt.UTC)
        row = {
            "uuid": event.get("uuid"),
            "event": event.get("event"),
            "timestamp": moment,
            "distinct_id": distinct_id_of(event),
            "persona_distinct_id": persona_of(event),
            "partition_key": window_of(moment),
            "tier": TIER,
            "properties": json.dumps(props, sort_keys=True, default=str),
        }
        for name, dtype in PROPERTY_COLUMNS.items():
            value = props.get(name)
            if value is not None and dtype == pl.String() and not isinstance(value, str):
                value = json.dumps(value) if isinstance(value, dict | list) else str(value)
            if value is not None and dtype == pl.Float64():
                value = _float(value)
            if value is not None and dtype == pl.Int32():
                value = _int(value)
            if value is not None and dtype == pl.Boolean():
                value = value in (True, "true", "True", 1)
            row[name] = value
        rows.append(row)
    if not rows:
        return pl.DataFrame(schema=BROWSER_EVENT_SCHEMA)
    frame = pl.DataFrame(rows, schema=BROWSER_EVENT_SCHEMA)
    # The SDK may send an event twice (a retried request, a flush on unload): its uuid is the same.
    return frame.unique("uuid", keep="first", maintain_order=True).sort("timestamp", "uuid")


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _int(value: object) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def encode_for_batch(frame: pl.DataFrame) -> list[str]:
    """Return one PostHog ``/batch/`` JSON object per row, with the full original properties."""
    out = []
    for row in frame.select("uuid", "event", "distinct_id", "timestamp", "properties").iter_rows():
        uuid, event, distinct_id, moment, props = row
        props = json.loads(props)
        props.pop("token", None)  # the batch's api_key names the project
        out.append(
            json.dumps(
                {
                    "uuid": uuid,
                    "event": event,
                    "distinct_id": distinct_id,
                    "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                    "properties": props,
                },
                separators=(",", ":"),
            )
        )
    return out
