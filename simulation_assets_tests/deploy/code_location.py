"""The code location the deployment tests serve over gRPC: the project's definitions plus probes.

The probes stand in for pieces of the project the tests need before they exist: a chunked,
pool-limited asset shaped like the warehouse chunks and a sensor that requests one run.
"""

import os
import time

import dagster as dg

import simulation_assets.definitions as project

PROBE_CHUNKS = [f"chunk_{i:03d}" for i in range(8)]
# Seconds a probe chunk holds its pool slot: long enough for overlaps to be observable.
PROBE_SECONDS = float(os.environ.get("DEPLOY_PROBE_SECONDS", "1.5"))

probe_chunks = dg.StaticPartitionsDefinition(PROBE_CHUNKS)


@dg.asset(
    name="deploy_probe_chunk",
    group_name="deploy_probe",
    partitions_def=probe_chunks,
    pool="warehouse_load",
    kinds={"python"},
    description="Holds a warehouse_load pool slot for a moment per chunk, like a chunk load.",
)
def deploy_probe_chunk(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    started = time.time()
    time.sleep(PROBE_SECONDS)
    return dg.MaterializeResult(
        metadata={
            "chunk": context.partition_key,
            "started": started,
            "ended": time.time(),
            "pid": os.getpid(),
        }
    )


@dg.asset(
    name="deploy_probe_sensed",
    group_name="deploy_probe",
    kinds={"python"},
    description="Materialized by the probe sensor's run request.",
)
def deploy_probe_sensed() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"pid": os.getpid()})


probe_sensed_job = dg.define_asset_job("deploy_probe_sensed_job", selection=[deploy_probe_sensed])


@dg.sensor(job=probe_sensed_job, minimum_interval_seconds=5, name="deploy_probe_sensor")
def deploy_probe_sensor(context: dg.SensorEvaluationContext):
    """Request one run the first time it ticks, then skip (the cursor remembers)."""
    if context.cursor == "requested":
        return dg.SkipReason("already requested its run")
    context.update_cursor("requested")
    return dg.RunRequest(run_key="first-tick", tags={"deploy/probe": "sensor"})


defs = dg.Definitions.merge(
    project.defs,
    dg.Definitions(
        assets=[deploy_probe_chunk, deploy_probe_sensed],
        jobs=[probe_sensed_job],
        sensors=[deploy_probe_sensor],
    ),
)
