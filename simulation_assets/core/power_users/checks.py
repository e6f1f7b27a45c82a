"""Data tests of power-user runs, as pure functions of the run tables (schemas in ``report``).

Each returns a :class:`CheckOutcome`: whether it passed and the measured figures a person reads
in the Dagster UI. ``defs/power_users.py`` declares them as asset checks; the thresholds come
from the scenario's ``simulation_config`` (``success_rate_threshold``, ``cost_budget_usd``).
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from simulation_assets.core.power_users.costs import CostModel, cost_breakdown
from simulation_assets.core.power_users.rhythm import WEEKDAYS, Rhythm, expected_active_share, rhythm_from_row
from simulation_assets.core.power_users.sessions_report import routine_analyses
from simulation_assets.core.power_users.timeseries import load_attempts, open_rate


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
        passed=requests.height == 0 or rate >= threshold,  # no session that day: nothing failed
        metadata={
            "success_rate": round(rate, 4),
            "threshold": threshold,
            "failed": failed,
            "requests": requests.height,
        },
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


def rhythms_of(users: pl.DataFrame) -> dict[str, Rhythm]:
    """Return each user's rhythm as stored in the users table (rows without one are left out)."""
    return {
        row["user"]: rhythm_from_row(row)
        for row in users.iter_rows(named=True)
        if row["sessions_per_week"] is not None and row["rhythm_days"]
    }


def sessions_follow_rhythm(
    users: pl.DataFrame, requests: pl.DataFrame, tolerance_minutes: float = 1.0
) -> CheckOutcome:
    """Pass when every session lies within its persona's rhythm.

    A session starts inside the local start window, lasts within ``session_minutes`` (plus
    ``tolerance_minutes`` of real request time), holds ``analyses_per_session`` routine analyses,
    and, when the run follows the rhythm, falls on one of the persona's weekdays.
    """
    rhythms = rhythms_of(users)
    measured = {r["user"]: r["analyses"] for r in routine_analyses(requests).to_dicts()}
    sessions = users.filter(pl.col("active").fill_null(True) & pl.col("session_start_local").is_not_null())
    problems = {
        "start_outside_window": [],
        "length_outside_range": [],
        "analyses_outside_range": [],
        "off_day": [],
    }
    minutes = []
    for row in sessions.iter_rows(named=True):
        rhythm = rhythms.get(row["user"])
        if rhythm is None:
            continue
        start = dt.datetime.fromisoformat(row["session_start_local"])
        hour = start.hour + start.minute / 60 + start.second / 3600
        lo, hi = rhythm.start_hours
        if not lo - 1e-6 <= hour <= hi + 1e-6:
            problems["start_outside_window"].append(row["user"])
        low, high = rhythm.session_minutes
        length = float(row["session_minutes"] or 0.0)
        minutes.append(length)
        if not low - 1e-6 <= length <= high + tolerance_minutes:
            problems["length_outside_range"].append(row["user"])
        a, b = rhythm.analyses_per_session
        if row["analyses"] and not a <= measured.get(row["user"], 0) <= b:
            problems["analyses_outside_range"].append(row["user"])
        if row["follow_rhythm"] and WEEKDAYS[start.weekday()] not in rhythm.active_days:
            problems["off_day"].append(row["user"])
    bad = sum(len(v) for v in problems.values())
    return CheckOutcome(
        passed=bad == 0,
        metadata={
            "sessions": len(minutes),
            # the standard library's median: numpy's would import numpy.ma (~10 ms of CPU) for this one figure
            "median_session_minutes": round(statistics.median(minutes), 1) if minutes else 0.0,
            **{name: ", ".join(found[:10]) or "none" for name, found in problems.items()},
        },
    )


def active_users_match_frequency(users: pl.DataFrame) -> CheckOutcome:
    """Pass when, per archetype and day, the users with a session number what their frequency predicts.

    Only users whose run follows the rhythm count. The band is the binomial expectation
    +/- (3 standard deviations + 1 user); a population of daily users must all come, weekly
    users about one in five working days.
    """
    followed = users.filter(pl.col("follow_rhythm").fill_null(False))
    rhythms = rhythms_of(followed)
    per_archetype: dict[str, dict[str, float]] = {}
    for row in followed.iter_rows(named=True):
        rhythm = rhythms.get(row["user"])
        if rhythm is None:
            continue
        share = expected_active_share(rhythm, dt.date.fromisoformat(row["day"]))
        key = f"{row['archetype'] or row['user']} {row['day']}"
        entry = per_archetype.setdefault(key, {"users": 0, "active": 0, "expected": 0.0, "var": 0.0})
        entry["users"] += 1
        entry["active"] += bool(row["active"])
        entry["expected"] += share
        entry["var"] += share * (1 - share)
    outside = [
        name
        for name, e in per_archetype.items()
        if abs(e["active"] - e["expected"]) > 3 * np.sqrt(e["var"]) + 1
    ]
    return CheckOutcome(
        passed=not outside,
        metadata={
            "users_following_rhythm": followed.height,
            "active_vs_expected": ", ".join(
                f"{name}: {int(e['active'])}/{int(e['users'])} (expected {e['expected']:.1f})"
                for name, e in per_archetype.items()
            )
            or "no user follows the rhythm",
            "outside_band": ", ".join(outside) or "none",
        },
    )


def latency_p95_within_slo(attempts: pl.DataFrame, p95_ms: float) -> CheckOutcome:
    """Pass when the 95th percentile latency is at most ``p95_ms``.

    Under a load shape the latency runs from each arrival's scheduled time (so a generator that
    fell behind cannot hide slow answers); otherwise it is each attempt's own latency.
    """
    arrivals = load_attempts(attempts)
    measured = arrivals if arrivals.height else attempts
    ms = (measured["ended_s"] - measured["scheduled_s"]) * 1000.0
    p95 = float(ms.quantile(0.95, "linear")) if measured.height else 0.0
    return CheckOutcome(
        passed=p95 <= p95_ms,
        metadata={
            "p95_ms": round(p95, 2),
            "slo_p95_ms": p95_ms,
            "requests": measured.height,
            "measured_from": "scheduled send" if arrivals.height else "send",
        },
    )


def error_rate_within_slo(requests: pl.DataFrame, max_rate: float) -> CheckOutcome:
    """Pass when the share of requests without their expected answer is at most ``max_rate``."""
    rate = float((~requests["ok"]).mean() or 0.0) if requests.height else 0.0
    return CheckOutcome(
        passed=rate <= max_rate,
        metadata={"error_rate": round(rate, 5), "slo_error_rate": max_rate, "requests": requests.height},
    )


def arrival_rate_held(attempts: pl.DataFrame, load: pl.DataFrame, tolerance: float) -> CheckOutcome:
    """Pass when an open-model load sent its arrivals at the requested rate, within ``tolerance`` (relative).

    The requested rate is the plan's arrivals over its seconds; the achieved rate is the arrivals
    sent over the longer of the plan and the time from its start to the last send, so a
    generator that falls behind schedule shows as a lower rate. Runs without an open-model load
    pass: there is no rate to hold.
    """
    figures = open_rate(attempts, load)
    if not figures:
        return CheckOutcome(passed=True, metadata={"note": "no open-model load"})
    return CheckOutcome(
        passed=abs(figures["achieved_ratio"] - 1.0) <= tolerance, metadata={**figures, "tolerance": tolerance}
    )
