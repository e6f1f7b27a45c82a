"""The funnel's app database rows (users, credit ledger, purchases) in PostgreSQL / Supabase, optionally.

Off by default. With ``FUNNEL_APP_DB=postgres`` and a DSN in ``FUNNEL_APP_DB_DSN`` (bound as
a ``dg.EnvVar``, so the UI shows the variable, never the DSN), each cohort day's rows
replace that day's synthetic rows in one transaction: a ``DELETE`` that can only match rows
flagged ``is_synthetic`` (and, for users, with the synthetic e-mail domain), then one
``COPY`` per table. A real row of the same database is never touched, and a failed write
leaves the previous rows in place.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.funnel.app_rows import KEYS, TABLES
from simulation_assets.core.funnel.capi import SYNTHETIC_EMAIL_DOMAIN

MODES = ("off", "postgres")


def _sql_type(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Int64:
        return "bigint"
    if isinstance(dtype, pl.Datetime):
        return "timestamptz"
    return "text"


def ddl(schema: str) -> list[str]:
    """Return the statements that create the funnel app tables when they are missing."""
    out = [f"CREATE SCHEMA IF NOT EXISTS {schema}"]
    for table, columns in TABLES.items():
        cols = [f"{name} {_sql_type(dtype)}" for name, dtype in columns.items()]
        cols.append("cohort_day date NOT NULL")
        cols.append(f"PRIMARY KEY ({KEYS[table]})")
        out.append(f"CREATE TABLE IF NOT EXISTS {schema}.{table} ({', '.join(cols)})")
        out.append(f"CREATE INDEX IF NOT EXISTS {table}_cohort_day ON {schema}.{table} (cohort_day)")
    return out


def synthetic_only(table: str) -> str:
    """Return the SQL condition a row must meet to be deleted: synthetic by flag (and e-mail for users)."""
    if table == "users":
        suffix = "@" + SYNTHETIC_EMAIL_DOMAIN
        return f"is_synthetic AND right(email, {len(suffix)}) = '{suffix}'"
    return "is_synthetic"


class FunnelAppDatabase(dg.ConfigurableResource):
    """Writes the funnel's users, credit ledger and purchases rows to PostgreSQL (or nowhere: ``off``)."""

    ENV: ClassVar[dict[str, str]] = {"mode": "FUNNEL_APP_DB", "dsn": "FUNNEL_APP_DB_DSN"}

    mode: str = Field(default="off", description="off (no database) or postgres ($FUNNEL_APP_DB).")
    dsn: str = Field(default="", description="PostgreSQL connection string ($FUNNEL_APP_DB_DSN).")
    schema_name: str = Field(
        default="funnel_app", description="Schema of the users/credit_ledger/purchases tables."
    )

    def validate_config(self) -> None:
        """Raise ValueError naming the setting when the configuration cannot work."""
        if self.mode not in MODES:
            raise ValueError(f"FUNNEL_APP_DB / mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "postgres" and not self.dsn:
            raise ValueError("FUNNEL_APP_DB=postgres needs a connection string in $FUNNEL_APP_DB_DSN")
        if not self.schema_name.isidentifier():
            raise ValueError(f"schema_name must be a plain identifier, got {self.schema_name!r}")

    def write_day(self, day: str, rows: dict[str, pl.DataFrame]) -> dict[str, int]:
        """Replace the synthetic rows of cohort ``day`` with ``rows``; return rows written per table."""
        self.validate_config()
        if self.mode == "off":
            return {}
        for table, frame in rows.items():
            if not frame["is_synthetic"].all():
                raise ValueError(f"{table}: refusing to write rows not flagged is_synthetic")
        if not rows["users"]["email"].str.ends_with("@" + SYNTHETIC_EMAIL_DOMAIN).all():
            raise ValueError(f"users: every e-mail must end in @{SYNTHETIC_EMAIL_DOMAIN}")
        import psycopg

        cohort_day = dt.date.fromisoformat(day)
        with psycopg.connect(self.dsn) as con, con.transaction():
            for statement in ddl(self.schema_name):
                con.execute(statement)
            for table in TABLES:
                con.execute(
                    f"DELETE FROM {self.schema_name}.{table} WHERE cohort_day = %s AND {synthetic_only(table)}",
                    (cohort_day,),
                )
            for table, frame in rows.items():
                columns = [*TABLES[table], "cohort_day"]
                data = frame.with_columns(pl.lit(cohort_day).alias("cohort_day")).select(columns)
                csv = data.write_csv(
                    include_header=False, null_value="\\N", datetime_format="%Y-%m-%dT%H:%M:%S%.3f%z"
                )
                with con.cursor().copy(
                    f"COPY {self.schema_name}.{table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
                ) as copy:
                    copy.write(csv.encode())
        return {table: frame.height for table, frame in rows.items()}
