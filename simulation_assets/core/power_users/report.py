"""The run report (``simulation_report.json``) and the console summary, built from the run's tables.

The runner records three tables (polars frames, schemas below); the report groups them
per user and per action. Its top-level keys are the scenario document's five
(``simulation_summary``, ``cost_analysis``, ``user_results``, ``edge_cases_triggered``,
``errors_encountered``) followed by additions: ``action_performance`` (latency p50/p95/p99 in ms
and requests/s per action type), ``edge_case_coverage``, ``edge_case_details``, ``cost_details``
and ``run``.
"""

from __future__ import annotations

import datetime as dt
import http
from typing import Any

import numpy as np
import polars as pl

from simulation_assets.core.power_users.config import CONNECTION_ERROR_STATUS, TIMEOUT_STATUS
from simulation_assets.core.power_users.costs import CostModel, cost_breakdown, usd
from simulation_assets.core.power_users.sessions_report import archetype_rows, session_rows
from simulation_assets.core.power_users.timeseries import load_summary, time_series

# One row per request (its final attempt).
REQUEST_SCHEMA = {
    "user": pl.String,
    "action_index": pl.Int32,
    "action_type": pl.String,
    "request_index": pl.Int32,
    "status": pl.Int32,
    "attempts": pl.Int32,
    "statuses": pl.String,
    "ok": pl.Boolean,
    "latency_ms": pl.Float64,
    "at": pl.String,
    "error": pl.String,
    "meter": pl.String,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "payment_usd": pl.Float64,
    "session_id": pl.String,
    "sim_at": pl.String,  # when the request happened on the session's simulated clock (UTC)
    "routine": pl.Boolean,  # one of the persona's analyses_per_session
    "tier": pl.String,  # the user's tier as the API last reported it
    "property_address": pl.String,  # analyses only
    "deal_score": pl.Int32,  # analyses only
}
# One row per HTTP attempt (retries included), for latency and throughput. Times are Unix seconds;
# ``scheduled_s`` is when the attempt was due (the open model's arrival), ``started_s`` when it was sent.
ATTEMPT_SCHEMA = {
    "user": pl.String,
    "action_type": pl.String,
    "status": pl.Int32,
    "latency_ms": pl.Float64,
    "scheduled_s": pl.Float64,
    "started_s": pl.Float64,
    "ended_s": pl.Float64,
    "load": pl.Boolean,  # an arrival of a load shape (not a scripted session or a load user's login)
}
# A load's request: the request row's fields that vary, and the attempt row's times (Unix seconds).
LOAD_ROW_SCHEMA = {
    "user": pl.String,
    "action_index": pl.Int32,
    "action_type": pl.String,
    "request_index": pl.Int32,
    "status": pl.Int32,
    "ok": pl.Boolean,
    "latency_ms": pl.Float64,
    "error": pl.String,
    "meter": pl.String,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "session_id": pl.String,
    "tier": pl.String,
    "property_address": pl.String,
    "deal_score": pl.Int32,
    "scheduled_s": pl.Float64,
    "started_s": pl.Float64,
    "ended_s": pl.Float64,
    "load": pl.Boolean,
}
# One row per executed action that names an edge case.
EDGE_SCHEMA = {
    "user": pl.String,
    "action_index": pl.Int32,
    "action_type": pl.String,
    "edge_case": pl.String,
    "category": pl.String,
    "triggered": pl.Boolean,
    "as_expected": pl.Boolean,
    "statuses": pl.String,
    "at": pl.String,
}
# One row per second of a load shape and archetype: what the shape asked for (arrivals in the
# open model, busy users in the closed one), for the report's time series.
LOAD_SCHEMA = {
    "archetype": pl.String,
    "shape": pl.String,
    "model": pl.String,
    "second": pl.Int64,  # Unix second
    "requested": pl.Float64,
    "start_offset_s": pl.Float64,  # where the load started within its first second
}
# One row per user and day; the last four columns are the same for every user of one run.
USER_SCHEMA = {
    "user": pl.String,
    "archetype": pl.String,  # the persona a population clone was made from (its own name otherwise)
    "day": pl.String,  # the user's local calendar day of the session (the partition's day)
    "started_at": pl.String,
    "finished_at": pl.String,
    "duration_s": pl.Float64,  # wall-clock seconds
    "actions_planned": pl.Int32,
    "actions_skipped": pl.Int32,
    "configured_edge_cases": pl.String,
    "active": pl.Boolean,  # the user had a session (the rhythm's active day, or a run on demand)
    "session_id": pl.String,
    "time_zone": pl.String,
    "session_start_local": pl.String,
    "session_minutes": pl.Float64,  # on the simulated clock
    "analyses": pl.Int32,  # routine analyses planned (analyses_per_session)
    "think_seconds": pl.Float64,  # simulated think time
    # The user's resolved rhythm, so the tables check themselves without the scenario file.
    "sessions_per_week": pl.Float64,
    "rhythm_days": pl.String,  # comma-separated weekdays (mon..sun)
    "start_hour_from": pl.Float64,
    "start_hour_to": pl.Float64,
    "session_minutes_min": pl.Float64,
    "session_minutes_max": pl.Float64,
    "analyses_min": pl.Int32,
    "analyses_max": pl.Int32,
    "base_url": pl.String,
    "reference_target": pl.Boolean,
    "mode": pl.String,
    "follow_rhythm": pl.Boolean,  # sessions only on the rhythm's active days (else: one on demand)
}


def status_text(status: int, error: str | None = None) -> str:
    """Return ``403 Forbidden``, ``timeout`` or ``connection error: …`` for a recorded status."""
    if status == TIMEOUT_STATUS:
        return "timeout"
    if status == CONNECTION_ERROR_STATUS:
        return f"connection error: {error or 'no response'}"
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _pct(part: float, whole: float) -> str:
    return f"{(100.0 * part / whole if whole else 0.0):.1f}%"


def action_performance(attempts: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Return per action type: attempts, error share, latency p50/p95/p99 (ms) and requests/s.

    Requests/s is the action's attempts divided by the span from its first start to its last end.
    """
    if attempts.is_empty():
        return {}
    grouped = (
        attempts.group_by("action_type")
        .agg(
            pl.len().alias("requests"),
            ((pl.col("status") < 200) | (pl.col("status") >= 400)).mean().alias("error_share"),
            pl.col("latency_ms").quantile(0.50, "linear").alias("p50_ms"),
            pl.col("latency_ms").quantile(0.95, "linear").alias("p95_ms"),
            pl.col("latency_ms").quantile(0.99, "linear").alias("p99_ms"),
            pl.col("latency_ms").mean().alias("mean_ms"),
            (pl.col("ended_s").max() - pl.col("started_s").min()).alias("span_s"),
        )
        .sort("action_type")
    )
    out = {}
    for row in grouped.iter_rows(named=True):
        span = max(row["span_s"], 1e-6)
        out[row["action_type"]] = {
            "requests": int(row["requests"]),
            "error_rate": round(float(row["error_share"]), 4),
            "p50_ms": round(float(row["p50_ms"]), 3),
            "p95_ms": round(float(row["p95_ms"]), 3),
            "p99_ms": round(float(row["p99_ms"]), 3),
            "mean_ms": round(float(row["mean_ms"]), 3),
            "requests_per_second": round(row["requests"] / span, 2),
        }
    return out


def build_report(
    requests: pl.DataFrame,
    attempts: pl.DataFrame,
    edges: pl.DataFrame,
    users: pl.DataFrame,
    costs: CostModel,
    run: dict[str, Any] | None = None,
    load: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Return the report dict of one run (or one day of runs) from its tables.

    ``load`` (the load plan, when the run held a load shape) adds the ``load`` summary and the
    per-second ``time_series``.
    """
    load = load if load is not None else pl.DataFrame(schema=LOAD_SCHEMA)
    requests = requests if not requests.is_empty() else pl.DataFrame(schema=REQUEST_SCHEMA)
    edges = edges if not edges.is_empty() else pl.DataFrame(schema=EDGE_SCHEMA)
    names = users["user"].to_list()
    index = {n: i for i, n in enumerate(names)}
    breakdown = cost_breakdown(
        names,
        np.array([index[u] for u in requests["user"].to_list()], dtype=np.int64),
        requests["input_tokens"].fill_null(0).to_numpy(),
        requests["output_tokens"].fill_null(0).to_numpy(),
        requests["payment_usd"].fill_null(0.0).to_numpy(),
        costs,
    )
    two_xx = (pl.col("status") >= 200) & (pl.col("status") < 300)
    per_user = (
        requests.group_by("user")
        .agg(
            pl.col("ok").sum().alias("completed"),
            (~pl.col("ok")).sum().alias("failed"),
            ((pl.col("meter") == "payment") & two_xx).any().alias("conversion"),
        )
        .to_dicts()
    )
    by_user = {r["user"]: r for r in per_user}
    triggered = edges.filter(pl.col("triggered")).sort("at", maintain_order=True)
    user_results = []
    for i, row in enumerate(users.iter_rows(named=True)):
        stats = by_user.get(row["user"], {"completed": 0, "failed": 0, "conversion": False})
        done, failed = int(stats["completed"]), int(stats["failed"])
        user_results.append(
            {
                "name": row["user"],
                "duration_seconds": round(float(row["duration_s"]), 1),
                "actions_completed": done,
                "actions_failed": failed,
                "success_rate": _pct(done, done + failed),
                "edge_cases": list(
                    dict.fromkeys(triggered.filter(pl.col("user") == row["user"])["edge_case"].to_list())
                ),
                "conversion": bool(stats["conversion"]),
                "cost_usd": usd(breakdown.total_usd[i]),
            }
        )
    triggered_names = list(dict.fromkeys(triggered["edge_case"].to_list()))
    configured = list(
        dict.fromkeys(
            name
            for cell in users["configured_edge_cases"].fill_null("").to_list()
            for name in cell.split(",")
            if name
        )
    )
    errors = (
        requests.filter(~two_xx)
        .sort("at", maintain_order=True)
        .select("action_type", "status", "error", "at")
        .iter_rows(named=True)
    )
    totals = breakdown.totals
    sessions = session_rows(users, requests)
    completed = sum(r["actions_completed"] for r in user_results)
    conversions = sum(r["conversion"] for r in user_results)
    return {
        "simulation_summary": {
            "total_users": len(names),
            "total_actions_completed": completed,
            "total_actions_failed": sum(r["actions_failed"] for r in user_results),
            "total_edge_cases_triggered": len(triggered_names),
            "conversions_achieved": conversions,
            "conversion_rate": _pct(conversions, len(names)),
        },
        "cost_analysis": {
            "azure_openai_input_tokens": totals["input_tokens"],
            "azure_openai_output_tokens": totals["output_tokens"],
            "azure_openai_cost_usd": usd(totals["openai_usd"]),
            "stripe_transactions": totals["stripe_transactions"],
            "stripe_fees_usd": usd(totals["stripe_fees_usd"]),
            "total_cost_usd": usd(totals["total_usd"]),
        },
        "user_results": user_results,
        "edge_cases_triggered": triggered_names,
        "errors_encountered": [
            {"action": e["action_type"], "error": status_text(e["status"], e["error"]), "timestamp": e["at"]}
            for e in errors
        ],
        "action_performance": action_performance(attempts),
        "edge_case_coverage": {
            "configured": len(configured),
            "triggered": sum(1 for n in configured if n in triggered_names),
            "missing": [n for n in configured if n not in triggered_names],
        },
        "edge_case_details": edges.sort("at", maintain_order=True).to_dicts(),
        "cost_details": {
            "per_user": {
                n: {
                    "input_tokens": breakdown.input_tokens[i],
                    "output_tokens": breakdown.output_tokens[i],
                    "openai_usd": round(breakdown.openai_usd[i], 6),
                    "stripe_transactions": breakdown.stripe_transactions[i],
                    "stripe_fees_usd": round(breakdown.stripe_fees_usd[i], 4),
                    "hosting_usd": round(breakdown.hosting_usd[i], 4),
                    "total_usd": round(breakdown.total_usd[i], 4),
                }
                for i, n in enumerate(names)
            },
            "openai_usd": round(totals["openai_usd"], 6),
            "stripe_fees_usd": round(totals["stripe_fees_usd"], 4),
            "hosting_usd": round(totals["hosting_usd"], 4),
            "total_usd": round(totals["total_usd"], 4),
            "prices": costs.model_dump(),
        },
        "sessions": sessions,
        "archetype_results": archetype_rows(user_results, sessions),
        "load": load_summary(attempts, load),
        "time_series": time_series(attempts, load).to_dicts(),
        "run": run or {},
    }


MAX_USERS_LISTED = 10  # a larger population is summarised per archetype


def console_summary(report: dict[str, Any], product: str = "PropIQ") -> str:
    """Return the plain-text results summary printed at the end of a run (per archetype above 10 users)."""
    rule = "=" * 80
    lines = [rule, f"{product.upper()} POWER USER SIMULATION - RESULTS SUMMARY", rule, ""]
    if len(report["user_results"]) > MAX_USERS_LISTED:
        for name, a in (report.get("archetype_results") or {}).items():
            lines += [
                f"{name} ({a['users']} users, {a['active_users']} in session):",
                f"  Actions: {a['actions_completed']} completed, {a['actions_failed']} failed",
                f"  Success Rate: {a['success_rate']}",
                f"  Conversions: {a['conversions']}",
                f"  Cost: {usd(a['cost_usd'])}",
                "",
            ]
    for r in report["user_results"] if len(report["user_results"]) <= MAX_USERS_LISTED else []:
        lines += [
            f"{r['name']}:",
            f"  Duration: {r['duration_seconds']:.1f}s",
            f"  Actions: {r['actions_completed']} completed, {r['actions_failed']} failed",
            f"  Success Rate: {r['success_rate']}",
            f"  Edge Cases: {len(r['edge_cases'])}",
            f"  Conversion: {'✅ Yes' if r['conversion'] else '❌ No'}",
            f"  Cost: {r['cost_usd']}",
            "",
        ]
    s = report["simulation_summary"]
    lines += [
        rule,
        "TOTALS:",
        f"  Total Cost: {report['cost_analysis']['total_cost_usd']}",
        f"  Total Actions: {s['total_actions_completed']}",
        f"  Conversions: {s['conversions_achieved']}/{s['total_users']} ({s['conversion_rate']})",
        rule,
    ]
    return "\n".join(lines)


def _seconds_between(first: str, last: str) -> float:
    """Return the seconds from ISO stamp ``first`` to ``last`` (``2025-10-22T19:15:32.123Z``)."""
    start = dt.datetime.fromisoformat(first.replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(last.replace("Z", "+00:00"))
    return max((end - start).total_seconds(), 0.0)


def day_run_summary(users: pl.DataFrame, attempts: pl.DataFrame, day: str, seed: int) -> dict[str, Any]:
    """Return the ``run`` section of a day report over the stored runs of ``day``.

    Start and end span every user run of the day; requests/s divides the attempts by that span.
    """
    if users.is_empty():
        return {"day": day, "personas": [], "requests": 0}
    started, finished = users["started_at"].min(), users["finished_at"].max()
    seconds = _seconds_between(str(started), str(finished))
    base_urls = list(dict.fromkeys(users["base_url"].fill_null("").to_list()))
    modes = list(dict.fromkeys(users["mode"].fill_null("").to_list()))
    return {
        "base_url": base_urls[0] if len(base_urls) == 1 else base_urls,
        "reference_target": bool(users["reference_target"].fill_null(False).all()),
        "day": day,
        "personas": users["user"].to_list(),
        "mode": modes[0] if len(modes) == 1 else "mixed",
        "seed": seed,
        "started_at": started,
        "finished_at": finished,
        "duration_seconds": round(seconds, 3),
        "requests": attempts.height,
        "requests_per_second": round(attempts.height / seconds, 2) if seconds else 0.0,
    }


def load_requests(loaded: pl.DataFrame) -> pl.DataFrame:
    """Return the request rows (REQUEST_SCHEMA) of a load's rows: one attempt each, stamped when answered."""
    ms = (pl.col("ended_s") * 1000.0).floor().cast(pl.Int64)
    stamp = pl.from_epoch(ms, time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    return loaded.select(
        *(pl.col(c) for c in ("user", "action_index", "action_type", "request_index", "status")),
        pl.lit(1, dtype=pl.Int32).alias("attempts"),
        pl.col("status").cast(pl.String).alias("statuses"),
        pl.col("ok"),
        pl.col("latency_ms"),
        stamp.alias("at"),
        *(pl.col(c) for c in ("error", "meter", "input_tokens", "output_tokens")),
        pl.lit(0.0).alias("payment_usd"),
        pl.col("session_id"),
        stamp.alias("sim_at"),  # a load runs on the wall clock
        pl.lit(False).alias("routine"),
        *(pl.col(c) for c in ("tier", "property_address", "deal_score")),
    ).cast(REQUEST_SCHEMA)
