"""deploy/dagster.yaml on a real PostgreSQL, with a real daemon and a gRPC code server.

One deployment of the project's code location (location.py) serves the whole module (one xdist
group). Its fixture hands the daemon everything at once, so the waits overlap: the 07:15 UTC
HogFlix schedule (switched on a day ago, so its last tick is due), the 30-second activity sensor
and a backfill of five DEV tap-event chunks. Once some backfill runs are launched while others
still wait in the queue, the daemon is stopped and started again. The tests check the outcomes.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Iterator

import pytest

from simulation_assets.defs import warehouse
from simulation_assets_tests.deploy.harness import DEPLOY, Deployment, max_overlap, wait_for

# The first test also pays for the module's deployment (see LONG_WAIT_S): twice the suite's 600 s.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.xdist_group("deploy_daemon"),
    pytest.mark.timeout(1200),
]

LOCATION = "simulation_assets"
SCHEDULE = "hogflix_daily_0715_utc"
SENSOR = "activity_tick_every_30s"
CHUNK_ASSET = ("warehouse", "tap_events")
# The first five env x chunk partitions of the DEV tap events, keyed as the warehouse defines them.
CHUNKS = sorted(str(warehouse.partition_key("tap_events", "dev", k)) for k in range(5))
PER_BACKFILL_RUN_LIMIT = 4  # deploy/dagster.yaml: dagster/backfill, per unique value
# Every wait gives up after this long. A passing run needs a fraction of it; on this 2-core
# machine under a load average of 20 a run took 130 s from launch to start and 150 s to finish.
LONG_WAIT_S = 600


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
            asset_selection=[dg.AssetKey(list(CHUNK_ASSET))],
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


def _restart_daemon_while_backfill_runs_are_queued(deployment: Deployment) -> None:
    """Stop the daemon once backfill runs are launched and others still queued; start it again.

    SIGTERM, as `docker compose restart` or a pod replacement sends: the daemon finishes the
    launch in hand. (A SIGKILL in the middle of a launch leaves that run STARTING until run
    monitoring fails it after start_timeout_seconds and run retries relaunch it.)
    """
    import dagster as dg

    instance, backfill_id = deployment.instance(), deployment.notes["backfill"]
    backfill_runs = lambda: _runs(instance, tags={"dagster/backfill": backfill_id})  # noqa: E731
    launched = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS}

    def some_launched_some_queued() -> bool:
        statuses = [r.status for r in backfill_runs()]
        return any(s in launched for s in statuses) and dg.DagsterRunStatus.QUEUED in statuses

    wait_for(some_launched_some_queued, LONG_WAIT_S, "backfill runs both launched and queued")
    deployment.notes["sigterm_at"] = time.time()
    deployment.notes["daemon_exit_code"] = deployment.stop_daemon(timeout=LONG_WAIT_S)
    queued = lambda: {r.run_id for r in backfill_runs() if r.status == dg.DagsterRunStatus.QUEUED}  # noqa: E731
    deployment.notes["queued_at_stop"] = queued()
    time.sleep(4)  # no daemon: nothing may leave the queue
    deployment.notes["queued_after_4s_down"] = queued()
    if _runs(instance, tags={"dagster/sensor_name": SENSOR}):
        # Its first tick is what the sensor test checks; later ticks would only add load.
        sensor = deployment.repository().get_sensor(SENSOR)
        instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
    deployment.notes["restarted_at"] = time.time()
    deployment.start_daemon()


@pytest.fixture(scope="module")
def deployment(postgres_cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deployment")
    # Three days of HogFlix history keep the scheduled lifecycle run small.
    first_day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)).isoformat()
    deployment = Deployment(
        root,
        postgres_cluster,
        module="simulation_assets_tests.deploy.location",
        location=LOCATION,
        extra_env={
            "HOGFLIX_START_DATE": first_day,
            "SIMULATION_DATA_DIR": str(root / "data"),
            # Several processes share the activity state: Postgres, as in a real deployment.
            "ACTIVITY_STORE": "postgres",
            "ACTIVITY_DATABASE_URL": postgres_cluster.create_database(f"activity_{os.getpid()}"),
        },
    )
    sys.path.insert(0, str(DEPLOY))
    try:
        import pool_limits

        instance = deployment.instance()
        pool_limits.apply_pool_limits(instance, pool_limits.read_pool_limits())
        deployment.start_code_server()
        # Everything is handed to the daemon at once, so the waits overlap.
        _switch_on_schedule_and_sensor(deployment)
        deployment.notes["backfill"] = _submit_chunk_backfill(deployment)
        deployment.start_daemon()
        _restart_daemon_while_backfill_runs_are_queued(deployment)
        yield deployment
    finally:
        deployment.close()
        sys.path.remove(str(DEPLOY))


def test_schedule_tick_launches_a_lifecycle_run(deployment: Deployment) -> None:
    import dagster as dg

    instance = deployment.instance()
    schedule = deployment.repository().get_schedule(SCHEDULE)
    runs = wait_for(
        lambda: _runs(instance, tags={"dagster/schedule_name": SCHEDULE}), LONG_WAIT_S, "a scheduled run"
    )
    run = wait_for(lambda: _finished(instance, runs[-1].run_id), LONG_WAIT_S, "the scheduled run to finish")
    scheduled = deployment.runs_table(tags={"dagster/schedule_name": SCHEDULE})
    assert run.status == dg.DagsterRunStatus.SUCCESS, scheduled + deployment.log("code_server.log")[-3000:]
    assert run.job_name == "hogflix_daily_lifecycle"
    now = dt.datetime.now(dt.UTC)
    last_tick = now.replace(hour=7, minute=15, second=0, microsecond=0)
    if last_tick > now:
        last_tick -= dt.timedelta(days=1)
    expected_day = (last_tick.date() - dt.timedelta(days=1)).isoformat()
    assert run.tags["dagster/partition"] == expected_day
    assert len(_runs(instance, tags={"dagster/schedule_name": SCHEDULE})) == 1, scheduled
    ticks = instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id)
    assert [t.status.value for t in ticks] == ["SUCCESS"]
    assert expected_day in instance.get_materialized_partitions(dg.AssetKey("hogflix_personas"))


def test_sensor_tick_fires_and_its_run_succeeds(deployment: Deployment) -> None:
    import dagster as dg

    instance = deployment.instance()
    sensor = deployment.repository().get_sensor(SENSOR)
    ticks = lambda: instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)  # noqa: E731
    first_tick = wait_for(
        lambda: [t for t in ticks() if t.status.value != "STARTED"][-1:], LONG_WAIT_S, "a sensor tick"
    )[0]
    assert first_tick.status.value == "SUCCESS"  # it requested activity tick 1
    runs = wait_for(
        lambda: _runs(instance, tags={"dagster/sensor_name": SENSOR}), LONG_WAIT_S, "the sensor's run"
    )
    first = runs[-1]  # get_runs lists the newest first
    assert first.tags["dagster/run_key"].endswith("-tick-1")
    run = wait_for(lambda: _finished(instance, first.run_id), LONG_WAIT_S, "the sensor's run to finish")
    sensed = deployment.runs_table(tags={"dagster/sensor_name": SENSOR})
    assert run.status == dg.DagsterRunStatus.SUCCESS, sensed + deployment.log("code_server.log")[-3000:]
    assert run.job_name == "activity_tick_job"
    event = instance.get_latest_materialization_event(dg.AssetKey("activity_tick"))
    assert event is not None
    instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)  # a tick every 30 s


def test_queued_runs_survive_a_daemon_restart(deployment: Deployment) -> None:
    import dagster as dg

    instance = deployment.instance()
    queued = deployment.notes["queued_at_stop"]
    assert queued, "the daemon must stop while runs wait in the queue"
    assert deployment.notes["daemon_exit_code"] == 0, "the daemon shuts down cleanly on SIGTERM"
    assert deployment.notes["queued_after_4s_down"] == queued, "without a daemon nothing is dequeued"
    for run_id in queued:
        run = wait_for(
            lambda run_id=run_id: _finished(instance, run_id), LONG_WAIT_S, "a queued run after the restart"
        )
        assert run.status == dg.DagsterRunStatus.SUCCESS, deployment.runs_table()
    assert deployment.daemon_starts == 2


def test_chunk_backfill_fans_out_one_run_per_chunk_within_the_run_limit(deployment: Deployment) -> None:
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus

    instance = deployment.instance()
    backfill_id = deployment.notes["backfill"]
    backfill = wait_for(
        lambda: (b := instance.get_backfill(backfill_id)).status != BulkActionStatus.REQUESTED and b,
        LONG_WAIT_S,
        "the backfill to complete (the daemon looks every 30 s)",
        every=1,
    )
    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS
    records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    runs = deployment.runs_table(tags={"dagster/backfill": backfill_id})
    # One run per chunk, each launched once across the restart: no failed launch, no retry.
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == CHUNKS, runs
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records), runs
    # The run limit counts runs from leaving the queue (STARTING) to finishing. Their steps alone
    # rarely overlap here: a DEV chunk computes in seconds, while starting its run worker takes
    # 10-60 s on this machine and varies by tens of seconds from run to run.
    in_flight = [
        (r["launch_started_at"], r["end"])
        for r in deployment.run_evidence(tags={"dagster/backfill": backfill_id})
    ]
    assert 2 <= max_overlap(in_flight) <= PER_BACKFILL_RUN_LIMIT, (
        "independent chunks in flight side by side\n" + runs
    )
    materialized = instance.get_materialized_partitions(dg.AssetKey(list(CHUNK_ASSET)))
    assert set(CHUNKS) <= materialized
