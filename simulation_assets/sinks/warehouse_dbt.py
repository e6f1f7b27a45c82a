"""The dbt project over the warehouse (``dbt/`` at the repository root), prepared by dagster-dbt.

``DBT_PROJECT`` is a ``dagster_dbt.DbtProject``. Its manifest is written by dagster-dbt's own
preparation (``dbt parse``, guarded against concurrent processes): under ``dagster dev`` on every
load (``prepare_if_dev``); elsewhere prepare it once after changing the models with

    dagster-dbt project prepare-and-package --file simulation_assets/sinks/warehouse_dbt.py

``prepared_project`` also prepares it when the manifest is missing or older than the project's files
(a fresh clone, a model changed outside ``dagster dev``). The project needs no packages, so nothing
is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.dbt_project import DagsterDbtProjectPreparer
from packaging.version import Version

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt"


def dbt_executable() -> str:
    """Return the ``dbt`` next to the running Python (the venv's), else the one on PATH."""
    local = Path(sys.executable).with_name("dbt")
    if local.exists():
        return str(local)
    found = shutil.which("dbt")
    if not found:
        raise RuntimeError("the dbt executable was not found; install the project (scripts/setup.sh)")
    return found


class WarehouseDbtCli(DbtCliResource):
    """dagster-dbt's ``DbtCliResource``, told its dbt's version instead of asking for it.

    Before each invocation dagster-dbt runs ``dbt --version`` once per resource instance, that is once per
    run or step retry: a process of its own, ~3.2 s CPU (more than a partial parse). When the executable is
    this environment's own ``dbt`` (``dbt_executable``), its version is the dbt-core this process imports."""

    @cached_property
    def _cli_version(self) -> Version:
        from dagster_dbt.compat import DBT_PYTHON_VERSION

        own = Path(sys.executable).with_name("dbt")
        if DBT_PYTHON_VERSION is not None and Path(self.dbt_executable) == own:
            return DBT_PYTHON_VERSION
        return DbtCliResource._cli_version.func(self)  # another dbt: ask it, as dagster-dbt does


class WarehouseDbtPreparer(DagsterDbtProjectPreparer):
    """dagster-dbt's preparer (``dbt parse`` under its guard against concurrent processes), run through
    ``WarehouseDbtCli``: the stock one asks ``dbt --version`` first, which also fetches the latest release
    numbers of dbt-core and each adapter from PyPI (a 1 s timeout each) on top of ~3.2 s CPU."""

    def dbt_resource(self, project: DbtProject) -> DbtCliResource:
        """Return the dbt resource the preparation runs ``dbt`` with."""
        return WarehouseDbtCli(project_dir=project, dbt_executable=dbt_executable())

    def _prepare_manifest(self, project: DbtProject) -> None:
        self.dbt_resource(project).cli(self._prepare_project_cli_args, target_path=project.target_path).wait()
        self._invalidate_seeds_in_partial_parse(project)  # as dagster-dbt does (this project has no seeds)


def _project() -> DbtProject:
    from dagster_shared.record import replace

    return replace(DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR), preparer=WarehouseDbtPreparer())


DBT_PROJECT = _project()


def manifest_is_stale() -> bool:
    """Return whether the manifest is missing or older than a model, test, macro or the project file."""
    manifest = DBT_PROJECT.manifest_path
    if not manifest.exists():
        return True
    sources = [p for ext in ("*.sql", "*.yml") for p in DBT_DIR.rglob(ext) if "target" not in p.parts]
    return max((p.stat().st_mtime for p in sources), default=0.0) > manifest.stat().st_mtime


def prepared_project() -> DbtProject:
    """Return ``DBT_PROJECT`` with a current manifest: dagster-dbt parses it on every load under ``dagster dev``,
    and here also when it is missing or older than the project's files (a fresh clone, a changed model)."""
    # dagster-dbt's preparer runs ``dbt`` by name: put the venv's first on PATH
    path = os.pathsep.join([str(Path(dbt_executable()).parent), os.environ.get("PATH", "")])
    with environment({"PATH": path}):
        DBT_PROJECT.prepare_if_dev()
        if manifest_is_stale():
            DBT_PROJECT.preparer.prepare(DBT_PROJECT)
    return DBT_PROJECT


@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Set ``variables`` in ``os.environ`` for the duration of the block (dbt subprocesses inherit them)."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# What a dbt error says when the warehouse could not be reached or was busy: worth running again. Anything
# else (a failed data test, a SQL or compilation error) fails the same way every time.
TRANSIENT_DBT_ERRORS = re.compile(
    r"could not connect to server|connection refused|connection to server at .* failed|"
    r"server closed the connection unexpectedly|terminating connection|too many clients|"
    r"timeout expired|could not set lock on file|database is locked|conflicting lock",
    re.IGNORECASE,
)


def dbt_failure_is_transient(error_text: str) -> bool:
    """Return whether a failed dbt command failed for a reason a later attempt may not meet (the database
    unreachable, restarting or locked by another process), rather than a data test or SQL error."""
    return bool(TRANSIENT_DBT_ERRORS.search(error_text or ""))


PARTIAL_PARSE = "partial_parse.msgpack"
# dagster-dbt gives each invocation a target folder of its own under the project's (``<op>-<run>-<id>``: dbt's
# artifacts and log of that run, ~5 MB); nothing reads them after the step, so only the newest are kept
KEPT_INVOCATIONS = 5


def prune_invocation_folders(
    op_name: str, target: Path | None = None, keep: int = KEPT_INVOCATIONS
) -> list[Path]:
    """Remove all but the newest ``keep`` invocation folders of ``op_name`` in ``target`` (default: the
    project's target folder) and return the removed ones; the prepared manifest and parse stay."""
    root = target or DBT_PROJECT.project_dir / DBT_PROJECT.target_path
    folders = [p for p in root.glob(f"{op_name}-*") if p.is_dir()]
    folders.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)  # another process may be removing it too
    return folders[keep:]


# the saved parses of the PostgreSQL warehouses dbt ran against lately, one folder per profile
KEPT_PARSES = 8


def parse_folder(variables: Mapping[str, str], target: Path | None = None) -> Path:
    """Return the folder whose saved parse (``partial_parse.msgpack``) dbt starts from against the warehouse
    ``variables`` point to (``WarehouseDatabase.dbt_env``). dbt parses the whole project again when its profile
    differs from the one the saved parse was made with (~7 s CPU instead of ~3.4 s per command). The DuckDB
    profile names no file, so every DuckDB warehouse uses the project's prepared parse (``target``, default the
    project's target folder); a PostgreSQL profile names its server and database, so each gets a folder of its
    own under ``parses/``, kept by ``keep_parse`` after each dbt command."""
    root = target or DBT_PROJECT.project_dir / DBT_PROJECT.target_path
    if variables.get("WAREHOUSE_DBT_TARGET", "duckdb") == "duckdb":
        return root
    import hashlib

    profile = "\0".join(f"{k}={v}" for k, v in sorted(variables.items()) if k.startswith("WAREHOUSE_"))
    return root / "parses" / hashlib.sha256(profile.encode()).hexdigest()[:16]


def start_from_saved_parse(target: Path, source: Path) -> None:
    """Copy the saved parse in folder ``source``, if any, into dbt target folder ``target``."""
    if (source / PARTIAL_PARSE).exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / PARTIAL_PARSE, target / PARTIAL_PARSE)


def keep_parse(target: Path, variables: Mapping[str, str], root: Path | None = None) -> None:
    """Keep the parse dbt saved in ``target`` as the one later commands against the same PostgreSQL warehouse
    start from (``parse_folder``); the newest ``KEPT_PARSES`` warehouses' are kept. The project's prepared parse
    (DuckDB) is left as the preparation wrote it."""
    folder = parse_folder(variables, root)
    made = target / PARTIAL_PARSE
    if folder == (root or DBT_PROJECT.project_dir / DBT_PROJECT.target_path) or not made.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{PARTIAL_PARSE}.{os.getpid()}"
    shutil.copyfile(made, part)
    os.replace(part, folder / PARTIAL_PARSE)  # whole: another process may be reading it
    folders = sorted((p for p in folder.parent.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in folders[:-KEPT_PARSES]:
        shutil.rmtree(old, ignore_errors=True)


def invocation_folder(op_name: str, run_id: str, variables: Mapping[str, str]) -> Path:
    """Return a new target folder for one dagster-dbt invocation of ``op_name`` in ``run_id`` (named as dagster-dbt
    names its own, so ``prune_invocation_folders`` finds it), holding the saved parse kept for the warehouse
    ``variables`` point to (``parse_folder``); dagster-dbt would start it from the project's prepared parse."""
    import uuid

    root = DBT_PROJECT.project_dir / DBT_PROJECT.target_path
    target = root / f"{op_name}-{run_id[:7]}-{uuid.uuid4().hex[:7]}"
    start_from_saved_parse(target, parse_folder(variables))
    return target


@contextlib.contextmanager
def target_folder(
    prefix: str, parsed_in: Path | None = None, variables: Mapping[str, str] | None = None
) -> Iterator[Path]:
    """Yield a temporary dbt target folder (``--target-path``) that starts from the saved parse in ``parsed_in``
    (default: the one kept for the warehouse ``variables`` point to, see ``parse_folder``), as dagster-dbt's own
    invocations do, and keep the parse dbt saved in it for the next command against that warehouse. dbt still
    re-parses what changed since (files, or the profile when the parse was made with another)."""
    import tempfile

    variables = variables or {}
    with tempfile.TemporaryDirectory(prefix=prefix) as target:
        start_from_saved_parse(Path(target), parsed_in or parse_folder(variables))
        try:
            yield Path(target)
        finally:
            keep_parse(Path(target), variables)


def source_freshness(
    variables: dict[str, str], parsed_in: Path | None = None
) -> dict[str, dict[str, object]]:
    """Run ``dbt source freshness`` against the warehouse ``variables`` point to (``WarehouseDatabase.dbt_env``)
    and return, per raw source table (``source.table``), its status (``pass``, ``warn``, ``error`` or
    ``runtime error``) and its age in hours at the simulated window's end (the ``window_end`` var).
    ``parsed_in``: a dbt target folder whose saved parse to start from (``target_folder``)."""
    import json
    import subprocess

    with target_folder("dbt-freshness-", parsed_in, variables) as target:
        env = {**os.environ, **variables}
        done = subprocess.run(
            [dbt_executable(), "source", "freshness", "--project-dir", str(DBT_DIR), "--profiles-dir",
             str(DBT_DIR), "--target-path", str(target), "--output", str(target / "sources.json")],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        report = Path(target) / "sources.json"
        if not report.exists():
            raise RuntimeError(f"dbt source freshness wrote no report: {(done.stdout + done.stderr)[-2000:]}")
        results = json.loads(report.read_text())["results"]
    return {
        ".".join(r["unique_id"].split(".")[-2:]): {
            "status": r["status"],
            "age_hours": round(r["max_loaded_at_time_ago_in_s"] / 3600, 1)
            if "max_loaded_at_time_ago_in_s" in r
            else None,
        }
        for r in results
    }
