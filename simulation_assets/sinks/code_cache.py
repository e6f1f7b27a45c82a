"""Python source that libraries generate and compile while they are imported, kept compiled between processes.

Importing Dagster, SQLAlchemy and pydantic does not only load ``.pyc`` files: the standard library and
these packages write small functions as text and compile it at import time, where no ``.pyc`` keeps
the result. A ``simulate`` command compiles ~3,300 such strings (a HogFlix day; the Dagster floor
~2,700): ``collections.namedtuple``'s ``__new__`` (``eval``), every dataclass's ``__init__``,
``__repr__``, ``__eq__`` ... (``exec`` in ``dataclasses._create_fn``), every string annotation
(``typing.ForwardRef`` compiles it), Dagster's checked constructors (``dagster_shared.check.builder``)
and SQLAlchemy's generated functions (``sqlalchemy.util.langhelpers``). Parsing and compiling them
is ~14 % of the instructions of a process that materializes one trivial asset (callgrind). The same
goes, on a smaller scale, for regular expressions: ~200 patterns compiled at import time by
``re``'s parser and compiler, written in Python.

``install()`` gives those five call sites a ``compile`` / ``eval`` / ``exec`` of their own (a name in
their module, which Python finds before the built-in one) that looks the source text up in a
table of code objects kept in ``paths.prepared_root()`` (one file per Python version,
``compiled-<implementation>-<version>.marshal``; ``SIMULATE_PREPARED_INSTANCES=0`` turns it off)
and compiles only what is not there; ``re.compile`` does the same with a pattern's program. What is compiled is what the built-in would have compiled: the
key is the text, file name, mode, optimization level and the compiler flags, including the
``from __future__`` features the calling module would have passed on; errors (a ``SyntaxError``)
come from the real compiler, and nothing but plain source text is looked up. A process that
compiled something new adds it to the file when it ends (the file re-read and merged, written
whole under a new name and renamed into place; at most ``MAX_ENTRIES`` entries; fewer than
``MIN_NEW`` new texts are not worth a rewrite once the file exists).
"""

from __future__ import annotations
import __future__

import atexit
import builtins
import marshal
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from re import _compiler as _re_compiler  # type: ignore[attr-defined]
from re import _parser as _re_parser  # type: ignore[attr-defined]
from types import CodeType, ModuleType
from typing import Any

from simulation_assets.paths import prepared_root

FORMAT = 1
MAX_ENTRIES = 50_000  # a command adds ~3,300; beyond this nothing more is kept
# A process that compiled fewer new texts than this leaves the file as it is: a namedtuple built from a
# set's order differs from one process to the next, and is not worth rewriting ~1 MB for each time.
MIN_NEW = 16
# compiler flags that ``compile(..., dont_inherit=False)``, ``eval`` and ``exec`` take from the calling code
FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag

_compile, _eval, _exec = builtins.compile, builtins.eval, builtins.exec
_REAL_RE_COMPILE: Callable[..., Any] = _re_compiler.compile

# module -> the built-in its generated code goes through
SITES: dict[str, str] = {
    "collections": "eval",  # namedtuple's __new__
    "dataclasses": "exec",  # _create_fn: __init__, __repr__, __eq__, ...
    "typing": "compile",  # ForwardRef of a string annotation
    "dagster_shared.check.builder": "exec",  # checked constructors of Dagster's records
    "sqlalchemy.util.langhelpers": "compile",  # SQLAlchemy's generated functions
}


def cache_file(folder: Path) -> Path:
    """Return the file of this interpreter's compiled sources in ``folder``."""
    version = ".".join(str(part) for part in sys.version_info[:3])
    return folder / f"compiled-{sys.implementation.name}-{version}.marshal"


class CodeCache:
    """Code objects by (mode, file name, flags, optimization, source text), read from and added to ``path``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.entries, self.patterns = self._read() if path else ({}, {})
        self.loaded = len(self.entries) + len(self.patterns)
        self.new: dict[tuple[str, str, int, int, str], bytes] = {}
        self.new_patterns: dict[tuple[Any, int], bytes] = {}
        self.hits = self.misses = 0

    def _read(self) -> tuple[dict[tuple[str, str, int, int, str], bytes], dict[tuple[Any, int], bytes]]:
        try:
            data = marshal.loads(self.path.read_bytes())  # type: ignore[union-attr]
        except (OSError, ValueError, EOFError, TypeError):
            return {}, {}
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or not isinstance(data.get("code"), dict)
            or not isinstance(data.get("re"), dict)
        ):
            return {}, {}
        return data["code"], data["re"]

    def code(self, source: str, filename: str, mode: str, flags: int, optimize: int) -> CodeType:
        """Return ``compile(source, filename, mode, flags, dont_inherit=True, optimize=optimize)``."""
        key = (mode, filename, flags, optimize, source)
        found = self.entries.get(key)
        if found is not None:
            try:
                code = marshal.loads(found)
            except (ValueError, EOFError, TypeError):
                pass
            else:
                if isinstance(code, CodeType):
                    self.hits += 1
                    return code
        code = _compile(source, filename, mode, flags, True, optimize)
        self.misses += 1
        with self.lock:
            if len(self.entries) < MAX_ENTRIES:
                self.entries[key] = self.new[key] = marshal.dumps(code)
        return code

    def save(self) -> bool:
        """Add what this process compiled to the file (merged with what is there now); True when written."""
        with self.lock:
            new, self.new = self.new, {}
            new_patterns, self.new_patterns = self.new_patterns, {}
        count = len(new) + len(new_patterns)
        if not count or self.path is None or (self.loaded and count < MIN_NEW):
            return False
        try:
            code, patterns = self._read()
            if len(code) + len(patterns) + count > MAX_ENTRIES:
                return False
            code.update(new)
            patterns.update(new_patterns)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staged = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            staged.write_bytes(marshal.dumps({"format": FORMAT, "code": code, "re": patterns}))
            os.replace(staged, self.path)
        except (OSError, ValueError):
            return False
        return True

    # ------------------------------------------------------------------------ regular expressions

    def pattern(self, pattern: Any, flags: int = 0) -> Any:
        """``re._compiler.compile(pattern, flags)``: a text pattern's compiled program is looked up first.

        The program (``_sre.compile``'s arguments after parsing) is what ``re._compiler.compile``
        computes; a pattern that fails to parse raises as it does there.
        """
        if type(pattern) not in (str, bytes) or flags & re.DEBUG:
            return _REAL_RE_COMPILE(pattern, flags)
        flags = int(flags)
        key = (pattern, flags)
        found = self.patterns.get(key)
        if found is not None:
            try:
                program = marshal.loads(found)
                compiled = _re_compiler._sre.compile(pattern, *program)
            except (ValueError, EOFError, TypeError, RuntimeError):
                pass
            else:
                self.hits += 1
                return compiled
        parsed = _re_parser.parse(pattern, flags)
        code = [int(op) for op in _re_compiler._code(parsed, flags)]  # opcodes are named int constants
        groupindex = parsed.state.groupdict
        indexgroup = [None] * parsed.state.groups
        for name, index in groupindex.items():
            indexgroup[index] = name
        program = (flags | parsed.state.flags, code, parsed.state.groups - 1, groupindex, tuple(indexgroup))
        compiled = _re_compiler._sre.compile(pattern, *program)
        self.misses += 1
        with self.lock:
            if len(self.entries) + len(self.patterns) < MAX_ENTRIES:
                self.patterns[key] = self.new_patterns[key] = marshal.dumps(program)
        return compiled

    # ------------------------------------------------------------- the built-ins, for one module's globals

    def _flags(self, flags: int, dont_inherit: bool, depth: int) -> int:
        if not dont_inherit:
            flags |= sys._getframe(depth + 1).f_code.co_flags & FUTURE_FLAGS
        return flags

    def compile(
        self,
        source: Any,
        filename: Any,
        mode: str,
        flags: int = 0,
        dont_inherit: bool = False,
        optimize: int = -1,
        **kwargs: Any,
    ) -> Any:
        """``compile`` as the calling module's built-in: plain source text is looked up first."""
        flags = self._flags(flags, dont_inherit, 1)
        if type(source) is not str or type(filename) is not str or flags & ~FUTURE_FLAGS or kwargs:
            return _compile(source, filename, mode, flags, True, optimize, **kwargs)
        return self.code(source, filename, mode, flags, optimize)

    def _namespaces(self, globals_: Any, locals_: Any) -> tuple[Any, Any]:
        if globals_ is None:
            caller = sys._getframe(2)
            return caller.f_globals, caller.f_locals if locals_ is None else locals_
        return globals_, globals_ if locals_ is None else locals_

    def eval(self, source: Any, globals_: Any = None, locals_: Any = None, /) -> Any:
        """``eval`` as the calling module's built-in (text is stripped of leading blanks, as the built-in does)."""
        globals_, locals_ = self._namespaces(globals_, locals_)
        if type(source) is str:
            source = self.code(source.lstrip(" \t"), "<string>", "eval", self._flags(0, False, 1), -1)
        return _eval(source, globals_, locals_)

    def exec(self, source: Any, globals_: Any = None, locals_: Any = None, /, **kwargs: Any) -> Any:
        """``exec`` as the calling module's built-in."""
        globals_, locals_ = self._namespaces(globals_, locals_)
        if type(source) is str:
            source = self.code(source, "<string>", "exec", self._flags(0, False, 1), -1)
        return _exec(source, globals_, locals_, **kwargs)

    def give(self, module: ModuleType, builtin: str) -> None:
        """Make ``module``'s own ``builtin`` (compile, eval or exec) this cache's."""
        module.__dict__[builtin] = getattr(self, builtin)


_INSTALLED: list[CodeCache] = []


def install(folder: Path | None = None) -> CodeCache | None:
    """Give the call sites of ``SITES`` this process's cache (modules imported later as they are imported); once.

    ``folder``: ``paths.prepared_root()`` (None there: off). What is compiled anew is added to the
    file when the process ends (``save``).
    """
    if _INSTALLED:
        return _INSTALLED[0]
    folder = folder or prepared_root()
    if folder is None:
        return None
    cache = CodeCache(cache_file(folder))
    _INSTALLED.append(cache)
    if _re_compiler.compile is _REAL_RE_COMPILE and hasattr(_re_compiler, "_code"):
        _re_compiler.compile = cache.pattern  # what re.compile calls for a pattern not in its own cache
    later: dict[str, Callable[[], object]] = {}
    for name, builtin in SITES.items():
        module = sys.modules.get(name)
        if module is not None:
            cache.give(module, builtin)
        else:
            later[name] = _giver(cache, name, builtin)
    if later:
        from simulation_assets.sinks.deferred_imports import defer

        defer({}, (), later)
    atexit.register(_save_at_exit, folder)
    return cache


def _save_at_exit(folder: Path) -> None:
    """Save at the end of the process, unless its environment now names another folder (a warm server's
    child runs with the client's environment: ``SIMULATE_PREPARED_INSTANCES=0`` there writes nothing)."""
    if _INSTALLED and prepared_root() == folder:
        _INSTALLED[0].save()


def _giver(cache: CodeCache, name: str, builtin: str) -> Callable[[], None]:
    def give() -> None:
        cache.give(sys.modules[name], builtin)

    return give


def save() -> bool:
    """Write what this process compiled anew now (the warm server, after its imports); True when written."""
    return bool(_INSTALLED) and _INSTALLED[0].save()
