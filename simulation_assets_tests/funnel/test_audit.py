"""The tracking-plan audit of exports the project makes itself: clean, and broken on purpose."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from simulation_assets.cli import main
from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.posthog import property_columns, to_posthog
from simulation_assets.defs.funnel_audit import funnel_tracking_audit
from simulation_assets.sinks.funnel_export import audit_export
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.posthog_export import write_export


@pytest.fixture(scope="module")
def posthog_frame() -> pl.DataFrame:
    events = pl.concat(
        [
            simulate_cohort_events(
                dt.date(2026, 1, 1) + dt.timedelta(days=d), CohortConfig(), 42, 300_000
            ).events
            for d in range(2)
        ]
    )
    return to_posthog(events)


def _broken(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Return the export with known faults, and how many rows or people each fault touches."""
    users = frame.filter(pl.col("event") == "$identify").select(
        pl.col("distinct_id").alias("user"), pl.col("$anon_distinct_id").alias("anon")
    )
    broken_people = users.head(40)
    anon_of = dict(zip(broken_people["user"], broken_people["anon"]))
    purchases = frame.filter(pl.col("event") == "purchase_completed")["uuid"].head(7)
    order_users = users.slice(40, 25)["anon"]
    shifted = (pl.col("event") == "signup_submit") & pl.col("distinct_id").is_in(order_users.implode())
    out = frame.filter(~pl.col("event").is_in(["paywall_view", "plan_changed"])).with_columns(
        pl.when(pl.col("uuid").is_in(purchases.implode()))
        .then(None)
        .otherwise(pl.col("order_id"))
        .alias("order_id"),
        pl.col("price").cast(pl.String),  # prices sent as text
        # upload_view after login still sent with the anonymous id for 40 people
        pl.when((pl.col("event") == "upload_view") & pl.col("distinct_id").is_in(list(anon_of)))
        .then(pl.col("distinct_id").replace(anon_of))
        .otherwise(pl.col("distinct_id"))
        .alias("distinct_id"),
        # signup submitted an hour before the CTA was clicked, for 25 people
        pl.when(shifted)
        .then(pl.col("timestamp") - pl.duration(hours=1))
        .otherwise(pl.col("timestamp"))
        .alias("timestamp"),
    )
    unknown = out.head(11).with_columns(
        pl.lit("checkout_abandoned").alias("event"), pl.col("uuid").str.replace("^.", "f")
    )
    web_after_login = frame.filter(
        (pl.col("event") == "upload_view") & pl.col("distinct_id").is_in(list(anon_of))
    ).height
    return pl.concat([out, unknown]), {
        "missing_order_id": 7,
        "anonymous": web_after_login,
        "order": 25,
        "unknown": 11,
    }


def test_a_clean_export_only_lacks_what_one_day_did_not_produce(posthog_frame, tmp_path) -> None:
    path = write_export(
        posthog_frame, tmp_path / "events.parquet", property_columns=property_columns(posthog_frame)
    )
    report = audit_export(path)
    assert report.shape == "batch" and report.rows == posthog_frame.height
    assert report.problems == len(report.absent_events) and report.absent_events == ["plan_changed"]
    assert not any(a.missing_properties or a.wrong_types for a in report.per_event)
    assert report.unknown_events == {} and report.posthog_events == {
        "$identify": report.stitching.identified_people
    }
    assert (
        report.stitching.events_still_anonymous_after_login == 0
        and report.stitching.logins_without_identify == 0
    )
    assert not any(report.funnel_order.out_of_order.values()) and not any(
        report.funnel_order.without_previous.values()
    )
    purchases = next(a for a in report.per_event if a.event == "purchase_completed")
    assert purchases.rows == posthog_frame.filter(pl.col("event") == "purchase_completed").height > 50


@pytest.mark.parametrize(
    ("shape", "suffix"), [("batch-parquet", "parquet"), ("batch-jsonl", "jsonl"), ("csv", "csv")]
)
def test_the_audit_names_every_fault_planted_in_an_export(posthog_frame, tmp_path, shape, suffix) -> None:
    frame, planted = _broken(posthog_frame)
    path = write_export(
        frame, tmp_path / f"events.{suffix}", shape=shape, property_columns=property_columns(frame)
    )
    report = audit_export(path)
    assert report.absent_events == ["paywall_view", "plan_changed"]
    assert report.unknown_events == {"checkout_abandoned": planted["unknown"]}
    by_event = {a.event: a for a in report.per_event}
    missing = {p.property: p.missing_rows for p in by_event["purchase_completed"].missing_properties}
    assert missing == {"order_id": planted["missing_order_id"]}
    wrong = {p.property for p in by_event["purchase_completed"].wrong_types}
    if shape == "csv":  # text everywhere: a price written as text cannot be told from a number
        assert wrong == set()
    else:
        assert wrong == {"price"}
        assert by_event["purchase_completed"].wrong_types[0].unexpected_json_types == ["VARCHAR"]
    assert report.stitching.events_still_anonymous_after_login == planted["anonymous"] > 0
    assert report.stitching.people_with_anonymous_events_after_login == 40
    assert report.funnel_order.out_of_order == {
        **{k: 0 for k in report.funnel_order.out_of_order},
        "S3|S2": planted["order"],
    }


def test_the_command_writes_audit_json_and_markdown(posthog_frame, tmp_path, capsys) -> None:
    frame, _ = _broken(posthog_frame)
    export = write_export(
        frame, tmp_path / "export" / "events.parquet", property_columns=property_columns(frame)
    )
    out = tmp_path / "audit"
    assert main(["funnel", "audit", "--events", str(export), "--output", str(out)]) == 0
    doc = json.loads((out / "audit.json").read_text())
    assert doc["absent_events"] == ["paywall_view", "plan_changed"] and doc["problems"] >= 6
    md = (out / "audit.md").read_text()
    assert "**absent**" in md and "`checkout_abandoned`" in md and "`order_id` (7 rows)" in md
    assert "found VARCHAR" in md and "events still anonymous after the person logged in" in md
    assert "problem(s)" in capsys.readouterr().out


def _file(folder, name: str, text: str | None):  # noqa: ANN001, ANN202
    path = folder / name
    if text is not None:
        path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.parquet", None, "no such file"),
        ("empty.jsonl", "", "empty"),
        ("bad.jsonl", '{"event": "x"\n', "JSON"),
        ("table.csv", "a,b\n1,2\n", "distinct_id"),
    ],
)
def test_bad_exports_exit_2_with_a_message_and_write_nothing(tmp_path, capsys, name, text, message) -> None:
    source = _file(tmp_path, name, text)
    out = tmp_path / "audit"
    assert main(["funnel", "audit", "--events", str(source), "--output", str(out)]) == 2
    printed = capsys.readouterr().out
    assert message.lower() in printed.lower() and str(source.name) in printed
    assert not out.exists()


def test_the_audit_asset_reads_the_export_from_run_config(posthog_frame, tmp_path) -> None:
    frame, _ = _broken(posthog_frame)
    export = write_export(
        frame, tmp_path / "events.jsonl", shape="batch-jsonl", property_columns=property_columns(frame)
    )
    result = dg.materialize(
        [funnel_tracking_audit],
        resources={"store": LocalParquetStore()},
        run_config={"ops": {"funnel_tracking_audit": {"config": {"events": str(export), "name": "ci"}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    meta = result.asset_materializations_for_node("funnel_tracking_audit")[0].metadata
    assert meta["absent_events"].value == ["paywall_view", "plan_changed"]
    assert meta["problems"].value >= 6 and "checkout_abandoned" in meta["audit"].value
    bad = dg.materialize(
        [funnel_tracking_audit],
        resources={"store": LocalParquetStore()},
        run_config={"ops": {"funnel_tracking_audit": {"config": {"events": str(tmp_path / "nope.csv")}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not bad.success
