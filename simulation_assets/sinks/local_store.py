"""Partitioned Parquet files on the local disk: the embedded default store.

Each partition of an asset is one file, written to a temporary name and renamed
into place, so a re-materialization replaces the partition atomically and a
failed run never leaves half a file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.paths import data_dir


def _atomic_write(path: Path, write) -> Path:  # noqa: ANN001
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_parquet(frame: pl.DataFrame, path: Path, bulk: bool = False) -> Path:
    """Write ``frame`` to ``path`` through a temporary file in the same folder; return ``path``.

    ``bulk``: for large tables always read whole (a million-persona day, a window of events): zstd at
    level 1 and no column statistics, about 40 % less CPU for the same size (string statistics cost
    most); otherwise zstd with statistics, for readers that filter.
    """
    options = {"compression_level": 1, "statistics": False} if bulk else {"statistics": True}
    return _atomic_write(path, lambda tmp: frame.write_parquet(tmp, compression="zstd", **options))


class LocalParquetStore(dg.ConfigurableResource):
    """Parquet files under ``root_dir``, one per (dataset, partition)."""

    root_dir: str = Field(
        default="",
        description="Folder for the files; empty means $SIMULATION_DATA_DIR or ./.simulation_data.",
    )

    def root(self) -> Path:
        """Return the resolved root folder."""
        return Path(self.root_dir).resolve() if self.root_dir else data_dir()

    def path(self, dataset: str, partition: str) -> Path:
        """Return the file of ``dataset`` (a slash-separated name) for ``partition``."""
        return self.root() / dataset / f"{partition}.parquet"

    def write(self, dataset: str, partition: str, frame: pl.DataFrame, bulk: bool = False) -> Path:
        """Replace the partition's file with ``frame``; return its path (``bulk``: see ``atomic_write_parquet``)."""
        return atomic_write_parquet(frame, self.path(dataset, partition), bulk)

    def exists(self, dataset: str, partition: str) -> bool:
        """Return whether the partition has been written."""
        return self.path(dataset, partition).exists()

    def read(self, dataset: str, partition: str) -> pl.DataFrame:
        """Return the partition's frame; raises FileNotFoundError naming the file when absent."""
        path = self.path(dataset, partition)
        if not path.exists():
            raise FileNotFoundError(f"{dataset} has no partition {partition} (expected {path})")
        return pl.read_parquet(path)

    def partitions(self, dataset: str) -> list[str]:
        """Return the written partition keys of ``dataset``, sorted."""
        folder = self.root() / dataset
        if not folder.exists():
            return []
        return sorted(p.name[: -len(".parquet")] for p in folder.glob("*.parquet"))

    # Arrow IPC files (uncompressed) beside the Parquet ones: for large tables this program keeps only to
    # read back itself (a million-persona day is ~8x cheaper to write than as Parquet, ~4x the bytes).

    def ipc_path(self, dataset: str, partition: str) -> Path:
        """Return the Arrow IPC file of ``dataset`` for ``partition``."""
        return self.root() / dataset / f"{partition}.arrow"

    def write_ipc(self, dataset: str, partition: str, frame: pl.DataFrame) -> Path:
        """Replace the partition's Arrow IPC file (uncompressed) with ``frame``; return its path."""
        path = self.ipc_path(dataset, partition)
        return _atomic_write(path, lambda tmp: frame.write_ipc(tmp, compression="uncompressed"))

    def ipc_partitions(self, dataset: str) -> list[str]:
        """Return the partition keys of ``dataset`` written as Arrow IPC files, sorted."""
        folder = self.root() / dataset
        return sorted(p.name[: -len(".arrow")] for p in folder.glob("*.arrow")) if folder.exists() else []

    def read_many(self, dataset: str, partitions: list[str]) -> pl.DataFrame:
        """Return the concatenation of the given partitions (missing ones are skipped)."""
        paths = [self.path(dataset, k) for k in partitions if self.exists(dataset, k)]
        if not paths:
            return pl.DataFrame()
        return pl.concat([pl.read_parquet(p) for p in paths], how="vertical_relaxed")
