"""Category F, reliability and trust: latency buckets, error toasts, timeouts, storage and API errors.

Failures carry a reason code (section 9E); a share of them ends in a support ticket
(``support_contacted``, the plan's "support contacted after job" signal), which the churn
hazard counts; so does a share of the results that fell below the person's quality bar.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort.draws import MINUTE, SECOND, latency_bucket, select
from simulation_assets.core.funnel.cohort.frame import EventBlocks, Jobs


def emit_latency(blocks: EventBlocks, jobs: Jobs, t_outcome: np.ndarray, session: pl.Series) -> None:
    """Emit ``latency_bucket`` (<30s, 30-120s, >120s) right after every successful job."""
    ok = jobs["success"]
    user = jobs["user"]
    blocks.add(
        "latency_bucket",
        user[ok],
        t_outcome[ok] + 5,
        session.filter(pl.Series(ok)),
        job_id=select(jobs["job_id"], ok),
        latency_bucket=select(latency_bucket(jobs["processing_time_ms"]), ok),
        processing_time_ms=jobs["processing_time_ms"][ok],
    )


def emit_failure_signals(blocks: EventBlocks, jobs: Jobs, t_outcome: np.ndarray, session: pl.Series) -> None:
    """Emit the error toast and reason-specific errors of failed jobs, and the support tickets of any job.

    Tickets follow a share of the failures and of the results that disappointed (reason ``quality``).
    """
    failed = ~jobs["success"]
    fu, ft = jobs["user"][failed], t_outcome[failed]
    fs = session.filter(pl.Series(failed))
    job_ids = select(jobs["job_id"], failed)
    code = select(jobs["error_code"], failed)
    blocks.add("error_shown", fu, ft + 2 * SECOND, fs, page_path="/app", error_code=code, job_id=job_ids)
    reason = select(jobs["failure_reason"], failed)
    to = (reason == "timeout").to_numpy()
    blocks.add("job_timeout", fu[to], ft[to] - 10, fs.filter(pl.Series(to)), job_id=select(job_ids, to))
    st = (reason == "storage_error").to_numpy()
    blocks.add(
        "storage_error",
        fu[st],
        ft[st] - 10,
        fs.filter(pl.Series(st)),
        job_id=select(job_ids, st),
        error_code=code.filter(pl.Series(st)),
    )
    blocks.add(
        "api_error",
        fu[st],
        ft[st] - 5,
        fs.filter(pl.Series(st)),
        error_code=code.filter(pl.Series(st)),
        endpoint="/api/jobs",
    )
    sup = jobs["support"]
    blocks.add(
        "support_contacted",
        jobs["user"][sup],
        t_outcome[sup] + 15 * MINUTE,
        session.filter(pl.Series(sup)),
        ticket_reason=select(jobs["ticket_reason"], sup),
        job_id=select(jobs["job_id"], sup),
    )
