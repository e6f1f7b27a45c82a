"""Run a piece of Python in a fresh interpreter, as a `simulate` process starts, and read what it printed last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def probe(
    tmp_path: Path, *argv: str, code: str, timeout: float = 120, env: dict[str, str | None] | None = None
) -> dict:
    """Run ``code`` with ``argv`` in a fresh interpreter, in ``tmp_path`` with an instance and data folder of its
    own; return the JSON of its last line. ``env``: variables set for it (``None`` removes one)."""
    variables = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(tmp_path / "home")}
    variables["SIMULATION_DATA_DIR"] = str(tmp_path / "data")
    for name, value in (env or {}).items():
        if value is None:
            variables.pop(name, None)
        else:
            variables[name] = value
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        env=variables,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
