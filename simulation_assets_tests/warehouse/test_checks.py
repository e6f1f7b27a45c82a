"""Every warehouse check fails on data broken in the way it guards against.

DEV is loaded once into an in-memory DuckDB; each case corrupts it inside a transaction, runs the one
check it targets, and rolls back. A last test proves every declared check has such a case.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import polars as pl
import pytest

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.checks import rows_match_spec, run_checks, warehouse_checks
from simulation_assets.core.warehouse.config import WarehouseConfig
from simulation_assets.core.warehouse.generate import Warehouse
from simulation_assets_tests.warehouse.test_acquisition import funnel_cases
from simulation_assets_tests.warehouse.test_flows import flow_cases
from simulation_assets_tests.warehouse.test_geography import geography_cases

ALL = list(schema.TABLE_NAMES)
CHECKS = {c.name: c for c in warehouse_checks(ALL, "dev", WarehouseConfig())}


@pytest.fixture(scope="module")
def raw_db(dev_warehouse: Warehouse) -> Iterator[duckdb.DuckDBPyConnection]:
    """DEV's 27 tables in schema ``raw`` of an in-memory DuckDB."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    for name in ALL:
        frame = dev_warehouse.whole(name).with_columns(pl.col(pl.Categorical).cast(pl.String))
        con.register("frame", frame.to_arrow())
        con.execute(f"CREATE TABLE raw.{name} AS SELECT * FROM frame")
        con.unregister("frame")
    yield con
    con.close()


def _failed_after(con: duckdb.DuckDBPyConnection, corruption: list[str], check_name: str) -> bool:
    """Return whether ``check_name`` fails once ``corruption`` ran (always rolled back afterwards)."""
    con.execute("BEGIN TRANSACTION")
    try:
        for sql in corruption:
            con.execute(sql)
        [result] = run_checks([CHECKS[check_name]], lambda sql: con.execute(sql).fetchall())
        return not result.passed
    finally:
        con.execute("ROLLBACK")


def _bad_value(table: str, column: str) -> str:
    return "'missing'" if schema.table(table).column(column).type == "text" else "-1"


def _generic_cases() -> list[tuple[str, list[str]]]:
    """One corruption per (table, kind): a row deleted, a key duplicated, an orphan, a row before its parent."""
    cases = []
    for spec in schema.TABLES:
        t, pk = f"raw.{spec.name}", spec.primary_key
        cases.append((f"{spec.name}_row_count", [f"DELETE FROM {t} WHERE rowid = 0"]))
        cases.append((f"{spec.name}_primary_key_unique",
                      [f"UPDATE {t} SET {pk} = (SELECT {pk} FROM {t} WHERE rowid = 1) WHERE rowid = 0"]))  # fmt: skip
        if spec.foreign_keys:
            fk = spec.foreign_keys[0]
            cases.append((f"{spec.name}_no_orphan_foreign_keys",
                          [f"UPDATE {t} SET {fk.column} = {_bad_value(spec.name, fk.column)} "
                           f"WHERE rowid = (SELECT min(rowid) FROM {t} WHERE {fk.column} IS NOT NULL)"]))  # fmt: skip
        if spec.temporal:
            rule = spec.temporal[0]
            cases.append(
                (
                    f"{spec.name}_temporal_order",
                    [f"UPDATE {t} SET {rule.column} = '1990-01-01' WHERE rowid = 0"],
                )
            )
        elif spec.ordered:
            early, late = spec.ordered[0]
            cases.append((f"{spec.name}_temporal_order",
                          [f"UPDATE {t} SET {early} = '2100-01-01' WHERE rowid = "
                           f"(SELECT min(rowid) FROM {t} WHERE {late} IS NOT NULL)"]))  # fmt: skip
    return cases


SPECIFIC_CASES: list[tuple[str, list[str]]] = [
    ("charge_totals_match_paid_invoices", ["UPDATE raw.stripe_charges SET amount = amount + 1 WHERE rowid = 0"]),
    ("accounts_industry_mix", ["UPDATE raw.accounts SET industry = 'Bar' WHERE rowid < 10"]),
    ("accounts_tier_mix", ["UPDATE raw.accounts SET tier = 'Platinum' WHERE rowid = 0"]),  # a label nobody sells
    ("users_role_mix", ["UPDATE raw.users SET role = 'admin' WHERE role = 'staff' AND rowid < 40"]),
    ("devices_status_mix", ["UPDATE raw.devices SET status = 'online' WHERE status = 'offline'"]),
    ("locations_type_mix", ["UPDATE raw.locations SET location_type = 'Main' WHERE rowid < 15"]),
    ("campaigns_channel_mix", ["UPDATE raw.marketing_campaigns SET channel = 'email' WHERE rowid < 3"]),
    ("invoices_payment_success", ["UPDATE raw.stripe_invoices SET status = 'void' WHERE rowid < 50"]),
    ("deals_win_rate", ["UPDATE raw.hubspot_deals SET is_won = true WHERE is_closed AND rowid < 60"]),
    ("subscriptions_trial_conversion",
     ["UPDATE raw.subscriptions SET status = 'trial_expired' WHERE started_with_trial AND rowid < 30"]),
    ("accounts_mrr_within_tier_range", ["UPDATE raw.accounts SET mrr_usd = 1 WHERE rowid = 0"]),
    ("locations_per_account_bounds", ["UPDATE raw.locations SET account_id = 1 WHERE rowid < 10"]),
    ("attribution_weights_sum_to_one",
     ["UPDATE raw.attribution_touchpoints SET attribution_weight = attribution_weight * 2 WHERE rowid = 0"]),
    ("tap_events_peak_evening", ["UPDATE raw.tap_events SET poured_at = poured_at + INTERVAL 12 HOUR"]),
]  # fmt: skip


def shuffled(table: str, columns: str, key: str) -> list[str]:
    """SQL that shuffles ``columns`` (comma-separated, kept together) across the rows of ``table``: the same
    values, the same table sizes, no structure left between them and the rest of the row."""
    cols = [c.strip() for c in columns.split(",")]
    sets = ", ".join(f"{c} = s.{c}" for c in cols)
    return [
        f"UPDATE raw.{table} AS t SET {sets} FROM (SELECT a.{key} AS k, {', '.join('b.' + c for c in cols)} "
        f"FROM (SELECT {key}, row_number() OVER (ORDER BY {key}) AS r FROM raw.{table}) a "
        f"JOIN (SELECT {columns}, row_number() OVER (ORDER BY hash(CAST({key} AS VARCHAR) || '~')) AS r FROM raw.{table}) b "
        f"ON a.r = b.r) s WHERE t.{key} = s.k"
    ]


# Structure checks: the same tables with the column that carries the structure shuffled. (Shuffling a foreign
# key keeps every parent's child count, so per-parent figures shuffle the parent's attributes instead.)


def days_scattered(table: str, column: str, key: str) -> list[str]:
    """Every row moved by a pseudo-random number of days (0-364): no season, no holiday left."""
    return [f"UPDATE raw.{table} SET {column} = {column} + to_days(CAST(hash({key}) % 365 AS INTEGER))"]


DAYS_SCATTERED = days_scattered("tap_events", "poured_at", "tap_event_id")[0]
ACCOUNT_LIFE = "status"  # who churned, lives unchanged
STRUCTURE_CASES: list[tuple[str, list[str]]] = [
    ("churned_accounts_less_engaged", shuffled("accounts", ACCOUNT_LIFE, "account_id")),
    ("tickets_follow_poor_health", shuffled("accounts", ACCOUNT_LIFE, "account_id")),
    ("payment_failures_precede_churn", shuffled("stripe_invoices", "status", "invoice_id")),
    ("device_outages_raise_churn", shuffled("accounts", ACCOUNT_LIFE, "account_id")),
    ("bigger_accounts_have_more_devices", shuffled("accounts", "mrr_usd", "account_id")),
    # the year-4 sign-ups moved into year 1: growth turns into decline
    (
        "accounts_grow_year_over_year",
        [
            "UPDATE raw.accounts SET created_at = created_at - INTERVAL 3 YEAR "
            "WHERE created_at >= TIMESTAMP '2024-01-01' AND created_at < TIMESTAMP '2025-01-01'"
        ],
    ),
    # the spend's timeline reversed: budgets shrink while sign-ups grow
    (
        "signups_follow_marketing_spend",
        [
            "UPDATE raw.campaign_performance SET date = DATE '2025-12-31' - CAST(date - DATE '2021-01-01' AS INTEGER)"
        ],
    ),
    # every pour moved by a pseudo-random number of days: no season, no holiday left
    ("taps_peak_in_december_lull_in_january", [DAYS_SCATTERED]),
    ("taps_spike_on_holidays", [DAYS_SCATTERED]),
    (
        "app_sessions_peak_in_december_lull_in_january",
        days_scattered("user_sessions", "started_at", "session_id"),
    ),
    ("app_sessions_spike_on_holidays", days_scattered("user_sessions", "started_at", "session_id")),
    (
        "website_sessions_peak_in_december_lull_in_january",
        days_scattered("ga_sessions", "session_start", "ga_session_id"),
    ),
    ("website_sessions_spike_on_holidays", days_scattered("ga_sessions", "session_start", "ga_session_id")),
    # device health not from the devices' own history
    ("taps_stop_while_devices_are_down", shuffled("device_health", "uptime_pct", "health_id")),
    ("device_errors_rise_before_failures", shuffled("device_health", "error_count", "health_id")),
    ("plan_changes_move_mrr", shuffled("subscriptions", "mrr_usd", "subscription_id")),
    ("ga_bounce_depends_on_source", shuffled("ga_sessions", "bounced", "ga_session_id")),
    # pages in random order and of random users
    ("next_page_follows_current_page", shuffled("page_views", "page_path", "page_view_id")),
    ("pages_depend_on_role", shuffled("users", "role", "user_id")),
    # features used at random: every feature seen from the first weeks, adopted at once
    ("features_launch_over_the_years", shuffled("feature_usage", "feature_name", "feature_event_id")),
    ("new_features_gain_share_over_months", shuffled("feature_usage", "feature_name", "feature_event_id")),
    ("higher_tiers_adopt_sooner", shuffled("accounts", "tier", "account_id")),
    ("feature_errors_spike_in_incidents", shuffled("feature_usage", "success", "feature_event_id")),
]
# Dirt checks (profile off): any null or archived row is more than was injected.
DIRT_CASES: list[tuple[str, list[str]]] = [
    ("hubspot_contacts_job_title_nulls_as_injected", ["UPDATE raw.hubspot_contacts SET job_title = NULL WHERE rowid < 3"]),
    ("ga_sessions_landing_page_nulls_as_injected", ["UPDATE raw.ga_sessions SET landing_page = NULL WHERE rowid < 3"]),
    ("hubspot_tickets_archived_tickets_as_injected", ["UPDATE raw.hubspot_tickets SET archived = true WHERE rowid < 3"]),
    ("stripe_events_late_events_as_injected",
     ["UPDATE raw.stripe_events SET received_at = received_at + INTERVAL 2 HOUR WHERE rowid < 3"]),
    ("stripe_events_duplicate_events_as_injected",
     ["UPDATE raw.stripe_events SET event_id = 'evt_00000000000001' WHERE rowid < 3"]),
    ("hubspot_engagements_naive_timestamps_as_injected",
     ["UPDATE raw.hubspot_engagements SET engagement_source = 'IMPORT' WHERE rowid < 3"]),
]  # fmt: skip
CASES = (
    _generic_cases()
    + SPECIFIC_CASES
    + STRUCTURE_CASES
    + DIRT_CASES
    + funnel_cases()
    + flow_cases()
    + geography_cases()
)


def test_every_check_passes_on_the_generated_data(raw_db: duckdb.DuckDBPyConnection) -> None:
    results = run_checks(list(CHECKS.values()), lambda sql: raw_db.execute(sql).fetchall())
    assert [r.name for r in results if not r.passed] == []


@pytest.mark.parametrize(("check_name", "corruption"), CASES, ids=[name for name, _ in CASES])
def test_the_check_fails_on_data_broken_the_way_it_guards_against(
    raw_db: duckdb.DuckDBPyConnection, check_name: str, corruption: list[str]
) -> None:
    assert _failed_after(raw_db, corruption, check_name)


def test_every_declared_check_has_a_case_that_makes_it_fail() -> None:
    assert set(CHECKS) == {name for name, _ in CASES}


def test_blocking_checks_are_the_integrity_ones() -> None:
    blocking = {c.kind for c in CHECKS.values() if c.blocking}
    assert blocking == {"row_count", "primary_key", "foreign_keys", "temporal", "charges"}
    assert not any(c.blocking for c in CHECKS.values() if c.kind == "distribution")


def test_a_foreign_key_to_a_table_not_loaded_is_named_not_silently_passed() -> None:
    [check] = [
        c for c in warehouse_checks(["tap_events"], "dev", WarehouseConfig()) if c.kind == "foreign_keys"
    ]
    assert check.sql == "SELECT 0"
    assert "not checked: accounts, devices, locations not loaded" in check.description
    kept = [c for c in warehouse_checks(["tap_events"], "dev", WarehouseConfig(), present=["devices"])
            if c.kind == "foreign_keys"]  # fmt: skip
    assert "raw.devices" in kept[0].sql and "accounts, locations not loaded" in kept[0].description


def test_rows_match_spec_fails_on_a_short_or_missing_chunk() -> None:
    expected = {0: 12_500, 1: 12_500}
    assert rows_match_spec("tap_events", {0: 12_500, 1: 12_500}, expected).passed
    short = rows_match_spec("tap_events", {0: 12_500, 1: 12_499}, expected)
    assert not short.passed and "wrong: {1: 12499}" in short.description
    assert not rows_match_spec("tap_events", {0: 12_500}, expected).passed


def test_the_bands_come_from_the_configuration(raw_db: duckdb.DuckDBPyConnection) -> None:
    loose = WarehouseConfig(checks={"share_tolerance": 0.2})  # type: ignore[arg-type]
    [check] = [c for c in warehouse_checks(["accounts"], "dev", loose) if c.name == "accounts_industry_mix"]
    raw_db.execute("BEGIN TRANSACTION")
    try:
        raw_db.execute("UPDATE raw.accounts SET industry = 'Bar' WHERE rowid < 10")
        [result] = run_checks([check], lambda sql: raw_db.execute(sql).fetchall())
    finally:
        raw_db.execute("ROLLBACK")
    assert result.passed and check.tolerance == 0.2


def test_a_structure_check_whose_tables_are_not_loaded_says_so_and_is_not_measured() -> None:
    [check] = [c for c in warehouse_checks(["devices"], "dev", WarehouseConfig())
               if c.name == "bigger_accounts_have_more_devices"]  # fmt: skip
    assert check.band is None and check.sql == "SELECT 0"
    assert "not checked: accounts not loaded" in check.description
    [measured] = [c for c in warehouse_checks(["devices"], "dev", WarehouseConfig(), present=["accounts"])
                  if c.name == "bigger_accounts_have_more_devices"]  # fmt: skip
    assert measured.band == (0.2, 1.0) and "raw.accounts" in measured.sql


def test_structure_figures_are_in_the_check_metadata_and_the_band_decides(
    raw_db: duckdb.DuckDBPyConnection,
) -> None:
    [result] = run_checks(
        [CHECKS["churned_accounts_less_engaged"]], lambda sql: raw_db.execute(sql).fetchall()
    )
    assert isinstance(result.value, float) and 0.0 < result.value < 0.75 and result.passed
    assert result.expected == "[0, 0.75]"


def test_quality_report_gives_missing_values_outliers_cardinalities_and_freshness(
    raw_db: duckdb.DuckDBPyConnection,
) -> None:
    from simulation_assets.core.warehouse.catalog import catalog_markdown, quality_report

    report = quality_report(lambda sql: raw_db.execute(sql).fetchall(), ALL)
    accounts = raw_db.execute(
        "SELECT avg(CASE WHEN churned_at IS NULL THEN 1.0 ELSE 0.0 END) FROM raw.accounts"
    )
    assert report["missing"]["accounts"] == {"churned_at": pytest.approx(accounts.fetchone()[0], abs=1e-4)}
    assert report["missing"]["tap_events"] == {}
    assert report["cardinality"]["accounts -> locations.account_id"] == {"min": 1, "median": 1.0, "max": 4}
    users = report["cardinality"]["accounts -> users.account_id"]
    assert users["min"] == 2 and users["max"] <= 10
    assert report["outliers"]["tap_events"]["volume_ml"] < 0.001
    assert report["freshness"]["tap_events"].startswith("poured_at up to 2025-12-")
    text = catalog_markdown(WarehouseConfig(), "dev", 42, {"accounts": 100}, {}, None, report)
    assert (
        "## Relationship cardinalities" in text and "| accounts -> locations.account_id | 1 | 1 | 4 |" in text
    )
    # a corrupted column shows up: a null where none belongs, an absurd pour
    raw_db.execute("BEGIN TRANSACTION")
    try:
        raw_db.execute("UPDATE raw.tap_events SET volume_ml = 1e6 WHERE rowid < 200")
        raw_db.execute("UPDATE raw.users SET last_name = NULL WHERE rowid < 3")
        broken = quality_report(lambda sql: raw_db.execute(sql).fetchall(), ["tap_events", "users"])
    finally:
        raw_db.execute("ROLLBACK")
    assert broken["missing"]["users"] == {"last_name": 0.01}
    assert broken["outliers"]["tap_events"]["volume_ml"] >= 0.0004
