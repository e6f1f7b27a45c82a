"""Where the project keeps local state when nothing else is configured.

``DAGSTER_HOME`` holds the Dagster instance (SQLite run and event storage) and
``SIMULATION_DATA_DIR`` holds the data the embedded sinks write (Parquet,
DuckDB files). Both default to folders in the current directory, so the CLI and
``dagster dev`` started from the project root share one instance and one store.
"""

from __future__ import annotations

import os
from pathlib import Path

_LOCAL_INSTANCE_YAML = """\
# Embedded default: SQLite storage under DAGSTER_HOME, no server to start.
storage:
  sqlite:
    base_dir: {base}
telemetry:
  enabled: false
"""


def data_dir() -> Path:
    """Return the root folder of the embedded sinks (``$SIMULATION_DATA_DIR`` or ``./.simulation_data``)."""
    return Path(os.environ.get("SIMULATION_DATA_DIR") or Path.cwd() / ".simulation_data").resolve()


def ensure_dagster_home() -> Path:
    """Point ``DAGSTER_HOME`` at a usable local instance folder and return it.

    Uses ``$DAGSTER_HOME`` when set, else ``./.dagster_home``; writes a SQLite
    ``dagster.yaml`` there when the folder has none.
    """
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(_LOCAL_INSTANCE_YAML.format(base=home / "storage"))
    os.environ["DAGSTER_HOME"] = str(home)
    return home
