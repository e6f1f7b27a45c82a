"""The package's layers, read from its source: imports run one way and never in a circle.

``core <- sinks <- defs <- commands``: a module may import its own layer and the
layers below it, never one above. ``webapp/`` and ``target/`` (the reference apps)
may import only ``core/`` and the reference apps' own code. Every import counts,
including one inside a function: a lazy import hides a dependency, it does not
remove it. Imports under ``if TYPE_CHECKING:`` only name types for annotations and
never run, so they do not count. Two modules that import each other (directly or round a longer loop)
are a cycle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import simulation_assets

PACKAGE = "simulation_assets"
ROOT = Path(simulation_assets.__file__).parent
SKIP_DIRS = {"node_modules", "static", "__pycache__"}

# Layer of each top-level part of the package (higher may import lower, never the reverse).
LAYERS: dict[str, int] = {
    "core": 0,
    "paths": 1,  # where local state lives: read by sinks
    "sinks": 1,
    "activity_dashboard": 2,  # the activity dashboard reads the store; commands serve it
    "defs": 2,
    "definitions": 2,
    "commands": 3,
    "cli": 3,
    "__init__": 0,
}
# The reference apps import core and each other only; defs and commands may start them.
REFERENCE_APPS = {"webapp", "target"}

# Violations that exist on main today, each owned by the engineer fixing it. The test requires this
# list to be exactly the current set: fixing one means deleting its line, and no new one can appear.
KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_CYCLES: set[frozenset[str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Return every module of the package by dotted name (packages by their ``__init__``)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        if SKIP_DIRS.intersection(path.relative_to(ROOT).parts):
            continue
        found[_module_name(path)] = path
    return found


def _resolve(name: str) -> str | None:
    """Return the package module ``name`` refers to (the longest existing prefix), or None if external."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    known = modules()
    while name not in known:
        name = name.rpartition(".")[0]
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Yield every node that can run: ``if TYPE_CHECKING:`` blocks hold annotations only, never imported."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _imported(module: str, path: Path) -> Iterator[str]:
    """Yield the package modules ``module`` imports anywhere in its source (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # ``from pkg import sub`` imports the submodule when there is one
            targets = [f"{prefix}.{alias.name}" for alias in node.names] or [prefix]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != module:
                yield resolved


def _local_import_graph() -> dict[str, list[str]]:
    return {name: sorted(_imported(name, path)) for name, path in modules().items()}


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Return module -> the package modules it imports.

    The sources are parsed in a child interpreter: CPython 3.11 keeps the AST converter's
    recursion depth in shared state, so ``ast.parse`` here can fail with "AST constructor
    recursion depth mismatch" while a thread left by another test in this process parses too.
    """
    return {name: frozenset(targets) for name, targets in _in_child("_local_import_graph").items()}


def _in_child(function: str):  # noqa: ANN202 - JSON of whatever the function returns
    """Run one of this module's functions in a fresh interpreter and return its JSON result.

    The child starts in ``ROOT.parent``, which ``python -c`` puts first on ``sys.path``: it imports the
    package found there, so a test that points ``ROOT`` at a fake package gets that package's graph.
    """
    script = f"import json; from simulation_assets_tests import test_architecture as m; print(json.dumps(m.{function}()))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT.parent,
        timeout=300,
    )
    return json.loads(done.stdout)


def part(module: str) -> str:
    """Return the top-level part of the package a module belongs to (``core``, ``sinks``, ``webapp`` ...)."""
    rest = module.split(".")[1:]
    return rest[0] if rest else "__init__"


def upward_imports() -> set[tuple[str, str]]:
    """Return (importer, imported) pairs that break the layering."""
    bad = set()
    for importer, imported in import_graph().items():
        for target in imported:
            a, b = part(importer), part(target)
            if a in REFERENCE_APPS:
                ok = b in REFERENCE_APPS or b == "core" or b == "__init__"
            elif b in REFERENCE_APPS:
                ok = LAYERS[a] >= LAYERS["defs"]  # assets and commands may start a reference app
            else:
                ok = LAYERS[b] <= LAYERS[a]
            if not ok:
                bad.add((importer, target))
    return bad


def import_cycles() -> set[frozenset[str]]:
    """Return the strongly connected groups of two or more modules (Tarjan's algorithm)."""
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: set[frozenset[str]] = set()
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.add(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.add(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {part(m) for m in modules()}
    assert parts - set(LAYERS) - REFERENCE_APPS == set()


def test_no_module_imports_a_layer_above_its_own() -> None:
    found = upward_imports()
    new = sorted(found - KNOWN_UPWARD)
    fixed = sorted(KNOWN_UPWARD - found)
    assert not new, f"upward imports (core <- sinks <- defs <- commands; apps import core only): {new}"
    assert not fixed, f"fixed: delete these from KNOWN_UPWARD: {fixed}"


def test_no_import_cycles() -> None:
    found = import_cycles()
    new = sorted(sorted(c) for c in found - KNOWN_CYCLES)
    fixed = sorted(sorted(c) for c in KNOWN_CYCLES - found)
    assert not new, f"import cycles: {new}"
    assert not fixed, f"fixed: delete these from KNOWN_CYCLES: {fixed}"


def _core_heavy_imports() -> list[list[str]]:
    # DuckDB is allowed: core uses it in memory as a vectorized engine (learned rates, uuid hashing).
    heavy = {"dagster", "dagster_dbt", "dagster_shared", "httpx", "psycopg", "posthog", "supabase", "uvicorn"}
    offenders = []
    for name, path in modules().items():
        if part(name) != "core":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [[name, n] for n in names if n.split(".")[0] in heavy]
    return offenders


def test_core_never_imports_dagster_or_network_and_database_clients() -> None:
    assert _in_child("_core_heavy_imports") == []


# --- the checker itself finds what it should --------------------------------------------------


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / PACKAGE
    for folder in ("core", "sinks", "defs", "webapp"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    monkeypatch.setattr(f"{__name__}.ROOT", pkg)
    for fn in (modules, import_graph):
        fn.cache_clear()
    yield pkg
    for fn in (modules, import_graph):
        fn.cache_clear()


def test_the_checker_finds_a_cycle_through_a_lazy_import_and_an_upward_import(fake_package: Path) -> None:
    (fake_package / "defs" / "a.py").write_text("from simulation_assets.defs import b\n")
    (fake_package / "defs" / "b.py").write_text("def f():\n    from . import a\n")
    (fake_package / "sinks" / "s.py").write_text("import simulation_assets.defs.a\n")
    (fake_package / "webapp" / "w.py").write_text("from simulation_assets.sinks.s import x\n")
    (fake_package / "sinks" / "t.py").write_text("from simulation_assets.webapp import w\n")
    (fake_package / "core" / "c.py").write_text("import dagster\n")
    (fake_package / "core" / "t.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from simulation_assets.defs import a\n"
    )
    assert import_cycles() == {frozenset({"simulation_assets.defs.a", "simulation_assets.defs.b"})}
    assert upward_imports() == {
        ("simulation_assets.sinks.s", "simulation_assets.defs.a"),
        ("simulation_assets.webapp.w", "simulation_assets.sinks.s"),
        ("simulation_assets.sinks.t", "simulation_assets.webapp.w"),
    }
