"""The project's one Dagster code location: every domain's definitions, merged.

Each module in ``simulation_assets/defs/`` that exposes ``defs: dg.Definitions``
is a domain; it is found here without a list to keep in sync. (Dagster's
``load_definitions_from_package_module`` would also pick up the assets some modules
declare at module level, loose, without the resources their own ``defs`` binds:
each domain's ``defs`` is its whole public surface, so this scan collects exactly those.)
"""

import importlib
import pkgutil

import dagster as dg

import simulation_assets.defs as defs_package
from simulation_assets.defs.resources import shared_resources


def domain_definitions() -> list[dg.Definitions]:
    """Return the ``defs`` of every module of ``simulation_assets.defs``, in name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(defs_package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{defs_package.__name__}.{info.name}")
        part = getattr(module, "defs", None)
        if isinstance(part, dg.Definitions):
            found.append(part)
    return found


def build_definitions() -> dg.Definitions:
    """Return the merged definitions of every domain plus the shared resources.

    Steps run in the run's own process: a step is short next to the seconds a new
    Python process needs to import the project, and runs are isolated from each
    other by the run launcher (a process, a container or a pod per run).
    """
    return dg.Definitions.merge(
        *domain_definitions(),
        dg.Definitions(resources=shared_resources(), executor=dg.in_process_executor),
    )


defs = build_definitions()
