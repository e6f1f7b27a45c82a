"""Reads an export the way the twin's fit needs it: every event's core fields, then a sample's properties.

Reading every property of millions of events is what would make a fit slow, so
it happens in two passes over the export (each streaming through DuckDB):
the core fields of every row, with the ``$anon_distinct_id`` of the ``$identify``
rows only; then the properties of a seeded sample of the training users (about
``property_sample_rows`` events). When the properties are one JSON column, that
second pass keeps the sampled rows' JSON text, lists the keys on a seeded
``KEY_SAMPLE_ROWS`` of them and pulls the kept keys out in memory; when they are
columns, the keys are listed on a sample of the whole export first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from simulation_assets.core.twin.config import FitConfig
from simulation_assets.core.twin.fit import Prepared, prepare, property_sample_ids
from simulation_assets.core.twin.identity import IDENTIFY
from simulation_assets.core.twin.properties import candidate_keys
from simulation_assets.sinks.memory import tune_generator_memory
from simulation_assets.sinks.posthog_export import ColumnMapping, ExportSource, open_export
from simulation_assets.sinks.posthog_export.source import rows_properties, rows_property_keys

ANON = "$anon_distinct_id"
KEY_SAMPLE_ROWS = 20_000  # rows whose property keys are listed (a seeded sample)


@dataclass
class LoadedExport:
    export: ExportSource
    prepared: Prepared
    property_sample: pl.DataFrame
    key_stats: pl.DataFrame

    @property
    def name(self) -> str:
        return Path(self.export.source).name


def load_real(
    path: str | Path, mapping: ColumnMapping | None, cfg: FitConfig
) -> tuple[ExportSource, Prepared]:
    """Open the export and import its users and sessions (no properties, no event uuids)."""
    export = open_export(path, mapping)
    # One pass: the ``$anon_distinct_id`` is parsed out of the ``$identify`` events' properties only.
    core = export.frame([ANON], uuid=False, properties_of=[IDENTIFY])
    identifies = core.filter(pl.col("event") == IDENTIFY).select("distinct_id", ANON)
    core = core.drop(ANON)  # its 10M nulls freed before sessions are built (the read's peak memory)
    return export, prepare(core, cfg, identifies)


def load_for_fit(path: str | Path, mapping: ColumnMapping | None, cfg: FitConfig) -> LoadedExport:
    """Read everything the fit needs from the export at ``path`` (raises ExportError on a bad export).

    The process's big numpy temporaries stop asking for huge pages first (``sinks.memory``): the fit that
    follows spent more system CPU in page compaction than computing without it.
    """
    tune_generator_memory()
    export, prepared = load_real(path, mapping, cfg)
    ids = property_sample_ids(prepared, cfg)
    if export.json_properties is not None:
        # One read of the sampled users' rows with their JSON text; keys are listed and pulled out in memory.
        rows = export.frame("json", distinct_ids=ids, uuid=False)
        stats = rows_property_keys(rows, sample_rows=KEY_SAMPLE_ROWS)
        keys, _ = candidate_keys(stats, cfg.max_property_keys)
        sample = rows_properties(rows.select("distinct_id", "event", "timestamp", "properties"), keys)
    else:  # properties are columns already: the keys' statistics, then only the columns kept
        stats = export.property_keys(sample_rows=KEY_SAMPLE_ROWS)
        keys, _ = candidate_keys(stats, cfg.max_property_keys)
        sample = export.frame(keys, distinct_ids=ids) if keys else export.frame("none", distinct_ids=ids)
    # DuckDB's filtered scans do not keep the file's row order: sorted, the sample (and the fit) is the same each time.
    sample = sample.sort("distinct_id", "timestamp", "event", *keys, nulls_last=True, maintain_order=True)
    return LoadedExport(export, prepared, sample.select("distinct_id", "event", "timestamp", *keys), stats)
