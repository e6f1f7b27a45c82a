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

import atexit
import functools
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
from simulation_assets.core.warehouse.generators.usage import SESSION_FLOW_TABLES
from simulation_assets.sinks.memory import tune_generator_memory

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


@functools.lru_cache(maxsize=1)
def _worker_warehouse(seed: int, env: str, config_json: str) -> Warehouse:
    """The worker process's generator (parent tables stay in memory across the chunks it writes)."""
    return Warehouse(seed, env, WarehouseConfig.model_validate_json(config_json))


def _worker_chunk(
    seed: int, env: str, config_json: str, root: str, table: str, k: int
) -> tuple[str, int, int, float]:
    tune_generator_memory(keep_freed=True)
    started = time.perf_counter()
    rows, _ = write_chunk(_worker_warehouse(seed, env, config_json), Path(root), table, k)
    return table, k, rows, time.perf_counter() - started


def _worker_bundle(
    seed: int, env: str, config_json: str, root: str, jobs: list[tuple[str, int]]
) -> list[tuple[str, int, int, float]]:
    """Write several chunks in one worker process, in order (see ``bundles``)."""
    return [_worker_chunk(seed, env, config_json, root, table, k) for table, k in jobs]


def bundles(jobs: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """Return ``jobs`` grouped so that chunks built from the same computation are written by one process, one
    after the other: chunk k of every table of ``SESSION_FLOW_TABLES`` (page views and feature events come
    from one session flow, which the process's generator keeps for the last chunk). Other jobs stay alone, in
    their order."""
    out: list[list[tuple[str, int]]] = []
    flows: dict[int, list[tuple[str, int]]] = {}
    for table, k in jobs:
        if table in SESSION_FLOW_TABLES:
            if k not in flows:
                flows[k] = []
                out.append(flows[k])
            flows[k].append((table, k))
        else:
            out.append([(table, k)])
    return out


_POOL: list[ProcessPoolExecutor] = []  # at most one pool of generator processes, reused across calls


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Return a pool of ``workers`` generator processes, started on first use and reused (each process keeps
    its parent tables in memory) until ``close_worker_pool`` or the end of the process."""
    import multiprocessing as mp

    if _POOL and _POOL[0]._max_workers != workers:  # noqa: SLF001
        close_worker_pool()
    if not _POOL:
        _POOL.append(ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")))
    return _POOL[0]


def close_worker_pool() -> None:
    """Stop the generator processes (they hold an environment's parent tables in memory)."""
    while _POOL:
        _POOL.pop().shutdown(cancel_futures=True)


atexit.register(close_worker_pool)


def write_chunks(
    seed: int,
    env: str,
    root: Path,
    jobs: list[tuple[str, int]],
    config: WarehouseConfig | None = None,
    workers: int = 1,
    on_chunk: Callable[[str, int, int, float], None] | None = None,
    warehouse: Warehouse | None = None,
) -> None:
    """Generate and write chunk ``k`` of ``table`` for every ``(table, k)`` in ``jobs``.

    With ``workers`` > 1 the chunks are spread over a pool of processes (each keeps its own generator;
    chunks built from one computation go to the same process, see ``bundles``); otherwise ``warehouse``
    (or a new one) writes them here. ``on_chunk(table, k, rows, seconds)`` is called after each chunk,
    in completion order. Chunks are independent, so the bytes do not depend
    on the number of workers or the order they finish in.
    """
    cfg = config or WarehouseConfig()
    groups = bundles(jobs)
    if workers <= 1 or len(groups) <= 1:
        tune_generator_memory(keep_freed=False)  # a long-lived process: huge pages off, freed memory returned
        generator = warehouse or Warehouse(seed, env, cfg)
        for table, k in (job for group in groups for job in group):
            started = time.perf_counter()
            rows, _ = write_chunk(generator, root, table, k)
            if on_chunk:
                on_chunk(table, k, rows, time.perf_counter() - started)
        return
    cfg_json = cfg.model_dump_json()
    pool = worker_pool(workers)
    futures = [pool.submit(_worker_bundle, seed, env, cfg_json, str(root), group) for group in groups]
    for fut in as_completed(futures):
        for table, k, rows, seconds in fut.result():
            if on_chunk:
                on_chunk(table, k, rows, seconds)


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
    names = [t for t in schema.TABLE_NAMES if t in set(tables)]
    results = {t: TableResult() for t in names}

    def record(table: str, k: int, rows: int, seconds: float) -> None:
        _record(results[table], rows, seconds)
        if on_chunk:
            on_chunk(table, k, rows)

    jobs = [(t, k) for t in names for k in range(schema.table(t).chunks)]
    write_chunks(seed, env, root, jobs, config, workers, record)
    return results


def rows_on_disk(root: Path, table: str, chunks: Iterable[int]) -> dict[int, int]:
    """Return the rows of each written chunk file of ``table`` (from the Parquet footers; 0 if missing).

    Polars counts them from the footer alone (PyArrow would cost a warehouse command ~0.1 s of CPU
    to import, and nothing else of the command needs it).
    """
    out: dict[int, int] = {}
    for k in chunks:
        path = chunk_path(root, table, k)
        out[k] = int(pl.scan_parquet(path).select(pl.len()).collect().item()) if path.exists() else 0
    return out


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
