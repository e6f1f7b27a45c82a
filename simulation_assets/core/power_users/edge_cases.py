"""Catalogue of the edge cases a power-user run can provoke, grouped as the scenario lists them.

Names are the keys the run report uses (``edge_cases_triggered``). A persona file may name
edge cases outside this catalogue; they are reported under the category ``custom``.
"""

from __future__ import annotations

from typing import NamedTuple


class EdgeCase(NamedTuple):
    """One edge case: its category and what it proves."""

    category: str
    description: str


CATEGORIES = ("authentication", "usage_limits", "payments", "data_validation", "performance", "persona")

_A, _U, _P, _D, _F, _S = CATEGORIES

EDGE_CASES: dict[str, EdgeCase] = {
    # Seed "Edge Cases Tested" / Authentication
    "jwt_expiration_60min": EdgeCase(_A, "access token refused with 401 once 60 minutes have passed"),
    "concurrent_login_different_ips": EdgeCase(_A, "several logins at once from different client IPs"),
    "expired_token_refresh": EdgeCase(_A, "a refresh token yields a new access token after expiry"),
    "session_timeout_30min": EdgeCase(_A, "session refused with 401 after 30 idle minutes"),
    # Usage limits
    "free_tier_soft_warning_4of5": EdgeCase(_U, "free tier warns at 4 of 5 analyses"),
    "free_tier_hard_block_5of5": EdgeCase(_U, "free tier refuses the sixth analysis"),
    "usage_limit_warning_58of60": EdgeCase(_U, "pro tier warns at 58 of 60 analyses"),
    "usage_limit_warning_98of100": EdgeCase(_U, "elite tier warns at 98 of 100 analyses"),
    "usage_limit_hard_block": EdgeCase(_U, "paid tier refuses the call at exactly its limit"),
    "usage_counter_monthly_reset": EdgeCase(_U, "the usage counter starts again in a new month"),
    # Payments & Stripe
    "checkout_success": EdgeCase(_P, "a test-mode checkout completes"),
    "stripe_payment_failure_insufficient_funds": EdgeCase(_P, "a card declined for insufficient funds"),
    "payment_retry_after_failure": EdgeCase(_P, "a retry with another card succeeds after a decline"),
    "webhook_duplicate_event": EdgeCase(_P, "a replayed webhook event is acknowledged, not re-applied"),
    "tier_upgrade_mid_month": EdgeCase(_P, "an upgrade inside a billing month is prorated"),
    "downgrade_data_loss_warning": EdgeCase(_P, "a downgrade asks for confirmation before hiding data"),
    # Data validation
    "invalid_address_empty": EdgeCase(_D, "an empty address is rejected"),
    "invalid_address_typo": EdgeCase(_D, "a misspelt address is rejected"),
    "international_address": EdgeCase(_D, "a non-US address is analysed"),
    "unicode_address": EdgeCase(_D, "an address with accents and special characters is analysed"),
    "negative_purchase_price": EdgeCase(_D, "a negative purchase price is rejected"),
    "division_by_zero": EdgeCase(_D, "a zero denominator in the calculator is rejected, not a 500"),
    "extreme_property_value_15m_plus": EdgeCase(_D, "a price above $15M is rejected"),
    # Performance
    "concurrent_requests_3": EdgeCase(_F, "3 analyses in flight at once"),
    "concurrent_requests_10": EdgeCase(_F, "10 analyses in flight at once"),
    "rate_limit_20_rapid_requests": EdgeCase(_F, "20 rapid requests meet a 429"),
    "large_export_50_plus": EdgeCase(_F, "an export of 50+ properties"),
    "database_query_timeout": EdgeCase(_F, "a slow query ends in a client-side timeout"),
    "openai_service_unavailable": EdgeCase(_F, "the AI backend answers 503 and the client retries"),
    "long_session_90_plus_minutes": EdgeCase(_F, "a session kept alive past 90 minutes"),
    # Persona lists
    "tier_upgrade_mid_session": EdgeCase(_S, "the tier changes while the session goes on"),
    "usage_limit_warning_60_analyses": EdgeCase(_S, "a pro user reaches 60 of 60 analyses"),
    "large_dataset_export": EdgeCase(_S, "an elite user exports a large dataset"),
    "free_tier_export_forbidden": EdgeCase(_S, "export is refused with 403 on the free tier"),
    "free_tier_history_limit_10": EdgeCase(_S, "history shows at most 10 items on the free tier"),
    "support_chat_high_volume": EdgeCase(_S, "5+ support chat messages in one session"),
    "new_user_onboarding_email": EdgeCase(_S, "sign-up queues the onboarding e-mail"),
    "batch_export_5": EdgeCase(_S, "5 properties exported at once"),
    "fast_session_under_15min": EdgeCase(_S, "a session shorter than 15 minutes"),
    "high_value_property_800k": EdgeCase(_S, "a property above $800k"),
    "california_property_tax": EdgeCase(_S, "California property tax applied"),
    "off_peak_usage": EdgeCase(_S, "usage between 7pm and 10pm"),
    "price_shopping_without_conversion": EdgeCase(_S, "pricing viewed without buying"),
    "jwt_expiration_handling": EdgeCase(_S, "an expired token is replaced by logging in again"),
    "high_value_property_1m_15m": EdgeCase(_S, "properties between $1M and $15M"),
    "large_export_8": EdgeCase(_S, "8 properties exported at once"),
    "commercial_property_calculations": EdgeCase(_S, "commercial and multifamily metrics"),
    "large_history_50_plus": EdgeCase(_S, "history of 50+ analyses"),
}

# The five lists of the scenario's "Edge Cases Tested" section: a default run must trigger all of them.
SEED_LIST_EDGE_CASES: tuple[str, ...] = tuple(
    name for name, case in EDGE_CASES.items() if case.category != "persona"
)


def category(name: str) -> str:
    """Return the category of edge case ``name`` (``custom`` when it is not catalogued)."""
    case = EDGE_CASES.get(name)
    return case.category if case else "custom"
