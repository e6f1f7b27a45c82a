"""What the power-user assets show in the Dagster UI: summary figures, tables and plots of a report."""

from typing import Any

import dagster as dg
import polars as pl

from simulation_assets.defs.metadata import figure_markdown, md_table, new_figure

MAX_BARS = 12  # above this many users the cost plot groups them by archetype


def cost_plot(report: dict[str, Any]) -> dg.MarkdownMetadataValue:
    """Return a stacked bar chart of AI, payment-fee and hosting cost in USD per user (or per archetype)."""
    fig, ax = new_figure(7.0, 3.0)
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
    bottom = [0.0] * len(names)
    for key, label in (
        ("openai_usd", "AI tokens"),
        ("stripe_fees_usd", "Stripe fees"),
        ("hosting_usd", "hosting"),
    ):
        values = [groups[n][key] for n in names]
        ax.bar(names, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("USD")
    ax.set_title("cost per archetype" if by_archetype else "cost per user", fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelsize=7, rotation=15)
    fig.tight_layout()
    return figure_markdown(fig, "cost per archetype" if by_archetype else "cost per user")


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
    fig, ax = new_figure(7.5, 3.2)
    t = series["t_s"].to_numpy()
    unit = "users" if report["load"].get("model") == "closed" else "req/s requested"
    ax.plot(t, series["requested"].to_numpy(), label=unit, color="0.4", linestyle="--")
    ax.plot(t, series["sent"].to_numpy(), label="req/s sent", color="tab:blue")
    ax.set_xlabel("seconds")
    ax.set_ylabel("per second")
    right = ax.twinx()
    right.plot(t, series["p95_ms"].fill_null(0).to_numpy(), color="tab:red", label="p95 ms (from schedule)")
    right.set_ylabel("p95 latency, ms")
    errors = series["error_rate"].fill_null(0).to_numpy()
    if errors.max() > 0:
        ax.fill_between(
            t,
            0,
            errors * max(series["sent"].max() or 1, 1),
            color="tab:orange",
            alpha=0.3,
            label="error share (scaled)",
        )
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    ax.set_title(f"load {', '.join(report['load'].get('shapes', []))}", fontsize=9)
    fig.tight_layout()
    return figure_markdown(fig, "load time series")


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
