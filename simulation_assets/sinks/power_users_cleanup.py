"""Remove the simulated users from the target's database: the synthetic e-mail domain only, counted first.

Two backends behind one method: the target's PostgreSQL database (``dsn``; a table and its e-mail
column, e.g. Supabase's ``users``), or, without a DSN, the reference target's own hook
``POST /sim/users/cleanup``. Only rows whose e-mail ends with ``@simulated.propiq.test`` are ever
matched; the count comes first, and a delete that would touch a different number of rows than
were counted is rolled back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dagster as dg
import httpx
from pydantic import Field

from simulation_assets.core.power_users.config import SIMULATED_EMAIL_DOMAIN

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class CleanupResult:
    """What a cleanup found and did: rows matched (synthetic), deleted, and other rows left alone."""

    matched: int
    deleted: int
    kept: int
    dry_run: bool
    where: str


class TargetUserCleanup(dg.ConfigurableResource):
    """Counts, then (unless a dry run) deletes, the target's users on the synthetic e-mail domain."""

    dsn: str = Field(
        default="", description="PostgreSQL DSN of the target's database (env POWER_USERS_TARGET_DSN)"
    )
    table: str = Field(default="users", description="table of users (schema.table allowed)")
    email_column: str = Field(default="email", description="column holding the e-mail")
    base_url: str = Field(
        default="", description="without a DSN: the reference target's URL (its cleanup hook)"
    )

    def validate_config(self) -> None:
        """Raise ValueError naming the field when the table or column is not a plain identifier."""
        for name in ("table", "email_column"):
            if not _IDENTIFIER.match(getattr(self, name)):
                raise ValueError(f"{name} must be a plain SQL identifier such as users or public.users")
        if not self.dsn and not self.base_url:
            raise ValueError("set dsn (the target's PostgreSQL database) or base_url (the reference target)")

    def clean(self, dry_run: bool = True) -> CleanupResult:
        """Count the synthetic users and, unless ``dry_run``, delete them; return what happened."""
        self.validate_config()
        return self._postgres(dry_run) if self.dsn else self._reference(dry_run)

    def _reference(self, dry_run: bool) -> CleanupResult:
        answer = httpx.post(
            f"{self.base_url.rstrip('/')}/sim/users/cleanup", json={"dry_run": dry_run}, timeout=30
        )
        answer.raise_for_status()
        body = answer.json()
        return CleanupResult(body["matched"], body["deleted"], body["kept"], dry_run, self.base_url)

    def _postgres(self, dry_run: bool) -> CleanupResult:
        import psycopg
        from psycopg import sql

        table = sql.Identifier(*self.table.split("."))
        column = sql.Identifier(self.email_column)
        suffix = "@" + SIMULATED_EMAIL_DOMAIN
        synthetic = sql.SQL("right(lower({col}), %(n)s) = %(suffix)s").format(col=column)
        params = {"n": len(suffix), "suffix": suffix}
        with psycopg.connect(self.dsn) as conn, conn.transaction():
            matched = conn.execute(
                sql.SQL("SELECT count(*) FROM {t} WHERE ").format(t=table) + synthetic, params
            ).fetchone()[0]
            total = conn.execute(sql.SQL("SELECT count(*) FROM {t}").format(t=table)).fetchone()[0]
            deleted = 0
            if not dry_run and matched:
                deleted = conn.execute(
                    sql.SQL("DELETE FROM {t} WHERE ").format(t=table) + synthetic, params
                ).rowcount
                if deleted != matched:
                    raise RuntimeError(f"delete touched {deleted} rows, {matched} were counted: rolled back")
        return CleanupResult(
            matched, deleted, total - matched, dry_run, f"{self.table} in the target database"
        )
