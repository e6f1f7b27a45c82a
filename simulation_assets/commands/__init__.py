"""One module per ``simulate`` sub-command.

A module here that exposes ``register(subparsers)`` is a sub-command. It may
also expose ``run_demo(output_root: Path)`` and ``DEMO_ORDER`` (an int, lower
runs first), which ``simulate demo`` uses.
"""

import importlib
import pkgutil
from types import ModuleType


def command_modules() -> list[ModuleType]:
    """Return every sub-command module, sorted by name."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "register", None)):
            found.append(module)
    return found


def demo_modules() -> list[ModuleType]:
    """Return the modules that take part in ``simulate demo``, in demo order."""
    modules = [m for m in command_modules() if callable(getattr(m, "run_demo", None))]
    return sorted(modules, key=lambda m: (getattr(m, "DEMO_ORDER", 100), m.__name__))
