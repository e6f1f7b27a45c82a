"""The HogFlix reference web app: server-rendered pages, posthog-js bundled at build time, local capture."""

from simulation_assets.webapp.app import WebAppConfig, create_app

__all__ = ["WebAppConfig", "create_app"]
