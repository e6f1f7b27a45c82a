"""The twin's asset checks as pure functions: a report in, (passed, metadata) out.

``defs/twin.py`` only declares the checks and hands them these results; tests
feed them reports of twins that are wrong on purpose and see them fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulation_assets.core.twin.fidelity import FidelityReport
from simulation_assets.core.twin.privacy import PrivacyReport


@dataclass(frozen=True)
class Outcome:
    passed: bool
    metadata: dict = field(default_factory=dict)


def _kind(report: FidelityReport, kind: str) -> Outcome:
    rows = [c for c in report.comparisons if c.kind == kind]
    meta = {c.name: {"value": c.value, "bound": c.bound, "passed": c.passed, **c.detail} for c in rows}
    failing = [c.name for c in rows if not c.passed]
    return Outcome(not failing, {"failing": failing, "real_users": report.real_users, "twin_users": report.twin_users,
                                 "comparisons": meta})  # fmt: skip


def per_user_distributions_ks(report: FidelityReport) -> Outcome:
    """Sessions per week, active days, events per session, session duration, gap between sessions: KS."""
    return _kind(report, "ks")


def profiles_tv(report: FidelityReport) -> Outcome:
    """Hour-of-week profile, event mix, top transitions, top paths: total-variation distance."""
    return _kind(report, "tv")


def retention_within_points(report: FidelityReport) -> Outcome:
    """Weekly retention weeks 1-8 within the bound (3 points on 5,000+ users)."""
    out = _kind(report, "retention")
    return Outcome(out.passed, {**out.metadata, "curve": report.retention.to_dicts()})


def tstr_auc_gap(report: FidelityReport) -> Outcome:
    """Churn classifier trained on the twin within 0.03 AUC of the one trained on real users (both tested on real)."""
    return _kind(report, "auc")


def calendar_days_followed(report: FidelityReport) -> Outcome:
    """On the export's calendar days (a sale, a holiday, a day in the news) the twin's active users within a quarter."""
    return _kind(report, "calendar")


def carried_values_kept(report: FidelityReport) -> Outcome:
    """Values a session carries on (a page-leave's URL its page's, a referrer the URL before): the export's share
    of rows equal to their source within 0.05 or the two-sample noise, per event, key and source."""
    return _kind(report, "carried")


def version_mix_followed(report: FidelityReport) -> Outcome:
    """Versions that roll out: each week's mix of a version key within 0.05 TV of the export's (or the noise)."""
    return _kind(report, "versions")


def dcr_not_closer_than_holdout(report: PrivacyReport) -> Outcome:
    """The twin is no nearer its training users than users it never saw."""
    return Outcome(report.passed, report.as_dict())


def no_identifiers_copied(counts: dict[str, int]) -> Outcome:
    """No event uuid, distinct id or session id of the export appears in the twin."""
    return Outcome(sum(counts.values()) == 0, dict(counts))
