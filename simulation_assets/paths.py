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
