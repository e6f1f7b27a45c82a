"""The local Dagster instance the CLI and ``dagster dev`` share: SQLite files under ``$DAGSTER_HOME``.

Two things Dagster's stock SQLite storage does not do for a local, single-user instance:

- **Cheap writes.** The stock storage builds a new SQLAlchemy engine (and so recompiles every
  statement) and opens a new connection for each event it stores, and commits each one with a
  full fsync. ``LocalSqliteStorage`` keeps one engine per database file (a few at most) and
  opens its connections with ``PRAGMA synchronous=NORMAL``: still durable across a crash of the
  process, but a power cut may lose the last events (acceptable for a local instance; the
  deployed instance is PostgreSQL, see deploy/). Same files, same tables, same layout as the
  stock storage, so ``dagster dev`` and existing instances read them unchanged.
- **A safe first use.** Two ``simulate`` commands started together in an empty folder would
  both create the databases, and one could fail with ``alembic ... more than one head``.
  ``local_instance()`` creates ``dagster.yaml`` and the databases once, under a file lock,
  before any run starts.
- **Asset events in batches.** A run over a range of partitions stores two events per partition
  and asset (planned, materialized), each in two transactions of its own. The instance class
  ``LocalDagsterInstance`` hands the planned events of a run, and the materializations of a
  step, to the storage as one batch (Dagster does so when ``DAGSTER_EVENT_BATCH_SIZE`` is set;
  this instance defaults it to 1000, and 0 turns it off), and ``store_event_batch`` writes a
  batch in two transactions.
- **A cheap start.** The stock storage checks each database's schema revision whenever a process
  opens it, and creates each new run's event database with its schema: each check loads Alembic's
  whole migration history (0.1-0.2 s of CPU apiece, 3-4 per command). Here the databases are
  created and checked once per Dagster version, under a file lock (``.schema-ready`` in the storage
  folder names the version); after that a process opens them without a check, and a new run's
  database is a copy of an empty one made then (``.run-shard-template.db``).
- **No unused paths.** Dagster's default state storage of state-backed definitions and its
  default IO manager each make a universal-pathlib path when the instance opens and when a run
  starts, importing universal-pathlib and fsspec (~0.03 s of CPU, 42 modules) though no run of this
  project stores anything through either. ``LocalDefsStateStorage`` and ``LocalFilesystemIOManager``
  (``local_io_manager``, passed by every command) are the same classes at the same places,
  making their path when first used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as db
from dagster._config import Field, StringSource
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, BATCH_WRITABLE_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.context.init import InitResourceContext
from dagster._core.instance import DagsterInstance
from dagster._core.storage.defs_state.blob_storage_state_storage import UPathDefsStateStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager
from dagster._core.storage.io_manager import io_manager
from dagster._core.storage.runs.schema import RunsTable
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster.version import __version__ as DAGSTER_VERSION

from simulation_assets.paths import prepared_root

MAX_OPEN_DATABASES = 8  # per process: the index, the runs database and a few run shards
EVENT_BATCH_SIZE_VAR, EVENT_BATCH_SIZE = "DAGSTER_EVENT_BATCH_SIZE", 1000  # asset events written together
SCHEMA_READY = ".schema-ready"  # in the storage folder: the Dagster version whose schema the databases hold
SHARD_TEMPLATE = ".run-shard-template.db"  # in the storage folder: an empty run event database
INSTANCE_YAML = """\
# The local Dagster instance of `simulate` and `dagster dev`: SQLite files under $DAGSTER_HOME/storage,
# no server to start. For PostgreSQL storage, a run queue and pools, see deploy/dagster.yaml.
instance_class:
  module: simulation_assets.sinks.local_instance
  class: LocalDagsterInstance
storage:
  custom:
    module: simulation_assets.sinks.local_instance
    class: LocalSqliteStorage
    config: {storage}
# Dagster's default state of state-backed definitions ($DAGSTER_HOME/defs_state), opened when first used.
defs_state_storage:
  module: simulation_assets.sinks.local_instance
  class: LocalDefsStateStorage
# Dagster's compute-log files (stdout/stderr of each run, in the UI), mirrored by a thread, not 4 processes.
compute_logs:
  module: simulation_assets.sinks.local_compute_logs
  class: ThreadedComputeLogManager
  config: {logs}
telemetry:
  enabled: false
# No "join the community" prompt when the UI is first opened.
nux:
  enabled: false
concurrency:
  pools:
    default_limit: 4
# The 30-second activity sensor ticks 2,880 times a day: keep a week of history, a day of skips.
retention:
  schedule:
    purge_after_days: 7
  sensor:
    purge_after_days:
      skipped: 1
      failure: 7
      success: 7
"""


def instance_yaml(base_dir: Path | None = None) -> str:
    """Return the instance's ``dagster.yaml``: storage in ``base_dir``, or ``$DAGSTER_HOME/storage`` when None."""
    storage = (
        f"{{base_dir: {json.dumps(str(base_dir))}}}" if base_dir else "{}  # base_dir: $DAGSTER_HOME/storage"
    )
    return INSTANCE_YAML.replace("{storage}", storage).replace("{logs}", storage)


# What earlier versions wrote: the same file with Dagster's state storage made when the instance opens ...
_DEFS_STATE_YAML = INSTANCE_YAML[
    INSTANCE_YAML.index("# Dagster's default state") : INSTANCE_YAML.index("# Dagster's compute-log")
]
_EAGER_DEFS_STATE_YAML = INSTANCE_YAML.replace(_DEFS_STATE_YAML, "")
# ... before that, with the UI's first-use prompt left on ...
_NUX_YAML = INSTANCE_YAML[INSTANCE_YAML.index('# No "join') : INSTANCE_YAML.index("concurrency:")]
_NUX_ON_INSTANCE_YAML = _EAGER_DEFS_STATE_YAML.replace(_NUX_YAML, "")
# ... before that, Dagster's compute-log manager (tail processes) ...
_COMPUTE_LOGS_YAML = INSTANCE_YAML[
    INSTANCE_YAML.index("# Dagster's compute-log") : INSTANCE_YAML.index("telemetry:")
]
_STOCK_LOGS_INSTANCE_YAML = _NUX_ON_INSTANCE_YAML.replace(_COMPUTE_LOGS_YAML, "")
# ... and before that, events stored one by one (no instance class).
_UNBATCHED_INSTANCE_YAML = _STOCK_LOGS_INSTANCE_YAML.replace(
    "instance_class:\n  module: simulation_assets.sinks.local_instance\n  class: LocalDagsterInstance\n", ""
)
# What this project wrote before LocalSqliteStorage: the stock SQLite storage in the same folders.
_FORMER_INSTANCE_YAML = """\
# Embedded default: SQLite storage under DAGSTER_HOME, no server to start.
storage:
  sqlite:
    base_dir: {base}
telemetry:
  enabled: false
"""


def _engine(url: str) -> db.engine.Engine:
    """Return an engine on one SQLite file whose connections use WAL with ``synchronous=NORMAL``."""
    engine = db.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @db.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class LocalSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage on one long-lived engine."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(conn_string, inst_data)
        self._local_engine = _engine(conn_string)
        self._run_columns: set[str] = set()

    def _has_run_columns(self, *names: str) -> bool:
        # Asked for every run written (an inspection of the table); columns, once there, stay.
        if not set(names) <= self._run_columns:
            with self.connect() as conn:
                present = {c["name"] for c in db.inspect(conn).get_columns(RunsTable.name)}
            self._run_columns |= present & set(names)
        return set(names) <= self._run_columns

    def has_run_stats_index_cols(self) -> bool:
        return self._has_run_columns("start_time", "end_time")

    def has_backfill_id_column(self) -> bool:
        return self._has_run_columns("backfill_id")

    @contextmanager
    def connect(self) -> Iterator[db.engine.Connection]:
        with self._local_engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self._local_engine.dispose()
        super().dispose()


class LocalSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log on a few long-lived engines (least recently used closed).

    With ``shard_template`` (an empty run database at the current schema), the index database is
    taken as ready and a new run's database starts as a copy of the template, with no schema check.
    """

    def __init__(
        self, base_dir: str, inst_data: ConfigurableClassData | None = None, shard_template: str | None = None
    ) -> None:
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._tables_present: set[str] = set()
        self._shard_template = shard_template
        self._asset_key_columns: set[str] = set()
        self._secondary_indexes: set[str] = set()
        super().__init__(base_dir, inst_data)
        if shard_template:
            self._initialized_dbs.add(INDEX_SHARD_NAME)

    def _prepare_shard(self, shard: str, engine: db.engine.Engine) -> None:
        """Give ``shard`` its tables: a copy of the template when it has no file yet, else Dagster's own check."""
        path = self.path_for_shard(shard)
        if self._shard_template and shard != INDEX_SHARD_NAME:
            if not os.path.exists(path):
                staged = f"{path}.{uuid.uuid4().hex}.tmp"
                shutil.copyfile(self._shard_template, staged)
                try:
                    os.link(staged, path)  # atomic, and never over a database another process created first
                except FileExistsError:
                    pass
                finally:
                    os.unlink(staged)
            if os.path.getsize(path) > 0:
                return
        self._initdb(engine)

    def _shard_engine(self, shard: str) -> db.engine.Engine:
        with self._engines_lock:
            engine = self._engines.pop(shard, None)
            if engine is None:
                engine = _engine(self.conn_string_for_shard(shard))
            self._engines[shard] = engine  # most recently used last
            while len(self._engines) > MAX_OPEN_DATABASES:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.engine.Connection]:
        with self._db_lock:
            engine = self._shard_engine(shard)
            if shard not in self._initialized_dbs:
                self._prepare_shard(shard, engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store a batch of asset events (``BATCH_WRITABLE_EVENTS``) in two transactions instead of ~2 per event.

        Dagster hands over a batch (the planned events of a run, the materializations of one step)
        when ``DAGSTER_EVENT_BATCH_SIZE`` is set (``LocalSqliteStorage`` sets it). Same rows as
        ``store_event`` one by one: every event in its run's database, the asset events mirrored in
        the index with their tags, the asset table updated as the last event of each kind would
        leave it, and check-planned events recorded as check executions.
        """
        if not events:
            return
        if len({event.run_id for event in events}) > 1 or any(
            not event.is_dagster_event or event.dagster_event_type not in BATCH_WRITABLE_EVENTS
            for event in events
        ):
            super().store_event_batch(events)  # not a batch Dagster builds: one by one
            return
        rows = [self._event_to_row(event) for event in events]  # each event serialized once
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        mirrored: list[tuple[EventLogEntry, int]] = []
        with self.index_transaction() as conn:
            for event, row in zip(events, rows, strict=True):
                result = conn.execute(SqlEventLogStorageTable.insert().values(**row))
                mirrored.append((event, int(result.inserted_primary_key[0])))
            assets = [
                (e, i)
                for e, i in mirrored
                if e.dagster_event_type in ASSET_EVENTS and e.get_dagster_event().asset_key
            ]
            self._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
            last: dict[tuple[str, object], tuple[int, EventLogEntry, int]] = {}
            for position, (event, event_id) in enumerate(assets):
                key = (event.get_dagster_event().asset_key.to_string(), event.dagster_event_type)  # type: ignore[union-attr]
                last[key] = (position, event, event_id)
            for _, event, event_id in sorted(last.values(), key=lambda item: item[0]):
                self._store_asset_event(conn, event, event_id)
        for event, event_id in mirrored:
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                self.store_asset_check_event(event, event_id)

    def has_asset_key_col(self, column_name: str) -> bool:
        # The stock method opens a connection to the index before asking the cache below.
        return column_name in self._asset_key_columns or super().has_asset_key_col(column_name)

    def has_secondary_index(self, name: str) -> bool:
        # Asked for every asset read and write (a query on a connection of its own); a data migration,
        # once marked complete, stays complete.
        if name in self._secondary_indexes:
            return True
        present = super().has_secondary_index(name)
        if present:
            self._secondary_indexes.add(name)
        return present

    def _has_asset_key_col_on_connection(self, conn: db.engine.Connection, column_name: str) -> bool:
        # Asked several times for every asset event (an inspection of the table); columns, once there, stay.
        if column_name in self._asset_key_columns:
            return True
        present = super()._has_asset_key_col_on_connection(conn, column_name)
        if present:
            self._asset_key_columns.add(column_name)
        return present

    def has_table(self, table_name: str) -> bool:
        # Asked before every asset event; a table, once there, stays (the stock method opens a new engine).
        if table_name in self._tables_present:
            return True
        engine = self._shard_engine(INDEX_SHARD_NAME)
        with engine.connect() as conn:
            present = bool(engine.dialect.has_table(conn, table_name))
        if present:
            self._tables_present.add(table_name)
        return present

    def _close_engines(self) -> None:
        with self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_engines()  # the run shards' files are deleted
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()


class LocalDefsStateStorage(UPathDefsStateStorage):
    """Dagster's default state storage of state-backed definitions, its path made when first used.

    The same files in the same place as the default (``$DAGSTER_HOME/defs_state``, or ``base_path``),
    but the universal-pathlib path (and with it universal-pathlib and fsspec) is made when state is
    first read or written, not whenever an instance opens.
    """

    def __init__(self, base_path: str | None = None, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self._base_dir = base_path
        self._path: Any = None

    @property
    def _base_path(self) -> Any:  # what Dagster's class reads: a UPath
        if self._path is None:
            from upath import UPath

            base = self._base_dir or os.path.join(self._instance.root_directory, "defs_state")
            self._path = UPath(base)
        return self._path

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"base_path": Field(str, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: dict[str, Any]
    ) -> LocalDefsStateStorage:
        return cls(config_value.get("base_path"), inst_data)


class LocalFilesystemIOManager(PickledObjectFilesystemIOManager):
    """Dagster's default IO manager (values pickled under ``base_dir``), its path made when first used.

    Every run builds its IO manager, but no asset of this project hands a value to it: the
    universal-pathlib path (and the import of universal-pathlib and fsspec) waits for a first value.
    """

    def __init__(self, base_dir: str | None = None) -> None:
        self.base_dir = base_dir
        self._path: Any = None

    @property
    def _base_path(self) -> Any:  # what Dagster's class reads: a UPath
        if self._path is None:
            from upath import UPath

            self._path = UPath(self.base_dir)
        return self._path


@io_manager(config_schema={"base_dir": Field(StringSource, is_required=False)})
def local_io_manager(init_context: InitResourceContext) -> LocalFilesystemIOManager:
    """The default IO manager of a run (Dagster's, under the instance's storage folder), opened when first used."""
    base_dir = init_context.resource_config.get(
        "base_dir", init_context.instance.storage_directory() if init_context.instance else None
    )
    return LocalFilesystemIOManager(base_dir=base_dir)


class LocalDagsterInstance(DagsterInstance):
    """Dagster's instance, storing the asset events of a run's planning and of a step in batches.

    Dagster batches them only when ``DAGSTER_EVENT_BATCH_SIZE`` is set; for this instance it
    defaults to ``EVENT_BATCH_SIZE`` (set the variable to 0 to store events one by one). Other
    instances in the same process (e.g. a PostgreSQL one) keep Dagster's default.
    """

    def _get_event_batch_size(self) -> int:
        return int(os.environ.get(EVENT_BATCH_SIZE_VAR) or EVENT_BATCH_SIZE)

    @classmethod
    def config_schema(cls) -> dict[str, Field]:
        return {}  # no settings beyond Dagster's own

    @staticmethod
    def config_defaults(base_dir: str) -> dict[str, Any]:
        from dagster._core.instance.ref import InstanceRef

        return InstanceRef.config_defaults(base_dir)


class LocalSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage layout (runs, event log, schedules under ``base_dir``) on cheaper writes.

    The first process to open ``base_dir`` with this Dagster version creates and checks the
    databases the stock way, under a file lock, then marks them ready; later ones open them directly.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.base_dir = base_dir
        if not schema_ready(base_dir):
            _prepare_schema(base_dir)
        runs_dir = _runs_directory(base_dir)
        self._run_storage = LocalSqliteRunStorage(create_db_conn_string(runs_dir, "runs"))
        self._event_log_storage = LocalSqliteEventLogStorage(
            _event_logs_directory(base_dir), shard_template=str(Path(base_dir) / SHARD_TEMPLATE)
        )
        self._schedule_storage = SqliteScheduleStorage(
            create_db_conn_string(_schedule_directory(base_dir), "schedules")
        )
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: dict[str, str]
    ) -> LocalSqliteStorage:
        base_dir = config_value.get("base_dir") or str(dagster_home() / "storage")
        Path(base_dir).mkdir(parents=True, exist_ok=True)
        return cls(base_dir, inst_data=inst_data)


def schema_ready(base_dir: str | os.PathLike[str]) -> bool:
    """Return whether the databases under ``base_dir`` were created and checked by this Dagster version."""
    base = Path(base_dir)
    databases = (
        base / SHARD_TEMPLATE,
        Path(_runs_directory(base_dir)) / "runs.db",
        Path(_event_logs_directory(base_dir)) / f"{INDEX_SHARD_NAME}.db",
        Path(_schedule_directory(base_dir)) / "schedules.db",
    )
    try:
        version = (base / SCHEMA_READY).read_text().strip()
    except OSError:
        return False
    return version == DAGSTER_VERSION and all(path.is_file() for path in databases)


# The databases of a ready storage folder, relative to it (Dagster's SQLite layout, and the template).
_DATABASES = (SHARD_TEMPLATE, "history/runs.db", "history/runs/index.db", "schedules/schedules.db")


def prepared_dir() -> Path | None:
    """Return the folder of the empty databases this Dagster, SQLAlchemy and SQLite create (None: turned off).

    A subfolder of ``paths.prepared_root()`` per version of the three.
    """
    import sqlite3

    root = prepared_root()
    if root is None:
        return None
    versions = f"{DAGSTER_VERSION} {db.__version__} {sqlite3.sqlite_version}"
    return root / f"instance-{DAGSTER_VERSION}-{hashlib.sha1(versions.encode()).hexdigest()[:10]}"


def _copy_prepared(base: Path) -> bool:
    """Copy the prepared empty databases into the new storage folder ``base``; False when there are none.

    Only into a folder without any database of its own (an existing instance is checked the stock way).
    """
    prepared = prepared_dir()
    if prepared is None or not all((prepared / name).is_file() for name in _DATABASES):
        return False
    if any((base / name).exists() for name in _DATABASES):
        return False
    for name in _DATABASES:
        target = base / name
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f"{target.name}.{uuid.uuid4().hex}.tmp")
        shutil.copyfile(prepared / name, staged)
        os.replace(staged, target)
    return True


def _publish_prepared(base: Path) -> None:
    """Keep a copy of the new, empty databases of ``base`` for the next new folder (best effort).

    Each is copied with SQLite's backup (consistent, whatever its write-ahead log holds), in WAL mode
    as Dagster left it, into a staging folder renamed into place at once: a reader sees all or nothing.
    """
    import sqlite3

    prepared = prepared_dir()
    if prepared is None or prepared.exists():
        return
    staging = prepared.with_name(f"{prepared.name}.{uuid.uuid4().hex}.tmp")
    try:
        for name in _DATABASES:
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source, copy = sqlite3.connect(base / name), sqlite3.connect(target)
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode=WAL")
                copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                source.close()
                copy.close()
            for extra in ("-wal", "-shm"):
                Path(f"{target}{extra}").unlink(missing_ok=True)
        os.rename(staging, prepared)
    except OSError:  # no cache folder to write, or another process published first
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _prepare_schema(base_dir: str) -> None:
    """Create (or check) every database the stock way, write the run-shard template, mark the folder ready.

    Under a file lock, so processes that start together never race to create a database. A new
    folder gets copies of the empty databases the first new folder of this Dagster version got
    (``prepared_dir``): the same files, without Alembic's ~1 s of schema creation and stamping.
    """
    from filelock import FileLock

    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    with FileLock(str(base / ".schema.lock"), timeout=300):
        if schema_ready(base):
            return
        if _copy_prepared(base):
            (base / SCHEMA_READY).write_text(DAGSTER_VERSION + "\n")
            return
        fresh = not any((base / name).exists() for name in _DATABASES)
        runs = LocalSqliteRunStorage.from_local(_runs_directory(base_dir))
        events = LocalSqliteEventLogStorage(_event_logs_directory(base_dir))
        with events.index_connection():  # the index database, checked like any later run would
            pass
        schedules = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        template = base / SHARD_TEMPLATE
        staged = base / f"{SHARD_TEMPLATE}.{uuid.uuid4().hex}.tmp"
        engine = _engine(f"sqlite:///{staged}")
        try:
            events._initdb(engine)  # an empty run database at the current schema, in WAL mode
            with engine.connect() as conn:
                conn.execute(db.text("PRAGMA wal_checkpoint(TRUNCATE)"))
        finally:
            engine.dispose()
        for extra in ("-wal", "-shm"):
            Path(f"{staged}{extra}").unlink(missing_ok=True)
        os.replace(staged, template)
        for storage in (runs, events, schedules):
            storage.dispose()
        if fresh:
            _publish_prepared(base)
        (base / SCHEMA_READY).write_text(DAGSTER_VERSION + "\n")


def _unbatched_yaml(base_dir: Path) -> str:
    storage = f"{{base_dir: {json.dumps(str(base_dir))}}}"
    return _UNBATCHED_INSTANCE_YAML.replace("{storage}", storage)


def _stock_logs_yaml(base_dir: Path) -> str:
    storage = f"{{base_dir: {json.dumps(str(base_dir))}}}"
    return _STOCK_LOGS_INSTANCE_YAML.replace("{storage}", storage)


def _eager_defs_state_yaml(base_dir: Path) -> str:
    storage = f"{{base_dir: {json.dumps(str(base_dir))}}}"
    return _EAGER_DEFS_STATE_YAML.replace("{storage}", storage).replace("{logs}", storage)


def _nux_on_yaml(base_dir: Path) -> str:
    storage = f"{{base_dir: {json.dumps(str(base_dir))}}}"
    return _NUX_ON_INSTANCE_YAML.replace("{storage}", storage).replace("{logs}", storage)


def dagster_home() -> Path:
    """Return ``$DAGSTER_HOME``, or ``./.dagster_home`` when it is not set."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()


def ensure_local_instance() -> Path:
    """Point ``DAGSTER_HOME`` at a ready local instance and return its folder.

    Under a file lock in that folder: writes ``dagster.yaml`` when missing and creates the
    SQLite databases, so commands started together never race to create them.
    """
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    ready, config = home / ".instance-ready", home / "dagster.yaml"
    marker = hashlib.sha1(INSTANCE_YAML.encode()).hexdigest()[:12]  # a new default config is applied once
    if _reads(ready) == marker and config.exists():
        return home
    from filelock import FileLock  # a ready instance (every command but a folder's first) needs no lock

    with FileLock(str(home / ".instance.lock"), timeout=300):
        if _reads(ready) == marker and config.exists():  # another process prepared it while we waited
            return home
        former = (
            _FORMER_INSTANCE_YAML.format(base=home / "storage"),
            _unbatched_yaml(home / "storage"),
            _stock_logs_yaml(home / "storage"),
            _nux_on_yaml(home / "storage"),
            _eager_defs_state_yaml(home / "storage"),
        )
        if not config.exists() or config.read_text() in former:
            config.write_text(instance_yaml(home / "storage"))  # the former defaults had the same layout
        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)) as instance:  # creates every database
            instance.get_runs(limit=1)
            instance.event_log_storage.get_asset_records()
            instance.all_instigator_state()
        ready.write_text(marker)
    return home


def _reads(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
