"""The opt-in dirt profile: off by default, injected after generation exactly as the checks report it.

The round trip through the dbt staging models (``simulate warehouse --dbt`` with the profile on) is in
test_load.py; here the injection itself, on DEV tables in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import polars as pl
import pytest

from simulation_assets.core.warehouse import dirt, schema
from simulation_assets.core.warehouse.checks import run_checks, warehouse_checks
from simulation_assets.core.warehouse.config import WarehouseConfig, row_counts
from simulation_assets.core.warehouse.generate import Warehouse
from simulation_assets.core.warehouse.sampling import dirty_count

DIRTY = WarehouseConfig(dirt={"enabled": True})  # type: ignore[arg-type]
# the dirty tables and the parents their keys and temporal rules point to
TABLES = [
    "accounts", "stripe_customers", "stripe_events", "hubspot_companies", "hubspot_contacts", "hubspot_deals",
    "hubspot_engagements", "hubspot_tickets", "marketing_campaigns", "ga_sessions",
]  # fmt: skip


@pytest.fixture(scope="module")
def dirty() -> Warehouse:
    return Warehouse(42, "dev", DIRTY)


def test_the_profile_is_off_by_default(dev_warehouse: Warehouse) -> None:
    rows = row_counts("dev")
    assert dev_warehouse.whole("hubspot_contacts")["job_title"].null_count() == 0
    assert not dev_warehouse.whole("hubspot_tickets")["archived"].any()
    events = dev_warehouse.whole("stripe_events")
    assert events.height == rows["stripe_events"] == events["event_id"].n_unique()
    delay = (events["received_at"] - events["created"]).dt.total_seconds()
    assert delay.min() >= 1 and delay.max() <= 30
    assert set(dev_warehouse.whole("hubspot_engagements")["engagement_source"]) == {
        "CRM_UI",
        "EMAIL_INTEGRATION",
    }
    assert set(dirt.injected(WarehouseConfig(), rows).values()) == {0}


def test_each_kind_injects_exactly_what_the_checks_expect(dev_warehouse: Warehouse, dirty: Warehouse) -> None:
    rows = row_counts("dev")
    counts = dirt.injected(DIRTY, rows)
    assert (
        counts["job_title_nulls"]
        == dirty.whole("hubspot_contacts")["job_title"].null_count()
        == dirty_count(500, 0.03, 11)
    )
    assert counts["landing_page_nulls"] == dirty.whole("ga_sessions")["landing_page"].null_count()
    assert counts["archived_tickets"] == int(dirty.whole("hubspot_tickets")["archived"].sum())
    events = dirty.whole("stripe_events")
    assert events.height == rows["stripe_events"] + counts["duplicate_events"]
    assert events.height - events["event_id"].n_unique() == counts["duplicate_events"]
    late = events.filter(pl.col("received_at") > pl.col("created") + pl.duration(hours=1))
    assert late.height == counts["late_events"]
    engagements = dirty.whole("hubspot_engagements")
    assert (engagements["engagement_source"] == dirt.IMPORT).sum() == counts["naive_timestamps"]
    # a few percent each (DEV: 10,000 Stripe events, 2,500 engagements): enough to matter, not the whole table
    assert 150 <= counts["duplicate_events"] <= 250 and 70 <= counts["late_events"] <= 130
    assert 90 <= counts["naive_timestamps"] <= 160 and 700 <= counts["landing_page_nulls"] <= 1_100
    expected = {c.name: c.expected for c in dirt.checks(TABLES, rows, DIRTY)}
    assert expected == {f"{k.table}_{k.name}_as_injected": counts[k.name] for k in dirt.KINDS}
    # nothing else changes
    clean_events = dev_warehouse.whole("stripe_events")
    firsts = events.filter(pl.col("delivery_id") <= rows["stripe_events"])
    assert firsts.drop("received_at").equals(clean_events.drop("received_at"))
    assert dirty.whole("hubspot_contacts")["email"].equals(dev_warehouse.whole("hubspot_contacts")["email"])


def test_the_dirt_of_each_kind_looks_like_the_real_thing(dev_warehouse: Warehouse, dirty: Warehouse) -> None:
    rows = row_counts("dev")["stripe_events"]
    events = dirty.whole("stripe_events")
    hours = (events["received_at"] - events["created"]).dt.total_seconds() / 3600
    late = hours > 1
    assert hours.filter(late).min() > 1 and hours.filter(late).max() <= 72
    # a repeat is the same event delivered again 2-50 minutes after the first delivery, with its own key
    repeats = events.filter(pl.col("delivery_id") > rows)
    first = events.filter(pl.col("delivery_id") <= rows).join(
        repeats.select("event_id", "received_at"), on="event_id", suffix="_again"
    )
    gap = (first["received_at_again"] - first["received_at"]).dt.total_seconds()
    assert first.height == repeats.height and gap.min() >= 120 and gap.max() <= 3_000
    assert events["delivery_id"].n_unique() == events.height
    # an imported engagement's occurred_at is New York wall-clock time of the true UTC instant
    clean = dev_warehouse.whole("hubspot_engagements")
    both = dirty.whole("hubspot_engagements").join(clean, on="engagement_id", suffix="_utc")
    imported = both.filter(pl.col("engagement_source") == dirt.IMPORT)
    local = imported["occurred_at_utc"].dt.replace_time_zone("UTC").dt.convert_time_zone("America/New_York")
    assert imported["occurred_at"].equals(local.dt.replace_time_zone(None), check_names=False)
    behind = (imported["occurred_at_utc"] - imported["occurred_at"]).dt.total_hours()
    assert set(behind) == {4, 5}  # EDT and EST
    untouched = both.filter(pl.col("engagement_source") != dirt.IMPORT)
    assert untouched["occurred_at"].equals(untouched["occurred_at_utc"], check_names=False)


def test_a_chunks_dirt_does_not_depend_on_the_other_chunks(dirty: Warehouse) -> None:
    cfg, n = DIRTY, schema.table("stripe_events").chunks
    fresh = Warehouse(42, "dev", cfg)
    chunks = [fresh.chunk("stripe_events", k) for k in reversed(range(n))][::-1]
    assert pl.concat(chunks).equals(dirty.whole("stripe_events"))
    for k, chunk in enumerate(chunks):
        start, stop = fresh.chunk_rows("stripe_events", k)
        assert chunk.height == dirt.loaded_rows(cfg, "stripe_events", start, stop)
    assert dirty.chunk("ga_sessions", 2)["landing_page"].null_count() == dirty.whole("ga_sessions")[
        "landing_page"][15_000:22_500].null_count()  # fmt: skip


@pytest.fixture(scope="module")
def dirty_db(dirty: Warehouse) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    for name in TABLES:
        con.register(
            "frame", dirty.whole(name).with_columns(pl.col(pl.Categorical).cast(pl.String)).to_arrow()
        )
        con.execute(f"CREATE TABLE raw.{name} AS SELECT * FROM frame")
        con.unregister("frame")
    yield con
    con.close()


def test_the_checks_pass_on_dirty_data_and_the_integrity_checks_see_through_it(
    dirty_db: duckdb.DuckDBPyConnection,
) -> None:
    checks = warehouse_checks(TABLES, "dev", DIRTY)
    results = run_checks(checks, lambda sql: dirty_db.execute(sql).fetchall())
    assert [r.name for r in results if not r.passed] == []
    by_name = {r.name: r for r in results}
    assert by_name["stripe_events_row_count"].value == row_counts("dev")["stripe_events"] + by_name[
        "stripe_events_duplicate_events_as_injected"].value  # fmt: skip
    assert all(by_name[f"{k.table}_{k.name}_as_injected"].value > 0 for k in dirt.KINDS)
    # an import logged 2 h before its deal's creation in New York wall-clock time is 2-3 h after it in UTC:
    # the temporal check converts the naive time back, the same check without the profile sees a violation
    dirty_db.execute("BEGIN TRANSACTION")
    try:
        dirty_db.execute(
            "UPDATE raw.hubspot_engagements e SET occurred_at = d.created_at - INTERVAL 2 HOUR "
            "FROM raw.hubspot_deals d WHERE d.deal_id = e.deal_id AND e.engagement_source = 'IMPORT'"
        )
        temporal = [c for c in checks if c.name == "hubspot_engagements_temporal_order"]
        clean_rule = [
            c for c in warehouse_checks(TABLES, "dev", WarehouseConfig()) if c.name == temporal[0].name
        ]
        [as_utc] = run_checks(temporal, lambda sql: dirty_db.execute(sql).fetchall())
        [as_is] = run_checks(clean_rule, lambda sql: dirty_db.execute(sql).fetchall())
    finally:
        dirty_db.execute("ROLLBACK")
    assert as_utc.passed and not as_is.passed and as_is.value == by_name[
        "hubspot_engagements_naive_timestamps_as_injected"].value  # fmt: skip
    # and the clean profile's checks see the dirt as dirt
    clean = {c.name: c for c in warehouse_checks(TABLES, "dev", WarehouseConfig())}
    failed = [r.name for r in run_checks(list(clean.values()), lambda sql: dirty_db.execute(sql).fetchall())
              if not r.passed]  # fmt: skip
    assert set(failed) >= {f"{k.table}_{k.name}_as_injected" for k in dirt.KINDS} | {
        "stripe_events_row_count"
    }


def test_the_staging_models_convert_from_the_profiles_time_zone() -> None:
    from pathlib import Path

    import yaml

    import simulation_assets

    dbt_dir = Path(simulation_assets.__file__).resolve().parents[1] / "dbt"  # as sinks/warehouse_dbt.DBT_DIR
    project = yaml.safe_load((dbt_dir / "dbt_project.yml").read_text())
    assert project["vars"]["hubspot_import_timezone"] == WarehouseConfig().dirt.source_timezone
    with pytest.raises(ValueError, match="not an IANA time zone"):
        WarehouseConfig(dirt={"source_timezone": "Mars/Olympus"})  # type: ignore[arg-type]
