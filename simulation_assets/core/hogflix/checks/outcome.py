"""What every HogFlix check returns: whether it passed and what it measured."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check: passed or not, the figures it measured, and whether a failure only warns."""

    passed: bool
    metadata: dict[str, object] = field(default_factory=dict)
    warn_only: bool = False


def all_of(outcomes: Sequence[CheckOutcome], unit: str = "days") -> CheckOutcome:
    """Combine the outcomes of one check over several parts (e.g. days) of a run.

    Passes when every part passes; the figures are those of the first failing
    part (else the last part), plus how many parts were checked and failed.
    """
    if not outcomes:
        return CheckOutcome(True, {f"{unit}_checked": 0})
    failed = [o for o in outcomes if not o.passed]
    shown = failed[0] if failed else outcomes[-1]
    meta = {**shown.metadata, f"{unit}_checked": len(outcomes), f"{unit}_failed": len(failed)}
    return CheckOutcome(not failed, meta, shown.warn_only)
