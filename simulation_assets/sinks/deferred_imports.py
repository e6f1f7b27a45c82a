"""Parts of Dagster's storage that a run on a ready local instance never uses, imported on first use.

Opening the local instance imports Dagster's storage modules, and with them things only a first
use, a migration or another database needs (~270 of ~1,430 modules of a process that
materializes one trivial asset, ~20 % of its CPU):

- **Alembic** (with Mako and Pygments): ``dagster._core.storage.sql`` imports seven names from it at
  its top (``upgrade``, ``stamp``, ``Config``, ``MigrationContext`` ...) for schema creation, checks
  and migrations, which ``LocalSqliteStorage`` runs once per Dagster version (``.schema-ready``).
  While that module's body runs, ``from alembic... import name`` gives it a stand-in for each
  name that imports the real Alembic when it is first called or asked for an attribute (and
  answers ``isinstance`` and subclassing through the real class). Nothing else sees a stand-in:
  no Alembic module stays in ``sys.modules``, and any later ``import alembic`` is the real one.
  When Alembic is already imported, nothing is stood in. The same goes for tqdm (the progress
  bar of data migrations, in four storage modules), python-dotenv (a code location's
  ``.env`` file, read when a workspace loads one) and watchdog's observers (the SQLite event
  log's and the compute logs' file watching, which the UI's subscriptions start; the handler classes
  those modules subclass come from ``watchdog.events``, imported as usual).
- **filelock, multiprocessing, pdb and unittest.mock**: ``dagster._utils`` imports the first two
  for functions a run never calls (a file lock several processes share, the type of an ``Event``),
  the execution contexts ``ForkedPdb`` (``context.pdb``) and the component tree ``unittest.mock``
  (stand-in declarations): stand-ins as for Alembic. A stand-in of ``from package import submodule``
  imports the submodule; one in an annotation's ``Name | None`` resolves there.
- **httpx's command-line program**: ``httpx``'s package imports ``httpx._main`` for ``httpx.main`` (the
  ``httpx`` console script), and with it Click, Pygments' lexers and Rich's progress bars, syntax and
  tables (~50 modules, ~25 ms of CPU in every command that speaks HTTP). ``httpx.main`` is a stand-in;
  the attribute httpx sets on each name it exports (``__module__``) reaches the real command when it
  is first used.
- **uvicorn's reloaders and process supervisors**: ``uvicorn``'s package imports ``uvicorn.main`` (the
  command line), which imports ``uvicorn.supervisors`` (watchfiles, multiprocessing) for ``--reload``
  and ``--workers``; a reference API served in-process uses neither. Stand-ins while ``uvicorn.main``
  runs, as for Alembic.
- **The daemon package** ``dagster._daemon``: the run storage imports ``dagster._daemon.types``
  (a record class), whose package ``__init__`` imports every daemon (sensors, backfills,
  freshness, structlog ...). The package is created with its path (so ``dagster._daemon.types``
  and any other submodule import as usual) and runs its ``__init__`` when something first asks
  for a name the package itself would define (``from dagster._daemon import X``). None of these
  packages registers a serializable class, so what a run reads back is unchanged (a test checks it).
- **SQLAlchemy's MySQL and PostgreSQL dialects**: Dagster's schema modules declare indexes with
  their options (``mysql_length=``, ``postgresql_where=``), and SQLAlchemy checks such a keyword
  against the names its dialect accepts, importing the dialect to learn them (~40 modules). Those
  names depend only on SQLAlchemy's version: the first process keeps them in
  ``paths.prepared_root()`` (``sqlalchemy-<version>-dialect-arguments.json``, written only when
  it reads back equal to the dialects' own), and later ones hand them to SQLAlchemy as soon as it
  is imported, so the same checks run without the dialects. A dialect that is used (an engine, a
  statement compiled for it) is imported as usual.

- **universal-pathlib and fsspec** (~35 modules): ``InstanceRef.defs_state_storage`` imports
  ``upath`` before it looks whether the instance names a state storage of its own. Once
  ``dagster._core.instance.ref`` is imported, the property reads the settings first: a configured
  storage (the local instance's ``LocalDefsStateStorage``, which makes its path when first used)
  is built as before, without the import; otherwise Dagster's own property runs.

- **Pydantic's plugin scan**: the first model a process builds makes Pydantic look for plugins
  (``importlib.metadata.entry_points(group="pydantic")``), which reads the entry points of every
  installed distribution (~50 M instructions, ~12 ms). Which entry points that group has depends only
  on the distributions the folders of ``sys.path`` hold: the first process keeps the group's entry
  points in ``paths.prepared_root()`` (``pydantic-plugins.json``) under the state of those folders (each
  one's modification time: an install, upgrade or removal renames entries there, as the warm server's
  key counts on), and a later process with the same state hands Pydantic the kept entry points; Pydantic
  loads them (or honours ``PYDANTIC_DISABLE_PLUGINS``) as it always does. Any other state scans again.

``install()`` applies all of this in this process for modules not yet imported; ``simulate`` calls
it before it imports anything of Dagster (``cli``, the warm server).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from simulation_assets.paths import prepared_root

# module -> the package(s) its body imports names from that it needs only when they are used
STAND_IN_IMPORTS: dict[str, str | tuple[str, ...]] = {
    "dagster._core.storage.sql": "alembic",
    # tqdm draws the progress of data migrations; python-dotenv reads a code location's .env file;
    # watchdog's observers (inotify, and ctypes where nothing else loads it) follow files for the UI
    "dagster._core.storage.event_log.migration": "tqdm",
    "dagster._core.storage.event_log.sqlite.sqlite_event_log": ("tqdm", "watchdog.observers"),
    "dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log": "watchdog.observers",
    "dagster._core.storage.local_compute_log_manager": "watchdog.observers",
    "dagster._core.storage.runs.migration": "tqdm",
    "dagster._core.storage.schedules.migration": "tqdm",
    "dagster._core.secrets.env_file": "dotenv",
    # filelock guards a file Dagster updates from several processes, multiprocessing gives the type of
    # an Event a check compares with: both in functions of dagster._utils that a run does not call;
    # unittest.mock builds stand-in declarations for component trees (no component in this project);
    # pdb is what `context.pdb` returns, for someone debugging an op
    "dagster._utils": ("filelock", "multiprocessing"),
    "dagster.components.core.component_tree": "unittest",
    "dagster._core.execution.context.op_execution_context": "dagster._utils.forked_pdb",
    "dagster._core.execution.context.asset_execution_context": "dagster._utils.forked_pdb",
    "dagster._core.execution.context.asset_check_execution_context": "dagster._utils.forked_pdb",
    "dagster._core.execution.context.invocation": "dagster._utils.forked_pdb",
    # httpx's package imports its command-line program (click, Pygments' lexers, Rich's progress bars,
    # syntax and tables: ~50 modules) for ``httpx.main``, which no command calls
    "httpx": "httpx._main",
    # uvicorn's package imports its command line, whose module imports the reloaders and the process
    # supervisors (watchfiles, multiprocessing: ~15 modules) that only `uvicorn --reload/--workers` runs
    "uvicorn.main": "uvicorn.supervisors",
}
LAZY_PACKAGES: tuple[str, ...] = ("dagster._daemon",)
# SQLAlchemy dialects whose keyword arguments Dagster's schema modules use (checked, never compiled, in a run)
DIALECTS: tuple[str, ...] = ("mysql", "postgresql")


class _StandIn:
    """A name imported from ``module``: the real object is imported when first used, then everything goes to it."""

    __slots__ = ("_module", "_name", "_real", "_set")

    def __init__(self, module: str, name: str) -> None:
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_real", None)
        object.__setattr__(self, "_set", {})

    def _resolve(self) -> Any:
        real = object.__getattribute__(self, "_real")
        if real is None:
            module, name = object.__getattribute__(self, "_module"), object.__getattribute__(self, "_name")
            for finder in list(
                _ACTIVE
            ):  # used while the module body runs: from now on it imports the real package
                if module == finder.package or module.startswith(finder.package + "."):
                    finder.stop()
            package = importlib.import_module(module)
            try:
                real = getattr(package, name)
            except AttributeError:  # ``from package import submodule``: a submodule not imported yet
                real = importlib.import_module(f"{module}.{name}")
            for attribute, value in object.__getattribute__(self, "_set").items():
                setattr(real, attribute, value)
            object.__setattr__(self, "_real", real)
        return real

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resolve(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        # kept for the real object until it is imported (httpx sets ``__module__`` on each name it exports)
        if object.__getattribute__(self, "_real") is None:
            object.__getattribute__(self, "_set")[name] = value
        else:
            setattr(object.__getattribute__(self, "_real"), name, value)

    def __instancecheck__(self, obj: object) -> bool:
        return isinstance(obj, self._resolve())

    def __subclasscheck__(self, cls: type) -> bool:
        return issubclass(cls, self._resolve())

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self._resolve(),)

    def __or__(self, other: Any) -> Any:  # ``Name | None`` in an annotation evaluated at run time
        return self._resolve() | other

    def __ror__(self, other: Any) -> Any:
        return other | self._resolve()

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
    """Runs a module's body with stand-ins for what it imports from ``packages`` (each unless imported already).

    A package may be a subpackage (``watchdog.observers``): its parents are imported as usual.
    """

    def __init__(self, real: importlib.abc.Loader, packages: str | tuple[str, ...]) -> None:
        self.real = real
        self.packages = (packages,) if isinstance(packages, str) else tuple(packages)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename ...: the real loader's
        return getattr(self.real, name)

    def exec_module(self, module: ModuleType) -> None:
        finders = [_StandInFinder(package) for package in self.packages if package not in sys.modules]
        for finder in finders:
            _ACTIVE.append(finder)
            sys.meta_path.insert(0, finder)
        try:
            self.real.exec_module(module)
        finally:
            for finder in finders:
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


class _AfterLoader(importlib.abc.Loader):
    """Runs a module's body, then ``hook`` (which must not fail the import)."""

    def __init__(self, real: importlib.abc.Loader, hook: Callable[[], object]) -> None:
        self.real, self.hook = real, hook

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename ...: the real loader's
        return getattr(self.real, name)

    def exec_module(self, module: ModuleType) -> None:
        self.real.exec_module(module)
        try:
            self.hook()
        except Exception:  # noqa: BLE001 - a saving, never a reason for an import to fail
            pass


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the real spec of each module named above and wraps its loader; then steps aside for that name."""

    def __init__(
        self,
        stand_in_imports: dict[str, str | tuple[str, ...]],
        lazy_packages: tuple[str, ...],
        after: dict[str, Callable[[], object]] | None = None,
    ) -> None:
        self.stand_in_imports = dict(stand_in_imports)
        self.after = dict(after or {})
        names = set(stand_in_imports) | set(lazy_packages) | set(self.after)
        self.pending = names - set(sys.modules)  # imported: too late

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
        if name in self.after:
            real.loader = _AfterLoader(real.loader, self.after[name])  # type: ignore[arg-type]
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
    """Defer Alembic, Dagster's daemon package and SQLAlchemy's dialects (see the module docstring) in this process; once."""
    if not _INSTALLED:
        after = {
            "sqlalchemy": preload_dialect_arguments,
            "dagster._core.instance.ref": configured_state_storage_first,
            "pydantic.plugin._loader": keep_pydantic_plugin_scan,
        }
        _INSTALLED.append(defer(STAND_IN_IMPORTS, LAZY_PACKAGES, after))


def defer(
    stand_in_imports: dict[str, str | tuple[str, ...]],
    lazy_packages: tuple[str, ...],
    after: dict[str, Callable[[], object]] | None = None,
) -> _DeferringFinder:
    """Import each key of ``stand_in_imports`` with stand-ins for the names it imports from the package(s)
    its value names, each of ``lazy_packages`` without running its ``__init__`` until needed, and
    call each function of ``after`` once its module has been imported.

    Only modules not imported yet are affected. Returns the finder (``sys.meta_path.remove`` ends it).
    """
    finder = _DeferringFinder(stand_in_imports, lazy_packages, after)
    sys.meta_path.insert(0, finder)
    return finder


# ------------------------------------------------------------------- the instance's definitions-state storage


def configured_state_storage_first() -> None:
    """Make ``InstanceRef.defs_state_storage`` build a configured storage without importing ``upath`` first.

    Dagster's property imports universal-pathlib (and fsspec) for its default before it reads the
    instance's settings. The same property, reading them first: a configured storage is rehydrated
    as Dagster does it; without one, Dagster's own property makes its default. Once per process.
    """
    from dagster._core.instance.ref import InstanceRef

    stock = InstanceRef.__dict__["defs_state_storage"]
    if getattr(stock.fget, "configured_first", False):
        return

    def defs_state_storage(self: InstanceRef) -> Any:
        if self.defs_state_storage_data:
            from dagster._core.storage.defs_state.base import DefsStateStorage

            return self.defs_state_storage_data.rehydrate(as_type=DefsStateStorage)
        return stock.fget(self)

    defs_state_storage.configured_first = True  # type: ignore[attr-defined]
    InstanceRef.defs_state_storage = property(defs_state_storage, doc=stock.__doc__)  # type: ignore[method-assign]


# ------------------------------------------------------------------------------- Pydantic's plugin scan

PYDANTIC_PLUGINS_FILE = "pydantic-plugins.json"
KEPT_STATES = 32  # installed states kept in the file (each folder a command runs `python -m` from is one)


def installed_state() -> str:
    """Return what ``importlib.metadata`` finds distributions from, as text: the interpreter and, for each
    folder of ``sys.path`` (``""`` is the working folder), its modification time (None: not a folder)."""
    folders = []
    for entry in sys.path:
        path = os.path.abspath(entry or ".")
        try:
            folders.append([path, os.stat(path).st_mtime_ns])
        except OSError:
            folders.append([path, None])
    finders = [type(f).__qualname__ for f in sys.meta_path if hasattr(f, "find_distributions")]
    return json.dumps([sys.executable, sys.version, finders, folders])


def keep_pydantic_plugin_scan(folder: Path | None = None) -> bool:
    """Give ``pydantic.plugin._loader`` an ``entry_points`` that answers its plugin group from the kept copy.

    ``folder``: ``paths.prepared_root()`` (None: off). True when installed now. Any other call goes to
    ``importlib.metadata.entry_points`` as before.
    """
    folder = folder or prepared_root()
    if folder is None:
        return False
    from pydantic.plugin import _loader

    scan = _loader.entry_points
    if getattr(scan, "kept_scan", False):
        return False

    def entry_points(**params: Any) -> Any:
        if set(params) != {"group"}:
            return scan(**params)
        return kept_entry_points(folder / PYDANTIC_PLUGINS_FILE, params["group"], scan)

    entry_points.kept_scan = True  # type: ignore[attr-defined]
    _loader.entry_points = entry_points
    return True


def kept_entry_points(path: Path, group: str, scan: Callable[..., Any]) -> Any:
    """Return the entry points of ``group`` kept in ``path`` for this installed state, else ``scan(group=group)``
    (the kept copy then gets it for the next process)."""
    from importlib.metadata import EntryPoint, EntryPoints

    state = json.dumps([installed_state(), group])
    try:
        kept = json.loads(path.read_text())
        found = kept.get(state)
        if found is not None:
            return EntryPoints(EntryPoint(name, value, group) for name, value in found)
    except (OSError, ValueError, TypeError, AttributeError):
        kept = {}
    real = scan(group=group)
    try:
        kept = {k: v for k, v in kept.items() if k != state}
        kept[state] = [[entry.name, entry.value] for entry in real]
        text = json.dumps(dict(list(kept.items())[-KEPT_STATES:]))
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        staged.write_text(text)
        os.replace(staged, path)
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return real


# ------------------------------------------------------------------------- SQLAlchemy's dialect arguments


def dialect_arguments_file(folder: Path, version: str) -> Path:
    """Return where the dialect arguments of SQLAlchemy ``version`` are kept in ``folder``."""
    return folder / f"sqlalchemy-{version}-dialect-arguments.json"


def preload_dialect_arguments(folder: Path | None = None, dialects: tuple[str, ...] = DIALECTS) -> bool:
    """Hand SQLAlchemy the keyword arguments ``dialects`` accept, from the prepared copy; True when it took them.

    Without a copy (or with one it cannot read), the dialects are imported as SQLAlchemy would and
    the copy is written for the next process. ``folder``: ``paths.prepared_root()`` (None: off).
    Nothing changes for a dialect SQLAlchemy already knows.
    """
    folder = folder or prepared_root()
    if folder is None:
        return False
    import sqlalchemy
    from sqlalchemy.sql.base import DialectKWArgs

    registry = DialectKWArgs._kw_registry
    wanted = [name for name in dialects if name not in registry]
    if not wanted:
        return False
    path = dialect_arguments_file(folder, sqlalchemy.__version__)
    try:
        saved = json.loads(path.read_text())
        given = {name: _decode_arguments(saved[name]) for name in wanted}
    except (OSError, ValueError, LookupError, TypeError, AttributeError, ImportError):
        _save_dialect_arguments(path, dialects)
        return False
    registry.update(given)
    return True


def _dialect_arguments(name: str) -> dict[type, dict[str, Any]] | None:
    """Return what SQLAlchemy's registry holds for dialect ``name`` (importing the dialect)."""
    from sqlalchemy.sql.base import _kw_reg_for_dialect

    return _kw_reg_for_dialect(name)


def _encode_arguments(arguments: dict[type, dict[str, Any]] | None) -> list[Any] | None:
    """JSON for one dialect's arguments: ``[["module:Class", {name: default}], ...]`` (ValueError: not representable)."""
    from sqlalchemy.sql.base import DialectKWArgConst

    def value(v: Any) -> Any:
        if isinstance(v, DialectKWArgConst):
            return {"const": v.name}
        if v is None or isinstance(v, bool | int | float | str) or v == {}:
            return v
        raise ValueError(f"not representable: {v!r}")

    if arguments is None:
        return None
    return [
        [f"{cls.__module__}:{cls.__qualname__}", {k: value(v) for k, v in args.items()}]
        for cls, args in arguments.items()
    ]


def _decode_arguments(entries: list[Any] | None) -> dict[type, dict[str, Any]] | None:
    from sqlalchemy.sql.base import DialectKWArgConst

    if entries is None:
        return None
    decoded: dict[type, dict[str, Any]] = {}
    for where, args in entries:
        module, _, name = where.partition(":")
        cls = getattr(importlib.import_module(module), name)
        decoded[cls] = {
            k: DialectKWArgConst[v["const"]] if isinstance(v, dict) and v else v for k, v in args.items()
        }
    return decoded


def _save_dialect_arguments(path: Path, dialects: tuple[str, ...]) -> None:
    """Write ``dialects``' arguments to ``path`` when they read back equal (best effort, atomically)."""
    try:
        real = {name: _dialect_arguments(name) for name in dialects}
        saved = {name: _encode_arguments(arguments) for name, arguments in real.items()}
        text = json.dumps(saved, sort_keys=True)
        if {name: _decode_arguments(entries) for name, entries in json.loads(text).items()} != real:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        staged.write_text(text)
        os.replace(staged, path)
    except (OSError, ValueError, ImportError):
        pass
