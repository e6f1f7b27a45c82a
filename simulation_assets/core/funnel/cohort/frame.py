"""The events frame of a cohort: blocks of rows per event type, joined with attribution and identity.

Generators add one block per event type (the users, times and sessions it applies
to, plus its properties); :func:`assemble` concatenates the blocks in the order they
were added, joins each clicker's attribution onto every row and applies the plan's
identity rule (section 4): browser events carry the anonymous ``distinct_id`` and,
from ``login_success`` on, also the ``user_id``; server and worker events after
login use the ``user_id`` as ``distinct_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort.draws import hex_ids
from simulation_assets.core.funnel.schema import EVENT_SCHEMA, event_columns, polars_type
from simulation_assets.core.funnel.taxonomy import PROPERTIES, TAXONOMY

Jobs = dict[str, Any]
"""A batch of jobs: one array or Series per attribute (``user``, ``job_id``, ``success`` ...), one entry per job."""


@dataclass
class EventBlocks:
    """Accumulates blocks of events that share a shape; :func:`assemble` turns them into one frame."""

    frames: list[pl.DataFrame] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    """The event name of each block (its column is built once, at assembly)."""

    def add(
        self,
        event: str,
        user: np.ndarray,
        t_ms: np.ndarray,
        session: pl.Series | np.ndarray,
        **props: object,
    ) -> None:
        """Add one ``event`` row per entry of ``user`` at ``t_ms``; properties are arrays, Series or scalars."""
        n = len(user)
        if n == 0:
            return
        cols: dict[str, object] = {
            "user": pl.Series(user, dtype=pl.Int64),
            "t_ms": pl.Series(np.asarray(t_ms, dtype=np.int64)),
            "session_id": session if isinstance(session, pl.Series) else pl.Series(session, dtype=pl.String),
        }
        for name, value in props.items():
            dtype = polars_type(PROPERTIES[name])
            if isinstance(value, pl.Series):
                cols[name] = value.cast(dtype)
            elif isinstance(value, np.ndarray) and value.dtype == object:
                cols[name] = pl.Series(value.tolist(), dtype=dtype)
            elif isinstance(value, np.ndarray):
                cols[name] = pl.Series(value).cast(dtype)
            else:  # a scalar: one value repeated (new_from_index is ~15x faster than pl.repeat here)
                cols[name] = pl.Series(name, [value], dtype=dtype).new_from_index(0, n)
        self.frames.append(pl.DataFrame(cols))
        self.names.append(event)


def assemble(
    blocks: EventBlocks,
    users: pl.DataFrame,
    t_login: np.ndarray,
    logged: np.ndarray,
    environment: str,
    gen: np.random.Generator,
) -> pl.DataFrame:
    """Join per-user attribution onto the event blocks and apply the identity rule; return the events frame."""
    if not blocks.frames:
        return empty_events_frame()
    ev = pl.concat(blocks.frames, how="diagonal_relaxed", rechunk=True)
    block = np.repeat(np.arange(len(blocks.names)), [f.height for f in blocks.frames])
    ev = ev.with_columns(
        pl.Series("event", blocks.names, dtype=pl.String).gather(block),
        pl.Series("source", [TAXONOMY[name].source for name in blocks.names], dtype=pl.String).gather(block),
    )
    login = pl.Series(np.where(logged, t_login, np.iinfo(np.int64).max))
    # users row i is user i: a positional gather instead of a hash join
    ev = pl.concat([ev, users.drop("user").select(pl.all().gather(ev["user"]))], how="horizontal")
    after_login = login.gather(ev["user"]) <= ev["t_ms"]
    ev = ev.with_columns(
        after_login.alias("_after"),
    ).with_columns(
        pl.when(pl.col("_after")).then(pl.col("usr_id")).otherwise(None).alias("user_id"),
        pl.when(pl.col("_after") & (pl.col("source") != "web"))
        .then(pl.col("usr_id"))
        .otherwise(pl.col("anon_id"))
        .alias("distinct_id"),
        pl.from_epoch(pl.col("t_ms"), time_unit="ms").dt.replace_time_zone("UTC").alias("timestamp"),
        pl.lit(environment).alias("environment"),
    )
    # Rows stay grouped by event type (sorting ~80 mostly-null columns costs more than generating them).
    ev = ev.with_columns(hex_ids(gen, ev.height, "evt_").alias("event_id"))
    return conform(ev)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with exactly the events-frame columns, in order and typed (missing ones null)."""
    cols = []
    for name, dtype in EVENT_SCHEMA.items():
        if name in frame.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(cols)


def empty_events_frame() -> pl.DataFrame:
    """Return an events frame with no rows."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


__all__ = ["EventBlocks", "Jobs", "assemble", "conform", "empty_events_frame", "event_columns"]
