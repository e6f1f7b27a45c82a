"""``simulate warehouse``: generate the raw warehouse of one environment, optionally load, check and model it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from simulation_assets.commands.common import UsageError, console, prepare_output, progress, write_json

DEMO_ORDER = 50
LOAD_TARGETS = ("duckdb", "postgres")
RAW_PREFIX = "warehouse_raw"  # asset key prefix of the loaded tables in the Dagster definitions


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``warehouse`` sub-command."""
    p = sub.add_parser(
        "warehouse",
        help="generate the synthetic SaaS warehouse (27 raw tables) at DEV/QA/PROD scale",
        description="Write DIR/<table>.parquet (or DIR/<table>/part-*.parquet) and DIR/summary.json; "
        "with --load, load schema raw into DuckDB or PostgreSQL and check integrity.",
    )
    p.add_argument("--env", default=None, help="dev, qa or prod (default: $DATAGEN_ENV or dev)")
    p.add_argument("--seed", type=int, default=42, help="global random seed (default 42)")
    p.add_argument(
        "--output", default="output/warehouse", help="folder for the Parquet files and summary.json"
    )
    p.add_argument("--load", default=None, help="load into 'duckdb' or 'postgres' after generating")
    p.add_argument(
        "--dsn",
        default=None,
        help="PostgreSQL DSN for --load postgres (default $WAREHOUSE_POSTGRES_DSN); "
        "for --load duckdb an optional database file (default DIR/warehouse.duckdb)",
    )
    p.add_argument("--tables", default=None, help="comma-separated subset of tables (default: all 27)")
    p.add_argument(
        "--workers", type=int, default=None, help="generator processes (default 1 for dev, 2 otherwise)"
    )
    p.add_argument(
        "--dbt", action="store_true", help="after --load, run `dbt build` against the loaded warehouse"
    )
    p.set_defaults(handler=run)


def parse_env(value: str | None) -> str:
    from simulation_assets.core.warehouse.config import ENVIRONMENTS

    env = (value or os.environ.get("DATAGEN_ENV") or "dev").strip().lower()
    if env not in ENVIRONMENTS:
        raise UsageError(f"--env must be one of {', '.join(ENVIRONMENTS)}, got {value or env!r}")
    return env


def parse_tables(value: str | None) -> list[str]:
    from simulation_assets.core.warehouse import schema

    if not value:
        return list(schema.TABLE_NAMES)
    names = [t.strip() for t in value.split(",") if t.strip()]
    unknown = [t for t in names if t not in schema.TABLES_BY_NAME]
    if unknown or not names:
        raise UsageError(
            f"unknown table(s) in --tables: {', '.join(unknown) or '(empty)'}; valid tables: {', '.join(schema.TABLE_NAMES)}"
        )
    return [t for t in schema.TABLE_NAMES if t in set(names)]


def make_target(load: str | None, dsn: str | None, output: Path):  # noqa: ANN201
    """Return the warehouse to load into (validated), or None; raise UsageError on bad input."""
    from simulation_assets.sinks.warehouse_duckdb import DuckDBWarehouse
    from simulation_assets.sinks.warehouse_postgres import PostgresWarehouse

    if load is None:
        if dsn:
            raise UsageError("--dsn needs --load duckdb or --load postgres")
        return None
    if load not in LOAD_TARGETS:
        raise UsageError(f"--load must be one of {', '.join(LOAD_TARGETS)}, got {load!r}")
    if load == "duckdb":
        target = DuckDBWarehouse(Path(dsn).expanduser() if dsn else output / "warehouse.duckdb")
    else:
        dsn = dsn or os.environ.get("WAREHOUSE_POSTGRES_DSN", "")
        if not dsn:
            raise UsageError(
                "--load postgres needs --dsn postgresql://user@host:port/dbname (or WAREHOUSE_POSTGRES_DSN)"
            )
        target = PostgresWarehouse(dsn)
    try:
        target.validate()
    except ValueError as exc:
        raise UsageError(f"bad --dsn: {exc}") from None
    return target


def run_dbt(target, output: Path) -> dict:  # noqa: ANN001
    """Run ``dbt build`` against the loaded warehouse; return seconds and the pass/fail summary."""
    from simulation_assets.sinks.warehouse_database import dbt_environment
    from simulation_assets.sinks.warehouse_dbt import DBT_DIR, dbt_executable

    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    if target.kind == "duckdb":
        env.update(dbt_environment("duckdb", target.path))
    else:
        env.update(dbt_environment("postgres", "", target.dsn))
    work = output / "dbt_target"
    started = time.perf_counter()
    done = subprocess.run(
        [dbt_executable(), "build", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
         "--target-path", str(work), "--log-path", str(work)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    tail = [line for line in done.stdout.splitlines() if "PASS=" in line or "ERROR=" in line]
    return {
        "ok": done.returncode == 0,
        "seconds": round(time.perf_counter() - started, 2),
        "result": tail[-1].split("Done. ")[-1] if tail else done.stdout[-500:],
        "models": built_models(work / "run_results.json"),
    }


def built_models(run_results: Path) -> list[str]:
    """Return the names of the dbt models that ``dbt build`` built successfully."""
    if not run_results.exists():
        return []
    results = json.loads(run_results.read_text()).get("results", [])
    return sorted(
        r["unique_id"].split(".")[-1]
        for r in results
        if r.get("unique_id", "").startswith("model.") and r.get("status") == "success"
    )


def simulate(
    env: str,
    seed: int,
    output: Path,
    tables: list[str],
    target=None,  # noqa: ANN001
    workers: int | None = None,
    dbt: bool = False,
    quiet: bool = False,
) -> dict:
    """Generate, write, optionally load/check/model; write summary.json; return the summary."""
    from simulation_assets.core.warehouse import schema
    from simulation_assets.core.warehouse.config import WarehouseConfig, row_counts
    from simulation_assets.core.warehouse.integrity import distribution_checks, integrity_checks
    from simulation_assets.sinks.warehouse_parquet import write_tables

    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    cfg = WarehouseConfig()
    rows = row_counts(env, cfg)
    workers = workers if workers and workers > 0 else (1 if env == "dev" else min(2, os.cpu_count() or 1))
    total_chunks = sum(schema.table(t).chunks for t in tables)
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task(f"warehouse {env.upper()}: generating {len(tables)} tables", total=total_chunks,
                            visible=not quiet)  # fmt: skip
        results = write_tables(
            seed, env, output, tables, cfg, workers, on_chunk=lambda t, k, n: bar.advance(task)
        )
    generate_seconds = time.perf_counter() - started
    summary: dict = {
        "command": "warehouse",
        "env": env,
        "seed": seed,
        "output": str(output),
        "workers": workers,
        "generate_seconds": round(generate_seconds, 3),
        "total_rows": sum(r.rows for r in results.values()),
        "tables": {
            t: {"rows": r.rows, "expected_rows": rows[t], "seconds": round(r.seconds, 3), "files": r.files}
            for t, r in results.items()
        },
    }
    if target is not None:
        with console.status(f"loading {len(tables)} tables into {target.describe()}", spinner="dots"):
            started = time.perf_counter()
            per_table = target.load(output, tables)
            load_seconds = time.perf_counter() - started
            checks = integrity_checks(tables, rows) + distribution_checks(tables, cfg)
            results_ = target.run_checks(checks)
        failed = [r for r in results_ if not r.passed]
        summary["load"] = {
            "target": target.kind,
            "database": target.describe(),
            "seconds": round(load_seconds, 3),
            "seconds_per_table": {t: round(s, 3) for t, s in per_table.items()},
        }
        summary["checks"] = {
            "total": len(results_),
            "passed": len(results_) - len(failed),
            "failed": [{"name": r.name, "value": str(r.value), "expected": str(r.expected)} for r in failed],
        }
        if dbt:
            with console.status("dbt build", spinner="dots"):
                summary["dbt"] = run_dbt(target, output)
    write_json(output / "summary.json", summary)
    _record_in_dagster(summary, env, results_ if target is not None else None)
    return summary


def _record_in_dagster(summary: dict, env: str, check_results: list | None = None) -> None:
    """Report what this command did as events in the local Dagster instance (best effort).

    The UI then shows the written tables, the loaded ``warehouse_raw`` tables
    with their check results, and the dbt models, as if the assets had run.
    """
    try:
        import dagster as dg

        from simulation_assets.commands.common import dagster_instance
        from simulation_assets.core.warehouse import schema

        instance = dagster_instance()
        events: list = []
        for table, info in summary["tables"].items():
            spec = schema.table(table)
            keys = [env] if spec.chunks == 1 else [
                dg.MultiPartitionKey({"env": env, "chunk": f"{k:02d}"}) for k in range(spec.chunks)
            ]  # fmt: skip
            meta = {
                "written_by": "simulate warehouse",
                "output": summary["output"],
                "table_rows": info["rows"],
            }
            events += [
                dg.AssetMaterialization(asset_key=dg.AssetKey(["warehouse", table]), partition=str(k), metadata=meta)
                for k in keys
            ]  # fmt: skip
        if "load" in summary:
            load = summary["load"]
            for table, seconds in load["seconds_per_table"].items():
                meta = {
                    "written_by": "simulate warehouse --load",
                    "database": load["database"],
                    "dagster/row_count": summary["tables"][table]["rows"],
                    "load_seconds": seconds,
                }
                events.append(
                    dg.AssetMaterialization(asset_key=dg.AssetKey([RAW_PREFIX, table]), partition=env, metadata=meta)
                )  # fmt: skip
            events += [
                dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey([RAW_PREFIX, r.table]),
                    check_name=r.name,
                    passed=bool(r.passed),
                    partition=env,
                    metadata={"value": str(r.value), "expected": str(r.expected)},
                    description=r.description,
                )
                for r in check_results or []
            ]
        for model in summary.get("dbt", {}).get("models", []):
            events.append(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey(["warehouse_dbt", model]),
                    partition=env,
                    metadata={
                        "written_by": "simulate warehouse --dbt",
                        "database": summary["load"]["database"],
                    },
                )
            )
        for event in events:
            instance.report_runless_asset_event(event)
    except Exception as exc:  # noqa: BLE001 (recording is a convenience, never a failure)
        console.print(f"[yellow]note:[/] could not record the run in the Dagster instance: {exc}")


def run(args: argparse.Namespace) -> int:
    """Handle ``simulate warehouse``."""
    env = parse_env(args.env)
    tables = parse_tables(args.tables)
    if args.seed is None or args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be a positive integer, got {args.workers}")
    if args.dbt and not args.load:
        raise UsageError("--dbt needs --load duckdb or --load postgres")
    if args.dbt and args.tables:
        raise UsageError("--dbt models every table; drop --tables to use it")
    output = prepare_output(args.output)
    target = make_target(args.load, args.dsn, output)
    summary = simulate(env, args.seed, output, tables, target, args.workers, args.dbt)
    console.print(
        f"Warehouse {env.upper()}: {summary['total_rows']:,} rows in {len(summary['tables'])} tables, "
        f"generated in {summary['generate_seconds']:.1f} s -> {output}"
    )
    status = 0
    if "load" in summary:
        checks = summary["checks"]
        console.print(
            f"Loaded into {summary['load']['database']} in {summary['load']['seconds']:.1f} s; "
            f"checks {checks['passed']}/{checks['total']} passed"
        )
        for failure in checks["failed"]:
            console.print(
                f"[red]check failed:[/] {failure['name']}: {failure['value']} (expected {failure['expected']})"
            )
        status = 1 if checks["failed"] else 0
    if "dbt" in summary:
        console.print(f"dbt build: {summary['dbt']['result']} in {summary['dbt']['seconds']} s")
        status = status or (0 if summary["dbt"]["ok"] else 1)
    console.print(f"Wrote {output}/summary.json")
    return status


def run_demo(root: Path) -> None:
    """Demo step: DEV into DuckDB, checked, modelled by dbt."""
    out = prepare_output(root / "warehouse")
    target = make_target("duckdb", None, out)
    summary = simulate("dev", 42, out, parse_tables(None), target, dbt=True)
    console.print(
        f"Warehouse demo: DEV {summary['total_rows']:,} rows, checks {summary['checks']['passed']}/"
        f"{summary['checks']['total']}, dbt {summary['dbt']['result']} -> {out}"
    )
