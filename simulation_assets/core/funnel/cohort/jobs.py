"""Category C, core value: the watermark-removal job machine, from upload to download.

Every job's input has a latent difficulty that shows in its content attributes (section
9B: resolution, duration, watermark position and platform, mode) and lowers its chance
of success and the quality of its result. A result below the person's quality bar
disappoints: it is rated down and rarely downloaded. Status polling grows with processing
time and impatience (9E). Which jobs run when is decided in ``first_week.py`` (the first
week) and :func:`returning_jobs` (returning sessions); :func:`emit_jobs` writes a batch of
jobs' events in the order they happen, including the retention (E) and reliability (F)
events a job triggers.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort import reliability, retention
from simulation_assets.core.funnel.cohort.draws import (
    MINUTE,
    SECOND,
    duration_bucket,
    file_size_bucket,
    hex_ids,
    labels,
    lognormal_ms,
    null_unless,
    select,
)
from simulation_assets.core.funnel.cohort.frame import EventBlocks, Jobs
from simulation_assets.core.funnel.cohort.traits import Traits, bernoulli, choose
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.hazard import calibrated_probability

PLATFORMS = ("tiktok", "sora", "runway", "unknown")
POSITIONS = ("edge", "corner", "center", "unknown")
RESOLUTIONS = ("720p", "1080p", "4k")
FAILURES = ("timeout", "no_watermark_found", "unsupported_codec", "storage_error", "gpu_out_of_memory")
FAILURE_P = (0.35, 0.25, 0.15, 0.15, 0.10)
DOWN_REASONS = ("artifacts", "blurry", "watermark_visible", "cropped_too_much")
DISAPPOINTMENT_GAP = 1.5  # a result disappoints when the quality bar exceeds its quality by this (~14 %)
DIFFICULTY_SUCCESS_EFFECT = -0.9  # logit of success per SD of input difficulty

# Normal quantiles that keep each attribute's share whatever the difficulty's weight.
_Q30, _Q90 = -0.5244, 1.2816

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
    """Return ``nj`` new inputs: a latent ``difficulty`` and the content attributes it shows in (2C, 9B)."""
    difficulty = gen.standard_normal(nj)
    noise = gen.standard_normal((4, nj))
    res = np.searchsorted([_Q30, _Q90], 0.7 * difficulty + 0.71 * noise[0])  # 30 % 720p, 60 % 1080p, 10 % 4k
    duration = np.round(gen.gamma(2.0, 12.0, nj) * np.exp(0.25 * difficulty) + 2, 1)
    rate = np.array([0.6e6, 1.5e6, 5e6])[res]  # bytes per second of video
    video_bytes = (duration * rate * gen.uniform(0.7, 1.3, nj)).astype(np.int64)
    unknown = 0.6 * difficulty + 0.8 * noise[1] > _Q90  # 10 % of inputs from an unrecognised platform
    platform = np.where(unknown, 3, gen.choice(3, size=nj, p=(0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9)))
    hidden = gen.random(nj) < 0.1
    spot = np.searchsorted([-0.43, 1.22], 0.7 * difficulty + 0.71 * noise[2])  # edge, corner, center
    position = np.where(hidden, 3, spot)
    inpaint = bernoulli(gen, -0.45 + 1.2 * (position == 2) + 0.6 * difficulty)
    confidence = np.where(
        unknown,
        gen.uniform(0.3, 0.7, nj),
        np.clip(0.9 - 0.04 * difficulty + 0.03 * noise[3], 0.5, 0.99),
    )
    return {
        "difficulty": difficulty,
        "mode": labels(("crop", "inpaint"), inpaint.astype(np.int64)),
        "detected_platform": labels(PLATFORMS, platform),
        "watermark_confidence": np.round(confidence, 3),
        "watermark_position": labels(POSITIONS, position),
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


def run_jobs(
    gen: np.random.Generator, config: CohortConfig, jobs: Jobs, traits: Traits
) -> dict[str, np.ndarray]:
    """Fill in how each job went (needs ``user``, ``t0``, ``success``); return the times of its steps.

    Adds processing and queue times, status polls, failure reason and code, retries, whether
    the result met the person's quality bar, their rating, support tickets and second
    download attempts.
    """
    nj = len(jobs["user"])
    who = jobs["user"]
    ok = jobs["success"]
    slow = gen.random(nj) < config.churn.slow_rate  # the template's "slow job" share
    proc = np.where(slow, lognormal_ms(gen, 200 * SECOND, 0.3, nj), lognormal_ms(gen, 55 * SECOND, 0.35, nj))
    res_factor = np.where(jobs["resolution_bucket"].to_numpy() == "4k", 1.6, 1.0)
    proc = (proc * (1 + jobs["duration_seconds"] / 120) * res_factor).astype(np.int64)
    jobs["processing_time_ms"] = proc
    jobs["queue_wait_ms"] = lognormal_ms(gen, 8 * SECOND, 0.7, nj)
    # The impatient poll more often: every 5 s at average patience (section 9E "anxiety indicator").
    poll_every_ms = 5000 * np.exp(0.7 * traits.patience[who])
    jobs["status_poll_count"] = (1 + (proc + jobs["queue_wait_ms"]) // poll_every_ms).astype(np.int64)
    jobs["retry_count"] = np.where(ok, 0, gen.integers(0, 3, nj))
    reason = gen.choice(len(FAILURES), size=nj, p=FAILURE_P)
    jobs["failure_reason"] = null_unless(~ok, labels(FAILURES, reason))
    jobs["error_code"] = null_unless(~ok, labels(tuple("E_" + r.upper() for r in FAILURES), reason))
    quality = -0.6 * jobs["difficulty"] + 0.8 * gen.standard_normal(nj)
    disappointed = ok & (traits.quality_bar[who] - quality > DISAPPOINTMENT_GAP)
    jobs["satisfied"] = ok & ~disappointed
    jobs["disappointed"] = disappointed
    rated = ok & (gen.random(nj) < np.where(disappointed, 0.25, 0.2))
    jobs["rated"] = rated
    jobs["result_rating"] = labels(("up", "down"), disappointed.astype(np.int64))
    crop = (jobs["mode"] == "crop").to_numpy()
    why = choose(gen, np.ones(len(DOWN_REASONS)), np.column_stack([np.zeros((nj, 3)), 1.5 * crop]))
    jobs["reason_code"] = null_unless(disappointed, labels(DOWN_REASONS, why))
    support_p = np.where(ok, np.where(disappointed, 0.12, 0.0), config.support_rate_per_failure)
    jobs["support"] = gen.random(nj) < support_p
    jobs["ticket_reason"] = labels((*FAILURES, "quality"), np.where(ok, len(FAILURES), reason))
    jobs["second_download"] = bernoulli(gen, -3.0 - 0.8 * traits.patience[who])
    upload_ms = (jobs["video_bytes"] / 2e6 * 1000).astype(np.int64) + 500
    t: dict[str, np.ndarray] = {"upload_started": jobs["t0"]}
    t["upload_completed"] = t["upload_started"] + upload_ms
    t["created"] = t["upload_completed"] + 800
    t["detected"] = t["created"] + gen.integers(SECOND, 3 * SECOND, nj)
    t["started"] = t["detected"] + jobs["queue_wait_ms"]
    t["outcome"] = t["started"] + proc
    t["download"] = t["outcome"] + lognormal_ms(gen, 20 * SECOND, 0.5, nj)
    return t


def concat_jobs(*batches: Jobs) -> Jobs:
    """Return job batches one after the other (the keys they all have)."""
    keys = [k for k in batches[0] if all(k in b for b in batches)]
    return {
        k: pl.concat([b[k] for b in batches])
        if isinstance(batches[0][k], pl.Series)
        else np.concatenate([b[k] for b in batches])
        for k in keys
    }


def returning_jobs(
    gen: np.random.Generator,
    config: CohortConfig,
    traits: Traits,
    user: np.ndarray,
    start_ms: np.ndarray,
    session: pl.Series,
    credits_before: np.ndarray,
    max_attempts: int = 5,
) -> tuple[Jobs, dict[str, np.ndarray]]:
    """Return the jobs of returning sessions and their times: each person tries until a job succeeds.

    Attempts succeed at the configured job success rate (harder inputs less often), so jobs
    of returning people succeed at that rate too (a geometric number of attempts has
    ``1 / p`` of them per success); the last allowed attempt always succeeds. A failed
    attempt's credit is refunded, so every attempt starts from the same balance.
    """
    batches: list[Jobs] = []
    timelines: list[dict[str, np.ndarray]] = []
    trying = np.arange(len(user))
    t0 = start_ms + 5 * MINUTE
    for attempt in range(max_attempts):
        if len(trying) == 0 and attempt > 0:
            break
        rj = job_attributes(gen, len(trying))
        ok = gen.random(len(trying)) < calibrated_probability(
            config.rates.p_job_success, DIFFICULTY_SUCCESS_EFFECT * rj["difficulty"]
        )
        if attempt == max_attempts - 1:
            ok[:] = True
        rj.update(
            user=user[trying],
            t0=t0[trying],
            first=np.zeros(len(trying), bool),
            reprocessed=np.zeros(len(trying), bool),
            success=ok,
            session=session.gather(trying),
            opens_session=np.full(len(trying), attempt == 0),
            credits_before=credits_before[trying],
            credits_after=credits_before[trying] - 1,
        )
        times = run_jobs(gen, config, rj, traits)
        p_dl = np.zeros(len(trying))
        p_dl[ok] = calibrated_probability(config.rates.p_download, 2.0 * rj["satisfied"][ok])
        rj["download"] = gen.random(len(trying)) < p_dl
        batches.append(rj)
        timelines.append(times)
        # the next attempt starts a few minutes after a failure
        t0 = t0.copy()
        t0[trying[~ok]] = times["outcome"][~ok] + (MINUTE + gen.random(int((~ok).sum())) * 3 * MINUTE).astype(
            np.int64
        )
        trying = trying[~ok]
    return concat_jobs(*batches), {k: np.concatenate([t[k] for t in timelines]) for k in timelines[0]}


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
    _emit_ratings(blocks, jobs, t["outcome"], sess)
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
    again = pl.Series(jobs["reprocessed"])
    blocks.add(
        "job_created",
        user,
        t["created"],
        sess,
        **base,
        **content,
        mode_selected=jobs["mode"],
        is_first_job=first,
        reprocessed_same_input=again,
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
        reprocessed_same_input=again,
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


def _emit_ratings(blocks: EventBlocks, jobs: Jobs, t_outcome: np.ndarray, sess: pl.Series) -> None:
    """Emit ``result_rated``: thumbs up, or down with a reason, half a minute after the result."""
    rated = jobs["rated"]
    blocks.add(
        "result_rated",
        jobs["user"][rated],
        t_outcome[rated] + 30 * SECOND,
        sess.filter(pl.Series(rated)),
        page_path="/app",
        job_id=select(jobs["job_id"], rated),
        result_rating=select(jobs["result_rating"], rated),
        reason_code=select(jobs["reason_code"], rated),
    )


def _emit_downloads(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    jobs: Jobs,
    t: dict[str, np.ndarray],
    sess: pl.Series,
) -> None:
    """Emit downloads (the aha moment the first time), second attempts of the impatient, share clicks."""
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
        download_attempt=1,
    )
    twice = dl & jobs["second_download"]
    blocks.add(
        "download_clicked",
        user[twice],
        t["download"][twice] + 2 * SECOND,
        sess.filter(pl.Series(twice)),
        page_path="/app",
        job_id=select(jobs["job_id"], twice),
        download_attempt=2,
    )
    blocks.add(
        "download_completed",
        user[dl],
        t["download"][dl] + gen.integers(3 * SECOND, 6 * SECOND, nj)[dl],
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
