"""The tracking-plan audit as an asset: a real event export, named in run config, checked against the plan."""

import dagster as dg
from pydantic import Field

from simulation_assets.core.funnel.audit import audit_markdown
from simulation_assets.sinks.funnel_export import audit_export, write_audit
from simulation_assets.sinks.local_store import LocalParquetStore


class AuditConfig(dg.Config):
    """Which export to audit."""

    events: str = Field(description="Path of the export: a file, a folder of files or a glob.")
    mapping: str = Field(
        default="",
        description="Columns of a generic table, FIELD=COLUMN pairs (e.g. user_id=uid,event=name).",
    )
    name: str = Field(
        default="latest", description="Folder under <data dir>/funnel/audit/ for audit.json and audit.md."
    )


@dg.asset(
    name="funnel_tracking_audit",
    group_name="funnel",
    kinds={"posthog", "json"},
    description=(
        "A real event export (PostHog batch export, the UI's CSV, or a mapped table) checked against the "
        "tracking plan: each event present or absent with its volume, required properties missing or of the "
        "wrong type, events not in the plan, identity-stitching breaks, funnel-order violations; audit.json "
        "and audit.md. Needs run config: events (the export's path)."
    ),
)
def funnel_tracking_audit(
    context: dg.AssetExecutionContext, config: AuditConfig, store: LocalParquetStore
) -> dg.MaterializeResult:
    try:
        report = audit_export(config.events, config.mapping)
    except ValueError as exc:  # unreadable export: the message names the file and the problem
        raise dg.Failure(description=f"cannot audit {config.events}: {exc}", allow_retries=False) from None
    json_path, md_path = write_audit(report, store.root() / "funnel" / "audit" / config.name)
    return dg.MaterializeResult(
        metadata={
            "problems": report.problems,
            "events_present": report.events_present,
            "absent_events": dg.MetadataValue.json(report.absent_events),
            "unknown_events": dg.MetadataValue.json(report.unknown_events),
            "events_still_anonymous_after_login": report.stitching.events_still_anonymous_after_login,
            "dagster/row_count": report.rows,
            "audit": dg.MetadataValue.md(audit_markdown(report)),
            "path": dg.MetadataValue.path(str(md_path)),
            "json": dg.MetadataValue.path(str(json_path)),
        }
    )
