"""Rules the reference target enforces: tokens, sessions, rate limits, validation and analysis maths.

Pure functions and typed numbers; the Starlette app in ``simulation_assets.target`` only wires
them to HTTP.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simulation_assets.core.power_users.costs import CostModel, openai_cost_usd
from simulation_assets.core.power_users.tiers import TierTable


class TargetRules(BaseModel):
    """Numbers of the reference API; defaults follow the scenario document."""

    model_config = ConfigDict(extra="forbid")

    clock_speed: float = Field(
        default=1.0,
        gt=0,
        le=1_000_000,
        description="simulated seconds per real second (60: a minute a second)",
    )
    # Seed "Authentication": JWT expires after 60 minutes, session after 30 idle minutes.
    token_minutes: float = Field(default=60, gt=0)
    session_timeout_minutes: float = Field(default=30, gt=0)
    refresh_token_minutes: float = Field(default=7 * 24 * 60, gt=0)
    usage_period_minutes: float = Field(default=30 * 24 * 60, gt=0, description="monthly usage reset")
    # Seed "Performance": 20 rapid requests must meet a 429; normal pacing must not.
    rate_limit_burst: int = Field(default=15, ge=1, description="token-bucket capacity per user")
    rate_limit_per_second: float = Field(default=30.0, gt=0, description="token-bucket refill per user")
    # Seed "Data Validation": prices above $15M are refused; "High property values ($800k+)".
    max_purchase_price: float = Field(default=15_000_000, gt=0)
    high_value_price: float = Field(default=800_000, gt=0)
    large_export_rows: int = Field(default=50, ge=1)
    large_history_items: int = Field(default=50, ge=1)
    support_high_volume_messages: int = Field(default=5, ge=1)
    off_peak_hours: tuple[int, int] = (19, 22)
    fast_session_minutes: float = 15
    long_session_minutes: float = 90
    max_fault_delay_ms: int = Field(default=5_000, ge=0)
    tiers: TierTable = Field(default_factory=TierTable)
    costs: CostModel = Field(default_factory=CostModel)


STREET_WORDS = frozenset(
    "street st avenue ave road rd boulevard blvd drive dr lane ln way court ct place pl plaza terrace "
    "parkway pkwy highway hwy square sq circle cir trail alley row rue strasse calle via avenida "
    "chemin allee quai".split()
)
US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC "
    "ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC".split()
)
# Effective property-tax rates on purchase price; California reassesses at sale (Proposition 13).
PROPERTY_TAX = {"CA": (0.0125, "prop13"), "TX": (0.018, "state_average"), "NJ": (0.0223, "state_average")}
DEFAULT_PROPERTY_TAX = (0.011, "national_average")


class ValidationProblem(Exception):
    """An input the API refuses with 422: ``code`` for machines, ``detail`` for people."""

    def __init__(self, code: str, field: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.field, self.detail = code, field, detail

    def body(self) -> dict[str, str]:
        """Return the JSON error body."""
        return {"error": self.code, "field": self.field, "detail": self.detail}


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def check_address(address: Any) -> dict[str, Any]:
    """Return facts about a usable address, or raise ValidationProblem (empty, not a string, unrecognised).

    An address is recognised when it has a house number and a street word (Street, Ave, Rue, …);
    a misspelt street word therefore fails.
    """
    if not isinstance(address, str) or not address.strip():
        raise ValidationProblem("invalid_address", "address", "address is empty")
    words = re.findall(r"[a-z]+", _folded(address))
    if not re.search(r"\d", address) or not STREET_WORDS.intersection(words):
        raise ValidationProblem(
            "address_not_found", "address", f"no property matches {address!r}; check the spelling"
        )
    us_state = re.search(r",\s*([A-Z]{2})\s+\d{5}", address)
    state = us_state.group(1) if us_state and us_state.group(1) in US_STATES else ""
    return {"state": state, "international": not state, "unicode": not address.isascii()}


def check_price(value: Any, field: str, rules: TargetRules) -> float:
    """Return ``value`` as a float or raise ValidationProblem (not a number, negative, above the maximum)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationProblem("invalid_number", field, f"{field} must be a number, got {value!r}")
    if value < 0:
        raise ValidationProblem("negative_price", field, f"{field} must not be negative, got {value}")
    if value > rules.max_purchase_price:
        raise ValidationProblem(
            "value_out_of_range", field, f"{field} above ${rules.max_purchase_price:,.0f} needs manual review"
        )
    return float(value)


def analyse(body: dict[str, Any], rules: TargetRules, local_hour: int | None) -> dict[str, Any]:
    """Return the analysis of one property (deal metrics, tax, token estimate) or raise ValidationProblem."""
    facts = check_address(body.get("address"))
    price = check_price(body.get("purchase_price"), "purchase_price", rules)
    if price == 0:
        raise ValidationProblem("division_by_zero", "purchase_price", "purchase_price must be above 0")
    rent = check_price(body.get("monthly_rent", 0), "monthly_rent", rules)
    kind = str(body.get("property_type") or "single_family")
    state = str(body.get("state") or facts["state"] or "").upper()
    tax_rate, tax_rule = PROPERTY_TAX.get(state, DEFAULT_PROPERTY_TAX)
    commercial = kind in ("commercial", "multifamily", "office", "retail", "industrial")
    expense_ratio = 0.45 if commercial else 0.35
    noi = rent * 12 * (1 - expense_ratio) - price * tax_rate
    cap_rate = noi / price
    deal_score = int(max(0, min(100, round(50 + cap_rate * 600))))
    input_tokens = 450 + 2 * len(body["address"]) + (150 if commercial else 0)
    output_tokens = 1500 + (300 if commercial else 0)
    flags = [
        flag
        for flag, on in (
            ("high_value", price >= rules.high_value_price),
            ("commercial", commercial),
            ("international", facts["international"]),
            ("unicode", facts["unicode"]),
            (
                "off_peak",
                local_hour is not None and rules.off_peak_hours[0] <= local_hour < rules.off_peak_hours[1],
            ),
        )
        if on
    ]
    return {
        "address": body["address"],
        "property_type": kind,
        "purchase_price": price,
        "monthly_rent": rent,
        "noi_annual": round(noi, 2),
        "cap_rate": round(cap_rate, 5),
        "deal_score": deal_score,
        "property_tax": {
            "state": state or None,
            "rate": tax_rate,
            "rule": tax_rule,
            "annual": price * tax_rate,
        },
        "tokens": {"input": input_tokens, "output": output_tokens},
        "estimated_cost_usd": round(float(openai_cost_usd(input_tokens, output_tokens, rules.costs)), 6),
        "flags": flags,
    }


def calculate(body: dict[str, Any], rules: TargetRules) -> dict[str, Any]:
    """Return mortgage and return figures, or raise ValidationProblem (incl. division by zero)."""
    price = check_price(body.get("purchase_price"), "purchase_price", rules)
    rent = check_price(body.get("monthly_rent", 0), "monthly_rent", rules)
    down = check_price(body.get("down_payment", 0), "down_payment", rules)
    years = body.get("loan_term_years", 30)
    rate = float(body.get("interest_rate", 6.5)) / 100 / 12
    expenses = float(body.get("monthly_expenses", 0))
    if down == 0:
        raise ValidationProblem(
            "division_by_zero", "down_payment", "cash-on-cash return divides by the down payment, which is 0"
        )
    if not isinstance(years, int | float) or years <= 0:
        raise ValidationProblem("division_by_zero", "loan_term_years", "loan_term_years must be above 0")
    n = int(years * 12)
    loan = max(price - down, 0.0)
    payment = loan / n if rate == 0 else loan * rate / (1 - (1 + rate) ** -n)
    cash_flow = rent - expenses - payment
    return {
        "monthly_payment": round(payment, 2),
        "monthly_cash_flow": round(cash_flow, 2),
        "cash_on_cash_return": round(cash_flow * 12 / down, 5),
    }


def usage_warning(used: int, tier: str, rules: TargetRules) -> str | None:
    """Return ``soft_limit`` from the tier's warning count, ``limit_reached`` at the limit, else None."""
    rule = rules.tiers.rule(tier)
    if used >= rule.analyses_per_month:
        return "limit_reached"
    if used >= rule.warn_at:
        return "soft_limit"
    return None


def session_class(minutes: float, rules: TargetRules) -> str:
    """Return ``fast`` (< 15 min), ``long`` (>= 90 min) or ``normal``."""
    if minutes < rules.fast_session_minutes:
        return "fast"
    return "long" if minutes >= rules.long_session_minutes else "normal"
