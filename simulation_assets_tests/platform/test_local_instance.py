"""The local instance: created once under a lock, readable by Dagster's stock storage, cheaper to write."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from simulation_assets.sinks.local_instance import (
    _DATABASES,
    _FORMER_INSTANCE_YAML,
    EVENT_BATCH_SIZE_VAR,
    SCHEMA_READY,
    SHARD_TEMPLATE,
    LocalDagsterInstance,
    LocalDefsStateStorage,
    LocalFilesystemIOManager,
    LocalSqliteEventLogStorage,
    LocalSqliteStorage,
    _copy_prepared,
    _eager_defs_state_yaml,
    _nux_on_yaml,
    _unbatched_yaml,
    ensure_local_instance,
    instance_yaml,
    prepared_dir,
    schema_ready,
)
from simulation_assets_tests.platform.ui_defs import DAYS, daily_rows  # the UI test's asset: one definition

ROOT = Path(__file__).resolve().parents[2]


def _range(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [daily_rows],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2026-03-01",
            "dagster/asset_partition_range_end": "2026-03-10",
        },
    )


def test_a_new_instance_uses_the_local_storage_and_the_stock_storage_reads_what_it_wrote(
    tmp_path: Path,
) -> None:
    os.environ["DAGSTER_HOME"] = str(tmp_path / "home")  # the autouse fixture restores it
    home = ensure_local_instance()
    assert (home / "dagster.yaml").read_text() == instance_yaml(home / "storage")
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.get_ref().storage_data.rehydrate(LocalSqliteStorage), LocalSqliteStorage)  # type: ignore[union-attr]
        result = _range(instance)
        assert result.success
    # The same files through Dagster's own SQLite storage, as an older `dagster dev` would read them.
    stock = tmp_path / "stock"
    stock.mkdir()
    (stock / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home / 'storage'}\n")
    with dg.DagsterInstance.from_config(str(stock)) as reader:
        assert reader.get_run_by_id(result.run_id).is_success  # type: ignore[union-attr]
        assert reader.get_materialized_partitions(dg.AssetKey("daily_rows")) == set(DAYS.get_partition_keys())
        key = dg.AssetCheckKey(dg.AssetKey("daily_rows"), "has_rows")
        executions = reader.event_log_storage.get_asset_check_execution_history(key, limit=20)
        assert executions and {e.run_id for e in executions} == {result.run_id}


def test_the_projects_dagster_yaml_is_the_instance_the_commands_create() -> None:
    assert (ROOT / "dagster.yaml").read_text() == instance_yaml()


def test_the_former_default_instance_is_moved_to_the_local_storage_and_a_custom_one_is_kept(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.environ["DAGSTER_HOME"] = str(home)
    (home / "dagster.yaml").write_text(_FORMER_INSTANCE_YAML.format(base=home / "storage"))
    ensure_local_instance()
    assert (home / "dagster.yaml").read_text() == instance_yaml(home / "storage")
    mine = tmp_path / "mine"
    mine.mkdir()
    os.environ["DAGSTER_HOME"] = str(mine)
    custom = f"storage:\n  sqlite:\n    base_dir: {mine / 'elsewhere'}\n"
    (mine / "dagster.yaml").write_text(custom)
    ensure_local_instance()
    assert (mine / "dagster.yaml").read_text() == custom and (mine / "elsewhere").is_dir()


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def broken_rows(context: dg.AssetExecutionContext) -> None:
    raise RuntimeError(f"no rows for {len(context.partition_keys)} days")


def _what_the_ui_reads(instance: dg.DagsterInstance, run_id: str) -> dict[str, object]:
    """Return what the UI shows of a ``daily_rows`` run: its events, partitions, asset record and checks."""
    from collections import Counter

    key = dg.AssetKey("daily_rows")
    records = instance.get_records_for_run(run_id, limit=10_000).records
    entry = instance.get_asset_records([key])[0].asset_entry
    last = entry.last_materialization_record
    check = dg.AssetCheckKey(key, "has_rows")
    executions = instance.event_log_storage.get_asset_check_execution_history(check, limit=20)
    return {
        "events": Counter(
            r.event_log_entry.dagster_event_type for r in records if r.event_log_entry.is_dagster_event
        ),
        "materialized": instance.get_materialized_partitions(key),
        "planned_not_done": instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(
            key
        ),
        "last_partition": last.partition_key if last else None,
        "last_run": entry.last_run_id,
        "materializations": sorted(
            (r.partition_key, r.asset_materialization.metadata["days"].value)  # type: ignore[union-attr]
            for r in instance.fetch_materializations(key, limit=100).records
        ),
        "checks": [(e.status, e.partition) for e in executions],
    }


def test_batched_events_leave_what_events_stored_one_by_one_leave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"one": 0, "batch": 0}
    one, batch = LocalSqliteEventLogStorage.store_event, LocalSqliteEventLogStorage.store_event_batch

    def counted_one(self: LocalSqliteEventLogStorage, event: object) -> None:
        calls["one"] += 1
        one(self, event)  # type: ignore[arg-type]

    def counted_batch(self: LocalSqliteEventLogStorage, events: list) -> None:
        calls["batch"] += 1
        batch(self, events)

    monkeypatch.setattr(LocalSqliteEventLogStorage, "store_event", counted_one)
    monkeypatch.setattr(LocalSqliteEventLogStorage, "store_event_batch", counted_batch)
    seen = {}
    for mode, size in (("batched", None), ("one by one", "0")):
        if size is None:
            monkeypatch.delenv(EVENT_BATCH_SIZE_VAR, raising=False)
        else:
            monkeypatch.setenv(EVENT_BATCH_SIZE_VAR, size)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / mode))
        calls.update(one=0, batch=0)
        ensure_local_instance()
        with dg.DagsterInstance.get() as instance:
            assert isinstance(instance, LocalDagsterInstance)
            result = _range(instance)
            seen[mode] = (_what_the_ui_reads(instance, result.run_id), dict(calls))
            assert seen[mode][0]["last_run"] == result.run_id
    (batched, batched_calls), (single, single_calls) = seen["batched"], seen["one by one"]
    assert batched["events"] == single["events"]  # type: ignore[index]
    assert batched["events"][dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED] == 10  # type: ignore[index]
    batched.pop("last_run"), single.pop("last_run")
    assert batched == single
    assert batched["materialized"] == set(DAYS.get_partition_keys())
    # planned events (10 + the check's) as one batch, the 10 materializations as another
    assert batched_calls["batch"] == 2 and single_calls["batch"] == 0
    assert batched_calls["one"] <= single_calls["one"] - 19, (batched_calls, single_calls)


def test_a_failed_range_marks_the_same_partitions_as_failed_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = {}
    for mode, size in (("batched", "1000"), ("one by one", "0")):
        monkeypatch.setenv(EVENT_BATCH_SIZE_VAR, size)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / mode))
        ensure_local_instance()
        with dg.DagsterInstance.get() as instance:
            result = dg.materialize(
                [broken_rows],
                instance=instance,
                raise_on_error=False,
                tags={
                    "dagster/asset_partition_range_start": "2026-03-01",
                    "dagster/asset_partition_range_end": "2026-03-10",
                },
            )
            assert not result.success
            found = instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(
                dg.AssetKey("broken_rows")
            )
            attempts[mode] = {partition: run for partition, (run, _) in found.items()}
            assert set(attempts[mode].values()) == {result.run_id}
    assert set(attempts["batched"]) == set(attempts["one by one"]) == set(DAYS.get_partition_keys())


def test_a_ready_instance_opens_without_schema_checks_and_new_runs_start_from_the_template() -> None:
    home = ensure_local_instance()
    storage = home / "storage"
    assert schema_ready(storage) and (storage / SHARD_TEMPLATE).is_file()

    def no_check(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a schema check in a ready instance")

    import dagster._core.storage.event_log.sqlite.sqlite_event_log as events_module
    import dagster._core.storage.runs.sqlite.sqlite_run_storage as runs_module
    import dagster._core.storage.schedules.sqlite.sqlite_schedule_storage as schedules_module

    with pytest.MonkeyPatch.context() as patch:
        for module in (events_module, runs_module, schedules_module):
            patch.setattr(module, "check_alembic_revision", no_check)
        with dg.DagsterInstance.get() as instance:
            result = _range(instance)
            assert result.success and instance.get_run_by_id(result.run_id).is_success  # type: ignore[union-attr]
            assert (storage / "history" / "runs" / f"{result.run_id}.db").is_file()
            assert len(instance.get_records_for_run(result.run_id, limit=1000).records) > 20
    # A marker of another Dagster version: the next process checks (and marks) the databases again.
    (storage / SCHEMA_READY).write_text("0.0.0\n")
    assert not schema_ready(storage)
    with dg.DagsterInstance.get() as instance:
        assert _range(instance).success
    assert schema_ready(storage)


def test_a_run_asks_the_index_what_stays_true_only_once() -> None:
    """Whether the asset-key columns and their data migration are there is asked for every asset event and
    read; once true it stays true, so after the first run the storage answers without opening the index."""
    from dagster._core.storage.event_log.migration import ASSET_KEY_INDEX_COLS

    ensure_local_instance()
    with dg.DagsterInstance.get() as instance:
        assert _range(instance).success
        storage = instance.event_log_storage
        assert isinstance(storage, LocalSqliteEventLogStorage)
        opened: list[str] = []
        stock = type(storage).index_connection

        def counted(self):  # noqa: ANN001, ANN202
            opened.append("index")
            return stock(self)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(type(storage), "index_connection", counted)
            assert storage.has_secondary_index(ASSET_KEY_INDEX_COLS)
            assert storage.has_asset_key_col("last_materialization_timestamp")
            assert opened == []
            assert not storage.has_secondary_index("no such migration")  # a false answer is asked again
            assert opened == ["index"]


def test_an_instance_written_by_an_earlier_version_gets_the_batching_instance(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.environ["DAGSTER_HOME"] = str(home)
    (home / "dagster.yaml").write_text(_unbatched_yaml(home / "storage"))
    (home / ".instance-ready").write_text("")  # the earlier version's marker
    ensure_local_instance()
    assert (home / "dagster.yaml").read_text() == instance_yaml(home / "storage")
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance, LocalDagsterInstance)


def test_the_state_storage_and_the_io_manager_make_their_paths_when_first_used_in_dagsters_places(
    tmp_path: Path,
) -> None:
    """Same files as Dagster's defaults (the stock classes read them back), without a path made up front."""
    from dagster._core.storage.defs_state.blob_storage_state_storage import UPathDefsStateStorage
    from upath import UPath

    from simulation_assets.commands.common import run_resources

    os.environ["DAGSTER_HOME"] = str(tmp_path / "home")
    home = ensure_local_instance()
    with dg.DagsterInstance.get() as instance:
        storage = instance.defs_state_storage
        assert isinstance(storage, LocalDefsStateStorage) and storage._path is None
        (tmp_path / "state").write_text("kept")
        storage.upload_state_from_path("some/key", "v1", tmp_path / "state")
        assert (home / "defs_state").is_dir()  # Dagster's default place
        stock = UPathDefsStateStorage(UPath(str(home / "defs_state")))
        stock.register_instance(instance)
        assert stock.get_latest_version("some/key") == "v1"
        stock.download_state_to_path("some/key", "v1", tmp_path / "back")
        assert (tmp_path / "back").read_text() == "kept"

        @dg.asset
        def number() -> int:
            return 41

        @dg.asset
        def next_number(number: int) -> int:
            return number + 1

        resources = run_resources({})
        assert resources["io_manager"] is not None
        result = dg.materialize([number, next_number], instance=instance, resources=resources)
        assert result.output_for_node("next_number") == 42
        assert (Path(instance.storage_directory()) / "number").is_file()  # where Dagster's default puts it
        # Dagster's own default IO manager reads the value from the same file
        again = dg.materialize([number, next_number], instance=instance, selection=[next_number])
        assert again.output_for_node("next_number") == 42
    assert LocalFilesystemIOManager(base_dir=str(tmp_path))._path is None


def test_an_instance_written_before_gets_the_state_storage_opened_when_first_used(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.environ["DAGSTER_HOME"] = str(home)
    (home / "dagster.yaml").write_text(_eager_defs_state_yaml(home / "storage"))  # the previous version's
    ensure_local_instance()
    assert (home / "dagster.yaml").read_text() == instance_yaml(home / "storage")
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.defs_state_storage, LocalDefsStateStorage)


def test_the_ui_skips_its_first_use_prompt_also_on_an_instance_written_before(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.environ["DAGSTER_HOME"] = str(home)
    (home / "dagster.yaml").write_text(_nux_on_yaml(home / "storage"))  # what the previous version wrote
    with dg.DagsterInstance.get() as instance:
        assert instance.nux_enabled
    ensure_local_instance()
    assert (home / "dagster.yaml").read_text() == instance_yaml(home / "storage")
    with dg.DagsterInstance.get() as instance:
        assert not instance.nux_enabled


_RUN_ONE = """
import dagster as dg
from simulation_assets.sinks.local_instance import ensure_local_instance
ensure_local_instance()

@dg.asset
def ping() -> None:
    return None

assert dg.materialize([ping], instance=dg.DagsterInstance.get()).success
"""


@pytest.mark.slow
def test_commands_started_together_in_an_empty_folder_all_succeed(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "fresh"), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _RUN_ONE], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    with dg.DagsterInstance.from_config(str(tmp_path / "fresh")) as instance:
        assert len(instance.get_runs()) == 3


def _schema(storage: Path) -> dict[str, list[tuple[str, str]]]:
    import sqlite3

    found = {}
    for name in _DATABASES:
        with sqlite3.connect(storage / name) as conn:
            found[name] = sorted(conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
            found[name].append(("alembic", str(conn.execute("SELECT * FROM alembic_version").fetchall())))
    return found


def test_a_new_folder_copies_the_prepared_empty_databases_instead_of_creating_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first new folder creates its databases the stock way and keeps a copy; the next copies them
    (no Alembic: ~1 s of a first command) and is the same instance, runs and checks included."""
    monkeypatch.setenv("SIMULATE_PREPARED_INSTANCES", str(tmp_path / "prepared"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "first"))
    first = ensure_local_instance() / "storage"
    prepared = prepared_dir()
    assert prepared is not None and all((prepared / name).is_file() for name in _DATABASES)
    assert [p.name for p in (tmp_path / "prepared").iterdir()] == [prepared.name]  # no staging left

    def no_alembic(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("Alembic in a folder that copies the prepared databases")

    import dagster._core.storage.event_log.sqlite.sqlite_event_log as events_module
    import dagster._core.storage.runs.sqlite.sqlite_run_storage as runs_module
    import dagster._core.storage.schedules.sqlite.sqlite_schedule_storage as schedules_module

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "second"))
    with pytest.MonkeyPatch.context() as patch:
        for module in (events_module, runs_module, schedules_module):
            for name in ("check_alembic_revision", "stamp_alembic_rev", "run_alembic_upgrade"):
                if hasattr(module, name):
                    patch.setattr(module, name, no_alembic)
        second = ensure_local_instance() / "storage"
        assert schema_ready(second)
        with dg.DagsterInstance.get() as instance:
            result = _range(instance)
            assert result.success and instance.get_run_by_id(result.run_id).is_success  # type: ignore[union-attr]
            assert len(instance.get_records_for_run(result.run_id, limit=1000).records) > 20
    assert _schema(second) == _schema(first)
    with sqlite3_connect(second / "history" / "runs.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # as Dagster creates them

    # A folder with a database of its own (another Dagster version's) is checked the stock way, not overwritten.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "third"))
    (tmp_path / "third" / "storage" / "history").mkdir(parents=True)
    (tmp_path / "third" / "storage" / "history" / "runs.db").write_bytes(b"")
    assert not _copy_prepared(tmp_path / "third" / "storage")
    monkeypatch.setenv("SIMULATE_PREPARED_INSTANCES", "0")
    assert prepared_dir() is None


def sqlite3_connect(path: Path):  # noqa: ANN201
    import sqlite3

    return sqlite3.connect(path)
