"""The fit's and the generator's fast paths give what the plain ways give.

The reader parses the ``$identify`` rows' properties inside the core pass, lists property keys on
rows already read, the sketches sort per group, and categorical properties are drawn from alias
tables: each is checked against the slower way it replaced.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.rng import stream
from simulation_assets.core.twin.activity import GAP_BLOCKS, GAP_LEFT, streak_compensation, within_day_gaps
from simulation_assets.core.twin.classes import TIME_CELLS, UserDescriptors, fit_mixture, select_classes
from simulation_assets.core.twin.compiled import _alias_tables, _value_codes
from simulation_assets.core.twin.fit import (
    CALIBRATION_MAX_USERS,
    CALIBRATION_USERS,
    FLOW_TABLES,
    Prepared,
    calibration_users,
    property_sample_ids,
)
from simulation_assets.core.twin.generate import ActivitySimulation, Generator, weekday
from simulation_assets.core.twin.sketch import grouped_sketches
from simulation_assets.core.twin.spec import TABLE_SCHEMAS, CalendarDay, TwinSpec
from simulation_assets.sinks import twin_source
from simulation_assets.sinks.posthog_export import ExportSource, open_export, write_export
from simulation_assets.sinks.posthog_export.source import id_hashes, rows_properties, rows_property_keys
from simulation_assets.sinks.twin_source import load_for_fit
from simulation_assets_tests.twin.conftest import CFG

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _reference_sketches(group: np.ndarray, x: np.ndarray, levels: int, k: int) -> dict[int, np.ndarray]:
    """Each group's winsorized quantiles, one group at a time (the definition the fast path must meet)."""
    out = {}
    for g in np.unique(group):
        v = np.sort(x[group == g])
        if v.size >= 2 * k:
            pos = (k - 1) + (v.size - k - (k - 1)) * np.linspace(0.0, 1.0, levels)
            below = np.floor(pos).astype(np.int64)
            frac = pos - below
            out[int(g)] = v[below] * (1 - frac) + v[np.minimum(below + 1, v.size - 1)] * frac
    return out


@pytest.mark.parametrize("top", [7, 40_000, 2**40])  # radix-sortable groups, wide ones, huge codes
def test_grouped_sketches_equal_each_group_sketched_alone(top: int) -> None:
    g = np.random.default_rng(top % 1000)
    group = g.integers(0, top, 6_000) % 50 * (top // 50 + 1)  # 50 groups spread over the range
    x = np.round(g.lognormal(size=group.size), 1)  # ties, which a two-key sort would order too
    names, q = grouped_sketches(group, x, levels=9, k=3)
    want = _reference_sketches(group, x, 9, 3)
    assert list(names) == sorted(want)
    for name, row in zip(names, q, strict=True):
        np.testing.assert_allclose(row, want[int(name)], rtol=0, atol=1e-12)


def test_alias_tables_give_every_value_exactly_its_share() -> None:
    # Three events with 1, 4 and 300 values (one of them a share of 0), and one event code without any.
    event = np.repeat([0, 1, 3], [1, 4, 300])
    share = np.r_[1.0, [0.5, 0.0, 0.3, 0.2], np.random.default_rng(1).dirichlet(np.ones(300) * 0.3)]
    start, size, chance, alias = _alias_tables(event, share, codes=5)
    assert list(size) == [1, 4, 0, 300, 0] and list(start[[0, 1, 3]]) == [0, 1, 5]
    # What a draw gives: row i with (chance_i + the rows that fall back to it) / the event's size.
    implied = chance.copy()
    np.add.at(implied, alias, 1.0 - chance)
    implied /= size[event]
    for e in (0, 1, 3):
        m = event == e
        np.testing.assert_allclose(implied[m], share[m] / share[m].sum(), rtol=0, atol=1e-12)
    assert (alias[event == 1][share[event == 1] == 0] != np.flatnonzero(event == 1)[1]).all()


def _export_rows() -> pl.DataFrame:
    n = 40
    return pl.DataFrame(
        {
            "uuid": [f"0190f000-0000-7000-8000-{i:012d}" for i in range(n)],
            "event": ["$pageview", "clicked", "$identify", "$pageleave"] * (n // 4),
            "distinct_id": [f"u{i // 8}" for i in range(n)],
            "timestamp": [T0 + dt.timedelta(minutes=3 * i) for i in range(n)],
            "$session_id": [f"s{i // 4}" for i in range(n)],
            # Carried by every row: only the $identify rows' values may be read into the core pass.
            "$anon_distinct_id": [f"anon-{i}" for i in range(n)],
            "$browser": ["Firefox", "Safari"] * (n // 2),
            "amount": [float(i) if i % 4 == 1 else None for i in range(n)],
        }
    )


def test_the_core_pass_reads_anonymous_ids_of_identify_rows_only(tmp_path: Path) -> None:
    export = open_export(write_export(_export_rows(), tmp_path / "e.parquet", "batch-parquet"))
    core = export.frame(["$anon_distinct_id"], uuid=False, properties_of=["$identify"])
    ident = core["event"] == "$identify"
    assert core.filter(~ident)["$anon_distinct_id"].null_count() == int((~ident).sum()) == 30
    alone = export.frame(["$anon_distinct_id"], where="event = '$identify'")
    assert core.filter(ident)["$anon_distinct_id"].to_list() == alone["$anon_distinct_id"].to_list()
    assert core.drop("$anon_distinct_id").equals(export.frame("none", uuid=False))


def test_keys_listed_on_rows_already_read_equal_the_export_s(tmp_path: Path) -> None:
    export = open_export(write_export(_export_rows(), tmp_path / "e.parquet", "batch-parquet"))
    rows = export.frame("json")
    assert rows_property_keys(rows, sample_rows=None).equals(export.property_keys(sample_rows=None))
    keys = ["$browser", "amount", "$session_id"]
    assert rows_properties(rows, keys).equals(export.frame(keys))


def test_the_fit_reads_the_same_sample_every_time(synthetic_frame: pl.DataFrame, tmp_path: Path) -> None:
    path = write_export(synthetic_frame, tmp_path / "events.parquet", "batch-parquet")
    first, second = load_for_fit(path, None, CFG), load_for_fit(path, None, CFG)
    assert first.property_sample.height > 10_000
    assert first.property_sample.equals(second.property_sample)
    assert first.key_stats.equals(second.key_stats)
    # The keys were listed on the sampled users' rows: every kept key is a column of the sample.
    assert set(first.key_stats["key"]) >= set(first.property_sample.columns) - {
        "distinct_id",
        "event",
        "timestamp",
    }


def test_uuid_session_ids_are_cut_out_directly_and_short_ones_are_not_mistaken(tmp_path: Path) -> None:
    head = '{"event":"a","distinct_id":"x","timestamp":"2026-01-01T00:00:00Z","properties":'
    uuid = "019b8b74-b0a7-750a-8fce-9d2652e9aa70"
    # A short id whose next key's closing quote sits where a uuid's closing quote would (37th character).
    trap = '{"$session_id":"s1","' + "k" * 31 + '":"z"}'
    assert trap[16 + 36] == '"'  # the value starts at 16
    lines = ['{"$session_id":"' + uuid + '","$window_id":"w"}', trap, '{"$session_id":"' + uuid + 'x"}']
    path = tmp_path / "s.jsonl"
    path.write_text("".join(head + line + "}\n" for line in lines))
    ids = open_export(path).frame("none")["session_id"].to_list()
    assert ids == [uuid, "s1", uuid + "x"]


@pytest.mark.parametrize("position", [-1, 0, 3, 40, 700])
def test_chain_states_looked_up_directly_equal_the_searched_ones(spec, position: int) -> None:  # noqa: ANN001
    from simulation_assets.core.twin.generate import Generator

    gen = Generator(spec)
    assert len(gen.state_row)  # the direct lookup is in use
    g = np.random.default_rng(position + 2)
    n, w = 50_000, len(gen.names) + 2 + 3
    # Every state the spec has (so hits in every slot), then random ones (mostly misses, repeats included).
    key = gen.state_key // gen.slots
    known = (key // (w * w), key // w % w, key % w)
    cls = np.r_[known[0], g.integers(0, gen.n_classes * gen.depth_groups, n)]
    prev = np.r_[known[1], g.integers(0, w, n)]
    cur = np.r_[known[2], g.integers(0, len(gen.names) + 1, n)]
    direct = gen._group(cls, prev, cur, position)
    assert (direct >= 0).sum() > len(gen.state_key) // 4
    np.testing.assert_array_equal(direct, gen._group_searched(cls, prev, cur, position))


def test_per_user_keys_spread_in_row_order_are_each_user_s_own_values(spec) -> None:  # noqa: ANN001
    from simulation_assets.core.twin.generate import Generator

    gen = Generator(spec)
    assert gen.constants
    day = gen.day(spec.document.generation.start + dt.timedelta(days=5))
    users = day["user_number"].to_numpy()
    carried = (day["event"] != "$identify").to_numpy()
    for j, key in enumerate(gen.constants):
        want = gen.user_keys.series[j].gather(gen.population.constant_codes[users, j])
        got = day[key]
        assert got.filter(pl.Series(carried)).equals(want.filter(pl.Series(carried))), key
        assert got.filter(pl.Series(~carried)).null_count() == int((~carried).sum())


def test_keys_with_the_same_share_on_every_event_are_present_together(spec) -> None:  # noqa: ANN001
    from simulation_assets.core.twin.generate import Generator

    gen = Generator(spec)
    key = next(k for k in gen.presence if k in gen.num_tables and k not in gen.follows)
    v = len(gen.names)
    carried = gen.presence[key][:v] > 0
    gen.presence[key] = np.r_[np.where(carried, 0.5, 0.0), gen.presence[key][v:]]  # uncertain on its events
    # A second key with the same shares (a copy of the first, drawn on its own rows).
    twin_key = key + "_copy"
    gen.presence[twin_key], gen.kinds[twin_key] = gen.presence[key].copy(), gen.kinds[key]
    gen.num_tables[twin_key] = gen.num_tables[key]
    day = gen.day(spec.document.generation.start + dt.timedelta(days=5))
    first, second = (day[k].is_not_null().to_numpy() for k in (key, twin_key))
    on_events = day["event"].is_in([gen.names[e] for e in np.flatnonzero(carried)]).to_numpy()
    assert on_events.sum() > 200 and 0.4 < first[on_events].mean() < 0.6
    np.testing.assert_array_equal(first, second)  # drawn on their own, they would agree on half the rows


def test_value_codes_by_a_join_equal_a_dictionary_lookup() -> None:
    # Repeated known values (the last index wins, as in a dict), nulls on both sides, values not known.
    known = pl.Series(["a", "b", None, "c", "b", "d"])
    values = pl.Series(["b", "x", None, "d", "a", "c", None, "zz"])
    lookup = {val: i for i, val in enumerate(known.to_list())}
    want = [lookup.get(x, 0) for x in values.to_list()]
    assert _value_codes(values, known).tolist() == want == [4, 0, 2, 5, 0, 3, 2, 0]
    assert _value_codes(values, known.drop_nulls()).tolist() == [3, 0, 0, 4, 0, 2, 0, 0]
    assert _value_codes(pl.Series([1, 2], dtype=pl.Int64), pl.Series([2.0, 1.0])).tolist() == [1, 0]


def _dense_active_by_day(gen: Generator) -> list[np.ndarray]:
    """Every user's chance computed every day (the definition the loop over the users alive must meet)."""
    pop, n = gen.population, len(gen.population.cls)
    g = stream(gen.seed, "twin", "activity", n)
    own_streak = pop.streak * gen.streak_scale[pop.cls]
    keep_rate = np.where(
        gen.streak_keeps_rate[pop.cls],
        streak_compensation(pop.rate, own_streak, gen.by_recency[pop.cls]),
        0.0,
    )
    since, top, streak, out = np.zeros(n, np.int64), gen.by_recency.shape[1] - 1, np.exp(own_streak), []
    spread = gen.week_spread[pop.cls]
    weeks, week = stream(gen.seed, "twin", "week-spread", n), np.ones(n)
    for d in range(gen.gen.days):
        if spread.any() and d % 7 == 0:  # a user's factor of the week
            week = np.exp(spread * weeks.standard_normal(n) - spread**2 / 2)
        age = d - pop.first
        alive = (age >= 0) & (age <= pop.lifetime)
        by_age = gen.by_age[pop.cls, np.clip(age // 7, 0, gen.by_age.shape[1] - 1)]
        wd = int(weekday(gen.start_day + d))
        own = 1.0 if gen.own_weekdays is None else gen.own_weekdays[:, wd]
        base = np.clip(pop.rate * gen.weekday_mult[pop.cls, wd] * by_age * own, 1e-6, 1 - 1e-6)
        odds = base / (1 - base) * gen.by_recency[pop.cls, np.clip(since + 1, 1, top)]
        odds = np.where(since == 0, odds * streak, odds) * week * np.exp(keep_rate)
        if gen.by_age_day.shape[2]:
            early = (age >= 0) & (age < gen.by_age_day.shape[2])
            factor = gen.by_age_day[pop.cls, pop.kind, np.clip(age, 0, gen.by_age_day.shape[2] - 1)]
            odds = np.where(early, odds * factor, odds)
        factor = gen.calendar_activity.get(gen.start_day + d)
        odds = odds * factor if factor is not None else odds
        state = alive & ((age == 0) | (age == pop.last_visit) | (g.random(n) < odds / (1 + odds)))
        since = np.where(state, 0, since + 1)
        out.append(np.flatnonzero(state))
    return out


def test_activity_over_the_users_alive_equals_every_user_every_day(spec) -> None:  # noqa: ANN001
    # The spec as fitted, with a calendar day that keeps users away (its factor applies to the alive only).
    day = spec.document.generation.start + dt.timedelta(days=3)
    away = spec.document.model_copy(update={"calendar": [CalendarDay(date=day, arrivals=1.0, activity=0.4)]})
    # ... and with users who keep to weekdays of their own.
    loyal = [cd.model_copy(update={"weekday_loyalty": [0.6, 0.3, 0.0]}) for cd in spec.document.classes]
    # ... and with streaks scaled, keeping the users' rates in some classes and adding to them in the others.
    scaled = [
        cd.model_copy(update={"streak_scale": 2.0, "streak_keeps_rate": c % 2 == 0})
        for c, cd in enumerate(spec.document.classes)
    ]
    assert (spec.tables["user_streak"]["log_odds"] != 0).any()
    for s in (
        TwinSpec(spec.document.model_copy(update={"classes": scaled}), spec.tables).with_generation(
            users=2_000, days=30
        ),
        spec.with_generation(users=3_000, days=40),
        TwinSpec(away, spec.tables).with_generation(users=2_000, days=30),
        TwinSpec(spec.document.model_copy(update={"classes": loyal}), spec.tables).with_generation(
            users=2_000, days=30
        ),
    ):
        gen = Generator(s)
        got, want = gen.active_by_day, _dense_active_by_day(gen)
        assert sum(a.size for a in got) > 1_000 and len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def _reference_within_day_gaps(sessions: pl.DataFrame) -> pl.DataFrame:
    """The gaps as window expressions over (user) and (user, day) (the definition the array version must meet)."""
    s = sessions.sort("user", "start_ms")
    prev_end = pl.col("end_ms").shift(1).over("user")
    after = pl.len().over("user", "day") - pl.int_range(pl.len()).over("user", "day") - 1
    return (
        s.select(
            "user",
            ((pl.col("start_ms") - prev_end) / 60_000.0).clip(lower_bound=0.0).alias("gap_minutes"),
            ((prev_end % 86_400_000) // (86_400_000 // GAP_BLOCKS))
            .clip(0, GAP_BLOCKS - 1)
            .cast(pl.Int8)
            .alias("block"),
            (prev_end % 86_400_000).alias("end_ms"),
            (pl.col("start_ms") % 86_400_000).alias("start_ms"),
            after.clip(0, GAP_LEFT - 1).cast(pl.Int8).alias("left"),
            (pl.col("day") == pl.col("day").shift(1).over("user")).alias("same_day"),
        )
        .filter(pl.col("same_day"))
        .drop("same_day")
    )


def test_within_day_gaps_on_arrays_equal_the_window_expressions() -> None:
    g = np.random.default_rng(5)
    start = g.integers(0, 86_400_000 * 20, 20_000) + 1_780_000_000_000
    sessions = pl.DataFrame(
        {
            "user": g.integers(0, 3_000, start.size).astype(np.int32),
            "start_ms": start,
            "end_ms": start + g.integers(-60_000, 7_200_000, start.size),  # some end after the next starts
            "day": start // 86_400_000,
        }
    )
    got = within_day_gaps(sessions)
    assert got.height > 1_000 and got["left"].max() == GAP_LEFT - 1 and (got["gap_minutes"] == 0).any()
    assert got.equals(_reference_within_day_gaps(sessions))  # the same bits, gap minutes included


def _write_jsonl_gz_files(frame: pl.DataFrame, folder: Path, files: int) -> Path:
    """``frame`` as a batch export of gzip-compressed JSON lines, cut into ``files`` files."""
    folder.mkdir(parents=True)
    n = frame.height
    for i in range(files):
        part = frame.slice(i * n // files, (i + 1) * n // files - i * n // files)
        plain = write_export(part, folder / f"part-{i}.jsonl", "batch-jsonl")
        (folder / f"part-{i}.jsonl.gz").write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    return folder


def _counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Count the reader's passes over an export: each ``ExportSource.frame`` call appends its ``distinct_ids``."""
    reads: list[object] = []
    frame = ExportSource.frame

    def counted(self: ExportSource, *args: object, **kwargs: object) -> pl.DataFrame:
        reads.append(kwargs.get("distinct_ids"))
        return frame(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ExportSource, "frame", counted)
    return reads


def _assert_text_is_its_own(sample: pl.DataFrame) -> None:
    """The sample's text is its own: not views into the buffers of every row the core pass read."""
    for column in ("distinct_id", "event"):
        text = sample[column]
        own = int(text.str.len_bytes().filter(text.str.len_bytes() > 12).sum())  # longer ones live in buffers
        held = text.to_arrow(compat_level=pl.CompatLevel.newest()).buffers()[2:]
        assert sum(b.size for b in held if b is not None) <= 4 * own + 65_536, column


@pytest.mark.parametrize("shape", ["jsonl", "csv"])
def test_json_lines_and_csv_keep_the_sample_in_the_core_pass_and_read_what_parquet_reads(
    shape: str, synthetic_frame: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = CFG.model_copy(update={"property_sample_rows": 5_000})
    parquet = load_for_fit(write_export(synthetic_frame, tmp_path / "e.parquet", "batch-parquet"), None, cfg)
    export = (
        _write_jsonl_gz_files(synthetic_frame, tmp_path / "jsonl", 3)
        if shape == "jsonl"
        else write_export(synthetic_frame, tmp_path / "e.csv", "csv")
    )
    reads = _counted_reads(monkeypatch)
    got = load_for_fit(export, None, cfg)
    assert reads == [None]  # one pass: the sampled users' JSON (a CSV's columns) was kept by the core pass
    assert got.property_sample.height > 1_000 and got.property_sample.width > 5
    assert got.property_sample.equals(parquet.property_sample)
    if shape == "jsonl":  # keys listed on the same rows' JSON (a CSV's keys are its columns)
        assert got.key_stats.equals(parquet.key_stats)
    _assert_text_is_its_own(got.property_sample)
    # When a sampled user has an id above what the core pass kept, the export is read again, to the same rows.
    monkeypatch.setattr(twin_source, "KEEP_SHARE", 1e-6)
    reads.clear()
    again = load_for_fit(export, None, cfg)
    assert len(reads) == 2 and reads[1] is not None
    assert again.property_sample.equals(parquet.property_sample)


def test_the_property_sample_takes_users_of_several_ids_as_often_as_users_of_one() -> None:
    # 6,000 users with 1, 2 or 4 distinct ids, one event each: a quarter of them sampled.
    users = np.repeat(np.arange(6_000), np.tile([1, 2, 4], 2_000))
    ids = pl.Series("distinct_id", [f"id-{i}" for i in range(users.size)])
    events = pl.DataFrame({"user": users, "distinct_id": ids})
    stats = pl.DataFrame({"user": np.arange(6_000), "total_events": 1, "holdout": False})
    prepared = Prepared(events, pl.DataFrame(), pl.DataFrame(), stats, None, True, users.size)  # type: ignore[arg-type]
    cfg = CFG.model_copy(update={"property_sample_rows": 1_500})
    hashes = id_hashes(ids, cfg.seed)
    chosen = set(property_sample_ids(prepared, cfg, hashes))
    taken = events.with_columns(pl.col("distinct_id").is_in(pl.Series(list(chosen)).implode()).alias("taken"))
    per_user = taken.group_by("user").agg(pl.col("taken").all(), pl.col("taken").any().alias("any"), pl.len())
    assert (per_user["taken"] == per_user["any"]).all()  # whole users
    shares = per_user.group_by("len").agg(pl.col("taken").mean()).sort("len")["taken"].to_list()
    assert per_user["taken"].sum() == 1_500
    assert all(abs(s - 0.25) < 0.04 for s in shares), shares  # 2,000 users each: sd of a share ~0.01
    # The ids taken hash below the largest taken, and the same ids are taken whatever the rows' order.
    assert chosen == set(property_sample_ids(
        dataclasses.replace(prepared, events=events.sample(fraction=1.0, shuffle=True, seed=1)), cfg, hashes
    ))  # fmt: skip


def test_calibration_runs_on_one_population_and_without_flows_equal_fresh_generators(spec) -> None:  # noqa: ANN001
    # The calibrations simulate while the flows are still being fitted (empty flow tables), and the week-spread
    # and first-days rounds draw new active days for one population: each must be what a full generator gives.
    base = spec.with_generation(users=2_500, days=35)
    no_flows = TwinSpec(
        base.document, {**base.tables, **{n: pl.DataFrame(schema=TABLE_SCHEMAS[n]) for n in FLOW_TABLES}}
    )
    first = ActivitySimulation(no_flows)
    # (the streaks' scale rounds too: the scale and whether it keeps the rate are not the population's)
    changed = [cd.model_copy(update={"week_spread": 0.9, "return_by_age_day": {"new": [1.0, 3.0, 0.2]},
                                     "streak_scale": 2.0, "streak_keeps_rate": True})
               for cd in base.document.classes]  # fmt: skip
    other = TwinSpec(base.document.model_copy(update={"classes": changed}), base.tables)
    for sim, want in ((first, Generator(base)), (first.with_activity_of(other), Generator(other))):
        assert sim.population is first.population
        np.testing.assert_array_equal(sim.population.first, want.population.first)
        np.testing.assert_array_equal(sim.population.streak, want.population.streak)
        got, expected = sim.active_by_day, want.active_by_day
        assert sum(a.size for a in got) > 1_000 and len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    assert sum(a.size for a in first.active_by_day) != sum(a.size for a in Generator(other).active_by_day)


def _one_after_the_other(
    d: UserDescriptors, max_classes: int, min_users: int, rng: np.random.Generator
) -> tuple:
    """The candidates fitted in turn, each drawing its start points when its turn comes (the definition)."""
    table, best, worse = [], None, 0
    for c in range(1, max_classes + 1):
        if c * min_users > len(d.user):
            break
        m = fit_mixture(d, c, rng)
        allowed = float(m.weights.min() * len(d.user)) >= min_users
        table.append((c, round(m.bic, 1), allowed))
        if allowed and (best is None or m.bic < best.bic):
            best, worse = m, 0
        else:
            worse += 1
            if worse >= 2:
                break
    return (best if best is not None else fit_mixture(d, 1, rng)), table


@pytest.mark.parametrize(
    "min_users", [10, 150]
)  # candidates allowed; none allowed (a last fit from the stream)
def test_classes_fitted_two_at_a_time_equal_the_candidates_fitted_in_turn(min_users: int) -> None:
    g = np.random.default_rng(3)
    n = 400
    kind = g.integers(0, 3, n)
    cells = g.poisson(np.where(np.arange(TIME_CELLS)[None, :] % 3 == kind[:, None], 2.0, 0.2))
    trials = g.integers(5, 40, n).astype(np.float64)
    d = UserDescriptors(np.arange(n), cells.astype(np.float64), np.floor(trials * (0.1 + 0.3 * kind)), trials,
                        g.normal(1.0 + kind, 0.3))  # fmt: skip
    a, b = np.random.default_rng(11), np.random.default_rng(11)
    got, table = select_classes(d, 6, min_users, a)
    want, want_table = _one_after_the_other(d, 6, min_users, b)
    assert [(r["classes"], r["bic"], r["allowed"]) for r in table] == want_table
    assert len(want_table) >= 2 or min_users > n
    for x, y in zip(dataclasses.astuple(got), dataclasses.astuple(want), strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.random() == b.random()  # the stream is left where fitting in turn leaves it


def test_calibration_runs_simulate_as_many_users_as_the_export_within_the_bounds(spec) -> None:  # noqa: ANN001
    for users, want in ((1_000, CALIBRATION_USERS), (55_000, 55_000), (555_000, CALIBRATION_MAX_USERS)):
        assert calibration_users(spec.with_generation(users=users)) == want
