"""The first week's jobs of a cohort: the first job, re-runs of disappointing results, the extra jobs.

Every uploader runs a first job right after activation; its input's difficulty decides S7 and
whether its result met the person's quality bar decides S8. A disappointing result is often re-run
on the same input within ten minutes (section 9C ``job_reprocessed_same_input``). People who reach
the aha moment want more jobs in their first week (more, and sooner, with higher intent: the first
of them often in the same session, a return within a day), as long as their free credits last;
early use is what sells the product, so it feeds S9; those who want another job without credits
and did not buy hit the paywall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort.draws import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    hex_ids,
    lognormal_ms,
    select,
)
from simulation_assets.core.funnel.cohort.frame import Jobs
from simulation_assets.core.funnel.cohort.jobs import (
    CONTENT_PROPS,
    DIFFICULTY_SUCCESS_EFFECT,
    JOB_PROPS,
    concat_jobs,
    job_attributes,
    run_jobs,
)
from simulation_assets.core.funnel.cohort.states import (
    FunnelPath,
    decide_aha,
    decide_first_job,
    decide_purchase,
)
from simulation_assets.core.funnel.cohort.traits import Traits, bernoulli
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.hazard import calibrated_probability

MAX_EXTRA_JOBS = 12
USAGE_PURCHASE_EFFECT = (
    1.0  # purchase logit of coming back within a day (0.6 of it for a second job right away)
)


@dataclass
class FirstWeekJobs:
    """Every job of the first week, their step times, and what they decided about each person."""

    jobs: Jobs
    times: dict[str, np.ndarray]
    path: FunnelPath
    """The path with S7 (first job done), S8 (aha) and S9 (purchase) decided."""
    first_download_ms: np.ndarray
    """Per clicker: when they first downloaded a result (0 without one)."""
    paywall_user: np.ndarray
    paywall_ms: np.ndarray
    paywall_session: pl.Series
    visit_user: np.ndarray
    visit_ms: np.ndarray


def first_week_jobs(
    gen: np.random.Generator,
    config: CohortConfig,
    path: FunnelPath,
    traits: Traits,
    t_activation: np.ndarray,
    t_login: np.ndarray,
    first_session: pl.Series,
) -> FirstWeekJobs:
    """Return the first job of every uploader, re-runs of disappointing results, and the extra week's jobs."""
    n = len(path.uploaded)
    idx = np.arange(n, dtype=np.int64)
    uploaders = idx[path.uploaded]
    # first job: its input's difficulty decides S7, its result's quality S8, both feed S9
    first = job_attributes(gen, len(uploaders))
    difficulty = np.zeros(n)
    difficulty[uploaders] = first["difficulty"]
    path = decide_first_job(path, config, difficulty)
    first.update(
        user=uploaders,
        t0=t_activation[uploaders] + lognormal_ms(gen, 30 * SECOND, 0.5, len(uploaders)),
        first=np.ones(len(uploaders), bool),
        reprocessed=np.zeros(len(uploaders), bool),
        success=path.job_completed[uploaders],
        session=first_session.gather(uploaders),
    )
    tf = run_jobs(gen, config, first, traits)
    satisfied = np.zeros(n, dtype=bool)
    satisfied[uploaders] = first["satisfied"]
    path = decide_aha(path, config, satisfied.astype(float))

    # a disappointing first result is often re-run on the same input within ten minutes
    again = first["disappointed"] & (gen.random(len(uploaders)) < config.reprocess_rate_if_dissatisfied)
    again &= config.free_credits >= 2
    rerun = {k: select(v, again) for k, v in first.items() if k in (*JOB_PROPS, *CONTENT_PROPS, "difficulty")}
    ru = uploaders[again]
    rerun.update(
        user=ru,
        t0=tf["outcome"][again] + (2 * MINUTE + gen.random(len(ru)) * 7 * MINUTE).astype(np.int64),
        first=np.zeros(len(ru), bool),
        reprocessed=np.ones(len(ru), bool),
        session=first_session.gather(ru),
        job_id=hex_ids(gen, len(ru), "job_"),
        upload_id=hex_ids(gen, len(ru), "upl_"),
    )
    rerun["success"] = gen.random(len(ru)) < calibrated_probability(
        config.rates.p_job_success, DIFFICULTY_SUCCESS_EFFECT * rerun["difficulty"]
    )
    tr = run_jobs(gen, config, rerun, traits)

    # the aha download: of the first result, or after the re-run (of the re-run's result when it worked)
    aha = path.aha
    first["download"] = aha[uploaders] & ~again
    rerun["download"] = aha[ru] & rerun["success"]
    late = aha[ru] & ~rerun["success"]  # re-run failed: they settle for the first result
    first["download"][np.flatnonzero(again)[late]] = True
    tf["download"][np.flatnonzero(again)[late]] = tr["download"][late]
    t_first_dl = np.zeros(n, dtype=np.int64)
    t_first_dl[uploaders[first["download"]]] = tf["download"][first["download"]]
    t_first_dl[ru[rerun["download"]]] = tr["download"][rerun["download"]]

    plan = _plan_extra_jobs(gen, config, path, traits, t_first_dl, t_login, first_session, ru)
    # using the product is what sells it: coming back within a day and a second job right away
    path = decide_purchase(path, config, traits, satisfied.astype(float), plan.usage)
    extra, tx, paywall = _run_extra_jobs(gen, config, path, traits, plan)
    jobs = concat_jobs(first, rerun, extra)
    times = {k: np.concatenate([tf[k], tr[k], tx[k]]) for k in tf}
    return FirstWeekJobs(
        jobs=jobs,
        times=times,
        path=path,
        first_download_ms=t_first_dl,
        paywall_user=paywall[0],
        paywall_ms=paywall[1],
        paywall_session=paywall[2],
        visit_user=plan.visit_user,
        visit_ms=plan.visit_ms,
    )


@dataclass
class _ExtraJobPlan:
    """The further first-week jobs each aha user wants, in time order (one entry per wanted job)."""

    user: np.ndarray
    t0: np.ndarray
    runs: np.ndarray
    """Within the person's free credits."""
    out_of_credits: np.ndarray
    """The first job wanted beyond them."""
    session: pl.Series
    usage: np.ndarray
    """Per clicker: purchase logit from early use (a return within a day, a second job right away)."""
    visit_user: np.ndarray
    visit_ms: np.ndarray
    """Returns within a day without a job: who and when."""


def _plan_extra_jobs(
    gen: np.random.Generator,
    config: CohortConfig,
    path: FunnelPath,
    traits: Traits,
    t_first_dl: np.ndarray,
    t_login: np.ndarray,
    first_session: pl.Series,
    reran: np.ndarray,
) -> _ExtraJobPlan:
    """Return when each aha user wants further jobs: more and sooner with intent, within their free credits."""
    n = len(path.aha)
    idx = np.arange(n, dtype=np.int64)
    intent = traits.intent
    lam = config.extra_jobs_first_week * np.exp(0.5 * intent - 0.125)
    wanted = np.minimum(gen.poisson(lam), MAX_EXTRA_JOBS) * path.aha
    credits = np.full(n, config.free_credits - 1)
    credits[reran] -= 1
    user = np.repeat(idx, wanted)
    start = t_first_dl + 30 * MINUTE
    end = np.maximum(t_login + 7 * DAY - 20 * MINUTE, start + MINUTE)
    # the keen come back sooner (about 1.5 days at average intent), later jobs spread over the week
    wait = (gen.exponential(1.0, n) * 1.5 * DAY * np.exp(-0.9 * intent)).astype(np.int64)
    first_back = np.minimum(start + wait, end)
    t0 = first_back[user] + (gen.random(len(user)) * (end - first_back)[user]).astype(np.int64)
    order = np.lexsort((t0, user))
    user, t0 = user[order], t0[order]
    rank = np.arange(len(user)) - np.searchsorted(user, user)
    t0[rank == 0] = first_back[user[rank == 0]]
    # the first extra job is often run right away, in the first session
    same_session = (rank == 0) & bernoulli(gen, -0.8 + 1.5 * intent[user])
    t0[same_session] = t_first_dl[user[same_session]] + (
        2 * MINUTE + gen.random(int(same_session.sum())) * 13 * MINUTE
    ).astype(np.int64)
    runs = rank < credits[user]
    sessions = hex_ids(gen, len(user), "sess_")
    if len(user):
        sessions = pl.select(
            pl.when(pl.lit(pl.Series(same_session))).then(first_session.gather(user)).otherwise(sessions)
        ).to_series()
    # some come back within a day just to look (the app, their results), without a job
    visit = path.aha & bernoulli(gen, -1.6 + 1.2 * intent)
    visit_ms = t_first_dl + ((2 + gen.random(n) * 20) * HOUR).astype(np.int64)
    visit &= visit_ms - t_login <= DAY
    back_within_day = visit.copy()
    back_within_day[user[runs & ~same_session & (t0 - t_login[user] <= DAY)]] = True
    right_away = np.zeros(n, dtype=bool)
    right_away[user[runs & same_session]] = True
    return _ExtraJobPlan(
        user=user,
        t0=t0,
        runs=runs,
        out_of_credits=rank == credits[user],
        session=sessions,
        usage=USAGE_PURCHASE_EFFECT * (back_within_day + 0.6 * right_away),
        visit_user=np.flatnonzero(visit),
        visit_ms=visit_ms[visit],
    )


def _run_extra_jobs(
    gen: np.random.Generator, config: CohortConfig, path: FunnelPath, traits: Traits, plan: _ExtraJobPlan
) -> tuple[Jobs, dict[str, np.ndarray], tuple[np.ndarray, np.ndarray, pl.Series]]:
    """Return the extra jobs that run, their times, and the paywall hits of those who did not buy."""
    runs = plan.runs
    blocked = plan.out_of_credits & ~path.purchased[plan.user]
    extra = job_attributes(gen, int(runs.sum()))
    eu = plan.user[runs]
    extra.update(
        user=eu,
        t0=plan.t0[runs],
        first=np.zeros(len(eu), bool),
        reprocessed=np.zeros(len(eu), bool),
        session=plan.session.filter(pl.Series(runs)),
    )
    extra["success"] = gen.random(len(eu)) < calibrated_probability(
        config.rates.p_job_success, DIFFICULTY_SUCCESS_EFFECT * extra["difficulty"]
    )
    tx = run_jobs(gen, config, extra, traits)
    p_dl = np.zeros(len(eu))
    p_dl[extra["success"]] = calibrated_probability(
        config.rates.p_download, 2.0 * extra["satisfied"][extra["success"]]
    )
    extra["download"] = gen.random(len(eu)) < p_dl
    paywall = (plan.user[blocked], plan.t0[blocked], plan.session.filter(pl.Series(blocked)))
    return extra, tx, paywall
