"""Reads an export the way the twin's fit needs it: every event's core fields, then a sample's properties.

Reading every property of millions of events is what would make a fit slow, so
it happens in three passes over the export (each streaming through DuckDB):
the core fields of every row; the ``$anon_distinct_id`` of the ``$identify`` rows
only; and the properties of a seeded sample of the training users (about
``property_sample_rows`` events), after a look at the keys of the first rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from simulation_assets.core.twin.config import FitConfig
from simulation_assets.core.twin.fit import Prepared, prepare, property_sample_ids
from simulation_assets.core.twin.properties import candidate_keys
from simulation_assets.sinks.posthog_export import ColumnMapping, ExportSource, open_export

KEY_SAMPLE_ROWS = 20_000  # rows whose property keys are listed (a seeded sample of the whole export)


@dataclass
class LoadedExport:
    export: ExportSource
    prepared: Prepared
    property_sample: pl.DataFrame
    key_stats: pl.DataFrame

    @property
    def name(self) -> str:
        return Path(self.export.source).name


def read_identifies(export: ExportSource) -> pl.DataFrame:
    """Return ``distinct_id`` and ``$anon_distinct_id`` of the export's ``$identify`` events."""
    rows = export.frame(["$anon_distinct_id"], where="event = '$identify'")
    return rows.select("distinct_id", "$anon_distinct_id")


def load_real(
    path: str | Path, mapping: ColumnMapping | None, cfg: FitConfig
) -> tuple[ExportSource, Prepared]:
    """Open the export and import its users and sessions (no properties, no event uuids)."""
    export = open_export(path, mapping)
    core = export.frame("none", uuid=False)
    return export, prepare(core, cfg, read_identifies(export))


def load_for_fit(path: str | Path, mapping: ColumnMapping | None, cfg: FitConfig) -> LoadedExport:
    """Read everything the fit needs from the export at ``path`` (raises ExportError on a bad export)."""
    export, prepared = load_real(path, mapping, cfg)
    stats = export.property_keys(sample_rows=KEY_SAMPLE_ROWS)
    keys, _ = candidate_keys(stats, cfg.max_property_keys)
    ids = property_sample_ids(prepared, cfg)
    sample = export.frame(keys, distinct_ids=ids) if keys else export.frame("none", distinct_ids=ids)
    return LoadedExport(export, prepared, sample.select("distinct_id", "event", *keys), stats)
