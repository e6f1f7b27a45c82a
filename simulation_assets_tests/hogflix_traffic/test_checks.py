"""Every HogFlix check passes on the simulator's data and fails on the same data corrupted the way it guards against."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from simulation_assets.core.hogflix import checks
from simulation_assets.core.hogflix.app_rows import app_rows
from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.flixbuddy import conversation_turns, conversations
from simulation_assets.core.hogflix.frames import to_frame
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.metrics import daily_metrics, traffic_day
from simulation_assets.core.hogflix.persona_state import day_number
from simulation_assets.core.hogflix.sessions import day_sessions
from simulation_assets.core.hogflix.traffic_config import (
    FLIXBUDDY_FOLLOW_UPS,
    FLIXBUDDY_QUESTIONS,
    TrafficConfig,
)
from simulation_assets.defs.hogflix import build_defs
from simulation_assets.defs.hogflix_checks import HOGFLIX_CHECKS
from simulation_assets_tests.hogflix_traffic.conftest import SEED

CFG = LifecycleConfig()


@pytest.fixture(scope="module")
def metrics() -> pl.DataFrame:
    """Daily metrics of 40 days at pool 400."""
    start = day_number(dt.date(2026, 3, 1))
    state = initial_state(CFG, SEED, start)
    rows = []
    for day in range(start, start + 40):
        state = step_day(state, day, CFG, SEED)
        rows.append(daily_metrics(to_frame(state), dt.date(2026, 3, 1) + dt.timedelta(days=day - start)))
    return pl.concat(rows)


def _set(frame: pl.DataFrame, column: str, row: int, value: object) -> pl.DataFrame:
    """Return ``frame`` with one cell replaced."""
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=frame[column].dtype))


def test_persona_ids_unique_fails_on_a_duplicated_persona(persona_days) -> None:  # noqa: ANN001
    day = persona_days[0]
    assert checks.persona_ids_unique(day).passed
    doubled = pl.concat([day, day.head(1)])
    outcome = checks.persona_ids_unique(doubled)
    assert not outcome.passed and outcome.metadata["duplicate_ids"] == 1
    # The same persona on two different days is not a duplicate.
    assert checks.persona_ids_unique(pl.concat(persona_days[:2])).passed


def test_persona_ids_unique_on_a_days_table_keyed_by_number(persona_days) -> None:  # noqa: ANN001
    """The day's table as the lifecycle stores it (rising numbers, judged in one pass), a repeated number
    next to itself, and the same table out of order (judged by counting)."""
    day = persona_days[0].drop("distinct_id", "email", "user_id", "profile_id", "source")
    assert checks.persona_ids_unique(day).passed
    repeated = pl.concat([day.head(3), day.slice(2)])  # row 2 twice, still in order
    outcome = checks.persona_ids_unique(repeated)
    assert not outcome.passed and outcome.metadata["duplicate_ids"] == 1
    assert checks.persona_ids_unique(day.reverse()).passed
    assert not checks.persona_ids_unique(repeated.reverse()).passed


def test_pool_and_signup_bands_fail_on_a_day_outside_them(metrics: pl.DataFrame) -> None:
    assert checks.pool_within_band(metrics, CFG).passed
    assert checks.signups_within_band(metrics, CFG).passed
    high = checks.pool_within_band(_set(metrics, "pool_size", 5, 421), CFG)
    assert not high.passed and high.metadata["days_outside"] == 1 and high.metadata["max"] == 421
    assert not checks.pool_within_band(_set(metrics, "pool_size", 0, 379), CFG).passed
    assert not checks.signups_within_band(_set(metrics, "new_signups", 3, 1), CFG).passed
    assert not checks.signups_within_band(_set(metrics, "new_signups", 3, 6), CFG).passed
    # The bands come from the configuration: at pool 4,000 the same numbers are out of band.
    assert not checks.pool_within_band(metrics, LifecycleConfig(persona_pool=4_000)).passed


def test_active_share_near_target_warns_below_or_above_the_configured_band(metrics: pl.DataFrame) -> None:
    def with_share(share: float) -> pl.DataFrame:
        return metrics.with_columns(
            (pl.col("pool_size") * share).round().cast(pl.Int32).alias("state_ACTIVE")
        )

    outcome = checks.active_share_near_target(with_share(0.65), CFG)
    assert (
        outcome.passed
        and outcome.warn_only
        and outcome.metadata["mean_share"] == pytest.approx(0.65, abs=0.002)
    )
    assert not checks.active_share_near_target(with_share(0.58), CFG).passed
    assert not checks.active_share_near_target(with_share(0.72), CFG).passed
    assert not checks.active_share_near_target(
        with_share(0.65), LifecycleConfig(active_share_band=(0.66, 0.7))
    ).passed


def test_session_ids_fail_when_not_uuidv7_or_not_at_the_session_start(day_traffic) -> None:  # noqa: ANN001
    _, sessions, _ = day_traffic
    assert checks.session_ids_are_uuidv7_at_start(sessions).passed
    v4 = "8c0c6cbe-7d3c-4b6f-9f0e-0d1c2b3a4f5e"
    assert not checks.session_ids_are_uuidv7_at_start(_set(sessions, "session_id", 0, v4)).passed
    later = sessions.with_columns(pl.col("session_start_at") + pl.duration(milliseconds=1))
    outcome = checks.session_ids_are_uuidv7_at_start(later)
    assert not outcome.passed and outcome.metadata["bad_session_ids"] == sessions.height


def test_event_uuids_unique_fails_on_a_repeated_uuid(day_traffic) -> None:  # noqa: ANN001
    _, _, events = day_traffic
    assert checks.event_uuids_unique(events).passed
    outcome = checks.event_uuids_unique(_set(events, "uuid", 1, events["uuid"][0]))
    assert not outcome.passed and outcome.metadata["duplicate_uuids"] == 1
    # A day kept window by window is checked on hashes; a repeated uuid repeats its hash, and the
    # check then hands over to the exact comparison.
    hashed = checks.event_uuid_hashes_unique(events["uuid"].hash(seed=0))
    assert hashed is not None and hashed.passed and hashed.metadata["events"] == events.height
    doubled = _set(events, "uuid", 1, events["uuid"][0])
    assert checks.event_uuid_hashes_unique(doubled["uuid"].hash(seed=0)) is None


def test_session_start_fails_when_a_session_begins_after_its_first_event(day_traffic) -> None:  # noqa: ANN001
    _, _, events = day_traffic
    assert checks.session_start_not_after_first_event(events).passed
    first_session = events["$session_id"][0]
    early = events.with_columns(
        pl.when(pl.col("$session_id") == first_session)
        .then(pl.col("timestamp") - pl.duration(seconds=1))
        .otherwise(pl.col("timestamp"))
        .alias("timestamp")
    )
    outcome = checks.session_start_not_after_first_event(early)
    assert not outcome.passed and outcome.metadata["sessions_with_uuid_time_after_first_event"] == 1


def test_rows_match_events_fails_when_a_rating_row_is_missing(day_traffic) -> None:  # noqa: ANN001
    _, sessions, events = day_traffic
    tables = app_rows(sessions, events, SEED)
    assert checks.rows_match_events(tables, events).passed
    tables["video_ratings"] = tables["video_ratings"].slice(1)
    outcome = checks.rows_match_events(tables, events)
    assert not outcome.passed
    assert outcome.metadata["rows"]["video_ratings"] + 1 == outcome.metadata["events"]["video_ratings"]


def test_no_orphan_rows_fails_on_any_synthetic_orphan() -> None:
    assert checks.no_orphan_rows({"watch_progress": 0, "chat_messages_without_conversation": 0}).passed
    outcome = checks.no_orphan_rows({"watch_progress": 0, "chat_messages_without_conversation": 2})
    assert not outcome.passed and outcome.metadata["total"] == 2


def test_flixbuddy_check_fails_on_an_unknown_question_or_calls_over_the_cap(day_traffic) -> None:  # noqa: ANN001
    _, sessions, events = day_traffic
    asked = conversations(events, sessions, max_per_run=50)
    assert asked.height > 0
    assert checks.questions_from_templates_within_cap(asked, FLIXBUDDY_QUESTIONS, asked.height, 50).passed
    odd = _set(asked, "question", 0, "Tell me a secret")
    assert (
        checks.questions_from_templates_within_cap(odd, FLIXBUDDY_QUESTIONS, 1, 50).metadata[
            "unknown_questions"
        ]
        == 1
    )
    assert not checks.questions_from_templates_within_cap(odd, FLIXBUDDY_QUESTIONS, 1, 50).passed
    assert not checks.questions_from_templates_within_cap(asked, FLIXBUDDY_QUESTIONS, 51, 50).passed
    # Multi-turn: follow-ups are known questions only when the follow-ups are among the templates.
    turns = conversation_turns(asked, TrafficConfig().flixbuddy_turn_weights)
    both = (*FLIXBUDDY_QUESTIONS, *FLIXBUDDY_FOLLOW_UPS)
    outcome = checks.questions_from_templates_within_cap(turns, both, turns.height, 50)
    assert outcome.passed and outcome.metadata["conversations"] == asked.height
    assert 2 <= outcome.metadata["turns_per_conversation"] <= 6
    assert not checks.questions_from_templates_within_cap(turns, FLIXBUDDY_QUESTIONS, turns.height, 50).passed
    # Conversations of 2-6 messages: one-question conversations fail a multi-turn run's check.
    assert checks.questions_from_templates_within_cap(turns, both, turns.height, 50, (2, 6)).passed
    single = checks.questions_from_templates_within_cap(asked, both, asked.height, 50, (2, 6))
    assert not single.passed and single.metadata["conversations_outside_turns"] == asked.height


def test_traffic_per_day_ranges_fail_outside_the_band(day_traffic) -> None:  # noqa: ANN001
    personas, sessions, events = day_traffic
    day = traffic_day(personas["snapshot_date"][0], sessions, events)
    assert checks.per_day_in_range(day, "sessions", (30, 150)).passed
    assert checks.per_day_in_range(day, "events", (5_000, 10_000)).passed
    assert not checks.per_day_in_range(day, "sessions", (sessions.height + 1, 150)).passed
    assert not checks.per_day_in_range(day, "events", (5_000, events.height - 1)).passed


def test_cleanup_check_fails_when_a_real_row_or_auth_user_was_touched() -> None:
    assert checks.cleanup_touched_only_synthetic(4, 4, 0).passed
    assert not checks.cleanup_touched_only_synthetic(4, 3, 0).passed
    assert not checks.cleanup_touched_only_synthetic(4, 4, 1).passed


def test_browser_checks_fail_on_a_silent_session_or_a_changed_identity() -> None:
    sessions = pl.DataFrame(
        {
            "session_id": ["s1", "s2"],
            "distinct_id": ["p_1", "p_2"],
            "ok": [True, True],
            "capture_ok": [3, 2],
            "sdk_distinct_id": ["p_1", "p_2"],
            "sdk_device_id": ["d1", "d2"],
            "previous_device_id": ["", "d2"],
            "returning": [False, True],
        },
        schema=checks.BROWSER_SESSION_SCHEMA,
    )
    events = pl.DataFrame({"synthetic_session": ["s1", "s2", "s2"]})
    assert checks.every_browser_session_produced_events(sessions, events, captured_locally=True).passed
    assert checks.persona_identities_persisted(sessions).passed
    silent = checks.every_browser_session_produced_events(sessions, events.head(1), captured_locally=True)
    assert not silent.passed and silent.metadata["examples"] == ["s2"]
    remote = checks.every_browser_session_produced_events(_set(sessions, "capture_ok", 0, 0), events, False)
    assert not remote.passed
    failed = checks.every_browser_session_produced_events(_set(sessions, "ok", 1, False), events, True)
    assert not failed.passed
    assert not checks.persona_identities_persisted(_set(sessions, "sdk_distinct_id", 0, "anon")).passed
    assert not checks.persona_identities_persisted(_set(sessions, "sdk_device_id", 1, "d9")).passed


def test_all_of_passes_only_when_every_day_passes_and_shows_the_first_failure() -> None:
    good, bad = checks.CheckOutcome(True, {"x": 0}), checks.CheckOutcome(False, {"x": 7})
    combined = checks.all_of([good, bad, checks.CheckOutcome(False, {"x": 9})])
    assert not combined.passed and combined.metadata == {"x": 7, "days_checked": 3, "days_failed": 2}
    assert checks.all_of([good, good]).passed


def test_checks_that_make_downstream_data_wrong_are_blocking() -> None:
    defs = build_defs("2026-01-01", "2026-01-03")
    specs = {
        spec.name: spec
        for assets_def in defs.assets or []
        if isinstance(assets_def, dg.AssetsDefinition)
        for spec in assets_def.check_specs
    }
    assert set(specs) == set(HOGFLIX_CHECKS) - {
        "every_browser_session_produced_events",
        "persona_identities_persisted",
    }
    blocking = {name for name, spec in specs.items() if spec.blocking}
    assert blocking == {
        "persona_ids_unique",
        "session_ids_are_uuidv7_at_start",
        "event_uuids_unique",
        "session_start_not_after_first_event",
        "no_orphan_rows",
    }


def test_events_check_holds_the_mean_day_to_the_band_and_every_day_near_it() -> None:
    days = pl.DataFrame({"events": [5_200, 7_400, 9_900]})
    assert checks.mean_day_in_range(days, "events", (5_000, 10_000), 0.2).passed
    step_out = pl.DataFrame({"events": [4_800, 7_400, 10_300]})  # outside the band, within 20 %
    outcome = checks.mean_day_in_range(step_out, "events", (5_000, 10_000), 0.2)
    assert outcome.passed and outcome.metadata["days_outside_range"] == 2
    assert not checks.mean_day_in_range(
        pl.DataFrame({"events": [3_900, 7_000]}), "events", (5_000, 10_000), 0.2
    ).passed
    assert not checks.mean_day_in_range(
        pl.DataFrame({"events": [9_900, 11_000]}), "events", (5_000, 10_000), 0.2
    ).passed


def test_sessions_follow_their_personas_time_zone_and_device(persona_days) -> None:  # noqa: ANN001
    cfg = TrafficConfig()
    days = [day_sessions(p, SEED, cfg) for p in persona_days]
    outcome = checks.sessions_follow_the_persona(
        [checks.session_profile(s) for s in days], cfg.second_device_share
    )
    m = outcome.metadata
    assert outcome.passed and 18 <= m["busiest_local_hour"] <= 22, m
    assert m["busiest_utc_hour"] != m["busiest_local_hour"]  # the pool spans time zones: UTC peaks elsewhere
    assert m["personas_switching_primary_device"] == 0 and m["personas"] > 150
    # Everyone's evening read in Sydney time: the local peak is no longer in the evening.
    sydney = [s.with_columns(pl.lit("Australia/Sydney").alias("timezone")) for s in days]
    moved = checks.sessions_follow_the_persona(
        [checks.session_profile(s) for s in sydney], cfg.second_device_share
    )
    assert not moved.passed and moved.metadata["failures"][0].startswith("busiest local hour")
    # A device drawn afresh for every session: personas switch their primary device.
    shuffled = [s.with_columns(pl.col("device_type").shuffle(seed=i)) for i, s in enumerate(days)]
    switched = checks.sessions_follow_the_persona(
        [checks.session_profile(s) for s in shuffled], cfg.second_device_share
    )
    assert not switched.passed and switched.metadata["personas_switching_primary_device"] > 20
