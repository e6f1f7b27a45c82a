"""Where run-failure summaries go: one Markdown file per failed run, and one JSON line each in an index.

Default folder: ``<data dir>/run_failures`` (``$SIMULATION_DATA_DIR``), so the summaries sit next
to the data the runs write. A summary is replaced when the same run is summarized again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field

from simulation_assets.paths import data_dir
from simulation_assets.sinks.atomic_files import atomic_write_text


class RunFailureReports(dg.ConfigurableResource):
    """Writes run-failure summaries as files a person can open (and a JSON-lines index for tools)."""

    ENV: ClassVar[dict[str, str]] = {"folder": "RUN_FAILURE_REPORTS_DIR"}

    folder: str = Field(
        default="",
        description="Folder of the summaries ($RUN_FAILURE_REPORTS_DIR); empty: <data dir>/run_failures.",
    )

    def root(self) -> Path:
        """Return the folder the summaries are written to."""
        return Path(self.folder).expanduser().resolve() if self.folder else data_dir() / "run_failures"

    def write(self, run_id: str, day: str, markdown: str, record: dict[str, Any]) -> Path:
        """Write ``<root>/<day>/<run_id>.md`` and add ``record`` to ``<root>/index.jsonl``; return the file."""
        path = self.root() / day / f"{run_id}.md"
        atomic_write_text(path, markdown)
        index = self.root() / "index.jsonl"
        lines = index.read_text(encoding="utf-8").splitlines() if index.exists() else []
        kept = [line for line in lines if json.loads(line).get("run_id") != run_id]
        kept.append(json.dumps({**record, "summary": str(path)}, sort_keys=True, default=str))
        atomic_write_text(index, "\n".join(kept) + "\n")
        return path

    def index(self) -> list[dict[str, Any]]:
        """Return every summary record written so far, oldest first."""
        index = self.root() / "index.jsonl"
        if not index.exists():
            return []
        return [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line]
