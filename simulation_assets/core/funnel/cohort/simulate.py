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
    first_week,
    jobs,
    monetization,
    retention,
)
from simulation_assets.core.funnel.cohort.draws import DAY, MINUTE, SECOND, hex_ids
from simulation_assets.core.funnel.cohort.frame import EventBlocks, assemble, empty_events_frame
from simulation_assets.core.funnel.cohort.states import walk_states
from simulation_assets.core.funnel.cohort.traits import Traits
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.rng import stream

USER_TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "user": pl.Int64(),
    "anon_id": pl.String(),
    "user_id": pl.String(),
    **{name: pl.Float64() for name in ("intent", "price_sensitivity", "patience", "quality_bar")},
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
    "churn_probability": pl.Float64(),
    "retained": pl.Boolean(),
    "churned": pl.Boolean(),
    "active_month_2": pl.Boolean(),
    "active_month_3": pl.Boolean(),
    "credits_left_day7": pl.Int64(),
    "first_plan": pl.String(),
}
"""Columns of a cohort's ground-truth users frame (one row per ad clicker): traits, path, probabilities."""


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

    # who the clickers are (attribution, latent traits), and how far each gets up to the upload (sections 4, 5)
    clickers = acquisition.draw_clickers(gen, n, config.product)
    traits = clickers.traits
    path = walk_states(gen, n, config)

    # A) acquisition, with the consent banner (G) answered on the landing page
    landing = acquisition.emit_landing(blocks, gen, day_ms, path, clickers)
    account.emit_consent(
        blocks, gen, config, path.landed, landing.land, landing.dwell, clickers.first_session
    )
    acquisition.emit_browsing(blocks, gen, config, path, clickers, landing)

    # B) activation
    times = activation.emit_activation(blocks, gen, config, path, landing.cta, clickers.first_session)
    day7 = times.login + 7 * DAY

    # C) the first week's jobs; they decide S7 (first job done), S8 (aha) and S9 (purchase)
    week = first_week.first_week_jobs(
        gen, config, path, traits, times.activation, times.login, clickers.first_session
    )
    path = week.path
    purchases = monetization.draw_first_purchases(
        gen, config, path.purchased, traits, week.first_download_ms, times.login
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
    retention.emit_paywall(
        blocks,
        week.paywall_user,
        week.paywall_ms,
        week.paywall_session,
        np.zeros(len(week.paywall_user), np.int64),
    )
    blocks.add(
        "upload_view",
        week.visit_user,
        week.visit_ms,
        hex_ids(gen, len(week.visit_user), "sess_"),
        page_path="/app",
    )

    # E) churn hazard from the first week (section 6) decides who comes back, month by month
    outcome = retention.decide_retention(
        gen, config, path, traits, week.jobs, week.times["outcome"], balances.at_day7, day7
    )

    # D) the purchase machine: first purchase within 7 days of login, then renewals, plan changes, cancels
    later_credits = monetization.emit_purchases(
        blocks, gen, config, purchases, traits, balances.at_day7, outcome, times.login
    )

    # E) returning usage: a session with a successful job in every active month
    _emit_returning_usage(
        blocks,
        gen,
        config,
        traits,
        outcome,
        week.first_download_ms,
        times.login,
        balances.at_day7,
        later_credits,
    )

    # G) account control: later consent changes, exports and deletions
    privacy = (clickers.ad_angle == acquisition.ANGLES.index("privacy")).astype(float)
    account.emit_account_control(
        blocks, gen, config, outcome.churned, path.logged_in, path.purchased, privacy, times.login
    )

    events = assemble(blocks, clickers.attribution, times.login, path.logged_in, config.environment, gen)
    first_plan = np.full(n, None, dtype=object)
    first_plan[purchases.buyers] = [config.plans[k].sku for k in purchases.plan_index]
    truth = pl.DataFrame(
        {
            "user": np.arange(n, dtype=np.int64),
            "anon_id": clickers.anon_id,
            "user_id": clickers.user_id,
            "intent": traits.intent,
            "price_sensitivity": traits.price_sensitivity,
            "patience": traits.patience,
            "quality_bar": traits.quality_bar,
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
            "churn_probability": np.where(path.aha, outcome.churn_probability, np.nan),
            "retained": outcome.retained,
            "churned": outcome.churned,
            "active_month_2": outcome.active[1],
            "active_month_3": outcome.active[2],
            "credits_left_day7": balances.at_day7,
            "first_plan": pl.Series(first_plan.tolist(), dtype=pl.String),
        },
        schema=USER_TRUTH_SCHEMA,
    )
    return Cohort(events=events, users=truth, impressions=n_impr)


def _emit_returning_usage(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    traits: Traits,
    outcome: retention.Retention,
    first_download_ms: np.ndarray,
    t_login: np.ndarray,
    credits_left: np.ndarray,
    later_credits: dict[int, np.ndarray],
) -> None:
    """Emit each active person's monthly return: the paywall and a pack when out of credits (D), then a job (C)."""
    balance = credits_left.copy()
    last_seen = np.maximum(first_download_ms, t_login)
    pack = config.pack()
    for month in retention.MONTHS:
        if month in later_credits:
            balance += later_credits[month]
        sessions = retention.emit_return_sessions(
            blocks, gen, outcome.active[month - 1], month, t_login, last_seen
        )
        user = sessions.user
        broke = balance[user] <= 0
        retention.emit_paywall(
            blocks,
            user[broke],
            sessions.start_ms[broke] + 30 * SECOND,
            sessions.session.filter(broke),
            balance[user][broke],
        )
        monetization.emit_order(
            blocks,
            gen,
            "topup_purchased",
            user[broke],
            sessions.start_ms[broke] + MINUTE,
            sessions.session.filter(broke),
            pack,
            ltv=None,
        )
        balance[user[broke]] += pack.credits
        job_batch, times = jobs.returning_jobs(
            gen, config, traits, user, sessions.start_ms, sessions.session, balance[user]
        )
        jobs.emit_jobs(blocks, gen, job_batch, times, config, returning=True)
        balance[user] -= 1
        last_seen[user] = sessions.start_ms
