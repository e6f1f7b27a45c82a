"""The data checks of the warehouse, as pure functions: what to measure, and whether the measure passes.

A check of the loaded warehouse is portable SQL (DuckDB and PostgreSQL) plus a pure ``evaluate`` of
the rows it returns, so the same check runs on either database and a test can run it on a DuckDB
relation it corrupted. ``integrity_checks`` yield one number each: a row count to compare with the
specification, or a count of violations that must be 0 (duplicate keys, orphan foreign keys, rows
earlier than their parent, charges that do not match paid invoices); they are blocking, since dbt
models built on broken keys are wrong. ``distribution_checks`` compare (label, share) rows or a
bound with the configuration, within the bands of ``WarehouseConfig.checks``. ``rows_match_spec``
checks the row counts of freshly written table chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from simulation_assets.core.warehouse import dirt, schema
from simulation_assets.core.warehouse.check_types import BLOCKING_KINDS, Check, CheckResult
from simulation_assets.core.warehouse.config import WarehouseConfig, row_counts
from simulation_assets.core.warehouse.structure import structure_checks

__all__ = [
    "BLOCKING_KINDS",
    "Check",
    "CheckResult",
    "evaluate",
    "run_checks",
    "rows_match_spec",
    "warehouse_checks",
]


def integrity_checks(
    tables: list[str], rows: dict[str, int], raw: str = "raw", cfg: WarehouseConfig | None = None
) -> list[Check]:
    """Return row-count, key, foreign-key, temporal and charge checks for ``tables``.

    Every table gets the same checks whatever else is loaded; a foreign key or temporal rule whose
    parent is not among ``tables`` is left out of the SQL and named in the description.
    """
    present = set(tables)
    cfg = cfg or WarehouseConfig()
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
        absent = sorted({fk.parent for fk in spec.foreign_keys if fk.parent not in present})
        unchecked = f" (not checked: {', '.join(absent)} not loaded)" if absent else ""
        fk_parts = []
        for fk in spec.foreign_keys:
            if fk.parent not in present:
                continue
            p = schema.table(fk.parent)
            fk_parts.append(
                f"SELECT count(*) AS n FROM {t} c LEFT JOIN {raw}.{fk.parent} p ON c.{fk.column} = p.{fk.parent_column} "
                f"WHERE c.{fk.column} IS NOT NULL AND p.{p.primary_key} IS NULL"
            )
        if spec.foreign_keys:
            out.append(Check(f"{name}_no_orphan_foreign_keys", name, "foreign_keys", _sum_of(fk_parts),
                             description="every foreign key points to an existing parent row" + unchecked))  # fmt: skip
        time_parts = []
        for rule in spec.temporal:
            fk = spec.foreign_key(rule.fk_column)
            if fk.parent not in present:
                continue
            time_parts.append(
                f"SELECT count(*) AS n FROM {t} c JOIN {raw}.{fk.parent} p ON c.{fk.column} = p.{fk.parent_column} "
                f"WHERE {dirt.utc_sql(cfg, name, rule.column, 'c')} < CAST(p.{rule.parent_column} AS TIMESTAMP)"
            )
        for early, late in spec.ordered:
            time_parts.append(f"SELECT count(*) AS n FROM {t} WHERE {late} < {early}")
        if spec.temporal or spec.ordered:
            out.append(Check(f"{name}_temporal_order", name, "temporal", _sum_of(time_parts),
                             description="no row is earlier than its parent's creation or its own start"
                             + unchecked))  # fmt: skip
    if "stripe_charges" in present:
        invoices = "stripe_invoices" in present
        out.append(Check(
            "charge_totals_match_paid_invoices", "stripe_charges", "charges",
            f"SELECT count(*) FROM (SELECT i.invoice_id, i.amount_paid, coalesce(sum(c.amount), 0) AS charged "
            f"FROM {raw}.stripe_invoices i LEFT JOIN {raw}.stripe_charges c ON c.invoice_id = i.invoice_id "
            f"WHERE i.status = 'paid' GROUP BY i.invoice_id, i.amount_paid) x WHERE charged <> amount_paid"
            if invoices else "SELECT 0",
            description="every paid invoice is covered by charges of exactly its amount"
            + ("" if invoices else " (not checked: stripe_invoices not loaded)"),
        ))  # fmt: skip
    return out


def _sum_of(parts: list[str]) -> str:
    """Return SQL summing the counts ``n`` of ``parts`` (0 when there is nothing to count)."""
    return "SELECT sum(n) FROM (" + " UNION ALL ".join(parts) + ") x" if parts else "SELECT 0"


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
    bands = cfg.checks

    def share(
        name: str,
        table: str,
        column: str,
        shares: dict[str, float],
        tol: float = bands.share_tolerance,
        where: str = "",
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
    share(
        "campaigns_channel_mix",
        "marketing_campaigns",
        "channel",
        cfg.marketing.channels,
        bands.campaign_channel_tolerance,
    )
    s = cfg.subscriptions
    share("invoices_payment_success", "stripe_invoices", "CASE WHEN status = 'paid' THEN 'paid' ELSE 'unpaid' END",
          {"paid": s.payment_success, "unpaid": 1 - s.payment_success}, bands.payment_success_tolerance)  # fmt: skip
    share("deals_win_rate", "hubspot_deals", "CASE WHEN is_won THEN 'won' ELSE 'lost' END",
          {"won": cfg.crm.win_rate, "lost": 1 - cfg.crm.win_rate}, bands.win_rate_tolerance, where="is_closed")  # fmt: skip
    share("subscriptions_trial_conversion", "subscriptions",
          "CASE WHEN status = 'trial_expired' THEN 'lapsed' ELSE 'converted' END",
          {"converted": s.trial_conversion, "lapsed": 1 - s.trial_conversion}, bands.trial_conversion_tolerance,
          where="started_with_trial")  # fmt: skip
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
    evening = bands.evening_pour_share_min
    bound("tap_events_peak_evening", "tap_events",
          f"SELECT CASE WHEN sum(CASE WHEN extract(hour FROM poured_at) BETWEEN 18 AND 21 THEN 1 ELSE 0 END) "
          f"> {evening} * count(*) THEN 0 ELSE 1 END FROM {raw}.tap_events",
          f"more than {evening:.0%} of pours fall between 6 and 10 pm")  # fmt: skip
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
    if check.band is not None:
        low, high = check.band
        figure = None if number is None else round(float(number), 4)
        if figure is None and check.unmeasured:
            return CheckResult(check.name, check.table, check.kind, True, None, f"[{low:g}, {high:g}]",
                               f"{check.description} (not measured: {check.unmeasured})")  # fmt: skip
        passed = figure is not None and low <= figure <= high
        return CheckResult(check.name, check.table, check.kind, passed, figure, f"[{low:g}, {high:g}]",
                           check.description)  # fmt: skip
    number = 0 if number is None else number
    passed = float(number) == float(check.expected)
    return CheckResult(check.name, check.table, check.kind, passed, number, check.expected, check.description)


def warehouse_checks(
    tables: list[str], env: str, cfg: WarehouseConfig, present: list[str] | None = None
) -> list[Check]:
    """Return every integrity and distribution check of ``tables`` in ``env``; foreign keys and temporal rules
    are checked against the parents in ``present`` (default: ``tables``), e.g. the tables a partial reload kept."""
    rows = row_counts(env, cfg)
    loaded = {t: dirt.loaded_rows(cfg, t, 0, n) for t, n in rows.items()}  # repeated webhook deliveries too
    wanted = set(tables)
    available = [t for t in schema.TABLE_NAMES if t in wanted | set(present or [])]
    checks = integrity_checks(available, loaded, cfg=cfg) + distribution_checks(available, cfg)
    checks += structure_checks(set(available), cfg) + dirt.checks(available, rows, cfg)
    return [c for c in checks if c.table in wanted]


def run_checks(checks: list[Check], query: Callable[[str], list[tuple]]) -> list[CheckResult]:
    """Return the result of every check, running its SQL with ``query`` (one database connection)."""
    return [evaluate(c, query(c.sql)) for c in checks]


def rows_match_spec(
    table: str, rows_by_chunk: Mapping[int, int], expected_by_chunk: Mapping[int, int]
) -> CheckResult:
    """Return whether every written chunk of ``table`` holds exactly the rows the specification gives it."""
    wrong = {
        k: rows_by_chunk.get(k) for k in expected_by_chunk if rows_by_chunk.get(k) != expected_by_chunk[k]
    }
    chunks = sorted(expected_by_chunk)
    first, last = chunks[0] + 1, chunks[-1] + 1
    which = f"chunk {first} of {table} holds" if first == last else f"chunks {first}..{last} of {table} hold"
    return CheckResult(
        "rows_match_spec", table, "rows", not wrong,
        sum(v or 0 for v in rows_by_chunk.values()), sum(expected_by_chunk.values()),
        f"{which} the specified rows" + (f"; wrong: {wrong}" if wrong else ""),
    )  # fmt: skip
