"""The dbt project over the warehouse (``dbt/`` at the repository root) and its manifest.

A fresh clone has no ``dbt/target/manifest.json``; ``ensure_manifest`` runs ``dbt parse``
(offline, no ``dbt deps``: the project has no packages) into a temporary folder and
moves the manifest into place, under a file lock so parallel processes parse once.
It also re-parses when a model or YAML file is newer than the manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt"
MANIFEST = DBT_DIR / "target" / "manifest.json"


def dbt_executable() -> str:
    """Return the ``dbt`` next to the running Python (the venv's), else the one on PATH."""
    local = Path(sys.executable).with_name("dbt")
    if local.exists():
        return str(local)
    found = shutil.which("dbt")
    if not found:
        raise RuntimeError("the dbt executable was not found; install the project (scripts/setup.sh)")
    return found


def _newest_source() -> float:
    files = [p for ext in ("*.sql", "*.yml") for p in DBT_DIR.rglob(ext) if "target" not in p.parts]
    return max((p.stat().st_mtime for p in files), default=0.0)


def manifest_is_current() -> bool:
    return MANIFEST.exists() and MANIFEST.stat().st_mtime >= _newest_source()


def ensure_manifest() -> Path:
    """Return the manifest path, running ``dbt parse`` first when it is missing or stale."""
    if manifest_is_current():
        return MANIFEST
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    with open(MANIFEST.parent / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest_is_current():
            return MANIFEST
        with tempfile.TemporaryDirectory(prefix="dbt-parse-") as tmp:
            env = {**os.environ, "WAREHOUSE_DUCKDB_PATH": str(Path(tmp) / "parse.duckdb"),
                   "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}  # fmt: skip
            env.pop("WAREHOUSE_DBT_TARGET", None)
            done = subprocess.run(
                [dbt_executable(), "parse", "--quiet", "--project-dir", str(DBT_DIR), "--profiles-dir",
                 str(DBT_DIR), "--target-path", tmp, "--log-path", tmp],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"dbt parse failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            os.replace(Path(tmp) / "manifest.json", MANIFEST)
    return MANIFEST


@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Set ``variables`` in ``os.environ`` for the duration of the block (dbt subprocesses inherit them)."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
