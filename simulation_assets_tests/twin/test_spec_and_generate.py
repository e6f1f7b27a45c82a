"""The spec is readable, editable and versioned; the generator is deterministic and speaks PostHog's event shape."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from simulation_assets.core.hogflix.ids import uuid7_ms
from simulation_assets.core.twin.generate import Generator, empty_frame
from simulation_assets.core.twin.properties import OTHER, fit_properties
from simulation_assets.core.twin.spec import SpecError, TwinSpec
from simulation_assets.sinks.posthog_events import encode_events, property_columns_by_event
from simulation_assets.sinks.twin_spec_store import load_spec, save_spec


def test_fitting_one_export_twice_gives_the_same_spec_files(loaded, spec: TwinSpec, tmp_path: Path) -> None:  # noqa: ANN001
    """Polars' group-by adds floats in an order that changes from run to run (from ~20,000 rows): the
    fit must not let that order reach the spec (its sums are taken in a fixed order)."""
    from simulation_assets.core.twin.fit import fit
    from simulation_assets_tests.twin.conftest import CFG

    assert loaded.prepared.events.height > 20_000
    first = save_spec(spec, tmp_path / "a")
    for attempt in range(3):
        again = fit(loaded.prepared, loaded.property_sample, loaded.key_stats, CFG, "events.csv")
        other = save_spec(again, tmp_path / f"b{attempt}")
        for path in sorted(first.iterdir()):
            assert (other / path.name).read_bytes() == path.read_bytes(), path.name


def test_spec_round_trips_through_yaml_and_parquet(spec: TwinSpec, tmp_path: Path) -> None:
    folder = save_spec(spec, tmp_path / "spec")
    doc = yaml.safe_load((folder / "twin.yaml").read_text())
    assert doc["format"] == "simulation-assets-twin" and doc["version"] == 1
    assert {t["file"] for t in doc["tables"].values()} == {p.name for p in folder.glob("*.parquet")}
    again = load_spec(folder)
    assert again.document == spec.document
    assert all(again.tables[n].equals(spec.tables[n]) for n in spec.tables)
    assert again.key() == spec.key()


def test_a_spec_written_before_the_optional_tables_still_loads_and_generates(
    spec: TwinSpec, tmp_path: Path
) -> None:
    folder = save_spec(spec, tmp_path / "spec")
    doc = yaml.safe_load((folder / "twin.yaml").read_text())
    optional = ("end_by_elapsed", "end_by_activity", "user_pace", "depth_by_activity", "user_streak", "first_hour_tilt",
                "session_marginals", "session_combos", "property_lookups", "day_clock", "day_gap_shares")  # fmt: skip
    for name in optional:
        (folder / doc["tables"].pop(name)["file"]).unlink()
    # ... whose within-day gaps were minutes per class (no block column, no clock) ...
    levels = 21
    pl.DataFrame(
        {
            "class": [c for c in range(len(doc["classes"])) for _ in range(levels)],
            "level": list(range(levels)) * len(doc["classes"]),
            "log_minutes": np.tile(np.linspace(np.log1p(30), np.log1p(600), levels), len(doc["classes"])),
        }
    ).write_parquet(folder / "day_gaps.parquet")
    doc["tables"]["day_gaps"] = {"file": "day_gaps.parquet", "rows": levels * len(doc["classes"])}
    # ... and whose chains were per class only (no depth column).
    chains = folder / doc["tables"]["transitions"]["file"]
    pl.read_parquet(chains).filter(pl.col("depth") == 0).drop("depth").write_parquet(chains)
    doc["tables"]["transitions"]["rows"] = pl.read_parquet(chains).height
    for cd in doc["classes"]:  # ... and without the first days' factors or the streaks' scale
        del cd["return_by_age_day"], cd["streak_scale"], cd["streak_keeps_rate"]
    (folder / "twin.yaml").write_text(yaml.safe_dump(doc))
    old = load_spec(folder)
    assert all(not cd.return_by_age_day for cd in old.document.classes)
    assert all(cd.streak_scale == 1.0 and not cd.streak_keeps_rate for cd in old.document.classes)
    assert old.tables["end_by_elapsed"].is_empty() and old.tables["user_pace"].is_empty()
    assert old.tables["end_by_activity"].is_empty()
    assert old.tables["user_streak"].is_empty() and (old.tables["transitions"]["depth"] == -1).all()
    assert old.tables["first_hour_tilt"].is_empty() and (old.tables["day_gaps"]["block"] == -1).all()
    assert old.tables["session_combos"].is_empty() and old.tables["property_lookups"].is_empty()
    gen = Generator(old)
    assert gen.gap_share_q is None and gen.gap_q is not None  # later sessions by the minutes of old specs
    day = gen.day(old.document.generation.start)
    assert day.height > 0 and day["event"].is_in([*old.events, "$identify"]).all()


def test_the_spec_records_what_privacy_removed(spec: TwinSpec) -> None:
    privacy = spec.document.privacy
    assert privacy["k"] == 5
    dropped = {d["key"]: d["reason"] for d in privacy["dropped_properties"]}
    assert dropped["$anon_distinct_id"] == "identifier or personal data"
    # No table holds an id of the export: distinct ids, uuids and session ids never enter the spec.
    text = " ".join(
        str(v)
        for t in spec.tables.values()
        for c in t.columns
        if t.schema[c] == pl.String
        for v in t[c].unique()
    )
    assert "acct-" not in text and "anon-" not in text and "syn7-" not in text


def test_spec_classes_were_chosen_by_bic(spec: TwinSpec) -> None:
    candidates = spec.document.class_selection["candidates"]
    chosen = [c for c in candidates if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["classes"] == len(spec.document.classes)
    allowed = [c for c in candidates if c["allowed"]]
    assert chosen[0]["bic"] == min(c["bic"] for c in allowed)
    assert len(spec.document.classes) >= 2  # three kinds of users are not one crowd


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(version=99), "version: this build reads twin specs of version 1"),
        (lambda d: d.update(format="other"), "format: expected 'simulation-assets-twin'"),
        (lambda d: d["generation"].update(users=0), "generation.users: Input should be greater than 0"),
        (lambda d: d["tables"].pop("transitions"), "table 'transitions' is missing"),
        (
            lambda d: d["classes"][0].update(weekday_loyalty=[0.5, 1.5]),
            "classes.0.weekday_loyalty.1: Input should be less than 1",
        ),
        (
            lambda d: d["classes"][0].update(streak_scale=20.0),
            "classes.0.streak_scale: Input should be less than or equal to 10",
        ),
        (
            lambda d: [c.update(weekday_loyalty=[0.2] * (2 + i)) for i, c in enumerate(d["classes"])],
            "weekday_loyalty: every class needs the same number of bands",
        ),
    ],
)
def test_a_broken_spec_is_refused_with_the_field_named(spec: TwinSpec, tmp_path: Path, edit, message) -> None:  # noqa: ANN001
    folder = save_spec(spec, tmp_path / "spec")
    doc = yaml.safe_load((folder / "twin.yaml").read_text())
    edit(doc)
    (folder / "twin.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match=message):
        load_spec(folder)


def test_a_table_naming_an_unknown_event_is_refused(spec: TwinSpec, tmp_path: Path) -> None:
    folder = save_spec(spec, tmp_path / "spec")
    t = pl.read_parquet(folder / "transitions.parquet")
    t.with_columns(pl.lit("not_an_event").alias("next")).write_parquet(folder / "transitions.parquet")
    with pytest.raises(SpecError, match="names events not in flow.events"):
        load_spec(folder)


def test_an_end_shift_out_of_range_is_refused(spec: TwinSpec, tmp_path: Path) -> None:
    folder = save_spec(spec, tmp_path / "spec")
    shifts = pl.read_parquet(folder / "end_by_activity.parquet")
    assert shifts.height > 0
    shifts.with_columns(pl.lit(7.0).alias("log_odds")).write_parquet(folder / "end_by_activity.parquet")
    with pytest.raises(SpecError, match="table 'end_by_activity': log_odds must be within ±3"):
        load_spec(folder)


def test_a_twin_user_is_banded_by_the_days_of_their_window_long_block(spec: TwinSpec) -> None:
    """A run twice the export's window: each user's days for banding are those of the window-long block that
    holds their first day, as the export's users were counted over one window."""
    window = spec.document.arrivals.window_days
    days = 2 * window + 5
    gen = Generator(spec.with_generation(days=days))
    block = np.minimum(gen.population.first // window * window, days - window)  # the last block ends the run
    own = np.zeros(block.size, np.int64)
    for d, who in enumerate(gen.active_by_day):
        own[who[(block[who] <= d) & (d < block[who] + window)]] += 1
    assert (gen.block_active_days == own).all()
    assert (gen.block_active_days <= window).all() and (gen.active_days > window).any()


def test_a_day_alone_equals_the_same_day_in_a_run(spec: TwinSpec) -> None:
    start = spec.document.generation.start
    day = start + dt.timedelta(days=9)
    run = Generator(spec)
    for d in range(10):
        sequence = run.day(start + dt.timedelta(days=d))
    alone = Generator(spec).day(day)
    assert alone.height > 0 and alone.equals(sequence)
    other_seed = Generator(spec.with_generation(seed=spec.document.generation.seed + 1)).day(day)
    assert not other_seed.equals(alone)


def test_events_have_posthog_shape_and_uuidv7_sessions_starting_before_their_events(
    twin_frame: pl.DataFrame,
) -> None:
    ev = twin_frame
    assert ev.schema["timestamp"] == pl.Datetime("ms", "UTC")
    assert ev["uuid"].n_unique() == ev.height
    firsts = ev.group_by("$session_id").agg(pl.col("timestamp").min().dt.epoch("ms").alias("first"))
    sample = firsts.head(300)
    assert all(uuid.UUID(s).version == 7 for s in sample["$session_id"])
    assert all(uuid7_ms(s) <= f for s, f in sample.iter_rows())
    spans = ev.group_by("$session_id").agg(
        (pl.col("timestamp").max() - pl.col("timestamp").min()).alias("span")
    )
    assert spans["span"].max() < dt.timedelta(hours=24)
    # HogFlix's PostHog sink encodes the twin's events unchanged: its property columns are HogFlix's names.
    body = encode_events(ev.head(50))
    assert len(body) == 50 and '"$session_id"' in body[0] and '"distinct_id"' in body[0]
    assert "$browser" in property_columns_by_event(ev.head(500))[ev["event"][0]]


def test_identified_users_are_anonymous_until_their_identify(twin_frame: pl.DataFrame) -> None:
    ident = twin_frame.filter(pl.col("event") == "$identify")
    assert ident.height > 0
    row = ident.row(0, named=True)
    user = twin_frame.filter(pl.col("user_number") == row["user_number"]).sort("timestamp", "sequence")
    before = user.filter(pl.col("timestamp") < row["timestamp"])
    after = user.filter(pl.col("timestamp") > row["timestamp"])
    assert set(before["distinct_id"]) == {row["$anon_distinct_id"]}
    assert (
        set(after["distinct_id"]) == {row["distinct_id"]} and row["distinct_id"] != row["$anon_distinct_id"]
    )


def test_an_identified_user_has_one_identify_whichever_session_holds_it(spec: TwinSpec) -> None:
    # The identify in the first day's first, second or third session: the session is drawn once per user
    # (drawn per session, some users' sessions all missed it and stayed anonymous, or two took it).
    # Every user identified on a first day of three sessions.
    doc = spec.document
    identity = {**doc.identity, "session": {0: 0.3, 1: 0.4, 2: 0.3}}
    classes = [cd.model_copy(update={"identified_share": {"new": 1.0, "backlog": 1.0}}) for cd in doc.classes]
    three = pl.DataFrame({"class": range(len(classes)), "sessions": 3, "share": 1.0})
    tables = {**spec.tables, "sessions_per_day": three.cast(spec.tables["sessions_per_day"].schema)}
    gen = Generator(TwinSpec(doc.model_copy(update={"identity": identity, "classes": classes}), tables))
    start = spec.document.generation.start
    frame = pl.concat([gen.day(start + dt.timedelta(days=i)) for i in range(7)], how="diagonal_relaxed")
    per_user = frame.group_by("user_number").agg(
        pl.col("distinct_id").n_unique().alias("ids"),
        (pl.col("event") == "$identify").sum().alias("identifies"),
    )
    assert per_user.filter(pl.col("identifies") > 0).height >= 100
    assert ((per_user["ids"] - 1) == per_user["identifies"]).all()


def test_edits_in_the_spec_change_the_twin(spec: TwinSpec) -> None:
    start = spec.document.generation.start
    base = Generator(spec)
    dropped = Generator(spec.with_generation(drop_events=["report_viewed"]))
    day = start + dt.timedelta(days=3)
    assert "report_viewed" in base.day(day)["event"].to_list()
    assert "report_viewed" not in dropped.day(day)["event"].to_list()
    # Dropping an event stops recording it; everything else the twin does stays as it was (other events do
    # not fill its place, which made sessions longer by the dropped event's share).
    kept = base.day(day).filter(pl.col("event") != "report_viewed")
    assert dropped.day(day).drop("sequence").equals(kept.drop("sequence"))
    assert (
        dropped.day(day)
        .group_by("$session_id")
        .agg((pl.col("sequence") == pl.int_range(pl.len())).all().alias("numbered"))["numbered"]
        .all()
    )
    more = Generator(spec.with_generation(users=2 * spec.document.generation.users))
    assert more.day(day).height > 1.6 * base.day(day).height
    # Churn x4 (hazards x4, i.e. survival S(t) ** 4): more lives end inside the window, and sooner. Two of
    # the example's three kinds of user never leave (their classes' curves stay at 1), so the users of the
    # class that does are the ones whose lives shorten: every life is as long or shorter (the same draws),
    # 18 % of them shorter.
    days = spec.document.generation.days
    base_life = np.minimum(base.population.lifetime, days)
    churny_life = np.minimum(Generator(spec.with_generation(churn_multiplier=4.0)).population.lifetime, days)
    assert (churny_life <= base_life).all() and (churny_life < base_life).mean() > 0.1
    assert (churny_life < days).mean() > (base_life < days).mean()
    assert churny_life.mean() < base_life.mean()


def test_generation_is_vectorized_at_a_useful_rate(spec: TwinSpec) -> None:
    import time

    gen = Generator(spec.with_generation(users=20_000))
    start = spec.document.generation.start
    gen.active_by_day  # noqa: B018 - the population and its activity are drawn once per run
    cpu = time.process_time()
    rows = sum(gen.day(start + dt.timedelta(days=d)).height for d in range(7))
    per_cpu_second = rows / (time.process_time() - cpu)
    assert rows > 100_000
    assert per_cpu_second > 150_000, per_cpu_second  # benchmarks/twin.py measures the real rate (>= 1M/s)
    assert np.isfinite(per_cpu_second)


def test_text_properties_are_codes_into_their_values_and_read_back_as_text(
    spec: TwinSpec, tmp_path: Path
) -> None:
    import duckdb

    gen = Generator(spec)
    day = gen.day(spec.document.generation.start + dt.timedelta(days=2))
    text_keys = [
        k
        for k, kind in gen.kinds.items()
        if k in gen.presence and kind not in ("boolean", "integer", "number")
    ]
    assert text_keys
    for key in text_keys:  # an Enum of the spec's values: a day is drawn as codes, never as a string per row
        assert isinstance(day.schema[key], pl.Enum), (key, day.schema[key])
        assert set(day[key].drop_nulls().cast(pl.String)) <= set(day.schema[key].categories)
    # A day without events has the same columns and types, so days concatenate.
    assert empty_frame(gen).schema == day.schema
    path = tmp_path / "day.parquet"
    day.write_parquet(path)
    types = dict(
        duckdb.sql(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{path}')").fetchall()
    )
    assert types[text_keys[0]] == "VARCHAR"
    assert pl.read_parquet(path).equals(day)


def test_urls_keep_their_path_and_lose_query_strings_and_fragments() -> None:
    # 40 users each on their own query string and fragment: only the paths may reach the spec.
    users = np.repeat(np.arange(40), 3)
    sample = pl.DataFrame(
        {
            "user": users,
            "event": "$pageview",
            "$current_url": [f"https://shop.example/item/{u % 2}?id={u}&token=t{u}" for u in users],
            "page": [f"/cart#step-{u}" if u % 4 == 0 else f"/item?ref=r{u}" for u in users],
            "note": [f"why?{u}" for u in users],  # not a URL or a path: left as it is (and rare, so dropped)
        }
    )
    model = fit_properties(
        sample, ["$current_url", "page", "note"], k=5, levels=11, max_categories=50, dropped=[]
    )
    # Each user keeps one page here, so the keys are per-user constants; either way only paths are kept.
    values = pl.concat([model.categories.select("key", "value"), model.marginals.select("key", "value")])
    kept = values.filter(pl.col("value") != OTHER)
    assert set(kept.filter(pl.col("key") == "$current_url")["value"]) == {
        "https://shop.example/item/0",
        "https://shop.example/item/1",
    }
    assert set(kept.filter(pl.col("key") == "page")["value"]) == {"/cart", "/item"}
    assert not model.combos.select(pl.col(pl.String).str.contains("[?#]").any()).row(0)[0]
    assert model.urls_trimmed == 2 * users.size
    assert {d["key"] for d in model.dropped} == {"note"}


def test_a_class_s_own_combinations_decide_its_users_constants(spec: TwinSpec) -> None:
    from simulation_assets.core.twin.generate import Generator

    constants = spec.document.properties["constants"]
    assert constants and spec.tables["class_combos"].height > 0  # the fit writes them
    # Class 0 made to use one combination only, the whole population's first.
    first = spec.tables["constant_combos"].head(1).select(constants)
    forced = first.select(pl.lit(0, pl.Int16).alias("class"), *constants, pl.lit(1.0).alias("share"))
    gen = Generator(TwinSpec(spec.document, {**spec.tables, "class_combos": forced}))
    pop = gen.population
    zero = pop.constant_codes[pop.cls == 0]
    assert zero.shape[0] > 0 and (zero == zero[0]).all()
    others = pop.constant_codes[pop.cls != 0]
    assert others.shape[0] > 0 and not (others == zero[0]).all()


@pytest.mark.parametrize("shape", ["batch", "csv"])
def test_properties_named_like_the_events_own_columns_are_not_modelled(shape: str, tmp_path: Path) -> None:
    # Events whose properties are called timestamp, event and sequence (HogFlix's carry a `sequence`): read as
    # properties they stood in the place of the events' own columns (a batch export's JSON and the UI's CSV
    # failed to read with a duplicate column; drawn, `sequence` overwrote the twin's order within sessions).
    from simulation_assets_tests.twin.conftest import CFG, block_sessions, fit_file, generate_all

    g = np.random.default_rng(3)
    active = g.random((200, 21)) < 0.4
    active[:, 0] = True
    rows = block_sessions(active, g, dt.date(2026, 3, 2), np.full(200, 0.5), np.full(200, 0.3),
                          [("view", 20.0), ("leave", 1.0)], [("play", 60.0), ("stop", 1.0)])  # fmt: skip
    own = [
        pl.format("e-{}", pl.int_range(pl.len())).alias("uuid"),
        pl.col("action").alias("event"),
        pl.col("account").cast(pl.String).alias("distinct_id"),
    ]
    named = [
        (pl.col("at_ms") / 1000.0).alias("timestamp"),
        pl.lit("clicked").alias("event"),
        (pl.int_range(pl.len()) % 7).alias("sequence"),
        pl.lit("Chrome").alias("browser"),
    ]
    if shape == "batch":  # Parquet with JSON properties
        path = tmp_path / "events.parquet"
        rows.select(
            *own,
            pl.struct(named).struct.json_encode().alias("properties"),
            pl.col("at_ms").cast(pl.Datetime("ms", "UTC")).alias("timestamp"),
        ).write_parquet(path)
    else:  # the UI's CSV, properties flattened
        path = tmp_path / "events.csv"
        at = pl.col("at_ms").cast(pl.Datetime("ms", "UTC")).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        flat = [e.cast(pl.String).name.prefix("properties.") for e in named]
        rows.select(*own, pl.lit(None, pl.String).alias("person_id"), at.alias("timestamp"), *flat).write_csv(
            path
        )
    _, spec = fit_file(path, CFG, None)
    kinds = spec.document.properties["kinds"]
    assert not {"timestamp", "event", "sequence"} & set(kinds) and "browser" in kinds, kinds
    twin = generate_all(spec)
    assert twin.schema["timestamp"] == pl.Datetime("ms", "UTC")
    assert "clicked" not in set(twin["event"]) and set(twin["browser"].drop_nulls()) == {"Chrome"}
    order = twin.group_by("$session_id").agg(pl.col("sequence").sort().alias("s"), pl.len().alias("n"))
    assert (order["s"].list.first() == 0).all() and (order["s"].list.last() == order["n"] - 1).all()
