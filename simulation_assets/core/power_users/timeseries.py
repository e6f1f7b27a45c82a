"""The load report: per-second throughput, latency percentiles and errors, and how well the shape was held.

Latency here is measured from each request's *scheduled* time (``scheduled_s``, the open model's
arrival) to its answer, so time the generator spent behind schedule is counted rather than
hidden (coordinated omission); ``service`` latency (from the actual send) is reported beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

PERCENTILES = (50, 95, 99)


def _error(status: pl.Expr) -> pl.Expr:
    return (status < 200) | (status >= 400)


def load_attempts(attempts: pl.DataFrame) -> pl.DataFrame:
    """Return the attempts that are arrivals of a load shape."""
    return attempts.filter(pl.col("load").fill_null(False))


def time_series(attempts: pl.DataFrame, load: pl.DataFrame) -> pl.DataFrame:
    """Return one row per second of the load: requested, sent, answered, latency p50/p95/p99 (ms), error share.

    ``t_s`` counts seconds from the first second of the plan; ``requested`` sums the shards' plans
    (arrivals per second, or busy users in the closed model); ``sent`` counts requests actually
    sent in that second; latencies and errors group requests by the second they were due.
    """
    arrivals = load_attempts(attempts)
    if load.is_empty() and arrivals.is_empty():
        return pl.DataFrame(
            schema={"t_s": pl.Int64, "requested": pl.Float64, "sent": pl.UInt32, "answered": pl.UInt32}
            | {f"p{p}_ms": pl.Float64 for p in PERCENTILES}
            | {"error_rate": pl.Float64}
        )
    requested = load.group_by("second").agg(pl.col("requested").sum())
    sent = arrivals.group_by(pl.col("started_s").floor().cast(pl.Int64).alias("second")).agg(
        pl.len().alias("sent")
    )
    due = arrivals.with_columns(((pl.col("ended_s") - pl.col("scheduled_s")) * 1000.0).alias("ms")).group_by(
        pl.col("scheduled_s").floor().cast(pl.Int64).alias("second")
    )
    latency = due.agg(
        pl.len().alias("answered"),
        *[pl.col("ms").quantile(p / 100, "linear").alias(f"p{p}_ms") for p in PERCENTILES],
        _error(pl.col("status")).mean().alias("error_rate"),
    )
    first = min(v for v in (requested["second"].min(), sent["second"].min()) if v is not None)
    table = (
        requested.join(sent, on="second", how="full", coalesce=True)
        .join(latency, on="second", how="full", coalesce=True)
        .with_columns(
            (pl.col("second") - first).alias("t_s"),
            pl.col("requested").fill_null(0.0),
            pl.col("sent").fill_null(0),
            pl.col("answered").fill_null(0),
        )
        .sort("second")
    )
    return table.select(
        "t_s", "requested", "sent", "answered", *[f"p{p}_ms" for p in PERCENTILES], "error_rate"
    )


def load_summary(attempts: pl.DataFrame, load: pl.DataFrame) -> dict[str, Any]:
    """Return the ``load`` report section (empty when the run held no load shape)."""
    arrivals = load_attempts(attempts)
    if load.is_empty():
        return {}
    model = load["model"][0]
    scheduled = arrivals["ended_s"] - arrivals["scheduled_s"]
    service = arrivals["ended_s"] - arrivals["started_s"]
    span = float(arrivals["ended_s"].max() - arrivals["scheduled_s"].min()) if arrivals.height else 0.0
    requested = float(load["requested"].sum())
    out: dict[str, Any] = {
        "shapes": load["shape"].unique(maintain_order=True).to_list(),
        "model": model,
        "seconds": int(load["second"].n_unique()),
        "sent": arrivals.height,
        "requests_per_second": round(arrivals.height / span, 2) if span else 0.0,
        "error_rate": round(float(_error(arrivals["status"]).mean() or 0.0), 5) if arrivals.height else 0.0,
        "latency_ms": _percentiles(scheduled.to_numpy() * 1000.0),
        "service_latency_ms": _percentiles(service.to_numpy() * 1000.0),
        "behind_schedule_ms": _percentiles(
            (arrivals["started_s"] - arrivals["scheduled_s"]).to_numpy() * 1000.0
        ),
    }
    if model == "open":
        out["requested"] = round(requested, 1)
        out.update(open_rate(attempts, load))
    else:
        out["mean_users"] = round(requested / max(out["seconds"], 1), 1)
    return out


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {f"p{p}": 0.0 for p in PERCENTILES} | {"max": 0.0}
    return {f"p{p}": round(float(np.percentile(values, p)), 3) for p in PERCENTILES} | {
        "max": round(float(values.max()), 3)
    }


def open_rate(attempts: pl.DataFrame, load: pl.DataFrame) -> dict[str, float]:
    """Return the requested and achieved arrival rates of an open-model load ({} without one).

    Requested: the plan's arrivals over its seconds. Achieved: the arrivals sent over the longer
    of the plan and the time from its start to the last send, so a generator that falls behind
    schedule shows as a lower rate.
    """
    plan = load.filter(pl.col("model") == "open")
    if plan.is_empty():
        return {}
    arrivals = load_attempts(attempts)
    seconds = float(plan["second"].n_unique())
    requested_rate = float(plan["requested"].sum()) / seconds
    start = float((plan["second"] + plan["start_offset_s"]).min())
    span = max(seconds, float(arrivals["started_s"].max()) - start) if arrivals.height else seconds
    achieved_rate = arrivals.height / span
    return {
        "requested_per_second": round(requested_rate, 3),
        "achieved_per_second": round(achieved_rate, 3),
        "achieved_ratio": round(achieved_rate / requested_rate, 4) if requested_rate else 0.0,
    }


def load_line(report: dict[str, Any]) -> str:
    """Return the one-line console summary of a run's load ('' when it held none)."""
    load = report.get("load") or {}
    if not load:
        return ""
    rate = (
        f"{load['achieved_per_second']:.1f} req/s of {load['requested_per_second']:.1f} requested "
        f"(ratio {load['achieved_ratio']:.3f})"
        if "achieved_ratio" in load
        else f"{load['requests_per_second']:.1f} req/s from {load['mean_users']:.0f} users on average"
    )
    return (
        f"Load {', '.join(load['shapes'])} ({load['model']} model): {load['sent']} requests, {rate}; "
        f"p95 {load['latency_ms']['p95']:.1f} ms from the scheduled send "
        f"({load['service_latency_ms']['p95']:.1f} ms service), errors {100 * load['error_rate']:.2f} %"
    )
