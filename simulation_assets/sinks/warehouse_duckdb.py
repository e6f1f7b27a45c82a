"""The embedded warehouse: a DuckDB file with the raw tables in schema ``raw``.

A load replaces the given tables inside one transaction, so a failed load
leaves the previous contents in place and a re-load of an environment replaces
it. DuckDB reads the Parquet chunk folders directly (``read_parquet`` globs).
"""

from __future__ import annotations

import time
from pathlib import Path

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.checks import Check, CheckResult, run_checks
from simulation_assets.sinks.warehouse_parquet import table_glob

RAW = "raw"


def _ddl(table: str, dialect: int) -> str:
    spec = schema.table(table)
    return ", ".join(f"{c.name} {schema.TYPES[c.type][dialect]}" for c in spec.columns)


class DuckDBWarehouse:
    """Load, query and check the raw schema of one DuckDB file."""

    kind = "duckdb"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return f"duckdb:{self.path}"

    def validate(self) -> None:
        """Raise ValueError naming the file when the database cannot be created or opened."""
        import duckdb

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            duckdb.connect(str(self.path)).close()
        except (OSError, duckdb.Error) as exc:
            raise ValueError(f"cannot open DuckDB file {self.path}: {exc}") from None

    def load(self, root: Path, tables: list[str]) -> dict[str, float]:
        """Replace ``raw.<table>`` for each table from the Parquet files under ``root``; return seconds per table."""
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        seconds: dict[str, float] = {}
        with duckdb.connect(str(self.path)) as con:
            con.execute("SET preserve_insertion_order = false")  # parallel inserts, less memory
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW}")
                for name in tables:
                    started = time.perf_counter()
                    cols = ", ".join(schema.table(name).column_names)
                    con.execute(f"CREATE OR REPLACE TABLE {RAW}.{name} ({_ddl(name, 1)})")
                    con.execute(
                        f"INSERT INTO {RAW}.{name} SELECT {cols} FROM read_parquet('{table_glob(root, name)}')"
                    )
                    seconds[name] = time.perf_counter() - started
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return seconds

    def query(self, sql: str) -> list[tuple]:
        import duckdb

        with duckdb.connect(str(self.path), read_only=True) as con:
            return con.execute(sql).fetchall()

    def tables(self) -> list[str]:
        """Return the tables present in schema ``raw``."""
        import duckdb

        if not self.path.exists():
            return []
        with duckdb.connect(str(self.path), read_only=True) as con:
            rows = con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", [RAW]
            ).fetchall()
        return [r[0] for r in rows]

    def run_checks(self, checks: list[Check]) -> list[CheckResult]:
        import duckdb

        with duckdb.connect(str(self.path), read_only=True) as con:
            return run_checks(checks, lambda sql: con.execute(sql).fetchall())

    def dbt_env(self) -> dict[str, str]:
        """Return the variables that point ``dbt/profiles.yml`` at this file."""
        return {"WAREHOUSE_DBT_TARGET": "duckdb", "WAREHOUSE_DUCKDB_PATH": str(self.path)}
