"""The data catalog of a generated warehouse: tables, columns, distributions, simplifications, baselines."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.config import WarehouseConfig

# Baseline metrics, one number per query (portable SQL over schema raw).
BASELINE_METRICS: dict[str, str] = {
    "accounts_active": "SELECT count(*) FROM raw.accounts WHERE status = 'active'",
    "accounts_churned_share": "SELECT avg(CASE WHEN status = 'churned' THEN 1.0 ELSE 0.0 END) FROM raw.accounts",
    "current_mrr_usd": "SELECT round(CAST(sum(mrr_usd) AS NUMERIC), 2) FROM raw.accounts WHERE status = 'active'",
    "avg_mrr_usd": "SELECT round(CAST(avg(mrr_usd) AS NUMERIC), 2) FROM raw.accounts",
    "users_per_account": "SELECT round(CAST(count(*) AS NUMERIC) / (SELECT count(*) FROM raw.accounts), 2) FROM raw.users",
    "devices_per_location": "SELECT round(CAST(count(*) AS NUMERIC) / (SELECT count(*) FROM raw.locations), 2) FROM raw.devices",
    "invoice_payment_success": "SELECT round(avg(CASE WHEN status = 'paid' THEN 1.0 ELSE 0.0 END), 4) FROM raw.stripe_invoices",
    "paid_revenue_usd": "SELECT round(CAST(sum(amount) AS NUMERIC) / 100, 2) FROM raw.stripe_charges",
    "deal_win_rate": "SELECT round(avg(CASE WHEN is_won THEN 1.0 ELSE 0.0 END), 4) FROM raw.hubspot_deals WHERE is_closed",
    "ga_bounce_rate": "SELECT round(avg(CASE WHEN bounced THEN 1.0 ELSE 0.0 END), 4) FROM raw.ga_sessions",
    "taps_per_device": "SELECT round(CAST(count(*) AS NUMERIC) / (SELECT count(*) FROM raw.devices), 1) FROM raw.tap_events",
    "avg_pour_ml": "SELECT round(CAST(avg(volume_ml) AS NUMERIC), 1) FROM raw.tap_events",
    "avg_device_uptime_pct": "SELECT round(CAST(avg(uptime_pct) AS NUMERIC), 2) FROM raw.device_health",
    "evening_pour_share": (
        "SELECT round(avg(CASE WHEN extract(hour FROM poured_at) BETWEEN 18 AND 21 THEN 1.0 ELSE 0.0 END), 4) "
        "FROM raw.tap_events"
    ),
}  # fmt: skip

SIMPLIFICATIONS = [
    "Distributions are explicit and documented here instead of learned by a generative model.",
    "Timestamps are naive UTC (the dirt profile's imported HubSpot engagements excepted); a bar's evening peak "
    "is modelled directly in UTC hours.",
    "Every subscription is invoiced per period of its price (month or year); the invoice history of old "
    "subscriptions is trimmed to the most recent periods so the invoice count matches the specification.",
    "stripe_charges holds the successful charge of each paid invoice; failed attempts appear as "
    "attempt_count and invoice.payment_failed events.",
    "A lapsed trial (30% of trials) is followed by a win-back subscription of the same account.",
    "device_health holds the last 30 days of each device's active life (daily uptime, errors, temperature).",
    "Names, addresses and e-mail domains are synthetic (example.com).",
    "Account health is one hidden score per account and fixed-length month (30.4 days); churn, sessions, "
    "tickets, unpaid invoices and pours follow it, so they correlate through it, not through each other; the "
    "one direct link is device outages, which some churned accounts left within weeks of.",
    "Every account is traced back through one acquisition path (its company's first contact: touches, MQL, and "
    "for half of them a won deal); the lags are drawn per stage, and the months of sign-ups follow the spend "
    "convolved with the mean lags, so the funnel is consistent in aggregate, not simulated forward person by "
    "person. An MQL costs the same on every channel.",
    "The yearly season and US holidays shape tap events fully, app sessions (with their page views and feature "
    "events) and website sessions damped (calendar.app_strength, ga_strength); the website's week is flat.",
    "Page views walk a Markov graph per role; a feature's page is viewed in the sessions that use it (a missing "
    "page replaces another view, so a few transitions are not the graph's).",
    "Cities and IP addresses come from a small shipped table: 2-4 cities per state, one /20 of the non-routable "
    "100.64.0.0/10 per city (no real host's address).",
]


def summary_statistics(query: Callable[[str], list[tuple]], present: list[str]) -> dict[str, dict]:
    """Return rows per table and the baseline metrics of a loaded warehouse whose ``present`` tables
    ``query`` reads (a metric whose tables are missing, in a partial load, is left out)."""
    rows = {t: int(query(f"SELECT count(*) FROM raw.{t}")[0][0]) for t in schema.TABLE_NAMES if t in present}
    metrics: dict[str, object] = {}
    for name, sql in BASELINE_METRICS.items():
        if any(re.search(rf"\braw\.{t}\b", sql) and t not in present for t in schema.TABLE_NAMES):
            continue
        value = query(sql)[0][0]
        metrics[name] = float(value) if value is not None and not isinstance(value, int) else value
    return {"rows": rows, "metrics": metrics}


def structure_figures(
    query: Callable[[str], list[tuple]], present: list[str], cfg: WarehouseConfig
) -> list[dict]:
    """Return every structure check of the loaded tables with its measured figure, band and verdict."""
    from simulation_assets.core.warehouse.checks import run_checks
    from simulation_assets.core.warehouse.structure import structure_checks

    results = run_checks([c for c in structure_checks(set(present), cfg) if c.band is not None], query)
    return [{"name": r.name, "table": r.table, "measured": r.value, "band": r.expected, "passed": r.passed,
             "what": r.description} for r in results]  # fmt: skip


def catalog_markdown(
    cfg: WarehouseConfig,
    env: str,
    seed: int,
    rows: dict[str, int],
    metrics: dict[str, object],
    structure: list[dict] | None = None,
    quality: dict[str, dict] | None = None,
) -> str:
    """Return the catalog of one environment as markdown."""
    lines = [f"# Synthetic warehouse catalog: {env.upper()} (seed {seed})", ""]
    lines += [
        f"History from {cfg.window.start} to {cfg.window.end} ({cfg.window.years} years, "
        f"{cfg.window.account_yoy_growth:.0%} yearly account growth). Schema `raw`, {len(rows)} tables, "
        f"{sum(rows.values()):,} rows.",
        "",
        "## Tables",
        "",
        "| table | source | rows | primary key | foreign keys | description |",
        "|---|---|---:|---|---|---|",
    ]
    for t in schema.TABLES:
        if t.name not in rows:
            continue
        fks = ", ".join(f"{fk.column} → {fk.parent}" for fk in t.foreign_keys) or "-"
        lines.append(
            f"| {t.name} | {t.source} | {rows[t.name]:,} | {t.primary_key} | {fks} | {t.description} |"
        )
    lines += ["", "## Columns", ""]
    for t in schema.TABLES:
        if t.name not in rows:
            continue
        cols = ", ".join(f"`{c.name}` {c.type}{' (nullable)' if c.nullable else ''}" for c in t.columns)
        lines.append(f"- **{t.name}**: {cols}")
    lines += [
        "",
        "## Distributions used",
        "",
        "```json",
        json.dumps(cfg.model_dump(mode="json"), indent=1),
        "```",
    ]
    if structure:
        lines += ["", f"## Correlations, curves and flows, measured ({env.upper()})", "",
                  "| check | table | measured | band | passes | what |", "|---|---|---:|---|---|---|"]  # fmt: skip
        lines += [f"| {r['name']} | {r['table']} | {'not measured' if r['measured'] is None else r['measured']} "
                  f"| {r['band']} | {'yes' if r['passed'] else 'NO'} "
                  f"| {r['what']} |" for r in structure]  # fmt: skip
    if quality:
        lines += _quality_markdown(quality)
    lines += ["", "## Simplifications", ""] + [f"- {s}" for s in SIMPLIFICATIONS]
    lines += ["", f"## Baseline metrics ({env.upper()})", "", "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in metrics.items()]
    return "\n".join(lines) + "\n"


def quality_report(query: Callable[[str], list[tuple]], present: list[str]) -> dict[str, dict]:
    """Return the validation outputs of a loaded warehouse: missing values per column, outliers per numeric
    column (share beyond 4 standard deviations), relationship cardinalities (children per parent: min, median,
    max) and freshness (latest timestamp per table)."""
    missing: dict[str, dict[str, float]] = {}
    outliers: dict[str, dict[str, float]] = {}
    freshness: dict[str, str] = {}
    cardinality: dict[str, dict[str, float]] = {}
    for t in schema.TABLES:
        if t.name not in present:
            continue
        cols = t.columns
        counts = query(f"SELECT count(*), {', '.join(f'count({c.name})' for c in cols)} FROM raw.{t.name}")[0]
        total = max(int(counts[0]), 1)
        missing[t.name] = {
            c.name: round(1 - int(n) / total, 4) for c, n in zip(cols, counts[1:]) if int(n) < total
        }
        numeric = [c.name for c in cols if c.type in ("double", "real", "int") and not c.name.endswith("_id")]
        if numeric:
            parts = ", ".join(
                f"avg(CASE WHEN abs({c} - s.m_{c}) > 4 * s.s_{c} THEN 1.0 ELSE 0.0 END)" for c in numeric
            )
            stats = ", ".join(f"avg({c}) AS m_{c}, stddev_samp({c}) AS s_{c}" for c in numeric)
            row = query(f"SELECT {parts} FROM raw.{t.name} CROSS JOIN (SELECT {stats} FROM raw.{t.name}) s")[
                0
            ]
            outliers[t.name] = {c: round(float(v or 0.0), 5) for c, v in zip(numeric, row)}
        stamps = [c.name for c in cols if c.type in ("timestamp", "date")]
        if stamps:
            latest = query(f"SELECT max({stamps[0]}) FROM raw.{t.name}")[0][0]
            freshness[t.name] = f"{stamps[0]} up to {latest}"
        for fk in t.foreign_keys:
            if fk.parent not in present:
                continue
            parent = schema.table(fk.parent)
            row = query(
                f"SELECT min(n), percentile_cont(0.5) WITHIN GROUP (ORDER BY n), max(n) FROM (SELECT p.{parent.primary_key}, "
                f"count(c.{fk.column}) AS n FROM raw.{fk.parent} p LEFT JOIN raw.{t.name} c "
                f"ON c.{fk.column} = p.{fk.parent_column} GROUP BY p.{parent.primary_key}) x"
            )[0]
            cardinality[f"{fk.parent} -> {t.name}.{fk.column}"] = {
                "min": int(row[0]), "median": float(row[1]), "max": int(row[2])
            }  # fmt: skip
    return {"missing": missing, "outliers": outliers, "freshness": freshness, "cardinality": cardinality}


def _quality_markdown(quality: dict[str, dict]) -> list[str]:
    """Return the catalog sections of a ``quality_report``."""
    lines = [
        "",
        "## Missing values",
        "",
        "Share of nulls, for the columns that have any (every other column is complete).",
        "",
    ]
    lines += [f"- **{t}**: " + ", ".join(f"`{c}` {v:.2%}" for c, v in cols.items())
              for t, cols in quality["missing"].items() if cols] or ["- none"]  # fmt: skip
    lines += [
        "",
        "## Outliers",
        "",
        "Share of values more than 4 standard deviations from the column's mean.",
        "",
    ]
    lines += [f"- **{t}**: " + ", ".join(f"`{c}` {v:.3%}" for c, v in cols.items())
              for t, cols in quality["outliers"].items()]  # fmt: skip
    lines += [
        "",
        "## Relationship cardinalities",
        "",
        "| parent -> child | min | median | max |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {k} | {v['min']} | {v['median']:g} | {v['max']} |" for k, v in quality["cardinality"].items()
    ]
    lines += [
        "",
        "## Freshness",
        "",
        "Latest timestamp of every table (the first timestamp column of each).",
        "",
    ]
    lines += [f"- **{t}**: {v}" for t, v in quality["freshness"].items()]
    return lines
