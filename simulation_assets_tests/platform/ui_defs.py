"""A small code location for the UI test (and the local-instance tests): a daily asset materialized over a range in one run, with a check."""

import dagster as dg

DAYS = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-11")


@dg.asset(
    partitions_def=DAYS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("has_rows", asset="daily_rows")],
)
def daily_rows(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"days": len(context.partition_keys), "dagster/row_count": 7},
        check_results=[dg.AssetCheckResult(check_name="has_rows", passed=True, metadata={"rows": 7})],
    )


defs = dg.Definitions(assets=[daily_rows])
