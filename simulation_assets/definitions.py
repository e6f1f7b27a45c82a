"""The project's one Dagster code location: every domain's definitions, merged."""

from __future__ import annotations

import importlib

import dagster as dg

from simulation_assets.defs.resources import shared_resources

# Each module in simulation_assets/defs/ listed here exposes ``defs: dg.Definitions``.
DOMAIN_MODULES = ("hogflix",)


def build_definitions() -> dg.Definitions:
    """Return the merged definitions of every domain plus the shared resources."""
    parts = [importlib.import_module(f"simulation_assets.defs.{name}").defs for name in DOMAIN_MODULES]
    return dg.Definitions.merge(*parts, dg.Definitions(resources=shared_resources()))


defs = build_definitions()
