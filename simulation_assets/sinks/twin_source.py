"""Reads an export the way the twin's fit needs it: every event's core fields, then a sample's properties.

Reading every property of millions of events is what would make a fit slow, so
it happens in two passes over the export (each streaming through DuckDB):
the core fields of every row, with the ``$anon_distinct_id`` of the ``$identify``
rows only; then the properties of a seeded sample of the training users (about
``property_sample_rows`` events). When the properties are one JSON column, that
second pass keeps the sampled rows' JSON text, lists the keys on a seeded
``KEY_SAMPLE_ROWS`` of them and pulls the kept keys out in memory; when they are
columns, the keys are listed on a sample of the whole export first.

JSON lines and CSV have no columns to read alone: every pass parses every line. There the core
pass also keeps the JSON text (the CSV's property columns) of the rows whose distinct id hashes
into the lowest ``KEEP_SHARE`` (``id_hash_sql``); the sampled users' ids hash low
(``property_sample_ids``), so their rows are among those and the second pass is skipped (it still
runs, and gives the same rows, when a sampled user has an id that hashes higher).
"""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from simulation_assets.core.twin.config import FitConfig
from simulation_assets.core.twin.fit import FitError, Prepared, prepare, property_sample_ids
from simulation_assets.core.twin.groups import SET_KEYS
from simulation_assets.core.twin.identity import IDENTIFY
from simulation_assets.core.twin.properties import GROUP_COLUMNS, candidate_keys
from simulation_assets.core.twin.sessions import SESSION_ID_MIN_SHARE
from simulation_assets.sinks.memory import tune_generator_memory
from simulation_assets.sinks.posthog_export import ColumnMapping, ExportError, ExportSource, open_export
from simulation_assets.sinks.posthog_export.source import id_hashes, rows_properties, rows_property_keys

ANON = "$anon_distinct_id"
# PostHog's other merge: a ``$create_alias`` row makes its ``alias`` property one person with its distinct id.
ALIAS_EVENT, ALIAS = "$create_alias", "alias"
KEY_SAMPLE_ROWS = 20_000  # rows whose property keys are listed (a seeded sample)
MIN_DAYS = 7  # a week: fewer days show neither returns nor a weekly rhythm
SPAN_GAP_DAYS = 28  # days without any event that split an export's days into separate spans
STRAY_SHARE = 0.01  # rows outside the main span left out (with a note) when they are at most this share
SESSION_PROBE = 64  # one row in this many is searched for a $session_id where the files' first rows have none
KEEP_SHARE = (
    0.25  # JSON lines, CSV: the share of distinct ids (by hash) whose rows' properties the core pass keeps
)


@dataclass
class LoadedExport:
    export: ExportSource
    prepared: Prepared
    property_sample: pl.DataFrame
    key_stats: pl.DataFrame
    stray_rows: int = 0  # rows dated far outside the export's main span of days, left out
    repeated_rows: int = 0  # rows delivered again with an event uuid already read, left out

    @property
    def name(self) -> str:
        return Path(self.export.source).name


def load_real(
    path: str | Path, mapping: ColumnMapping | None, cfg: FitConfig
) -> tuple[ExportSource, Prepared]:
    """Open the export and import its users and sessions (no properties, no event uuids)."""
    export, prepared, _, _, _, _ = _load_real(path, mapping, cfg)
    return export, prepared


def _load_real(
    path: str | Path, mapping: ColumnMapping | None, cfg: FitConfig, keep: bool = False
) -> tuple[ExportSource, Prepared, int, int, pl.DataFrame | None, Future[pl.DataFrame] | None]:
    """Also return, with ``keep`` on a JSON-lines export with JSON properties, the rows the core pass kept the
    JSON of (every row, repeats and strays too, whose distinct id's hash is below ``_keep_bound``), and, with
    ``keep`` on an export whose properties are columns, the future of its ``property_keys``: that scan runs on a
    thread of its own while the users and sessions are built (they leave part of a second core idle)."""
    export = open_export(path, mapping)
    below = (cfg.seed, _keep_bound()) if keep and _keeps_json(export) else None
    core = core_rows(export, below)
    key_stats = None
    if keep and export.json_properties is None:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-keys")
        key_stats = pool.submit(export.property_keys, KEY_SAMPLE_ROWS)
        pool.shutdown(wait=False)  # the thread ends with the scan
    kept = None
    if below is not None:
        if "__json" in core.columns:
            props = [pl.col("__json").alias("properties")]
        else:  # a CSV's property columns, kept as one list per row
            props = [
                pl.col("__kept_columns").list.get(i).alias(k) for i, k in enumerate(export.property_columns)
            ]
        extra = [c for c in ("__json", "__kept_columns") if c in core.columns]
        kept = core.filter(pl.col("__kept")).select("event", "distinct_id", "person_id", "timestamp", *props)
        core = core.drop("__kept", *extra)
    core, repeats = drop_redelivered(core)
    core, stray = main_span(core, export.source)
    identifies = pl.concat(
        [
            core.filter(pl.col("event") == IDENTIFY).select("distinct_id", ANON),
            core.filter(pl.col("event") == ALIAS_EVENT).select("distinct_id", pl.col(ALIAS).alias(ANON)),
        ]
    )
    core = core.drop(ANON, ALIAS)  # their 10M nulls freed before sessions are built (the read's peak memory)
    return export, prepare(core, cfg, identifies), stray, repeats, kept, key_stats


def _keeps_json(export: ExportSource) -> bool:
    """Whether the core pass keeps some rows' properties: JSON lines' JSON and the columns of a CSV (a second
    pass would parse every line again; Parquet reads the sampled rows' columns alone)."""
    if export.json_properties is not None:
        return export.file_format == "jsonl"
    return export.file_format == "csv" and bool(export.property_columns)


def _keep_bound() -> int:
    return int(KEEP_SHARE * 2**64)


def core_rows(export: ExportSource, json_below: tuple[int, int] | None = None) -> pl.DataFrame:
    """Return every event's core fields, with the ``$anon_distinct_id`` of the ``$identify`` events and the
    ``alias`` of the ``$create_alias`` ones (one pass).

    Sessions are taken from ``$session_id`` only where at least ``SESSION_ID_MIN_SHARE`` of the events carry
    one; otherwise they are rebuilt and the ids are never used. Searching every row's JSON properties for one
    cost about half the read (7 of 14 CPU seconds on 10.9M mobile-app events that carry none), so when the
    first rows of the files hold none, the read only probes one row in ``SESSION_PROBE`` (rows spread over the
    whole export by a hash); if those show as many as half the needed share, the ids are read after all (a
    second pass). Either way the rows, and the fit, are those of the full search: an export whose probe
    lands under half the share while its true share is at least ``SESSION_ID_MIN_SHARE`` is not a sampling
    accident that happens (tens of thousands of probed rows). ``json_below``: see ``ExportSource.select_sql``.
    """
    head = export.session_share_at_head()
    if head is not None and head < SESSION_ID_MIN_SHARE / 2:
        core = export.frame(
            [ANON, ALIAS],
            uuid=False,
            properties_of=[IDENTIFY, ALIAS_EVENT],
            uuid_hash=True,
            session_probe=SESSION_PROBE,
            json_below=json_below,
        )
        probe = core["__sid_probe"]
        core = core.drop("__sid_probe")
        if probe.count() and probe.sum() < SESSION_ID_MIN_SHARE / 2 * probe.count():
            return core
        del core
    # One pass: the ``$anon_distinct_id`` is parsed out of the ``$identify`` events' properties only.
    return export.frame(
        [ANON, ALIAS],
        uuid=False,
        properties_of=[IDENTIFY, ALIAS_EVENT],
        uuid_hash=True,
        json_below=json_below,
    )


def drop_redelivered(rows: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Return ``rows`` with one row per event uuid (by ``__uuid_hash``, dropped), as PostHog keeps one, and how
    many rows were repeats.

    Batch exports deliver at least once: a retried batch repeats rows with their uuid. Fitted, the twin
    would learn them as events repeated at no time apart and emit its own (with new uuids, which PostHog
    keeps). Rows without a uuid are all kept.
    """
    if "__uuid_hash" not in rows.columns:
        return rows, 0
    hashed = rows["__uuid_hash"]
    nulls = hashed.null_count()
    # Counting distinct hashes is a sixth of the CPU of marking first ones: the rows are only marked when some repeat.
    repeats = hashed.len() - nulls - (hashed.n_unique() - (1 if nulls else 0))
    if repeats:
        keep = hashed.is_first_distinct() | hashed.is_null()
        repeats = int(keep.len() - keep.sum())
        rows = rows.filter(keep)
    return rows.drop("__uuid_hash"), repeats


def main_span(rows: pl.DataFrame, source: str) -> tuple[pl.DataFrame, int]:
    """Return ``rows`` without the few dated far outside the export's days, and how many those were.

    The days holding events split into spans wherever ``SPAN_GAP_DAYS`` or more days pass without one; the
    span with the most rows is the export's. Rows of the other spans (a device clock at 1970-01-01, a
    timestamp years ahead) are left out when they are at most ``STRAY_SHARE`` of all rows: fitted, a handful
    of them would stretch the window over decades. More than that is not a stray clock but an export of
    several periods, and raises ExportError naming the spans.
    """
    day = rows["timestamp"].dt.epoch("d")
    counts = day.value_counts(name="rows").sort(day.name)
    days, n = counts[day.name].to_numpy(), counts["rows"].to_numpy()
    if days.size < 2:
        return rows, 0
    cuts = np.flatnonzero(np.diff(days) > SPAN_GAP_DAYS) + 1
    if cuts.size == 0:
        return rows, 0
    starts, ends = np.r_[0, cuts], np.r_[cuts, days.size]
    per_span = np.add.reduceat(n, starts)
    main = int(np.argmax(per_span))
    outside = int(n.sum() - per_span[main])
    if outside > STRAY_SHARE * n.sum():
        spans = ", ".join(
            f"{_date(days[a])}..{_date(days[b - 1])} ({int(c):,} rows)"
            for a, b, c in zip(starts, ends, per_span)
        )
        raise ExportError(
            source,
            f"the events fall in {starts.size} periods more than {SPAN_GAP_DAYS} days apart ({spans}); a twin is "
            "fitted to one stretch of days: export one period (or filter the rows by timestamp)",
        )
    lo, hi = int(days[starts[main]]), int(days[ends[main] - 1])
    return rows.filter(day.is_between(lo, hi)), outside


def _date(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()


def load_for_fit(path: str | Path, mapping: ColumnMapping | None, cfg: FitConfig) -> LoadedExport:
    """Read everything the fit needs from the export at ``path`` (raises ExportError on a bad export).

    The process's big numpy temporaries stop asking for huge pages first (``sinks.memory``): the fit that
    follows spent more system CPU in page compaction than computing without it.
    """
    tune_generator_memory()
    export, prepared, stray, repeats, kept, key_stats = _load_real(path, mapping, cfg, keep=True)
    if prepared.window.days < MIN_DAYS:
        raise FitError(
            f"{export.source}: the export covers {prepared.window.days} day(s) ({_date(prepared.window.first)}.."
            f"{_date(prepared.window.last)}); a twin needs at least {MIN_DAYS} to see users come back and a "
            "week's rhythm"
        )
    hashes = id_hashes(prepared.events["distinct_id"], cfg.seed)
    ids = property_sample_ids(prepared, cfg, hashes)
    wanted = pl.col("distinct_id").is_in(pl.Series("distinct_id", ids, pl.String).implode())
    kept_rows = None
    if kept is not None and bool((hashes.filter(wanted)["hash"] < _keep_bound()).all()):
        # The sampled users' rows were all kept by the core pass (else they are read again below). Copied out
        # through Arrow's plain strings: filtered, polars' string views would keep every kept row's text (and
        # the whole export's event names) alive for as long as the sample lives.
        kept_rows = pl.DataFrame(
            pl.from_arrow(kept.filter(wanted).to_arrow(compat_level=pl.CompatLevel.oldest()))
        )
    del kept
    if export.json_properties is not None:
        # The sampled users' rows with their JSON text; keys are listed and pulled out in memory.
        rows = kept_rows if kept_rows is not None else export.frame("json", distinct_ids=ids, uuid=False)
        stats = rows_property_keys(rows, sample_rows=KEY_SAMPLE_ROWS)
        keys, _ = candidate_keys(stats, cfg.max_property_keys)
        groups = group_keys(stats) + set_keys(stats)
        sample = rows_properties(
            rows.select("distinct_id", "event", "timestamp", "properties"), keys + groups
        )
    else:  # properties are columns already: the keys' statistics, then only the columns kept
        assert key_stats is not None
        stats = key_stats.result()
        keys, _ = candidate_keys(stats, cfg.max_property_keys)
        groups = group_keys(stats) + set_keys(stats)
        if kept_rows is not None:  # a CSV's columns of the sampled users' rows
            sample = kept_rows
        else:
            wanted_keys = keys + groups
            sample = (
                export.frame(wanted_keys, distinct_ids=ids)
                if wanted_keys
                else export.frame("none", distinct_ids=ids)
            )
    # DuckDB's filtered scans do not keep the file's row order: sorted, the sample (and the fit) is the same each time.
    sample = sample.sort("distinct_id", "timestamp", "event", *keys, nulls_last=True, maintain_order=True)
    # The users' groups (a value must be seen by users of k groups: properties.group_holders) and what their
    # $identify rows set: never copied, fitted by core.twin.groups.
    groups = [g for g in groups if g in sample.columns]
    return LoadedExport(
        export,
        prepared,
        sample.select("distinct_id", "event", "timestamp", *keys, *groups),
        stats,
        stray,
        repeats,
    )


def set_keys(stats: pl.DataFrame) -> list[str]:
    """Return the person-property objects (``$set``, ``$set_once``) the export's ``$identify`` rows carry."""
    keys = set(stats.filter(pl.col("event") == IDENTIFY)["key"].to_list())
    return [key for key in SET_KEYS if key in keys]


def group_keys(stats: pl.DataFrame) -> list[str]:
    """Return the export's group keys (``$groups``, its flattened columns, ``$group_0``..``$group_4``), sorted."""
    return sorted(key for key in stats["key"].unique().to_list() if re.match(GROUP_COLUMNS, key))
