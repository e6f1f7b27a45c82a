"""simulation-assets: reproducible synthetic users and data, orchestrated by Dagster."""

__version__ = "0.1.0"
