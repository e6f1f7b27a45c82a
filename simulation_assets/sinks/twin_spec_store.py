"""A twin spec on disk: ``twin.yaml`` plus one Parquet file per table, in one folder.

Writing builds the whole folder beside the target and swaps it in with a rename,
so a reader never sees half a spec and a failed write leaves the old one. The
YAML lists each table's file and row count; editing a table or the YAML by hand
is expected (that is what the spec is for), and loading validates both again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import polars as pl
import yaml

from simulation_assets.core.twin.spec import SpecError, TwinSpec, build_document, validate_tables

DOCUMENT = "twin.yaml"
# libyaml's safe loader when PyYAML has it (as sinks.config_files does; not imported from there, which
# would load Dagster into `simulate twin run`): the same documents and errors, about 10x faster.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def save_spec(spec: TwinSpec, folder: str | os.PathLike[str]) -> Path:
    """Write ``spec`` into ``folder`` (replacing what was there); return the folder."""
    target = Path(folder).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tables = {}
        for name, frame in sorted(spec.tables.items()):
            file = f"{name}.parquet"
            frame.write_parquet(work / file, compression="zstd", statistics=False)
            tables[name] = {"file": file, "rows": frame.height}
        document = spec.document.model_dump(mode="json")
        document["tables"] = tables
        (work / DOCUMENT).write_text(
            _HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)
        )
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            work.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def load_spec(folder: str | os.PathLike[str]) -> TwinSpec:
    """Read and validate the spec in ``folder``; raise SpecError naming the file and the problem."""
    root = Path(folder).expanduser()
    doc_path = root / DOCUMENT
    if not root.is_dir():
        raise SpecError(f"{root}: no such spec folder (expected the output of `simulate twin fit`)")
    if not doc_path.exists():
        raise SpecError(f"{root}: no {DOCUMENT} in this folder (is it a twin spec?)")
    try:
        data = yaml.load(doc_path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506 (the safe loader)
    except yaml.YAMLError as exc:
        raise SpecError(f"{doc_path}: not valid YAML ({exc})") from None
    try:
        # ``tables`` lists the files beside the document; the tables themselves are the spec.
        document = build_document(
            {k: v for k, v in data.items() if k != "tables"} if isinstance(data, dict) else data
        )
    except SpecError as exc:
        raise SpecError(f"{doc_path}: {exc}") from None
    tables: dict[str, pl.DataFrame] = {}
    for name, entry in (data.get("tables") or {}).items():
        file = root / str(entry.get("file", f"{name}.parquet"))
        try:
            tables[name] = pl.read_parquet(file)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise SpecError(f"{file}: cannot read table {name!r} ({str(exc).splitlines()[0]})") from None
    try:
        return TwinSpec(document, validate_tables(document, tables))
    except SpecError as exc:
        raise SpecError(f"{root}: {exc}") from None


_HEADER = """\
# A behavioural twin of an event export (simulation-assets). Edit freely:
#   generation.users / days / start / seed     what `simulate twin run` makes by default
#   generation.churn_multiplier                 x the daily churn hazard of every class (0.5 halves churn)
#   generation.drop_events                      event names the twin never emits
#   classes[*].share_new / share_backlog        how users split over the latent classes
#   classes[*].share_by_block                   ... among the users first seen in each week of the window
# The tables are Parquet files beside this one (event names spelled out).
"""
