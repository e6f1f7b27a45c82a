"""The HogFlix reference web app, served by ``simulate target serve`` under ``/hogflix``.

Events its pages send through posthog-js are written into the HogFlix events
store (``browser_events`` of the scenario configured by the environment).
"""

from simulation_assets.webapp.serve import MOUNT_PATH
from simulation_assets.webapp.serve import create_served_app as create_app

__all__ = ["MOUNT_PATH", "create_app"]
