"""The traffic model expands the persona table exactly and looks like posthog-js traffic."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.hogflix.app_rows import app_rows
from simulation_assets.core.hogflix.event_frame import cap_per_user_hour
from simulation_assets.core.hogflix.events import session_events
from simulation_assets.core.hogflix.flixbuddy import chat_rows, conversations, deterministic_reply
from simulation_assets.core.hogflix.ids import (
    EVENT_NAMESPACE,
    event_uuid,
    event_uuids,
    format_uuids,
    uuid7_ms,
    uuid7_reference,
    uuid7s,
)
from simulation_assets.core.hogflix.sessions import WINDOW_MS, day_sessions, window_sessions
from simulation_assets.core.hogflix.traffic_config import FLIXBUDDY_QUESTIONS, TrafficConfig
from simulation_assets_tests.hogflix_traffic.conftest import SEED


def test_event_uuids_are_uuidv5_of_seed_persona_timestamp_and_sequence() -> None:
    persona = np.array([1, 1, 2, 400, 2**40])
    ts = np.array([1_767_225_600_000, 1_767_225_600_000, 1_767_225_601_234, 1_767_229_999_999, 86_400_000])
    seq = np.array([0, 1, 0, 17, 3])
    got = event_uuids(SEED, persona, ts, seq).to_list()
    # The vectorized ids equal the row-by-row reference (hashlib's SHA-1 of namespace + packed name).
    assert got == [str(event_uuid(SEED, int(p), int(t), int(s))) for p, t, s in zip(persona, ts, seq)]
    assert len(set(got)) == 5 and all(uuid.UUID(u).version == 5 for u in got)
    assert all(uuid.UUID(u).variant == uuid.RFC_4122 for u in got)
    name = np.array([(SEED, 2, 1_767_225_601_234, 0)], dtype="<u8,<i8,<i8,<u4").tobytes()
    digest = hashlib.sha1(EVENT_NAMESPACE.bytes + name).digest()
    assert got[2] == str(uuid.UUID(bytes=digest[:16], version=5))
    # Same inputs, same ids (re-sends deduplicate); another seed, other ids.
    assert event_uuids(SEED, persona, ts, seq).to_list() == got
    assert set(event_uuids(SEED + 1, persona, ts, seq).to_list()).isdisjoint(got)
    assert event_uuids(SEED, persona[:0], ts[:0], seq[:0]).len() == 0


def test_event_uuids_do_not_collide_within_a_millisecond() -> None:
    n = 200_000
    persona = np.arange(n) % 1_000
    ts = np.full(n, 1_767_225_600_000)
    seq = np.arange(n) // 1_000
    assert event_uuids(SEED, persona, ts, seq).n_unique() == n


def test_uuid_text_is_canonical_across_several_write_blocks() -> None:
    raw = np.random.default_rng(5).integers(0, 256, (150_000, 16), dtype=np.uint8)
    assert format_uuids(raw).to_list() == [str(uuid.UUID(bytes=bytes(row))) for row in raw]


def test_session_ids_are_uuidv7_carrying_the_session_start() -> None:
    ms = np.array([1_767_225_600_000, 1_767_300_000_123])
    ids = uuid7s(ms, SEED, 14, np.array([5, 6])).to_list()
    assert [uuid.UUID(i).version for i in ids] == [7, 7]
    assert [uuid7_ms(i) for i in ids] == ms.tolist()
    assert ids == [str(uuid7_reference(int(m), SEED, 14, k)) for m, k in zip(ms, (5, 6))]


def test_one_session_per_active_persona_with_the_lifecycle_numbers(day_traffic) -> None:  # noqa: ANN001
    personas, sessions, _ = day_traffic
    active = personas.filter(pl.col("active_today"))
    assert 30 <= sessions.height <= 150
    assert sessions.height == active.height
    joined = sessions.join(active, on="distinct_id")
    assert (joined["videos"] == joined["videos_today"]).all()
    assert (joined["ratings"] == joined["ratings_today"]).all()
    assert (joined["session_start_at"] == joined["session_start_at_right"]).all()
    browsed = joined["videos"] - joined["autoplay_videos"]
    assert (browsed >= 1).all() and (joined["titles_opened"] >= browsed).all()
    assert (joined["listing_pages"] >= joined["titles_opened"]).all()
    assert sessions["session_id"].n_unique() == sessions.height


def test_event_counts_equal_the_persona_table_per_persona(day_traffic) -> None:  # noqa: ANN001
    personas, _, events = day_traffic
    per = events.group_by("persona_distinct_id").agg(
        (pl.col("event") == "video_started").sum().alias("started"),
        (pl.col("event") == "video_rated").sum().alias("rated"),
        (pl.col("event") == "watchlist_added").sum().alias("saved"),
        (pl.col("event") == "flixbuddy_interaction").sum().alias("asked"),
        (pl.col("event") == "$identify").sum().alias("identified"),
    )
    joined = personas.filter(pl.col("active_today")).join(
        per, left_on="distinct_id", right_on="persona_distinct_id"
    )
    assert joined.height == personas["active_today"].sum()
    assert (joined["started"] == joined["videos_today"]).all()
    assert (joined["rated"] == joined["ratings_today"]).all()
    assert (joined["saved"] == joined["watchlist_adds_today"]).all()
    assert (joined["asked"] == joined["flixbuddy_today"].cast(pl.UInt32)).all()
    assert (joined["identified"] == joined["signed_up_today"].cast(pl.UInt32)).all()


def test_a_day_has_5_to_10k_events_with_unique_uuids(day_traffic) -> None:  # noqa: ANN001
    _, _, events = day_traffic
    assert 5_000 <= events.height <= 10_000
    assert events["uuid"].n_unique() == events.height
    assert events["$pageview"].dtype if False else True
    pageviews = (events["event"] == "$pageview").sum()
    assert pageviews == (events["event"] == "$pageleave").sum()


def test_funnel_rates_follow_the_specification(day_traffic) -> None:  # noqa: ANN001
    _, sessions, events = day_traffic
    listing = events.filter(
        (pl.col("event") == "$pageview") & ~pl.col("$pathname").str.contains("^/(title/|watch/|signup|help)")
    )
    listing = listing.filter(~((pl.col("$pathname") == "/") & ~pl.col("$is_identified")))
    opened = (events["event"] == "video_opened").sum()
    started = (events["event"] == "video_started").sum() - sessions["autoplay_videos"].sum()  # browsed plays
    half = ((events["event"] == "video_progress") & (events["progress_percent"] == 50)).sum()
    assert 0.68 <= opened / listing.height <= 0.82  # open 75 %
    assert 0.52 <= started / opened <= 0.68  # start 60 %
    all_started = (events["event"] == "video_started").sum()
    assert 0.45 <= half / all_started <= 0.65  # reach 50 % progress: 55 % of started videos
    entry = sessions["entry_point"].value_counts(normalize=True)
    shares = dict(zip(entry["entry_point"], entry["proportion"]))
    assert abs(shares["homepage"] - 0.40) < 0.15 and abs(shares["flixbuddy"] - 0.10) < 0.08


def test_ratings_follow_the_plan_distributions(persona_days) -> None:  # noqa: ANN001
    cfg = TrafficConfig()
    frames = [
        session_events(day_sessions(p, SEED, cfg), SEED, cfg, f"d{i}") for i, p in enumerate(persona_days)
    ]
    rated = pl.concat(frames).filter(pl.col("event") == "video_rated")
    means = dict(rated.group_by("plan").agg(pl.col("rating").mean()).iter_rows())
    assert rated["rating"].min() >= 1 and rated["rating"].max() <= 5
    assert means["Premium"] > means["Standard"] > means["Basic"]
    assert abs(means["Premium"] - 4.2) < 0.35 and abs(means["Basic"] - 3.2) < 0.45


def test_signup_sessions_stitch_the_anonymous_id_with_identify(day_traffic) -> None:  # noqa: ANN001
    _, sessions, events = day_traffic
    signups = sessions.filter(pl.col("is_signup"))
    assert signups.height >= 1
    for row in signups.iter_rows(named=True):
        ev = events.filter(pl.col("$session_id") == row["session_id"]).sort("sequence")
        identify = ev.filter(pl.col("event") == "$identify").row(0, named=True)
        assert identify["distinct_id"] == row["distinct_id"]
        assert identify["$anon_distinct_id"] == row["anon_distinct_id"] != row["distinct_id"]
        before = ev.filter(pl.col("timestamp") < identify["timestamp"])
        assert before.height >= 2 and (before["distinct_id"] == row["anon_distinct_id"]).all()
        assert before["$referrer"][0] is not None


def test_every_event_carries_session_page_and_persona_properties(day_traffic) -> None:  # noqa: ANN001
    _, sessions, events = day_traffic
    for col in (
        "$session_id",
        "$current_url",
        "$host",
        "$pathname",
        "state",
        "activity_pattern",
        "plan",
        "$lib",
    ):
        assert events[col].null_count() == 0, col
    assert events["is_synthetic"].all()
    first = events.group_by("$session_id").agg(pl.col("timestamp").min().dt.epoch("ms").alias("first"))
    embedded = np.array([uuid7_ms(s) for s in first["$session_id"]])
    assert (embedded <= first["first"].to_numpy()).all()
    span = events.group_by("$session_id").agg(
        (pl.col("timestamp").max() - pl.col("timestamp").min()).alias("d")
    )
    assert span["d"].max().total_seconds() < 24 * 3600
    leaves = events.filter(pl.col("event") == "$pageleave")
    assert (
        leaves["$prev_pageview_pathname"].null_count() == 0 and (leaves["$prev_pageview_duration"] >= 0).all()
    )


def test_windows_partition_the_day_and_regenerate_identically(persona_days) -> None:  # noqa: ANN001
    cfg = TrafficConfig()
    day = day_sessions(persona_days[1], SEED, cfg)
    start = int(day["session_start_at"].min().timestamp() * 1000) // 86_400_000 * 86_400_000
    windows = [window_sessions([day], start + i * WINDOW_MS, start + (i + 1) * WINDOW_MS) for i in range(48)]
    assert sum(w.height for w in windows) == day.height
    w = next(w for w in windows if w.height)
    key = w["partition_key"][0]
    a, b = session_events(w, SEED, cfg, key), session_events(w, SEED, cfg, key)
    assert a.equals(b)


def test_support_tickets_are_capped_at_five_per_user_and_hour() -> None:
    ts = pl.datetime_range(
        pl.datetime(2026, 1, 1, 10, 0, time_zone="UTC"), pl.datetime(2026, 1, 1, 10, 50, time_zone="UTC"), "5m",
        eager=True, time_unit="ms",
    )  # fmt: skip
    frame = pl.DataFrame({"timestamp": ts, "distinct_id": "p1", "event": "support_ticket_created"})
    frame = pl.concat([frame, frame.with_columns(pl.lit("p2").alias("distinct_id")).head(3)])
    kept = cap_per_user_hour(frame, "support_ticket_created", 5)
    assert dict(kept.group_by("distinct_id").len().iter_rows()) == {"p1": 5, "p2": 3}


def test_app_rows_match_events_and_chat_rows_come_from_templates(day_traffic) -> None:  # noqa: ANN001
    _, sessions, events = day_traffic
    rows = app_rows(sessions, events, SEED)
    assert rows["video_ratings"].height == (events["event"] == "video_rated").sum()
    assert rows["watch_progress"].height == (events["event"] == "video_started").sum()
    assert rows["user_watchlist"].height == (events["event"] == "watchlist_added").sum()
    assert rows["profiles"]["user_id"].n_unique() == sessions["user_id"].n_unique()
    asked = conversations(events, sessions, max_per_run=50)
    assert asked.height == (events["event"] == "flixbuddy_interaction").sum()
    assert asked["question"].is_in(list(FLIXBUDDY_QUESTIONS)).all()
    replies = [
        deterministic_reply(t, c) for t, c in zip(asked["question_template"], asked["conversation_id"])
    ]
    assert replies == [
        deterministic_reply(t, c) for t, c in zip(asked["question_template"], asked["conversation_id"])
    ]
    chats = chat_rows(asked, replies, SEED)
    assert chats["chat_messages"].height == 2 * asked.height
    assert conversations(events, sessions, max_per_run=2).height == min(2, asked.height)


def test_video_completion_keeps_the_days_mean_and_splits_at_halfway() -> None:
    from simulation_assets.core.hogflix.events import video_completion

    cfg = TrafficConfig()
    g = np.random.default_rng(9)
    for mean in (0.1, 0.45, 0.65, 0.85):
        done = video_completion(g, cfg, np.full(200_000, mean))
        assert done.min() >= 0 and done.max() <= 1
        assert abs(done.mean() - mean) < 0.01
        kept = np.clip((mean - cfg.abandoned_mean) / (cfg.kept_mean - cfg.abandoned_mean), 0, 1)
        assert abs((done >= 0.5).mean() - kept) < 0.01


def test_session_events_return_exactly_the_declared_event_schema(day_traffic) -> None:  # noqa: ANN001
    from simulation_assets.core.hogflix.event_frame import EVENT_SCHEMA
    from simulation_assets.core.hogflix.events import empty_events

    _, sessions, events = day_traffic
    assert events.schema == pl.Schema(EVENT_SCHEMA)
    one = session_events(sessions.head(1), SEED, TrafficConfig(), "one")
    assert one.schema == empty_events().schema == pl.Schema(EVENT_SCHEMA)


def test_next_episodes_play_from_the_previous_watch_page_in_the_same_genre(day_traffic) -> None:  # noqa: ANN001
    _, sessions, events = day_traffic
    beyond_first = (sessions["videos"] - 1).sum()
    assert sessions["autoplay_videos"].sum() / beyond_first == pytest.approx(0.30, abs=0.05)
    watch = events.filter((pl.col("event") == "$pageview") & pl.col("$pathname").str.starts_with("/watch/"))
    from_watch = watch.filter(pl.col("$prev_pageview_pathname").str.starts_with("/watch/"))
    assert from_watch.height == sessions["autoplay_videos"].sum()  # no listing or title page in between
    same_genre = from_watch.join(
        sessions.select(pl.col("session_id").alias("$session_id"), "genre"), on="$session_id"
    )
    assert (same_genre["genre"] == same_genre["genre_right"]).all()


def _with_favourite(frame: pl.DataFrame, personas: pl.DataFrame) -> pl.DataFrame:
    favourite = personas.select("persona_number", pl.col("favorite_genre").cast(pl.String))
    return frame.join(favourite, on="persona_number").with_columns(
        (pl.col("genre") == pl.col("favorite_genre")).alias("in_favourite")
    )


def test_a_personas_genre_affinity_shapes_what_it_starts_finishes_rates_and_saves(persona_days) -> None:  # noqa: ANN001
    cfg = TrafficConfig()
    events = pl.concat(
        [session_events(day_sessions(p, SEED, cfg), SEED, cfg, f"d{i}") for i, p in enumerate(persona_days)]
    )
    personas = persona_days[-1]
    started = _with_favourite(events.filter(pl.col("event") == "video_started"), personas)
    shuffled = personas.with_columns(pl.col("favorite_genre").shuffle(seed=3))
    baseline = _with_favourite(events.filter(pl.col("event") == "video_started"), shuffled)
    assert started["in_favourite"].mean() > 0.35 > 0.2 > baseline["in_favourite"].mean()
    done = _with_favourite(events.filter(pl.col("watch_seconds").is_not_null()), personas)
    by = dict(done.group_by("in_favourite").agg(pl.col("completion_percent").mean()).iter_rows())
    assert by[True] > by[False] + 4  # percentage points
    rated = _with_favourite(events.filter(pl.col("event") == "video_rated"), personas)
    stars = dict(rated.group_by("in_favourite").agg(pl.col("rating").mean()).iter_rows())
    assert stars[True] > stars[False] + 0.1
    saved = _with_favourite(events.filter(pl.col("event") == "watchlist_added"), personas)
    assert saved["in_favourite"].mean() > baseline["in_favourite"].mean() + 0.2


def test_without_traits_the_favourite_genre_means_nothing(persona_days) -> None:  # noqa: ANN001
    from simulation_assets.core.hogflix.config import TraitsConfig

    cfg, off = TrafficConfig(), TraitsConfig(enabled=False)
    events = pl.concat(
        [
            session_events(day_sessions(p, SEED, cfg, off), SEED, cfg, f"d{i}", off)
            for i, p in enumerate(persona_days)
        ]
    )
    started = _with_favourite(events.filter(pl.col("event") == "video_started"), persona_days[-1])
    assert started["in_favourite"].mean() < 0.2


def test_personas_keep_their_devices_and_use_a_second_one_a_fifth_of_the_time(
    persona_days, day_traffic
) -> None:  # noqa: ANN001
    cfg = TrafficConfig()
    sessions = pl.concat([day_sessions(p, SEED, cfg) for p in persona_days])
    repeat = sessions.filter(~pl.col("is_signup"))
    assert repeat["second_device"].mean() == pytest.approx(0.2, abs=0.06)
    assert not sessions.filter(pl.col("is_signup"))["second_device"].any()
    # Over three days a persona's sessions use at most two devices, each always the same type.
    per_persona = sessions.group_by("persona_number").agg(pl.col("device_id").n_unique().alias("devices"))
    assert per_persona["devices"].max() == 2 and per_persona["devices"].min() == 1
    kinds = sessions.group_by("persona_number", "second_device").agg(
        pl.col("device_id").n_unique().alias("ids"), pl.col("device_type").n_unique().alias("types")
    )
    assert kinds["ids"].max() == 1 and kinds["types"].max() == 1
    both = sessions.group_by("persona_number").agg(
        pl.col("device_type").n_unique().alias("types"), pl.col("second_device").n_unique().alias("used")
    )
    assert both.filter(pl.col("used") == 2)["types"].min() == 2  # the second device is another kind
    _, day_sessions_, events = day_traffic
    zones = events.join(
        day_sessions_.select(pl.col("session_id").alias("$session_id"), "timezone"), on="$session_id"
    )
    assert (zones["$timezone"] == zones["timezone"]).all() and zones["$timezone"].n_unique() > 3


def test_plan_changes_become_account_page_events_and_app_rows(persona_days) -> None:  # noqa: ANN001
    from simulation_assets.core.hogflix import checks

    cfg = TrafficConfig()
    personas = persona_days[1].with_row_index("i")
    visitors = personas.filter(pl.col("active_today") & (pl.col("plan") == "Standard"))["i"].head(6).to_list()
    direction = pl.when(pl.col("i").is_in(visitors[:3])).then(1).when(pl.col("i").is_in(visitors)).then(-1)
    personas = personas.with_columns(
        direction.otherwise(0).cast(pl.Int8).alias("plan_changed_today"),
        pl.when(pl.col("i").is_in(visitors[:3])).then(pl.lit("Basic")).otherwise(pl.col("previous_plan"))
        .cast(personas["previous_plan"].dtype).alias("previous_plan"),
    ).drop("i")  # fmt: skip
    sessions = day_sessions(personas, SEED, cfg)
    events = session_events(sessions, SEED, cfg, "day")
    changed = events.filter(pl.col("event") == "plan_changed").sort("timestamp")
    assert changed.height == 6 and (changed["$current_url"].str.ends_with("/account")).all()
    assert sorted(changed["plan_change"].to_list()) == ["downgrade"] * 3 + ["upgrade"] * 3
    assert set(changed.filter(pl.col("plan_change") == "upgrade")["previous_plan"]) == {"Basic"}
    # The account page is visited after the session's last video: its pageview comes before the change.
    views = events.filter((pl.col("event") == "$pageview") & pl.col("$current_url").str.ends_with("/account"))
    assert views.height == 6
    tables = app_rows(sessions, events, SEED)
    rows = tables["plan_changes"].sort("changed_at")
    assert rows["id"].to_list() == changed["uuid"].to_list()
    assert rows["direction"].to_list() == changed["plan_change"].to_list()
    assert checks.rows_match_events(tables, events).passed
    assert not checks.rows_match_events({**tables, "plan_changes": rows.head(5)}, events).passed


def test_a_multi_turn_chat_keeps_the_persona_on_the_chat_page_until_its_last_answer(persona_days) -> None:  # noqa: ANN001
    from simulation_assets.core.hogflix.flixbuddy import RESPONSE_DELAY_MS, conversation_turns

    cfg = TrafficConfig()
    sessions = pl.concat([day_sessions(p, SEED, cfg) for p in persona_days])
    events = session_events(sessions, SEED, cfg, "chat")
    asked = conversation_turns(conversations(events, sessions, 10_000), cfg.flixbuddy_turn_weights)
    last_answer = asked.group_by("conversation_id").agg(
        pl.col("asked_at").min().alias("first_question"),
        (pl.col("asked_at").max() + pl.duration(milliseconds=RESPONSE_DELAY_MS)).alias("last_answer"),
        pl.len().alias("turns"),
    )
    # The chat page's first visit in each session with a conversation: when it was opened and left.
    chat = events.filter(pl.col("$pathname").str.ends_with("/flixbuddy")).drop("conversation_id")
    visits = (
        chat.join(
            sessions.select(pl.col("session_id").alias("$session_id"), "conversation_id"), on="$session_id"
        )
        .filter(pl.col("conversation_id").is_not_null())
        .sort("timestamp")
        .group_by("conversation_id")
        .agg(
            pl.col("timestamp").filter(pl.col("event") == "$pageview").first().alias("opened"),
            pl.col("timestamp").filter(pl.col("event") == "$pageleave").first().alias("left"),
        )
    )
    both = last_answer.join(visits, on="conversation_id")
    assert both.height == last_answer.height > 20 and both["turns"].max() > 2
    assert both.null_count().sum_horizontal().item() == 0
    assert (both["opened"] < both["first_question"]).all() and (both["last_answer"] <= both["left"]).all()
    # The time on the chat page grows with the turns: each follow-up keeps the persona there ~20 s more.
    stay = both.select("turns", seconds=(pl.col("left") - pl.col("opened")).dt.total_milliseconds() / 1000)
    by_turns = stay.group_by("turns").agg(pl.col("seconds").median()).sort("turns")
    assert by_turns.height >= 4 and stay.select(pl.corr("turns", "seconds")).item() > 0.4
    assert by_turns["seconds"].to_list()[-1] - by_turns["seconds"].to_list()[0] > 10 * (
        by_turns["turns"].max() - 2
    )
    # Without multi-turn the chat page is as short as before: no follow-ups to wait for.
    single = session_events(sessions, SEED, cfg.model_copy(update={"flixbuddy_multi_turn": False}), "chat")
    assert _chat_stay(single) < _chat_stay(events)


def _chat_stay(events: pl.DataFrame) -> object:
    """Total time sessions spent on the FlixBuddy page."""
    chat = events.filter(pl.col("$pathname").str.ends_with("/flixbuddy"))
    stays = chat.group_by("$session_id").agg(
        (pl.col("timestamp").max() - pl.col("timestamp").min()).alias("s")
    )
    return stays["s"].sum()
