"""The export reader turns every PostHog export shape (and generic tables) into the same normalized rows."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from simulation_assets.sinks.posthog_export import (
    EXPORT_SCHEMA,
    ColumnMapping,
    ExportError,
    open_export,
    read_export,
    write_export,
)

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 2, 9, 15, 30, 123456, tzinfo=UTC)


def _events() -> pl.DataFrame:
    """Six events of two users, with string, number, boolean and nested properties."""
    return pl.DataFrame(
        {
            "uuid": [f"0190f000-0000-7000-8000-00000000000{i}" for i in range(6)],
            "event": ["$pageview", "clicked", "$pageleave", "$pageview", "$identify", "purchase"],
            "distinct_id": ["anon-1", "anon-1", "anon-1", "u2", "u2", "u2"],
            "timestamp": [T0 + dt.timedelta(seconds=s) for s in (0, 5, 9, 3600, 3601, 3700)],
            "$session_id": ["s-1", "s-1", "s-1", "s-2", "s-2", None],
            "$browser": ["Firefox", "Firefox", "Firefox", "Safari", "Safari", "Safari"],
            "$current_url": [
                "https://a.test/x?q=1",
                None,
                "https://a.test/x?q=1",
                "https://a.test/",
                None,
                None,
            ],
            "amount": [None, None, None, None, None, 12.5],
            "is_trial": [True, True, True, False, False, False],
            "$set": [None, None, None, None, {"plan": "pro"}, None],
        },
        schema_overrides={"$set": pl.Struct({"plan": pl.String})},
    )


SHAPES = ("batch-parquet", "batch-jsonl", "csv", "table")
SUFFIX = {"batch-parquet": "parquet", "batch-jsonl": "jsonl", "csv": "csv", "table": "parquet"}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_reads_back_to_the_same_normalized_rows(tmp_path: Path, shape: str) -> None:
    path = write_export(_events(), tmp_path / f"export.{SUFFIX[shape]}", shape)  # type: ignore[arg-type]
    got = read_export(path, properties=["$browser", "$current_url", "amount", "is_trial", "$set"])
    assert list(got.columns[:6]) == list(EXPORT_SCHEMA)
    assert got.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert got["event"].to_list() == _events()["event"].to_list()
    assert got["distinct_id"].to_list() == ["anon-1"] * 3 + ["u2"] * 3
    assert got["timestamp"].to_list() == _events()["timestamp"].to_list()  # microseconds kept
    assert got["session_id"].to_list() == ["s-1", "s-1", "s-1", "s-2", "s-2", None]
    assert got["$browser"].to_list() == ["Firefox"] * 3 + ["Safari"] * 3
    assert got["$current_url"].to_list()[:4] == [
        "https://a.test/x?q=1",
        None,
        "https://a.test/x?q=1",
        "https://a.test/",
    ]
    assert float(got["amount"][5]) == 12.5 and got["amount"].null_count() == 5
    assert got["is_trial"].to_list() == ["true"] * 3 + ["false"] * 3
    assert json.loads(got["$set"][4]) == {"plan": "pro"} and got["$set"].null_count() == 5


def test_batch_export_properties_are_one_json_object_per_row(tmp_path: Path) -> None:
    path = write_export(_events(), tmp_path / "export.parquet", "batch-parquet")
    raw = pl.read_parquet(path)
    assert raw.columns == ["uuid", "event", "distinct_id", "person_id", "properties", "person_properties",
                           "elements_chain", "timestamp", "created_at", "_inserted_at"]  # fmt: skip
    # A key whose value is null on a row is not sent on that row (as a client would not send it).
    assert json.loads(raw["properties"][1]) == {"$session_id": "s-1", "$browser": "Firefox", "is_trial": True}
    got = read_export(path)
    assert json.loads(got["properties"][5]) == {"$browser": "Safari", "amount": 12.5, "is_trial": False}


def test_ui_csv_with_star_prefixed_headers_is_understood(tmp_path: Path) -> None:
    plain = write_export(_events(), tmp_path / "plain.csv", "csv")
    text = plain.read_text().splitlines()
    header = ",".join("*." + h if not h.startswith("properties.") else "*." + h for h in text[0].split(","))
    starred = tmp_path / "starred.csv"
    starred.write_text("\n".join([header + ",person.distinct_ids", *[r + ",x" for r in text[1:]]]) + "\n")
    export = open_export(starred)
    assert export.shape == "csv" and export.fields["event"] == "*.event"
    got = export.frame(["$browser"])
    assert got["session_id"].to_list()[:3] == ["s-1"] * 3 and got["$browser"][3] == "Safari"


def test_a_folder_of_batch_files_with_a_manifest_reads_as_one_export(tmp_path: Path) -> None:
    events = _events()
    folder = tmp_path / "2026-03-02_events"
    write_export(events.head(3), folder / "part-0.jsonl.gz.tmp", "batch-jsonl")
    (folder / "part-0.jsonl.gz").write_bytes(gzip.compress((folder / "part-0.jsonl.gz.tmp").read_bytes()))
    (folder / "part-0.jsonl.gz.tmp").unlink()
    write_export(events.tail(3), folder / "nested" / "part-1.jsonl", "batch-jsonl")
    (folder / "manifest.json").write_text(json.dumps({"files": ["part-0.jsonl.gz", "nested/part-1.jsonl"]}))
    export = open_export(folder)
    assert len(export.files) == 2 and export.file_format == "jsonl"
    assert export.count() == 6
    got = export.frame("none").sort("timestamp")
    assert got["event"].to_list() == events["event"].to_list()
    assert open_export(str(folder / "**" / "*.jsonl*")).count() == 6  # a glob works too


def test_zstd_compressed_json_lines_read_like_plain_ones(tmp_path: Path) -> None:
    # PostHog's batch export (and DuckDB's COPY) can write zstd; its first lines are read to find the columns.
    plain = write_export(_events(), tmp_path / "plain.jsonl", "batch-jsonl")
    packed = tmp_path / "export.jsonl.zst"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT content FROM read_text('{plain}')) TO '{packed}' (FORMAT CSV, HEADER false, "
                    "QUOTE '', ESCAPE '', DELIMITER '\x01', COMPRESSION zstd)")  # fmt: skip
    export = open_export(packed)
    assert export.file_format == "jsonl" and export.json_properties is not None
    got = export.frame("none").sort("timestamp")
    assert got["event"].to_list() == _events()["event"].to_list()


def test_jsonl_properties_given_as_a_json_encoded_string_are_decoded(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    rows = [
        {"uuid": "a", "event": "x", "distinct_id": 7, "timestamp": "2026-03-02T10:00:00+02:00",
         "properties": json.dumps({"$session_id": "s", "k": 1})},
        {"uuid": "b", "event": "y", "distinct_id": "7", "timestamp": "2026-03-02 08:00:01",
         "properties": {"k": 2}},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    got = read_export(path, properties=["k"])
    assert got["distinct_id"].to_list() == ["7", "7"]  # numbers become text
    assert got["k"].to_list() == ["1", "2"] and got["session_id"].to_list() == ["s", None]
    # An offset is converted to UTC; a naive timestamp is taken as UTC.
    assert got["timestamp"].to_list() == [
        dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 2, 8, 0, 1, tzinfo=UTC),
    ]


def test_a_generic_table_reads_through_a_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "tracker.csv"
    path.write_text(
        "uid,when_ms,name,visit,plan,country\n"
        "42,1772442930000,open,v1,free,DE\n"
        "42,1772442931500,save,v1,free,DE\n"
        "43,1772443000000,open,,pro,FR\n"
    )
    mapping = ColumnMapping.parse("user_id=uid,timestamp=when_ms,event=name,session_id=visit")
    export = open_export(path, mapping)
    assert export.shape == "table" and sorted(export.property_columns) == ["country", "plan", "visit"]
    got = export.frame(["plan", "country"])
    assert got["distinct_id"].to_list() == ["42", "42", "43"]
    assert got["timestamp"][1] == dt.datetime(2026, 3, 2, 9, 15, 31, 500000, tzinfo=UTC)  # epoch ms
    assert got["session_id"].to_list() == ["v1", "v1", None]
    assert got["plan"].to_list() == ["free", "free", "pro"]
    only = open_export(
        path, ColumnMapping.parse("user_id=uid,timestamp=when_ms,event=name,property_columns=plan")
    )
    assert list(only.property_columns) == ["plan"]
    seconds = tmp_path / "seconds.parquet"
    pl.DataFrame({"distinct_id": ["a"], "timestamp": [1772442930], "event": ["e"]}).write_parquet(seconds)
    assert read_export(seconds)["timestamp"][0] == dt.datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC)  # epoch s


def test_batches_stream_the_same_rows_in_bounded_frames(tmp_path: Path) -> None:
    big = pl.concat([_events()] * 500)
    path = write_export(big, tmp_path / "big.parquet", "batch-parquet")
    export = open_export(path)
    parts = list(export.batches(["$browser"], rows=1024))
    assert len(parts) >= 3 and max(p.height for p in parts) <= 2048
    assert pl.concat(parts).equals(export.frame(["$browser"]))


def test_property_keys_count_keys_per_event_with_their_json_types(tmp_path: Path) -> None:
    path = write_export(_events(), tmp_path / "export.parquet", "batch-parquet")
    keys = open_export(path).property_keys()
    row = keys.filter((pl.col("event") == "purchase") & (pl.col("key") == "amount")).row(0, named=True)
    assert row["rows"] == 1 and row["event_rows"] == 1 and row["share"] == 1.0 and row["types"] == "DOUBLE"
    pv = keys.filter(pl.col("event") == "$pageview")
    assert dict(zip(pv["key"], pv["rows"])) == {
        "$browser": 2,
        "$current_url": 2,
        "$session_id": 2,
        "is_trial": 2,
    }


def test_reads_for_the_fit_leave_out_what_it_does_not_use(tmp_path: Path) -> None:
    path = write_export(_events(), tmp_path / "export.parquet", "batch-parquet")
    export = open_export(path)
    full, light = export.frame("none"), export.frame("none", uuid=False)
    assert full["uuid"].null_count() == 0 and light["uuid"].null_count() == light.height
    assert light.drop("uuid").equals(full.drop("uuid"))
    # A sample reads only the columns rows are made of (not e.g. person properties or elements chains).
    sampled = export.select_sql("json", sample_rows=10)
    assert "person_properties" in export.raw_columns and "person_properties" not in sampled
    assert "__raw_timestamp" not in sampled  # typed timestamps cannot be unreadable, only missing


# ---- errors name the file and the problem ------------------------------------------------------------------------


def _raises(match: str, source: object, mapping: ColumnMapping | None = None) -> ExportError:
    with pytest.raises(ExportError, match=match) as info:
        read_export(source, mapping)  # type: ignore[arg-type]
    return info.value


def test_missing_empty_and_unreadable_sources_are_named(tmp_path: Path) -> None:
    assert _raises("no such file or folder", tmp_path / "nope.parquet").source.endswith("nope.parquet")
    (tmp_path / "empty.jsonl").write_text("")
    assert "empty.jsonl: the file is empty" in str(_raises("the file is empty", tmp_path / "empty.jsonl"))
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "manifest.json").write_text("{}")
    _raises("holds no export files", tmp_path / "folder")
    _raises("no file matches", str(tmp_path / "*.parquet"))
    (tmp_path / "x.jsonl.br").write_bytes(b"\x00")
    _raises(r"\.br compression is not readable", tmp_path / "x.jsonl.br")


def test_malformed_json_lines_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"event":"a","distinct_id":"x","timestamp":"2026-01-01T00:00:00Z"}\n{"event": oops}\n')
    err = _raises("line 2 is not JSON", path)
    assert err.source.endswith("bad.jsonl")
    late = tmp_path / "late.jsonl"
    good = '{"event":"a","distinct_id":"x","timestamp":"2026-01-01T00:00:00Z","properties":{}}\n'
    late.write_text(
        good * 30 + "{not json\n"
    )  # beyond the lines sniffed for columns: DuckDB's error, same class
    assert "late.jsonl" in str(_raises("late.jsonl", late))
    # A JSON array (one-line or pretty-printed) and pretty-printed objects are named for what they are.
    for text in ("[" + good.strip() + "]\n", "[\n  " + good.strip() + "\n]\n"):
        (tmp_path / "array.json").write_text(text)
        _raises("holds a JSON array, not JSON lines", tmp_path / "array.json")
    (tmp_path / "pretty.jsonl").write_text('{\n  "event": "a"\n}\n')
    _raises("an object spread over several lines", tmp_path / "pretty.jsonl")


def test_missing_columns_and_bad_mappings_list_what_exists(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("user,ts,name\nu,2026-01-01T00:00:00Z,e\n")
    err = _raises(r"no event / distinct_id / timestamp column", path)
    assert "Columns are: user, ts, name" in str(err) and "column mapping" in str(err)
    _raises(r"does not have: timestamp=when; columns are: user, ts, name", path,
            ColumnMapping(user_id="user", timestamp="when", event="name"))  # fmt: skip
    with pytest.raises(ValueError, match="unknown field 'who'"):
        ColumnMapping.parse("who=user")


def test_rows_without_event_id_or_timestamp_are_refused_with_counts(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "distinct_id,timestamp,event\nu,2026-01-01T00:00:00Z,e\n,2026-01-01T00:00:01Z,e\n"
        "u,yesterday,e\nu,2026-01-01T00:00:02Z,\n"
    )
    err = str(_raises("row", path))
    assert "1 row(s) without an event name" in err and "1 row(s) without a distinct id" in err
    assert "1 row(s) whose column 'timestamp' is not a timestamp, e.g. 'yesterday'" in err


def test_an_export_with_a_header_and_no_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("distinct_id,timestamp,event\n")
    _raises("holds no events", path)


def test_mixed_formats_in_one_folder_are_refused(tmp_path: Path) -> None:
    write_export(_events(), tmp_path / "f" / "a.parquet", "batch-parquet")
    write_export(_events(), tmp_path / "f" / "b.jsonl", "batch-jsonl")
    _raises("mixes file formats", tmp_path / "f")


def test_session_ids_are_found_in_compact_and_spaced_json(tmp_path: Path) -> None:
    head = '{"event":"a","distinct_id":"x","timestamp":"2026-01-01T00:00:00Z","properties":'
    path = tmp_path / "s.jsonl"
    path.write_text(
        head
        + '{"$session_id":"s1"}}\n'
        + head
        + '{"k": 1, "$session_id" :  "s2"}}\n'
        + head
        + '{"k":"\\"$session_id\\":\\"not-a-key"}}\n'
        + head
        + '{"k":1}}\n'
    )
    assert read_export(path, properties="none")["session_id"].to_list() == ["s1", "s2", None, None]


def test_the_first_rows_are_read_past_an_object_larger_than_the_head_read_s_buffer(tmp_path: Path) -> None:
    # The head read fills a 16 MB buffer (not the full reads' 256 MB): a 17 MB first row must still be read.
    head = '{"event":"a","distinct_id":"x","timestamp":"2026-01-01T00:00:00Z","properties":'
    big = head + json.dumps({"$session_id": "s1", "blob": "x" * (17 << 20)}) + "}\n"
    rest = "".join(head + json.dumps({"k": i}) + "}\n" for i in range(3))
    (tmp_path / "e.jsonl.gz").write_bytes(gzip.compress((big + rest).encode(), compresslevel=1))
    export = open_export(tmp_path)
    assert export.session_share_at_head() == 0.25
    assert export.count() == 4


def test_key_statistics_of_property_columns_are_counted_column_by_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wide UI CSV (200 sparse columns): the statistics are the ones one JSON object a row gives, read key by key,
    and no JSON object a row is built for them (that way every key parsed the whole object again: 34 CPU seconds
    for a 306-column CSV of 15,000 rows; the cost itself belongs to a benchmark, not to a test)."""
    from simulation_assets.sinks.posthog_export.source import _key_stats_frame, _key_stats_sql

    n, wide = 1_200, 200
    cols: dict[str, list] = {
        "uuid": [f"e{i}" for i in range(n)],
        "event": ["$pageview" if i % 3 else "settings_changed" for i in range(n)],
        "distinct_id": [f"u{i % 40}" for i in range(n)],
        "timestamp": [f"2026-03-02T09:{i % 60:02d}:00+02:00" for i in range(n)],
    }
    for k in range(wide):
        cols[f"properties.cfg_{k:03d}"] = [
            ("on" if i % 2 else "7") if (i * 7 + k) % 11 == 0 else "" for i in range(n)
        ]
    path = tmp_path / "wide.csv"
    pl.DataFrame(cols).write_csv(path)
    export = open_export(path)
    con = export._connect()
    try:
        by_object = _key_stats_frame(
            export._run(con, _key_stats_sql(export.select_sql("json", sample_rows=20_000)))
        )
    finally:
        con.close()
    statements: list[str] = []
    run = type(export)._run

    def recorded(self, con, sql):  # noqa: ANN001, ANN202 - records each statement the export runs
        statements.append(sql)
        return run(self, con, sql)

    monkeypatch.setattr(type(export), "_run", recorded)
    by_column = export.property_keys(20_000)

    # (Each key's types as a set: string_agg's order of distinct values is DuckDB's.)
    def settled(keys: pl.DataFrame) -> pl.DataFrame:
        return keys.with_columns(pl.col("types").str.split(",").list.sort().list.join(",")).sort(
            "event", "key"
        )

    assert by_column.height == 2 * wide and settled(by_column).equals(settled(by_object))
    row = by_column.filter((pl.col("event") == "$pageview") & (pl.col("key") == "cfg_005")).row(0, named=True)
    assert row["rows"] == row["event_rows"] == 800 and row["types"] == "NULL,VARCHAR" and row["users"] > 5
    assert statements and not any("json_object(" in sql for sql in statements)
