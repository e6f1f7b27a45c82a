"""Category C, core value: the watermark-removal job machine, from upload to download.

Every uploader runs a first job right after activation; people who reach the aha
moment run a few more in their first week (more with higher intent), bounded by their
free credits. A job carries the content attributes of sections 2C and 9B, its queue
wait, processing time (slow jobs at the template's ``slow_rate``), outcome and reason
code. :func:`emit_jobs` writes a batch of jobs' events in the order they happen,
including the retention (E) and reliability (F) events a job triggers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort import reliability, retention
from simulation_assets.core.funnel.cohort.draws import (
    DAY,
    MINUTE,
    SECOND,
    duration_bucket,
    file_size_bucket,
    hex_ids,
    labels,
    lognormal_ms,
    null_unless,
    pick,
    select,
)
from simulation_assets.core.funnel.cohort.frame import EventBlocks, Jobs
from simulation_assets.core.funnel.cohort.states import FunnelPath
from simulation_assets.core.funnel.config import CohortConfig

PLATFORMS = ("tiktok", "sora", "runway", "unknown")
PLATFORM_P = (0.5, 0.25, 0.15, 0.10)
POSITIONS = ("edge", "corner", "center", "unknown")
RESOLUTIONS = ("720p", "1080p", "4k")
RESOLUTION_P = (0.3, 0.6, 0.1)
FAILURES = ("timeout", "no_watermark_found", "unsupported_codec", "storage_error", "gpu_out_of_memory")
FAILURE_P = (0.35, 0.25, 0.15, 0.15, 0.10)

# Properties every job event carries (section 2C) and the content signals of section 9B.
JOB_PROPS = (
    "job_id",
    "mode",
    "detected_platform",
    "watermark_confidence",
    "video_bytes",
    "duration_seconds",
    "resolution",
    "credits_before",
    "credits_after",
)
CONTENT_PROPS = (
    "watermark_position",
    "video_duration_bucket",
    "resolution_bucket",
    "file_size_bucket",
    "audio_present",
)


def job_attributes(gen: np.random.Generator, nj: int) -> Jobs:
    """Return the content attributes of ``nj`` jobs (sections 2C and 9B)."""
    duration = np.round(gen.gamma(2.0, 12.0, nj) + 2, 1)
    res = gen.choice(len(RESOLUTIONS), size=nj, p=RESOLUTION_P)
    rate = np.array([0.6e6, 1.5e6, 5e6])[res]  # bytes per second of video
    video_bytes = (duration * rate * gen.uniform(0.7, 1.3, nj)).astype(np.int64)
    platform = gen.choice(len(PLATFORMS), size=nj, p=PLATFORM_P)
    unknown = platform == PLATFORMS.index("unknown")
    return {
        "mode": labels(("crop", "inpaint"), (gen.random(nj) < 0.6).astype(np.int64)),
        "detected_platform": labels(PLATFORMS, platform),
        "watermark_confidence": np.round(
            np.where(unknown, gen.uniform(0.3, 0.7, nj), gen.uniform(0.75, 0.99, nj)), 3
        ),
        "watermark_position": pick(gen, POSITIONS, (0.3, 0.5, 0.1, 0.1), nj),
        "video_bytes": video_bytes,
        "duration_seconds": duration,
        "resolution": labels(("1280x720", "1920x1080", "3840x2160"), res),
        "resolution_bucket": labels(RESOLUTIONS, res),
        "video_duration_bucket": duration_bucket(duration),
        "file_size_bucket": file_size_bucket(video_bytes),
        "audio_present": gen.random(nj) < 0.8,
        "job_id": hex_ids(gen, nj, "job_"),
        "upload_id": hex_ids(gen, nj, "upl_"),
    }


def job_timeline(gen: np.random.Generator, jobs: Jobs, config: CohortConfig) -> dict[str, np.ndarray]:
    """Fill in processing time, failures and support, and return the timestamps of each job step."""
    nj = len(jobs["user"])
    slow = gen.random(nj) < config.churn.slow_rate  # the template's "slow job" share
    proc = np.where(slow, lognormal_ms(gen, 200 * SECOND, 0.3, nj), lognormal_ms(gen, 55 * SECOND, 0.35, nj))
    proc = (proc * (1 + jobs["duration_seconds"] / 120)).astype(np.int64)
    jobs["processing_time_ms"] = proc
    jobs["queue_wait_ms"] = lognormal_ms(gen, 8 * SECOND, 0.7, nj)
    jobs["status_poll_count"] = 1 + proc // 5000
    jobs["retry_count"] = np.where(jobs["success"], 0, gen.integers(0, 3, nj))
    reason = gen.choice(len(FAILURES), size=nj, p=FAILURE_P)
    failed = ~jobs["success"]
    jobs["failure_reason"] = null_unless(failed, labels(FAILURES, reason))
    jobs["error_code"] = null_unless(failed, labels(tuple("E_" + r.upper() for r in FAILURES), reason))
    jobs["support"] = (~jobs["success"]) & (gen.random(nj) < config.support_rate_per_failure)
    upload_ms = (jobs["video_bytes"] / 2e6 * 1000).astype(np.int64) + 500
    t: dict[str, np.ndarray] = {"upload_started": jobs["t0"]}
    t["upload_completed"] = t["upload_started"] + upload_ms
    t["created"] = t["upload_completed"] + 800
    t["detected"] = t["created"] + gen.integers(SECOND, 3 * SECOND, nj)
    t["started"] = t["detected"] + jobs["queue_wait_ms"]
    t["outcome"] = t["started"] + proc
    t["download"] = t["outcome"] + lognormal_ms(gen, 20 * SECOND, 0.5, nj)
    return t


@dataclass
class FirstWeekJobs:
    """Every job of the first week (first jobs, then the aha users' extra jobs) and their step times."""

    jobs: Jobs
    times: dict[str, np.ndarray]
    first_download_ms: np.ndarray
    """Per clicker: when their first job's result was downloaded (0 without an upload)."""


def first_week_jobs(
    gen: np.random.Generator,
    config: CohortConfig,
    path: FunnelPath,
    intent: np.ndarray,
    t_activation: np.ndarray,
    t_login: np.ndarray,
    first_session: pl.Series,
) -> FirstWeekJobs:
    """Return the first job of every uploader and the extra first-week jobs of people who reached aha."""
    n = len(path.uploaded)
    idx = np.arange(n, dtype=np.int64)
    r = config.rates
    uploaders = idx[path.uploaded]
    first = job_attributes(gen, len(uploaders))
    first.update(
        user=uploaders,
        t0=t_activation[uploaders] + lognormal_ms(gen, 30 * SECOND, 0.5, len(uploaders)),
        first=np.ones(len(uploaders), bool),
        success=path.job_completed[uploaders],
        download=path.aha[uploaders],
        session=first_session.gather(uploaders),
    )
    tf = job_timeline(gen, first, config)
    t_first_dl = np.zeros(n, dtype=np.int64)
    t_first_dl[uploaders] = tf["download"]
    lam = config.extra_jobs_first_week * np.exp(0.3 * intent - 0.045)
    n_extra = np.minimum(gen.poisson(lam), config.free_credits - 1) * path.aha
    extra_user = np.repeat(idx, n_extra)
    window = np.maximum(t_login[extra_user] + 7 * DAY - 20 * MINUTE - t_first_dl[extra_user], MINUTE)
    extra = job_attributes(gen, len(extra_user))
    extra.update(
        user=extra_user,
        t0=t_first_dl[extra_user] + MINUTE + (gen.random(len(extra_user)) * window).astype(np.int64),
        first=np.zeros(len(extra_user), bool),
        session=hex_ids(gen, len(extra_user), "sess_"),
    )
    extra["success"] = gen.random(len(extra_user)) < r.p_job_success
    extra["download"] = extra["success"] & (gen.random(len(extra_user)) < r.p_download)
    tx = job_timeline(gen, extra, config)
    jobs = {
        k: (
            pl.concat([first[k], extra[k]])
            if isinstance(first[k], pl.Series)
            else np.concatenate([first[k], extra[k]])
        )
        for k in first
    }
    times = {k: np.concatenate([tf[k], tx[k]]) for k in tf}
    return FirstWeekJobs(jobs=jobs, times=times, first_download_ms=t_first_dl)


def returning_jobs(
    gen: np.random.Generator,
    config: CohortConfig,
    user: np.ndarray,
    start_ms: np.ndarray,
    credits_before: np.ndarray,
) -> tuple[Jobs, dict[str, np.ndarray]]:
    """Return one successful job per returning person, five minutes into their session, and its times."""
    rj = job_attributes(gen, len(user))
    rj.update(
        user=user,
        t0=start_ms + 5 * MINUTE,
        first=np.zeros(len(user), bool),
        success=np.ones(len(user), bool),
        download=gen.random(len(user)) < config.rates.p_download,
    )
    rj["credits_before"] = credits_before
    rj["credits_after"] = credits_before - 1
    return rj, job_timeline(gen, rj, config)


def emit_jobs(
    blocks: EventBlocks,
    gen: np.random.Generator,
    jobs: Jobs,
    t: dict[str, np.ndarray],
    config: CohortConfig,
    returning: bool,
    session: pl.Series | None = None,
) -> None:
    """Emit every event of a batch of jobs: upload, job, outcome, then what each outcome triggers."""
    if len(jobs["user"]) == 0:
        return
    sess = session if session is not None else jobs["session"]
    if returning:
        retention.emit_returning_upload(blocks, jobs, t["upload_started"], sess)
    _emit_processing(blocks, jobs, t, sess)
    reliability.emit_latency(blocks, jobs, t["outcome"], sess)
    retention.emit_job_notifications(blocks, gen, config, jobs, t["outcome"], sess, returning)
    _emit_refunds(blocks, jobs, t["outcome"], sess)
    reliability.emit_failure_signals(blocks, jobs, t["outcome"], sess)
    _emit_downloads(blocks, gen, config, jobs, t, sess)
    retention.emit_low_credit_prompts(blocks, gen, jobs, t["outcome"], sess)


def _emit_processing(blocks: EventBlocks, jobs: Jobs, t: dict[str, np.ndarray], sess: pl.Series) -> None:
    """Emit upload, job creation, detection, processing start and the outcome (completed or failed)."""
    user = jobs["user"]
    base = {k: jobs[k] for k in JOB_PROPS}
    content = {k: jobs[k] for k in CONTENT_PROPS}
    upload = jobs["upload_id"]
    blocks.add("upload_started", user, t["upload_started"], sess, page_path="/app", upload_id=upload)
    blocks.add(
        "upload_completed",
        user,
        t["upload_completed"],
        sess,
        page_path="/app",
        upload_id=upload,
        video_bytes=jobs["video_bytes"],
    )
    first = pl.Series(jobs["first"])
    blocks.add(
        "job_created",
        user,
        t["created"],
        sess,
        **base,
        **content,
        mode_selected=jobs["mode"],
        is_first_job=first,
    )
    blocks.add("watermark_detected", user, t["detected"], sess, **base, **content)
    blocks.add("processing_started", user, t["started"], sess, **base, queue_wait_ms=jobs["queue_wait_ms"])
    ok = jobs["success"]
    outcome = dict(
        base,
        **content,
        processing_time_ms=jobs["processing_time_ms"],
        success_bool=ok,
        success=ok,
        failure_reason=jobs["failure_reason"],
        failure_reason_code=jobs["failure_reason"],
        error_code=jobs["error_code"],
        queue_wait_ms=jobs["queue_wait_ms"],
        retry_count=jobs["retry_count"],
        status_poll_count=jobs["status_poll_count"],
        is_first_job=first,
    )
    blocks.add(
        "processing_completed",
        user[ok],
        t["outcome"][ok],
        sess.filter(pl.Series(ok)),
        **{k: select(v, ok) for k, v in outcome.items()},
    )
    blocks.add(
        "processing_failed",
        user[~ok],
        t["outcome"][~ok],
        sess.filter(pl.Series(~ok)),
        **{k: select(v, ~ok) for k, v in outcome.items()},
    )


def _emit_refunds(blocks: EventBlocks, jobs: Jobs, t_outcome: np.ndarray, sess: pl.Series) -> None:
    """Emit ``job_refunded``: the credit of every failed job comes back a second after the failure."""
    failed = ~jobs["success"]
    after = jobs["credits_after"][failed]
    blocks.add(
        "job_refunded",
        jobs["user"][failed],
        t_outcome[failed] + SECOND,
        sess.filter(pl.Series(failed)),
        job_id=select(jobs["job_id"], failed),
        credits_before=after,
        credits_after=after + 1,
    )


def _emit_downloads(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    jobs: Jobs,
    t: dict[str, np.ndarray],
    sess: pl.Series,
) -> None:
    """Emit downloads of successful results (the aha moment the first time) and some share clicks."""
    user = jobs["user"]
    nj = len(user)
    dl = jobs["download"]
    dls = pl.Series(dl)
    blocks.add(
        "download_clicked",
        user[dl],
        t["download"][dl],
        sess.filter(dls),
        page_path="/app",
        job_id=select(jobs["job_id"], dl),
    )
    blocks.add(
        "download_completed",
        user[dl],
        t["download"][dl] + gen.integers(SECOND, 4 * SECOND, nj)[dl],
        sess.filter(dls),
        job_id=select(jobs["job_id"], dl),
    )
    share = dl & (gen.random(nj) < config.share_rate)
    blocks.add(
        "share_clicked",
        user[share],
        t["download"][share] + 10 * SECOND,
        sess.filter(pl.Series(share)),
        job_id=select(jobs["job_id"], share),
    )
