"""deploy/dagster.yaml on a real PostgreSQL, with a real daemon and a gRPC code server.

One deployment serves the whole module (one xdist group). Its fixture plays a short scenario the
tests then check: the daily HogFlix schedule and a sensor are switched on, a backfill of chunk
partitions is submitted, the daemon starts, and once some backfill runs are running while others
wait in the queue the daemon is killed and started again.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator

import pytest

from simulation_assets_tests.deploy.harness import DEPLOY, Deployment, max_overlap, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.xdist_group("deploy_daemon")]

LOCATION = "simulation_assets"
SCHEDULE = "hogflix_daily_0715_utc"
SENSOR = "deploy_probe_sensor"
CHUNK_ASSET = "deploy_probe_chunk"
CHUNKS = [f"chunk_{i:03d}" for i in range(5)]
POOL_LIMIT = 2  # deploy/pools.yaml: warehouse_load
PER_BACKFILL_RUN_LIMIT = 4  # deploy/dagster.yaml: dagster/backfill, per unique value


def _runs(instance, **filters):  # noqa: ANN001, ANN202
    import dagster as dg

    return instance.get_runs(filters=dg.RunsFilter(**filters))


def _finished(instance, run_id: str):  # noqa: ANN001, ANN202
    run = instance.get_run_by_id(run_id)
    return run if run.is_finished else None


def _switch_on_schedule_and_sensor(deployment: Deployment) -> None:
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        ScheduleInstigatorData,
    )

    instance, repo = deployment.instance(), deployment.repository()
    schedule = repo.get_schedule(SCHEDULE)
    # Switched on a day ago, so the latest 07:15 UTC tick is due the moment the daemon looks.
    instance.add_instigator_state(
        InstigatorState(
            schedule.get_remote_origin(),
            InstigatorType.SCHEDULE,
            InstigatorStatus.RUNNING,
            ScheduleInstigatorData(schedule.cron_schedule, start_timestamp=time.time() - 86_400),
        )
    )
    instance.start_sensor(repo.get_sensor(SENSOR))


def _submit_chunk_backfill(deployment: Deployment) -> str:
    """Submit a backfill of CHUNKS as the UI would; return its id."""
    import dagster as dg
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    instance = deployment.instance()
    backfill_id = make_new_backfill_id()
    instance.add_backfill(
        PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id,
            asset_graph=deployment.workspace().create_request_context().asset_graph,
            partition_names=CHUNKS,
            asset_selection=[dg.AssetKey(CHUNK_ASSET)],
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title="deploy test chunks",
            description=None,
            run_config=None,
        )
    )
    return backfill_id


@pytest.fixture(scope="module")
def deployment(postgres_cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    import dagster as dg

    root = tmp_path_factory.mktemp("deployment")
    # Three days of HogFlix history keep the scheduled lifecycle run small.
    first_day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)).isoformat()
    deployment = Deployment(
        root,
        postgres_cluster,
        module="simulation_assets_tests.deploy.code_location",
        location=LOCATION,
        extra_env={"HOGFLIX_START_DATE": first_day, "SIMULATION_DATA_DIR": str(root / "data")},
    )
    sys.path.insert(0, str(DEPLOY))
    try:
        import pool_limits

        instance = deployment.instance()
        pool_limits.apply_pool_limits(instance, pool_limits.read_pool_limits())
        deployment.start_code_server()
        _switch_on_schedule_and_sensor(deployment)
        backfill_id = _submit_chunk_backfill(deployment)
        deployment.notes["backfill_id"] = backfill_id
        deployment.start_daemon()

        def in_flight_and_queued():
            statuses = [r.status for r in _runs(instance, tags={"dagster/backfill": backfill_id})]
            running = sum(s in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS) for s in statuses)
            return running >= 1 and dg.DagsterRunStatus.QUEUED in statuses

        wait_for(in_flight_and_queued, 60, "backfill runs both running and queued")
        deployment.stop_daemon(crash=True)
        queued = lambda: {  # noqa: E731
            r.run_id
            for r in _runs(instance, tags={"dagster/backfill": backfill_id})
            if r.status == dg.DagsterRunStatus.QUEUED
        }
        deployment.notes["queued_at_crash"] = queued()
        time.sleep(4)  # no daemon: nothing may leave the queue
        deployment.notes["queued_after_4s_down"] = queued()
        deployment.start_daemon()
        yield deployment
    finally:
        deployment.close()
        sys.path.remove(str(DEPLOY))


def test_schedule_tick_launches_a_lifecycle_run(deployment: Deployment) -> None:
    import dagster as dg

    instance = deployment.instance()
    schedule = deployment.repository().get_schedule(SCHEDULE)
    runs = wait_for(lambda: _runs(instance, tags={"dagster/schedule_name": SCHEDULE}), 45, "a scheduled run")
    run = wait_for(lambda: _finished(instance, runs[0].run_id), 60, "the scheduled run to finish")
    assert run.status == dg.DagsterRunStatus.SUCCESS, deployment.log("code_server.log")[-3000:]
    assert run.job_name == "hogflix_daily_lifecycle"
    now = dt.datetime.now(dt.UTC)
    last_tick = now.replace(hour=7, minute=15, second=0, microsecond=0)
    if last_tick > now:
        last_tick -= dt.timedelta(days=1)
    expected_day = (last_tick.date() - dt.timedelta(days=1)).isoformat()
    assert run.tags["dagster/partition"] == expected_day
    assert len(runs) == 1
    ticks = instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id)
    assert [t.status.value for t in ticks] == ["SUCCESS"]
    assert expected_day in instance.get_materialized_partitions(dg.AssetKey("hogflix_personas"))


def test_sensor_tick_fires_and_its_run_succeeds(deployment: Deployment) -> None:
    import dagster as dg

    instance = deployment.instance()
    sensor = deployment.repository().get_sensor(SENSOR)
    ticks = wait_for(
        lambda: instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id), 30, "a sensor tick"
    )
    assert ticks[-1].status.value == "SUCCESS"  # the oldest tick is the one that requested the run
    runs = wait_for(lambda: _runs(instance, tags={"dagster/sensor_name": SENSOR}), 30, "the sensor's run")
    run = wait_for(lambda: _finished(instance, runs[0].run_id), 60, "the sensor's run to finish")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.job_name == "deploy_probe_sensed_job"
    assert len(_runs(instance, tags={"dagster/sensor_name": SENSOR})) == 1, (
        "the cursor stops a second request"
    )


def test_queued_runs_survive_a_daemon_crash(deployment: Deployment) -> None:
    import dagster as dg

    instance = deployment.instance()
    queued = deployment.notes["queued_at_crash"]
    assert queued, "the crash must hit while runs wait in the queue"
    assert deployment.notes["queued_after_4s_down"] == queued, "without a daemon nothing is dequeued"
    for run_id in queued:
        run = wait_for(
            lambda run_id=run_id: _finished(instance, run_id), 90, "a queued run after the restart"
        )
        assert run.status == dg.DagsterRunStatus.SUCCESS
    assert deployment.daemon_starts == 2


def test_chunk_backfill_fans_out_within_run_and_pool_limits(deployment: Deployment) -> None:
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus

    instance = deployment.instance()
    backfill_id = deployment.notes["backfill_id"]
    backfill = wait_for(
        lambda: (b := instance.get_backfill(backfill_id)).status != BulkActionStatus.REQUESTED and b,
        100,
        "the backfill to complete (the daemon looks every 30 s)",
        every=1,
    )
    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS
    records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    # One run per chunk: the chunks are independent.
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == CHUNKS
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    run_windows = [(r.start_time, r.end_time) for r in records]
    # When each chunk held its warehouse_load slot, from the asset's own timestamps.
    slot_windows = []
    for record in records:
        for event in instance.all_logs(
            record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ):
            meta = event.asset_materialization.metadata
            slot_windows.append((meta["started"].value, meta["ended"].value))
    assert len(slot_windows) == len(CHUNKS)
    assert max_overlap(slot_windows) <= POOL_LIMIT
    assert 2 <= max_overlap(run_windows) <= PER_BACKFILL_RUN_LIMIT, "independent chunks run side by side"
