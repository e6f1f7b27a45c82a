"""What a warehouse check is and what it returns (shared by the integrity, distribution and structure checks)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Kinds whose failure makes every model built on the table wrong: they block downstream assets.
BLOCKING_KINDS = frozenset({"row_count", "primary_key", "foreign_keys", "temporal", "charges", "rows"})


@dataclass(frozen=True)
class Check:
    """One check of a loaded warehouse: ``sql`` returns the rows ``evaluate`` judges."""

    name: str
    table: str
    kind: str  # row_count | primary_key | foreign_keys | temporal | charges | distribution | structure
    sql: str
    expected: float = 0.0
    description: str = ""
    shares: dict[str, float] = field(default_factory=dict)
    tolerance: float = 0.0
    band: tuple[float, float] | None = None  # structure checks: the measured figure must lie in [low, high]
    reads: tuple[str, ...] = ()  # structure checks: every table the SQL reads
    # structure checks whose SQL returns NULL when the tables are too small to measure the figure: why that
    # passes (any other NULL fails)
    unmeasured: str = ""

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING_KINDS


@dataclass
class CheckResult:
    """The outcome of a check: the measured ``value`` against what was ``expected``."""

    name: str
    table: str
    kind: str
    passed: bool
    value: object
    expected: object
    description: str

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING_KINDS
