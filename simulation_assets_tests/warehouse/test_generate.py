"""The generators: schema, row counts, determinism, chunk independence, distributions and correlations."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.config import WarehouseConfig, row_counts
from simulation_assets.core.warehouse.generate import Warehouse
from simulation_assets.sinks.warehouse_parquet import table_paths, write_tables


def test_every_dev_table_has_the_schema_columns_types_and_spec_row_count(dev_warehouse: Warehouse) -> None:
    rows = row_counts("dev")
    assert rows["tap_events"] == 500_000 and rows["accounts"] == 100 and rows["stripe_prices"] == 12
    for spec in schema.TABLES:
        frame = dev_warehouse.whole(spec.name)
        assert frame.columns == spec.column_names, spec.name
        assert frame.height == rows[spec.name], spec.name
        for col in spec.columns:
            dtype = frame.schema[col.name]
            expected = schema.TYPES[col.type][0]
            assert dtype == expected or (col.type == "text" and dtype == pl.Categorical), (
                spec.name,
                col.name,
            )
            if not col.nullable:
                assert frame[col.name].null_count() == 0, (spec.name, col.name)
        assert frame[spec.primary_key].n_unique() == frame.height, spec.name


def test_every_table_has_one_generator_chunked_exactly_when_the_schema_splits_it() -> None:
    from simulation_assets.core.warehouse.generators import GENERATORS

    assert list(GENERATORS) == list(schema.TABLE_NAMES)
    for name, generator in GENERATORS.items():
        assert generator.chunked == (schema.table(name).chunks > 1), name


def test_prod_sizes_follow_the_specification() -> None:
    rows = row_counts("prod")
    assert rows["tap_events"] == 200_000_000
    assert rows["accounts"] == 40_000 and rows["devices"] == 180_000 and rows["page_views"] == 50_000_000
    assert row_counts("qa")["tap_events"] == 50_000_000


def test_a_chunk_is_identical_whether_generated_alone_or_after_others() -> None:
    alone = Warehouse(7, "qa").chunk("tap_events", 5)
    other = Warehouse(7, "qa")
    for k in (9, 0, 3):
        other.chunk("tap_events", k)
    after = other.chunk("tap_events", 5)
    assert alone.height == 1_250_000
    assert alone.equals(after)
    assert alone["tap_event_id"][0] == 5 * 1_250_000 + 1


def test_same_seed_gives_the_same_bytes_and_another_seed_different_ones(tmp_path: Path) -> None:
    tables = ["accounts", "stripe_invoices", "page_views"]
    write_tables(3, "dev", tmp_path / "a", tables)
    write_tables(3, "dev", tmp_path / "b", list(reversed(tables)))
    write_tables(4, "dev", tmp_path / "c", tables)

    def digest(root: Path, table: str) -> str:
        return hashlib.sha256(b"".join(p.read_bytes() for p in table_paths(root, table))).hexdigest()

    for t in tables:
        assert digest(tmp_path / "a", t) == digest(tmp_path / "b", t), t
        assert digest(tmp_path / "a", t) != digest(tmp_path / "c", t), t


@pytest.mark.slow
def test_chunks_written_by_two_worker_processes_equal_a_sequential_run(tmp_path: Path) -> None:
    tables = ["user_sessions", "device_health"]
    write_tables(11, "dev", tmp_path / "seq", tables, workers=1)
    write_tables(11, "dev", tmp_path / "par", tables, workers=2)
    for t in tables:
        for a, b in zip(table_paths(tmp_path / "seq", t), table_paths(tmp_path / "par", t)):
            assert a.read_bytes() == b.read_bytes(), a.name


def test_categorical_mixes_match_the_specification_exactly(dev_warehouse: Warehouse) -> None:
    cfg = WarehouseConfig()
    acc = dev_warehouse.whole("accounts")
    for column, shares in (("industry", cfg.accounts.industries), ("tier", cfg.accounts.tiers)):
        observed = acc[column].value_counts(normalize=True).to_dict(as_series=False)
        assert dict(zip(observed[column], observed["proportion"])) == pytest.approx(shares, abs=0.011)
    roles = dev_warehouse.whole("users")["role"].value_counts(normalize=True)
    assert dict(roles.iter_rows()) == pytest.approx(cfg.users.roles, abs=0.005)
    status = dev_warehouse.whole("devices")["status"].value_counts(normalize=True)
    assert dict(status.iter_rows()) == pytest.approx(cfg.devices.status, abs=0.005)
    channels = dev_warehouse.whole("marketing_campaigns")["channel"].value_counts(normalize=True)
    assert dict(channels.iter_rows()) == pytest.approx(cfg.marketing.channels, abs=0.021)  # 25 campaigns


def test_mrr_tracks_the_tier_and_bigger_accounts_have_more_users_and_devices() -> None:
    w = Warehouse(42, "qa")
    acc = w.whole("accounts")
    for tier, (lo, hi) in WarehouseConfig().accounts.mrr_usd.items():
        mrr = acc.filter(pl.col("tier") == tier)["mrr_usd"]
        assert lo <= mrr.min() and mrr.max() <= hi
    users = w.whole("users").group_by("account_id").len().join(acc, on="account_id")
    per_tier = dict(users.group_by("tier").agg(pl.col("len").mean()).iter_rows())
    assert per_tier["Basic"] < per_tier["Pro"] < per_tier["Enterprise"]
    assert users["len"].min() >= 2 and users["len"].max() <= 10
    devices = w.whole("devices").group_by("location_id").len()
    assert devices["len"].min() >= 2 and devices["len"].max() <= 5
    locations = w.whole("locations").group_by("account_id").len()
    assert locations["len"].min() >= 1 and locations["len"].max() <= 5


def test_billing_rates_trial_conversion_win_rate_and_churn() -> None:
    w = Warehouse(42, "qa")
    inv = w.whole("stripe_invoices")
    assert (inv["status"] == "paid").mean() == pytest.approx(0.95, abs=1e-9)
    charges = w.whole("stripe_charges")
    paid = inv.filter(pl.col("status") == "paid")
    assert charges["amount"].sum() == paid["amount_paid"].sum()
    subs = w.whole("subscriptions").filter(pl.col("started_with_trial"))
    assert (subs["status"] != "trial_expired").mean() == pytest.approx(0.70, abs=0.01)
    deals = w.whole("hubspot_deals").filter(pl.col("is_closed"))
    assert deals["is_won"].mean() == pytest.approx(0.25, abs=0.005)
    acc = w.whole("accounts")
    end = np.datetime64("2026-01-01")
    years = ((acc["churned_at"].fill_null(end) - acc["created_at"]).dt.total_days() / 365.25).sum()
    assert acc["churned_at"].is_not_null().sum() / years == pytest.approx(0.105, abs=0.02)  # 10% a year


def test_accounts_grow_about_forty_percent_a_year() -> None:
    acc = Warehouse(42, "qa").whole("accounts")
    per_year = acc.group_by(pl.col("created_at").dt.year().alias("y")).len().sort("y")["len"].to_numpy()
    growth = per_year[1:4] / per_year[0:3]
    assert np.all((growth > 1.25) & (growth < 1.6)), growth


def test_taps_peak_in_the_evening_and_vary_by_weekday(dev_warehouse: Warehouse) -> None:
    taps = dev_warehouse.whole("tap_events")
    hours = taps["poured_at"].dt.hour()
    evening = hours.is_between(18, 21).mean()
    assert evening > 0.45
    morning = hours.is_between(4, 9).mean()
    assert morning < 0.02
    weekday = taps["poured_at"].dt.weekday().value_counts(normalize=True).sort("poured_at")
    shares = dict(weekday.iter_rows())
    assert shares[6] > shares[1] * 1.5  # Saturday busier than Monday (weekday 1 = Monday)
    assert taps["volume_ml"].mean() == pytest.approx(0.55 * 473 + 0.08 * 473 + 0.14 * 150 + 0.1 * 120 + 0.05 * 350
                                                    + 0.08 * 400, rel=0.05)  # fmt: skip


def test_poor_device_uptime_comes_with_more_tickets() -> None:
    w = Warehouse(42, "qa")
    uptime = w.account_uptime
    devices = np.bincount(w.device_profile["account"], minlength=len(uptime))
    tickets = np.bincount(w.whole("hubspot_tickets")["account_id"].to_numpy() - 1, minlength=len(uptime))
    per_device = tickets / np.maximum(devices, 1)
    # measured -0.38 (seed 42; -0.14 while poor sites wrongly failed less): poor sites fail more and are less
    # healthy, and health (tier, site, swings) also drives tickets
    assert np.corrcoef(uptime, per_device)[0, 1] < -0.3


def test_attribution_weights_sum_to_one_per_contact_and_touches_are_ordered(dev_warehouse: Warehouse) -> None:
    tp = dev_warehouse.whole("attribution_touchpoints")
    sums = tp.group_by("contact_id").agg(pl.col("attribution_weight").sum())
    assert sums["attribution_weight"].to_numpy() == pytest.approx(1.0, abs=1e-9)
    assert sums.height == 500  # every contact has a journey
    ordered = (
        tp.sort("contact_id", "touch_position")
        .group_by("contact_id", maintain_order=True)
        .agg(pl.col("touched_at").diff().dt.total_seconds().min().alias("gap"))
    )
    assert (ordered["gap"].fill_null(0) >= 0).mean() > 0.95


def test_children_never_start_before_their_parents(dev_warehouse: Warehouse) -> None:
    for spec in schema.TABLES:
        child = dev_warehouse.whole(spec.name)
        for rule in spec.temporal:
            fk = spec.foreign_key(rule.fk_column)
            parent = dev_warehouse.whole(fk.parent).select(
                pl.col(fk.parent_column).alias(fk.column),
                pl.col(rule.parent_column).cast(pl.Datetime("us")).alias("_p"),
            )
            joined = child.select(fk.column, pl.col(rule.column).cast(pl.Datetime("us")).alias("_c")).join(
                parent, on=fk.column
            )
            assert joined.filter(pl.col("_c") < pl.col("_p")).height == 0, (spec.name, rule)


def test_no_prod_chunk_holds_more_than_five_million_rows() -> None:
    rows = row_counts("prod")
    sizes = {spec.name: -(-rows[spec.name] // spec.chunks) for spec in schema.TABLES}
    assert max(sizes.values()) <= 5_000_000, sizes


def test_feature_adoption_follows_an_s_curve_after_each_release() -> None:
    """Accounts there at a release adopt the feature slowly, then fast, then the last few: new adopters per
    month rise to a peak after the first month and fall after it (pooled over the later features)."""
    w = Warehouse(42, "qa")
    created, end = w.account_span
    release_years = w.cfg.activity.feature_release_years
    months_after = []
    for j, name in enumerate(w.cfg.activity.features):
        if release_years[name] <= 0:
            continue
        released = w.history_start + release_years[name] * 365.25 * 86_400
        adopt = w.feature_adoption[:, j]
        there = (created < released) & np.isfinite(adopt) & (end > released + 365 * 86_400)
        months_after.append(((adopt[there] - released) // (30.44 * 86_400)).astype(int))
    new_per_month = np.bincount(np.concatenate(months_after))[:12]
    peak = int(np.argmax(new_per_month))
    assert 1 <= peak <= 4, new_per_month
    assert new_per_month[0] < 0.6 * new_per_month[peak] and new_per_month[11] < 0.3 * new_per_month[peak]


def test_device_health_comes_from_the_outages_of_the_taps(dev_warehouse: Warehouse) -> None:
    """A device down all day pours nothing that day; a repair day is followed by full uptime; offline devices
    stop pouring when last seen."""
    health = dev_warehouse.whole("device_health").with_columns(day=pl.col("recorded_at").dt.date())
    taps = dev_warehouse.whole("tap_events").group_by("device_id", day=pl.col("poured_at").dt.date()).len()
    joined = health.join(taps, on=["device_id", "day"], how="left").with_columns(pl.col("len").fill_null(0))
    down = joined.filter(pl.col("uptime_pct") == 0)
    assert down.height > 50 and down["len"].sum() == 0
    assert down["avg_temperature_c"].null_count() == down.height  # nothing reported while down
    after = health.sort("device_id", "recorded_at").with_columns(
        next_uptime=pl.col("uptime_pct").shift(-1).over("device_id")
    )
    repaired = after.filter(pl.col("maintenance_performed") & pl.col("next_uptime").is_not_null())
    assert repaired.height > 0 and repaired["next_uptime"].min() > 90 and repaired["next_uptime"].mean() > 99
    devices = dev_warehouse.whole("devices").filter(pl.col("status") == "offline")
    last = dev_warehouse.whole("tap_events").group_by("device_id").agg(pl.col("poured_at").max())
    late = devices.join(last, on="device_id").filter(pl.col("poured_at") > pl.col("last_seen_at"))
    assert devices.height > 0 and late.height == 0
