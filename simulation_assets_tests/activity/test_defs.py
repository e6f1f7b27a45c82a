"""Dagster wiring: the tick job is idempotent per tick, the sensor keys runs by tick, the checks report."""

from __future__ import annotations

import dagster as dg
import pytest

import simulation_assets.defs.activity as activity_defs
from simulation_assets.defs.activity import (
    SIMULATION_TAG,
    TICK_TAG,
    ActivitySettings,
    build_defs,
    next_tick_request,
    tick_run_config,
)
from simulation_assets.sinks.activity_backends import DuckDBActivityStore

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@pytest.fixture
def wiring(tmp_path):
    defs = build_defs()
    store = DuckDBActivityStore(duckdb_path=str(tmp_path / "activity.duckdb"))
    resources = {"activity_settings": ActivitySettings(seed=5), "activity_store": store}
    return defs, store, resources, dg.DagsterInstance.ephemeral()


def _materialize(defs, resources, instance, tick: int, ticks: int = 1, tags=None):  # noqa: ANN001, ANN202
    return dg.materialize(
        list(defs.assets),
        resources=resources,
        instance=instance,
        run_config={**QUIET, **tick_run_config(tick, "2026-03-01T12:00:00+00:00", ticks)},
        tags=tags or {},
    )


def _meta(result, node: str) -> dict:  # noqa: ANN001
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_rerunning_a_tick_changes_nothing_and_the_checks_pass(wiring):
    defs, store, resources, instance = wiring
    first = _materialize(defs, resources, instance, 1)
    customers = store.customers()
    second = _materialize(defs, resources, instance, 1)
    assert _meta(first, "activity_tick")["applied_now"] is True
    assert _meta(second, "activity_tick")["applied_now"] is False
    assert store.tick_log()["tick"].to_list() == [0, 1]
    assert store.customers().equals(customers)
    checks = {(e.check_name, e.passed) for r in (first, second) for e in r.get_asset_check_evaluations()}
    assert checks == {
        ("counters_never_decrease", True),
        ("no_duplicate_open_interventions", True),
        ("open_interventions_match_rules", True),
    }
    monitor = _meta(second, "monitor_interventions")
    assert monitor["opened"] == 0 and monitor["closed"] == 0  # nothing changed since the first run's check


def test_a_fast_forward_run_applies_several_ticks_with_a_monitor_check_after_each(wiring):
    defs, store, resources, instance = wiring
    result = _materialize(defs, resources, instance, 1, ticks=4)
    meta = _meta(result, "activity_tick")
    assert meta["tick"] == 4 and meta["ticks_applied"] == 4
    log = store.tick_log()
    assert log["tick"].to_list() == [0, 1, 2, 3, 4]
    gaps = log["applied_at"].diff().drop_nulls().dt.total_seconds().to_list()
    assert gaps[1:] == [30, 30, 30]
    assert store.monitor_checks()["tick"].to_list() == [1, 2, 3, 4]


def test_the_sensor_keys_runs_by_simulation_and_tick_and_retries_a_failed_tick(wiring, monkeypatch):
    defs, store, resources, instance = wiring
    sensor = next(s for s in defs.sensors if s.name == "activity_tick_every_30s")
    assert sensor.minimum_interval_seconds == 30
    context = dg.build_sensor_context(instance=instance, resources=resources)
    request = sensor(context)
    simulation = store.simulation_id()
    assert request.run_key == f"activity-{simulation}-tick-1"
    assert request.tags == {SIMULATION_TAG: simulation, TICK_TAG: "1"}
    # A restarted daemon evaluates again before the run lands: same key, so Dagster launches it once.
    assert sensor(dg.build_sensor_context(instance=instance, resources=resources)).run_key == request.run_key
    _materialize(defs, resources, instance, 1, tags=request.tags)
    assert next_tick_request(instance, store).run_key == f"activity-{simulation}-tick-2"

    @dg.asset(name="broken_tick")
    def broken_tick() -> None:
        raise RuntimeError("database unreachable")

    dg.materialize(
        [broken_tick],
        instance=instance,
        tags={SIMULATION_TAG: simulation, TICK_TAG: "2"},
        raise_on_error=False,
    )
    assert next_tick_request(instance, store).run_key == f"activity-{simulation}-tick-2-retry-1"

    # A run still in flight for that tick: skip. Cut off long ago (its process died): retry it.
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    instance.add_run(
        DagsterRun(
            job_name="activity_tick_job",
            status=DagsterRunStatus.STARTED,
            tags={SIMULATION_TAG: simulation, TICK_TAG: "2"},
        )
    )
    assert isinstance(next_tick_request(instance, store), dg.SkipReason)
    monkeypatch.setattr(activity_defs, "STALE_RUN_SECONDS", -1)
    assert next_tick_request(instance, store).run_key == f"activity-{simulation}-tick-2-retry-2"
