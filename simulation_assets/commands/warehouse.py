"""``simulate warehouse``: materialize the warehouse assets of one environment, optionally loaded, checked and
modelled by dbt, as runs in the local Dagster instance the UI reads.

The tables are written by the same table assets the UI runs: one run for the tables generated whole
and one run per group of chunked tables, over the range of the environment's chunks (spread over
``--workers`` processes). With ``--load``, one more run loads them, runs the checks on the loaded
tables, writes the catalog and, with ``--dbt``, builds the dbt project; its blocking checks stop dbt
when the data is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

from simulation_assets.commands.common import (
    QUIET_RUN_CONFIG,
    UsageError,
    console,
    dagster_instance,
    prepare_output,
    run_resources,
    write_json,
)

DEMO_ORDER = 50
LOAD_TARGETS = ("duckdb", "postgres")


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


def make_target(load: str | None, dsn: str | None, output: Path, env: str = "dev"):  # noqa: ANN201
    """Return the warehouse resource to load into (validated), or None; raise UsageError on bad input."""
    from simulation_assets.sinks.warehouse_database import DuckDBDatabase, PostgresDatabase

    if load is None:
        if dsn:
            raise UsageError("--dsn needs --load duckdb or --load postgres")
        return None
    if load not in LOAD_TARGETS:
        raise UsageError(f"--load must be one of {', '.join(LOAD_TARGETS)}, got {load!r}")
    if load == "duckdb":
        target = DuckDBDatabase(
            duckdb_file=str(Path(dsn).expanduser() if dsn else output / "warehouse.duckdb")
        )
    else:
        dsn = dsn or os.environ.get("WAREHOUSE_POSTGRES_DSN", "")
        if not dsn:
            raise UsageError(
                "--load postgres needs --dsn postgresql://user@host:port/dbname (or WAREHOUSE_POSTGRES_DSN)"
            )
        target = PostgresDatabase(postgres_dsn=dsn)
    try:
        target.for_env(env).validate()
    except ValueError as exc:
        raise UsageError(f"bad --dsn: {exc}") from None
    return target


def simulate(
    env: str,
    seed: int,
    output: Path,
    tables: list[str],
    target=None,  # noqa: ANN001 (a WarehouseDatabase)
    workers: int | None = None,
    dbt: bool = False,
    quiet: bool = False,
) -> dict:
    """Materialize the table assets (and with ``target`` the load, its checks, the catalog and optionally dbt)
    for ``env``; write summary.json; return the summary."""
    from simulation_assets.core.warehouse import dirt
    from simulation_assets.core.warehouse.config import row_counts
    from simulation_assets.defs import warehouse as wh
    from simulation_assets.sinks.config_files import from_env, resolved
    from simulation_assets.sinks.local_store import LocalParquetStore

    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    workers = workers if workers and workers > 0 else (1 if env == "dev" else min(2, os.cpu_count() or 1))
    settings = resolved(from_env(wh.WarehouseSettings, seed=seed, files_dir=str(output), workers=workers))
    try:
        cfg = settings.config()
    except ValueError as exc:
        raise UsageError(f"invalid WAREHOUSE_CONFIG: {exc}") from None
    resources = {"warehouse_settings": settings, "store": LocalParquetStore()}
    if dbt:  # dbt and dagster-dbt are imported only for --dbt (~1.2 s CPU)
        resources["warehouse_dbt"] = wh.DBT_RESOURCE
    if target is not None:
        resources["warehouse_database"] = target
    with dagster_instance() as instance:
        started = time.perf_counter()
        runs = _write_tables(env, tables, resources, instance, quiet)
        generate_seconds = time.perf_counter() - started
        load_run = None
        if target is not None:
            label = "loading, checking" + (", dbt build (its log: dbt.log)" if dbt else "")
            if not quiet:
                console.print(f"warehouse {env.upper()}: {label}")
            # dagster-dbt echoes dbt's log on stdout: keep it in a file next to the results
            with open(output / "dbt.log", "w") as log, contextlib.redirect_stdout(log):
                load_run = _load(env, tables, dbt, resources, instance)
    written = _table_results(runs)
    rows = row_counts(env, cfg)
    summary: dict = {
        "command": "warehouse",
        "env": env,
        "seed": seed,
        "output": str(output),
        "workers": workers,
        "generate_seconds": round(generate_seconds, 3),
        "total_rows": sum(t["rows"] for t in written.values()),
        "tables": {
            t: {**written[t], "expected_rows": dirt.loaded_rows(cfg, t, 0, rows[t])}
            for t in tables
            if t in written
        },
    }
    if load_run is not None:
        runs.append(load_run)
        summary["load"] = _load_summary(load_run, target.for_env(env), tables)
        if dbt:
            summary["dbt"] = _dbt_summary(load_run)
    summary["runs"] = [{"run_id": r["run_id"], "success": r["success"]} for r in runs]
    summary["checks"] = _check_summary(runs, exclude_prefix="warehouse_dbt")
    write_json(output / "summary.json", summary)
    return summary


def _write_tables(env: str, tables: list[str], resources: dict, instance, quiet: bool) -> list[dict]:  # noqa: ANN001
    """Run the table assets of ``tables`` (and their checks); return the runs' results."""
    from simulation_assets.sinks.warehouse_parquet import close_worker_pool

    runs = []
    generation = _generation_runs(env, tables)
    try:
        for i, (label, assets, partition) in enumerate(generation, 1):
            status = f"warehouse {env.upper()}: run {i}/{len(generation)}, {label}"
            with console.status(status, spinner="dots") if not quiet else contextlib.nullcontext():
                runs.append(_materialize(assets, resources, instance, partition))
    finally:
        close_worker_pool()  # the generator processes hold an environment's parent tables
    return runs


def _load(env: str, tables: list[str], dbt: bool, resources: dict, instance) -> dict:  # noqa: ANN001
    """Run the load of ``tables``, their checks, the catalog and (``dbt``) the dbt models; return the run's result."""
    from simulation_assets.defs import warehouse as wh

    selection = [wh.raw_key(t) for t in tables] + [wh.warehouse_catalog.key]
    assets = [wh.warehouse_load, wh.warehouse_raw_checks, wh.warehouse_catalog]
    if dbt:
        assets.append(wh.warehouse_dbt_models)
        selection += list(wh.warehouse_dbt_models.keys)
    return _materialize(assets, resources, instance, env, selection)


def _generation_runs(env: str, tables: list[str]) -> list[tuple[str, list, object]]:
    """Return (label, assets with their checks, partition) of the runs that write ``tables``: one for the tables
    generated whole, one per chunk count over the range of the environment's chunks."""
    from simulation_assets.core.warehouse import schema
    from simulation_assets.defs import warehouse as wh

    by_chunks: dict[int, list[str]] = {}
    for t in tables:
        by_chunks.setdefault(schema.table(t).chunks, []).append(t)
    out = []
    for chunks, names in sorted(by_chunks.items()):
        keys = {wh.table_key(t) for t in names}
        # an asset that writes two tables (page views and feature events) is run for the wanted ones only
        assets = [a if a.keys <= keys else a.subset_for(keys & a.keys, selected_asset_check_keys=None)
                  for a in wh.TABLE_ASSETS if a.keys & keys]  # fmt: skip
        checks = [c for c in wh.TABLE_CHECKS if {k.asset_key for k in c.check_keys} <= keys]
        partition: object = env if chunks == 1 else (f"{env}|00", f"{env}|{chunks - 1:02d}")
        label = f"{len(names)} tables" if chunks == 1 else f"{', '.join(names)} ({chunks} chunks each)"
        out.append((label, assets + checks, partition))
    return out


def _materialize(
    assets: list, resources: dict, instance, partition: object, selection: list | None = None
) -> dict:  # noqa: ANN001
    """Run ``assets`` for one partition key or a (first, last) key range; return what the summary needs."""
    import dagster as dg

    kwargs: dict = {"partition_key": partition} if isinstance(partition, str) else {
        "tags": {"dagster/asset_partition_range_start": partition[0],  # type: ignore[index]
                 "dagster/asset_partition_range_end": partition[1]}}  # type: ignore[index]  # fmt: skip
    started = time.perf_counter()
    result = dg.materialize(
        assets, resources=run_resources(resources), instance=instance, run_config=QUIET_RUN_CONFIG, raise_on_error=False,
        selection=selection, **kwargs,
    )  # fmt: skip
    materializations: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        key = event.asset_key.to_user_string()
        materializations.setdefault(key, {k: v.value for k, v in event.materialization.metadata.items()})
    last_evaluations: dict[tuple[str, str], dict] = {}  # a retried step evaluates its checks again
    for c in result.get_asset_check_evaluations():
        last_evaluations[(c.asset_key.to_user_string(), c.check_name)] = {
            "asset": c.asset_key.to_user_string(),
            "name": c.check_name,
            "passed": c.passed,
            "value": str(c.metadata["value"].value) if "value" in c.metadata else "",
            "expected": str(c.metadata["expected"].value) if "expected" in c.metadata else "",
            "description": c.description or "",
        }
    observations: dict[
        str, dict
    ] = {}  # the last observation of each asset (dbt source freshness on raw tables)
    for event in result.all_events:
        if event.event_type_value == "ASSET_OBSERVATION":
            observation = event.event_specific_data.asset_observation  # type: ignore[union-attr]
            observations[observation.asset_key.to_user_string()] = {
                k: v.value for k, v in observation.metadata.items()
            }
    return {
        "run_id": result.run_id,
        "success": result.success,
        "seconds": time.perf_counter() - started,
        "materializations": materializations,
        "checks": list(last_evaluations.values()),
        "observations": observations,
    }


def _table_results(runs: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for run in runs:
        for key, meta in run["materializations"].items():
            if key.startswith("warehouse/"):
                out[key.split("/", 1)[1]] = {
                    "rows": meta["rows"],
                    "seconds": meta["seconds"],
                    "files": meta["files"],
                }
    return out


def _load_summary(run: dict, backend, tables: list[str]) -> dict:  # noqa: ANN001
    loaded = {
        k.split("/", 1)[1]: m for k, m in run["materializations"].items() if k.startswith("warehouse_raw/")
    }
    return {
        "target": backend.kind,
        "database": backend.describe(),
        "success": run["success"] and set(loaded) >= set(tables),
        "seconds": round(run["seconds"], 3),
        "seconds_per_table": {t: m["load_seconds"] for t, m in loaded.items()},
    }


def _dbt_summary(run: dict) -> dict:
    models = sorted(k.split("/", 1)[1] for k in run["materializations"] if k.startswith("warehouse_dbt/"))
    tests = [c for c in run["checks"] if c["asset"].startswith("warehouse_dbt/")]
    failed = [c["name"] for c in tests if not c["passed"]]
    passed = len(models) + len(tests) - len(failed)
    freshness = {
        key.split("/", 1)[1]: {
            "status": meta["source_freshness"],
            "age_hours": meta["age_hours_at_window_end"],
        }
        for key, meta in sorted(run.get("observations", {}).items())
        if key.startswith("warehouse_raw/") and "source_freshness" in meta
    }
    return {
        "ok": run["success"] and not failed and bool(models),
        "models": models,
        "tests_failed": failed,
        "result": f"PASS={passed} ERROR={len(failed)} TOTAL={len(models) + len(tests)}",
        "source_freshness": freshness,  # dbt source freshness per raw table, at the simulated window's end
    }


def _check_summary(runs: list[dict], exclude_prefix: str) -> dict:
    checks = [c for r in runs for c in r["checks"] if not c["asset"].startswith(exclude_prefix)]
    failed = [c for c in checks if not c["passed"]]
    return {
        "total": len(checks),
        "passed": len(checks) - len(failed),
        "failed": [
            {
                "name": c["name"],
                "table": c["asset"].split("/", 1)[1],
                "value": c["value"],
                "expected": c["expected"],
                "description": c["description"],
            }
            for c in failed
        ],  # fmt: skip
    }


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
    target = make_target(args.load, args.dsn, output, env)
    summary = simulate(env, args.seed, output, tables, target, args.workers, args.dbt)
    console.print(
        f"Warehouse {env.upper()}: {summary['total_rows']:,} rows in {len(summary['tables'])} tables, "
        f"generated in {summary['generate_seconds']:.1f} s -> {output}"
    )
    checks = summary["checks"]
    if "load" in summary:
        console.print(
            f"Loaded into {summary['load']['database']} in {summary['load']['seconds']:.1f} s; "
            f"checks {checks['passed']}/{checks['total']} passed"
        )
    for failure in checks["failed"]:
        console.print(
            f"[red]check failed:[/] {failure['table']}.{failure['name']}: {failure['value']} "
            f"(expected {failure['expected']})"
        )
    if "dbt" in summary:
        console.print(f"dbt build: {summary['dbt']['result']} ({len(summary['dbt']['models'])} models)")
    failed_runs = [r["run_id"] for r in summary["runs"] if not r["success"]]
    if failed_runs:
        console.print(f"[red]failed runs[/] (open them in the Dagster UI): {', '.join(failed_runs)}")
    console.print(f"Wrote {output}/summary.json; runs recorded in the Dagster instance ($DAGSTER_HOME)")
    return 1 if checks["failed"] or failed_runs or not summary.get("dbt", {"ok": True})["ok"] else 0


def run_demo(root: Path) -> None:
    """Demo step: DEV into DuckDB, checked, modelled by dbt."""
    out = prepare_output(root / "warehouse")
    target = make_target("duckdb", None, out)
    summary = simulate("dev", 42, out, parse_tables(None), target, dbt=True)
    console.print(
        f"Warehouse demo: DEV {summary['total_rows']:,} rows, checks {summary['checks']['passed']}/"
        f"{summary['checks']['total']}, dbt {summary['dbt']['result']} -> {out}"
    )
