"""Opening the DuckDB activity store waits while another process holds the file's lock, then gives up."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from simulation_assets.sinks.activity_backends import _connect_duckdb

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_waits_for_the_lock_to_be_released(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    holder = _hold(path, 1.0)
    try:
        con = _connect_duckdb(duckdb, path, wait_seconds=120)
        assert con.execute("select 42").fetchone() == (42,)
        con.close()
    finally:
        holder.wait(60)


def test_gives_up_with_duckdbs_own_error_after_the_wait(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    holder = _hold(path, 60.0)
    try:
        started = time.monotonic()
        with pytest.raises(duckdb.IOException, match="(?i)lock"):
            _connect_duckdb(duckdb, path, wait_seconds=0.5)
        assert time.monotonic() - started >= 0.5
    finally:
        holder.kill()
        holder.wait(10)
