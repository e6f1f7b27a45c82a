"""The dbt project over the loaded warehouse as Dagster assets: staging views, intermediate models, marts.

Models sit under the ``warehouse_dbt`` key prefix in group ``warehouse``; dbt sources map to the
loaded ``warehouse_raw/<table>`` assets (``meta.dagster.asset_key`` in the sources' YAML), so dbt
waits for the load and its blocking checks. dbt's data and unit tests surface as asset checks.
"""

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from simulation_assets.core.warehouse import schema
from simulation_assets.defs.partitions import environment_partitions
from simulation_assets.sinks.http_retry import STEP_RETRIES, STEP_RETRY_DELAY_SECONDS
from simulation_assets.sinks.warehouse_database import WarehouseDatabase
from simulation_assets.sinks.warehouse_dbt import (
    DBT_DIR,
    DBT_PROJECT,
    WarehouseDbtCli,
    dbt_executable,
    dbt_failure_is_transient,
    environment,
    invocation_folder,
    keep_parse,
    prepared_project,
    prune_invocation_folders,
    source_freshness,
)

GROUP = "warehouse"


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


DBT_RESOURCE = WarehouseDbtCli(
    project_dir=DBT_PROJECT, profiles_dir=str(DBT_DIR), dbt_executable=dbt_executable()
)


@dbt_assets(
    manifest=prepared_project().manifest_path,
    project=DBT_PROJECT,
    name="warehouse_dbt_models",
    partitions_def=environment_partitions,
    dagster_dbt_translator=WarehouseDbtTranslator(DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    pool="warehouse_load",
    # no RetryPolicy: a failed data test or SQL error fails the same way on every attempt, so only a
    # transient failure (the database unreachable or locked) asks for another attempt, below
)
def warehouse_dbt_models(
    context: dg.AssetExecutionContext, warehouse_dbt: DbtCliResource, warehouse_database: WarehouseDatabase
):
    """``dbt build`` (staging views, marts, data and unit tests) against the environment's warehouse, then
    ``dbt source freshness`` (each stale raw source logged as a warning)."""
    env = context.partition_key
    variables = warehouse_database.dbt_env(env)
    op_name = context.op_execution_context.op.name
    try:
        # cautious: a subset run skips tests whose other parents were not selected
        with environment({"DBT_INDIRECT_SELECTION": "cautious", **variables}):
            # --full-refresh: every load replaces the raw tables, so the incremental staging model (Stripe
            # events, incremental on the deliveries' received_at) is rebuilt from them rather than appended to
            invocation = warehouse_dbt.cli(
                ["build", "--full-refresh"],
                target_path=invocation_folder(op_name, context.run.run_id, variables),
                context=context,
                raise_on_error=False,
            )
            yield from invocation.stream()
        keep_parse(invocation.target_path, variables)  # the next build against this warehouse starts from it
    finally:
        prune_invocation_folders(op_name)  # the oldest of this asset's runs
    error = invocation.get_error()
    if error is not None:
        raise dbt_failure(str(error), context.retry_number)
    # how old each raw source is at the simulated window's end (dbt source freshness): reported, not blocking
    # from this build's saved parse: made with the same profile, so dbt need not parse the project again
    freshness = source_freshness(variables, parsed_in=invocation.target_path)
    raw_tables = {f"{t.source}.{t.entity}": t.name for t in schema.TABLES}
    for name, result in sorted(freshness.items()):
        log = context.log.info if result["status"] == "pass" else context.log.warning
        log(f"source freshness {name}: {result['status']} (age {result['age_hours']} h at the window's end)")
        if name in raw_tables:  # on the raw table's asset too, where the UI shows it next to its load
            context.log_event(
                dg.AssetObservation(
                    asset_key=dg.AssetKey(["warehouse_raw", raw_tables[name]]),
                    partition=env,
                    metadata={
                        "source_freshness": dg.MetadataValue.text(str(result["status"])),
                        "age_hours_at_window_end": dg.MetadataValue.float(float(result["age_hours"] or 0.0)),
                        "dbt_source": dg.MetadataValue.text(name),
                    },
                )
            )


def dbt_failure(error_text: str, retry_number: int) -> Exception:
    """Return what a failed ``dbt build`` raises: a retry request when the failure can be transient and
    attempts remain, otherwise a failure Dagster does not retry."""
    if dbt_failure_is_transient(error_text) and retry_number < STEP_RETRIES:
        return dg.RetryRequested(
            max_retries=STEP_RETRIES, seconds_to_wait=STEP_RETRY_DELAY_SECONDS * 2**retry_number
        )
    return dg.Failure(description=f"dbt build failed: {error_text.strip()[:2000]}", allow_retries=False)
