"""What a SIGTERM to the daemon does to the runs its queue is launching at that moment.

Minimal reproduction of the daemon restart that ran a backfill chunk twice (Dagster 1.13.27 with
``dequeue_use_threads: true``). On SIGTERM the queue's daemon thread stops at the first launch that
returns and the daemon closes its workspace. Launches already under way finish: each holds the
workspace it started with. But a run the dequeue pool had not started yet (the batch was larger
than ``dequeue_num_workers``) starts against the closed, empty workspace, fails with "Location ...
does not exist in workspace", and run retries launch it again as a new run: a second run of the
same partition, tagged ``dagster/retry_number``. deploy/dagster.yaml dequeues in the daemon's own
thread: the launch in hand finishes and the other runs stay queued for the next daemon.

Three runs wait in the queue of a tiny code location; the launcher holds a partition's launch until
the test releases it (slow_launcher.PausingRunLauncher), so the SIGTERM lands while the first launch is
under way, and the launch goes on once the daemon has taken the signal (its log says so): no fixed
pause has to outlast a busy machine.
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

import pytest
import yaml

from simulation_assets_tests.deploy.harness import DEPLOY, Deployment, wait_for
from simulation_assets_tests.deploy.shutdown_location import MANY_PARTITIONS, PARTITIONS

# The first test also pays for the module's deployment: twice the suite's 600 s.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.xdist_group("deploy_shutdown"),
    pytest.mark.timeout(1200),
]


# What the daemon logs once a SIGTERM has reached it (the next statement sets its threads' shutdown
# event), and once its threads have stopped (the next statement closes its workspace).
SIGNAL_TAKEN = "hutting down daemon threads"
THREADS_DOWN = "Daemon threads shut down."


def _configure(deployment: Deployment, hold: Iterable[str], threads: int = 0) -> Callable[[str], None]:
    """Put deploy/dagster.yaml into the instance with a launcher that holds the ``hold`` partitions'
    launches; ``threads``: a dequeue pool. Return the function that releases a partition's launch."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    if threads:
        config["run_coordinator"]["config"].update(dequeue_use_threads=True, dequeue_num_workers=threads)
    trial = uuid.uuid4().hex[:8]  # the module's tests share the deployment: files of their own
    files = {p: deployment.root / f"release-{trial}-{p}" for p in hold}
    config["run_launcher"] = {
        "module": "simulation_assets_tests.deploy.slow_launcher",
        "class": "PausingRunLauncher",
        "config": {"hold_until": {p: str(f) for p, f in files.items()}},
    }
    (deployment.home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return lambda partition: files[partition].touch()


def _queue_runs(deployment: Deployment) -> str:
    """Queue one run per partition, in order, as a backfill would; return their trial tag."""
    import asyncio
    import logging
    import uuid

    import dagster as dg
    from dagster._core.execution.submit_asset_runs import submit_asset_run

    trial = uuid.uuid4().hex[:8]
    context = deployment.workspace()
    for index, partition in enumerate(PARTITIONS):
        request = dg.RunRequest(
            asset_selection=[dg.AssetKey("marker")],
            partition_key=partition,
            tags={"dagster/partition": partition, "shutdown_trial": trial},
        )
        asyncio.run(
            submit_asset_run(
                None,
                request,
                index,
                deployment.instance(),
                context,
                context.create_request_context(),
                {},
                {},
                logging.getLogger(__name__),
            )
        )
    return trial


def _sigterm_mid_launch(deployment: Deployment, while_stopping: Callable[[], None]) -> list[dict]:
    """Queue the runs, start the daemon, SIGTERM it during the first launch (held: ``while_stopping``
    releases it), restart; return the runs."""
    import dagster as dg

    instance = deployment.instance()
    trial = _queue_runs(deployment)
    runs = lambda: instance.get_runs(filters=dg.RunsFilter(tags={"shutdown_trial": trial}))  # noqa: E731
    deployment.start_daemon()
    # STARTING is written just before the launcher is called: the first launch has begun (and is held).
    wait_for(
        lambda: any(r.status == dg.DagsterRunStatus.STARTING for r in runs()),
        120,
        "the first launch",
        every=0.25,
    )
    deployment.notes["sigterm_at"] = time.time()
    assert deployment.stop_daemon(timeout=120, while_stopping=while_stopping) == 0
    deployment.notes["restarted_at"] = time.time()
    deployment.start_daemon()

    def every_partition_succeeded() -> bool:
        current = runs()
        done = {r.tags["dagster/partition"] for r in current if r.status == dg.DagsterRunStatus.SUCCESS}
        return all(r.is_finished for r in current) and done == set(PARTITIONS)

    try:
        wait_for(every_partition_succeeded, 240, "a successful run of every partition", every=0.5)
    finally:
        deployment.stop_daemon(timeout=120)
    return deployment.run_evidence(tags={"shutdown_trial": trial})


@pytest.fixture(scope="module")
def deployment(postgres_cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(
        tmp_path_factory.mktemp("shutdown"),
        postgres_cluster,
        module="simulation_assets_tests.deploy.shutdown_location",
        location="shutdown",
        extra_env={},
    )
    try:
        deployment.start_code_server()
        yield deployment
    finally:
        deployment.close()


def test_loadgroup_keeps_a_groups_tests_on_one_worker(request: pytest.FixtureRequest) -> None:
    """The suite runs with ``-n 2 --dist loadgroup``: each deployment module must be built once."""
    if not getattr(request.config.option, "loadgroup", False):  # set on the workers of --dist loadgroup
        pytest.skip("only meaningful under pytest-xdist's --dist loadgroup")
    assert request.node.nodeid.endswith("::test_loadgroup_keeps_a_groups_tests_on_one_worker@deploy_shutdown")


def test_deploy_config_dequeues_one_run_at_a_time_in_the_daemon_thread() -> None:
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert config["run_coordinator"]["config"]["dequeue_use_threads"] is False


def test_sigterm_mid_launch_finishes_that_launch_and_leaves_the_other_runs_queued(
    deployment: Deployment,
) -> None:
    release = _configure(deployment, hold=["a"])

    def release_a_once_the_signal_is_taken() -> None:
        deployment.wait_for_daemon_log(SIGNAL_TAKEN)
        release("a")

    rows = _sigterm_mid_launch(deployment, release_a_once_the_signal_is_taken)
    assert sorted((r["partition"], r["status"], r["retry_number"]) for r in rows) == [
        (p, "SUCCESS", None) for p in PARTITIONS
    ], rows
    # a was launched by the stopping daemon, b and c only by the next one.
    sigterm, restart = deployment.notes["sigterm_at"], deployment.notes["restarted_at"]
    by_partition = {r["partition"]: r for r in rows}
    assert by_partition["a"]["launch_started_at"] < sigterm, rows
    assert all(by_partition[p]["launch_started_at"] > restart for p in ("b", "c")), rows
    assert not [p for p in deployment.daemon_problems() if "dequeuing run" in p]


def test_sigterm_mid_launch_fails_a_run_still_waiting_for_a_worker_and_run_retries_relaunch_it(
    deployment: Deployment,
) -> None:
    """Pins the Dagster 1.13.27 behaviour that rules out a dequeue thread pool for this deployment."""
    # One worker for three runs: b starts when a's launch returns, c only once b's has too.
    release = _configure(deployment, hold=["a", "b"], threads=1)

    def release_a_then_b_once_the_workspace_is_closed() -> None:
        deployment.wait_for_daemon_log(SIGNAL_TAKEN)
        release("a")  # the queue thread stops at its return; b starts on the pool's worker
        deployment.wait_for_daemon_log(THREADS_DOWN)
        time.sleep(0.5)  # the workspace closes right after that line, in the same thread
        release("b")

    rows = _sigterm_mid_launch(deployment, release_a_then_b_once_the_workspace_is_closed)
    failed = [r for r in rows if r["status"] == "FAILURE"]
    # c always starts after the workspace is closed; so does b when a's launch outlasts the 30 s the
    # daemon waits for its queue thread (seen on a machine with a load average of 17).
    assert [r["partition"] for r in failed] in (["c"], ["b", "c"]), rows
    for run in failed:
        assert any("Location shutdown does not exist in workspace" in m for m in run["failure"]), run
        # Started by the stopping daemon, after the SIGTERM.
        assert deployment.notes["sigterm_at"] < run["launch_started_at"] < deployment.notes["restarted_at"]
    # The restarted daemon retried each failed run once, as a tagged child of it.
    retries = {r["parent_run_id"]: r for r in rows if r["retry_number"]}
    assert sorted(retries) == sorted(r["run_id"] for r in failed), rows
    for run in failed:
        retry = retries[run["run_id"]]
        assert (retry["partition"], retry["status"], retry["retry_number"]) == (
            run["partition"],
            "SUCCESS",
            "1",
        )
        assert retry["root_run_id"] == run["run_id"]
    assert len(rows) == len(PARTITIONS) + len(failed)


def _backfill_interrupted_mid_submission(deployment: Deployment, crash: bool) -> dict:
    """Backfill MANY_PARTITIONS with the queue closed, stop the daemon at its first run, restart; report."""
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    instance = deployment.instance()
    backfill_id = make_new_backfill_id()
    instance.add_backfill(
        PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id,
            asset_graph=deployment.workspace().create_request_context().asset_graph,
            partition_names=MANY_PARTITIONS,
            asset_selection=[dg.AssetKey("chunk")],
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
    )
    runs = lambda: instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))  # noqa: E731
    deployment.start_daemon()
    wait_for(runs, 120, "the backfill's first run", every=0.05)
    deployment.stop_daemon(crash=crash, timeout=120)
    stopped = instance.get_backfill(backfill_id)
    report = {"runs_at_stop": len(runs()), "left_to_submit": len(stopped.submitting_run_requests or [])}
    report["failure_count_at_stop"] = stopped.failure_count
    deployment.start_daemon()
    try:
        wait_for(
            lambda: (
                len(runs()) >= len(MANY_PARTITIONS)
                and not instance.get_backfill(backfill_id).submitting_run_requests
            ),
            300,
            "the backfill's remaining runs",
            every=0.5,
        )
    finally:
        deployment.stop_daemon(timeout=120)
    report["partitions"] = collections.Counter(r.tags["dagster/partition"] for r in runs())
    report["status"] = instance.get_backfill(backfill_id).status
    report["resumed"] = (
        f"Resuming previous backfill iteration and re-submitting {report['left_to_submit']} runs"
    )
    report["resumed"] = report["left_to_submit"] and report["resumed"] in deployment.log(
        f"daemon_{deployment.daemon_starts}.log"
    )
    # The queue never opened: cancel the runs so nothing else launches them.
    for run in runs():
        instance.report_run_canceled(run)
    instance.update_backfill(instance.get_backfill(backfill_id).with_status(BulkActionStatus.CANCELED))
    return report


def test_backfill_interrupted_mid_submission_submits_every_partition_once(deployment: Deployment) -> None:
    from dagster._core.execution.backfill import BulkActionStatus

    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    config["concurrency"]["runs"]["max_concurrent_runs"] = 0  # runs stay queued: only submission counts
    (deployment.home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    reports = {"SIGTERM": _backfill_interrupted_mid_submission(deployment, crash=False)}
    reports["SIGKILL"] = _backfill_interrupted_mid_submission(deployment, crash=True)
    deployment.notes["backfill_interruptions"] = reports  # kept in evidence.json
    for report in reports.values():
        assert sorted(report["partitions"].items()) == [(p, 1) for p in MANY_PARTITIONS], reports
        assert report["status"] == BulkActionStatus.REQUESTED, reports  # not failed: still waiting for runs
    # A SIGKILL always cuts the submission; the next daemon submits what was left, reusing the
    # run ids reserved for it (a run created but not yet queued is queued, not created again).
    assert reports["SIGKILL"]["left_to_submit"] > 0 and reports["SIGKILL"]["resumed"], reports
    # A SIGTERM either lets the iteration finish or cuts it; then Dagster counts one retryable error.
    sigterm = reports["SIGTERM"]
    assert sigterm["left_to_submit"] == 0 or (sigterm["resumed"] and sigterm["failure_count_at_stop"] == 1), (
        reports
    )
