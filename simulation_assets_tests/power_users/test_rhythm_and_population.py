"""Personas come at their seed rhythm (days, local hours, session length, analyses) and clone into populations."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from simulation_assets.cli import main
from simulation_assets.core.power_users import checks
from simulation_assets.core.power_users.population import PopulationSpec, clone_counts
from simulation_assets.core.power_users.rhythm import (
    ThinkTime,
    active_weekdays,
    default_think_times,
    parse_frequency,
    parse_pace,
    plan_session_time,
    think_seconds,
)
from simulation_assets.core.rng import stream
from simulation_assets.sinks.power_users_scenario import load_scenario
from simulation_assets_tests.power_users.conftest import integration_resources, lean_scenario_file

pytestmark = pytest.mark.xdist_group("power_users")

SEED_RHYTHM = {  # seed: session minutes, analyses per session, sessions per week
    "Portfolio-Manager-Paula": ((30, 60), (8, 12), 7),
    "First-Time-Investor-Frank": ((20, 45), (2, 5), 1),
    "Real-Estate-Agent-Rita": ((10, 25), (3, 7), 7),
    "Weekend-Warrior-Will": ((15, 30), (2, 4), 1),
    "Business-Development-Ben": ((45, 90), (5, 10), 3),
}


@pytest.mark.parametrize(
    ("text", "per_week", "days", "hours"),
    [
        ("daily", 7, ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), (8, 18)),
        ("weekly", 1, ("mon", "tue", "wed", "thu", "fri"), (8, 18)),
        ("3x per week", 3, ("mon", "tue", "wed", "thu", "fri"), (8, 18)),
        ("weekly, evenings and weekends", 1, ("fri", "sat", "sun"), (19, 22)),
        ("2 times a week", 2, ("mon", "tue", "wed", "thu", "fri"), (8, 18)),
    ],
)
def test_usage_frequency_phrases_become_sessions_per_week_days_and_hours(text, per_week, days, hours):
    assert parse_frequency(text) == (per_week, days, hours)


def test_an_unknown_frequency_names_the_forms_understood():
    with pytest.raises(ValueError, match="usage_frequency 'fortnightly' not understood; use daily, weekly"):
        parse_frequency("fortnightly")


def test_each_persona_comes_exactly_its_sessions_per_week_on_its_weekdays():
    scenario = load_scenario()
    for persona in scenario.simulations:
        rhythm = persona.rhythm()
        weeks = [active_weekdays(rhythm, 42, persona.name, 2026, w) for w in range(1, 53)]
        assert {len(w) for w in weeks} == {SEED_RHYTHM[persona.name][2]}
        allowed = {("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(d) + 1 for d in rhythm.active_days}
        assert {d for w in weeks for d in w} <= allowed
    will = scenario.persona("Weekend-Warrior-Will").rhythm()
    assert will.active_days == ("fri", "sat", "sun") and will.start_hours == (19.0, 22.0)


def test_sessions_start_in_local_hours_and_last_the_seed_minutes():
    scenario = load_scenario()
    for persona in scenario.simulations:
        rhythm = persona.rhythm()
        plans = [
            plan_session_time(rhythm, 42, persona.name, dt.date(2026, 1, 1) + dt.timedelta(days=d))
            for d in range(200)
        ]
        (lo, hi), (a, b), _ = SEED_RHYTHM[persona.name]
        minutes = np.array([p.minutes for p in plans])
        assert lo <= minutes.min() and minutes.max() <= hi and np.ptp(minutes) > 0.8 * (hi - lo)
        assert {p.analyses for p in plans} == set(range(a, b + 1))
        hours = np.array([p.start_local.hour + p.start_local.minute / 60 for p in plans])
        assert rhythm.start_hours[0] <= hours.min() and hours.max() <= rhythm.start_hours[1]
        assert all(
            p.start_local.tzname() in ("EST", "CST", "PST") for p in plans[:20]
        )  # January: standard time
        assert all(p.start_utc == p.start_local for p in plans)


def test_think_times_add_up_to_the_session_and_follow_the_per_action_medians():
    table = default_think_times()
    kinds = ["login"] + ["analyze_property", "view_pricing", "login"] * 400
    pauses = think_seconds(kinds, table, 3600.0, stream(1, "t"))
    assert pauses[0] == 0 and pauses.sum() == pytest.approx(3600.0)
    medians = {k: float(np.median(pauses[1:][np.array(kinds[1:]) == k])) for k in set(kinds)}
    ratio = medians["analyze_property"] / medians["login"]
    assert ratio == pytest.approx(table["analyze_property"].median_s / table["login"].median_s, rel=0.25)
    assert think_seconds(["x", "y"], {"default": ThinkTime(median_s=5)}, 0.0, stream(1, "t")).sum() == 0


@pytest.mark.parametrize(
    ("text", "speed"), [("simulated", 0.0), ("real", 1.0), ("x60", 60.0), ("120", 120.0)]
)
def test_pace_forms(text, speed):
    assert parse_pace(text) == speed


def test_pace_refuses_nonsense():
    with pytest.raises(ValueError, match="pace must be 'simulated', 'real' or a speed-up"):
        parse_pace("slow")


def test_a_hundred_users_clone_the_archetypes_with_distinct_synthetic_identities():
    scenario = load_scenario().populated(100)
    people = scenario.simulations
    assert len(people) == 100 and scenario.archetypes() == [p.name for p in load_scenario().simulations]
    assert {a: sum(p.archetype == a for p in people) for a in scenario.archetypes()} == dict.fromkeys(
        scenario.archetypes(), 20
    )
    for attr in ("name", "email", "user_id"):
        assert len({getattr(p, attr) for p in people}) == 100
    assert all(p.email.endswith("@simulated.propiq.test") for p in people)
    pauls = [p for p in people if p.archetype == "Portfolio-Manager-Paula"]
    assert pauls[6].name.startswith("Portfolio-Manager-P") and pauls[6].name.endswith("-007")
    minutes = {p.persona.session_minutes for p in pauls}
    assert len(minutes) > 10 and all(25.5 <= lo <= 34.5 and 51 <= hi <= 69 for lo, hi in minutes)
    assert len({p.persona.time_zone for p in people}) >= 3
    again = load_scenario().populated(100).simulations
    assert [(p.name, p.email, p.persona.session_minutes) for p in again] == [
        (p.name, p.email, p.persona.session_minutes) for p in people
    ]
    assert [p.edge_cases() for p in pauls[:3]] == [
        load_scenario().persona("Portfolio-Manager-Paula").edge_cases()
    ] * 3


def test_population_weights_split_by_largest_remainder():
    names = ["a", "b", "c"]
    assert clone_counts(names, 10, {}) == {"a": 4, "b": 3, "c": 3}
    assert clone_counts(names, 10, {"a": 3, "b": 1}) == {"a": 8, "b": 2, "c": 0}
    with pytest.raises(ValueError, match="give every archetype 0"):
        clone_counts(names, 5, {"a": 0})
    bad = load_scenario()
    bad = bad.model_copy(update={"population": PopulationSpec(size=10, weights={"Nobody": 1})})
    with pytest.raises(ValueError, match="population: population.weights names unknown personas"):
        bad.populated()


def test_default_run_holds_every_persona_to_its_seed_rhythm(default_run):
    result, _ = default_run
    sessions = {s["name"]: s for s in result.report["sessions"]}
    for name, ((lo, hi), (a, b), _) in SEED_RHYTHM.items():
        s = sessions[name]
        assert s["active"] and lo <= s["session_minutes"] <= hi + 1 and a <= s["analyses"] <= b
    outcome = checks.sessions_follow_rhythm(result.frames["users"], result.frames["requests"])
    assert outcome.passed and outcome.metadata["sessions"] == 5
    # the simulated clock spans the session while the run itself takes seconds (the bound is one any
    # loaded machine meets: a run that slept its think times would last the shortest session at least)
    assert max(s["session_minutes"] for s in sessions.values()) > 20
    assert (
        result.report["run"]["duration_seconds"] < min(s["session_minutes"] for s in sessions.values()) * 60
    )


def _users(default_run) -> tuple[pl.DataFrame, pl.DataFrame]:
    return default_run[0].frames["users"].clone(), default_run[0].frames["requests"].clone()


def test_rhythm_check_fails_on_a_session_longer_than_the_persona_stays(default_run):
    users, requests = _users(default_run)
    users = users.with_columns(
        pl.when(pl.col("user") == "Real-Estate-Agent-Rita")
        .then(95.0)
        .otherwise(pl.col("session_minutes"))
        .alias("session_minutes")
    )
    outcome = checks.sessions_follow_rhythm(users, requests)
    assert not outcome.passed and outcome.metadata["length_outside_range"] == "Real-Estate-Agent-Rita"


def test_rhythm_check_fails_on_a_session_outside_local_hours_or_with_too_many_analyses(default_run):
    users, requests = _users(default_run)
    users = users.with_columns(
        pl.when(pl.col("user") == "Weekend-Warrior-Will")
        .then(pl.lit("2026-01-15T09:30:00-05:00"))
        .otherwise(pl.col("session_start_local"))
        .alias("session_start_local")
    )
    extra = requests.filter((pl.col("user") == "Portfolio-Manager-Paula") & pl.col("routine")).head(1)
    requests = pl.concat([requests] + [extra] * 5)
    outcome = checks.sessions_follow_rhythm(users, requests)
    assert not outcome.passed
    assert outcome.metadata["start_outside_window"] == "Weekend-Warrior-Will"
    assert outcome.metadata["analyses_outside_range"] == "Portfolio-Manager-Paula"


def test_frequency_check_fails_when_every_weekly_user_comes_the_same_day():
    scenario = load_scenario().populated(100)
    day = dt.date(2026, 1, 14)  # a Wednesday
    rows = []
    for p in scenario.simulations:
        r = p.rhythm()
        rows.append(
            {
                "user": p.name,
                "archetype": p.archetype,
                "day": day.isoformat(),
                "active": True,
                "follow_rhythm": True,
                "sessions_per_week": r.sessions_per_week,
                "rhythm_days": ",".join(r.active_days),
                "start_hour_from": r.start_hours[0],
                "start_hour_to": r.start_hours[1],
                "session_minutes_min": r.session_minutes[0],
                "session_minutes_max": r.session_minutes[1],
                "analyses_min": r.analyses_per_session[0],
                "analyses_max": r.analyses_per_session[1],
                "time_zone": r.time_zone,
            }
        )
    everyone = pl.DataFrame(rows)
    outcome = checks.active_users_match_frequency(everyone)
    assert not outcome.passed
    assert "First-Time-Investor-Frank 2026-01-14" in outcome.metadata["outside_band"]
    assert "Weekend-Warrior-Will 2026-01-14" in outcome.metadata["outside_band"]  # not his weekday at all
    assert "Portfolio-Manager-Paula" not in outcome.metadata["outside_band"]
    from simulation_assets.core.power_users.rhythm import is_active

    honest = everyone.with_columns(
        pl.Series(
            "active", [is_active(p.rhythm(), 42, p.name, day) for p in scenario.simulations], dtype=pl.Boolean
        )
    )
    assert checks.active_users_match_frequency(honest).passed


def test_a_week_of_a_population_follows_the_rhythm_from_the_cli(tmp_path: Path, reference_target, capsys):
    argv = ["power-users", "--base-url", reference_target.base_url, "--user", "Business-Development-Ben"]
    argv += ["--users", "10", "--day", "2026-01-18", "--days", "7", "--output", str(tmp_path)]
    argv += [
        "--config",
        str(lean_scenario_file(tmp_path)),
    ]  # the seed's rhythm, without the edge cases' waits
    assert main(argv) == 0
    per_user: dict[str, int] = {}
    for n in range(12, 19):
        report = json.loads((tmp_path / f"simulation_report_2026-01-{n}.json").read_text())
        for s in report["sessions"]:
            per_user[s["name"]] = per_user.get(s["name"], 0) + s["active"]
            if s["active"]:
                assert dt.date.fromisoformat(s["start_local"][:10]).weekday() < 5  # Ben works weekdays
    assert len(per_user) == 2 and set(per_user.values()) == {3}  # 3x per week, ISO week 2026-W03
    out = capsys.readouterr().out
    assert "2026-01-17: 0 of 2 users in session" in out


def test_the_schedule_requests_only_personas_in_session_that_day():
    from simulation_assets.defs.power_users import active_archetypes, build_defs
    from simulation_assets.sinks.local_store import LocalParquetStore
    from simulation_assets.sinks.power_users_client import PowerUserTarget

    defs = dg.Definitions.merge(build_defs(), dg.Definitions(resources={"store": LocalParquetStore()}))
    schedule = defs.get_schedule_def("power_users_daily_schedule")
    seen: dict[str, int] = {}
    for d in range(12, 19):
        when = dt.datetime(2026, 1, d, 6, tzinfo=dt.UTC)
        context = dg.build_schedule_context(
            scheduled_execution_time=when,
            resources={"power_users_target": PowerUserTarget()},
            repository_def=defs.get_repository_def(),
        )
        result = schedule.evaluate_tick(context)
        keys = [r.partition_key for r in result.run_requests or []]
        assert [k.split("|")[1] for k in keys] == active_archetypes(load_scenario(), when.date().isoformat())
        for k in keys:
            seen[k.split("|")[1]] = seen.get(k.split("|")[1], 0) + 1
    assert seen["Portfolio-Manager-Paula"] == seen["Real-Estate-Agent-Rita"] == 7
    assert seen["Business-Development-Ben"] == 3 and seen["First-Time-Investor-Frank"] == 1
    assert seen["Weekend-Warrior-Will"] == 1


def _tiny_scenario(minutes: float):
    from simulation_assets.core.power_users.config import parse_scenario

    return parse_scenario(
        {
            "simulations": [
                {
                    "name": "Tiny-Tom",
                    "user_id": "sim_tom",
                    "email": "tom@simulated.propiq.test",
                    "persona": {"session_minutes": [minutes, minutes], "usage_frequency": "daily"},
                    "actions": [
                        {"type": "reset_user", "tier": "pro"},
                        {"type": "login"},
                        {"type": "view_pricing", "count": 3},
                        {"type": "logout"},
                    ],
                }
            ]
        }
    )


def test_pace_sleeps_the_think_times_at_the_chosen_speed(reference_target):
    from simulation_assets.sinks.power_users_client import PowerUserTarget
    from simulation_assets.sinks.power_users_session import SessionOptions

    target = PowerUserTarget(base_url=reference_target.base_url)
    # 0.5 simulated minutes = 30 s of think time; at x60 that is 0.5 s of real sleep
    fast = target.run(scenario=_tiny_scenario(0.5), env={}, options=SessionOptions(speed=60.0))
    # 30 simulated minutes on the simulated clock: slept, they would last half an hour
    sim = target.run(scenario=_tiny_scenario(30), env={})
    for result, minutes in ((fast, 0.5), (sim, 30)):
        assert result.report["sessions"][0]["session_minutes"] == pytest.approx(minutes, abs=0.05)
        assert result.report["simulation_summary"]["total_actions_failed"] == 0
    assert fast.frames["users"]["duration_s"][0] >= 0.5
    assert fast.report["run"]["pace"] == "x60" and sim.report["run"]["pace"] == "simulated"
    # only bounds a loaded machine cannot break: the fast run slept its 0.5 s, the simulated one did
    # not sleep its 1,800 s
    assert sim.frames["users"]["duration_s"][0] < 600


def test_a_partition_on_a_day_outside_the_rhythm_records_no_session(reference_target):
    from simulation_assets.defs.power_users import build_defs, persona_day_key
    from simulation_assets.sinks.local_store import LocalParquetStore
    from simulation_assets.sinks.power_users_client import PowerUserTarget

    runs = build_defs().get_assets_def("power_user_runs")
    result = dg.materialize(
        [runs],
        partition_key=persona_day_key("Weekend-Warrior-Will", "2026-02-02"),  # a Monday
        resources={
            "power_users_target": PowerUserTarget(base_url=reference_target.base_url),
            "store": LocalParquetStore(),
            **integration_resources(),
        },
    )
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["users"].value == 1 and meta["users_with_a_session"].value == 0
    assert meta["dagster/row_count"].value == 0
