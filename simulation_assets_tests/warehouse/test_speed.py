"""Speed work on the generators must not change a single value: pinned content digests, and worker processes
(which tune their memory allocator) write the same bytes as the calling process."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from simulation_assets.core.warehouse.generate import Warehouse
from simulation_assets.sinks.warehouse_parquet import chunk_path, tune_generator_memory, write_chunks

# sha256 (first 16 hex digits) of the values of DEV seed 42 chunks, taken before the allocator tuning and the
# set-up work; any change to a value, a type or a column order changes them
PINNED = {
    ("tap_events", 0): "826983f846a0ba79",
    ("tap_events", 7): "20e7f6a01b8d89f5",
    ("tap_events", 39): "baeeeeb122f7c150",
    ("device_health", 0): "a7a959e636df06ad",
    ("devices", 0): "21b51b9b210250b0",
}


def frame_digest(frame: pl.DataFrame) -> str:
    """Return a digest of a frame's column names and values (independent of the Parquet writer's version)."""
    h = hashlib.sha256()
    for name, col in zip(frame.columns, frame.get_columns()):
        h.update(name.encode())
        if col.dtype in (pl.String, pl.Categorical) or isinstance(col.dtype, pl.Enum):
            h.update("\x1f".join(col.cast(pl.String).fill_null("\x00").to_list()).encode())
        else:
            h.update(col.to_physical().fill_null(-1).to_numpy().tobytes())
    return h.hexdigest()[:16]


def test_tap_and_device_chunks_keep_their_pinned_values() -> None:
    wh = Warehouse(42, "dev")
    got = {key: frame_digest(wh.chunk(*key)) for key in PINNED}
    assert got == PINNED


def test_frame_digest_sees_a_single_changed_value(dev_warehouse: Warehouse) -> None:
    frame = dev_warehouse.chunk("tap_events", 0)
    nudged = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 1234)
        .then(pl.col("volume_ml") + 0.001)
        .otherwise(pl.col("volume_ml"))
    )
    assert frame_digest(frame) == PINNED[("tap_events", 0)]
    assert frame_digest(nudged) != frame_digest(frame)


def test_allocator_tuning_is_idempotent_and_turns_off_numpy_huge_pages() -> None:
    import numpy as np

    tune_generator_memory(keep_freed=False)
    tune_generator_memory(keep_freed=False)  # cached: runs once per process
    madvise = np._core.multiarray._set_madvise_hugepage  # noqa: SLF001
    assert madvise(False) is False  # returns the previous setting: already off


@pytest.mark.slow
def test_tap_chunks_from_tuned_worker_processes_equal_the_calling_process(tmp_path: Path) -> None:
    jobs = [("tap_events", 0), ("tap_events", 39), ("device_health", 0)]
    write_chunks(42, "dev", tmp_path / "seq", jobs, workers=1)
    write_chunks(42, "dev", tmp_path / "par", jobs, workers=2)
    for table, k in jobs:
        seq, par = chunk_path(tmp_path / "seq", table, k), chunk_path(tmp_path / "par", table, k)
        assert seq.read_bytes() == par.read_bytes(), (table, k)
        assert frame_digest(pl.read_parquet(par)) == PINNED[(table, k)]
