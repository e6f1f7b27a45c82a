"""Two parts of Dagster's storage that a run on a ready local instance never uses, imported on first use.

Opening the local instance imports Dagster's storage modules, and with them two things only a
first use or a migration needs (~230 of ~1,430 modules, ~15 % of the CPU of a process that
materializes one trivial asset):

- **Alembic** (with Mako and Pygments): ``dagster._core.storage.sql`` imports seven names from it at
  its top (``upgrade``, ``stamp``, ``Config``, ``MigrationContext`` ...) for schema creation, checks
  and migrations, which ``LocalSqliteStorage`` runs once per Dagster version (``.schema-ready``).
  While that module's body runs, ``from alembic... import name`` gives it a stand-in for each
  name that imports the real Alembic when it is first called or asked for an attribute (and
  answers ``isinstance`` and subclassing through the real class). Nothing else sees a stand-in:
  no Alembic module stays in ``sys.modules``, and any later ``import alembic`` is the real one.
  When Alembic is already imported, nothing is stood in.
- **The daemon package** ``dagster._daemon``: the run storage imports ``dagster._daemon.types``
  (a record class), whose package ``__init__`` imports every daemon (sensors, backfills,
  freshness, structlog ...). The package is created with its path (so ``dagster._daemon.types``
  and any other submodule import as usual) and runs its ``__init__`` when something first asks
  for a name the package itself would define (``from dagster._daemon import X``). Neither package
  registers a serializable class, so what a run reads back is unchanged (a test checks it).

``install()`` applies both in this process for modules not yet imported; ``simulate`` calls it
before it imports anything of Dagster (``cli``, the warm server).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

# module -> the packages its body imports names from that it needs only when they are used
STAND_IN_IMPORTS: dict[str, str] = {"dagster._core.storage.sql": "alembic"}
LAZY_PACKAGES: tuple[str, ...] = ("dagster._daemon",)


class _StandIn:
    """A name imported from ``module``: the real object is imported when first used, then everything goes to it."""

    __slots__ = ("_module", "_name", "_real")

    def __init__(self, module: str, name: str) -> None:
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_real", None)

    def _resolve(self) -> Any:
        real = object.__getattribute__(self, "_real")
        if real is None:
            module, name = object.__getattribute__(self, "_module"), object.__getattribute__(self, "_name")
            for finder in list(
                _ACTIVE
            ):  # used while the module body runs: from now on it imports the real package
                if module == finder.package or module.startswith(finder.package + "."):
                    finder.stop()
            real = getattr(importlib.import_module(module), name)
            object.__setattr__(self, "_real", real)
        return real

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resolve(), name)

    def __instancecheck__(self, obj: object) -> bool:
        return isinstance(obj, self._resolve())

    def __subclasscheck__(self, cls: type) -> bool:
        return issubclass(cls, self._resolve())

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self._resolve(),)

    def __repr__(self) -> str:
        module, name = object.__getattribute__(self, "_module"), object.__getattribute__(self, "_name")
        return f"<stand-in for {module}.{name}>"


class _StandInModule(ModuleType):
    """A module of stand-ins: any name asked for is a ``_StandIn`` of the same name in the real module."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        stand_in = _StandIn(self.__name__, name)
        setattr(self, name, stand_in)
        return stand_in


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Gives stand-in modules for ``package`` and its submodules, in one thread, while a module body runs."""

    def __init__(self, package: str) -> None:
        self.package, self.thread = package, threading.get_ident()
        self.made: list[str] = []
        self.stopped = False

    def find_spec(
        self, name: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if self.stopped or threading.get_ident() != self.thread:
            return None
        if name != self.package and not name.startswith(self.package + "."):
            return None
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        self.made.append(spec.name)
        return _StandInModule(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        return None

    def stop(self) -> None:
        """Give no more stand-ins and take the ones given out of ``sys.modules``: later imports are real."""
        self.stopped = True
        self.remove()

    def remove(self) -> None:
        """Take the stand-in modules out of ``sys.modules`` (and off their parents) so later imports are real."""
        for name in self.made:
            module = sys.modules.get(name)
            if isinstance(module, _StandInModule):
                del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent and isinstance(getattr(sys.modules.get(parent), child, None), _StandInModule):
                delattr(sys.modules[parent], child)


_ACTIVE: list[_StandInFinder] = []  # the stand-in finders of module bodies running now


class _StandInLoader(importlib.abc.Loader):
    """Runs a module's body with stand-ins for what it imports from ``package`` (unless that is imported already)."""

    def __init__(self, real: importlib.abc.Loader, package: str) -> None:
        self.real, self.package = real, package

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename ...: the real loader's
        return getattr(self.real, name)

    def exec_module(self, module: ModuleType) -> None:
        if self.package in sys.modules:
            self.real.exec_module(module)
            return
        finder = _StandInFinder(self.package)
        _ACTIVE.append(finder)
        sys.meta_path.insert(0, finder)
        try:
            self.real.exec_module(module)
        finally:
            sys.meta_path.remove(finder)
            _ACTIVE.remove(finder)
            finder.stop()


class _LazyPackageLoader(importlib.abc.Loader):
    """Creates a package with its path but runs its ``__init__`` when a name it would define is first asked for."""

    def __init__(self, real: importlib.machinery.ModuleSpec) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        lock, real = threading.RLock(), self.real

        def __getattr__(name: str) -> Any:  # noqa: N807 (a module's own attribute hook)
            with lock:
                if module.__dict__.get("__getattr__") is __getattr__:
                    del module.__dict__["__getattr__"]
                    exec(real.loader.get_code(real.name), module.__dict__)  # type: ignore[union-attr]
            try:
                return module.__dict__[name]
            except KeyError:
                raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}") from None

        module.__getattr__ = __getattr__  # type: ignore[method-assign]


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the real spec of each module named above and wraps its loader; then steps aside for that name."""

    def __init__(self, stand_in_imports: dict[str, str], lazy_packages: tuple[str, ...]) -> None:
        self.stand_in_imports = dict(stand_in_imports)
        self.pending = (set(stand_in_imports) | set(lazy_packages)) - set(sys.modules)  # imported: too late

    def find_spec(
        self, name: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in self.pending:
            return None
        self.pending.discard(name)  # once, and never for the lookup below
        real = importlib.util.find_spec(name)
        if real is None or real.loader is None:
            return None
        if name in self.stand_in_imports:
            real.loader = _StandInLoader(real.loader, self.stand_in_imports[name])  # type: ignore[arg-type]
            return real
        if not hasattr(real.loader, "get_code") or real.submodule_search_locations is None:
            return real  # not a plain source package: imported as usual
        spec = importlib.machinery.ModuleSpec(
            name, _LazyPackageLoader(real), origin=real.origin, is_package=True
        )
        spec.submodule_search_locations = real.submodule_search_locations
        spec.has_location = real.has_location
        spec.cached = real.cached
        return spec


_INSTALLED: list[_DeferringFinder] = []


def install() -> None:
    """Defer Alembic and Dagster's daemon package (see the module docstring) in this process; once."""
    if not _INSTALLED:
        _INSTALLED.append(defer(STAND_IN_IMPORTS, LAZY_PACKAGES))


def defer(stand_in_imports: dict[str, str], lazy_packages: tuple[str, ...]) -> _DeferringFinder:
    """Import each key of ``stand_in_imports`` with stand-ins for the names it imports from the package
    its value names, and each of ``lazy_packages`` without running its ``__init__`` until needed.

    Only modules not imported yet are affected. Returns the finder (``sys.meta_path.remove`` ends it).
    """
    finder = _DeferringFinder(stand_in_imports, lazy_packages)
    sys.meta_path.insert(0, finder)
    return finder
