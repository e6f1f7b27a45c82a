"""Parquet interchange for the warehouse: one file per small table, a folder of chunk files per big one.

Layout under a root folder::

    <root>/<table>.parquet                 tables with one chunk
    <root>/<table>/part-00000.parquet ...  chunked tables

Every file is written to a temporary name and renamed into place, so a chunk
re-written alone replaces exactly its file. ``write_tables`` can spread chunks
over worker processes: chunks are independent, so the bytes do not depend on
the number of workers or the order they finish in.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.config import WarehouseConfig
from simulation_assets.core.warehouse.generate import Warehouse

COMPRESSION = "lz4"  # fastest to write and to read back in DuckDB and pyarrow


def chunk_path(root: Path, table: str, k: int) -> Path:
    """Return the file of chunk ``k`` of ``table`` under ``root``."""
    if schema.table(table).chunks == 1:
        return root / f"{table}.parquet"
    return root / table / f"part-{k:05d}.parquet"


def table_paths(root: Path, table: str) -> list[Path]:
    """Return every chunk file of ``table`` (existing or not), in chunk order."""
    return [chunk_path(root, table, k) for k in range(schema.table(table).chunks)]


def table_glob(root: Path, table: str) -> str:
    """Return a glob that matches the table's files (for DuckDB ``read_parquet``)."""
    if schema.table(table).chunks == 1:
        return str(root / f"{table}.parquet")
    return str(root / table / "part-*.parquet")


def write_frame(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` atomically to ``path``; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.write_parquet(tmp, compression=COMPRESSION, statistics=True, row_group_size=1_000_000)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_chunk(warehouse: Warehouse, root: Path, table: str, k: int) -> tuple[int, Path]:
    """Generate chunk ``k`` of ``table`` and write it; return (rows, path)."""
    frame = warehouse.chunk(table, k)
    return frame.height, write_frame(frame, chunk_path(root, table, k))


@dataclass
class TableResult:
    rows: int = 0
    seconds: float = 0.0
    files: int = 0


_WORKER: dict[tuple, Warehouse] = {}


def _worker_chunk(
    seed: int, env: str, config_json: str, root: str, table: str, k: int
) -> tuple[str, int, int, float]:
    key = (seed, env, config_json)
    if key not in _WORKER:
        _WORKER.clear()
        _WORKER[key] = Warehouse(seed, env, WarehouseConfig.model_validate_json(config_json))
    started = time.perf_counter()
    rows, _ = write_chunk(_WORKER[key], Path(root), table, k)
    return table, k, rows, time.perf_counter() - started


def write_tables(
    seed: int,
    env: str,
    root: Path,
    tables: Iterable[str],
    config: WarehouseConfig | None = None,
    workers: int = 1,
    on_chunk: Callable[[str, int, int], None] | None = None,
) -> dict[str, TableResult]:
    """Generate and write every chunk of ``tables``; return rows, seconds (summed over chunks) and files per table.

    ``on_chunk(table, k, rows)`` is called after each chunk (for progress bars).
    """
    cfg = config or WarehouseConfig()
    names = [t for t in schema.TABLE_NAMES if t in set(tables)]
    results = {t: TableResult() for t in names}
    jobs = [(t, k) for t in names for k in range(schema.table(t).chunks)]
    if workers <= 1:
        warehouse = Warehouse(seed, env, cfg)
        for t, k in jobs:
            started = time.perf_counter()
            rows, _ = write_chunk(warehouse, root, t, k)
            _record(results[t], rows, time.perf_counter() - started)
            if on_chunk:
                on_chunk(t, k, rows)
        return results
    import multiprocessing as mp

    cfg_json = cfg.model_dump_json()
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_worker_chunk, seed, env, cfg_json, str(root), t, k) for t, k in jobs]
        for fut in as_completed(futures):
            t, k, rows, seconds = fut.result()
            _record(results[t], rows, seconds)
            if on_chunk:
                on_chunk(t, k, rows)
    return results


def _record(result: TableResult, rows: int, seconds: float) -> None:
    result.rows += rows
    result.seconds += seconds
    result.files += 1


def with_parents(tables: Iterable[str]) -> list[str]:
    """Return ``tables`` plus every table they reference, transitively, in schema order."""
    wanted = set(tables)
    frontier = list(wanted)
    while frontier:
        for parent in schema.parents(frontier.pop()):
            if parent not in wanted:
                wanted.add(parent)
                frontier.append(parent)
    return [t for t in schema.TABLE_NAMES if t in wanted]
