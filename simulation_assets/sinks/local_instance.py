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
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as db
from dagster._config import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData

MAX_OPEN_DATABASES = 8  # per process: the index, the runs database and a few run shards
INSTANCE_YAML = """\
# The local Dagster instance of `simulate` and `dagster dev`: SQLite files under $DAGSTER_HOME/storage,
# no server to start. For PostgreSQL storage, a run queue and pools, see deploy/dagster.yaml.
storage:
  custom:
    module: simulation_assets.sinks.local_instance
    class: LocalSqliteStorage
    config: {storage}
telemetry:
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
    storage = f"{{base_dir: {json.dumps(str(base_dir))}}}" if base_dir else "{}  # base_dir: $DAGSTER_HOME/storage"
    return INSTANCE_YAML.replace("{storage}", storage)


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

    @contextmanager
    def connect(self) -> Iterator[db.engine.Connection]:
        with self._local_engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self._local_engine.dispose()
        super().dispose()


class LocalSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log on a few long-lived engines (least recently used closed)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._tables_present: set[str] = set()
        super().__init__(base_dir, inst_data)

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
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

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


class LocalSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage layout (runs, event log, schedules under ``base_dir``) on cheaper writes."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.base_dir = base_dir
        self._run_storage = LocalSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = LocalSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
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


def dagster_home() -> Path:
    """Return ``$DAGSTER_HOME``, or ``./.dagster_home`` when it is not set."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()


def ensure_local_instance() -> Path:
    """Point ``DAGSTER_HOME`` at a ready local instance and return its folder.

    Under a file lock in that folder: writes ``dagster.yaml`` when missing and creates the
    SQLite databases, so commands started together never race to create them.
    """
    from filelock import FileLock

    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    ready, config = home / ".instance-ready", home / "dagster.yaml"
    if ready.exists() and config.exists():
        return home
    with FileLock(str(home / ".instance.lock"), timeout=300):
        if ready.exists() and config.exists():  # another process created it while we waited
            return home
        if not config.exists() or config.read_text() == _FORMER_INSTANCE_YAML.format(base=home / "storage"):
            config.write_text(instance_yaml(home / "storage"))  # the former default had the same layout
        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)) as instance:  # creates every database
            instance.get_runs(limit=1)
            instance.event_log_storage.get_asset_records()
            instance.all_instigator_state()
        ready.write_text("")
    return home
