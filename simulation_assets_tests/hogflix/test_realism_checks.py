"""The realism checks of HogFlix over 90 days at pool 400: each passes on the simulator's data, reports
its figures, and fails on data without the structure it measures (the rule switched off or undone)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from simulation_assets.core.hogflix import checks
from simulation_assets.core.hogflix.burn_in import initial_state
from simulation_assets.core.hogflix.config import LifecycleConfig
from simulation_assets.core.hogflix.events import session_events
from simulation_assets.core.hogflix.frames import to_frame
from simulation_assets.core.hogflix.lifecycle import step_day
from simulation_assets.core.hogflix.metrics import daily_metrics, traffic_day
from simulation_assets.core.hogflix.persona_state import day_date, day_number
from simulation_assets.core.hogflix.schema import DEPTH_ROWS
from simulation_assets.core.hogflix.sessions import day_sessions
from simulation_assets.core.hogflix.traffic_config import TrafficConfig

CFG = LifecycleConfig()
START = day_number(dt.date(2026, 3, 1))


def _run(
    cfg: LifecycleConfig, seed: int, days: int, traffic_days: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (daily metrics, traffic days) of ``days`` days at pool 400; traffic for the last ``traffic_days``."""
    state = initial_state(cfg, seed, START)
    rows, traffic = [], []
    for day in range(START, START + days):
        state = step_day(state, day, cfg, seed)
        personas = to_frame(state)
        rows.append(daily_metrics(personas, day_date(day), cfg.pattern_assignment_day))
        if day >= START + days - traffic_days:
            sessions = day_sessions(personas, seed, TrafficConfig(), cfg.traits)
            events = session_events(sessions, seed, TrafficConfig(), str(day), cfg.traits)
            traffic.append(traffic_day(day_date(day), sessions, events, personas))
    return pl.concat(rows), pl.concat(traffic) if traffic else pl.DataFrame()


@pytest.fixture(scope="module")
def ninety_days() -> tuple[pl.DataFrame, pl.DataFrame]:
    return _run(CFG, 42, 90, traffic_days=4)


def _without_traits() -> LifecycleConfig:
    return CFG.model_copy(update={"traits": CFG.traits.model_copy(update={"enabled": False})})


def test_the_pattern_depth_table_holds_and_a_flat_table_fails(ninety_days) -> None:  # noqa: ANN001
    metrics, _ = ninety_days
    outcome = checks.depth_by_pattern(metrics, CFG)
    assert outcome.passed, outcome.metadata
    depth = outcome.metadata["videos_per_visit"]
    assert 5 <= depth["DAILY"] <= 10 and 2 <= depth["REGULAR"] <= 5 and 1 <= depth["MONTHLY"] <= 3
    assert 10 <= depth["BINGE"] <= 15 and depth["WEEKEND_PEAK"] > 2 * depth["WEEKEND"]
    assert depth["DAILY"] > depth["REGULAR"] + 2 > depth["MONTHLY"] + 2
    assert min(outcome.metadata["visits"][r] for r in ("DAILY", "REGULAR", "BINGE", "WEEKEND_PEAK")) >= 300
    # The figures before the rule: every pattern about 3.5-3.9 videos a visit.
    flat = metrics.with_columns([(pl.col(f"visits_{r}") * 37 // 10).alias(f"videos_{r}") for r in DEPTH_ROWS])
    failed = checks.depth_by_pattern(flat, CFG)
    assert not failed.passed and any(f.startswith("DAILY") for f in failed.metadata["failures"])
    # A WEEKEND persona whose weekend is hardly deeper than its weekdays (each within its own range).
    even = metrics.with_columns((pl.col("visits_WEEKEND_PEAK") * 4).alias("videos_WEEKEND_PEAK"))
    even = even.with_columns((pl.col("visits_WEEKEND") * 3).alias("videos_WEEKEND"))
    assert checks.depth_by_pattern(even, CFG).metadata["failures"] == ["WEEKEND_PEAK/WEEKEND 1.33 < 2"]


def test_dissatisfied_personas_lapse_at_the_rate_the_rule_gives_them(ninety_days) -> None:  # noqa: ANN001
    metrics, _ = ninety_days
    outcome = checks.satisfaction_effects(metrics, CFG)
    md = outcome.metadata
    assert outcome.passed, md
    # The rule (x (1 + (0.6 - satisfaction))) gives the least satisfied about a third more lapses a day.
    assert 1.25 < md["lapse_rate_ratio_by_the_rule"] < 1.45, md
    assert min(md["lapses"].values()) >= 20 and abs(md["standard_errors_from_the_rule"]) < 3, md
    # Upgraders less satisfied than downgraders is caught once there are enough changes to judge.
    swapped = metrics.with_columns(
        pl.col("downgrade_satisfaction_sum").alias("upgrade_satisfaction_sum"),
        pl.col("upgrade_satisfaction_sum").alias("downgrade_satisfaction_sum"),
        pl.col("downgrades").alias("upgrades"),
        pl.col("upgrades").alias("downgrades"),
    )
    assert (
        checks.satisfaction_effects(swapped, CFG, min_changes=5)
        .metadata["failures"][-1]
        .startswith("upgraders")
    )


def test_payment_failures_follow_the_plans_and_a_changed_rate_is_caught(ninety_days) -> None:  # noqa: ANN001
    metrics, _ = ninety_days
    outcome = checks.payments_follow_the_plans(metrics, CFG)
    assert outcome.passed, outcome.metadata
    assert outcome.metadata["charges"] == pytest.approx(90 * 400 / 30, rel=0.15)
    assert outcome.metadata["retries"] >= outcome.metadata["failed_charges"] > 0
    churn = outcome.metadata["churn_per_1000_persona_days"]
    assert set(churn) == {"Premium", "Standard", "Basic"} and all(0 < r < 20 for r in churn.values())
    assert (
        metrics.select([pl.sum(f"churned_{p}") for p in churn]).sum_horizontal()[0]
        == metrics["churned"].sum()
    )
    none_failed = metrics.with_columns(pl.lit(0).alias("payment_failures"))
    assert not checks.payments_follow_the_plans(none_failed, CFG).passed
    tripled = CFG.billing.model_copy(
        update={"failure_chance": {"Premium": 0.06, "Standard": 0.09, "Basic": 0.15}}
    )
    more, _ = _run(CFG.model_copy(update={"billing": tripled}), 42, 90)
    assert not checks.payments_follow_the_plans(more, CFG).passed
    assert checks.payments_follow_the_plans(more, CFG.model_copy(update={"billing": tripled})).passed


def test_the_favourite_genre_shows_in_starts_completion_and_stars(ninety_days) -> None:  # noqa: ANN001
    _, traffic = ninety_days
    outcome = checks.genre_affinity_effect(traffic)
    m = outcome.metadata
    assert outcome.passed and m["favourite_share_of_starts"] > 0.35, m
    assert (
        m["completion_favourite"] > m["completion_other"] + 4
        and m["stars_favourite"] > m["stars_other"] + 0.1
    )
    _, tasteless = _run(_without_traits(), 42, 90, traffic_days=4)
    failed = checks.genre_affinity_effect(tasteless)
    assert not failed.passed and failed.metadata["favourite_share_of_starts"] < 0.15, failed.metadata
    # Completion and stars are judged on their own: a favourite genre watched no further fails.
    level = traffic.with_columns(
        (pl.col("completion_other_sum") / pl.col("watched_other") * pl.col("watched_favourite")).alias(
            "completion_favourite_sum"
        )
    )
    assert (
        checks.genre_affinity_effect(level, min_events=100).metadata["failures"][0].startswith("completion")
    )


def _lapsed_shares(lapse_weight: float, seed: int) -> pl.DataFrame:
    """Daily metrics of 90 days at pool 4,000 (rows from the pool's arrays, as a range run makes them)."""
    from simulation_assets.core.hogflix.frames import metrics_columns
    from simulation_assets.core.hogflix.metrics import metrics_row

    cfg = LifecycleConfig(persona_pool=4_000)
    cfg = cfg.model_copy(update={"traits": cfg.traits.model_copy(update={"lapse_weight": lapse_weight})})
    state, rows = initial_state(cfg, seed, START), []
    for day in range(START, START + 90):
        state = step_day(state, day, cfg, seed)
        rows.append(metrics_row(metrics_columns(state), day_date(day)))
    return pl.concat(rows)


def test_the_lapse_rule_is_seen_on_a_larger_pool_and_fails_without_the_satisfaction_feedback() -> None:
    # Data made without the feedback (lapse_weight 0), judged against the rule: every group lapses alike.
    # A pool of 4,000 over 90 days gives enough lapses to tell a ratio of 1 from the rule's 1.33.
    cfg = LifecycleConfig(persona_pool=4_000)
    outcome = checks.satisfaction_effects(_lapsed_shares(1.0, 42), cfg)
    meta = outcome.metadata
    assert outcome.passed and abs(meta["standard_errors_from_the_rule"]) < 2, meta
    assert meta["lapse_rate_ratio"] > 1.15 and min(meta["lapses"].values()) >= 300, meta
    failed = checks.satisfaction_effects(_lapsed_shares(0.0, 42), cfg)
    assert not failed.passed and failed.metadata["failures"][0].startswith("lapse rate ratio"), (
        failed.metadata
    )
    assert failed.metadata["lapse_rate_ratio"] < 1.1 and failed.metadata["standard_errors_from_the_rule"] < -3
