"""The funnel's daily deliveries as Dagster assets, built by one factory.

Every delivery has the same shape: for each day of the run it reads that day's cohort events,
turns them into what its destination takes (PostHog events, Meta CAPI payloads, app database
rows, Stripe webhook events), keeps a copy, sends it when the destination is configured and
reports per partition; the run's totals go on the materialization. A ``Delivery`` says what is
done with one day and what the run reports; ``delivery_asset`` wires it to the partitions, the
cohort asset, the retry policy and the sink resource.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

import dagster as dg
import polars as pl

from simulation_assets.core.funnel.app_rows import app_rows
from simulation_assets.core.funnel.capi import capi_payloads
from simulation_assets.core.funnel.posthog import property_columns as posthog_property_columns
from simulation_assets.core.funnel.posthog import to_posthog
from simulation_assets.core.funnel.stripe import stripe_events
from simulation_assets.defs.metadata import table_metadata
from simulation_assets.defs.policies import NETWORK_RETRY
from simulation_assets.sinks.funnel_store import FunnelSettings
from simulation_assets.sinks.local_store import LocalParquetStore

GROUP = "funnel"
SINGLE_RUN = dg.BackfillPolicy.single_run()


class Delivery:
    """One run of a delivery: ``day`` handles a day's events, ``summary`` is the run's metadata."""

    def __init__(self, settings: FunnelSettings, store: LocalParquetStore, sink: Any) -> None:
        self.settings, self.store, self.sink = settings, store, sink

    def day(self, key: str, events: pl.DataFrame) -> dict[str, Any]:
        """Deliver the events of day ``key``; return that partition's metadata."""
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """Return the run's metadata."""
        raise NotImplementedError


class PayloadFileDelivery(Delivery):
    """Payloads built from the events, written as a JSON-lines file per day and sent when configured.

    ``build`` makes the payloads, ``kind`` is the field they are counted by; ``total`` and ``by``
    name the run's two counts in its metadata.
    """

    build: Callable[[pl.DataFrame], list[dict[str, Any]]]
    kind: str
    total: str
    by: str

    def __init__(self, settings: FunnelSettings, store: LocalParquetStore, sink: Any) -> None:
        super().__init__(settings, store, sink)
        self.count, self.by_kind, self.sent, self.path = 0, {}, [], None

    def day(self, key: str, events: pl.DataFrame) -> dict[str, Any]:
        payloads = self.build(events)
        self.path = self.sink.write(f"{self.settings.scenario()}/{key}", payloads)
        self.sent.append(self.sink.send(payloads).model_dump() | {"day": key})
        self.count += len(payloads)
        for p in payloads:
            self.by_kind[p[self.kind]] = self.by_kind.get(p[self.kind], 0) + 1
        return table_metadata(rows=len(payloads))

    def summary(self) -> dict[str, Any]:
        return {
            self.total: self.count,
            self.by: dg.MetadataValue.json(self.by_kind),
            "live": self.sink.is_live(),
            "send": dg.MetadataValue.json(self.sent[-5:]),
            "path": dg.MetadataValue.path(str(self.path)),
        }


class CapiDelivery(PayloadFileDelivery):
    """Meta Conversions API server events (``MetaCapiSink``)."""

    build = staticmethod(capi_payloads)
    kind, total, by = "event_name", "payloads_in_run", "by_meta_event"


class StripeDelivery(PayloadFileDelivery):
    """Stripe test-mode webhook events (``StripeWebhookSink``)."""

    build = staticmethod(stripe_events)
    kind, total, by = "type", "events_in_run", "by_type"


class PostHogDelivery(Delivery):
    """PostHog events kept as Parquet; those dated up to now are delivered (``PostHogEvents``)."""

    def __init__(self, settings: FunnelSettings, store: LocalParquetStore, sink: Any) -> None:
        super().__init__(settings, store, sink)
        self.site = settings.cohort_config().site()
        self.now = dt.datetime.now(dt.UTC)
        self.totals = {"events": 0, "delivered": 0, "not_yet_due": 0, "identify": 0}
        self.report: Any = None
        self.last_key = ""

    def day(self, key: str, events: pl.DataFrame) -> dict[str, Any]:
        frame = to_posthog(events, self.site)
        self.store.write(self.settings.dataset("posthog_events"), key, frame)
        due = frame.filter(pl.col("timestamp") <= self.now)
        self.report = self.sink.deliver(due, now=self.now, property_columns=posthog_property_columns(frame))
        self.totals["events"] += frame.height
        self.totals["delivered"] += self.report.events
        self.totals["not_yet_due"] += frame.height - due.height
        self.totals["identify"] += frame.filter(pl.col("event") == "$identify").height
        self.last_key = key
        return {**table_metadata(rows=frame.height), "delivered": self.report.events}

    def summary(self) -> dict[str, Any]:
        return {
            **{f"{k}_in_run": v for k, v in self.totals.items()},
            **(self.report.as_metadata() if self.report else {}),
            "path": dg.MetadataValue.path(
                str(self.store.path(self.settings.dataset("posthog_events"), self.last_key))
            ),
        }


class AppRowsDelivery(Delivery):
    """Users, credit ledger and purchases rows kept as Parquet and written to the app database."""

    def __init__(self, settings: FunnelSettings, store: LocalParquetStore, sink: Any) -> None:
        super().__init__(settings, store, sink)
        self.written: dict[str, int] = {}

    def day(self, key: str, events: pl.DataFrame) -> dict[str, Any]:
        rows = app_rows(events)
        for table, frame in rows.items():
            self.store.write(self.settings.dataset(f"app/{table}"), key, frame)
        for table, n in self.sink.write_day(key, rows).items():
            self.written[table] = self.written.get(table, 0) + n
        return {
            **table_metadata(rows=sum(f.height for f in rows.values())),
            **{t: f.height for t, f in rows.items()},
        }

    def summary(self) -> dict[str, Any]:
        return {"database": self.sink.mode, "rows_written": dg.MetadataValue.json(self.written)}


def delivery_asset(
    partitions: dg.PartitionsDefinition,
    cohort: dg.AssetsDefinition,
    delivery: type[Delivery],
    *,
    name: str,
    sink: str,
    kinds: set[str],
    description: str,
    pool: str | None = None,
) -> dg.AssetsDefinition:
    """Return the daily asset that runs ``delivery`` over the run's days with the ``sink`` resource."""

    @dg.asset(
        name=name,
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        deps=[cohort],
        kinds=kinds,
        retry_policy=NETWORK_RETRY,
        pool=pool,
        required_resource_keys={"funnel_settings", "store", sink},
        description=description,
    )
    def _delivery(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        settings: FunnelSettings = context.resources.funnel_settings
        store: LocalParquetStore = context.resources.store
        run = delivery(settings, store, getattr(context.resources, sink))
        for key in context.partition_keys:
            metadata = run.day(key, store.read(settings.dataset("cohort_events"), key))
            context.add_asset_metadata(metadata, partition_key=key)
        return dg.MaterializeResult(metadata=run.summary())

    return _delivery
