"""Data tests of power-user runs, as pure functions of the run tables (schemas in ``report``).

Each returns a :class:`CheckOutcome`: whether it passed and the measured figures a person reads
in the Dagster UI. ``defs/power_users.py`` declares them as asset checks; the thresholds come
from the scenario's ``simulation_config`` (``success_rate_threshold``, ``cost_budget_usd``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from simulation_assets.core.power_users.costs import CostModel, cost_breakdown


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check: passed or not, and what was measured."""

    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)


def run_tables_consistent(
    requests: pl.DataFrame, attempts: pl.DataFrame, edges: pl.DataFrame, users: pl.DataFrame
) -> CheckOutcome:
    """Pass when the four tables of a run describe the same requests, so the report adds them up right.

    Every row belongs to a user of ``users`` (listed once); a request is recorded once per
    (user, action, burst index); each request's attempt count matches the attempts table; no
    latency, token count or payment is negative.
    """
    known = set(users["user"].to_list())
    strangers = {
        name: int((~frame["user"].is_in(list(known))).sum())
        for name, frame in (("requests", requests), ("attempts", attempts), ("edges", edges))
    }
    duplicate_users = users.height - users["user"].n_unique()
    duplicate_requests = requests.height - requests.select("user", "action_index", "request_index").n_unique()
    per_user_requests = requests.group_by("user").agg(pl.col("attempts").sum().alias("claimed"))
    per_user_attempts = attempts.group_by("user").agg(pl.len().alias("recorded"))
    mismatched = (
        per_user_requests.join(per_user_attempts, on="user", how="full", coalesce=True)
        .fill_null(0)
        .filter(pl.col("claimed") != pl.col("recorded"))
    )
    negative = int(
        (requests["latency_ms"] < 0).sum()
        + (attempts["latency_ms"] < 0).sum()
        + (requests["input_tokens"] < 0).sum()
        + (requests["output_tokens"] < 0).sum()
        + (requests["payment_usd"] < 0).sum()
    )
    problems = sum(strangers.values()) + duplicate_users + duplicate_requests + mismatched.height + negative
    return CheckOutcome(
        passed=problems == 0 and users.height > 0,
        metadata={
            "users": users.height,
            "requests": requests.height,
            "attempts": attempts.height,
            "rows_of_unknown_users": sum(strangers.values()),
            "duplicate_users": duplicate_users,
            "duplicate_requests": duplicate_requests,
            "users_with_attempt_mismatch": ", ".join(mismatched["user"].to_list()) or "none",
            "negative_values": negative,
        },
    )


def success_rate_above(requests: pl.DataFrame, threshold: float) -> CheckOutcome:
    """Pass when the share of requests that got their expected status is at least ``threshold``."""
    done = int(requests["ok"].sum())
    failed = requests.height - done
    rate = done / requests.height if requests.height else 0.0
    return CheckOutcome(
        passed=requests.height > 0 and rate >= threshold,
        metadata={"success_rate": round(rate, 4), "threshold": threshold, "failed": failed},
    )


def configured_edge_cases_triggered(edges: pl.DataFrame, users: pl.DataFrame) -> CheckOutcome:
    """Pass when every edge case the users' scenarios configure was triggered at least once."""
    configured = list(
        dict.fromkeys(
            name
            for cell in users["configured_edge_cases"].fill_null("").to_list()
            for name in cell.split(",")
            if name
        )
    )
    triggered = set(edges.filter(pl.col("triggered"))["edge_case"].to_list())
    missing = [name for name in configured if name not in triggered]
    return CheckOutcome(
        passed=not missing,
        metadata={
            "configured": len(configured),
            "triggered": len(configured) - len(missing),
            "missing": ", ".join(missing) or "none",
        },
    )


def cost_within_budget(
    requests: pl.DataFrame, users: pl.DataFrame, costs: CostModel, budget_usd: float
) -> CheckOutcome:
    """Pass when AI tokens, payment fees and hosting of the run cost at most ``budget_usd``."""
    names = users["user"].to_list()
    index = {n: i for i, n in enumerate(names)}
    known = requests.filter(pl.col("user").is_in(names))
    breakdown = cost_breakdown(
        names,
        np.array([index[u] for u in known["user"].to_list()], dtype=np.int64),
        known["input_tokens"].fill_null(0).to_numpy(),
        known["output_tokens"].fill_null(0).to_numpy(),
        known["payment_usd"].fill_null(0.0).to_numpy(),
        costs,
    )
    total = breakdown.totals["total_usd"]
    return CheckOutcome(
        passed=total <= budget_usd,
        metadata={"total_usd": round(total, 4), "budget_usd": budget_usd},
    )
