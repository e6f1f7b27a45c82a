"""How often a request may be retried, in numbers only (no HTTP client imported).

``sinks/http_retry.py`` explains the policy and uses these numbers; ``defs/policies.py`` builds
Dagster's step retry policy from them without importing httpx or tenacity.
"""

STEP_RETRIES = 2  # re-runs of a failed network step by Dagster (defs/policies.NETWORK_RETRY)
STEP_RETRY_DELAY_SECONDS = 2.0  # first delay between step attempts (exponential, with jitter)
RETRIES_PER_STEP = 3  # re-tries of one request inside one step attempt
TOTAL_ATTEMPTS = (1 + RETRIES_PER_STEP) * (1 + STEP_RETRIES)
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
BUDGET_SECONDS = 300.0
