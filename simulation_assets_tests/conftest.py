"""Fixtures shared by every test module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulation_assets_tests.postgres_cluster import PostgresCluster


@pytest.fixture(autouse=True)
def isolated_local_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give every test its own DAGSTER_HOME and data folder, so tests never share or leak state."""
    home = tmp_path / "dagster_home"
    data = tmp_path / "data"
    home.mkdir()
    data.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("SIMULATION_DATA_DIR", str(data))
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
