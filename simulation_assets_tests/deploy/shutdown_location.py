"""A code location of cheap partitioned assets, for reproducing what a daemon shutdown does to launches.

Nothing of the project is imported, so the code server and each run start in a few seconds.
"""

import dagster as dg

PARTITIONS = ["a", "b", "c"]
MANY_PARTITIONS = [f"{k:02d}" for k in range(16)]  # a backfill whose submission takes seconds


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(PARTITIONS))
def marker(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"partition": context.partition_key})


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(MANY_PARTITIONS))
def chunk(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"partition": context.partition_key})


defs = dg.Definitions(assets=[marker, chunk], executor=dg.in_process_executor)
