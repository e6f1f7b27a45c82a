"""The retry policy of every asset that talks to the network (PostHog, Supabase, FlixBuddy, databases, APIs).

One constant for the whole project, sized together with the sinks' own retries
(``sinks/http_retry.py``): a request is tried at most ``TOTAL_ATTEMPTS`` times per
materialization, whichever layer retries it. A sink's ``DeliveryError`` for a
refused request (e.g. HTTP 400/401) is a non-retryable ``dg.Failure``, so this
policy does not re-run a step that no re-run could fix.
"""

from __future__ import annotations

import dagster as dg

from simulation_assets.sinks.retry_budget import STEP_RETRIES, STEP_RETRY_DELAY_SECONDS

NETWORK_RETRY = dg.RetryPolicy(
    max_retries=STEP_RETRIES,
    delay=STEP_RETRY_DELAY_SECONDS,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)
