"""``simulate cleanup``: count, then delete, the synthetic data in the HogFlix app database and auth users.

It materializes ``hogflix_synthetic_cleanup`` (the asset the Dagster UI offers
for the same job) in-process, recorded in the local instance. Only rows
flagged ``is_synthetic`` (or, in tables with an e-mail, on the synthetic
domain) and auth users whose metadata or e-mail say synthetic are ever
matched; everything else is left alone whatever the input.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from simulation_assets.commands.common import (
    QUIET_RUN_CONFIG,
    UsageError,
    console,
    dagster_instance,
    run_resources,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``cleanup`` sub-command."""
    p = sub.add_parser("cleanup", help="count, then remove, synthetic HogFlix data (synthetic rows only)")
    p.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    p.add_argument(
        "--app-db",
        choices=("duckdb", "postgres"),
        default=os.environ.get("HOGFLIX_APP_DB", "duckdb"),
        help="which app database (default $HOGFLIX_APP_DB or duckdb)",
    )
    p.add_argument("--duckdb", default="", help="DuckDB file (default: the data folder's hogflix/app.duckdb)")
    p.add_argument("--dsn", default="", help="PostgreSQL DSN (default $HOGFLIX_APP_DB_DSN)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``simulate cleanup``."""
    if args.duckdb and args.app_db == "duckdb" and not Path(args.duckdb).exists():
        raise UsageError(f"--duckdb file not found: {args.duckdb}")
    import dagster as dg

    from simulation_assets.defs.hogflix_daily import daily_assets
    from simulation_assets.defs.partitions import daily_partitions
    from simulation_assets.sinks.app_db import DSN_ENV_VAR, app_database
    from simulation_assets.sinks.config_files import from_env, resolved
    from simulation_assets.sinks.supabase_auth import SupabaseAuthAdmin

    try:
        db = app_database(args.app_db, args.duckdb, args.dsn or os.environ.get(DSN_ENV_VAR, ""))
        db.validate_config()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    asset = next(a for a in daily_assets(daily_partitions()) if a.key.path == ["hogflix_synthetic_cleanup"])
    result = dg.materialize(
        [asset],
        resources=run_resources(
            {"hogflix_app_db": db, "hogflix_auth": resolved(from_env(SupabaseAuthAdmin))}
        ),
        instance=dagster_instance(),
        run_config={
            **QUIET_RUN_CONFIG,
            "ops": {"hogflix_synthetic_cleanup": {"config": {"dry_run": bool(args.dry_run)}}},
        },
        raise_on_error=True,
    )
    meta = {
        k: v.value
        for k, v in result.asset_materializations_for_node("hogflix_synthetic_cleanup")[0].metadata.items()
    }
    console.print(f"Synthetic data in {meta['database']}:")
    for table, n in meta["synthetic_rows"].items():
        console.print(f"  {table:<20} {n:>8}")
    if meta["auth_enabled"]:
        console.print(f"  {'auth users':<20} {meta['synthetic_auth_users']:>8}")
    check = result.get_asset_check_evaluations()[0]
    if not check.passed:  # cannot happen: every delete is limited to synthetic rows, in one transaction
        console.print(
            "[bold red]error:[/] the non-synthetic row count changed; see the run in the Dagster UI"
        )
        return 1
    if args.dry_run:
        console.print(f"Dry run: nothing deleted (run {result.run_id}).")
        return 0
    console.print(
        f"Deleted {sum(meta['rows_deleted'].values())} synthetic rows"
        + (f" and {meta['auth_users_deleted']} auth users" if meta["auth_enabled"] else "")
        + f"; {meta['non_synthetic_rows']} non-synthetic rows untouched (run {result.run_id})."
    )
    return 0
