"""Where the warehouse lives, as one interface with two implementations: embedded DuckDB and PostgreSQL.

``WarehouseDatabase`` is the Dagster resource the load, the checks, the catalog and dbt use; it
hands out the ``WarehouseBackend`` of an environment. ``DuckDBDatabase`` keeps one DuckDB file per
environment (or one given file); ``PostgresDatabase`` loads a PostgreSQL database whose DSN may
hold ``{env}`` (one database per environment). ``database_from_env`` picks one from
``WAREHOUSE_TARGET`` (``duckdb`` by default, or ``postgres`` with ``WAREHOUSE_POSTGRES_DSN``).
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import ClassVar, Protocol

import dagster as dg
from pydantic import Field

from simulation_assets.core.warehouse.checks import Check, CheckResult
from simulation_assets.paths import data_dir
from simulation_assets.sinks.config_files import from_env
from simulation_assets.sinks.warehouse_duckdb import DuckDBWarehouse
from simulation_assets.sinks.warehouse_postgres import FK_INDEX_METHODS, PostgresWarehouse

TARGETS = ("duckdb", "postgres")


class WarehouseBackend(Protocol):
    """One environment's warehouse: load schema ``raw`` from Parquet, query it, check it, point dbt at it."""

    kind: str

    def describe(self) -> str: ...

    def validate(self) -> None: ...

    def load(self, root: Path, tables: list[str]) -> dict[str, float]: ...

    def query(self, sql: str) -> list[tuple]: ...

    def tables(self) -> list[str]: ...

    def run_checks(self, checks: list[Check]) -> list[CheckResult]: ...

    def dbt_env(self) -> dict[str, str]: ...


class WarehouseDatabase(dg.ConfigurableResource, abc.ABC):
    """Where the raw tables are loaded and dbt builds (see ``DuckDBDatabase`` and ``PostgresDatabase``)."""

    @abc.abstractmethod
    def for_env(self, env: str) -> WarehouseBackend:
        """Return the warehouse of environment ``env``."""

    def dbt_env(self, env: str) -> dict[str, str]:
        """Return the environment variables that point ``dbt/profiles.yml`` at the warehouse of ``env``."""
        return self.for_env(env).dbt_env()


class DuckDBDatabase(WarehouseDatabase):
    """The embedded warehouse: a DuckDB file per environment (``<env>.duckdb``), or one given file."""

    ENV: ClassVar[dict[str, str]] = {"duckdb_dir": "WAREHOUSE_DUCKDB_DIR"}

    duckdb_dir: str = Field(
        default="",
        description="Folder of the DuckDB files (<env>.duckdb); empty means <data dir>/warehouse/duckdb.",
    )
    duckdb_file: str = Field(
        default="",
        description="One DuckDB file for every environment (overrides duckdb_dir), e.g. the CLI's.",
    )

    def path(self, env: str) -> Path:
        if self.duckdb_file:
            return Path(self.duckdb_file).expanduser().resolve()
        folder = Path(self.duckdb_dir) if self.duckdb_dir else data_dir() / "warehouse" / "duckdb"
        return folder.resolve() / f"{env}.duckdb"

    def for_env(self, env: str) -> DuckDBWarehouse:
        return DuckDBWarehouse(self.path(env))


class PostgresDatabase(WarehouseDatabase):
    """A PostgreSQL warehouse, loaded with binary COPY over several connections."""

    ENV: ClassVar[dict[str, str]] = {
        "postgres_dsn": "WAREHOUSE_POSTGRES_DSN",
        "fk_index": "WAREHOUSE_PG_FK_INDEX",
    }

    postgres_dsn: str = Field(
        default="",
        description="PostgreSQL DSN ($WAREHOUSE_POSTGRES_DSN); '{env}' is replaced by the environment.",
    )
    connections: int = Field(
        default=2, ge=1, description="Connections a load runs its copies and index builds on."
    )
    fk_index: str = Field(
        default="auto",
        description="How loads index foreign-key columns ($WAREHOUSE_PG_FK_INDEX): auto (BRIN for a column of a "
        "table of 1M+ rows stored in key order, B-tree otherwise) or btree (B-tree always).",
    )

    def for_env(self, env: str) -> PostgresWarehouse:
        if self.fk_index not in FK_INDEX_METHODS:
            raise ValueError(f"fk_index must be one of {', '.join(FK_INDEX_METHODS)}, got {self.fk_index!r}")
        return PostgresWarehouse(
            self.postgres_dsn.replace("{env}", env), self.connections, fk_index=self.fk_index
        )


def database_from_env() -> WarehouseDatabase:
    """Return the warehouse ``$WAREHOUSE_TARGET`` names: ``duckdb`` (default) or ``postgres``, its other
    settings bound to their environment variables (``dg.EnvVar``: the UI shows names, never the DSN)."""
    target = os.environ.get("WAREHOUSE_TARGET", "duckdb").strip().lower()
    if target == "duckdb":
        return from_env(DuckDBDatabase)
    if target == "postgres":
        return from_env(PostgresDatabase)
    raise ValueError(f"WAREHOUSE_TARGET must be one of {', '.join(TARGETS)}, got {target!r}")
