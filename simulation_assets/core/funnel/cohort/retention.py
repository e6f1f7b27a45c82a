"""Category E, retention: who comes back (the churn hazard of section 6), return sessions, job prompts.

A person who reached the aha moment is retained with probability
``(1 - hazard) * p_repeat_30d``, the template's rule with the first-week hazard in place
of its additive churn; retained people open a returning session between day 8 and day
29 after login, and stay active in each following 30-day month with probability
``p_return_next_month`` (once lapsed, they are gone). A returning person without credits
hits the paywall first. Per job, completed jobs notify the user and low balances prompt a
top-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort.draws import DAY, MINUTE, SECOND, hex_ids, pick, select
from simulation_assets.core.funnel.cohort.frame import EventBlocks, Jobs
from simulation_assets.core.funnel.cohort.states import FunnelPath
from simulation_assets.core.funnel.cohort.traits import Traits
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.hazard import churn_probability

MONTHS = (1, 2, 3)
CHANNELS = ("email", "direct", "ad")
CHANNEL_P = (0.35, 0.5, 0.15)


@dataclass(frozen=True)
class Retention:
    """The 30-day outcome of every clicker, and who stays active in months 2 and 3 (one entry per clicker)."""

    hazard: np.ndarray
    """P(churn within 30 days) from the first week (0 for people without a job)."""
    churn_probability: np.ndarray
    """P(not retained) of people who reached the aha moment: 1 - (1 - hazard) * p_repeat_30d."""
    retained: np.ndarray
    churned: np.ndarray
    active: tuple[np.ndarray, np.ndarray, np.ndarray]
    """Active (a returning session with a job) in months 1, 2 and 3 after the first week."""


def decide_retention(
    gen: np.random.Generator,
    config: CohortConfig,
    path: FunnelPath,
    traits: Traits,
    jobs: Jobs,
    t_outcome: np.ndarray,
    credits_left: np.ndarray,
    day7: np.ndarray,
) -> Retention:
    """Return each clicker's churn hazard and whether they are retained (S10) or churned (S11)."""
    n = len(path.aha)
    first_week = (
        pl.DataFrame(
            {
                "user": jobs["user"],
                "t": t_outcome,
                "fail": ~jobs["success"],
                "proc_min": jobs["processing_time_ms"] / 60_000,
                "ticket": jobs["support"],
                "disappointed": jobs["disappointed"],
            }
        )
        .group_by("user")
        .agg(
            pl.col("t").filter(~pl.col("fail")).max().alias("last_ok"),
            pl.col("t").max().alias("last_any"),
            pl.col("fail").mean().alias("fail_rate"),
            pl.col("proc_min").mean(),
            pl.col("ticket").sum(),
            pl.col("disappointed").sum(),
        )
    )
    days_since = np.zeros(n)
    fail_rate = np.zeros(n)
    proc_min = np.zeros(n)
    tickets = np.zeros(n, dtype=np.int64)
    disappointed = np.zeros(n, dtype=np.int64)
    who = first_week["user"].to_numpy()
    last_job = first_week["last_ok"].fill_null(first_week["last_any"]).to_numpy()
    days_since[who] = np.clip((day7[who] - last_job) / DAY, 0, 7)
    fail_rate[who] = first_week["fail_rate"].to_numpy()
    proc_min[who] = first_week["proc_min"].to_numpy()
    tickets[who] = first_week["ticket"].to_numpy()
    disappointed[who] = first_week["disappointed"].to_numpy()
    hazard = churn_probability(
        config.hazard, days_since, fail_rate, proc_min, credits_left, tickets, disappointed, -traits.patience
    )
    repeat = config.rates.p_repeat_30d
    retained = path.aha & (path.retention_draw < (1.0 - hazard)) & (gen.random(n) < repeat)
    active2 = retained & (gen.random(n) < config.p_return_next_month)
    active3 = active2 & (gen.random(n) < config.p_return_next_month)
    return Retention(
        hazard=hazard,
        churn_probability=np.where(path.aha, 1.0 - (1.0 - hazard) * repeat, 1.0),
        retained=retained,
        churned=path.uploaded & ~retained,
        active=(retained, active2, active3),
    )


@dataclass(frozen=True)
class ReturnSessions:
    """The returning sessions of one month."""

    user: np.ndarray
    start_ms: np.ndarray
    session: pl.Series


def emit_return_sessions(
    blocks: EventBlocks,
    gen: np.random.Generator,
    active: np.ndarray,
    month: int,
    t_login: np.ndarray,
    last_seen: np.ndarray,
) -> ReturnSessions:
    """Emit one ``return_session`` per active person in ``month``: between days 8-29, 38-59 or 68-89 after login."""
    returning = np.arange(len(active), dtype=np.int64)[active]
    day = 7 + 30 * (month - 1) + 1 + gen.random(len(returning)) * 21
    t_ret = t_login[returning] + (day * DAY).astype(np.int64)
    sessions = hex_ids(gen, len(returning), "sess_")
    blocks.add(
        "return_session",
        returning,
        t_ret,
        sessions,
        page_path="/app",
        days_since_last_visit=((t_ret - last_seen[returning]) // DAY),
        account_age_days=((t_ret - t_login[returning]) // DAY),
        last_touch_channel=pick(gen, CHANNELS, CHANNEL_P, len(returning)),
    )
    return ReturnSessions(user=returning, start_ms=t_ret, session=sessions)


def emit_paywall(
    blocks: EventBlocks, user: np.ndarray, t_ms: np.ndarray, session: pl.Series, balance: np.ndarray
) -> None:
    """Emit ``paywall_view``: a person who wants another job and has no credits left."""
    blocks.add(
        "paywall_view",
        user,
        t_ms,
        session,
        page_path="/app",
        credits_balance_at_checkout=balance,
    )


def emit_returning_upload(
    blocks: EventBlocks, jobs: Jobs, t_upload_started: np.ndarray, session: pl.Series
) -> None:
    """Emit ``upload_returning_user`` just before the first upload of a returning session."""
    opens = jobs["opens_session"]
    blocks.add(
        "upload_returning_user",
        jobs["user"][opens],
        t_upload_started[opens] - 200,
        session.filter(pl.Series(opens)),
        upload_id=select(jobs["upload_id"], opens),
    )


def emit_job_notifications(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    jobs: Jobs,
    t_outcome: np.ndarray,
    session: pl.Series,
    returning: bool,
) -> None:
    """Emit the returning user's completed job and the job-complete notifications (sent, clicked)."""
    ok = jobs["success"]
    user = jobs["user"]
    nj = len(user)
    if returning:
        blocks.add(
            "job_completed_returning_user",
            user[ok],
            t_outcome[ok] + 10,
            session.filter(pl.Series(ok)),
            job_id=select(jobs["job_id"], ok),
        )
    notify = ok & (gen.random(nj) < 0.9)
    blocks.add(
        "notification_sent",
        user[notify],
        t_outcome[notify] + SECOND,
        session.filter(pl.Series(notify)),
        job_id=select(jobs["job_id"], notify),
    )
    clicked = notify & (gen.random(nj) < config.notification_click_rate) & ~jobs["download"]
    blocks.add(
        "notification_clicked",
        user[clicked],
        t_outcome[clicked] + 10 * MINUTE,
        session.filter(pl.Series(clicked)),
        job_id=select(jobs["job_id"], clicked),
    )


def emit_low_credit_prompts(
    blocks: EventBlocks, gen: np.random.Generator, jobs: Jobs, t_outcome: np.ndarray, session: pl.Series
) -> None:
    """Emit the low-credit warning after a job leaves at most one credit, and some top-up clicks."""
    ok = jobs["success"]
    user = jobs["user"]
    nj = len(user)
    credits_after = jobs["credits_after"]
    low = ok & (credits_after <= 1)
    blocks.add(
        "low_credits_warning_shown",
        user[low],
        t_outcome[low] + 3 * SECOND,
        session.filter(pl.Series(low)),
        page_path="/app",
        credits_after=credits_after[low],
    )
    topup = low & (gen.random(nj) < 0.3)
    blocks.add(
        "low_credits_topup_clicked",
        user[topup],
        t_outcome[topup] + 8 * SECOND,
        session.filter(pl.Series(topup)),
        page_path="/app",
        credits_after=credits_after[topup],
    )
