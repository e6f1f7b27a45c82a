"""Every HogFlix asset check, declared once: its asset, what it guards, and whether it blocks.

The computation of each check is a pure function in ``core/hogflix/checks/``;
the assets call it on the frames they have just written and return its outcome
through ``result``. A blocking check stops the assets downstream of a failing
one in the same run: those whose failure makes downstream data wrong (a
duplicated persona id or event uuid becomes duplicated sessions and app-row
keys, a session id PostHog rejects leaves its events without a session, an
orphaned app row breaks the chat rows written after it).
"""

from __future__ import annotations

import dagster as dg

from simulation_assets.core.hogflix.checks import CheckOutcome

# name -> (asset, description, blocking)
HOGFLIX_CHECKS: dict[str, tuple[str, str, bool]] = {
    "persona_ids_unique": (
        "hogflix_personas",
        "No persona (persona_number, distinct_id) appears twice on a day.",
        True,
    ),
    "pool_within_band": ("hogflix_daily_metrics", "Every day's pool is within 380-420 (scaled).", False),
    "signups_within_band": ("hogflix_daily_metrics", "Every day has 2-5 signups (scaled).", False),
    "active_share_near_target": (
        "hogflix_daily_metrics",
        "The mean ACTIVE share of the run is within the configured band (60-70 %); warns.",
        False,
    ),
    "depth_by_pattern": (
        "hogflix_daily_metrics",
        "Videos per visit on each line of the viewing rule (pattern and state) are within its range over the "
        "last 90 days; WEEKEND weekends at least twice as deep as weekdays.",
        False,
    ),
    "satisfaction_effects": (
        "hogflix_daily_metrics",
        "The least satisfied personas lose interest at the rate the lapse rule gives them against the most "
        "satisfied (within 3 standard errors); upgraders are more satisfied than downgraders (last 90 days).",
        False,
    ),
    "payments_follow_the_plans": (
        "hogflix_daily_metrics",
        "Failed monthly charges match the plan mix's configured chance; payment churn never exceeds failures "
        "(last 90 days).",
        False,
    ),
    "seasons_show": (
        "hogflix_daily_metrics",
        "Over the last year: weekends watched deeper than Monday-Wednesday (3+ standard errors); the "
        "configured holidays and yearly wave move the visit rate at least 40 % as much as configured, "
        "judged when the window separates them from noise (else reported).",
        False,
    ),
    "churn_follows_the_plan": (
        "hogflix_daily_metrics",
        "Over the last year: personas 30+ days away churn at rates that follow the plans' configured "
        "multipliers (response at least 0.4), judged when the window separates them from noise (else reported).",
        False,
    ),
    "session_ids_are_uuidv7_at_start": (
        "hogflix_sessions",
        "Every $session_id is a UUIDv7 whose time is the session start.",
        True,
    ),
    "event_uuids_unique": ("hogflix_events", "No event uuid appears twice in the run.", True),
    "session_start_not_after_first_event": (
        "hogflix_events",
        "No session id carries a time later than its session's first event.",
        True,
    ),
    "no_orphan_rows": (
        "hogflix_app_rows",
        "No synthetic app row points at a missing profile or conversation (real rows are not looked at).",
        True,
    ),
    "rows_match_events": ("hogflix_app_rows", "Each app table has one row per event it records.", False),
    "questions_from_templates_within_cap": (
        "hogflix_flixbuddy_conversations",
        "Questions come from the eight templates and the follow-ups, every conversation has its configured "
        "2-6 messages, and the endpoint stays within its per-run cap.",
        False,
    ),
    "sessions_per_day_in_range": ("hogflix_traffic_daily", "30-150 sessions a day (scaled).", False),
    "events_per_day_in_range": (
        "hogflix_traffic_daily",
        "5,000-10,000 events on the mean day (scaled); every day within 20 % of that.",
        False,
    ),
    "event_uuids_unique_per_day": ("hogflix_traffic_daily", "No event uuid appears twice in a day.", False),
    "sessions_follow_the_persona": (
        "hogflix_traffic_daily",
        "The busiest hour in each persona's own time zone is in the evening; personas keep their primary "
        "device; the second-device share is the configured one.",
        False,
    ),
    "genre_affinity_effect": (
        "hogflix_traffic_daily",
        "A persona's favourite genre takes more of its starts, is watched further and rated higher.",
        False,
    ),
    "cleanup_touched_only_synthetic": (
        "hogflix_churn_cleanup",
        "Non-synthetic rows and auth users are untouched by the churn cleanup.",
        False,
    ),
    "only_synthetic_rows_deleted": (
        "hogflix_synthetic_cleanup",
        "Non-synthetic rows and auth users are untouched by the cleanup of all synthetic data.",
        False,
    ),
    "every_browser_session_produced_events": (
        "hogflix_browser_sessions",
        "Every browser session succeeded and its events arrived.",
        False,
    ),
    "persona_identities_persisted": (
        "hogflix_browser_sessions",
        "posthog-js kept each persona's identity and device between sessions.",
        False,
    ),
}


def check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    """Return the check specs of ``asset``, in declaration order."""
    return [
        dg.AssetCheckSpec(name, asset=owner, description=description, blocking=blocking)
        for name, (owner, description, blocking) in HOGFLIX_CHECKS.items()
        if owner == asset
    ]


def result(name: str, outcome: CheckOutcome) -> dg.AssetCheckResult:
    """Return ``outcome`` as the Dagster result of check ``name`` (a warning when the check only warns)."""
    severity = dg.AssetCheckSeverity.WARN if outcome.warn_only else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(
        check_name=name,
        passed=outcome.passed,
        severity=severity,
        metadata={k: _metadata_value(v) for k, v in outcome.metadata.items()},
    )


def _metadata_value(value: object) -> object:
    if isinstance(value, dict | list | tuple):
        return dg.MetadataValue.json(value if not isinstance(value, tuple) else list(value))
    if value is None:
        return dg.MetadataValue.null()
    return value
