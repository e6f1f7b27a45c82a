"""`simulate --help` and bad arguments answer without loading Dagster or the data libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulation_assets_tests.fresh_process import probe

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("dagster", "polars", "numpy", "pydantic", "duckdb", "rich")
_PROBE = """
import json, sys
from simulation_assets.cli import main
code = main(sys.argv[1:])
print("\\n" + json.dumps({"code": code, "loaded": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def _probe(tmp_path: Path, *argv: str, code: str = _PROBE, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter with ``argv`` in a folder of its own; return its last line's JSON."""
    return probe(tmp_path, *argv, code=code, timeout=timeout)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["hogflix", "--help"],
        ["funnel", "--help"],
        ["warehouse", "--help"],
        ["power-users", "--help"],
        ["activity", "--help"],
        ["cleanup", "--help"],
        ["target", "--help"],
        ["demo", "--help"],
    ],
)
def test_help_loads_nothing_heavy(tmp_path: Path, argv: list[str]) -> None:
    found = _probe(tmp_path, *argv)
    assert found == {"code": 0, "loaded": []}


@pytest.mark.parametrize(
    "argv",
    [
        ["hogflix", "--days", "0"],
        ["hogflix", "--days", "2", "--start", "2026-13-01"],
        ["funnel", "--impressions", "0"],
        ["warehouse", "--env", "staging"],
        ["activity", "--ticks", "0"],
        ["activity", "--ticks", "2", "--interval", "-1"],
        ["cleanup", "--app-db", "oracle"],
        ["nonsense"],
    ],
)
def test_bad_arguments_exit_2_without_loading_dagster(tmp_path: Path, argv: list[str]) -> None:
    found = _probe(tmp_path, *argv)
    assert found["code"] == 2
    assert "dagster" not in found["loaded"], found
    assert not (tmp_path / "home").exists()  # nothing written, not even the instance


def _simulate(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(tmp_path / "home")}
    env["SIMULATION_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "simulation_assets.cli", *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_command_line_ends_the_process_with_its_code_and_everything_written(tmp_path: Path) -> None:
    """``simulate`` ends its process itself (no module teardown): same exit codes, nothing lost."""
    done = _simulate(tmp_path, "activity", "--ticks", "0")
    assert done.returncode == 2 and "--ticks must be a positive integer" in done.stdout
    done = _simulate(tmp_path, "activity", "--ticks", "1", "--output", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1]  # the last line of the summary reached the pipe
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written, "no output files"
    import dagster as dg

    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:  # the run, as the UI reads it
        runs = instance.get_run_records()
        assert len(runs) == 1 and runs[0].dagster_run.is_success
        records = instance.get_records_for_run(runs[0].dagster_run.run_id, limit=10_000).records
        types = {r.event_log_entry.dagster_event_type for r in records if r.event_log_entry.is_dagster_event}
        assert dg.DagsterEventType.ASSET_MATERIALIZATION in types
        assert dg.DagsterEventType.ASSET_CHECK_EVALUATION in types
        assert dg.DagsterEventType.RUN_SUCCESS in types
        tick = instance.fetch_materializations(dg.AssetKey("activity_tick"), limit=1).records[0]
        metadata = tick.asset_materialization.metadata  # type: ignore[union-attr]
        assert metadata["dagster/row_count"].value == metadata["customers"].value > 0
        assert "data:image/svg+xml;base64," in metadata["calls_per_tick"].value
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("activity_tick"), "counters_never_decrease")]
        )
        assert [e.status.value for e in check.values()] == ["SUCCEEDED"]


_EXIT = """
import atexit, sys, threading, time
from simulation_assets.cli import exit_now
atexit.register(lambda: print("exit handler ran", flush=False))
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished"))).start()
print("unflushed line", end="")
exit_now(3)
print("after exit_now")
sys.exit(4)
"""


@pytest.mark.parametrize(("mode", "code", "expected"), [
    ("alone", 3, "unflushed lineexit handler ran\n"),
    ("thread", 4, "unflushed lineafter exit_now\nthread finished\nexit handler ran\n"),
])  # fmt: skip
def test_exit_now_runs_exit_handlers_flushes_and_waits_for_running_threads(
    mode: str, code: int, expected: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _EXIT, mode],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (code, expected), done.stderr


_LOADED = """
import json, sys
from simulation_assets.cli import main
code = main(sys.argv[2:])
print("\\n" + json.dumps({"code": code, "loaded": [m for m in sys.argv[1].split(",") if m in sys.modules]}))
"""


def test_a_command_builds_only_its_own_arguments(tmp_path: Path) -> None:
    """Every sub-command module registered its arguments for every command (~50 M instructions of module
    bodies and parsers); a command line now builds its own sub-command's, and any other first word all."""
    others = "simulation_assets.commands.twin,simulation_assets.commands.server,simulation_assets.commands.warehouse"
    assert _probe(tmp_path, others, "activity", "--ticks", "0", code=_LOADED) == {"code": 2, "loaded": []}
    found = _probe(tmp_path, others, "no-such-command", code=_LOADED)
    assert found == {"code": 2, "loaded": others.split(",")}  # the error lists every command, as before


def test_a_warehouse_table_without_dbt_never_imports_dbt(tmp_path: Path) -> None:
    """dbt and dagster-dbt (~1.2 s CPU to import) load only for ``--dbt``; the code location still has the models.

    Nor does PyArrow (~0.03 s): the labels are gathered and the written rows counted by Polars.
    """
    argv = ["warehouse", "--env", "dev", "--tables", "accounts", "--output", str(tmp_path / "out")]
    watched = "dbt,dagster_dbt,simulation_assets.defs.warehouse_dbt,pyarrow,dagster,polars"
    found = _probe(tmp_path, watched, *argv, code=_LOADED, timeout=600)
    assert found == {"code": 0, "loaded": ["dagster", "polars"]}  # the run happened; dbt, PyArrow out
    assert (tmp_path / "out" / "summary.json").is_file()

    from simulation_assets.defs import warehouse as wh

    keys = {k.to_user_string() for a in wh.defs.assets or [] for k in a.keys}  # type: ignore[union-attr]
    assert any(k.startswith("warehouse_dbt/") for k in keys)
    assert wh.DBT_RESOURCE is not None and "warehouse_dbt" in (wh.defs.resources or {})


_HOGFLIX_DAY = """
import json, sys
from simulation_assets.cli import main
code = main(sys.argv[1:])
built = "defs" in vars(sys.modules["simulation_assets.defs.hogflix"])
loaded = [m for m in ("pyarrow", "rich", "dagster", "polars") if m in sys.modules]
print("\\n" + json.dumps({"code": code, "loaded": loaded, "defs_built": built}))
"""


def test_a_hogflix_day_imports_no_pyarrow_and_builds_only_its_own_assets(tmp_path: Path) -> None:
    """A pool of hundreds is filtered and its new ids written by NumPy and Polars: PyArrow and its compute
    module (~0.27 G instructions to import, a fifth of the day's overhead above Dagster's floor) stay out.
    The command builds the lifecycle assets of its range, not the module's whole ``defs`` as well, and
    prints its summary without rich (no bar for one day)."""
    out = str(tmp_path / "out")
    argv = ["hogflix", "--days", "1", "--pool", "400", "--traffic-days", "0", "--output", out]
    found = _probe(tmp_path, *argv, code=_HOGFLIX_DAY, timeout=600)
    assert found == {"code": 0, "loaded": ["dagster", "polars"], "defs_built": False}
    assert (tmp_path / "out" / "personas.parquet").is_file()
    import simulation_assets.defs.hogflix as hogflix  # the code location still gets every schedule

    schedules = {s.name for s in hogflix.defs.schedules or []}
    assert {"hogflix_daily_0715_utc", "hogflix_every_30_minutes"} <= schedules


def test_a_command_on_a_ready_instance_imports_neither_alembic_nor_the_daemons(tmp_path: Path) -> None:
    """Alembic (schema creation, checks, migrations) and Dagster's daemons (~15 % of a trivial run's CPU)
    load where a process uses them: the first command creates the instance through Alembic, the next needs neither.

    The activity store opens its DuckDB file with DuckDB's engine alone: neither the ``duckdb`` package's
    relation layer nor PyArrow nor tenacity (~0.3 G instructions together) is imported for a tick; one
    tick prints its summary without rich (no bar for one step)."""
    argv = ["activity", "--ticks", "1", "--output", str(tmp_path / "out")]
    watched = "alembic,dagster._daemon.controller,dagster,_duckdb,duckdb,pyarrow,tenacity,rich"
    first = _probe(tmp_path, watched, *argv, code=_LOADED)
    assert first == {"code": 0, "loaded": ["alembic", "dagster", "_duckdb"]}
    assert _probe(tmp_path, watched, *argv, code=_LOADED) == {"code": 0, "loaded": ["dagster", "_duckdb"]}


_PARTITIONS = """
import json, os, sys
from simulation_assets.defs.partitions import start_date_from_env
import simulation_assets.defs.power_users  # its persona x day partitions start at the first day
os.environ["HOGFLIX_START_DATE"] = "2026-02-03"
first = start_date_from_env()
os.environ["HOGFLIX_START_DATE"] = "03/02/2026"
try:
    start_date_from_env()
    error = None
except ValueError as exc:
    error = str(exc)
loaded = sorted({m.rsplit(".", 1)[0] for m in sys.modules if m.startswith("simulation_assets.core.hogflix")})
print("\\n" + json.dumps({"first": first, "error": error, "hogflix": loaded, "pyarrow": "pyarrow" in sys.modules}))
"""


def test_the_first_day_is_read_without_loading_the_hogflix_core(tmp_path: Path) -> None:
    """Other domains' partitions start at ``$HOGFLIX_START_DATE``; reading it cost the power users ~0.1 s of imports."""
    found = _probe(tmp_path, code=_PARTITIONS)
    assert found["first"] == "2026-02-03"
    assert found["error"] == "HOGFLIX_START_DATE must be YYYY-MM-DD, got '03/02/2026'"
    assert found == {**found, "hogflix": [], "pyarrow": False}


# One fresh interpreter answers two questions (each import of Dagster + the definitions costs seconds):
# what the HogFlix definitions alone load, then what the whole code location does.
_DEFINITIONS = """
import json, sys, warnings
warnings.simplefilter("ignore")
import simulation_assets.defs.hogflix
http = {m: m in sys.modules for m in ("httpx", "pyrate_limiter", "tenacity")}
import simulation_assets.definitions
import simulation_assets.defs.power_users as power
jobs = {j.name: str(j.selection) for j in power.defs.jobs or []}
parser = [m for m in sys.modules if "antlr" in m]
print("\\n" + json.dumps({"hogflix": http, "parser": parser, "daily": jobs["power_users_daily"]}))
"""


@pytest.fixture(scope="module")
def definitions_imports() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _DEFINITIONS], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_hogflix_definitions_import_no_http_client(definitions_imports: dict) -> None:
    """httpx and pyrate-limiter (~0.06 s of CPU) are imported where FlixBuddy is asked, not by every HogFlix
    command; tenacity (~20 M instructions) where a sink retries a request."""
    assert definitions_imports["hogflix"] == {"httpx": False, "pyrate_limiter": False, "tenacity": False}


def test_no_definitions_parse_a_selection_string(definitions_imports: dict) -> None:
    """A job selection given as a string goes through Dagster's ANTLR parser: ~0.05 s of CPU for one word."""
    found = {k: definitions_imports[k] for k in ("parser", "daily")}
    assert found == {"parser": [], "daily": 'key:"power_user_runs"'}  # the same selection as the string gave
