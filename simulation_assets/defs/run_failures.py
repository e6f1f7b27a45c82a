"""Failed runs, written down: a sensor leaves a short summary of every run that fails.

The summary says which job and partitions failed, which step, with which error (class,
message and the line of this project's code it came from), which checks failed, which
assets were still written, how many retries were spent, and how to run it again. It is
written as Markdown under ``<data dir>/run_failures/<day>/<run_id>.md`` plus one JSON
line in ``index.jsonl`` (``sinks/failure_reports.py``), and logged on the sensor tick.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field

import dagster as dg

from simulation_assets.sinks.config_files import from_env
from simulation_assets.sinks.failure_reports import RunFailureReports

_PROJECT_FRAME = re.compile(r'File "[^"]*?/(?P<path>simulation_assets(?:_tests)?/[^"]+)", line (?P<line>\d+)')
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@dataclass(frozen=True)
class StepFailure:
    """One failed step: its key, the error's class and first line, and where in this project it was raised."""

    step: str
    error: str
    message: str
    raised_at: str = ""
    retryable: bool | None = None


@dataclass(frozen=True)
class FailureSummary:
    """What a person needs to know about a failed run."""

    run_id: str
    job: str
    day: str
    partitions: str
    assets: list[str]
    steps: list[StepFailure]
    failed_checks: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    retries: int = 0
    tags: dict[str, str] = field(default_factory=dict)

    def headline(self) -> str:
        """Return one line: job, partitions, first failed step and its error."""
        first = self.steps[0] if self.steps else None
        what = f"{first.step}: {first.error}: {first.message}" if first else "the run failed before any step"
        where = f" [{self.partitions}]" if self.partitions else ""
        return f"{self.job}{where} failed in {what}"

    def markdown(self) -> str:
        """Return the summary as a short Markdown page."""
        lines = [f"# Run {self.run_id} failed", "", self.headline(), ""]
        lines += [f"- job: `{self.job}`", f"- partitions: {self.partitions or '(not partitioned)'}"]
        if self.assets:
            lines.append(f"- assets selected: {', '.join(f'`{a}`' for a in self.assets)}")
        lines.append(f"- step retries spent: {self.retries}")
        lines += ["", "## Failed steps", ""]
        for step in self.steps or []:
            lines.append(f"- `{step.step}`: **{step.error}**: {step.message}")
            if step.raised_at:
                lines.append(f"  - raised at {step.raised_at}")
            if step.retryable is False:
                lines.append("  - refused, not retried: fix the input or the target, then re-run")
        if not self.steps:
            lines.append("- none recorded: the run failed outside its steps (see the run's event log)")
        if self.failed_checks:
            lines += ["", "## Failed checks", "", *[f"- `{c}`" for c in self.failed_checks]]
        if self.materialized:
            lines += ["", "## Written before the failure", "", *[f"- `{a}`" for a in self.materialized]]
        lines += [
            "",
            "## Next",
            "",
            f"- UI: Runs → `{self.run_id}` → *Re-execute* → *From failure* (the same partitions).",
            "- Re-running is safe: every asset replaces its partition.",
        ]
        return "\n".join(lines) + "\n"

    def record(self) -> dict[str, object]:
        """Return the summary as a JSON-ready dict."""
        return asdict(self)


def _raised_at(stack: list[str]) -> str:
    """Return ``path:line`` of the innermost frame in this project's code (package or tests), if any."""
    for frame in reversed(stack):
        found = _PROJECT_FRAME.search(frame)
        if found:
            return f"{found['path']}:{found['line']}"
    return ""


def _root_error(error: object) -> object:
    """Return the error a user-code wrapper hides (Dagster wraps exceptions raised in assets)."""
    while getattr(error, "cause", None) is not None and getattr(error, "cls_name", "") in (
        "DagsterExecutionStepExecutionError",
        "DagsterUserCodeExecutionError",
    ):
        error = error.cause  # type: ignore[attr-defined]
    return error


def step_failure(event: dg.DagsterEvent) -> StepFailure:
    """Return what a STEP_FAILURE event says, unwrapped to the user's own error."""
    data = event.event_specific_data
    error = _root_error(getattr(data, "error", None))
    message = (getattr(error, "message", "") or "").strip().splitlines()
    name = getattr(error, "cls_name", "") or ""
    if message and name and message[0].split(": ", 1)[0].endswith(name):  # "pkg.module.Class: text"
        message[0] = message[0].split(": ", 1)[1] if ": " in message[0] else ""
    # A sink's DeliveryError says whether a re-run could help (metadata "retryable").
    user_failure = getattr(data, "user_failure_data", None)
    flag = (getattr(user_failure, "metadata", None) or {}).get("retryable")
    retryable = getattr(flag, "value", None) if flag is not None else None
    return StepFailure(
        step=event.step_key or "",
        error=getattr(error, "cls_name", "") or "Error",
        message=(message[0] if message else "")[:500],
        raised_at=_raised_at(list(getattr(error, "stack", []) or [])),
        retryable=retryable,
    )


def summarize_failure(
    instance: dg.DagsterInstance, run: dg.DagsterRun, step_failures: list[dg.DagsterEvent]
) -> FailureSummary:
    """Return the summary of failed ``run`` from its tags and its event log."""
    tags = dict(run.tags)
    if RANGE_TAGS[0] in tags:
        partitions = f"{tags[RANGE_TAGS[0]]} … {tags[RANGE_TAGS[1]]}"
    else:
        partitions = tags.get("dagster/partition", "")
    checks: list[str] = []
    for record in instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        if not evaluation.passed:
            checks.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    materialized = sorted(
        {
            r.event_log_entry.dagster_event.asset_key.to_user_string()  # type: ignore[union-attr]
            for r in instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
        }
    )
    retries = len(
        instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY).records
    )
    started = instance.get_run_record_by_id(run.run_id)
    when = started.create_timestamp if started is not None else dt.datetime.now(dt.UTC)
    return FailureSummary(
        run_id=run.run_id,
        job=run.job_name,
        day=when.astimezone(dt.UTC).date().isoformat(),
        partitions=partitions,
        assets=sorted(k.to_user_string() for k in (run.asset_selection or ())),
        steps=[step_failure(e) for e in step_failures],
        failed_checks=sorted(checks),
        materialized=materialized,
        retries=retries,
        tags={k: v for k, v in tags.items() if not k.startswith(".dagster")},
    )


@dg.run_failure_sensor(
    name="run_failure_summaries",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Writes a short summary of every failed run (job, partitions, failed step and error, failed "
        "checks, what was written, how to re-run) to <data dir>/run_failures and the sensor's log."
    ),
)
def run_failure_summaries(
    context: dg.RunFailureSensorContext, run_failure_reports: RunFailureReports
) -> None:
    summary = summarize_failure(context.instance, context.dagster_run, context.get_step_failure_events())
    path = run_failure_reports.write(summary.run_id, summary.day, summary.markdown(), summary.record())
    context.log.info(f"{summary.headline()} (summary: {path})")


defs = dg.Definitions(
    sensors=[run_failure_summaries],
    resources={"run_failure_reports": from_env(RunFailureReports)},
)
