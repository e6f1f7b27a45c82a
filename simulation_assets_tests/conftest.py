"""Fixtures shared by every test module."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulation_assets_tests.postgres_cluster import PostgresCluster

# No warm `simulate` server for anything the tests start, session- and module-scoped fixtures
# included (test_warm_server.py turns it on for its own commands, in a folder of its own).
os.environ["SIMULATE_SERVER"] = "0"
# Every new instance is created the stock way, not copied from the user's prepared databases
# (test_local_instance.py prepares its own in a folder of its own).
os.environ["SIMULATE_PREPARED_INSTANCES"] = "0"


@pytest.fixture(autouse=True)
def isolated_local_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give every test its own DAGSTER_HOME and data folder, so tests never share or leak state.

    The warm server (``simulate server``) is off: a command a test runs in a subprocess neither uses
    nor starts one (test_warm_server.py turns it on for its own commands, in a folder of its own).
    """
    home = tmp_path / "dagster_home"
    data = tmp_path / "data"
    home.mkdir()
    data.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("SIMULATION_DATA_DIR", str(data))
    monkeypatch.setenv("SIMULATE_SERVER", "0")
    monkeypatch.setenv("SIMULATE_PREPARED_INSTANCES", "0")
    return data


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A real PostgreSQL server on 127.0.0.1, started once per test process."""
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_dsn(postgres_cluster: PostgresCluster) -> str:
    """DSN of a fresh, empty database on the throwaway cluster."""
    return postgres_cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Restore ``--dist loadgroup``: suffix each ``xdist_group`` test's node id with ``@group``.

    pytest-xdist 3.8 does this by assigning ``item._nodeid``, which pytest 9.2 no longer reads (a
    node id now comes from ``Node._id``). Without it every test of a group may land on any worker,
    and a module-scoped fixture such as the daemon deployment is built once per worker. A module whose
    tests ask for a module-scoped fixture becomes a group of its own (``_modules_sharing_a_fixture``).
    """
    if not getattr(config.option, "loadgroup", False):
        return
    shared = _modules_sharing_a_fixture(items)
    _longest_modules_first(items, shared)
    from _pytest.nodeid import NodeId

    for item in items:
        groups = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
        module = item.nodeid.split("::", 1)[0]
        if not groups and module in shared:
            groups = {module}
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(groups))}")


def _modules_sharing_a_fixture(items: list[pytest.Item]) -> set[str]:
    """Return the modules (node id paths) of tests that ask for a module- or class-scoped fixture.

    ``--dist loadgroup`` hands out a test without an ``xdist_group`` on its own, so the tests of one
    module could land on both workers and each would build the module's fixture: the 120-day pools of
    the churn-by-plan tests were computed twice. Such a module runs on one worker, as a group of its own.
    """
    shared = set()
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        if any(d.scope in ("module", "class") for chain in defs for d in chain):
            shared.add(item.nodeid.split("::", 1)[0])
    return shared


def _longest_modules_first(items: list[pytest.Item], grouped: set[str] = frozenset()) -> None:
    """Hand the workers the long modules first: those with a ``slow`` test or an ``xdist_group``.

    xdist gives out work in collection order, and the folders that sort last (warehouse, with its
    dbt builds) held the longest tests: one of them starting near the end kept a worker busy for a
    minute while the other had nothing left. Whole modules move, in their own order, so a module's
    fixtures are still built once per worker; the rest keeps the order it was collected in.
    """
    long_modules = set(grouped) | {
        item.nodeid.split("::", 1)[0]
        for item in items
        if item.get_closest_marker("slow") or item.get_closest_marker("xdist_group")
    }
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in long_modules)  # stable: False first
