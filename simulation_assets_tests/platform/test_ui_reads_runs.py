"""What the Dagster UI shows of a range run stored with batched events: its run, partitions, metadata, check.

The queries go through the webserver's GraphQL layer (dagster-graphql), with the code location
served by a gRPC process as under ``dagster dev``, against the local instance ``simulate`` uses.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from simulation_assets.sinks.local_instance import (
    EVENT_BATCH_SIZE_VAR,
    LocalDagsterInstance,
    ensure_local_instance,
)
from simulation_assets_tests.platform.ui_defs import DAYS, daily_rows

QUERY = """
query {
  runsOrError { ... on Runs { results { runId status tags { key value } } } }
  assetNodes(assetKeys: [{path: ["daily_rows"]}]) {
    partitionStats { numMaterialized numPartitions numFailed }
    assetMaterializations(limit: 100) {
      partition runId
      metadataEntries { label ... on IntMetadataEntry { intValue } }
    }
    assetChecksOrError {
      ... on AssetChecks { checks { name executionForLatestMaterialization { status partition runId } } }
    }
  }
  assetCheckExecutions(assetKey: {path: ["daily_rows"]}, checkName: "has_rows", limit: 50) {
    status runId partition
  }
}
"""


def _ui_view(home: Path, batch: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict]:
    """Materialize the 10-day range as one run in a fresh local instance; return its id and the UI's answer."""
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(EVENT_BATCH_SIZE_VAR, batch)
    ensure_local_instance()
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance, LocalDagsterInstance)
        run_id = dg.materialize(
            [daily_rows],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2026-03-01",
                "dagster/asset_partition_range_end": "2026-03-10",
            },
        ).run_id
        defs_file = str(Path(__file__).with_name("ui_defs.py"))
        with define_out_of_process_context(defs_file, "defs", instance) as context:
            result = execute_dagster_graphql(context, QUERY)
    assert not result.errors, result.errors
    return run_id, result.data


def _without(value: object, run_id: str) -> object:
    """Return ``value`` with the run id replaced and lists sorted, to compare two instances' answers."""
    if isinstance(value, dict):
        return {k: _without(v, run_id) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((_without(v, run_id) for v in value), key=repr)
    return "<run>" if value == run_id else value


def test_the_ui_shows_a_batched_range_run_like_one_stored_event_by_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, data = _ui_view(tmp_path / "batched", "1000", monkeypatch)
    single_id, single = _ui_view(tmp_path / "one-by-one", "0", monkeypatch)
    assert _without(data, run_id) == _without(single, single_id)  # the same page either way

    runs = data["runsOrError"]["results"]
    assert [(r["runId"], r["status"]) for r in runs] == [(run_id, "SUCCESS")]
    node = data["assetNodes"][0]
    assert node["partitionStats"] == {"numMaterialized": 10, "numPartitions": 10, "numFailed": 0}
    shown = {m["partition"]: m for m in node["assetMaterializations"]}
    assert sorted(shown) == DAYS.get_partition_keys() and {m["runId"] for m in shown.values()} == {run_id}
    for m in shown.values():
        values = {e["label"]: e.get("intValue") for e in m["metadataEntries"]}
        assert values["days"] == 10 and values["dagster/row_count"] == 7
    checks = node["assetChecksOrError"]["checks"]
    assert [c["name"] for c in checks] == ["has_rows"]
    latest = checks[0]["executionForLatestMaterialization"]
    assert latest["status"] == "SUCCEEDED" and latest["runId"] == run_id
    executions = data["assetCheckExecutions"]
    assert {e["runId"] for e in executions} == {run_id}
    assert [e["partition"] for e in executions if e["status"] == "SUCCEEDED"] == [
        None
    ]  # one evaluation for the range
