"""Synthetic warehouse as Dagster assets: one asset per raw table, the load into DuckDB/PostgreSQL, its checks,
the catalog and the dbt models (``warehouse_dbt.py``). Page views and feature events are written by one step
(a multi-asset that can materialize either alone): a chunk of both comes from one session flow.

Every table asset is partitioned by environment (dev, qa, prod); the big tables are also split into
chunk partitions (``env`` x ``part``), so a PROD backfill fans out over many small, independent runs,
while a run over a range of one environment's chunks (what ``simulate warehouse`` launches) writes
them all, spread over ``WarehouseSettings.workers`` processes. The load asset (pool
``warehouse_load``) puts the tables into schema ``raw``; the checks on the loaded tables run next,
and the blocking ones (keys, foreign keys, temporal order, row counts) stop dbt when they fail. The
checks' computation lives in ``core/warehouse/checks.py``; this module only declares and runs them.
"""

import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.charts import hbar_svg
from simulation_assets.core.config_base import scenario_key
from simulation_assets.core.warehouse import dirt, schema
from simulation_assets.core.warehouse.catalog import (
    catalog_markdown,
    quality_report,
    structure_figures,
    summary_statistics,
)
from simulation_assets.core.warehouse.checks import CheckResult, rows_match_spec, warehouse_checks
from simulation_assets.core.warehouse.config import ENVIRONMENTS, WarehouseConfig, row_counts
from simulation_assets.core.warehouse.generate import Warehouse
from simulation_assets.core.warehouse.generators.usage import SESSION_FLOW_TABLES
from simulation_assets.core.warehouse.sampling import chunk_bounds
from simulation_assets.defs.metadata import (
    column_schema,
    md_table,
    svg_markdown,
    table_metadata,
)
from simulation_assets.defs.partitions import environment_partitions
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.config_files import from_env, load_config
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.warehouse_database import WarehouseDatabase, database_from_env
from simulation_assets.sinks.warehouse_parquet import chunk_path, rows_on_disk, table_paths, write_chunks

GROUP = "warehouse"
RAW_PREFIX = "warehouse_raw"
CHUNK_DIMENSION = "part"  # sorts after "env", so one environment's chunks form one contiguous key range


class WarehouseSettings(dg.ConfigurableResource):
    """Seed, optional distribution overrides and where the Parquet files of the synthetic warehouse go."""

    ENV: ClassVar[dict[str, str]] = {"seed": "SIMULATION_SEED", "config_path": "WAREHOUSE_CONFIG"}

    seed: int = 42
    config_path: str = Field(default="", description="Optional YAML file with WarehouseConfig overrides.")
    files_dir: str = Field(
        default="",
        description="Folder of the Parquet files (the command line's --output); empty means "
        "<data dir>/warehouse/<seed and configuration>/<env>.",
    )
    workers: int = Field(
        default=1, ge=1, description="Processes a run covering several chunks of a table spreads them over."
    )

    def config(self) -> WarehouseConfig:
        """Return the validated warehouse config (defaults, then the YAML file's overrides)."""
        return load_config(WarehouseConfig, self.config_path or None, source="WAREHOUSE_CONFIG")

    def scenario(self) -> str:
        """Return the store folder name of this seed and configuration."""
        return scenario_key(f"seed{self.seed}", self.config().model_dump(mode="json"))

    def files_root(self, store: LocalParquetStore, env: str) -> Path:
        """Return the Parquet folder of ``env`` for this seed and configuration."""
        if self.files_dir:
            return Path(self.files_dir).expanduser().resolve()
        return store.root() / "warehouse" / self.scenario() / env

    def generator(self, env: str) -> Warehouse:
        """Return the environment's generator (kept in memory: its parent tables serve every chunk)."""
        return _generator(self.seed, env, self.config().model_dump_json())


@functools.lru_cache(maxsize=1)  # one environment's parent tables in memory at a time
def _generator(seed: int, env: str, config_json: str) -> Warehouse:
    return Warehouse(seed, env, WarehouseConfig.model_validate_json(config_json))


def table_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", table])


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([RAW_PREFIX, table])


@functools.cache
def chunk_partitions(chunks: int) -> dg.MultiPartitionsDefinition:
    """Return the env x part partitions of a table split into ``chunks``."""
    parts = dg.StaticPartitionsDefinition([f"{k:02d}" for k in range(chunks)])
    return dg.MultiPartitionsDefinition({"env": environment_partitions, CHUNK_DIMENSION: parts})


def table_partitions(table: str) -> dg.PartitionsDefinition:
    """Return ``environment_partitions``, or env x part for tables split into chunks."""
    chunks = schema.table(table).chunks
    return environment_partitions if chunks == 1 else chunk_partitions(chunks)


def env_and_chunks(context: dg.OpExecutionContext, table: str) -> tuple[str, list[int]]:
    """Return the environment and the chunk indices of ``table`` a run covers (one partition or a range)."""
    partitions = table_partitions(table)
    keys = [partitions.get_partition_key_from_str(str(k)) if isinstance(partitions, dg.MultiPartitionsDefinition)
            else str(k) for k in context.partition_keys]  # fmt: skip
    if isinstance(partitions, dg.MultiPartitionsDefinition):
        pairs = [(k.keys_by_dimension["env"], int(k.keys_by_dimension[CHUNK_DIMENSION])) for k in keys]
    else:
        pairs = [(str(k), 0) for k in keys]
    envs = sorted({env for env, _ in pairs})
    if len(envs) != 1:
        raise ValueError(f"a warehouse run covers one environment, got partitions of {', '.join(envs)}")
    return envs[0], sorted(k for _, k in pairs)


def partition_key(table: str, env: str, k: int) -> str | dg.MultiPartitionKey:
    """Return the partition key of chunk ``k`` of ``table`` in ``env``."""
    if schema.table(table).chunks == 1:
        return env
    return dg.MultiPartitionKey({"env": env, CHUNK_DIMENSION: f"{k:02d}"})


@functools.cache
def table_schema(table: str) -> dg.TableSchema:
    """Return the ``dagster/column_schema`` of ``table`` from ``core/warehouse/schema.py``."""
    spec = schema.table(table)
    return column_schema(
        spec.polars_schema,
        descriptions={c.name: c.description for c in spec.columns if c.description},
        not_null=[c.name for c in spec.columns if not c.nullable],
        unique=[spec.primary_key],
    )


def expected_chunk_rows(table: str, env: str, cfg: WarehouseConfig, chunks: list[int]) -> dict[int, int]:
    """Return the rows the specification gives each chunk of ``table`` in ``env``."""
    total, n = row_counts(env, cfg)[table], schema.table(table).chunks
    bounds = {k: chunk_bounds(total, n, k) for k in chunks}
    return {k: dirt.loaded_rows(cfg, table, start, stop) for k, (start, stop) in bounds.items()}


def _description(spec: schema.Table) -> str:
    return spec.description + (
        f" Split into {spec.chunks} chunk partitions per environment." if spec.chunks > 1 else ""
    )


def _write_tables(
    context: dg.AssetExecutionContext,
    warehouse_settings: WarehouseSettings,
    store: LocalParquetStore,
    names: list[str],
) -> list[dg.MaterializeResult]:
    """Write the chunks of ``names`` a run covers (the same partitions for all) and return each table's result."""
    env, chunks = env_and_chunks(context.op_execution_context, names[0])
    root = warehouse_settings.files_root(store, env)
    written: dict[tuple[str, int], tuple[int, float]] = {}
    started = time.perf_counter()
    write_chunks(
        warehouse_settings.seed, env, root, [(name, k) for k in chunks for name in names],
        warehouse_settings.config(), warehouse_settings.workers,
        lambda t, k, rows, seconds: written.__setitem__((t, k), (rows, seconds)),
        warehouse=warehouse_settings.generator(env),
    )  # fmt: skip
    wall = time.perf_counter() - started
    results = []
    for name in names:
        spec = schema.table(name)
        rows = sum(written[name, k][0] for k in chunks)
        first = chunk_path(root, name, chunks[0])
        columns = table_schema(name)
        for k in chunks:  # each chunk partition gets its own row count, also in a run over several chunks
            context.add_asset_metadata(
                table_metadata(rows=written[name, k][0], schema=columns),
                asset_key=table_key(name),
                partition_key=partition_key(name, env, k),
            )
        metadata: dict[str, object] = {
            "environment": env,
            "chunks": f"{chunks[0] + 1} of {spec.chunks}" if len(chunks) == 1
            else f"{chunks[0] + 1}..{chunks[-1] + 1} of {spec.chunks}",
            "rows": rows,
            "seconds": round(sum(written[name, k][1] for k in chunks), 3),
            "rows_per_second": round(rows / max(wall, 1e-9)),
            "files": len(chunks),
            "path": dg.MetadataValue.path(str(first if len(chunks) == 1 else first.parent)),
            "preview": md_table(pl.read_parquet(first, n_rows=5)),
        }  # fmt: skip
        if len(names) > 1:
            metadata["written_with"] = ", ".join(n for n in names if n != name)
        results.append(dg.MaterializeResult(asset_key=table_key(name), metadata=metadata))
    return results


def _table_asset(spec: schema.Table) -> dg.AssetsDefinition:
    @dg.asset(
        key=table_key(spec.name),
        group_name=GROUP,
        partitions_def=table_partitions(spec.name),
        deps=[table_key(p) for p in schema.parents(spec.name)],
        kinds={"polars", "parquet"},
        description=_description(spec),
        tags={"warehouse/source": spec.source},
    )
    def _table(
        context: dg.AssetExecutionContext, warehouse_settings: WarehouseSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        [result] = _write_tables(context, warehouse_settings, store, [spec.name])
        return result

    return _table


def _session_flow_asset(names: tuple[str, ...]) -> dg.AssetsDefinition:
    """One step for the tables built from the same session flow (page views and feature events, tied together):
    a run that selects both computes each chunk's flow once and writes both files from it; either can still be
    materialized alone (``can_subset``)."""
    specs = [
        dg.AssetSpec(
            table_key(name),
            group_name=GROUP,
            deps=[table_key(p) for p in schema.parents(name)],
            kinds={"polars", "parquet"},
            description=_description(schema.table(name)),
            tags={"warehouse/source": schema.table(name).source},
        )
        for name in names
    ]

    @dg.multi_asset(
        name="_and_".join(names), specs=specs, partitions_def=table_partitions(names[0]), can_subset=True
    )
    def _tables(
        context: dg.AssetExecutionContext, warehouse_settings: WarehouseSettings, store: LocalParquetStore
    ) -> Iterator[dg.MaterializeResult]:
        selected = [n for n in names if table_key(n) in context.selected_asset_keys]
        yield from _write_tables(context, warehouse_settings, store, selected)

    return _tables


def _rows_check(spec: schema.Table) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table_key(spec.name),
        name="rows_match_spec",
        blocking=True,
        description="Every chunk written holds exactly the rows the specification gives it.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        warehouse_settings: WarehouseSettings,
        store: LocalParquetStore,
    ) -> dg.AssetCheckResult:
        env, chunks = env_and_chunks(context.op_execution_context, spec.name)
        return written_rows_check(warehouse_settings, store, spec.name, env, chunks)

    return _check


def written_rows_check(
    settings: WarehouseSettings, store: LocalParquetStore, table: str, env: str, chunks: list[int]
) -> dg.AssetCheckResult:
    """Return ``rows_match_spec`` of the written chunk files of ``table`` (read from their Parquet footers)."""
    expected = expected_chunk_rows(table, env, settings.config(), chunks)
    found = rows_on_disk(settings.files_root(store, env), table, chunks)
    return _check_result(rows_match_spec(table, found, expected))


def _check_result(result: CheckResult) -> dg.AssetCheckResult:
    """Return a core check result as a Dagster one, on the table asset (written rows) or the loaded table."""
    metadata: dict[str, object] = {"value": str(result.value), "expected": str(result.expected)}
    if isinstance(result.value, int | float) and not isinstance(result.value, bool):
        metadata["measured"] = float(result.value)
    return dg.AssetCheckResult(
        asset_key=table_key(result.table) if result.kind == "rows" else raw_key(result.table),
        check_name=result.name,
        passed=bool(result.passed),
        metadata=metadata,
        description=result.description,
    )


TABLE_ASSETS = [_table_asset(spec) for spec in schema.TABLES if spec.name not in SESSION_FLOW_TABLES] + [
    _session_flow_asset(SESSION_FLOW_TABLES)
]


def table_asset(table: str) -> dg.AssetsDefinition:
    """Return the asset definition that writes ``table`` (page views and feature events share one)."""
    return next(a for a in TABLE_ASSETS if table_key(table) in a.keys)


TABLE_CHECKS = [_rows_check(spec) for spec in schema.TABLES]


@dg.multi_asset(
    name="warehouse_load",
    specs=[
        dg.AssetSpec(
            raw_key(t.name),
            group_name=GROUP,
            deps=[table_key(t.name)],
            description=f"raw.{t.name} in the warehouse database (DuckDB by default, PostgreSQL when configured).",
            kinds={"duckdb", "postgres"},
            partitions_def=environment_partitions,
        )
        for t in schema.TABLES
    ],
    can_subset=True,
    pool="warehouse_load",
    retry_policy=NETWORK_RETRY,
)  # fmt: skip
def warehouse_load(
    context: dg.AssetExecutionContext,
    warehouse_settings: WarehouseSettings,
    warehouse_database: WarehouseDatabase,
    store: LocalParquetStore,
):
    """Load the selected raw tables of one environment into schema ``raw`` (replacing them)."""
    env = context.partition_key
    tables = [t for t in schema.TABLE_NAMES if raw_key(t) in context.selected_asset_keys]
    root = warehouse_settings.files_root(store, env)
    missing = [str(p) for t in tables for p in table_paths(root, t) if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} Parquet files of {env} are missing (first: {missing[0]}); materialize the "
            f"warehouse table assets for {env} first"
        )
    db = warehouse_database.for_env(env)
    started = time.perf_counter()
    seconds = db.load(root, tables)
    context.log.info(
        f"loaded {len(tables)} tables of {env} into {db.describe()} in {time.perf_counter() - started:.1f} s"
    )
    for t in tables:
        rows = sum(rows_on_disk(root, t, range(schema.table(t).chunks)).values())
        yield dg.MaterializeResult(
            asset_key=raw_key(t),
            metadata={
                **table_metadata(rows=rows, schema=table_schema(t)),
                "database": db.describe(),
                "load_seconds": round(seconds.get(t, 0.0), 3),
                "environment": env,
            },
        )


# Check names and kinds do not depend on the environment (only the expected numbers do).
DECLARED_CHECKS = warehouse_checks(list(schema.TABLE_NAMES), "dev", WarehouseConfig())


@dg.multi_asset_check(
    name="warehouse_raw_checks",
    specs=[
        dg.AssetCheckSpec(c.name, asset=raw_key(c.table), description=c.description, blocking=c.blocking)
        for c in DECLARED_CHECKS
    ],
    can_subset=True,
    pool="warehouse_load",
    retry_policy=NETWORK_RETRY,
)
def warehouse_raw_checks(
    context: dg.AssetCheckExecutionContext,
    warehouse_settings: WarehouseSettings,
    warehouse_database: WarehouseDatabase,
):
    """Row counts, keys, foreign keys, temporal order, charges and distributions of the loaded tables, by SQL."""
    env = context.op_execution_context.partition_key
    if env not in ENVIRONMENTS:
        raise ValueError(
            f"run the warehouse checks for one environment partition ({', '.join(ENVIRONMENTS)})"
        )
    selected = {(k.asset_key, k.name) for k in context.selected_asset_check_keys}
    db = warehouse_database.for_env(env)
    present = db.tables()
    tables = [t for t in schema.TABLE_NAMES if any(key == raw_key(t) for key, _ in selected)]
    checks = [c for c in warehouse_checks(tables, env, warehouse_settings.config(), present)
              if (raw_key(c.table), c.name) in selected]  # fmt: skip
    for result in db.run_checks(checks):
        yield _check_result(result)
    for key, name in sorted(selected - {(raw_key(c.table), c.name) for c in checks}, key=str):
        yield dg.AssetCheckResult(
            asset_key=key, check_name=name, passed=False, severity=dg.AssetCheckSeverity.WARN,
            description=f"not evaluated: a table it reads is not in {db.describe()}",
        )  # fmt: skip


@dg.asset(
    name="warehouse_catalog",
    group_name=GROUP,
    partitions_def=environment_partitions,
    deps=[raw_key(t) for t in schema.TABLE_NAMES],
    kinds={"markdown"},
    pool="warehouse_load",
    retry_policy=NETWORK_RETRY,
    description=(
        "catalog.md (tables, columns, distributions used, simplifications, baseline metrics) and "
        "summary_stats.json for one environment, read back from the loaded warehouse."
    ),
)
def warehouse_catalog(
    context: dg.AssetExecutionContext,
    warehouse_settings: WarehouseSettings,
    warehouse_database: WarehouseDatabase,
    store: LocalParquetStore,
) -> dg.MaterializeResult:
    env = context.partition_key
    db = warehouse_database.for_env(env)
    stats = summary_statistics(db.query, db.tables())
    cfg = warehouse_settings.config()
    root = warehouse_settings.files_root(store, env)
    root.mkdir(parents=True, exist_ok=True)
    stats["structure"] = structure_figures(db.query, db.tables(), cfg)
    stats["quality"] = quality_report(db.query, db.tables())
    (root / "catalog.md").write_text(
        catalog_markdown(
            cfg,
            env,
            warehouse_settings.seed,
            stats["rows"],
            stats["metrics"],
            stats["structure"],
            stats["quality"],
        )
    )
    (root / "summary_stats.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")
    names = list(stats["rows"])
    chart = hbar_svg(names, [stats["rows"][n] for n in names], x_label="rows", log_scale=True)
    metrics = pl.DataFrame(
        {"metric": list(stats["metrics"]), "value": [str(v) for v in stats["metrics"].values()]}
    )
    return dg.MaterializeResult(
        metadata={
            "catalog": dg.MetadataValue.path(str(root / "catalog.md")),
            "total_rows": sum(stats["rows"].values()),
            "baseline_metrics": md_table(metrics, max_rows=30),
            "rows_per_table": svg_markdown(chart, "rows per table"),
        }
    )


def build_defs() -> dg.Definitions:
    """Return the warehouse's definitions: the tables, the load, the catalog and the dbt models."""
    from simulation_assets.defs.warehouse_dbt import DBT_RESOURCE, warehouse_dbt_models

    return dg.Definitions(
        assets=[*TABLE_ASSETS, warehouse_load, warehouse_catalog, warehouse_dbt_models],
        asset_checks=[*TABLE_CHECKS, warehouse_raw_checks],
        resources={
            "warehouse_settings": from_env(WarehouseSettings),
            "warehouse_database": database_from_env(),
            "warehouse_dbt": DBT_RESOURCE,
        },
    )


# The dbt models load dbt and dagster-dbt (~1.2 s CPU): ``defs``, ``warehouse_dbt_models`` and
# ``DBT_RESOURCE`` are made on first access, so ``simulate warehouse`` without --dbt never imports them.
_LAZY = {"warehouse_dbt_models", "DBT_RESOURCE"}


def __getattr__(name: str) -> object:
    if name == "defs":
        built = globals()["defs"] = build_defs()
        return built
    if name in _LAZY:
        from simulation_assets.defs import warehouse_dbt

        return getattr(warehouse_dbt, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
