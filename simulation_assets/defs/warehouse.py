"""Synthetic warehouse as Dagster assets: one asset per raw table, the load into DuckDB/PostgreSQL, the catalog.

Every table asset is partitioned by environment (dev, qa, prod); the big tables are
also split into chunk partitions (``env`` x ``chunk``), so a PROD backfill fans out
over many small, independent runs. The load asset (pool ``warehouse_load``) puts
every table into schema ``raw`` and runs the integrity checks; dbt models build on
top (see ``warehouse_dbt.py``).
"""

import json
import time
from pathlib import Path
from typing import ClassVar

import dagster as dg
import polars as pl
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from pydantic import Field

from simulation_assets.core.config_base import scenario_key
from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.catalog import BASELINE_METRICS, catalog_markdown
from simulation_assets.core.warehouse.config import WarehouseConfig, row_counts
from simulation_assets.core.warehouse.generate import Warehouse
from simulation_assets.core.warehouse.integrity import distribution_checks, integrity_checks
from simulation_assets.defs.metadata import figure_markdown, md_table, new_figure
from simulation_assets.defs.partitions import environment_partitions
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.config_files import from_env, load_config
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.warehouse_database import WarehouseDatabase
from simulation_assets.sinks.warehouse_dbt import DBT_DIR, dbt_executable, ensure_manifest, environment
from simulation_assets.sinks.warehouse_parquet import chunk_path, table_paths, write_frame

GROUP = "warehouse"
RAW_PREFIX = "warehouse_raw"


class WarehouseSettings(dg.ConfigurableResource):
    """Seed and optional distribution overrides of the synthetic warehouse."""

    ENV: ClassVar[dict[str, str]] = {"seed": "SIMULATION_SEED", "config_path": "WAREHOUSE_CONFIG"}

    seed: int = 42
    config_path: str = Field(default="", description="Optional YAML file with WarehouseConfig overrides.")

    def config(self) -> WarehouseConfig:
        """Return the validated warehouse config (defaults, then the YAML file's overrides)."""
        return load_config(WarehouseConfig, self.config_path or None, source="WAREHOUSE_CONFIG")

    def scenario(self) -> str:
        """Return the store folder name of this seed and configuration."""
        return scenario_key(f"seed{self.seed}", self.config().model_dump(mode="json"))

    def files_root(self, store: LocalParquetStore, env: str) -> Path:
        """Return the Parquet folder of ``env`` for this seed and configuration."""
        return store.root() / "warehouse" / self.scenario() / env

    def generator(self, env: str) -> Warehouse:
        key = (self.seed, env, self.scenario())
        cached = _GENERATORS.get(key)
        if cached is None:
            _GENERATORS.clear()  # keep one environment's parent tables in memory at a time
            cached = _GENERATORS[key] = Warehouse(self.seed, env, self.config())
        return cached


_GENERATORS: dict[tuple, Warehouse] = {}


def table_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", table])


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([RAW_PREFIX, table])


_CHUNK_PARTITIONS: dict[int, dg.MultiPartitionsDefinition] = {}


def table_partitions(table: str) -> dg.PartitionsDefinition:
    """Return ``environment_partitions``, or env x chunk for tables split into chunks."""
    n = schema.table(table).chunks
    if n == 1:
        return environment_partitions
    if n not in _CHUNK_PARTITIONS:
        _CHUNK_PARTITIONS[n] = dg.MultiPartitionsDefinition(
            {
                "env": environment_partitions,
                "chunk": dg.StaticPartitionsDefinition([f"{k:02d}" for k in range(n)]),
            }
        )
    return _CHUNK_PARTITIONS[n]


def env_and_chunk(context: dg.AssetExecutionContext) -> tuple[str, int]:
    """Return (environment, chunk index) of the partition being materialized."""
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["env"], int(dims["chunk"])
    return str(key), 0


def _dep(child: str, parent: str) -> dg.AssetDep:
    child_multi = schema.table(child).chunks > 1
    parent_multi = schema.table(parent).chunks > 1
    if child_multi and not parent_multi:
        return dg.AssetDep(
            table_key(parent), partition_mapping=dg.MultiToSingleDimensionPartitionMapping("env")
        )
    return dg.AssetDep(table_key(parent))


def _table_asset(spec: schema.Table) -> dg.AssetsDefinition:
    chunked = spec.chunks > 1
    description = spec.description + (
        f" Split into {spec.chunks} chunk partitions per environment." if chunked else ""
    )

    @dg.asset(
        key=table_key(spec.name),
        group_name=GROUP,
        partitions_def=table_partitions(spec.name),
        deps=[_dep(spec.name, p) for p in schema.parents(spec.name)],
        kinds={"polars", "parquet"},
        description=description,
        check_specs=[dg.AssetCheckSpec("rows_match_spec", asset=table_key(spec.name))],
        tags={"warehouse/source": spec.source},
    )
    def _table(
        context: dg.AssetExecutionContext, warehouse_settings: WarehouseSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        env, k = env_and_chunk(context)
        warehouse = warehouse_settings.generator(env)
        started = time.perf_counter()
        frame = warehouse.chunk(spec.name, k)
        path = write_frame(frame, chunk_path(warehouse_settings.files_root(store, env), spec.name, k))
        seconds = time.perf_counter() - started
        first, stop = warehouse.chunk_rows(spec.name, k) if chunked else (0, warehouse.rows[spec.name])
        expected = stop - first
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": frame.height,
                "environment": env,
                "chunk": f"{k + 1} of {spec.chunks}",
                "seconds": round(seconds, 3),
                "rows_per_second": round(frame.height / max(seconds, 1e-9)),
                "path": dg.MetadataValue.path(str(path)),
                "preview": md_table(frame.head(5)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="rows_match_spec",
                    passed=frame.height == expected,
                    metadata={"rows": frame.height, "expected": expected},
                    description=f"chunk holds rows {first + 1:,}..{stop:,} of {warehouse.rows[spec.name]:,}",
                )
            ],
        )

    return _table


TABLE_ASSETS = [_table_asset(spec) for spec in schema.TABLES]


def _load_dep(table: str) -> dg.AssetDep:
    if schema.table(table).chunks > 1:
        return dg.AssetDep(
            table_key(table), partition_mapping=dg.MultiToSingleDimensionPartitionMapping("env")
        )
    return dg.AssetDep(table_key(table))


# Check names do not depend on the environment (only the expected numbers do).
_ALL_CHECKS = integrity_checks(list(schema.TABLE_NAMES), row_counts("dev")) + distribution_checks(
    list(schema.TABLE_NAMES), WarehouseConfig()
)


@dg.multi_asset(
    name="warehouse_load",
    specs=[
        dg.AssetSpec(
            raw_key(t.name),
            group_name=GROUP,
            deps=[_load_dep(t.name)],
            description=f"raw.{t.name} in the warehouse database (DuckDB by default, PostgreSQL when configured).",
            kinds={"duckdb", "postgres"},
            partitions_def=environment_partitions,
        )
        for t in schema.TABLES
    ],
    check_specs=[dg.AssetCheckSpec(c.name, asset=raw_key(c.table), description=c.description) for c in _ALL_CHECKS],
    pool="warehouse_load",
    retry_policy=NETWORK_RETRY,
)  # fmt: skip
def warehouse_load(
    context: dg.AssetExecutionContext,
    warehouse_settings: WarehouseSettings,
    warehouse_database: WarehouseDatabase,
    store: LocalParquetStore,
):
    """Load every raw table of one environment into schema ``raw`` (replacing it), then check integrity by SQL."""
    env = context.partition_key
    root = warehouse_settings.files_root(store, env)
    missing = [str(p) for t in schema.TABLE_NAMES for p in table_paths(root, t) if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} Parquet files of {env} are missing (first: {missing[0]}); materialize the "
            f"warehouse table assets for {env} first"
        )
    db = warehouse_database.for_env(env)
    started = time.perf_counter()
    seconds = db.load(root, list(schema.TABLE_NAMES))
    load_seconds = time.perf_counter() - started
    cfg = warehouse_settings.config()
    rows = row_counts(env, cfg)
    checks = integrity_checks(list(schema.TABLE_NAMES), rows) + distribution_checks(
        list(schema.TABLE_NAMES), cfg
    )
    results = db.run_checks(checks)
    context.log.info(f"loaded {env} into {db.describe()} in {load_seconds:.1f} s")
    for t in schema.TABLES:
        yield dg.MaterializeResult(
            asset_key=raw_key(t.name),
            metadata={
                "dagster/row_count": rows[t.name],
                "database": db.describe(),
                "load_seconds": round(seconds.get(t.name, 0.0), 3),
                "environment": env,
            },
        )
    for r in results:
        yield dg.AssetCheckResult(
            asset_key=raw_key(r.table),
            check_name=r.name,
            passed=bool(r.passed),
            metadata={"value": str(r.value), "expected": str(r.expected)},
            description=r.description,
        )


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
    stats = summary_statistics(db)
    cfg = warehouse_settings.config()
    root = warehouse_settings.files_root(store, env)
    root.mkdir(parents=True, exist_ok=True)
    (root / "catalog.md").write_text(
        catalog_markdown(cfg, env, warehouse_settings.seed, stats["rows"], stats["metrics"])
    )
    (root / "summary_stats.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")
    fig, ax = new_figure(7, 4)
    names = list(stats["rows"])
    ax.barh(names, [max(stats["rows"][n], 1) for n in names])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.tick_params(labelsize=6)
    ax.set_xlabel("rows (log scale)")
    fig.tight_layout()
    metrics = pl.DataFrame(
        {"metric": list(stats["metrics"]), "value": [str(v) for v in stats["metrics"].values()]}
    )
    return dg.MaterializeResult(
        metadata={
            "catalog": dg.MetadataValue.path(str(root / "catalog.md")),
            "total_rows": sum(stats["rows"].values()),
            "baseline_metrics": md_table(metrics, max_rows=30),
            "rows_per_table": figure_markdown(fig, "rows per table"),
        }
    )


def summary_statistics(db) -> dict:  # noqa: ANN001
    """Return rows per table and the baseline metrics of a loaded warehouse."""
    present = set(db.tables())
    rows = {
        t: int(db.query(f"SELECT count(*) FROM raw.{t}")[0][0]) for t in schema.TABLE_NAMES if t in present
    }
    metrics: dict[str, object] = {}
    for name, sql in BASELINE_METRICS.items():
        try:
            value = db.query(sql)[0][0]
        except Exception:  # noqa: BLE001 (a table may be missing in a partial load)
            continue
        metrics[name] = float(value) if value is not None and not isinstance(value, int) else value
    return {"rows": rows, "metrics": metrics}


class WarehouseDbtTranslator(DagsterDbtTranslator):
    """dbt models under the ``warehouse_dbt`` key prefix and group ``warehouse``; sources map to raw tables."""

    def get_asset_key(self, dbt_resource_props) -> dg.AssetKey:  # noqa: ANN001
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(
                dbt_resource_props
            )  # meta.dagster.asset_key -> warehouse_raw/<table>
        return dg.AssetKey(["warehouse_dbt", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props) -> str:  # noqa: ANN001
        return GROUP


DBT_PROJECT = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)


@dbt_assets(
    manifest=ensure_manifest(),
    project=DBT_PROJECT,
    name="warehouse_dbt_models",
    partitions_def=environment_partitions,
    dagster_dbt_translator=WarehouseDbtTranslator(DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    pool="warehouse_load",
    retry_policy=NETWORK_RETRY,
)
def warehouse_dbt_models(
    context: dg.AssetExecutionContext, warehouse_dbt: DbtCliResource, warehouse_database: WarehouseDatabase
):
    """``dbt build`` (staging views, marts, data tests) against the environment's warehouse."""
    env = context.partition_key
    # cautious: a subset run skips tests whose other parents were not selected
    with environment({"DBT_INDIRECT_SELECTION": "cautious", **warehouse_database.dbt_env(env)}):
        yield from warehouse_dbt.cli(["build"], context=context).stream()


defs = dg.Definitions(
    assets=[*TABLE_ASSETS, warehouse_load, warehouse_catalog, warehouse_dbt_models],
    resources={
        "warehouse_settings": from_env(WarehouseSettings),
        "warehouse_database": from_env(WarehouseDatabase),
        "warehouse_dbt": DbtCliResource(
            project_dir=DBT_PROJECT, profiles_dir=str(DBT_DIR), dbt_executable=dbt_executable()
        ),
    },
)
