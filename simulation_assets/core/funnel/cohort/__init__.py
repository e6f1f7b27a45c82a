"""Event-level cohorts: one day's ad clickers walking S0-S11 and emitting canonical events.

One module per taxonomy category, so a rule of the tracking plan is found by its event's name:

=====================  ==============================================================
``acquisition``        A: who clicked (attribution, intent), landing, pricing, FAQ, CTA
``activation``         B: signup, auth e-mail loop, login (identity stitching), credits
``jobs``               C: the job machine, upload to download, refunds of failed jobs
``monetization``       D: checkout, purchases, subscriptions, renewals, refunds, top-ups
``retention``          E: churn hazard, return sessions, notifications, low-credit prompts
``reliability``        F: latency buckets, errors, timeouts, support tickets
``account``            G: cookie consent, data export, account deletion
=====================  ==============================================================

``traits`` draws each clicker's latent intent, price sensitivity, patience and quality bar;
``states`` walks the state machine; ``first_week`` decides the first week's jobs (and with
them S7, S8 and S9); ``credits`` keeps the credit ledger; ``frame`` turns blocks of events into
the events frame; ``draws`` holds the vectorized random helpers; ``simulate`` runs the steps
in their fixed order.
"""

from simulation_assets.core.funnel.cohort.frame import conform, empty_events_frame, event_columns
from simulation_assets.core.funnel.cohort.simulate import (
    USER_TRUTH_SCHEMA,
    Cohort,
    cohort_seed_keys,
    simulate_cohort_events,
)

__all__ = [
    "USER_TRUTH_SCHEMA",
    "Cohort",
    "cohort_seed_keys",
    "conform",
    "empty_events_frame",
    "event_columns",
    "simulate_cohort_events",
]
