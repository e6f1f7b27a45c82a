"""The run-failure sensor writes a summary a person can act on, from a real failed run's event log."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from simulation_assets.defs.run_failures import run_failure_summaries
from simulation_assets.sinks.failure_reports import RunFailureReports
from simulation_assets.sinks.http_retry import DeliveryError

DAYS = dg.DailyPartitionsDefinition(start_date="2026-03-01")


@dg.asset(partitions_def=DAYS, check_specs=[dg.AssetCheckSpec("rows_positive", asset="upstream_rows")])
def upstream_rows() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"rows": 3}, check_results=[dg.AssetCheckResult(check_name="rows_positive", passed=False)]
    )


@dg.asset(partitions_def=DAYS, deps=[upstream_rows])
def delivered_rows() -> None:
    raise DeliveryError("PostHog batch refused: HTTP 401: invalid project key", retryable=False, status=401)


def _failed_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    result = dg.materialize(
        [upstream_rows, delivered_rows], instance=instance, partition_key="2026-03-02", raise_on_error=False
    )
    assert not result.success
    return instance.get_run_by_id(result.run_id)  # type: ignore[return-value]


def test_a_failed_run_gets_a_summary_naming_step_error_check_and_partition(tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    run = _failed_run(instance)
    failure = next(
        e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_run_failure
    )
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_summaries",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure.dagster_event,  # type: ignore[arg-type]
        resources={"run_failure_reports": RunFailureReports(folder=str(tmp_path))},
    ).for_run_failure()
    run_failure_summaries(context)

    reports = RunFailureReports(folder=str(tmp_path))
    [record] = reports.index()
    assert record["run_id"] == run.run_id and record["partitions"] == "2026-03-02"
    [step] = record["steps"]
    assert step["step"] == "delivered_rows" and step["error"] == "DeliveryError"
    assert step["message"] == "PostHog batch refused: HTTP 401: invalid project key"
    assert step["retryable"] is False
    assert step["raised_at"] == "simulation_assets_tests/platform/test_run_failures.py:26"
    assert record["failed_checks"] == ["upstream_rows:rows_positive"]
    assert record["materialized"] == ["upstream_rows"]
    page = Path(record["summary"]).read_text()
    assert page.startswith(f"# Run {run.run_id} failed")
    assert "delivered_rows: DeliveryError: PostHog batch refused: HTTP 401" in page
    assert "refused, not retried" in page and "Re-execute" in page

    run_failure_summaries(context)  # the same run summarized again replaces its line
    assert len(reports.index()) == 1
    assert json.loads((tmp_path / "index.jsonl").read_text().splitlines()[0])["job"] == run.job_name
