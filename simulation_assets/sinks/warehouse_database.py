"""The warehouse target as a Dagster resource: embedded DuckDB by default, PostgreSQL when configured.

``WAREHOUSE_TARGET=postgres`` and ``WAREHOUSE_POSTGRES_DSN=postgresql://...`` switch the loads (and dbt) to
PostgreSQL; a ``{env}`` in the DSN is replaced by the environment (one database per environment).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import dagster as dg
from pydantic import Field

from simulation_assets.paths import data_dir
from simulation_assets.sinks.warehouse_duckdb import DuckDBWarehouse
from simulation_assets.sinks.warehouse_postgres import PostgresWarehouse

TARGETS = ("duckdb", "postgres")


class WarehouseDatabase(dg.ConfigurableResource):
    """Where the raw tables are loaded and dbt builds: ``duckdb`` (a file per environment) or ``postgres``."""

    ENV: ClassVar[dict[str, str]] = {
        "target": "WAREHOUSE_TARGET",
        "duckdb_dir": "WAREHOUSE_DUCKDB_DIR",
        "postgres_dsn": "WAREHOUSE_POSTGRES_DSN",
        "fk_index": "WAREHOUSE_PG_FK_INDEX",
    }

    target: str = Field(
        default="duckdb",
        description="duckdb (embedded default) or postgres ($WAREHOUSE_TARGET).",
    )
    duckdb_dir: str = Field(
        default="",
        description="Folder of the DuckDB files (<env>.duckdb); empty means <data dir>/warehouse/duckdb.",
    )
    postgres_dsn: str = Field(
        default="",
        description="PostgreSQL DSN ($WAREHOUSE_POSTGRES_DSN); '{env}' is replaced by the environment.",
    )
    connections: int = Field(
        default=2, ge=1, description="Connections a PostgreSQL load runs its copies and index builds on."
    )

    fk_index: str = Field(
        default="auto",
        description="How PostgreSQL loads index foreign-key columns ($WAREHOUSE_PG_FK_INDEX): auto (BRIN for a "
        "column of a table of 1M+ rows stored in key order, B-tree otherwise) or btree (B-tree always).",
    )

    def duckdb_path(self, env: str) -> Path:
        folder = Path(self.duckdb_dir) if self.duckdb_dir else data_dir() / "warehouse" / "duckdb"
        return folder.resolve() / f"{env}.duckdb"

    def dsn(self, env: str) -> str:
        return self.postgres_dsn.replace("{env}", env)

    def dbt_env(self, env: str) -> dict[str, str]:
        """Return the environment variables that point ``dbt/profiles.yml`` at this warehouse."""
        return dbt_environment(self.target, self.duckdb_path(env), self.dsn(env))

    def for_env(self, env: str) -> DuckDBWarehouse | PostgresWarehouse:
        """Return the warehouse of ``env``; raise ValueError naming the valid targets."""
        if self.target == "duckdb":
            return DuckDBWarehouse(self.duckdb_path(env))
        if self.target == "postgres":
            return PostgresWarehouse(self.dsn(env), self.connections, fk_index=self.fk_index)
        raise ValueError(f"WAREHOUSE_TARGET must be one of {', '.join(TARGETS)}, got {self.target!r}")


def dbt_environment(target: str, duckdb_path: Path | str, dsn: str = "") -> dict[str, str]:
    """Return the variables ``dbt/profiles.yml`` reads for ``target`` (duckdb file or PostgreSQL DSN)."""
    if target == "duckdb":
        return {"WAREHOUSE_DBT_TARGET": "duckdb", "WAREHOUSE_DUCKDB_PATH": str(duckdb_path)}
    if target != "postgres":
        raise ValueError(f"WAREHOUSE_TARGET must be one of {', '.join(TARGETS)}, got {target!r}")
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    return {
        "WAREHOUSE_DBT_TARGET": "postgres",
        "WAREHOUSE_PG_HOST": str(info.get("host") or "127.0.0.1"),
        "WAREHOUSE_PG_PORT": str(info.get("port") or "5432"),
        "WAREHOUSE_PG_USER": str(info.get("user") or os.environ.get("PGUSER", "postgres")),
        "WAREHOUSE_PG_PASSWORD": str(info.get("password") or os.environ.get("PGPASSWORD", "")),
        "WAREHOUSE_PG_DBNAME": str(info.get("dbname") or "postgres"),
    }
