"""``simulate cleanup``: count, then delete, the synthetic data in the HogFlix app database and auth users.

Only rows flagged ``is_synthetic`` (or, in tables with an e-mail, on the
synthetic domain) and auth users whose metadata or e-mail say synthetic are
ever matched; everything else is left alone whatever the input.
"""

from __future__ import annotations

import argparse
import os

from simulation_assets.commands.common import UsageError, console


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
    from pathlib import Path

    from simulation_assets.sinks.app_db import HogflixAppDatabase
    from simulation_assets.sinks.config_files import from_env, resolved
    from simulation_assets.sinks.supabase_auth import SupabaseAuthAdmin

    if args.duckdb and args.app_db == "duckdb" and not Path(args.duckdb).exists():
        raise UsageError(f"--duckdb file not found: {args.duckdb}")
    database = {"backend": args.app_db, "duckdb_path": args.duckdb} | ({"dsn": args.dsn} if args.dsn else {})
    db = resolved(from_env(HogflixAppDatabase, **database))
    try:
        db.validate_config()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    auth = resolved(from_env(SupabaseAuthAdmin))
    counts = db.count_synthetic()
    auth_ids = auth.synthetic_user_ids()
    console.print(f"Synthetic data in {db.location()}:")
    for table, n in counts.items():
        console.print(f"  {table:<20} {n:>8}")
    if auth.enabled():
        console.print(f"  {'auth users':<20} {len(auth_ids):>8}")
    if args.dry_run:
        console.print("Dry run: nothing deleted.")
        return 0
    result = db.cleanup_synthetic()
    removed = auth.delete_users(auth_ids)
    if (
        result["non_synthetic_before"] != result["non_synthetic_after"]
    ):  # cannot happen: the predicate forbids it
        console.print("[bold red]error:[/] non-synthetic row count changed; the transaction was committed")
        return 1
    total = sum(result["deleted"].values())
    console.print(
        f"Deleted {total} synthetic rows"
        + (f" and {removed['deleted']} auth users" if auth.enabled() else "")
        + f"; {result['non_synthetic_after']} non-synthetic rows untouched."
    )
    return 0
