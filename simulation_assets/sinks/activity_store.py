"""The activity simulator's database: customers, tick log, tick events, interventions, monitor checks.

``ActivityStore`` is the interface: every operation (start a simulation, apply a tick at
most once, run a monitor check, read the tables, reset) is written once here, on top of
one transaction at a time. Two implementations provide the transaction
(``sinks/activity_backends.py``):

- ``DuckDBActivityStore`` (default): a DuckDB file, ``$ACTIVITY_DUCKDB_PATH`` or
  ``<data dir>/activity/activity.duckdb``; a per-file lock in this process plus DuckDB's own
  file lock across processes.
- ``PostgresActivityStore``: any PostgreSQL database, ``$ACTIVITY_DATABASE_URL`` (or the HogFlix
  app database's ``$HOGFLIX_APP_DB_DSN``), bound as a ``dg.EnvVar``: the UI shows the variable,
  never the DSN; a transaction-scoped advisory lock, and a partial unique index that enforces
  "one open intervention per customer and type".

``$ACTIVITY_STORE`` (``duckdb`` or ``postgres``) picks one (``activity_store_from_env``). Every
write is one transaction taken under the lock, and reads the state it changes inside that
transaction, so a tick number is applied at most once and concurrent monitor checks never
open the same intervention twice.
"""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.activity.config import ActivityConfig
from simulation_assets.core.activity.customers import (
    TickResult,
    genesis_summary,
    initial_customers,
    step_tick,
)
from simulation_assets.core.activity.monitor import MonitorResult, duplicate_open, reconcile
from simulation_assets.core.activity.schema import (
    CUSTOMER_SCHEMA,
    EVENT_SCHEMA,
    INTERVENTION_SCHEMA,
    MONITOR_CHECK_SCHEMA,
    TICK_SCHEMA,
    conform,
)
from simulation_assets.core.rng import stable_uuid

_SQL_TYPES = {
    pl.String: "TEXT",
    pl.Int64: "BIGINT",
    pl.Float64: "DOUBLE PRECISION",
    pl.Boolean: "BOOLEAN",
    pl.Datetime: "TIMESTAMPTZ",
}
# table suffix -> (schema, primary key)
_TABLES: dict[str, tuple[dict[str, pl.DataType], str]] = {
    "customers": (CUSTOMER_SCHEMA, "customer_id"),
    "tick_log": (TICK_SCHEMA, "tick"),
    "events": (EVENT_SCHEMA, "tick, seq"),
    "interventions": (INTERVENTION_SCHEMA, "intervention_id"),
    "monitor_checks": (MONITOR_CHECK_SCHEMA, "check_no"),
}
_OWNER = "simulation-assets activity simulator"


def sql_type(dtype: pl.DataType) -> str:
    return _SQL_TYPES[dtype.base_type()]  # type: ignore[index]


def utc_now() -> dt.datetime:
    """Return the current UTC time, truncated to microseconds."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class TickOutcome:
    """What ``apply_tick`` did: the tick number, whether it was applied now, the state before and the result."""

    tick: int
    applied: bool
    at: dt.datetime
    before: pl.DataFrame = field(repr=False)
    result: TickResult | None = field(default=None, repr=False)
    started: bool = False  # the starting pool (tick 0) was written by this call


@dataclass(frozen=True)
class MonitorOutcome:
    """What a monitor check did: its number, the tick it saw, and the rows it opened and closed."""

    check_no: int
    tick: int
    at: dt.datetime
    result: MonitorResult = field(repr=False)
    open_after: int = 0
    # read in the check's own transaction, after its writes: the open interventions and the customers judged
    open_now: pl.DataFrame | None = field(default=None, repr=False)
    customers: pl.DataFrame | None = field(default=None, repr=False)

    @property
    def opened(self) -> int:
        """Return how many interventions the check opened."""
        return self.result.opened.height

    @property
    def closed(self) -> int:
        """Return how many interventions the check closed."""
        return self.result.closed.height


class Transaction:
    """SQL on one open transaction, with ``?`` placeholders on both backends."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def t(self, name: str) -> str:
        return f"{self.prefix}{name}"

    # implemented by the backends
    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        raise NotImplementedError

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        raise NotImplementedError

    def frame(
        self, sql: str, schema: dict[str, pl.DataType], params: list[Any] | None = None
    ) -> pl.DataFrame:
        raise NotImplementedError

    def upsert(self, table: str, frame: pl.DataFrame, key: str) -> None:
        raise NotImplementedError

    def append(self, table: str, frame: pl.DataFrame, key: str) -> None:
        """Write rows whose keys this transaction has just seen are new (an upsert unless a backend
        has a cheaper plain insert; a key that is there after all fails the transaction there)."""
        self.upsert(table, frame, key)

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        found = self.rows(sql, params)
        return found[0][0] if found else None

    def _upsert_sql(self, table: str, source: str, columns: list[str], key: str) -> str:
        names = ", ".join(columns)
        keys = {k.strip() for k in key.split(",")}
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return f"INSERT INTO {table} ({names}) SELECT {names} FROM {source} ON CONFLICT ({key}) {action}"


class ActivityStore(dg.ConfigurableResource):
    """Where the activity simulator keeps its state; see the module docstring for the implementations."""

    table_prefix: str = Field(default="activity_", pattern=r"^[a-z_][a-z0-9_]*$")

    # --- what an implementation provides -----------------------------------------------------

    @abstractmethod
    def location(self) -> str:
        """Return where the data lives, without secrets (a file path, or user@host:port/db)."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Transaction]:
        """Return a context manager around one locked transaction whose tables exist."""

    def held(self) -> AbstractContextManager[None]:
        """Return a context manager inside which this process keeps its connection to the store open.

        Transactions inside the block skip opening and closing the database (for a DuckDB file,
        ~17 ms of CPU each; a tick run takes a dozen). Each transaction is still its own, under the
        same locks. Hold it around one step or one burst of reads, not around a long wait: while the
        block lasts, other processes cannot open a DuckDB file. The default holds nothing.
        """
        return nullcontext()

    def _ensure_schema(self, tx: Transaction) -> None:
        """Create the tables when missing (an implementation may add constraints)."""
        tx.execute(f"CREATE TABLE IF NOT EXISTS {tx.t('meta')} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for name, (schema, key) in _TABLES.items():
            columns = ", ".join(f"{c} {sql_type(d)}" for c, d in schema.items())
            tx.execute(f"CREATE TABLE IF NOT EXISTS {tx.t(name)} ({columns}, PRIMARY KEY ({key}))")

    # --- ticks -------------------------------------------------------------------------------

    def _meta(self, tx: Transaction) -> dict[str, str]:
        return dict(tx.rows(f"SELECT key, value FROM {tx.t('meta')}"))

    def _start(self, tx: Transaction, cfg: ActivityConfig, seed: int, at: dt.datetime) -> bool:
        """Write the starting pool (tick 0) when the store is empty; return whether it did."""
        meta = self._meta(tx)
        if meta.get("seed") is not None:
            if int(meta["seed"]) != seed:
                raise ValueError(
                    f"the activity store at {self.location()} was started with seed {meta['seed']}, not {seed}: "
                    "use that seed or reset the store (simulate activity --reset)"
                )
            return False
        customers = initial_customers(cfg, seed, at)
        simulation_id = str(stable_uuid(seed, "activity", "simulation", at.isoformat()))
        tx.upsert(
            tx.t("meta"),
            pl.DataFrame(
                {
                    "key": ["owner", "seed", "simulation_id", "started_at"],
                    "value": [_OWNER, str(seed), simulation_id, at.isoformat()],
                }
            ),
            "key",
        )
        tx.upsert(tx.t("customers"), customers, "customer_id")
        tx.upsert(
            tx.t("tick_log"),
            conform(pl.DataFrame([genesis_summary(customers, seed, at)]), TICK_SCHEMA),
            "tick",
        )
        return True

    def start(self, cfg: ActivityConfig, seed: int, at: dt.datetime | None = None) -> bool:
        """Create the tables and the starting pool if the store is empty; return whether it did."""
        with self._transaction() as tx:
            return self._start(tx, cfg, seed, at or utc_now())

    def apply_tick(
        self, cfg: ActivityConfig, seed: int, at: dt.datetime | None = None, tick: int | None = None
    ) -> TickOutcome:
        """Apply tick ``tick`` (default: the next one) at time ``at``, at most once.

        Returns ``applied=False`` without changing anything when that tick is already
        in the tick log; raises ValueError when ``tick`` would skip a tick.
        """
        at = at or utc_now()
        with self._transaction() as tx:
            started = self._start(tx, cfg, seed, at)
            last = int(tx.scalar(f"SELECT max(tick) FROM {tx.t('tick_log')}"))
            target = last + 1 if tick is None else tick
            before = tx.frame(f"SELECT * FROM {tx.t('customers')} ORDER BY customer_no", CUSTOMER_SCHEMA)
            if target <= last:
                return TickOutcome(tick=target, applied=False, at=at, before=before, started=started)
            if target != last + 1:
                raise ValueError(f"tick {target} cannot be applied: the next tick is {last + 1}")
            result = step_tick(before, target, cfg, seed, at)
            tx.upsert(tx.t("customers"), result.customers, "customer_id")
            # the tick is new (checked above, under the lock): its log row and events are too
            tx.append(tx.t("tick_log"), conform(pl.DataFrame([result.summary]), TICK_SCHEMA), "tick")
            tx.append(tx.t("events"), result.events, "tick, seq")
            return TickOutcome(
                tick=target, applied=True, at=at, before=before, result=result, started=started
            )

    # --- monitor -----------------------------------------------------------------------------

    def run_monitor(self, cfg: ActivityConfig, source: str, at: dt.datetime | None = None) -> MonitorOutcome:
        """Run one monitor check on the current state; open and close interventions in one transaction."""
        at = at or utc_now()
        with self._transaction() as tx:
            tick = int(tx.scalar(f"SELECT coalesce(max(tick), 0) FROM {tx.t('tick_log')}"))
            check_no = int(tx.scalar(f"SELECT coalesce(max(check_no), 0) FROM {tx.t('monitor_checks')}")) + 1
            customers = tx.frame(f"SELECT * FROM {tx.t('customers')} ORDER BY customer_no", CUSTOMER_SCHEMA)
            current = tx.frame(
                f"SELECT * FROM {tx.t('interventions')} WHERE status = 'open'", INTERVENTION_SCHEMA
            )
            result = reconcile(customers, current, cfg, tick, check_no, at)
            # Close first, so PostgreSQL's one-open index never sees an old and a new row together.
            tx.upsert(tx.t("interventions"), result.closed, "intervention_id")
            tx.append(tx.t("interventions"), result.opened, "intervention_id")  # ids of this check
            open_now = self._interventions(tx, "open")
            open_after = open_now.height
            row = {
                "check_no": check_no,
                "tick": tick,
                "checked_at": at,
                "source": source,
                "opened": result.opened.height,
                "closed": result.closed.height,
                "open_after": open_after,
            }
            tx.append(tx.t("monitor_checks"), conform(pl.DataFrame([row]), MONITOR_CHECK_SCHEMA), "check_no")
            return MonitorOutcome(
                check_no=check_no,
                tick=tick,
                at=at,
                result=result,
                open_after=open_after,
                open_now=open_now,
                customers=customers,
            )

    # --- reads -------------------------------------------------------------------------------

    def last_tick(self) -> int:
        """Return the last applied tick (0 when only the starting pool, or nothing, is there)."""
        with self._transaction() as tx:
            return int(tx.scalar(f"SELECT coalesce(max(tick), 0) FROM {tx.t('tick_log')}"))

    def head(self) -> tuple[int, str, dt.datetime | None]:
        """Return the last applied tick, the simulation's id and the tick's time, in one transaction
        (0, "" and None before the start)."""
        with self._transaction() as tx:
            found = tx.rows(f"SELECT tick, applied_at FROM {tx.t('tick_log')} ORDER BY tick DESC LIMIT 1")
            tick, at = found[0] if found else (0, None)
            at = at.astimezone(dt.UTC) if at is not None else None
            return int(tick), self._meta(tx).get("simulation_id", ""), at

    def simulation_id(self) -> str:
        """Return the id of the current simulation (changes on reset); empty before the start."""
        with self._transaction() as tx:
            return self._meta(tx).get("simulation_id", "")

    def customers(self) -> pl.DataFrame:
        """Return one row per customer, in creation order."""
        with self._transaction() as tx:
            return tx.frame(f"SELECT * FROM {tx.t('customers')} ORDER BY customer_no", CUSTOMER_SCHEMA)

    def tick_log(self, last: int | None = None) -> pl.DataFrame:
        """Return the tick log (optionally only the ``last`` rows), oldest first."""
        with self._transaction() as tx:
            return self._tick_log(tx, last)

    def _tick_log(self, tx: Transaction, last: int | None) -> pl.DataFrame:
        limit = f" LIMIT {int(last)}" if last else ""
        frame = tx.frame(f"SELECT * FROM {tx.t('tick_log')} ORDER BY tick DESC{limit}", TICK_SCHEMA)
        return frame.sort("tick")

    def events(self, ticks: int | None = None) -> pl.DataFrame:
        """Return the events of the last ``ticks`` ticks (all when None), oldest first."""
        with self._transaction() as tx:
            return self._events(tx, ticks)

    def _events(self, tx: Transaction, ticks: int | None) -> pl.DataFrame:
        where = ""
        if ticks:
            where = f" WHERE tick > (SELECT coalesce(max(tick), 0) FROM {tx.t('tick_log')}) - {int(ticks)}"
        return tx.frame(f"SELECT * FROM {tx.t('events')}{where} ORDER BY tick, seq", EVENT_SCHEMA)

    def interventions(self, status: str | None = None) -> pl.DataFrame:
        """Return the interventions (optionally only ``open`` or ``closed``), newest first."""
        with self._transaction() as tx:
            return self._interventions(tx, status)

    def _interventions(self, tx: Transaction, status: str | None, limit: int | None = None) -> pl.DataFrame:
        where = f" WHERE status = '{status}'" if status in ("open", "closed") else ""
        order = (
            "closed_check DESC, type, customer_name"
            if status == "closed"
            else "opened_check DESC, type, customer_name"
        )
        tail = f" LIMIT {int(limit)}" if limit else ""
        return tx.frame(
            f"SELECT * FROM {tx.t('interventions')}{where} ORDER BY {order}{tail}", INTERVENTION_SCHEMA
        )

    def monitor_checks(self, last: int | None = None) -> pl.DataFrame:
        """Return the monitor checks (optionally the ``last`` ones), oldest first."""
        with self._transaction() as tx:
            return self._checks(tx, last)

    def _checks(self, tx: Transaction, last: int | None) -> pl.DataFrame:
        limit = f" LIMIT {int(last)}" if last else ""
        sql = f"SELECT * FROM {tx.t('monitor_checks')} ORDER BY check_no DESC{limit}"
        return tx.frame(sql, MONITOR_CHECK_SCHEMA).sort("check_no")

    def snapshot(self, ticks: int = 30, closed: int = 25, event_ticks: int = 3) -> dict[str, pl.DataFrame]:
        """Return a consistent view for a dashboard: customers, recent ticks/events/checks, interventions."""
        with self._transaction() as tx:
            return {
                "customers": tx.frame(
                    f"SELECT * FROM {tx.t('customers')} ORDER BY customer_no", CUSTOMER_SCHEMA
                ),
                "tick_log": self._tick_log(tx, ticks),
                "events": self._events(tx, event_ticks),
                "open": self._interventions(tx, "open"),
                "closed": self._interventions(tx, "closed", closed),
                "checks": self._checks(tx, 5),
                "counts": tx.frame(
                    f"SELECT status, count(*) AS n FROM {tx.t('interventions')} GROUP BY status",
                    {"status": pl.String(), "n": pl.Int64()},
                ),
            }

    def duplicate_open_interventions(self) -> pl.DataFrame:
        """Return (customer_id, type, open_count) for every pair with more than one open intervention."""
        return duplicate_open(self.interventions("open"))

    # --- reset -------------------------------------------------------------------------------

    def reset(self) -> dict[str, int]:
        """Delete the simulation's rows (synthetic customers and the simulator's own logs); return counts.

        Refuses when the meta table names another owner, so it never empties tables it did not create.
        """
        with self._transaction() as tx:
            owner = self._meta(tx).get("owner")
            if owner not in (None, _OWNER):
                raise ValueError(f"refusing to reset {self.location()}: its tables belong to {owner!r}")
            counts = {
                "customers": int(tx.scalar(f"SELECT count(*) FROM {tx.t('customers')} WHERE is_synthetic")),
            }
            tx.execute(f"DELETE FROM {tx.t('customers')} WHERE is_synthetic")
            for name in ("tick_log", "events", "interventions", "monitor_checks"):
                counts[name] = int(tx.scalar(f"SELECT count(*) FROM {tx.t(name)}"))
                tx.execute(f"DELETE FROM {tx.t(name)}")
            tx.execute(f"DELETE FROM {tx.t('meta')}")
            return counts
