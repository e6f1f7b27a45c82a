"""The funnel's data tests as pure functions: frames (or a model report) in, a :class:`CheckOutcome` out.

``defs/funnel.py`` declares each as an asset check and hands it the data the asset
already holds in memory; tests feed them corrupted data and see them fail. The bands
they compare against come from :class:`~simulation_assets.core.funnel.config.CheckBands`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from simulation_assets.core.funnel.config import STATE_EVENTS, SignalDirection, State, TransitionRates
from simulation_assets.core.funnel.formulas import Formulas
from simulation_assets.core.funnel.identity import check_stitching, stitch
from simulation_assets.core.funnel.learn import LearnedRates, compare_to_configured
from simulation_assets.core.funnel.models import ModelReport
from simulation_assets.core.funnel.schema import validate_frame
from simulation_assets.core.funnel.taxonomy import TAXONOMY

FUNNEL_STATES: tuple[State, ...] = tuple(s for s in State if s in STATE_EVENTS)
"""States entered by an event (S0 ... S10), in funnel order."""

# The state a person must have reached before each state (S10, retention, branches from the aha moment).
PREREQUISITE: dict[State, State] = {
    **{later: earlier for earlier, later in zip(FUNNEL_STATES[:9], FUNNEL_STATES[1:10])},
    State.S10: State.S8,
}


@dataclass(frozen=True)
class CheckOutcome:
    """Whether a check passed, and what it measured (JSON-ready values for the UI)."""

    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)


def events_match_taxonomy(events: pl.DataFrame) -> CheckOutcome:
    """Pass when every row follows the tracking plan: known events, required properties, types, enums."""
    problems = validate_frame(events)
    return CheckOutcome(
        passed=not problems,
        metadata={
            "rows_checked": events.height,
            "problems": [p.model_dump() for p in problems[:20]],
            "problem_count": len(problems),
        },
    )


def users_by_state(events: pl.DataFrame) -> dict[str, int]:
    """Return the number of distinct people whose events enter each state (S0 ... S10)."""
    counts = (
        events.filter(pl.col("event").is_in(list(STATE_EVENTS.values())))
        .group_by("event")
        .agg(pl.coalesce("user_id", "distinct_id").n_unique().alias("people"))
    )
    by_event = dict(zip(counts["event"].to_list(), counts["people"].to_list()))
    return {state.name: int(by_event.get(STATE_EVENTS[state], 0)) for state in FUNNEL_STATES}


def funnel_is_monotone(events: pl.DataFrame) -> CheckOutcome:
    """Pass when nobody enters a state without the one before it (retention after the aha moment).

    Counts, per step, the stitched people who reached the later state but not the earlier
    one; the per-state totals are then non-increasing from S0 to S9 as well.
    """
    reached = (
        stitch(
            events.filter(pl.col("event").is_in(list(STATE_EVENTS.values()))).select(
                "event", "timestamp", "distinct_id", "user_id"
            )
        )
        .group_by("person_id")
        .agg(*[(pl.col("event") == STATE_EVENTS[s]).any().alias(s.name) for s in FUNNEL_STATES])
    )
    skipped = {
        f"{later.name}|{earlier.name}": int(reached.filter(pl.col(later.name) & ~pl.col(earlier.name)).height)
        for later, earlier in PREREQUISITE.items()
    }
    totals = {s.name: int(reached[s.name].sum()) if reached.height else 0 for s in FUNNEL_STATES}
    broken = {step: n for step, n in skipped.items() if n}
    return CheckOutcome(
        passed=not broken,
        metadata={"people_by_state": totals, "people_who_skipped_a_step": broken},
    )


def identity_is_stitched(events: pl.DataFrame) -> CheckOutcome:
    """Pass when identities follow the plan's rule: one user per anonymous id, user ids only after login."""
    report = check_stitching(events)
    return CheckOutcome(passed=report.ok, metadata=report.model_dump())


def learned_rates_match_configured(
    learned: LearnedRates, rates: TransitionRates, rates_z: float
) -> CheckOutcome:
    """Pass when every learned step rate is within ``rates_z`` binomial standard errors of the configured one."""
    comparison = compare_to_configured(learned, rates, z=rates_z)
    outside = [step for step, row in comparison.items() if row["within"] is False]
    return CheckOutcome(
        passed=not outside,
        metadata={
            "outside_tolerance": outside,
            "tolerance": f"{rates_z:g} binomial standard errors",
            "comparison": comparison,
        },
    )


def purchase_model_passes(report: ModelReport) -> CheckOutcome:
    """Pass when purchase propensity reaches its ROC AUC and calibration bands on the later persons."""
    m = report.purchase
    return CheckOutcome(
        passed=m.passed,
        metadata={
            "reason": m.reason,
            "roc_auc": m.roc_auc,
            "ece": m.ece,
            "min_auc": report.thresholds.purchase_auc_min,
        },
    )


def churn_model_passes(report: ModelReport) -> CheckOutcome:
    """Pass when churn propensity reaches its ROC AUC and calibration bands on the later persons."""
    m = report.churn
    return CheckOutcome(
        passed=m.passed,
        metadata={
            "reason": m.reason,
            "roc_auc": m.roc_auc,
            "ece": m.ece,
            "min_auc": report.thresholds.churn_auc_min,
        },
    )


def ltv_model_passes(report: ModelReport) -> CheckOutcome:
    """Pass when the LTV model beats the best constant by the configured margin at 30, 60 and 90 days."""
    return CheckOutcome(
        passed=bool(report.ltv) and all(m.passed for m in report.ltv),
        metadata={
            "mae_improvement": {str(m.horizon_days): m.mae_improvement for m in report.ltv},
            "min": report.thresholds.ltv_mae_improvement_min,
            "reasons": {str(m.horizon_days): m.reason for m in report.ltv},
        },
    )


def shuffled_labels_fail(shuffled: ModelReport) -> CheckOutcome:
    """Pass when every model trained on shuffled labels fails its bands (no leak makes noise look good)."""
    passing = [
        name
        for name, ok in (
            ("purchase", shuffled.purchase.passed),
            ("churn", shuffled.churn.passed),
            *[(f"ltv_{m.horizon_days}d", m.passed) for m in shuffled.ltv],
        )
        if ok
    ]
    return CheckOutcome(
        passed=shuffled.shuffled_labels and not passing,
        metadata={
            "models_passing_on_noise": passing,
            "shuffled_purchase_auc": shuffled.purchase.roc_auc,
            "shuffled_churn_auc": shuffled.churn.roc_auc,
        },
    )


def every_event_fires(event_counts: dict[str, int]) -> CheckOutcome:
    """Pass when every event of the tracking plan occurs at least once (e.g. in a week of default cohorts)."""
    absent = [name for name in TAXONOMY if not event_counts.get(name)]
    rare = {name: event_counts[name] for name in TAXONOMY if 0 < event_counts.get(name, 0) < 10}
    return CheckOutcome(
        passed=not absent,
        metadata={
            "absent_events": absent,
            "events_present": len(TAXONOMY) - len(absent),
            "events_in_plan": len(TAXONOMY),
            "rarest": dict(sorted(rare.items(), key=lambda kv: kv[1])),
        },
    )


def signals_move_models(report: ModelReport, signals: tuple[SignalDirection, ...]) -> CheckOutcome:
    """Pass when each named section 9 signal moves its model's prediction the expected way.

    The effect is the mean prediction on the held-out people with the signal set high minus
    set low, everything else as observed (partial dependence).
    """
    models = {
        "purchase": report.purchase,
        "churn": report.churn,
        **{f"ltv_{m.horizon_days}": m for m in report.ltv},
    }
    effects, wrong = {}, []
    for s in signals:
        effect = models[s.model].signal_effects.get(s.feature)
        effects[f"{s.model}:{s.feature}"] = effect
        if effect is None or effect * s.direction <= 0:
            wrong.append(f"{s.model}:{s.feature} ({'+' if s.direction > 0 else '-'} expected, got {effect})")
    return CheckOutcome(passed=not wrong, metadata={"effects": effects, "wrong_direction": wrong})


def formulas_match_truth(formulas: Formulas) -> CheckOutcome:
    """Pass when every section 6 output is within its band of the value the configuration implies."""
    rows = formulas.rates()
    outside = [f"{r.name}: {r.observed} vs {r.expected} +- {r.tolerance}" for r in rows if r.within is False]
    return CheckOutcome(
        passed=bool(rows) and not outside,
        metadata={
            "outside_band": outside,
            "compared": len(rows),
            "rates": {
                r.name: {"observed": r.observed, "expected": r.expected, "n": r.denominator} for r in rows
            },
        },
    )


def merge_days(outcomes: dict[str, CheckOutcome]) -> CheckOutcome:
    """Return one outcome for several daily partitions: passed when every day passed."""
    failed = [day for day, outcome in outcomes.items() if not outcome.passed]
    shown = failed[0] if failed else (list(outcomes)[-1] if outcomes else None)
    return CheckOutcome(
        passed=not failed,
        metadata={
            "days_checked": len(outcomes),
            "days_failed": failed,
            "day_shown": shown,
            **(outcomes[shown].metadata if shown is not None else {}),
        },
    )


__all__ = [
    "FUNNEL_STATES",
    "CheckOutcome",
    "churn_model_passes",
    "every_event_fires",
    "events_match_taxonomy",
    "formulas_match_truth",
    "funnel_is_monotone",
    "identity_is_stitched",
    "learned_rates_match_configured",
    "ltv_model_passes",
    "merge_days",
    "purchase_model_passes",
    "shuffled_labels_fail",
    "signals_move_models",
    "users_by_state",
]
