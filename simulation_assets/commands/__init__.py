"""One module per ``simulate`` sub-command.

A module here that exposes ``register(subparsers)`` is a sub-command. It may
also expose ``run_demo(output_root: Path)`` and ``DEMO_ORDER`` (an int, lower
runs first), which ``simulate demo`` uses.
"""

import importlib
import importlib.util
import pkgutil
from types import ModuleType


def command_modules(command: str | None = None) -> list[ModuleType]:
    """Return every sub-command module, sorted by name.

    With ``command`` (the first word of a command line), only the module of that name when it is a
    sub-command module (``power-users`` is ``power_users``): a command builds its own arguments, not
    every other command's (~50 M instructions of module bodies and parsers). Any other word: all.
    """
    name = (command or "").replace("-", "_")
    if name.isidentifier() and not name.startswith("_"):
        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            module = importlib.import_module(f"{__name__}.{name}")
            if callable(getattr(module, "register", None)):
                return [module]
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
