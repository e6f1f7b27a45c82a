"""Subscription tiers of the PropIQ-like product: prices, monthly analysis limits, soft warnings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

TIER_ORDER = ("free", "starter", "pro", "elite")


class TierRule(BaseModel):
    """One tier: monthly price, analyses per month, and the usage count that raises a soft warning."""

    model_config = ConfigDict(extra="forbid")

    price_usd: float = Field(ge=0)
    analyses_per_month: int = Field(gt=0)
    warn_at: int = Field(gt=0, description="usage count (after the call) that returns a soft warning")
    history_items: int | None = Field(default=None, description="items history shows; None = unlimited")
    can_export: bool = True

    @model_validator(mode="after")
    def _warn_before_limit(self) -> TierRule:
        if self.warn_at > self.analyses_per_month:
            raise ValueError(f"warn_at ({self.warn_at}) must not exceed analyses_per_month")
        return self


def _default_tiers() -> dict[str, TierRule]:
    # Seed "Usage Limits": free 5 (warning 4/5), pro 60 (58/60), elite 100 (98/100); no export and
    # 10 history items on free; seed "Stripe Transaction Fees": starter $69, elite $149.
    return {
        "free": TierRule(price_usd=0, analyses_per_month=5, warn_at=4, history_items=10, can_export=False),
        "starter": TierRule(price_usd=69, analyses_per_month=20, warn_at=18),
        "pro": TierRule(price_usd=99, analyses_per_month=60, warn_at=58),
        "elite": TierRule(price_usd=149, analyses_per_month=100, warn_at=98),
    }


class TierTable(BaseModel):
    """All tiers by name (free, starter, pro, elite)."""

    model_config = ConfigDict(extra="forbid")

    tiers: dict[str, TierRule] = Field(default_factory=_default_tiers)

    def rule(self, tier: str) -> TierRule:
        """Return the rule of ``tier``; raise KeyError naming the valid tiers."""
        try:
            return self.tiers[tier]
        except KeyError:
            raise KeyError(f"unknown tier {tier!r}; valid: {', '.join(self.tiers)}") from None

    def rank(self, tier: str) -> int:
        """Return the position of ``tier`` from cheapest (0) to most expensive."""
        return sorted(self.tiers, key=lambda t: self.tiers[t].price_usd).index(tier)
