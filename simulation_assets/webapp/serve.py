"""The web app as ``simulate target serve`` mounts it: captured events go into the events store."""

from __future__ import annotations

from starlette.applications import Starlette

from simulation_assets.webapp.app import WebAppConfig, create_app
from simulation_assets.webapp.capture import CaptureLog

MOUNT_PATH = "/hogflix"


def create_served_app() -> Starlette:
    """Return the web app whose capture endpoint merges events into ``browser_events`` of the store.

    The dataset is the HogFlix scenario of the environment (``SIMULATION_SEED``,
    ``PERSONA_POOL``, ``HOGFLIX_START_DATE``, ...), the same the CLI and Dagster use.
    """
    from simulation_assets.defs.hogflix import HogflixSettings
    from simulation_assets.sinks.browser_events import BrowserEventsStore
    from simulation_assets.sinks.config_files import from_env, resolved
    from simulation_assets.sinks.local_store import LocalParquetStore

    settings = resolved(from_env(HogflixSettings))
    store = BrowserEventsStore(LocalParquetStore(), settings.dataset("browser_events"))
    log = CaptureLog(on_events=store.merge)
    app = create_app(WebAppConfig(), log)
    app.state.events_store = store
    return app
