"""Where power-user runs keep their tables, logs and reports in the local data folder.

Layout under the store root: ``power_users/<table>/<day>/<archetype>.parquet`` for the five run
tables (a population's clones share their archetype's file), ``power_users/logs/<day>/<run id>.log`` and ``power_users/reports/<day>/simulation_report.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from simulation_assets.core.power_users.report import (
    ATTEMPT_SCHEMA,
    EDGE_SCHEMA,
    LOAD_SCHEMA,
    REQUEST_SCHEMA,
    USER_SCHEMA,
)
from simulation_assets.sinks.local_store import LocalParquetStore

SCHEMAS: dict[str, dict[str, Any]] = {
    "requests": REQUEST_SCHEMA,
    "attempts": ATTEMPT_SCHEMA,
    "edges": EDGE_SCHEMA,
    "users": USER_SCHEMA,
    "load": LOAD_SCHEMA,
}
TABLES = tuple(SCHEMAS)


def dataset(table: str, day: str) -> str:
    """Return the store dataset holding ``table`` rows of ``day`` (one file per persona)."""
    return f"power_users/{table}/{day}"


def write_tables(store: LocalParquetStore, frames: dict[str, pl.DataFrame], day: str) -> None:
    """Replace each archetype's files of ``day`` with the rows of ``frames`` (one file per archetype and table)."""
    users = frames["users"]
    for archetype in users["archetype"].unique(maintain_order=True).to_list():
        names = users.filter(pl.col("archetype") == archetype)["user"]
        for table in TABLES:
            frame = frames.get(table, pl.DataFrame(schema=SCHEMAS[table]))
            column = "archetype" if table in ("users", "load") else "user"
            rows = (
                frame.filter(pl.col(column) == archetype)
                if column == "archetype"
                else frame.filter(pl.col("user").is_in(names))
            )
            store.write(dataset(table, day), archetype, rows)


def read_day(
    store: LocalParquetStore, day: str, personas: list[str] | None = None
) -> dict[str, pl.DataFrame]:
    """Return the five tables of ``day`` over the stored archetypes (or only ``personas``).

    Columns a file lacks (written by an older version) come back as nulls.
    """
    keys = personas if personas is not None else store.partitions(dataset("users", day))
    out = {}
    for table, schema in SCHEMAS.items():
        stored = store.read_many(dataset(table, day), keys)
        out[table] = pl.concat([pl.DataFrame(schema=schema), stored], how="diagonal_relaxed").select(
            list(schema)
        )
    return out


def log_path(store: LocalParquetStore, day: str, run_id: str) -> Path:
    """Return the file a run writes its request log of ``day`` to."""
    return store.root() / "power_users" / "logs" / day / f"{run_id}.log"


def report_path(store: LocalParquetStore, day: str) -> Path:
    """Return the file holding the day's ``simulation_report.json``."""
    return store.root() / "power_users" / "reports" / day / "simulation_report.json"


def write_report(path: Path, report: dict[str, Any]) -> Path:
    """Write ``report`` as indented JSON through a temporary file; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_report(path: Path) -> dict[str, Any]:
    """Return the report stored at ``path``."""
    return json.loads(path.read_text(encoding="utf-8"))
