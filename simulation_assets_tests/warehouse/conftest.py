"""Fixtures of the warehouse tests: one DEV generation shared by the module that asks for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.generate import Warehouse
from simulation_assets.sinks.warehouse_parquet import write_tables


@pytest.fixture(scope="session")
def dev_warehouse() -> Warehouse:
    """The DEV warehouse of seed 42, tables cached in memory."""
    return Warehouse(42, "dev")


@pytest.fixture(scope="session")
def dev_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every DEV table of seed 42 written as Parquet (once per test process)."""
    root = tmp_path_factory.mktemp("warehouse_dev")
    write_tables(42, "dev", root, schema.TABLE_NAMES)
    return root
