"""The tracking-plan audit: a real event export checked against the plan (the plan's own "next step").

Input is an export already normalized by the project's PostHog export reader (one row per
event: ``event``, ``distinct_id``, ``person_id``, ``timestamp``, ``session_id`` and one text
column per property the plan names), plus, for exports that keep JSON types, the type of
each property as found (``ExportSource.property_keys``). The report says, per event of the
plan: present or absent, volume, required properties missing and values of the wrong type;
then events the plan does not know, identity-stitching breaks (events still anonymous after
the person logged in, logins never stitched) and funnel-order violations (a state reached
before, or without, the one before it).
"""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import BaseModel

from simulation_assets.core.funnel.config import STATE_EVENTS
from simulation_assets.core.funnel.taxonomy import GLOBAL_PROPERTIES, PROPERTIES, TAXONOMY, PropertySpec

# JSON types (DuckDB's json_type names) each property type accepts.
JSON_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"VARCHAR"}),
    "integer": frozenset({"BIGINT", "UBIGINT"}),
    "number": frozenset({"BIGINT", "UBIGINT", "DOUBLE"}),
    "boolean": frozenset({"BOOLEAN"}),
}
_TEXT_PATTERNS = {
    "integer": r"^-?\d+$",
    "number": r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$",
    "boolean": r"^(true|false)$",
}
IDENTITY_KEYS = ("user_id", "$anon_distinct_id")


def audit_keys() -> list[str]:
    """Return the property keys the audit reads: every property the plan requires, and the identity keys."""
    keys = {p.name for p in GLOBAL_PROPERTIES}
    for spec in TAXONOMY.values():
        keys.update(p.name for p in spec.required)
    return sorted(keys | set(IDENTITY_KEYS))


class PropertyIssue(BaseModel):
    """A required property of one event that is missing from, or of the wrong type in, some rows."""

    property: str
    expected_type: str
    missing_rows: int = 0
    wrong_type_rows: int = 0
    """Values whose text cannot be the expected type (e.g. ``abc`` for an integer)."""
    unexpected_json_types: list[str] = []
    """JSON types found that the expected type excludes (e.g. ``VARCHAR`` for a price): batch exports only."""

    @property
    def wrong_type(self) -> bool:
        return self.wrong_type_rows > 0 or bool(self.unexpected_json_types)


class EventAudit(BaseModel):
    """How one event of the plan shows up in the export."""

    event: str
    category: str
    present: bool
    rows: int
    people: int
    missing_properties: list[PropertyIssue] = []
    wrong_types: list[PropertyIssue] = []


class StitchingAudit(BaseModel):
    """Identity stitching as the export shows it (PostHog: ``$identify`` with ``$anon_distinct_id``)."""

    identified_people: int
    events_still_anonymous_after_login: int
    people_with_anonymous_events_after_login: int
    logins_without_identify: int
    anonymous_ids_with_two_users: int
    examples: list[dict[str, Any]] = []


class OrderAudit(BaseModel):
    """Funnel states reached out of order: per step ``Sj|Si``, people whose first Sj precedes their first Si."""

    people: int
    out_of_order: dict[str, int]
    without_previous: dict[str, int]


class AuditReport(BaseModel):
    """The whole audit; ``problems`` counts the findings a team should fix."""

    source: str
    shape: str
    rows: int
    people: int
    first_event: str | None
    last_event: str | None
    events_in_plan: int
    events_present: int
    absent_events: list[str]
    unknown_events: dict[str, int]
    posthog_events: dict[str, int]
    per_event: list[EventAudit]
    stitching: StitchingAudit
    funnel_order: OrderAudit
    problems: int


def _property_issue(
    rows: pl.DataFrame, spec: PropertySpec, types: dict[str, tuple[int, set[str]]]
) -> PropertyIssue | None:
    """Return what is wrong with property ``spec`` in one event's ``rows`` (None: nothing)."""
    name = spec.name
    values = rows[name] if name in rows.columns else pl.Series(name, [None] * rows.height, dtype=pl.String)
    _, seen = types.get(name, (0, set()))
    # A property the plan allows to be null is never "missing": many exports cannot tell an absent key
    # from a null value (CSV, and senders that drop null properties).
    missing = 0 if spec.nullable else int(values.null_count())
    text = values.drop_nulls()
    wrong = int((~text.str.contains(_TEXT_PATTERNS[spec.type])).sum()) if spec.type in _TEXT_PATTERNS else 0
    unexpected = sorted(seen - JSON_TYPES[spec.type] - {"NULL"})
    if not missing and not wrong and not unexpected:
        return None
    return PropertyIssue(
        property=name,
        expected_type=spec.type,
        missing_rows=max(missing, 0),
        wrong_type_rows=wrong,
        unexpected_json_types=unexpected,
    )


def _identity_pairs(events: pl.DataFrame) -> pl.DataFrame:
    """Return ``anon, user, at``: who logged in as whom, from ``$identify`` and from ``login_success`` with user_id."""
    parts = []
    if "$anon_distinct_id" in events.columns:
        parts.append(
            events.filter(
                (pl.col("event") == "$identify") & pl.col("$anon_distinct_id").is_not_null()
            ).select(
                pl.col("$anon_distinct_id").alias("anon"),
                pl.col("distinct_id").alias("user"),
                pl.col("timestamp").alias("at"),
            )
        )
    if "user_id" in events.columns:
        parts.append(
            events.filter(
                (pl.col("event") == "login_success")
                & pl.col("user_id").is_not_null()
                & (pl.col("user_id") != pl.col("distinct_id"))
            ).select(
                pl.col("distinct_id").alias("anon"),
                pl.col("user_id").alias("user"),
                pl.col("timestamp").alias("at"),
            )
        )
    if not parts:
        return pl.DataFrame(schema={"anon": pl.String, "user": pl.String, "at": pl.Datetime("us", "UTC")})
    pairs = pl.concat([p.with_columns(pl.col("at").cast(pl.Datetime("us", "UTC"))) for p in parts])
    return pairs.group_by("anon", "user").agg(pl.col("at").min())


def audit_stitching(events: pl.DataFrame) -> StitchingAudit:
    """Return the identity-stitching findings of an export."""
    pairs = _identity_pairs(events)
    per_anon = pairs.group_by("anon").agg(
        pl.col("user").n_unique().alias("users"), pl.col("at").min().alias("login")
    )
    late = (
        events.select("event", "distinct_id", pl.col("timestamp").cast(pl.Datetime("us", "UTC")))
        .join(per_anon, left_on="distinct_id", right_on="anon", how="inner")
        .filter((pl.col("timestamp") > pl.col("login")) & (pl.col("event") != "$identify"))
    )
    logins = events.filter(pl.col("event") == "login_success")
    known = set(pairs["anon"]) | set(pairs["user"])
    unstitched = logins.filter(~pl.col("distinct_id").is_in(list(known)))
    return StitchingAudit(
        identified_people=int(pairs["user"].n_unique()),
        events_still_anonymous_after_login=late.height,
        people_with_anonymous_events_after_login=int(late["distinct_id"].n_unique()),
        logins_without_identify=unstitched.height,
        anonymous_ids_with_two_users=int((per_anon["users"] > 1).sum()),
        examples=[
            {"distinct_id": r["distinct_id"], "event": r["event"], "timestamp": r["timestamp"].isoformat()}
            for r in late.head(5).iter_rows(named=True)
        ],
    )


def person_key(events: pl.DataFrame) -> pl.Expr:
    """Return the expression of each row's person: the export's person_id, else the stitched user, else the id."""
    pairs = _identity_pairs(events)
    mapping = dict(zip(pairs["anon"], pairs["user"]))
    stitched = pl.col("distinct_id").replace(mapping) if mapping else pl.col("distinct_id")
    if "person_id" in events.columns:
        return pl.coalesce(pl.col("person_id"), stitched)
    return stitched


def audit_order(events: pl.DataFrame) -> OrderAudit:
    """Return, per funnel step, the people who reached the later state first, or without the earlier one."""
    states = [(s.name, e) for s, e in STATE_EVENTS.items()]
    firsts = (
        events.filter(pl.col("event").is_in([e for _, e in states]))
        .with_columns(person_key(events).alias("_person"))
        .group_by("_person")
        .agg(*[pl.col("timestamp").filter(pl.col("event") == e).min().alias(name) for name, e in states])
    )
    present = {name for name, e in states if (events["event"] == e).any()}
    steps = list(zip(states[:9], states[1:10])) + [(states[8], states[10])]
    out_of_order, without = {}, {}
    for (a, _), (b, _) in steps:
        if a not in present or b not in present:
            continue
        both = firsts.filter(pl.col(a).is_not_null() & pl.col(b).is_not_null())
        out_of_order[f"{b}|{a}"] = int((both[b] < both[a]).sum())
        without[f"{b}|{a}"] = int(firsts.filter(pl.col(b).is_not_null() & pl.col(a).is_null()).height)
    return OrderAudit(people=firsts.height, out_of_order=out_of_order, without_previous=without)


def audit_events(
    events: pl.DataFrame,
    key_stats: pl.DataFrame | None = None,
    source: str = "",
    shape: str = "batch",
) -> AuditReport:
    """Return the audit of a normalized export (see the module docstring)."""
    counts = dict(events.group_by("event").len().iter_rows())
    types: dict[str, dict[str, tuple[int, set[str]]]] = {}
    if key_stats is not None and shape != "csv":
        for row in key_stats.iter_rows(named=True):
            seen = {t for t in (row["types"] or "").split(",") if t}
            types.setdefault(row["event"], {})[row["key"]] = (int(row["rows"]), seen)
    people_expr = person_key(events)
    per_event = []
    for name, spec in TAXONOMY.items():
        rows = events.filter(pl.col("event") == name)
        audit = EventAudit(
            event=name,
            category=spec.category.name,
            present=rows.height > 0,
            rows=rows.height,
            people=int(rows.select(people_expr.n_unique()).item()) if rows.height else 0,
        )
        if rows.height:
            for prop in (*GLOBAL_PROPERTIES, *spec.required):
                declared = PROPERTIES.get(prop.name, prop)
                issue = _property_issue(
                    rows, prop.model_copy(update={"type": declared.type}), types.get(name, {})
                )
                if issue is None:
                    continue
                if issue.missing_rows:
                    audit.missing_properties.append(issue)
                if issue.wrong_type:
                    audit.wrong_types.append(issue)
        per_event.append(audit)
    unknown = {k: v for k, v in sorted(counts.items()) if k not in TAXONOMY and not str(k).startswith("$")}
    internal = {k: v for k, v in sorted(counts.items()) if str(k).startswith("$")}
    stitching = audit_stitching(events)
    order = audit_order(events)
    absent = [a.event for a in per_event if not a.present]
    problems = (
        len(absent)
        + len(unknown)
        + sum(len(a.missing_properties) + len(a.wrong_types) for a in per_event)
        + (stitching.events_still_anonymous_after_login > 0)
        + (stitching.logins_without_identify > 0)
        + (stitching.anonymous_ids_with_two_users > 0)
        + sum(1 for v in order.out_of_order.values() if v)
        + sum(1 for v in order.without_previous.values() if v)
    )
    first, last = events["timestamp"].min(), events["timestamp"].max()
    return AuditReport(
        source=source,
        shape=shape,
        rows=events.height,
        people=int(events.select(people_expr.n_unique()).item()) if events.height else 0,
        first_event=None if first is None else first.isoformat(),
        last_event=None if last is None else last.isoformat(),
        events_in_plan=len(TAXONOMY),
        events_present=len(TAXONOMY) - len(absent),
        absent_events=absent,
        unknown_events=unknown,
        posthog_events=internal,
        per_event=per_event,
        stitching=stitching,
        funnel_order=order,
        problems=int(problems),
    )


def audit_markdown(report: AuditReport) -> str:
    """Return the audit as a readable markdown document."""
    lines = [
        "# Tracking-plan audit",
        "",
        f"Export `{report.source}` ({report.shape}): {report.rows:,} events of {report.people:,} people, "
        f"{report.first_event} to {report.last_event}.",
        "",
        f"**{report.problems} problem(s).** {report.events_present} of the plan's {report.events_in_plan} events are present.",
        "",
        "## Events of the plan",
        "",
        "| category | event | rows | people | missing required properties | wrong types |",
        "|---|---|---:|---:|---|---|",
    ]
    for a in report.per_event:
        missing = ", ".join(f"`{p.property}` ({p.missing_rows:,} rows)" for p in a.missing_properties) or ""
        wrong = ", ".join(
            f"`{p.property}` ({p.expected_type} expected"
            + (f"; {p.wrong_type_rows:,} rows unreadable" if p.wrong_type_rows else "")
            + (f"; found {'/'.join(p.unexpected_json_types)}" if p.unexpected_json_types else "")
            + ")"
            for p in a.wrong_types
        )
        rows = f"{a.rows:,}" if a.present else "**absent**"
        lines.append(f"| {a.category} | `{a.event}` | {rows} | {a.people:,} | {missing} | {wrong} |")
    lines += ["", "## Events not in the plan", ""]
    lines += [f"- `{k}`: {v:,} rows" for k, v in report.unknown_events.items()] or ["None."]
    if report.posthog_events:
        lines += [
            "",
            "PostHog's own events (not audited): "
            + ", ".join(f"`{k}` ({v:,})" for k, v in report.posthog_events.items()),
        ]
    s = report.stitching
    lines += [
        "",
        "## Identity stitching",
        "",
        f"- people identified at login: {s.identified_people:,}",
        f"- events still anonymous after the person logged in: {s.events_still_anonymous_after_login:,} "
        f"({s.people_with_anonymous_events_after_login:,} people)",
        f"- logins never stitched (no `$identify` and no `user_id`): {s.logins_without_identify:,}",
        f"- anonymous ids that logged in as two users: {s.anonymous_ids_with_two_users:,}",
        "",
        "## Funnel order",
        "",
        "| step | first reached before the previous state | reached without it |",
        "|---|---:|---:|",
    ]
    o = report.funnel_order
    lines += [f"| {k} | {o.out_of_order[k]:,} | {o.without_previous.get(k, 0):,} |" for k in o.out_of_order]
    return "\n".join(lines) + "\n"
