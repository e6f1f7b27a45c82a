"""Funnel events in the shape PostHog ingests: UUIDs, identified distinct ids, ``$identify``, ``$session_id``.

What PostHog needs (see the PostHog notes of the project's design):

* every event a ``uuid``; ours are UUIDv7 built from the event's time and its canonical
  ``event_id``, so a re-sent event deduplicates and the ids sort by time;
* identity stitching as an explicit ``$identify`` event at each ``login_success``, sent by
  the identified ``distinct_id`` (the user id) with ``$anon_distinct_id`` (the anonymous id);
  afterwards the browser, like posthog-js, sends as the user id;
* ``$session_id`` a UUIDv7 whose embedded time is the session's first event (PostHog drops
  other ids from its sessions table), and ``$current_url`` / ``$host`` / ``$pathname`` on
  browser events, ``$geoip_country_code`` from the person's geo.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.funnel.schema import TOP_LEVEL_COLUMNS

DEFAULT_SITE = "https://app.blanklogo.example"  # CohortConfig.site() of the default product
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DASHES = (8, 13, 18, 23)
POSTHOG_EXTRA_PROPERTIES: tuple[str, ...] = (
    "$session_id",
    "$current_url",
    "$host",
    "$pathname",
    "$geoip_country_code",
    "$anon_distinct_id",
    "$lib",
    "source",
    "environment",
    "user_id",
    "session_id",
)
"""Properties added to the canonical ones: PostHog's own (``$``) and the plan's top-level fields."""


def uuid7(t_ms: np.ndarray, random_hex: pl.Series) -> pl.Series:
    """Return UUIDv7 strings from epoch milliseconds and 19+ lower-case hex digits of randomness per row."""
    n = len(t_ms)
    rand = np.frombuffer(b"".join(random_hex.str.slice(0, 19).cast(pl.Binary).to_list()), dtype=np.uint8)
    rand = rand.reshape(n, 19) if n else np.zeros((0, 19), dtype=np.uint8)
    stamp = np.asarray(t_ms, dtype=np.uint64)
    digits = np.empty((n, 32), dtype=np.uint8)
    for i in range(12):  # 48 bits of milliseconds, most significant first
        digits[:, i] = _HEX[(stamp >> np.uint64(4 * (11 - i))) & np.uint64(15)]
    digits[:, 12] = ord("7")  # version 7
    digits[:, 13:16] = rand[:, 0:3]
    nibble = np.searchsorted(_HEX, rand[:, 3])  # variant 10xx
    digits[:, 16] = _HEX[8 | (nibble & 3)]
    digits[:, 17:32] = rand[:, 4:19]
    text = np.empty((n, 36), dtype=np.uint8)
    cols = [c for c in range(36) if c not in _DASHES]
    text[:, cols] = digits
    text[:, list(_DASHES)] = ord("-")
    return pl.Series(text.view("S36").ravel()).cast(pl.String) if n else pl.Series([], dtype=pl.String)


def property_columns(frame: pl.DataFrame) -> list[str]:
    """Return the property columns of a PostHog frame (everything but uuid, event, distinct_id, timestamp)."""
    return [c for c in frame.columns if c not in ("uuid", "event", "distinct_id", "timestamp")]


def to_posthog(events: pl.DataFrame, site_url: str = DEFAULT_SITE) -> pl.DataFrame:
    """Return ``events`` (canonical frame) as PostHog events, ``$identify`` ones included, in time order.

    Columns: ``uuid, event, distinct_id, timestamp`` and one column per property (null where an
    event does not carry it); give :func:`property_columns` to the PostHog sink.
    """
    host = site_url.split("://", 1)[-1].rstrip("/")
    ms = pl.col("timestamp").dt.epoch("ms")
    sessions = events.group_by("session_id").agg(ms.min().alias("_session_ms"))
    props = [c for c in events.columns if c not in TOP_LEVEL_COLUMNS]
    base = events.join(sessions, on="session_id", how="left").with_columns(ms.alias("_ms"))
    logins = base.filter(pl.col("event") == "login_success")
    identify = logins.select(
        pl.lit("$identify").alias("event"),
        "timestamp",
        "_ms",
        "_session_ms",
        "session_id",
        pl.col("user_id").alias("distinct_id"),
        pl.col("distinct_id").alias("$anon_distinct_id"),
        pl.lit("web").alias("source"),
        "environment",
        "user_id",
        # its own id: the login's random digits, rotated
        ("idf_" + pl.col("event_id").str.slice(16) + pl.col("event_id").str.slice(4, 12)).alias("event_id"),
        "geo",
    )
    main = base.select(
        "event",
        "timestamp",
        "_ms",
        "_session_ms",
        "session_id",
        # like posthog-js after identify(): the browser sends as the identified user from login on
        pl.coalesce("user_id", "distinct_id").alias("distinct_id"),
        pl.lit(None, dtype=pl.String).alias("$anon_distinct_id"),
        "source",
        "environment",
        "user_id",
        *props,
    )
    both = pl.concat([main, identify], how="diagonal_relaxed").sort("_ms", "event", maintain_order=True)
    web = (pl.col("source") == "web") & pl.col("page_path").is_not_null()
    return both.select(
        pl.lit(None, dtype=pl.String).alias("uuid"),
        "event",
        "distinct_id",
        "timestamp",
        "_ms",
        "_session_ms",
        "$anon_distinct_id",
        pl.when(web).then(pl.lit(site_url.rstrip("/")) + pl.col("page_path")).alias("$current_url"),
        pl.when(web).then(pl.lit(host)).alias("$host"),
        pl.when(web).then(pl.col("page_path")).alias("$pathname"),
        pl.col("geo").alias("$geoip_country_code"),
        pl.lit("funnel-simulation").alias("$lib"),
        "source",
        "environment",
        "user_id",
        "session_id",
        *[c for c in props if c not in ("event_id",)],
        "event_id",
    ).pipe(_with_ids)


def _with_ids(frame: pl.DataFrame) -> pl.DataFrame:
    event_uuid = uuid7(frame["_ms"].to_numpy(), frame["event_id"].str.slice(4))
    session_uuid = uuid7(frame["_session_ms"].to_numpy(), frame["session_id"].str.slice(5))
    return frame.with_columns(event_uuid.alias("uuid"), session_uuid.alias("$session_id")).drop(
        "_ms", "_session_ms"
    )
