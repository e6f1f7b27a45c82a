"""A session's first rows keep a mix of their own where it differs from the later rows'.

The synthetic export's sample gets two keys: ``came_via``, like a referring domain, is ``direct`` or
``search`` on the first row of a visit and mostly the product's own domain after it; ``tint`` is drawn
afresh on every row, alike on first and later rows. The fit must keep an entry mix for the first and
none for the second, and the twin's visits must open as the export's do.

A third key, ``topic``, is on every post view: a post the user goes on to like is about cats or dogs, other
posts mostly about news or tax. The fit must keep the mix of post views followed by a like apart, and the
twin's post views before a like must be about cats or dogs, its post views in all mixed as the export's.
A number on post views, ``tip``, is in the scale of its topic (about 2 for cats, 2,000 for tax, as a price is
in its currency's): the twin must draw it given the topic.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.twin.fidelity import session_value_comparisons
from simulation_assets.core.twin.fit import fit
from simulation_assets.core.twin.properties import _carried_shares, _carry_given, sample_sessions
from simulation_assets.core.twin.spec import TwinSpec
from simulation_assets.sinks.twin_source import LoadedExport
from simulation_assets_tests.twin.conftest import CFG, twin_days, with_keys

OPENING = {"direct": 0.8, "search": 0.2}  # a visit's first row
LATER = {"app.example": 0.9, "direct": 0.05, "search": 0.05}  # the rows after it
LIKED = {"cats": 0.6, "dogs": 0.4}  # the topic of a post view followed by a like
UNLIKED = {"news": 0.5, "tax": 0.3, "cats": 0.2}  # ... and of the other post views
SCALE = {"cats": 2.0, "dogs": 20.0, "news": 200.0, "tax": 2_000.0}  # a post view's tip, by its topic


PAGES = ["dashboard", "feed", "report_viewed", "post_viewed"]  # the events that carry ``came_via``
OPENERS = [
    "dashboard",
    "feed",
]  # the first page of a visit (after its login), carrying ``came_via`` half the time


def _with_entry_keys(loaded: LoadedExport) -> LoadedExport:
    """``loaded`` whose sample carries ``came_via`` and ``tint``. A visit opens on a login and then a dashboard
    or a feed; those carry ``came_via`` half the time, so a visit's first row with it is often a report or a
    post, whose later rows are mostly the product's own domain: their whole mix hides how visits open."""
    users = loaded.prepared.events.select("distinct_id", "user").unique("distinct_id")
    g = np.random.default_rng(11)
    sample = sample_sessions(
        loaded.property_sample.with_row_index("__i").join(users, on="distinct_id"), CFG.idle_minutes
    ).with_columns(pl.Series("coin", g.random(loaded.property_sample.height)))
    carries = pl.col("event").is_in(PAGES) & (~pl.col("event").is_in(OPENERS) | (pl.col("coin") < 0.5))
    opens = (carries & (carries.cast(pl.Int32).cum_sum().over("session") == 1)).alias("opens")
    liked = (pl.col("event").shift(-1) == "liked") & (pl.col("session").shift(-1) == pl.col("session"))
    rows = sample.with_columns(carries.alias("carries"), opens, liked.fill_null(False).alias("liked")).sort(
        "__i"
    )
    first = g.choice(list(OPENING), rows.height, p=list(OPENING.values()))
    later = g.choice(list(LATER), rows.height, p=list(LATER.values()))
    came = np.where(rows["opens"].to_numpy(), first, later)
    topic = np.where(
        rows["liked"].to_numpy(),
        g.choice(list(LIKED), rows.height, p=list(LIKED.values())),
        g.choice(list(UNLIKED), rows.height, p=list(UNLIKED.values())),
    )
    tip = np.vectorize(SCALE.get)(topic) * g.lognormal(0.0, 0.2, rows.height)
    sample = loaded.property_sample.with_columns(
        pl.when(rows["carries"]).then(pl.Series(came)).alias("came_via"),
        pl.Series("tint", g.choice(["red", "green", "blue"], rows.height)),
        pl.when(pl.col("event") == "post_viewed").then(pl.Series(topic)).alias("topic"),
        pl.when(pl.col("event") == "post_viewed").then(pl.Series(tip).round(2).cast(pl.String)).alias("tip"),
    )
    types = {"came_via": "VARCHAR", "tint": "VARCHAR", "topic": "VARCHAR", "tip": "DOUBLE"}
    return with_keys(loaded, sample, types)


@pytest.fixture(scope="module")
def entry_spec(loaded: LoadedExport) -> TwinSpec:
    extra = _with_entry_keys(loaded)
    return fit(extra.prepared, extra.property_sample, extra.key_stats, CFG, "events.csv")


def _opening_share(twin: pl.DataFrame, value: str) -> tuple[float, float]:
    """Return the share of ``value`` on the twin's sessions' first rows with ``came_via``, and on the rest."""
    rows = twin.drop_nulls("came_via").sort("$session_id", "timestamp", "sequence", maintain_order=True)
    opens = rows["$session_id"] != rows["$session_id"].shift(1)
    is_value = rows["came_via"] == value
    return float(is_value.filter(opens.fill_null(True)).mean()), float(
        is_value.filter(~opens.fill_null(True)).mean()
    )


def test_the_first_rows_of_a_visit_keep_their_own_mix_and_a_key_alike_everywhere_has_none(
    entry_spec: TwinSpec,
) -> None:
    keys = entry_spec.tables["event_keys"]
    came = keys.filter(pl.col("key") == "came_via")
    assert came.height == len(PAGES), came
    assert came.filter(~pl.col("event").is_in(OPENERS))["entry_rows"].is_not_null().all(), came
    assert keys.filter(pl.col("key") == "tint")["entry_rows"].is_null().all()
    cats = entry_spec.tables["event_categories"].filter(pl.col("key") == "came_via")
    direct = cats.filter((pl.col("value") == "direct") & ~pl.col("event").is_in(OPENERS))
    assert direct["entry_share"].min() > 0.7 and direct["share"].max() < 0.5, direct


def test_the_twin_s_visits_open_as_the_export_s_do_and_the_carried_values_check_sees_it(
    entry_spec: TwinSpec,
) -> None:
    twin = twin_days(entry_spec)
    opening, after = _opening_share(twin, "direct")
    assert abs(opening - OPENING["direct"]) < 0.05, opening
    assert abs(after - LATER["direct"]) < 0.04, after
    start, users = entry_spec.document.generation.start, entry_spec.document.properties["sample_users"]
    carried, _, (check, _) = session_value_comparisons(twin, entry_spec.tables, users, start, 14)
    first = carried.filter(pl.col("source") == "first row: direct")
    assert set(first["event"]) == {"report_viewed", "post_viewed"}, carried
    assert check.passed, check.detail
    # Without the first rows' mix (a spec fitted before it), visits open from the event's whole mix.
    none = pl.lit(None, pl.Float64)
    cats = entry_spec.tables["event_categories"].with_columns(none.alias("entry_share"))
    keys = entry_spec.tables["event_keys"].with_columns(none.alias("entry_rows"))
    plain = dataclasses.replace(
        entry_spec, tables={**entry_spec.tables, "event_categories": cats, "event_keys": keys}
    )
    plain_twin = twin_days(plain)
    opening_plain, _ = _opening_share(plain_twin, "direct")
    assert opening_plain < OPENING["direct"] - 0.2, (
        opening_plain
    )  # half the visits open on a report or a post
    _, _, (failed, _) = session_value_comparisons(plain_twin, entry_spec.tables, users, start, 14)
    assert not failed.passed and {row["source"] for row in failed.detail["failing"]} == {"first row: direct"}


def _before_a_like(twin: pl.DataFrame) -> tuple[float, pl.DataFrame]:
    """Return the share of the twin's post views followed by a like that are about cats or dogs, and the mix of
    its post views' topics (value, share)."""
    rows = twin.sort("$session_id", "timestamp", "sequence", maintain_order=True)
    liked = (pl.col("event").shift(-1) == "liked") & (
        pl.col("$session_id").shift(-1) == pl.col("$session_id")
    )
    views = rows.with_columns(liked.fill_null(False).alias("liked"), pl.col("topic").cast(pl.String)).filter(
        pl.col("event") == "post_viewed"
    )
    before = views.filter(pl.col("liked"))["topic"].is_in(list(LIKED))
    assert before.len() > 100, before.len()
    mix = views.group_by(pl.col("topic").alias("value")).agg((pl.len() / views.height).alias("share"))
    return float(before.mean()), mix


def test_a_row_followed_by_an_event_keeps_that_event_s_mix_and_the_event_s_whole_mix_holds(
    entry_spec: TwinSpec,
) -> None:
    following = entry_spec.tables["event_next_categories"]
    topic = following.filter(pl.col("key") == "topic")
    assert set(topic["event"]) == {"post_viewed"} and "liked" in set(topic["next"]), topic
    # (the other post views' mixes differ from the rest too, which holds the views before a like)
    before = topic.filter(pl.col("next") == "liked")
    assert set(before["value"]) <= set(LIKED) and before["next_rows"][0] > 0.05, before
    assert following.filter(pl.col("key").is_in(["tint", "came_via"])).is_empty(), (
        following
    )  # alike everywhere
    fitted = entry_spec.tables["event_categories"].filter(
        (pl.col("key") == "topic") & (pl.col("event") == "post_viewed")
    )
    twin = twin_days(entry_spec)
    share, mix = _before_a_like(twin)
    assert share > 0.97, share
    both = fitted.join(mix, on="value", how="full", coalesce=True).fill_null(0.0)
    assert 0.5 * float((both["share"] - both["share_right"]).abs().sum()) < 0.04, both
    # Without the table (a spec fitted before it), a post view before a like is drawn from the whole mix.
    plain = dataclasses.replace(
        entry_spec, tables={**entry_spec.tables, "event_next_categories": following.clear()}
    )
    plain_share, _ = _before_a_like(twin_days(plain))
    assert plain_share < 0.8, plain_share


def test_a_number_is_drawn_in_the_scale_of_the_category_of_its_row(entry_spec: TwinSpec) -> None:
    by = entry_spec.tables["event_numbers_by"].filter(pl.col("key") == "tip")
    assert set(by["by"]) == {"topic"} and set(by["by_value"]) == set(SCALE), by

    def within(twin: pl.DataFrame) -> float:
        """The share of the twin's tips within a factor of 2 of their topic's scale."""
        rows = twin.filter(pl.col("event") == "post_viewed").select(
            pl.col("topic").cast(pl.String), pl.col("tip").cast(pl.Float64)
        )
        scale = rows["topic"].replace_strict(SCALE, return_dtype=pl.Float64)
        return float(((rows["tip"] / scale - 1).abs() < 1).mean())

    assert within(twin_days(entry_spec)) > 0.97
    plain = dataclasses.replace(
        entry_spec,
        tables={**entry_spec.tables, "event_numbers_by": entry_spec.tables["event_numbers_by"].clear()},
    )
    # Drawn from every post view's tips: near the sum of the topics' squared shares.
    assert within(twin_days(plain)) < 0.75


def test_a_number_drawn_given_its_category_is_carried_against_that_category_s_chance_of_repeats() -> None:
    """Two purchases a session in one currency, each price one of the currency's two (4.99 or 9.99 dollars, 750 or
    1,500 yen): the second repeats the first as carried 0.2 of the time, else by chance (0.5 within its currency),
    so M = 0.6. Against the whole mix's chance (0.25) the carry would be fitted 0.47, and drawn given the currency
    the twin would repeat 0.47 + 0.53 x 0.5 = 0.73 of the time."""
    g = np.random.default_rng(5)
    n = 20_000
    yen = g.random(n) < 0.5
    prices = np.where(yen[:, None], [750.0, 1500.0], [4.99, 9.99])
    first = prices[np.arange(n), g.integers(0, 2, n)]
    second = np.where(g.random(n) < 0.2, first, prices[np.arange(n), g.integers(0, 2, n)])
    rows = pl.DataFrame({
        "row": np.arange(2 * n), "session": np.repeat(np.arange(n), 2), "event": ["purchase"] * (2 * n),
        "value": np.column_stack([first, second]).ravel(),
    })  # fmt: skip
    currency = pl.DataFrame({"row": np.arange(2 * n), "value": np.repeat(np.where(yen, "JPY", "USD"), 2)})
    by = pl.DataFrame({"event": ["purchase"] * 2, "key": ["price"] * 2, "by": ["currency"] * 2,
                       "by_value": ["JPY", "USD"], "level": [0, 0], "value": [750.0, 4.99]})  # fmt: skip
    whole = _carried_shares({"price": rows}, flat=1 / 32)
    given = _carry_given({"price": rows}, {"currency": currency}, by, {"price": "number"}, flat=1 / 32)
    assert abs(whole["same_share"][0] - 0.6) < 0.02 and abs(whole["carry_share"][0] - 0.467) < 0.03, whole
    assert given.height == 1 and abs(given["carry_share"][0] - 0.2) < 0.03, given
    assert given["avoid_share"][0] == 0.0


def test_a_key_whose_visits_open_on_their_own_mix_is_carried_against_the_later_rows_chance() -> None:
    """A task board's page views: a visit's first is the board, the later ones any of four pages at random
    (the one before by chance: M = 0.25). The twin draws the later rows from their own even mix, so nothing is
    to be avoided; counted with the first rows (the board 0.4 of the time), c is 0.29 and the twin, avoiding
    repeats with 0.13, would repeat a page 0.22 of the time against 0.25."""
    g = np.random.default_rng(3)
    sessions, length = 4_000, 5
    pages = np.array(["board", "list", "task", "settings"])
    value = np.where(
        np.arange(sessions * length) % length == 0, "board", pages[g.integers(0, 4, sessions * length)]
    )
    rows = pl.DataFrame({"row": np.arange(value.size), "session": np.repeat(np.arange(sessions), length),
                         "event": ["$pageview"] * value.size, "value": value})  # fmt: skip
    plain = _carried_shares({"url": rows})
    later = _carried_shares({"url": rows}, later=pl.DataFrame({"event": ["$pageview"], "key": ["url"]}))
    assert abs(plain["same_share"][0] - 0.25) < 0.02 and plain["avoid_share"][0] > 0.1, plain
    assert later["avoid_share"][0] < 0.03 and later["carry_share"][0] < 0.03, later
