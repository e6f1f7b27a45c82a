"""The HogFlix data checks as pure functions of frames: each returns whether it passed and what it measured.

``defs/`` declares them as Dagster asset checks (``defs/hogflix_checks.py``)
and hands them the frames an asset has just written; tests hand them corrupted
frames and see them fail. Bands come from the domain configuration
(``LifecycleConfig``, ``TrafficConfig``), never from here.
"""

from simulation_assets.core.hogflix.checks.lifecycle import (
    active_share_near_target,
    persona_ids_unique,
    pool_within_band,
    signups_within_band,
)
from simulation_assets.core.hogflix.checks.outcome import (
    CheckOutcome,
    all_of,
)
from simulation_assets.core.hogflix.checks.realism import (
    churn_follows_the_plan,
    depth_by_pattern,
    genre_affinity_effect,
    payments_follow_the_plans,
    satisfaction_effects,
    seasons_show,
    session_profile,
    sessions_follow_the_persona,
)
from simulation_assets.core.hogflix.checks.traffic import (
    APP_ROWS_FROM_EVENTS,
    BROWSER_SESSION_SCHEMA,
    cleanup_touched_only_synthetic,
    event_uuid_hashes_unique,
    event_uuids_unique,
    every_browser_session_produced_events,
    mean_day_in_range,
    no_orphan_rows,
    per_day_in_range,
    persona_identities_persisted,
    questions_from_templates_within_cap,
    rows_match_events,
    session_ids_are_uuidv7_at_start,
    session_start_not_after_first_event,
)

__all__ = [
    "CheckOutcome",
    "all_of",
    "persona_ids_unique",
    "pool_within_band",
    "signups_within_band",
    "active_share_near_target",
    "depth_by_pattern",
    "satisfaction_effects",
    "payments_follow_the_plans",
    "seasons_show",
    "churn_follows_the_plan",
    "genre_affinity_effect",
    "session_profile",
    "sessions_follow_the_persona",
    "session_ids_are_uuidv7_at_start",
    "event_uuids_unique",
    "event_uuid_hashes_unique",
    "session_start_not_after_first_event",
    "per_day_in_range",
    "mean_day_in_range",
    "no_orphan_rows",
    "APP_ROWS_FROM_EVENTS",
    "rows_match_events",
    "questions_from_templates_within_cap",
    "cleanup_touched_only_synthetic",
    "BROWSER_SESSION_SCHEMA",
    "every_browser_session_produced_events",
    "persona_identities_persisted",
]
