"""What the power-user assets show in the Dagster UI: summary figures, tables and plots of a report."""

from typing import Any

import dagster as dg
import polars as pl

from simulation_assets.core.charts import Series, chart_svg
from simulation_assets.defs.metadata import md_table, svg_markdown

MAX_BARS = 12  # above this many users the cost plot groups them by archetype


def cost_plot(report: dict[str, Any]) -> dg.MarkdownMetadataValue:
    """Return a stacked bar chart of AI, payment-fee and hosting cost in USD per user (or per archetype)."""
    per_user = report["cost_details"]["per_user"]
    groups: dict[str, dict[str, float]] = {}
    by_archetype = len(per_user) > MAX_BARS
    archetype = {s["name"]: s["archetype"] for s in report.get("sessions", [])}
    for name, cost in per_user.items():
        key = archetype.get(name, name) if by_archetype else name
        entry = groups.setdefault(key, {"openai_usd": 0.0, "stripe_fees_usd": 0.0, "hosting_usd": 0.0})
        for part in entry:
            entry[part] += cost[part]
    names = list(groups)
    parts = [
        Series(label, [groups[n][key] for n in names], kind="bar")
        for key, label in (
            ("openai_usd", "AI tokens"),
            ("stripe_fees_usd", "Stripe fees"),
            ("hosting_usd", "hosting"),
        )
    ]
    title = "cost per archetype" if by_archetype else "cost per user"
    return svg_markdown(chart_svg(names, parts, title=title, y_label="USD", width=700), title)


def report_metadata(report: dict[str, Any]) -> dict[str, Any]:
    """Return what a person reads in the UI: summary numbers, per-user, per-archetype and latency tables, plots."""
    s, c = report["simulation_summary"], report["cost_analysis"]
    users = pl.DataFrame(
        [
            {k: (", ".join(v) if isinstance(v, list) else v) for k, v in r.items()}
            for r in report["user_results"]
        ]
    )
    sessions = pl.DataFrame(report.get("sessions") or [])
    archetypes = pl.DataFrame(
        [{"archetype": k, **v} for k, v in (report.get("archetype_results") or {}).items()]
    )
    perf = pl.DataFrame([{"action": k, **v} for k, v in report["action_performance"].items()])
    connection_errors = sum(e["error"].startswith("connection error") for e in report["errors_encountered"])
    active = sessions.filter(pl.col("active")) if sessions.height else sessions
    return {
        "users": s["total_users"],
        "users_with_a_session": active.height,
        "actions_completed": s["total_actions_completed"],
        "actions_failed": s["total_actions_failed"],
        "connection_errors": connection_errors,
        "edge_cases_triggered": s["total_edge_cases_triggered"],
        "edge_cases_missing": ", ".join(report["edge_case_coverage"]["missing"]) or "none",
        "conversion_rate": s["conversion_rate"],
        "total_cost_usd": c["total_cost_usd"],
        "stripe_fees_usd": c["stripe_fees_usd"],
        "openai_cost_usd": c["azure_openai_cost_usd"],
        "archetype_results": md_table(archetypes, max_rows=20) if archetypes.height else "no users",
        "sessions": md_table(
            active.select("name", "time_zone", "start_local", "session_minutes", "analyses"), max_rows=20
        )
        if active.height
        else "no sessions",
        "user_results": md_table(users, max_rows=20),
        "action_performance": md_table(perf, max_rows=30) if perf.height else "no requests",
        "cost_per_user": cost_plot(report),
    }


def load_plot(report: dict[str, Any]) -> dg.MarkdownMetadataValue:
    """Return the load's time series: requested and sent per second, p95 latency, and error share."""
    series = pl.DataFrame(report["time_series"])
    unit = "users" if report["load"].get("model") == "closed" else "req/s requested"
    lines = []
    errors = series["error_rate"].fill_null(0)
    if errors.max() > 0:
        scaled = errors * max(series["sent"].max() or 1, 1)
        lines.append(Series("error share (scaled)", scaled.to_list(), kind="area", color="#f5b971"))
    lines += [
        Series(unit, series["requested"].to_list(), color="#666666", dashed=True),
        Series("req/s sent", series["sent"].to_list(), color="#1f77b4"),
        Series(
            "p95 ms (from schedule)", series["p95_ms"].fill_null(0).to_list(), axis="right", color="#d62728"
        ),
    ]
    chart = chart_svg(
        series["t_s"].to_list(),
        lines,
        title=f"load {', '.join(report['load'].get('shapes', []))}",
        x_label="seconds",
        y_label="per second",
        y2_label="p95 latency, ms",
        width=700,
        height=290,
    )
    return svg_markdown(chart, "load time series")


def load_metadata(report: dict[str, Any]) -> dict[str, Any]:
    """Return the load figures a person reads in the UI (nothing when the run held no load shape)."""
    load = report.get("load") or {}
    if not load:
        return {}
    out: dict[str, Any] = {
        "load_shape": ", ".join(load["shapes"]),
        "load_model": load["model"],
        "load_sent": load["sent"],
        "load_requests_per_second": load["requests_per_second"],
        "load_p95_ms_from_schedule": load["latency_ms"]["p95"],
        "load_p95_ms_service": load["service_latency_ms"]["p95"],
        "load_error_rate": load["error_rate"],
        "load_time_series": load_plot(report),
    }
    if "achieved_ratio" in load:
        out["load_achieved_vs_requested_rate"] = load["achieved_ratio"]
    return out
