"""The credit ledger of a cohort: free credits, -1 per job, +1 per refund, + purchased packs.

Balances are a cumulative sum per person over time, so every job's ``credits_before`` /
``credits_after`` and the balance seven days after login (a churn hazard input) agree
with the events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort.draws import SECOND


@dataclass(frozen=True)
class Balances:
    """Credit balances read off the ledger."""

    after_job: np.ndarray
    """Balance right after each job is created (one entry per job, in job order)."""
    at_day7: np.ndarray
    """Balance seven days after login (one entry per clicker, 0 for people never credited)."""


def credit_balances(
    n: int,
    credited: np.ndarray,
    t_credit: np.ndarray,
    free_credits: int,
    job_user: np.ndarray,
    job_created_ms: np.ndarray,
    job_success: np.ndarray,
    job_outcome_ms: np.ndarray,
    buyers: np.ndarray,
    paid_ms: np.ndarray,
    credits_bought: np.ndarray,
    day7: np.ndarray,
) -> Balances:
    """Return each job's balance after it is charged and every clicker's balance on day 7."""
    idx = np.arange(n, dtype=np.int64)
    nj = len(job_user)
    ledger = (
        pl.concat(
            [
                pl.DataFrame(
                    {"user": idx[credited], "t": t_credit[credited], "delta": free_credits, "job": -1}
                ),
                pl.DataFrame({"user": job_user, "t": job_created_ms, "delta": -1, "job": np.arange(nj)}),
                pl.DataFrame(
                    {
                        "user": job_user[~job_success],
                        "t": job_outcome_ms[~job_success] + SECOND,
                        "delta": 1,
                        "job": -2,
                    }
                ),
                pl.DataFrame({"user": buyers, "t": paid_ms, "delta": credits_bought, "job": -3}),
            ],
            how="vertical_relaxed",
        )
        # typed even when nobody was credited (an all-empty ledger would otherwise have null columns)
        .cast({"user": pl.Int64, "t": pl.Int64, "delta": pl.Int64})
        .sort(["user", "t"])
        .with_columns(pl.col("delta").cum_sum().over("user").alias("balance"))
    )
    after_job = ledger.filter(pl.col("job") >= 0).sort("job")["balance"].to_numpy()
    bal7 = (
        ledger.filter(pl.col("t") <= pl.lit(pl.Series(day7)).gather(pl.col("user")))
        .group_by("user")
        .agg(pl.col("balance").last())
    )
    at_day7 = np.zeros(n, dtype=np.int64)
    at_day7[bal7["user"].to_numpy()] = bal7["balance"].to_numpy()
    return Balances(after_job=after_job, at_day7=at_day7)
