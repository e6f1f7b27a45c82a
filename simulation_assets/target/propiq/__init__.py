"""Reference PropIQ-like API: the default target of power-user runs (mounted at the root path)."""

from simulation_assets.target.propiq.app import create_app

MOUNT_PATH = "/"

__all__ = ["MOUNT_PATH", "create_app"]
