"""What a run costs: AI tokens, payment fees and prorated hosting, per user and in total."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class CostModel(BaseModel):
    """Prices used to cost a run (seed "Cost Tracking"); every figure is overridable from the YAML file."""

    model_config = ConfigDict(extra="forbid")

    # Seed "Azure OpenAI (GPT-4o-mini)": $0.00015 / $0.0006 per 1,000 input / output tokens.
    openai_input_usd_per_1k: float = Field(default=0.00015, ge=0)
    openai_output_usd_per_1k: float = Field(default=0.0006, ge=0)
    # Seed "Estimated per-analysis costs": ~500 input and ~1,500 output tokens when the API does not say.
    default_input_tokens: int = Field(default=500, ge=0)
    default_output_tokens: int = Field(default=1500, ge=0)
    # Seed "Stripe Transaction Fees": 2.9 % + $0.30 per successful charge.
    stripe_percent: float = Field(default=0.029, ge=0, le=1)
    stripe_fixed_usd: float = Field(default=0.30, ge=0)
    # Seed "Infrastructure Costs": $7/month hosting, prorated by day ($0.23/day).
    hosting_usd_per_month: float = Field(default=7.0, ge=0)
    days_per_month: float = Field(default=30.0, gt=0)
    hosting_days_per_run: float = Field(default=1.0, ge=0, description="days of hosting one run is charged")


class CostBreakdown(BaseModel):
    """Costs of one run in USD, per user (same order as ``users``) and in total."""

    users: list[str]
    input_tokens: list[int]
    output_tokens: list[int]
    openai_usd: list[float]
    stripe_transactions: list[int]
    stripe_fees_usd: list[float]
    hosting_usd: list[float]
    total_usd: list[float]

    @property
    def totals(self) -> dict[str, float]:
        """Return the run totals (tokens as counts, money in USD)."""
        return {
            "input_tokens": int(sum(self.input_tokens)),
            "output_tokens": int(sum(self.output_tokens)),
            "openai_usd": float(sum(self.openai_usd)),
            "stripe_transactions": int(sum(self.stripe_transactions)),
            "stripe_fees_usd": float(sum(self.stripe_fees_usd)),
            "hosting_usd": float(sum(self.hosting_usd)),
            "total_usd": float(sum(self.total_usd)),
        }


def openai_cost_usd(input_tokens: np.ndarray, output_tokens: np.ndarray, model: CostModel) -> np.ndarray:
    """Return the AI cost in USD of each (input, output) token pair."""
    return (
        np.asarray(input_tokens, dtype=float) * model.openai_input_usd_per_1k
        + np.asarray(output_tokens, dtype=float) * model.openai_output_usd_per_1k
    ) / 1000.0


def stripe_fee_usd(amounts_usd: np.ndarray, model: CostModel) -> np.ndarray:
    """Return the payment fee in USD of each successful charge (0 for amounts <= 0)."""
    amounts = np.asarray(amounts_usd, dtype=float)
    return np.where(amounts > 0, amounts * model.stripe_percent + model.stripe_fixed_usd, 0.0)


def hosting_usd(model: CostModel) -> float:
    """Return the prorated hosting cost of one run in USD."""
    return model.hosting_usd_per_month / model.days_per_month * model.hosting_days_per_run


def cost_breakdown(
    users: list[str],
    request_users: np.ndarray,
    input_tokens: np.ndarray,
    output_tokens: np.ndarray,
    payment_usd: np.ndarray,
    model: CostModel,
) -> CostBreakdown:
    """Return the costs per user from per-request arrays.

    ``request_users`` holds, for each request, the index of its user in ``users``; tokens are
    the AI tokens the request consumed and ``payment_usd`` the amount it charged (0 if none).
    Hosting is shared equally by the users of the run.
    """
    n = len(users)
    idx = np.asarray(request_users, dtype=np.int64)
    tokens_in = np.bincount(idx, weights=np.asarray(input_tokens, dtype=float), minlength=n)
    tokens_out = np.bincount(idx, weights=np.asarray(output_tokens, dtype=float), minlength=n)
    payments = np.asarray(payment_usd, dtype=float)
    fees = np.bincount(idx, weights=stripe_fee_usd(payments, model), minlength=n)
    charges = np.bincount(idx, weights=(payments > 0).astype(float), minlength=n)
    ai = openai_cost_usd(tokens_in, tokens_out, model)
    hosting = np.full(n, hosting_usd(model) / n if n else 0.0)
    total = ai + fees + hosting
    return CostBreakdown(
        users=list(users),
        input_tokens=tokens_in.astype(np.int64).tolist(),
        output_tokens=tokens_out.astype(np.int64).tolist(),
        openai_usd=ai.tolist(),
        stripe_transactions=charges.astype(np.int64).tolist(),
        stripe_fees_usd=fees.tolist(),
        hosting_usd=hosting.tolist(),
        total_usd=total.tolist(),
    )


def usd(value: float) -> str:
    """Format ``value`` as the report does: ``$7.20``."""
    return f"${value:,.2f}"
