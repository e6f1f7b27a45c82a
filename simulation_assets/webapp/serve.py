"""The web app as ``simulate target serve`` mounts it under ``/hogflix``."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette

from simulation_assets.webapp.app import WebAppConfig, create_app
from simulation_assets.webapp.capture import CaptureLog

MOUNT_PATH = "/hogflix"


def create_served_app(on_events: Callable[[list[dict]], None] | None = None) -> Starlette:
    """Return the web app; every captured request's events also go to ``on_events`` when given.

    ``simulate target serve`` passes a callback that merges them into the HogFlix
    events store (the command wires the store; the web app knows nothing of it).
    """
    return create_app(WebAppConfig(), CaptureLog(on_events=on_events))
