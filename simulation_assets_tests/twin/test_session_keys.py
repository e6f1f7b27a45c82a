"""Keys constant within a visit are drawn per session; keys that follow another are drawn through it.

The synthetic export's sample gets keys of its own: a theme and a screen width that a user keeps for
a calendar day (so for every session of that day) and changes between days, a click position that
changes on every event, a page URL drawn per event with its area (a function of the URL) and a
section that agrees with the URL only four times in five. The fit must find the first two per
session, keep the click per event, draw the area through the URL and leave the section alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.twin import checks
from simulation_assets.core.twin.fidelity import (
    Comparison,
    FidelityReport,
    carried_values,
    session_value_comparisons,
)
from simulation_assets.core.twin.fit import fit
from simulation_assets.core.twin.generate import Generator, _keep_follower
from simulation_assets.core.twin.properties import OTHER, _lookups, sample_sessions
from simulation_assets.core.twin.spec import TwinSpec
from simulation_assets.sinks.twin_source import LoadedExport
from simulation_assets_tests.twin.conftest import CFG, twin_days, with_keys

URLS = [f"https://app.example/page/{i}" for i in range(12)]
AREAS = ["top", "middle", "bottom"]  # pages 0-3, 4-7, 8-11
DEVICES = ["phone", "tablet", "laptop", "desktop"]
PAGE_EVENTS = [
    "login",
    "dashboard",
    "feed",
    "report_viewed",
    "post_viewed",
    "signup_started",
    "onboarding_step",
]


def _with_visit_keys(loaded: LoadedExport) -> LoadedExport:
    """``loaded`` whose property sample (and key statistics) carry the three extra keys."""
    sample = loaded.property_sample
    day = pl.col("timestamp").dt.date().cast(pl.Int64)
    pick = (pl.concat_str("distinct_id", day.cast(pl.String)).hash(seed=3) % 4).cast(pl.Int64)
    sample = sample.with_columns(
        pl.when(pick < 2).then(pl.lit("dark")).otherwise(pl.lit("light")).alias("theme"),
        pick.replace_strict([0, 1, 2, 3], ["390", "1440", "1920", "2560"], return_dtype=pl.String).alias(
            "screen_width"
        ),
        pl.Series("click_x", np.random.default_rng(5).uniform(0, 1200, sample.height).round(1)).cast(
            pl.String
        ),
    )
    g = np.random.default_rng(6)
    page = g.integers(0, len(URLS), sample.height)
    noisy = np.where(g.random(sample.height) < 0.8, page % 3, g.integers(0, 3, sample.height))
    sample = sample.with_columns(
        pl.Series("page_url", np.array(URLS)[page]),
        pl.Series("page_area", np.array(AREAS)[page // 4]),
        pl.Series("section", np.array(["a", "b", "c"])[noisy]),
    )
    # A device: each user's own one on four days in five, another on the rest (kept all day).
    own = (pl.col("distinct_id").hash(seed=4) % 4).cast(pl.Int64)
    other = (own + 1 + pl.concat_str("distinct_id", day.cast(pl.String)).hash(seed=5) % 3) % 4
    away = (pl.concat_str("distinct_id", day.cast(pl.String)).hash(seed=6) % 5) == 0
    device = pl.when(away).then(other).otherwise(own)
    sample = sample.with_columns(
        device.replace_strict([0, 1, 2, 3], DEVICES, return_dtype=pl.String).alias("device")
    )
    # The page a user is on: a new one on each page event, the same on the events that happen on a page.
    users = loaded.prepared.events.select("distinct_id", "user").unique("distinct_id")
    on_page = (
        sample_sessions(sample.with_row_index("__i").join(users, on="distinct_id"), CFG.idle_minutes)
        .with_columns(
            pl.when(pl.col("event").is_in(PAGE_EVENTS) | (pl.col("session") != pl.col("session").shift(1)))
            .then(pl.col("page_url"))
            .forward_fill()
            .alias("current_page")
        )
        .sort("__i")
    )
    # A page event names the page the user came from: the session's page before it (a referrer).
    came_from = on_page.with_columns(
        pl.when(pl.col("event").is_in(PAGE_EVENTS))
        .then(pl.col("current_page").shift(1).over("session"))
        .alias("came_from")
    )
    # And how long a page takes to read (a measurement): drawn on a page event, the same on the events on it.
    seconds = on_page.with_columns(
        pl.when(pl.col("event").is_in(PAGE_EVENTS) | (pl.col("session") != pl.col("session").shift(1)))
        .then(pl.Series(np.random.default_rng(8).uniform(5, 300, on_page.height).round(2)))
        .forward_fill()
        .cast(pl.String)
        .alias("page_seconds")
    )
    # And the page's length in words, a number that goes with the page wherever the page goes.
    words = on_page["current_page"].str.extract(r"(\d+)$").cast(pl.Int64) * 150 + 320
    sample = sample.with_columns(
        on_page["current_page"],
        came_from["came_from"],
        seconds["page_seconds"],
        words.cast(pl.String).alias("page_words"),
    )
    return with_keys(loaded, sample, {
        "theme": "VARCHAR", "screen_width": "UBIGINT", "click_x": "DOUBLE", "page_url": "VARCHAR",
        "page_area": "VARCHAR", "section": "VARCHAR", "device": "VARCHAR", "current_page": "VARCHAR",
        "came_from": "VARCHAR", "page_seconds": "DOUBLE", "page_words": "UBIGINT",
    })  # fmt: skip


@pytest.fixture(scope="module")
def visit_spec(loaded: LoadedExport) -> TwinSpec:
    extra = _with_visit_keys(loaded)
    return fit(extra.prepared, extra.property_sample, extra.key_stats, CFG, "events.csv")


def _values_per(frame: pl.DataFrame, unit: str, key: str) -> pl.DataFrame:
    return (
        frame.drop_nulls(key)
        .group_by(unit)
        .agg(pl.len().alias("rows"), pl.col(key).n_unique().alias("values"))
    )


def test_keys_kept_for_a_visit_are_fitted_per_session_and_a_measurement_is_not(visit_spec: TwinSpec) -> None:
    props = visit_spec.document.properties
    assert {"theme", "screen_width"} <= set(props["session_constants"])
    assert "click_x" not in props["session_constants"] and "click_x" not in props["constants"]
    assert not {"theme", "screen_width"} & set(props["constants"])  # they change between a user's days
    assert props["kinds"]["screen_width"] == "integer" and props["kinds"]["click_x"] == "number"
    # Per-session keys leave the per-event tables; their values (k users each) are in the session tables.
    events = visit_spec.tables["event_categories"]
    assert events.filter(pl.col("key").is_in(["theme", "screen_width"])).is_empty()
    marginals = visit_spec.tables["session_marginals"]
    assert set(marginals.filter(pl.col("key") == "screen_width")["value"]) == {"390", "1440", "1920", "2560"}
    assert set(visit_spec.tables["session_combos"].columns) >= {"theme", "screen_width", "share"}
    assert 0.9 <= props["session_combo_share"] <= 1.0  # 8 combinations, each seen by many users


def test_the_twin_holds_one_value_per_session_and_several_per_user(visit_spec: TwinSpec) -> None:
    twin = twin_days(visit_spec)
    assert twin.schema["screen_width"] == pl.Int64 and isinstance(twin.schema["theme"], pl.Enum)
    for key in ("theme", "screen_width"):
        per_session = _values_per(twin, "$session_id", key)
        assert per_session.height > 1_000
        assert (per_session["values"] == 1).all(), key
        users = _values_per(twin, "user_number", key).join(
            twin.group_by("user_number").agg(pl.col("$session_id").n_unique().alias("sessions")),
            on="user_number",
        )
        busy = users.filter(pl.col("sessions") >= 4)
        assert busy.height > 50
        assert float((busy["values"] > 1).mean()) > 0.5, key  # a new draw each visit
        shares = twin[key].drop_nulls().value_counts(normalize=True)
        assert shares["proportion"].min() > 0.1  # every value of the export comes up
    # The measurement still changes inside sessions.
    clicks = _values_per(twin, "$session_id", "click_x").filter(pl.col("rows") >= 3)
    assert float((clicks["values"] == clicks["rows"]).mean()) > 0.9


def test_without_times_in_the_sample_the_same_keys_change_inside_sessions(loaded: LoadedExport) -> None:
    extra = _with_visit_keys(loaded)
    spec = fit(extra.prepared, extra.property_sample.drop("timestamp"), extra.key_stats, CFG, "events.csv")
    assert spec.document.properties["session_constants"] == []
    twin = twin_days(spec, days=7)
    per_session = _values_per(twin, "$session_id", "theme").filter(pl.col("rows") >= 4)
    assert float((per_session["values"] > 1).mean()) > 0.8  # drawn per event: the twin's sessions flip


def test_sample_sessions_split_a_user_s_rows_at_idle_gaps() -> None:
    t0 = dt.datetime(2026, 3, 2, 9, 0)
    minutes = [0, 10, 39, 70, 71, 0, 5]
    rows = pl.DataFrame(
        {
            "user": [1, 1, 1, 1, 1, 2, 2],
            "timestamp": [t0 + dt.timedelta(minutes=m) for m in minutes],
            "event": ["a"] * 7,
        }
    ).reverse()
    out = sample_sessions(rows, idle_minutes=30)
    assert out["user"].to_list() == [1, 1, 1, 1, 1, 2, 2]
    # 39 -> 70 is 31 minutes idle: a new visit; user 2 starts its own.
    assert out["session"].to_list() == [1, 1, 1, 2, 2, 3, 3]


def test_a_key_that_follows_another_is_drawn_through_it(visit_spec: TwinSpec) -> None:
    props = visit_spec.document.properties
    # The section agrees only 80 %: drawn on its own; a page's words (a number) go with the page.
    assert props["follows"] == {"page_area": "page_url", "page_words": "current_page"}
    lookup = visit_spec.tables["property_lookups"].filter(pl.col("key") == "page_area")
    assert lookup.height == len(URLS) and set(lookup["parent"]) == {"page_url"}
    twin = twin_days(visit_spec)
    pages = twin.drop_nulls("page_url")
    assert pages.height > 10_000 and pages["page_area"].null_count() == 0  # on the same rows as its URL
    pairs = pages.select(pl.col("page_url").cast(pl.String), pl.col("page_area").cast(pl.String)).unique()
    assert pairs.height == len(URLS)
    number = pairs["page_url"].str.extract(r"(\d+)$").cast(pl.Int64).to_numpy()
    assert (pairs["page_area"].to_numpy() == np.array(AREAS)[number // 4]).all()
    # The section is still drawn per event: in the twin it agrees with the URL's group by chance only.
    group = pages["page_url"].cast(pl.String).str.extract(r"(\d+)$").cast(pl.Int64).to_numpy() % 3
    agree = float((pages["section"].cast(pl.String).to_numpy() == np.array(["a", "b", "c"])[group]).mean())
    assert agree < 0.5


def _next_session_same(frame: pl.DataFrame, user: str, session: str, time: str, key: str) -> float:
    """The share of a user's sessions whose ``key`` equals the one of their session before."""
    sessions = (
        frame.drop_nulls(key)
        .group_by(session)
        .agg(pl.col(user).first(), pl.col(time).min(), pl.col(key).first())
    )
    sessions = sessions.sort(user, time)
    same_user = sessions[user] == sessions[user].shift(1)
    return float((sessions[key] == sessions[key].shift(1)).filter(same_user).mean())  # type: ignore[arg-type]


def test_a_device_a_user_keeps_between_visits_is_kept_in_the_twin(
    loaded: LoadedExport, visit_spec: TwinSpec
) -> None:
    props = visit_spec.document.properties
    assert "device" in props["session_sticky_keys"] and "click_x" not in props["session_sticky_keys"]
    extra = _with_visit_keys(loaded)
    rows = extra.property_sample.join(
        extra.prepared.events.select("distinct_id", "user").unique("distinct_id"), on="distinct_id"
    )
    real = _next_session_same(
        sample_sessions(rows, CFG.idle_minutes), "user", "session", "timestamp", "device"
    )
    twin = twin_days(visit_spec)
    kept = _next_session_same(twin, "user_number", "$session_id", "timestamp", "device")
    assert real > 0.6 and abs(kept - real) < 0.08, (real, kept)
    # Without the user's own device every visit draws afresh: the twin's users hop between devices.
    plain = dataclasses.replace(visit_spec, document=visit_spec.document.model_copy(
        update={"properties": {**props, "session_sticky_share": 0.0}}))  # fmt: skip
    hopping = _next_session_same(twin_days(plain), "user_number", "$session_id", "timestamp", "device")
    assert hopping < real - 0.2, (real, hopping)


def test_an_event_on_a_page_carries_the_page_its_session_is_on(
    loaded: LoadedExport, visit_spec: TwinSpec
) -> None:
    keys = visit_spec.tables["event_keys"].filter(pl.col("key") == "current_page")
    on_page = keys.filter(~pl.col("event").is_in(PAGE_EVENTS))
    assert (
        on_page.height >= 3 and (on_page["same_share"] == 1.0).all() and (on_page["carry_share"] > 0.99).all()
    )
    # A page event's page is drawn afresh (the same as the one before only by chance).
    assert (keys.filter(pl.col("event").is_in(PAGE_EVENTS))["carry_share"] < 0.05).all()
    twin = twin_days(visit_spec)
    measured = carried_values(twin, visit_spec.tables["event_keys"], top=100).filter(
        pl.col("key") == "current_page"
    )
    leaves = measured.filter(~pl.col("event").is_in(PAGE_EVENTS))
    assert leaves.height >= 3 and leaves["rows"].sum() > 5_000
    assert (leaves["twin"] > 0.99).all(), leaves  # drawn per event: about 1 in 12
    pages = measured.filter(pl.col("event").is_in(PAGE_EVENTS))
    # Within 0.05, or three two-sample standard errors where a page event has few rows (a few dozen users).
    assert ((pages["twin"] - pages["export"]).abs() < np.maximum(0.05, 3 * 2**0.5 * pages["se"])).all(), pages
    # Only pages of k users: the values are the spec's.
    kept = set(visit_spec.tables["event_categories"].filter(pl.col("key") == "current_page")["value"])
    assert set(twin["current_page"].drop_nulls().cast(pl.String).unique()) <= kept


def test_a_property_key_more_or_less_moves_nobody_s_activity(visit_spec: TwinSpec) -> None:
    props = visit_spec.document.properties
    assert "plan" in props["constants"]
    fewer = dataclasses.replace(visit_spec, document=visit_spec.document.model_copy(
        update={"properties": {**props, "constants": [c for c in props["constants"] if c != "plan"]}}))  # fmt: skip
    day = visit_spec.document.generation.start + dt.timedelta(days=20)
    a, b = Generator(visit_spec).day(day), Generator(fewer).day(day)
    assert "plan" in a.columns and "plan" not in b.columns
    assert a.select("user_number", "timestamp", "event").equals(b.select("user_number", "timestamp", "event"))


def test_a_page_event_names_the_page_its_session_was_on_before(visit_spec: TwinSpec) -> None:
    sources = visit_spec.tables["property_sources"].filter(pl.col("key") == "came_from")
    assert set(sources["event"]) <= set(PAGE_EVENTS) and sources.height >= 3
    assert (sources["source"] == "current_page").all() and (sources["lag"] == 1).all()
    assert (sources["copy_share"] > 0.95).all()
    twin = twin_days(visit_spec)
    measured = carried_values(
        twin, visit_spec.tables["event_keys"], visit_spec.tables["property_sources"], top=200
    )
    came = measured.filter((pl.col("key") == "came_from") & (pl.col("source") == "current_page"))
    assert came.height >= 3 and came["rows"].sum() > 2_000
    assert (came["twin"] > 0.95).all(), came  # drawn on its own: about 1 in 12


def test_a_number_an_event_shares_with_its_page_is_carried_on_too(visit_spec: TwinSpec) -> None:
    assert visit_spec.document.properties["kinds"]["page_seconds"] == "number"
    keys = visit_spec.tables["event_keys"].filter(pl.col("key") == "page_seconds")
    on_page = keys.filter(~pl.col("event").is_in(PAGE_EVENTS))
    assert on_page.height >= 3 and (on_page["carry_share"] > 0.99).all()
    twin = twin_days(visit_spec)
    measured = carried_values(twin, visit_spec.tables["event_keys"], top=200).filter(
        pl.col("key") == "page_seconds"
    )
    leaves = measured.filter(~pl.col("event").is_in(PAGE_EVENTS))
    assert leaves.height >= 3 and (leaves["twin"] > 0.99).all(), leaves  # drawn per event: never the same


def test_the_carried_values_check_fails_a_twin_that_draws_each_event_s_value_afresh(
    visit_spec: TwinSpec,
) -> None:
    twin = twin_days(visit_spec)
    start, users = visit_spec.document.generation.start, visit_spec.document.properties["sample_users"]
    carried, _, (check, _) = session_value_comparisons(twin, visit_spec.tables, users, start, 14)
    assert {"current_page", "came_from", "page_seconds"} <= set(carried["key"])
    assert check.name == "carried_values" and check.passed, check.detail
    assert check.detail["rows_judged"] == carried.height and check.value <= check.bound
    # The same values, each event's shuffled over its rows: the mix is kept, what a session carries is not.
    keys = sorted(set(carried["key"]))
    redrawn = twin.with_columns(pl.col(key).shuffle(seed=3).over("event") for key in keys)
    _, _, (failed, _) = session_value_comparisons(redrawn, visit_spec.tables, users, start, 14)
    assert not failed.passed and failed.value > 0.5, failed.detail
    assert {"current_page", "came_from", "page_seconds"} <= {row["key"] for row in failed.detail["failing"]}
    assert not checks.carried_values_kept(_with_comparisons(failed)).passed


def _with_comparisons(*judged: Comparison) -> FidelityReport:
    """A report holding only ``judged`` (what the twin_fidelity asset adds to the per-user comparisons)."""
    empty = pl.DataFrame()
    return FidelityReport(0, 0, 0, list(judged), empty, empty, empty, empty, {})


def test_a_number_that_goes_with_its_page_is_the_page_s_own_and_the_check_sees_it(
    visit_spec: TwinSpec,
) -> None:
    lookup = visit_spec.tables["property_lookups"].filter(pl.col("key") == "page_words")
    assert lookup.height == len(URLS) and set(lookup["parent"]) == {"current_page"}
    twin = twin_days(visit_spec)
    rows = twin.drop_nulls("page_words")
    words = rows["current_page"].cast(pl.String).str.extract(r"(\d+)$").cast(pl.Int64) * 150 + 320
    assert rows.height > 10_000 and (rows["page_words"] == words).all()
    start, users = visit_spec.document.generation.start, visit_spec.document.properties["sample_users"]
    carried, _, (check, _) = session_value_comparisons(twin, visit_spec.tables, users, start, 14)
    looked = carried.filter(pl.col("source") == "current_page (lookup)")
    assert looked.height >= 5 and (looked["export"] == 1.0).all() and (looked["twin"] == 1.0).all()
    assert check.passed, check.detail
    # Each row's number drawn on its own from the event's mix (as the twin did before a number followed a
    # category): the page and its words part, and the check says so.
    apart = twin.with_columns(pl.col("page_words").shuffle(seed=4).over("event"))
    _, _, (failed, _) = session_value_comparisons(apart, visit_spec.tables, users, start, 14)
    failing = {(row["key"], row["source"]) for row in failed.detail["failing"]}
    assert not failed.passed and ("page_words", "current_page (lookup)") in failing, failed.detail


def test_keys_cut_at_their_own_edges_still_follow_each_other() -> None:
    """40 videos seen by 6 users each; the category cap keeps the ids of videos 0-29 and the titles of 10-39
    (ties broken by each key's own text): a quarter of the rows are ``other`` in one key and not the other."""
    video = np.repeat(np.arange(40), 12)
    rows = pl.DataFrame({"row": np.arange(video.size), "user": video * 100 + np.arange(video.size) % 6,
                         "event": ["watched"] * video.size})  # fmt: skip
    ids, titles = [f"v{i:03d}" for i in video], [f"Title {i}" for i in video]
    per_event = {
        "video_id": rows.with_columns(
            pl.Series("value", [t if i < 30 else OTHER for t, i in zip(ids, video, strict=True)]),
            pl.Series("raw", ids),
        ),
        "video_title": rows.with_columns(
            pl.Series("value", [t if i >= 10 else OTHER for t, i in zip(titles, video, strict=True)]),
            pl.Series("raw", titles),
        ),
        "genre": rows.with_columns(  # the same for a video's rows only half the time: its own key
            pl.Series(
                "value",
                np.where(np.arange(video.size) % 2 == 0, video % 4, np.arange(video.size) % 4).astype(str),
            ),
        ).with_columns(pl.col("value").alias("raw")),
    }
    numbers = {"duration": rows.with_columns(pl.Series("value", (600 + 60 * video).astype(np.float64)))}
    follows, lookups, shares = _lookups(per_event, numbers, k=5)
    assert follows == {"duration": "video_id", "video_title": "video_id"}
    titles_of = lookups.filter(pl.col("key") == "video_title")
    assert (
        titles_of.height == 30
    )  # every kept id, its title as read (those of ids 0-9 too, which the cap cut)
    assert set(titles_of["value"]) == {f"Title {i}" for i in range(30)}
    durations = lookups.filter(pl.col("key") == "duration")
    assert (
        dict(zip(durations["parent_value"], durations["value"].cast(pl.Float64), strict=True))["v007"] == 1020
    )
    assert (shares["follow_share"] == 1.0).all() and shares.height == 2
    # With fewer than k users a pair, nothing is looked up from that value.
    few = _lookups(per_event, numbers, k=7)
    assert few[0] == {}


def test_a_follower_carried_more_often_than_its_key_keeps_its_value_through_the_key_s_draws() -> None:
    """Videos 0-11 in genres 0-2 (video % 3): the next video opened is of the genre before half the time, never
    the video before. The key's draws are redone where a row keeps its follower: the genre repeats 0.5 + 0.5 * 3/11
    of the time (3 of the 11 other videos share a genre), the video still never."""
    g = np.random.default_rng(11)
    n = 60_000
    session = np.repeat(np.arange(n // 6), 6)
    genre_of = np.arange(12) % 3

    def draw(i: np.ndarray) -> np.ndarray:
        return g.integers(0, 12, i.size)

    pos = draw(np.arange(n))
    first = np.r_[True, session[1:] != session[:-1]]
    # No repeats of the video before in the draws themselves (as the key's own avoid-repeats gives them).
    for _ in range(20):
        again = np.flatnonzero(~first & (pos == np.r_[-1, pos[:-1]]))
        pos[again] = draw(again)
    before = ~first
    alone = float((genre_of[pos][1:] == genre_of[pos][:-1])[before[1:]].mean())
    kept = _keep_follower(pos, np.full(n, 0.5), session, g, genre_of, np.arange(12), draw)
    same = float((genre_of[kept][1:] == genre_of[kept][:-1])[before[1:]].mean())
    repeats = float((kept[1:] == kept[:-1])[before[1:]].mean())
    # Another video of the same genre: 3 of the 11 others.
    assert abs(alone - 3 / 11) < 0.02 and abs(same - (0.5 + 0.5 * 3 / 11)) < 0.02, (alone, same)
    # (A row left as drawn may meet a row before that changed under it: one in twelve of those repeat.)
    assert repeats < 0.02, repeats
