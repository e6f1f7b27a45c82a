"""One day's ad clickers walking S0-S11 and emitting canonical events, category by category.

Every user's path is decided with whole-array draws (one uniform per transition), then
each event type is emitted as one block of rows for the users (or jobs, orders ...) it
applies to. Timestamps are chained with positive delays, so on every path landing < CTA
< signup < login < credits < upload < job < download, purchases fall within seven days
of login and returns within 30 days.

The steps below run in a fixed order: each draws from the cohort's one random stream,
so the order is part of the output (same seed and day, same bytes).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort import (
    account,
    acquisition,
    activation,
    credits,
    jobs,
    monetization,
    retention,
)
from simulation_assets.core.funnel.cohort.draws import DAY, MINUTE
from simulation_assets.core.funnel.cohort.frame import EventBlocks, assemble, empty_events_frame
from simulation_assets.core.funnel.cohort.states import walk_states
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.rng import stream

USER_TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "user": pl.Int64(),
    "anon_id": pl.String(),
    "user_id": pl.String(),
    "intent": pl.Float64(),
    **{
        name: pl.Boolean()
        for name in (
            "landed",
            "clicked_cta",
            "signed_up",
            "logged_in",
            "credits_granted",
            "uploaded",
            "job_completed",
            "aha",
            "purchased",
        )
    },
    "purchase_probability": pl.Float64(),
    "churn_hazard": pl.Float64(),
    "retained": pl.Boolean(),
    "churned": pl.Boolean(),
    "credits_left_day7": pl.Int64(),
}
"""Columns of a cohort's ground-truth users frame (one row per ad clicker)."""


@dataclass
class Cohort:
    """A simulated daily cohort: the events and the users' ground truth (for checks and tests)."""

    events: pl.DataFrame
    users: pl.DataFrame
    impressions: int


def cohort_seed_keys(day: dt.date) -> tuple[object, ...]:
    """Return the rng keys of a day's cohort."""
    return ("funnel", "cohort_events", day.isoformat())


def simulate_cohort_events(
    day: dt.date, config: CohortConfig, seed: int, impressions: int | None = None
) -> Cohort:
    """Return the events and users of the cohort that clicked an ad on ``day`` (UTC).

    ``impressions`` defaults to ``config.impressions_per_day``; clicks are Binomial(impressions, ctr).
    """
    n_impr = config.impressions_per_day if impressions is None else impressions
    if n_impr < 0:
        raise ValueError(f"impressions must be >= 0, got {n_impr}")
    gen = stream(seed, *cohort_seed_keys(day))
    n = int(gen.binomial(n_impr, config.rates.ctr))
    if n == 0:
        return Cohort(
            events=empty_events_frame(), users=pl.DataFrame(schema=USER_TRUTH_SCHEMA), impressions=n_impr
        )
    day_ms = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
    blocks = EventBlocks()

    # who the clickers are, and how far each gets in the funnel (sections 4 and 5)
    clickers = acquisition.draw_clickers(gen, n)
    path = walk_states(gen, n, config, clickers.intent)

    # A) acquisition, with the consent banner (G) answered on the landing page
    landing = acquisition.emit_landing(blocks, gen, day_ms, path, clickers)
    account.emit_consent(
        blocks, gen, config, path.landed, landing.land, landing.dwell, clickers.first_session
    )
    acquisition.emit_browsing(blocks, gen, config, path, clickers, landing)

    # B) activation
    times = activation.emit_activation(blocks, gen, config, path, landing.cta, clickers.first_session)
    day7 = times.login + 7 * DAY

    # C) the first week's jobs, paid for from the credit ledger (purchases add credits)
    week = jobs.first_week_jobs(
        gen, config, path, clickers.intent, times.activation, times.login, clickers.first_session
    )
    purchases = monetization.draw_first_purchases(
        gen, config, path.purchased, week.first_download_ms, times.login
    )
    balances = credits.credit_balances(
        n,
        path.credited,
        times.credit,
        config.free_credits,
        week.jobs["user"],
        week.times["created"],
        week.jobs["success"],
        week.times["outcome"],
        purchases.buyers,
        purchases.paid_ms,
        purchases.credits_bought,
        day7,
    )
    week.jobs["credits_after"] = balances.after_job
    week.jobs["credits_before"] = balances.after_job + 1
    jobs.emit_jobs(blocks, gen, week.jobs, week.times, config, returning=False)

    # E) churn hazard from the first week (section 6) decides who comes back
    outcome = retention.decide_retention(
        gen, config, path, week.jobs, week.times["outcome"], balances.at_day7, day7
    )

    # D) the purchase machine: first purchase within 7 days of login, then renewals, cancels, refunds
    monetization.emit_purchases(
        blocks, gen, config, purchases, balances.at_day7, outcome.retained, outcome.churned, times.login
    )

    # E) returning usage within 30 days: one returning session with a successful job
    _emit_returning_usage(
        blocks, gen, config, outcome.retained, day7, week.first_download_ms, times.login, balances.at_day7
    )

    # G) account control for a few churned users
    account.emit_account_deletions(blocks, gen, config, outcome.churned, path.logged_in, path.purchased, day7)

    events = assemble(blocks, clickers.attribution, times.login, path.logged_in, config.environment, gen)
    truth = pl.DataFrame(
        {
            "user": np.arange(n, dtype=np.int64),
            "anon_id": clickers.anon_id,
            "user_id": clickers.user_id,
            "intent": clickers.intent,
            "landed": path.landed,
            "clicked_cta": path.clicked_cta,
            "signed_up": path.signed_up,
            "logged_in": path.logged_in,
            "credits_granted": path.credited,
            "uploaded": path.uploaded,
            "job_completed": path.job_completed,
            "aha": path.aha,
            "purchased": path.purchased,
            "purchase_probability": np.where(path.aha, path.purchase_probability, 0.0),
            "churn_hazard": np.where(path.aha, outcome.hazard, np.nan),
            "retained": outcome.retained,
            "churned": outcome.churned,
            "credits_left_day7": balances.at_day7,
        }
    )
    return Cohort(events=events, users=truth, impressions=n_impr)


def _emit_returning_usage(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    retained: np.ndarray,
    day7: np.ndarray,
    first_download_ms: np.ndarray,
    t_login: np.ndarray,
    credits_left: np.ndarray,
) -> None:
    """Emit each retained person's return session: a top-up when out of credits (D), then one job (C)."""
    sessions = retention.emit_return_sessions(
        blocks, gen, retained, day7, np.maximum(first_download_ms, t_login)
    )
    need_topup = credits_left[sessions.user] <= 0
    pack = config.plans[0]
    monetization.emit_order(
        blocks,
        gen,
        "topup_purchased",
        sessions.user[need_topup],
        sessions.start_ms[need_topup] + MINUTE,
        sessions.session.filter(need_topup),
        pack,
        ltv=None,
    )
    balance = credits_left[sessions.user] + np.where(need_topup, pack.credits, 0)
    job_batch, times = jobs.returning_jobs(gen, config, sessions.user, sessions.start_ms, balance)
    jobs.emit_jobs(blocks, gen, job_batch, times, config, returning=True, session=sessions.session)
