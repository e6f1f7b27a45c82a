"""The HogFlix reference web app, served by ``simulate target serve`` under ``/hogflix``.

Alone it keeps captured events in memory; ``simulate target serve`` mounts it
with a callback that writes them into the HogFlix events store.
"""

from simulation_assets.webapp.serve import MOUNT_PATH
from simulation_assets.webapp.serve import create_served_app as create_app

__all__ = ["MOUNT_PATH", "create_app"]
