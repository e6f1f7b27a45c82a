"""Where the project keeps local state when nothing else is configured.

``SIMULATION_DATA_DIR`` holds the data the embedded sinks write (Parquet,
DuckDB files); ``DAGSTER_HOME`` holds the Dagster instance (see
``sinks/local_instance.py``). Both default to folders in the current directory, so
the CLI and ``dagster dev`` started from the project root share one instance and one store.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """Return the root folder of the embedded sinks (``$SIMULATION_DATA_DIR`` or ``./.simulation_data``)."""
    return Path(os.environ.get("SIMULATION_DATA_DIR") or Path.cwd() / ".simulation_data").resolve()


PREPARED_VAR = "SIMULATE_PREPARED_INSTANCES"  # folder of prepared, version-keyed copies; "0": none


def prepared_root() -> Path | None:
    """Return the folder where ``simulate`` keeps what it prepares once per library version (None: turned off).

    ``$SIMULATE_PREPARED_INSTANCES`` (``0`` turns it off), else ``$XDG_CACHE_HOME`` or ``~/.cache``,
    under ``simulation-assets/``: empty instance databases (``sinks/local_instance.py``) and
    SQLAlchemy's dialect arguments (``sinks/deferred_imports.py``), each named by its versions.
    """
    root = os.environ.get(PREPARED_VAR)
    if root == "0":
        return None
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "simulation-assets")
    return Path(root)
