"""The opt-in dirt profile (``WarehouseConfig.dirt``): what real sources land, injected after generation.

The generators build clean tables; ``apply`` then dirties a table (or one chunk of it) when the profile
is on, so the clean data never depend on it. Which rows get dirt is a fixed hash of the global row index
(``sampling.dirty_rows``, one salt per kind), so a chunk's dirt does not depend on the other chunks and
``injected`` knows the exact counts without generating anything: the dirt checks compare the loaded
tables with them. The kinds (see ``config.Dirt`` for what the dbt staging models do about each):

- ``job_title_nulls`` / ``landing_page_nulls``: nulls in optional fields;
- ``archived_tickets``: soft-deleted HubSpot tickets still in the export;
- ``late_events``: Stripe webhook events received 1 h to ``late_event_max_hours`` after they were created;
- ``duplicate_events``: Stripe webhook events delivered a second time, 2-50 minutes after the first delivery
  (the copy is appended to the chunk with its own ``delivery_id``: table rows + the event's row + 1);
- ``naive_timestamps``: HubSpot engagements imported from a CSV (``engagement_source`` 'IMPORT') whose
  ``occurred_at`` is the wall-clock time of ``source_timezone``, without an offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.rng import splitmix64
from simulation_assets.core.warehouse.check_types import Check
from simulation_assets.core.warehouse.config import Dirt, WarehouseConfig
from simulation_assets.core.warehouse.sampling import HOUR, US, dirty_rows

# One salt per kind, so the kinds hit different rows (the first three keep the rows they always had).
SALT = {
    "job_title_nulls": 11,
    "landing_page_nulls": 23,
    "archived_tickets": 37,
    "late_events": 41,
    "duplicate_events": 43,
    "naive_timestamps": 47,
}
LATE_AFTER = HOUR  # a delivery received more than this after the event's creation is late
IMPORT = "IMPORT"  # engagement_source of the engagements with naive local timestamps


@dataclass(frozen=True)
class Kind:
    """One kind of dirt: the table it lands in, its share, and the SQL that measures it in a loaded table."""

    name: str
    table: str
    share: str  # the field of ``config.Dirt`` with its share
    measure: str  # SQL aggregate over the raw table
    what: str


KINDS: tuple[Kind, ...] = (
    Kind("job_title_nulls", "hubspot_contacts", "null_share", "count(*) - count(job_title)",
         "contacts without a job title"),
    Kind("landing_page_nulls", "ga_sessions", "null_share", "count(*) - count(landing_page)",
         "website sessions without a landing page"),
    Kind("archived_tickets", "hubspot_tickets", "archived_ticket_share",
         "sum(CASE WHEN archived THEN 1 ELSE 0 END)", "soft-deleted (archived) tickets"),
    Kind("late_events", "stripe_events", "late_event_share",
         "sum(CASE WHEN received_at > created + INTERVAL '1 hour' THEN 1 ELSE 0 END)",
         "webhook deliveries received more than an hour after the event (late ones and their repeats)"),
    Kind("duplicate_events", "stripe_events", "duplicate_event_share", "count(*) - count(DISTINCT event_id)",
         "repeated webhook deliveries of an event"),
    Kind("naive_timestamps", "hubspot_engagements", "naive_timestamp_share",
         f"sum(CASE WHEN engagement_source = '{IMPORT}' THEN 1 ELSE 0 END)",
         "imported engagements with a timezone-naive local occurred_at"),
)  # fmt: skip
TABLES = frozenset(k.table for k in KINDS)


def _rows(dirt: Dirt, kind: str, start: int, stop: int) -> np.ndarray:
    share = getattr(dirt, next(k.share for k in KINDS if k.name == kind))
    return dirty_rows(start, stop, share, SALT[kind])


def _uniform(start: int, stop: int, salt: int) -> np.ndarray:
    """Return a float in [0, 1) per global row ``start .. stop - 1``: a splitmix64 hash of the row index."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):  # splitmix64 adds the golden ratio itself: take it back from the salt
        z = splitmix64(np.arange(start, stop, dtype=np.uint64) * golden + (np.uint64(salt) - golden))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def duplicates(cfg: WarehouseConfig, table: str, start: int, stop: int) -> int:
    """Return how many repeated deliveries the profile appends to global rows ``start .. stop - 1`` of ``table``."""
    if not cfg.dirt.enabled or table != "stripe_events":
        return 0
    return int(_rows(cfg.dirt, "duplicate_events", start, stop).sum())


def loaded_rows(cfg: WarehouseConfig, table: str, start: int, stop: int) -> int:
    """Return the rows of global rows ``start .. stop - 1`` of ``table`` once dirtied (the repeats included)."""
    return stop - start + duplicates(cfg, table, start, stop)


def injected(cfg: WarehouseConfig, rows: dict[str, int]) -> dict[str, int]:
    """Return how many rows each kind of dirt touches in whole tables of ``rows`` rows (all 0 when it is off)."""
    dirt = cfg.dirt
    out = {}
    for kind in KINDS:
        if kind.table not in rows or not dirt.enabled:
            out[kind.name] = 0
            continue
        hit = _rows(dirt, kind.name, 0, rows[kind.table])
        if kind.name == "late_events":  # a repeat of a late delivery is late too
            hit = hit.astype(np.int64) + (hit & _rows(dirt, "duplicate_events", 0, rows[kind.table]))
        out[kind.name] = int(hit.sum())
    return out


def apply(cfg: WarehouseConfig, table: str, frame: pl.DataFrame, start: int, total: int) -> pl.DataFrame:
    """Return ``frame`` (global rows ``start ..`` of a ``total``-row table) with the profile's dirt, if it is on."""
    dirt = cfg.dirt
    if not dirt.enabled or table not in TABLES:
        return frame
    stop = start + frame.height
    if table == "hubspot_contacts":
        return _null(frame, "job_title", _rows(dirt, "job_title_nulls", start, stop))
    if table == "ga_sessions":
        return _null(frame, "landing_page", _rows(dirt, "landing_page_nulls", start, stop))
    if table == "hubspot_tickets":
        return frame.with_columns(archived=pl.Series(_rows(dirt, "archived_tickets", start, stop)))
    if table == "hubspot_engagements":
        return _naive(frame, _rows(dirt, "naive_timestamps", start, stop), dirt.source_timezone)
    return _webhooks(dirt, frame, start, stop, total)


def _null(frame: pl.DataFrame, column: str, hit: np.ndarray) -> pl.DataFrame:
    return frame.with_columns(frame[column].set(pl.Series(hit), None))


def _naive(frame: pl.DataFrame, hit: np.ndarray, timezone: str) -> pl.DataFrame:
    """Write the hit engagements' ``occurred_at`` as ``timezone`` wall-clock time and mark them imported."""
    flag = pl.Series(hit)
    local = pl.col("occurred_at").dt.replace_time_zone("UTC").dt.convert_time_zone(timezone)
    return frame.with_columns(
        occurred_at=pl.when(flag).then(local.dt.replace_time_zone(None)).otherwise(pl.col("occurred_at")),
        engagement_source=pl.when(flag)
        .then(pl.lit(IMPORT))
        .otherwise(pl.col("engagement_source").cast(pl.String)),
    )


def _webhooks(dirt: Dirt, frame: pl.DataFrame, start: int, stop: int, total: int) -> pl.DataFrame:
    """Delay the late deliveries, then append a second delivery of the repeated events."""
    late = _rows(dirt, "late_events", start, stop)
    delay = (
        LATE_AFTER + 1 + _uniform(start, stop, SALT["late_events"]) * (dirt.late_event_max_hours - 1) * HOUR
    )
    received = frame["received_at"].cast(pl.Int64) + np.where(late, delay.astype(np.int64), 0) * US
    frame = frame.with_columns(received_at=received.cast(pl.Datetime("us")))
    repeat = _rows(dirt, "duplicate_events", start, stop)
    if not repeat.any():
        return frame
    index = np.flatnonzero(repeat)
    gap = 120 + (_uniform(start, stop, SALT["duplicate_events"])[index] * 2_880).astype(np.int64)  # 2-50 min
    copies = frame[index].with_columns(
        delivery_id=pl.Series(total + start + index + 1, dtype=pl.Int64),
        received_at=(pl.col("received_at").cast(pl.Int64) + pl.Series(gap * US)).cast(pl.Datetime("us")),
    )
    return pl.concat([frame, copies.select(frame.columns)], how="vertical_relaxed")


def checks(tables: list[str], rows: dict[str, int], cfg: WarehouseConfig, raw: str = "raw") -> list[Check]:
    """Return one check per kind of dirt: the raw table holds exactly what the profile injected (nothing when
    it is off). Not blocking: the staging models clean it."""
    counts = injected(cfg, rows)
    off = "" if cfg.dirt.enabled else " (it is off)"
    return [
        Check(f"{k.table}_{k.name}_as_injected", k.table, "dirt", f"SELECT {k.measure} FROM {raw}.{k.table}",
              counts[k.name], f"{k.what}: exactly the {counts[k.name]:,} the dirt profile injected{off}")
        for k in KINDS if k.table in tables
    ]  # fmt: skip


def utc_sql(cfg: WarehouseConfig, table: str, column: str, alias: str) -> str:
    """Return SQL for ``alias.column`` in UTC: the imported engagements' naive local times converted back."""
    if cfg.dirt.enabled and (table, column) == ("hubspot_engagements", "occurred_at"):
        tz = cfg.dirt.source_timezone
        return (
            f"CASE WHEN {alias}.engagement_source = '{IMPORT}' "
            f"THEN ({alias}.{column} AT TIME ZONE '{tz}') AT TIME ZONE 'UTC' ELSE {alias}.{column} END"
        )
    return f"CAST({alias}.{column} AS TIMESTAMP)"
