"""Resources shared by every domain, bound once in ``definitions.py``."""

from __future__ import annotations

from simulation_assets.sinks.local_store import LocalParquetStore


def shared_resources() -> dict[str, object]:
    """Return the resources every domain may ask for by key."""
    return {"store": LocalParquetStore()}
