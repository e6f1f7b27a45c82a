"""What one `simulate power-users` costs besides its requests: its scenario read once, its definitions
built once, each check's materialization looked up once; and the cached scenario stays the file's."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from simulation_assets.core.power_users.config import ConfigError
from simulation_assets.core.power_users.costs import CostModel
from simulation_assets.sinks import power_users_scenario
from simulation_assets.sinks.power_users_scenario import load_scenario
from simulation_assets.sinks.power_users_wandb import WandbAnalysisLog
from simulation_assets_tests.fresh_process import probe
from simulation_assets_tests.power_users.conftest import lean_scenario_file

# Modules a plain power-user run has no use for: numpy.ma (numpy's median imported it for one figure of a
# check), the load shapes' machinery (only with --shape), httpx's command-line program, the WebSocket
# protocol of the reference API's server (no reference app serves a WebSocket).
UNUSED = ("numpy.ma", "simulation_assets.sinks.power_users_load", "httpx._main", "rich.console", "websockets")
# Counts, in a fresh interpreter, the scenario validations, the power-user definitions built (and whether the
# module-level ones were) and the materialization look-ups of one command; prints them as JSON.
_PROBE = (
    f"UNUSED = {UNUSED!r}\n"
    + """
import json, sys
from simulation_assets.sinks import deferred_imports
deferred_imports.install()  # as `simulate` does before it imports the command's modules
import simulation_assets.core.power_users.config as config
parsed, built, fetched = [], [], []
real_parse = config.parse_scenario
def counting_parse(data, source="<data>"):
    parsed.append(source)
    return real_parse(data, source)
config.parse_scenario = counting_parse
import simulation_assets.defs.power_users as defs_module
real_build = defs_module.build_defs
def counting_build(scenario_path=None):
    built.append(scenario_path)
    return real_build(scenario_path)
defs_module.build_defs = counting_build
import dagster as dg
from dagster._core.instance import DagsterInstance
real_fetch = DagsterInstance.fetch_materializations
def counting_fetch(self, *args, **kwargs):
    fetched.append(1)
    return real_fetch(self, *args, **kwargs)
DagsterInstance.fetch_materializations = counting_fetch
from simulation_assets.cli import main
code = main(sys.argv[1:])
looked_up = len(fetched)
instance = DagsterInstance.get()
evaluations = sum(
    1
    for run in instance.get_runs()
    for e in instance.all_logs(run.run_id)
    if e.dagster_event is not None and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
)
runs = [run.asset_selection for run in instance.get_runs()]
reports = instance.fetch_materializations(dg.AssetKey("power_user_report"), limit=10).records
print("\\n" + json.dumps({"code": code, "runs": len(runs), "report_materializations": len(reports), "parsed": parsed, "built": built, "module_defs": "defs" in vars(defs_module),
                          "fetched": looked_up, "evaluations": evaluations, "unused": [m for m in UNUSED if m in sys.modules]}))
"""
)


def test_one_command_is_one_run_reading_its_scenario_once_building_its_definitions_once(
    tmp_path: Path,
) -> None:
    scenario = str(lean_scenario_file(tmp_path))  # the personas' plans without the edge cases' waits
    argv = [
        "power-users",
        "--user",
        "Weekend-Warrior-Will",
        "--config",
        scenario,
        "--output",
        str(tmp_path / "o"),
    ]
    found = probe(
        tmp_path, *argv, code=_PROBE, timeout=300, env={"SIMULATE_SERVER": "0", "POWER_USERS_SCENARIO": None}
    )
    # One Dagster run: the persona run's materialization with its 9 checks, each materialization looked up
    # once (a check result inside the MaterializeResult is resolved twice by Dagster, each time with a
    # query), and the day's report with its 8 checks, evaluated in the run that materialized it (no look-up);
    # the scenario read once (not again per asset, nor the packaged file for the module's own definitions)
    # and none of the modules UNUSED is imported
    keys = ("code", "runs", "report_materializations", "parsed", "built", "module_defs", "evaluations")
    keys += ("fetched", "unused")
    assert {k: found[k] for k in keys} == {
        "code": 0,
        "runs": 1,
        "report_materializations": 1,
        "parsed": [scenario],
        "built": [scenario],
        "module_defs": False,
        "evaluations": 17,
        "fetched": 9,
        "unused": [],
    }


def test_a_scenario_file_is_parsed_once_per_version_and_a_broken_one_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = power_users_scenario.parse_scenario

    def counting(data: object, source: str = "<data>"):
        calls.append(source)
        return real(data, source)

    monkeypatch.setattr(power_users_scenario, "parse_scenario", counting)
    path = lean_scenario_file(tmp_path)
    first = load_scenario(path)
    assert load_scenario(str(path)) is first and len(calls) == 1
    # an edited file (another size and modification time) is read again
    path.write_text(path.read_text().replace("seed: 42", "seed: 43") + "\n")
    os.utime(path, ns=(1, 1))
    edited = load_scenario(path)
    assert len(calls) == 2 and edited.simulation_config.seed == 43 and first.simulation_config.seed == 42
    with pytest.raises(ValueError, match="frozen"):
        edited.population = first.population  # a scenario handed out twice cannot be changed in place
    path.write_text("simulations: []\n")
    for _ in range(2):
        with pytest.raises(ConfigError):
            load_scenario(path)
    assert len(calls) == 4


def test_disabled_wandb_logging_does_not_look_at_the_requests() -> None:
    # a frame without the request columns: reading it would fail
    assert WandbAnalysisLog().log(pl.DataFrame(), CostModel(), "r", Path("unused"), {}) is None


def test_the_days_are_checked_against_the_first_and_last_run_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dagster as dg

    from simulation_assets.commands.common import UsageError
    from simulation_assets.commands.power_users import PowerUsersRequest, _validated_days

    def every_day(self, *args, **kwargs):  # the list of every day since the start date: not needed
        raise AssertionError("listed every partition key")

    monkeypatch.setattr(dg.DailyPartitionsDefinition, "get_partition_keys", every_day)
    monkeypatch.setenv("HOGFLIX_START_DATE", "2026-01-01")
    assert _validated_days(PowerUsersRequest(day="2026-01-03", days=3)) == [
        "2026-01-01",
        "2026-01-02",
        "2026-01-03",
    ]
    with pytest.raises(UsageError, match=r"between 2026-01-01 and \d{4}-\d\d-\d\d .*got 2025-12-31"):
        _validated_days(PowerUsersRequest(day="2026-01-02", days=3))
    with pytest.raises(UsageError, match="got 2999-01-01"):
        _validated_days(PowerUsersRequest(day="2999-01-01"))
