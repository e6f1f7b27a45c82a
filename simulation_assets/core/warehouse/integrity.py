"""Integrity and distribution checks of a loaded warehouse, as portable SQL (DuckDB and PostgreSQL).

``integrity_checks`` returns queries that each yield one number: a row count
to compare with the specification, or a count of violations that must be 0
(duplicate keys, orphan foreign keys, rows earlier than their parent, charges
that do not match paid invoices). ``distribution_checks`` returns queries
whose (label, share) rows are compared with the configured shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.config import WarehouseConfig


@dataclass(frozen=True)
class Check:
    name: str
    table: str
    kind: str  # row_count | primary_key | foreign_keys | temporal | charges | distribution
    sql: str
    expected: float = 0.0
    description: str = ""
    shares: dict[str, float] = field(default_factory=dict)
    tolerance: float = 0.0


@dataclass
class CheckResult:
    name: str
    table: str
    kind: str
    passed: bool
    value: object
    expected: object
    description: str


def integrity_checks(tables: list[str], rows: dict[str, int], raw: str = "raw") -> list[Check]:
    """Return row-count, key, foreign-key, temporal and charge checks for ``tables`` (parents outside are skipped)."""
    present = set(tables)
    out: list[Check] = []
    for name in tables:
        spec = schema.table(name)
        t = f"{raw}.{name}"
        out.append(Check(f"{name}_row_count", name, "row_count", f"SELECT count(*) FROM {t}", rows[name],
                         f"{name} has the specified {rows[name]:,} rows"))  # fmt: skip
        pk = spec.primary_key
        out.append(Check(
            f"{name}_primary_key_unique", name, "primary_key",
            f"SELECT count(*) - count(DISTINCT {pk}) + sum(CASE WHEN {pk} IS NULL THEN 1 ELSE 0 END) FROM {t}",
            description=f"{pk} is unique and never null",
        ))  # fmt: skip
        fk_parts = []
        for fk in spec.foreign_keys:
            if fk.parent not in present:
                continue
            p = schema.table(fk.parent)
            fk_parts.append(
                f"SELECT count(*) AS n FROM {t} c LEFT JOIN {raw}.{fk.parent} p ON c.{fk.column} = p.{fk.parent_column} "
                f"WHERE c.{fk.column} IS NOT NULL AND p.{p.primary_key} IS NULL"
            )
        if fk_parts:
            out.append(Check(f"{name}_no_orphan_foreign_keys", name, "foreign_keys",
                             "SELECT sum(n) FROM (" + " UNION ALL ".join(fk_parts) + ") x",
                             description="every foreign key points to an existing parent row"))  # fmt: skip
        time_parts = []
        for rule in spec.temporal:
            fk = spec.foreign_key(rule.fk_column)
            if fk.parent not in present:
                continue
            time_parts.append(
                f"SELECT count(*) AS n FROM {t} c JOIN {raw}.{fk.parent} p ON c.{fk.column} = p.{fk.parent_column} "
                f"WHERE CAST(c.{rule.column} AS TIMESTAMP) < CAST(p.{rule.parent_column} AS TIMESTAMP)"
            )
        for early, late in spec.ordered:
            time_parts.append(f"SELECT count(*) AS n FROM {t} WHERE {late} < {early}")
        if time_parts:
            out.append(Check(f"{name}_temporal_order", name, "temporal",
                             "SELECT sum(n) FROM (" + " UNION ALL ".join(time_parts) + ") x",
                             description="no row is earlier than its parent's creation or its own start"))  # fmt: skip
    if {"stripe_charges", "stripe_invoices"} <= present:
        out.append(Check(
            "charge_totals_match_paid_invoices", "stripe_charges", "charges",
            f"SELECT count(*) FROM (SELECT i.invoice_id, i.amount_paid, coalesce(sum(c.amount), 0) AS charged "
            f"FROM {raw}.stripe_invoices i LEFT JOIN {raw}.stripe_charges c ON c.invoice_id = i.invoice_id "
            f"WHERE i.status = 'paid' GROUP BY i.invoice_id, i.amount_paid) x WHERE charged <> amount_paid",
            description="every paid invoice is covered by charges of exactly its amount",
        ))  # fmt: skip
    return out


def _shares(table: str, column: str, raw: str, where: str = "") -> str:
    cond = f" WHERE {where}" if where else ""
    return (
        f"SELECT CAST({column} AS VARCHAR) AS label, CAST(count(*) AS DOUBLE PRECISION) / "
        f"(SELECT count(*) FROM {raw}.{table}{cond}) AS share FROM {raw}.{table}{cond} GROUP BY 1"
    )


def distribution_checks(tables: list[str], cfg: WarehouseConfig, raw: str = "raw") -> list[Check]:
    """Return share and bound checks for the distributions the specification names."""
    present = set(tables)
    out: list[Check] = []

    def share(
        name: str, table: str, column: str, shares: dict[str, float], tol: float = 0.02, where: str = ""
    ) -> None:
        if table in present:
            out.append(Check(name, table, "distribution", _shares(table, column, raw, where), shares=shares,
                             tolerance=tol, description=f"{table}.{column} shares within ±{tol:.0%} of the spec"))  # fmt: skip

    def bound(name: str, table: str, sql: str, description: str) -> None:
        if table in present:
            out.append(Check(name, table, "distribution", sql, description=description))

    share("accounts_industry_mix", "accounts", "industry", cfg.accounts.industries)
    share("accounts_tier_mix", "accounts", "tier", cfg.accounts.tiers)
    share("users_role_mix", "users", "role", cfg.users.roles)
    share("devices_status_mix", "devices", "status", cfg.devices.status)
    share("locations_type_mix", "locations", "location_type", cfg.locations.types)
    share("campaigns_channel_mix", "marketing_campaigns", "channel", cfg.marketing.channels, 0.025)
    s = cfg.subscriptions
    share("invoices_payment_success", "stripe_invoices", "CASE WHEN status = 'paid' THEN 'paid' ELSE 'unpaid' END",
          {"paid": s.payment_success, "unpaid": 1 - s.payment_success}, 0.01)  # fmt: skip
    share("deals_win_rate", "hubspot_deals", "CASE WHEN is_won THEN 'won' ELSE 'lost' END",
          {"won": cfg.crm.win_rate, "lost": 1 - cfg.crm.win_rate}, 0.02, where="is_closed")  # fmt: skip
    share("subscriptions_trial_conversion", "subscriptions",
          "CASE WHEN status = 'trial_expired' THEN 'lapsed' ELSE 'converted' END",
          {"converted": s.trial_conversion, "lapsed": 1 - s.trial_conversion}, 0.03, where="started_with_trial")  # fmt: skip
    tiers = cfg.accounts.mrr_usd
    mrr_cases = " OR ".join(
        f"(tier = '{t}' AND (mrr_usd < {lo} OR mrr_usd > {hi}))" for t, (lo, hi) in tiers.items()
    )
    bound("accounts_mrr_within_tier_range", "accounts", f"SELECT count(*) FROM {raw}.accounts WHERE {mrr_cases}",
          "MRR lies inside its tier's range")  # fmt: skip
    lo, hi = cfg.locations.per_account
    bound("locations_per_account_bounds", "locations",
          f"SELECT count(*) FROM (SELECT account_id, count(*) AS n FROM {raw}.locations GROUP BY 1) x "
          f"WHERE n < {lo} OR n > {hi}", f"{lo}-{hi} locations per account")  # fmt: skip
    bound("attribution_weights_sum_to_one", "attribution_touchpoints",
          f"SELECT count(*) FROM (SELECT contact_id, sum(attribution_weight) AS w FROM {raw}.attribution_touchpoints "
          f"GROUP BY 1) x WHERE abs(w - 1) > 0.000001", "attribution weights sum to 1 per contact")  # fmt: skip
    bound("tap_events_peak_evening", "tap_events",
          f"SELECT CASE WHEN sum(CASE WHEN extract(hour FROM poured_at) BETWEEN 18 AND 21 THEN 1 ELSE 0 END) "
          f"> 0.40 * count(*) THEN 0 ELSE 1 END FROM {raw}.tap_events",
          "more than 40% of pours fall between 6 and 10 pm")  # fmt: skip
    return out


def evaluate(check: Check, rows: list[tuple]) -> CheckResult:
    """Return the result of ``check`` given the rows its SQL returned."""
    if check.shares:
        observed = {str(label): float(value) for label, value in rows}
        worst = max(abs(observed.get(k, 0.0) - v) for k, v in check.shares.items())
        extra = set(observed) - set(check.shares)
        passed = worst <= check.tolerance + 1e-9 and not extra
        value: object = {k: round(v, 4) for k, v in sorted(observed.items())}
        return CheckResult(
            check.name, check.table, check.kind, passed, value, check.shares, check.description
        )
    number = rows[0][0] if rows and rows[0] else None
    number = 0 if number is None else number
    passed = float(number) == float(check.expected)
    return CheckResult(check.name, check.table, check.kind, passed, number, check.expected, check.description)
