"""The activity store on DuckDB and on a real PostgreSQL: ticks applied at most once, interventions never doubled."""

from __future__ import annotations

import datetime as dt
import threading

import dagster as dg
import polars as pl
import pytest

from simulation_assets.core.activity.config import ActivityConfig
from simulation_assets.sinks.activity_backends import (
    DuckDBActivityStore,
    PostgresActivityStore,
    activity_store_from_env,
)
from simulation_assets.sinks.activity_store import ActivityStore
from simulation_assets.sinks.config_files import resolved
from simulation_assets_tests.activity.helpers import AT

CFG = ActivityConfig()


def _at(tick: int) -> dt.datetime:
    return AT + dt.timedelta(seconds=30 * tick)


def _run(store: ActivityStore, ticks: int, seed: int = 42) -> None:
    for tick in range(1, ticks + 1):
        assert store.apply_tick(CFG, seed, _at(tick)).applied
        store.run_monitor(CFG, "test", _at(tick))


def _tables(store: ActivityStore) -> dict[str, pl.DataFrame]:
    return {
        "customers": store.customers(),
        "tick_log": store.tick_log(),
        "events": store.events(),
        "interventions": store.interventions().sort("intervention_id"),
    }


def test_a_tick_number_is_applied_at_most_once_and_never_out_of_order(tmp_path):
    store = DuckDBActivityStore(duckdb_path=str(tmp_path / "a.duckdb"))
    _run(store, 3)
    before = _tables(store)
    replay = store.apply_tick(CFG, 42, _at(2), tick=2)
    assert not replay.applied and replay.result is None
    after = _tables(store)
    assert all(before[name].equals(after[name]) for name in before)
    assert store.tick_log()["tick"].to_list() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="tick 5 cannot be applied: the next tick is 4"):
        store.apply_tick(CFG, 42, _at(5), tick=5)
    assert store.apply_tick(CFG, 42, _at(4), tick=4).applied


def test_concurrent_tick_writers_apply_each_tick_exactly_once(tmp_path):
    path = str(tmp_path / "c.duckdb")
    applied: list[int] = []

    def worker() -> None:
        store = DuckDBActivityStore(duckdb_path=path)
        for _ in range(6):
            outcome = store.apply_tick(CFG, 42, _at(1))
            if outcome.applied:
                applied.append(outcome.tick)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    log = DuckDBActivityStore(duckdb_path=path).tick_log()
    assert sorted(applied) == list(range(1, 19))
    assert log["tick"].to_list() == list(range(0, 19))


def test_a_held_store_opens_the_file_once_and_keeps_each_transaction_its_own(tmp_path, monkeypatch):
    import simulation_assets.sinks.activity_backends as backends

    opened: list[str] = []
    connect = backends._connect_duckdb

    def counted(duckdb, path, *args, **kwargs):  # noqa: ANN001, ANN202
        opened.append(str(path))
        return connect(duckdb, path, *args, **kwargs)

    monkeypatch.setattr(backends, "_connect_duckdb", counted)
    held = DuckDBActivityStore(duckdb_path=str(tmp_path / "h.duckdb"))
    plain = DuckDBActivityStore(duckdb_path=str(tmp_path / "p.duckdb"))
    with held.held():
        with held.held():  # nested: the same connection
            _run(held, 3)
        with pytest.raises(ValueError, match="was started with seed 42, not 7"):
            held.apply_tick(CFG, 7, _at(4))  # a failed transaction rolls back alone
        assert held.apply_tick(CFG, 42, _at(4)).applied
    assert opened == [str(tmp_path / "h.duckdb")]
    opened.clear()
    _run(plain, 3)
    assert plain.apply_tick(CFG, 42, _at(4)).applied
    assert len(opened) == 7  # one per transaction
    a, b = _tables(held), _tables(plain)
    assert all(a[name].equals(b[name]) for name in a)  # same rows either way
    # once the block ends the file is free: another process opens it (DuckDB's lock is per process)
    import subprocess
    import sys

    code = f"import duckdb; duckdb.connect({str(tmp_path / 'h.duckdb')!r}).close()"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_the_same_seed_gives_the_same_simulation_in_a_fresh_store(tmp_path):
    a = DuckDBActivityStore(duckdb_path=str(tmp_path / "a.duckdb"))
    b = DuckDBActivityStore(duckdb_path=str(tmp_path / "b.duckdb"))
    _run(a, 5)
    _run(b, 5)
    ta, tb = _tables(a), _tables(b)
    assert all(ta[name].equals(tb[name]) for name in ta)
    assert ta["interventions"].height > 0


def test_frames_moved_through_arrow_give_the_same_tables_as_rows_moved_as_values(tmp_path, monkeypatch):
    """A tick's few rows go in and out as Python values; larger frames through Arrow: the same rows either way."""
    import simulation_assets.sinks.activity_backends as backends

    values = DuckDBActivityStore(duckdb_path=str(tmp_path / "v.duckdb"))
    _run(values, 4)
    monkeypatch.setattr(backends, "VALUE_ROWS", 3)  # the customers, events and tick log go through Arrow
    arrow = DuckDBActivityStore(duckdb_path=str(tmp_path / "a.duckdb"))
    _run(arrow, 4)
    ta, tv = _tables(arrow), _tables(values)
    monkeypatch.setattr(backends, "VALUE_ROWS", 1_000)
    tv2 = _tables(arrow)  # the Arrow-written file read back as values
    for name in ta:
        assert ta[name].schema == tv[name].schema and ta[name].equals(tv[name]), name
        assert tv2[name].equals(tv[name]), name
    assert ta["customers"].height > 3 and ta["events"].height > 3


def test_a_monitor_check_hands_back_what_it_left_open_and_the_customers_it_judged(tmp_path):
    """The monitor step and the command read nothing again after the check: one transaction each."""
    store = DuckDBActivityStore(duckdb_path=str(tmp_path / "m.duckdb"))
    assert store.head() == (0, "", None)
    _run(store, 3)
    assert store.apply_tick(CFG, 42, _at(4)).applied
    outcome = store.run_monitor(CFG, "test", _at(4))
    assert outcome.open_now is not None and outcome.customers is not None
    assert (
        outcome.open_now.equals(store.interventions("open")) and outcome.open_after == outcome.open_now.height
    )
    assert outcome.customers.equals(store.customers())
    assert store.head() == (4, store.simulation_id(), _at(4)) and store.simulation_id()


def test_a_store_refuses_another_seed_until_reset(tmp_path):
    store = DuckDBActivityStore(duckdb_path=str(tmp_path / "s.duckdb"))
    _run(store, 2, seed=42)
    with pytest.raises(ValueError, match="was started with seed 42, not 7"):
        store.apply_tick(CFG, 7, _at(3))
    counts = store.reset()
    assert counts["tick_log"] == 3 and counts["customers"] >= 12
    assert store.customers().height == 0 and store.last_tick() == 0
    assert store.apply_tick(CFG, 7, _at(1)).applied


def test_interventions_open_and_clear_within_a_few_ticks(tmp_path):
    store = DuckDBActivityStore(duckdb_path=str(tmp_path / "i.duckdb"))
    _run(store, 10)
    interventions = store.interventions()
    assert set(interventions["type"]) == {
        "Error Debugging",
        "Onboarding Check In",
        "Upsell Suggestion",
        "Retention Outreach",
    }
    closed = interventions.filter(pl.col("status") == "closed")
    assert closed.height >= 5
    assert (closed["closed_tick"] - closed["opened_tick"]).max() <= 9
    assert store.duplicate_open_interventions().height == 0
    checks = store.monitor_checks()
    assert checks["opened"].sum() == interventions.height and checks["closed"].sum() == closed.height


@pytest.mark.postgres
def test_postgres_store_matches_duckdb_row_for_row(postgres_dsn, tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIVITY_DATABASE_URL", postgres_dsn)
    monkeypatch.setenv("ACTIVITY_STORE", "postgres")
    configured = activity_store_from_env()
    assert isinstance(configured, PostgresActivityStore)
    # the definition holds the variable's name, never the DSN; a run reads the value
    assert isinstance(configured.dsn, dg.EnvVar) and configured.dsn.env_var_name == "ACTIVITY_DATABASE_URL"
    pg = resolved(configured)
    assert pg.dsn == postgres_dsn
    duck = DuckDBActivityStore(duckdb_path=str(tmp_path / "d.duckdb"))
    _run(pg, 6)
    _run(duck, 6)
    tp, td = _tables(pg), _tables(duck)
    for name in tp:
        assert tp[name].equals(td[name]), name
    assert not pg.apply_tick(CFG, 42, _at(3), tick=3).applied
    assert pg.tick_log()["tick"].to_list() == list(range(7))
    assert pg.location().startswith("postgresql://postgres@127.0.0.1:")


@pytest.mark.postgres
def test_a_held_postgres_store_connects_once_per_block_and_thread(postgres_dsn, monkeypatch):
    import psycopg

    connects: list[int] = []
    connect = psycopg.connect

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        connects.append(threading.get_ident())
        return connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counted)
    held = PostgresActivityStore(dsn=postgres_dsn, table_prefix="held_")
    plain = PostgresActivityStore(dsn=postgres_dsn, table_prefix="plain_")
    with held.held(), held.held():
        _run(held, 3)
        with pytest.raises(ValueError, match="was started with seed 42, not 7"):
            held.apply_tick(CFG, 7, _at(4))  # rolls back alone; the connection stays usable
        other = threading.Thread(target=lambda: held.last_tick())  # another thread: its own connection
        other.start()
        other.join(60)
        assert held.apply_tick(CFG, 42, _at(4)).applied
    assert len(connects) == 2 and connects[0] != connects[1]
    connects.clear()
    _run(plain, 3)
    assert plain.apply_tick(CFG, 42, _at(4)).applied
    assert len(connects) == 7  # one per transaction
    a, b = _tables(held), _tables(plain)
    assert all(a[name].equals(b[name]) for name in a)


@pytest.mark.postgres
def test_postgres_rejects_a_second_open_intervention_and_concurrent_monitors_stay_single(postgres_dsn):
    import psycopg

    store = PostgresActivityStore(dsn=postgres_dsn)
    _run(store, 3)
    open_ = store.interventions("open")
    assert open_.height > 0
    row = open_.row(0, named=True)
    with psycopg.connect(postgres_dsn) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO activity_interventions (intervention_id, customer_id, customer_name, type, reason, status,"
            " opened_check, opened_tick, opened_at) VALUES (%s, %s, %s, %s, 'dup', 'open', 99, 3, now())",
            ["dup", row["customer_id"], row["customer_name"], row["type"]],
        )
    store.apply_tick(CFG, 42, _at(4))
    threads = [threading.Thread(target=store.run_monitor, args=(CFG, f"t{i}")) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert store.duplicate_open_interventions().height == 0
    assert store.monitor_checks()["check_no"].to_list() == list(range(1, 8))
