"""`simulate --help` and bad arguments answer without loading Dagster or the data libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("dagster", "polars", "numpy", "pydantic", "duckdb", "rich")
_PROBE = """
import json, sys
from simulation_assets.cli import main
code = main(sys.argv[1:])
print("\\n" + json.dumps({"code": code, "loaded": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def _probe(tmp_path: Path, *argv: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["hogflix", "--help"],
        ["funnel", "--help"],
        ["warehouse", "--help"],
        ["power-users", "--help"],
        ["activity", "--help"],
        ["cleanup", "--help"],
        ["target", "--help"],
        ["demo", "--help"],
    ],
)
def test_help_loads_nothing_heavy(tmp_path: Path, argv: list[str]) -> None:
    found = _probe(tmp_path, *argv)
    assert found == {"code": 0, "loaded": []}


@pytest.mark.parametrize(
    "argv",
    [
        ["hogflix", "--days", "0"],
        ["hogflix", "--days", "2", "--start", "2026-13-01"],
        ["funnel", "--impressions", "0"],
        ["warehouse", "--env", "staging"],
        ["activity", "--ticks", "0"],
        ["activity", "--ticks", "2", "--interval", "-1"],
        ["cleanup", "--app-db", "oracle"],
        ["nonsense"],
    ],
)
def test_bad_arguments_exit_2_without_loading_dagster(tmp_path: Path, argv: list[str]) -> None:
    found = _probe(tmp_path, *argv)
    assert found["code"] == 2
    assert "dagster" not in found["loaded"], found
    assert not (tmp_path / "home").exists()  # nothing written, not even the instance
