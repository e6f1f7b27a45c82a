"""Report sections on the personas' rhythm: each user's session and the results by archetype."""

from __future__ import annotations

from typing import Any

import polars as pl


def routine_analyses(requests: pl.DataFrame) -> pl.DataFrame:
    """Return ``user``, ``analyses``: the routine analyses (analyses_per_session) each user got answered."""
    return (
        requests.filter(
            pl.col("routine").fill_null(False)
            & (pl.col("meter") == "analysis")
            & (pl.col("status") >= 200)
            & (pl.col("status") < 300)
        )
        .group_by("user")
        .agg(pl.len().cast(pl.Int32).alias("analyses"))
    )


def session_rows(users: pl.DataFrame, requests: pl.DataFrame) -> list[dict[str, Any]]:
    """Return one row per user: archetype, active, session id, time zone, local start, minutes, analyses."""
    measured = routine_analyses(requests)
    table = users.select(
        pl.col("user").alias("name"),
        "archetype",
        pl.col("active").fill_null(True),
        "session_id",
        "time_zone",
        pl.col("session_start_local").alias("start_local"),
        pl.col("session_minutes").round(1),
        (pl.col("think_seconds") / 60.0).round(1).alias("think_minutes"),
        pl.col("analyses").alias("analyses_planned"),
    ).join(measured.rename({"user": "name"}), on="name", how="left")
    return table.with_columns(pl.col("analyses").fill_null(0)).to_dicts()


def archetype_rows(user_results: list[dict[str, Any]], sessions: list[dict[str, Any]]) -> dict[str, dict]:
    """Return per archetype: users, active users, actions, success rate, edge cases, conversions, cost, session means."""
    if not user_results:
        return {}
    frame = pl.DataFrame(
        [
            {
                **{k: r[k] for k in ("name", "actions_completed", "actions_failed", "conversion")},
                "edge_cases": len(r["edge_cases"]),
                "cost": float(r["cost_usd"].lstrip("$").replace(",", "")),
            }
            for r in user_results
        ]
    ).join(
        pl.DataFrame(sessions).select("name", "archetype", "active", "session_minutes", "analyses"), on="name"
    )
    grouped = (
        frame.group_by("archetype", maintain_order=True)
        .agg(
            pl.len().alias("users"),
            pl.col("active").sum().alias("active_users"),
            pl.col("actions_completed").sum(),
            pl.col("actions_failed").sum(),
            pl.col("edge_cases").max().alias("edge_cases_per_user"),
            pl.col("conversion").sum().alias("conversions"),
            pl.col("cost").sum().alias("cost_usd"),
            pl.col("session_minutes").filter(pl.col("active")).mean().alias("mean_session_minutes"),
            pl.col("analyses").filter(pl.col("active")).mean().alias("mean_analyses"),
        )
        .to_dicts()
    )
    out = {}
    for row in grouped:
        done, failed = row["actions_completed"], row["actions_failed"]
        out[row.pop("archetype")] = {
            **row,
            "success_rate": f"{(100.0 * done / (done + failed) if done + failed else 0.0):.1f}%",
            "cost_usd": round(row["cost_usd"], 4),
            "mean_session_minutes": round(row["mean_session_minutes"] or 0.0, 1),
            "mean_analyses": round(row["mean_analyses"] or 0.0, 2),
        }
    return out


def sessions_table(report: dict[str, Any], max_rows: int = 12) -> str:
    """Return the console table of sessions on the simulated clock (one line per user, or per archetype)."""
    sessions = report.get("sessions") or []
    lines = ["Sessions (simulated clock, local time):"]
    if len(sessions) > max_rows:
        for name, row in (report.get("archetype_results") or {}).items():
            lines.append(
                f"  {name:<28} {row['active_users']:>5}/{row['users']:<5} users in session, "
                f"mean {row['mean_session_minutes']:.1f} min, {row['mean_analyses']:.1f} analyses"
            )
        return "\n".join(lines)
    for s in sessions:
        if not s["active"]:
            lines.append(f"  {s['name']:<28} no session this day ({s['time_zone']})")
            continue
        start = s["start_local"][11:16]
        lines.append(
            f"  {s['name']:<28} {start} {s['time_zone']:<20} {s['session_minutes']:>5.1f} min  "
            f"{s['analyses']:>3} analyses"
        )
    return "\n".join(lines)
