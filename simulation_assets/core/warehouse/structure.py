"""Checks of the warehouse's structure: the correlations, curves, seasons and flows, each one measured figure.

Each check is portable SQL returning one number (a ratio, a correlation, bits of information) that
must fall inside its band in ``WarehouseConfig.checks.structure``; the number is reported as the
check's ``measured`` metadata and in the catalog. They are not blocking: weaker structure makes the
data less realistic, not wrong. A check that reads a table not loaded is left out.
"""

from __future__ import annotations

import datetime as dt

from simulation_assets.core.warehouse.calendar import holiday_dates
from simulation_assets.core.warehouse.check_types import Check
from simulation_assets.core.warehouse.config import ROW_COUNTS, WarehouseConfig


def _active_days(raw: str, end: str) -> str:
    """SQL of every account's id, status and days alive (creation to churn or the window's end)."""
    return (
        f"SELECT account_id, status, mrr_usd, greatest((extract(epoch FROM coalesce(churned_at, {end})) "
        f"- extract(epoch FROM created_at)) / 86400.0, 1.0) AS days FROM {raw}.accounts"
    )


def _ratio(value: str, by: str = "status") -> str:
    """SQL of mean(value) over churned accounts divided by mean(value) over the others."""
    return (
        f"avg(CASE WHEN {by} = 'churned' THEN {value} END) / "
        f"nullif(avg(CASE WHEN {by} <> 'churned' THEN {value} END), 0)"
    )


UNPAID = "CASE WHEN i.status = 'paid' THEN 0.0 ELSE 1.0 END"


def structure_checks(present: set[str], cfg: WarehouseConfig, raw: str = "raw") -> list[Check]:
    """Return the structure checks whose tables are all in ``present``."""
    end = f"TIMESTAMP '{cfg.window.end} 00:00:00'"
    life = _active_days(raw, end)
    out: list[Check] = []

    def add(name: str, table: str, reads: tuple[str, ...], sql: str, what: str) -> None:
        out.append(_check(cfg, name, table, reads, sql, what, present))

    add(
        "churned_accounts_less_engaged", "user_sessions", ("accounts", "user_sessions"),
        f"WITH s AS (SELECT account_id, count(*) AS n FROM {raw}.user_sessions GROUP BY 1), "
        f"a AS ({life}) SELECT {_ratio('coalesce(s.n, 0) / a.days', 'a.status')} "
        f"FROM a LEFT JOIN s ON s.account_id = a.account_id",
        "app sessions per active day of churned accounts / of retained ones (health drives both)",
    )  # fmt: skip
    add(
        "tickets_follow_poor_health", "hubspot_tickets", ("accounts", "devices", "hubspot_tickets"),
        f"WITH t AS (SELECT account_id, count(*) AS n FROM {raw}.hubspot_tickets GROUP BY 1), "
        f"d AS (SELECT account_id, count(*) AS n FROM {raw}.devices GROUP BY 1), a AS ({life}) "
        f"SELECT {_ratio('coalesce(t.n, 0) / a.days / coalesce(d.n, 1)', 'a.status')} FROM a "
        f"LEFT JOIN t ON t.account_id = a.account_id LEFT JOIN d ON d.account_id = a.account_id",
        "support tickets per device-day of churned accounts / of retained ones",
    )  # fmt: skip
    add(
        "payment_failures_precede_churn", "stripe_invoices", ("accounts", "stripe_customers", "stripe_invoices"),
        f"SELECT {_ratio(UNPAID, 'a.status')} "
        f"FROM {raw}.stripe_invoices i JOIN {raw}.stripe_customers c ON c.customer_id = i.customer_id "
        f"JOIN {raw}.accounts a ON a.account_id = c.account_id",
        "share of unpaid invoices of churned accounts / of retained ones",
    )  # fmt: skip
    add(
        "device_outages_raise_churn", "device_health", ("accounts", "devices", "device_health"),
        f"WITH x AS (SELECT d.account_id, min(CASE WHEN h.uptime_pct < 50 THEN h.recorded_at END) "
        f"< max(CASE WHEN h.uptime_pct >= 90 THEN h.recorded_at END) AS repaired FROM {raw}.devices d "
        f"JOIN {raw}.device_health h ON h.device_id = d.device_id GROUP BY d.device_id, d.account_id), "
        f"y AS (SELECT a.status, max(CASE WHEN x.repaired THEN 1 ELSE 0 END) AS down FROM {raw}.accounts a "
        f"JOIN x ON x.account_id = a.account_id GROUP BY a.account_id, a.status) "
        f"SELECT {_ratio('CASE WHEN y.down = 1 THEN 1.0 ELSE 0.0 END', 'y.status')} / nullif(("
        f"{_ratio('CASE WHEN y.down = 1 THEN 0.0 ELSE 1.0 END', 'y.status')}), 0) FROM y",
        "odds ratio of a device outage (down, then up again) in an account's last 30 days, churned accounts / "
        "retained ones (an outage raises churn directly, not only through health and tickets)",
    )  # fmt: skip
    add(
        "bigger_accounts_have_more_devices", "devices", ("accounts", "devices"),
        f"SELECT corr(a.mrr_usd, CAST(coalesce(d.n, 0) AS DOUBLE PRECISION)) FROM {raw}.accounts a "
        f"LEFT JOIN (SELECT account_id, count(*) AS n FROM {raw}.devices GROUP BY 1) d ON d.account_id = a.account_id",
        "correlation of an account's MRR and its number of devices",
    )  # fmt: skip
    dbl = "CAST({} AS DOUBLE PRECISION)"
    add(
        "next_page_follows_current_page", "page_views", ("page_views",),
        f"WITH p AS (SELECT page_path AS a, lead(page_path) OVER (PARTITION BY session_id ORDER BY viewed_at, "
        f"page_view_id) AS b FROM {raw}.page_views), t AS (SELECT a, b, {dbl.format('count(*)')} AS n FROM p "
        f"WHERE b IS NOT NULL GROUP BY 1, 2), s AS (SELECT sum(n) AS n FROM t), "
        f"pa AS (SELECT a, sum(n) AS n FROM t GROUP BY 1), pb AS (SELECT b, sum(n) AS n FROM t GROUP BY 1) "
        f"SELECT sum(t.n / s.n * ln(t.n * s.n / (pa.n * pb.n))) / ln(2.0) "
        f"FROM t JOIN pa ON pa.a = t.a JOIN pb ON pb.b = t.b CROSS JOIN s",
        "mutual information of a page view and the next one in the session, in bits",
    )  # fmt: skip
    admin_pages = (
        "CASE WHEN v.page_path IN ('/billing', '/users', '/settings', '/integrations') THEN 1.0 ELSE 0.0 END"
    )
    add(
        "pages_depend_on_role", "page_views", ("page_views", "users"),
        f"SELECT avg(CASE WHEN u.role = 'admin' THEN {admin_pages} END) / "
        f"nullif(avg(CASE WHEN u.role = 'staff' THEN {admin_pages} END), 0) "
        f"FROM {raw}.page_views v JOIN {raw}.users u ON u.user_id = v.user_id",
        "share of billing/users/settings/integrations views, admins / staff",
    )  # fmt: skip
    add(
        "taps_stop_while_devices_are_down", "device_health", ("device_health", "tap_events"),
        f"WITH h AS (SELECT device_id, CAST(recorded_at AS DATE) AS day, uptime_pct FROM {raw}.device_health), "
        f"t AS (SELECT device_id, CAST(poured_at AS DATE) AS day, count(*) AS n FROM {raw}.tap_events GROUP BY 1, 2) "
        f"SELECT avg(CASE WHEN h.uptime_pct = 0 THEN {dbl.format('coalesce(t.n, 0)')} END) / "
        f"nullif(avg(CASE WHEN h.uptime_pct >= 99 THEN {dbl.format('coalesce(t.n, 0)')} END), 0) "
        f"FROM h LEFT JOIN t ON t.device_id = h.device_id AND t.day = h.day",
        "pours per device-day on days the device was down all day / on days it was up (uptime from the gaps)",
    )  # fmt: skip
    add(
        "device_errors_rise_before_failures", "device_health", ("device_health",),
        f"WITH h AS (SELECT uptime_pct, error_count, min(CASE WHEN uptime_pct = 0 THEN 1 ELSE 2 END) OVER "
        f"(PARTITION BY device_id ORDER BY recorded_at ROWS BETWEEN 1 FOLLOWING AND 5 FOLLOWING) AS ahead "
        f"FROM {raw}.device_health) "
        f"SELECT avg(CASE WHEN ahead = 1 AND uptime_pct > 0 THEN {dbl.format('error_count')} END) / "
        f"nullif(avg(CASE WHEN coalesce(ahead, 2) = 2 AND uptime_pct >= 99 THEN {dbl.format('error_count')} END), 0) "
        f"FROM h",
        "errors per day in the five days before a device goes down / on ordinary up days (degradation)",
    )  # fmt: skip
    add(
        "ga_bounce_depends_on_source", "ga_sessions", ("ga_sessions",),
        f"SELECT max(b) - min(b) FROM (SELECT source, medium, avg(CASE WHEN bounced THEN 1.0 ELSE 0.0 END) AS b "
        f"FROM {raw}.ga_sessions GROUP BY 1, 2 HAVING count(*) >= 500) x",
        "highest minus lowest bounce rate among the website's sources (with 500 sessions or more)",
    )  # fmt: skip
    add(
        "plan_changes_move_mrr", "subscriptions", ("subscriptions",),
        f"SELECT avg(CASE WHEN (n.change_reason = 'upgrade' AND n.mrr_usd > o.mrr_usd) "
        f"OR (n.change_reason = 'downgrade' AND n.mrr_usd < o.mrr_usd) THEN 1.0 ELSE 0.0 END) "
        f"FROM {raw}.subscriptions n JOIN {raw}.subscriptions o ON o.account_id = n.account_id "
        f"AND o.change_reason = 'new' WHERE n.change_reason IN ('upgrade', 'downgrade')",
        "share of plan changes whose MRR moved their way (upgrades expand it, downgrades contract it)",
    )  # fmt: skip
    add(*_growth_checks(cfg, raw))
    out.extend(_feature_checks(cfg, raw, present))
    window = cfg.window
    latest = window.end - dt.timedelta(days=window.min_tenure_days)
    last_full = dt.date(latest.year, latest.month, 1)
    add(
        "signups_follow_marketing_spend", "accounts", ("accounts", "campaign_performance"),
        f"WITH s AS (SELECT CAST(date_trunc('month', date) AS DATE) AS m, sum(spend_usd) AS spend "
        f"FROM {raw}.campaign_performance GROUP BY 1), "
        f"a AS (SELECT CAST(date_trunc('month', created_at) AS DATE) AS m, count(*) AS n FROM {raw}.accounts GROUP BY 1) "
        f"SELECT corr(s.spend, CAST(coalesce(a.n, 0) AS DOUBLE PRECISION)) FROM s LEFT JOIN a ON a.m = s.m "
        f"WHERE s.m < DATE '{last_full}'",
        "correlation of monthly marketing spend and new accounts (months before the last sign-up date)",
    )  # fmt: skip
    out.extend(_funnel_checks(cfg, raw, present, last_full))
    out.extend(_flow_checks(cfg, raw, present))
    out.extend(_geography_checks(cfg, raw, present))
    for name, table, column, what in CALENDAR_TABLES:
        for check in _calendar_checks(cfg, raw, name, table, column, what):
            add(*check)
    return out


# The tables the calendar shapes: check prefix, table, timestamp column, what a row is.
CALENDAR_TABLES = (
    ("taps", "tap_events", "poured_at", "pours"),
    ("app_sessions", "user_sessions", "started_at", "app sessions"),
    ("website_sessions", "ga_sessions", "session_start", "website sessions"),
)


def _calendar_checks(
    cfg: WarehouseConfig, raw: str, prefix: str, table: str, column: str, what: str
) -> list[tuple[str, str, tuple[str, ...], str, str]]:
    """The season (December over the January after it) and the holiday spikes of one table, per day."""
    window = cfg.window
    daily = f"SELECT CAST({column} AS DATE) AS day, count(*) AS n FROM {raw}.{table} GROUP BY 1"
    out = [(
        f"{prefix}_peak_in_december_lull_in_january", table, (table,),
        f"WITH d AS ({daily}), m AS (SELECT extract(year FROM day) AS y, extract(month FROM day) AS mo, "
        f"avg(CAST(n AS DOUBLE PRECISION)) AS n FROM d GROUP BY 1, 2) "
        f"SELECT avg(dec.n / jan.n) FROM m dec JOIN m jan ON jan.y = dec.y + 1 AND jan.mo = 1 WHERE dec.mo = 12",
        f"{what} per day in December / in the January after it",
    )]  # fmt: skip
    spikes = [name for name, m in cfg.calendar.holidays.items() if m >= 1.5]
    days = sorted(d for name in spikes for d in holiday_dates(name, window.start + dt.timedelta(days=21),
                                                              window.end - dt.timedelta(days=21)))  # fmt: skip
    if days:
        values = ", ".join(f"(DATE '{d}')" for d in days)
        out.append((
            f"{prefix}_spike_on_holidays", table, (table,),
            f"WITH d AS ({daily}), h AS (SELECT day FROM (VALUES {values}) v(day)) "
            f"SELECT avg(CASE WHEN d.day = h.day THEN CAST(n AS DOUBLE PRECISION) END) "
            f"/ avg(CASE WHEN d.day <> h.day THEN CAST(n AS DOUBLE PRECISION) END) FROM h JOIN d "
            f"ON d.day IN (h.day - 14, h.day - 7, h.day, h.day + 7, h.day + 14)",
            f"{what} on {', '.join(spikes)} / on the same weekday one and two weeks around them",
        ))  # fmt: skip
    return out


def _growth_checks(cfg: WarehouseConfig, raw: str) -> tuple[str, str, tuple[str, ...], str, str]:
    """The yearly growth of new accounts between the first and the fourth year of the window."""
    start = cfg.window.start
    year = [dt.date(start.year + k, start.month, start.day) for k in range(5)]
    count = (
        "sum(CASE WHEN created_at >= TIMESTAMP '{}' AND created_at < TIMESTAMP '{}' THEN 1.0 ELSE 0.0 END)"
    )
    return (
        "accounts_grow_year_over_year", "accounts", ("accounts",),
        f"SELECT power({count.format(year[3], year[4])} / nullif({count.format(year[0], year[1])}, 0), 1.0 / 3) - 1 "
        f"FROM {raw}.accounts",
        f"yearly growth of new accounts, first to fourth year (spec: {cfg.window.account_yoy_growth:.0%})",
    )  # fmt: skip


def _feature_checks(cfg: WarehouseConfig, raw: str, present: set[str]) -> list[Check]:
    """Feature launches spread over the years, adoption that takes months and is faster for higher tiers, and
    errors during the known incidents. A feature's release is taken as its first use in the data."""
    activity = cfg.activity
    late = [f for f, years in activity.feature_release_years.items() if years > 0]
    basic = [f for f in late if activity.feature_min_tier.get(f, "Basic") == "Basic"]
    first_use = (  # every account's first use of every feature
        f"SELECT account_id, feature_name, min(used_at) AS first_at FROM {raw}.feature_usage GROUP BY 1, 2"
    )
    release = "SELECT feature_name, min(first_at) AS released_at FROM f GROUP BY 1"
    seconds = "(extract(epoch FROM {}) - extract(epoch FROM {}))"
    names = ", ".join(f"'{f}'" for f in late) or "''"
    basic_names = ", ".join(f"'{f}'" for f in basic) or "''"
    delay = seconds.format("f.first_at", "greatest(r.released_at, a.created_at)")
    windows = (
        " OR ".join(  # no incidents configured: no window (the check then fails, measuring nothing)
            f"(used_at >= TIMESTAMP '{start}' AND used_at < TIMESTAMP '{start}' + INTERVAL '{days} days')"
            for start, days in activity.incidents
        )
        or "FALSE"
    )
    error = "CASE WHEN success THEN 0.0 ELSE 1.0 END"
    specs = [
        (
            "features_launch_over_the_years", ("feature_usage",),
            f"WITH f AS ({first_use}), r AS ({release}) SELECT "
            f"{seconds.format('max(released_at)', 'min(released_at)')} / 86400.0 FROM r",
            "days between the first and the last feature's first use",
        ),
        (
            "new_features_gain_share_over_months", ("feature_usage",),
            f"WITH r AS (SELECT feature_name, min(used_at) AS released_at FROM {raw}.feature_usage GROUP BY 1), "
            f"e AS (SELECT {seconds.format('u.used_at', 'r.released_at')} / 86400.0 AS days, "
            f"CASE WHEN u.feature_name = r.feature_name THEN 1.0 ELSE 0.0 END AS hit "
            f"FROM {raw}.feature_usage u JOIN r ON u.used_at >= r.released_at "
            f"AND u.used_at < r.released_at + INTERVAL '365 days' WHERE r.feature_name IN ({names})) "
            f"SELECT avg(CASE WHEN days >= 180 THEN hit END) / nullif(avg(CASE WHEN days < 30 THEN hit END), 0) FROM e",
            "a new feature's share of all feature events 6-12 months after its release / in its first month "
            "(accounts adopt it over months)",
        ),
        (
            "higher_tiers_adopt_sooner", ("feature_usage", "accounts"),
            f"WITH f AS ({first_use}), r AS ({release}), d AS (SELECT a.tier, {delay} / 86400.0 AS days FROM f "
            f"JOIN r ON r.feature_name = f.feature_name JOIN {raw}.accounts a ON a.account_id = f.account_id "
            f"WHERE f.feature_name IN ({basic_names})) "
            f"SELECT avg(CASE WHEN tier = 'Basic' THEN days END) / nullif(avg(CASE WHEN tier = 'Enterprise' THEN days END), 0) "
            f"FROM d",
            "mean adoption delay of Basic accounts / of Enterprise accounts (features open to both)",
        ),
        (
            "feature_errors_spike_in_incidents", ("feature_usage",),
            f"SELECT avg(CASE WHEN {windows} THEN {error} END) / nullif(avg(CASE WHEN NOT ({windows}) THEN {error} END), 0) "
            f"FROM {raw}.feature_usage",
            "error rate of feature calls during known incidents / outside them",
        ),
    ]  # fmt: skip
    return [_check(cfg, name, "feature_usage", reads, sql, what, present) for name, reads, sql, what in specs]


def _check(
    cfg: WarehouseConfig,
    name: str,
    table: str,
    reads: tuple[str, ...],
    sql: str,
    what: str,
    present: set[str],
    unmeasured: str = "",
) -> Check:
    """Return the structure check ``name``; when a table it reads is not loaded it is declared but not measured
    (it passes, naming what is missing, like the foreign keys to a table not loaded). ``unmeasured`` says why
    the SQL may return NULL on tables too small to measure the figure (see ``Check.unmeasured``)."""
    missing = sorted(set(reads) - present)
    if missing:
        return Check(name, table, "structure", "SELECT 0", description=f"{what} (not checked: {', '.join(missing)} "
                     "not loaded)", reads=reads)  # fmt: skip
    lo, hi = cfg.checks.structure[name]
    return Check(name, table, "structure", sql, description=f"{what}: within [{lo:g}, {hi:g}]", band=(lo, hi),
                 reads=reads, unmeasured=unmeasured)  # fmt: skip


def _funnel_checks(cfg: WarehouseConfig, raw: str, present: set[str], last_full: dt.date) -> list[Check]:
    """The acquisition funnel (generators/acquisition.py): spend -> touchpoints -> MQLs -> deals -> accounts.
    Each stage's figure is its conversion rate measured through the links and their timing, so it falls to
    about 0 when the rows are linked at random."""
    from simulation_assets.core.warehouse.generators.acquisition import lag_months, sales_share

    dev = {table: sizes[0] for table, sizes in ROW_COUNTS.items()}
    lag = lag_months(cfg, sales_share(dev, cfg))
    month = "CAST(date_trunc('month', {}) AS DATE)"
    spend = f"SELECT {month.format('date')} AS m, sum(spend_usd) AS spend FROM {raw}.campaign_performance GROUP BY 1"
    touched = f"SELECT DISTINCT contact_id FROM {raw}.attribution_touchpoints"
    after_touch = (
        f"EXISTS (SELECT 1 FROM {raw}.attribution_touchpoints t WHERE t.contact_id = q.contact_id "
        f"AND t.channel = q.source_channel AND t.touched_at <= q.mql_at "
        f"AND t.touched_at > q.mql_at - INTERVAL '30 days')"
    )
    specs = [
        (
            "signups_follow_spend_at_lag", "accounts", ("accounts", "campaign_performance"),
            f"WITH s AS ({spend}), a AS (SELECT {month.format('created_at')} AS m, count(*) AS n "
            f"FROM {raw}.accounts GROUP BY 1) "
            f"SELECT corr(s.spend, CAST(coalesce(a.n, 0) AS DOUBLE PRECISION)) FROM s LEFT JOIN a "
            f"ON a.m = CAST(s.m + INTERVAL '{lag} months' AS DATE) WHERE s.m < DATE '{last_full}' - INTERVAL '{lag} months'",
            f"correlation of a month's marketing spend and the new accounts {lag} months later (the funnel's mean lag)",
        ),
        (
            "touchpoints_follow_marketing_spend", "attribution_touchpoints",
            ("attribution_touchpoints", "campaign_performance"),
            f"WITH s AS ({spend}), t AS (SELECT {month.format('touched_at')} AS m, count(*) AS n "
            f"FROM {raw}.attribution_touchpoints GROUP BY 1) "
            f"SELECT corr(s.spend, CAST(coalesce(t.n, 0) AS DOUBLE PRECISION)) FROM s LEFT JOIN t ON t.m = s.m "
            f"WHERE s.m < DATE '{last_full}'",
            "correlation of monthly marketing spend and marketing touchpoints",
        ),
        (
            "mqls_follow_channel_spend", "marketing_qualified_leads",
            ("marketing_qualified_leads", "campaign_performance", "marketing_campaigns"),
            f"WITH s AS (SELECT c.channel, sum(p.spend_usd) / (SELECT sum(spend_usd) FROM {raw}.campaign_performance) "
            f"AS share FROM {raw}.campaign_performance p JOIN {raw}.marketing_campaigns c "
            f"ON c.campaign_id = p.campaign_id GROUP BY 1), "
            f"q AS (SELECT source_channel AS channel, CAST(count(*) AS DOUBLE PRECISION) / "
            f"(SELECT count(*) FROM {raw}.marketing_qualified_leads) AS share "
            f"FROM {raw}.marketing_qualified_leads GROUP BY 1) "
            f"SELECT max(abs(coalesce(s.share, 0) - coalesce(q.share, 0))) FROM s FULL JOIN q ON q.channel = s.channel",
            "largest gap between a channel's share of the MQLs and its share of the spend",
        ),
        (
            "touched_contacts_become_mqls", "marketing_qualified_leads",
            ("marketing_qualified_leads", "attribution_touchpoints"),
            f"SELECT sum(CASE WHEN {after_touch} THEN 1.0 ELSE 0.0 END) / nullif((SELECT count(*) FROM ({touched}) x), 0) "
            f"FROM {raw}.marketing_qualified_leads q",
            "conversion touch -> MQL: contacts that became an MQL within 30 days of a touch on the MQL's channel "
            "/ touched contacts",
        ),
        (
            "mqls_become_deals", "hubspot_deals", ("marketing_qualified_leads", "hubspot_deals"),
            f"SELECT avg(CASE WHEN EXISTS (SELECT 1 FROM {raw}.hubspot_deals d WHERE d.contact_id = q.contact_id "
            f"AND d.created_at >= q.mql_at AND d.created_at < q.mql_at + INTERVAL '90 days') THEN 1.0 ELSE 0.0 END) "
            f"FROM {raw}.marketing_qualified_leads q",
            "conversion MQL -> deal: MQLs whose contact had a deal opened within 90 days / MQLs",
        ),
        (
            "won_deals_become_accounts", "accounts", ("accounts", "hubspot_companies", "hubspot_deals"),
            f"SELECT avg(CASE WHEN a.created_at >= d.close_date AND a.created_at < d.close_date + INTERVAL '30 days' "
            f"THEN 1.0 ELSE 0.0 END) FROM {raw}.hubspot_deals d JOIN {raw}.hubspot_companies c "
            f"ON c.company_id = d.company_id LEFT JOIN {raw}.accounts a ON a.account_id = c.account_id WHERE d.is_won",
            "conversion won deal -> account: won deals whose company became an account within 30 days of the close "
            "/ won deals",
        ),
        (
            "accounts_trace_back_to_mqls", "accounts",
            ("accounts", "hubspot_companies", "hubspot_contacts", "marketing_qualified_leads"),
            f"SELECT avg(CASE WHEN EXISTS (SELECT 1 FROM {raw}.hubspot_companies c JOIN {raw}.hubspot_contacts p "
            f"ON p.company_id = c.company_id JOIN {raw}.marketing_qualified_leads q ON q.contact_id = p.contact_id "
            f"WHERE c.account_id = a.account_id AND q.mql_at <= a.created_at "
            f"AND q.mql_at > a.created_at - INTERVAL '365 days') THEN 1.0 ELSE 0.0 END) FROM {raw}.accounts a",
            "new accounts with an MQL at their company in the year before they signed up / new accounts",
        ),
    ]  # fmt: skip
    out = [_check(cfg, name, table, reads, sql, what, present) for name, table, reads, sql, what in specs]
    return out + _monthly_funnel_checks(cfg, raw, present, last_full, lag)


# Sign-ups in the months measured below which their month-to-month swings are not measured: DEV's 100 accounts
# are ~2 a month, whose counting noise (~70 %) hides the spend's ~10 % monthly swings (``spend_push_sigma``).
SWINGS_MIN_SIGNUPS = 1000


def _monthly_funnel_checks(
    cfg: WarehouseConfig, raw: str, present: set[str], last_full: dt.date, lag: int
) -> list[Check]:
    """The funnel month by month, with the shared growth taken out (it alone makes any two growing series
    correlate): sign-ups answer the spend's swings around its trend, MQLs the channel mix of their month."""
    month = "CAST(date_trunc('month', {}) AS DATE)"
    index = "CAST(extract(year FROM {0}) * 12 + extract(month FROM {0}) AS DOUBLE PRECISION)"
    swings = (
        f"WITH s AS (SELECT {month.format('date')} AS m, sum(spend_usd) AS v FROM {raw}.campaign_performance "
        f"GROUP BY 1), a AS (SELECT {month.format('created_at')} AS m, count(*) AS v FROM {raw}.accounts GROUP BY 1), "
        f"x AS (SELECT {index.format('s.m')} AS k, ln(CAST(s.v AS DOUBLE PRECISION)) AS ls, "
        f"ln(CAST(a.v AS DOUBLE PRECISION)) AS la, a.v AS n FROM s JOIN a "
        f"ON a.m = CAST(s.m + INTERVAL '{lag} months' AS DATE) "
        f"WHERE s.v > 0 AND s.m < CAST(DATE '{last_full}' - INTERVAL '{lag} months' AS DATE)), "
        f"f AS (SELECT regr_slope(ls, k) AS bs, regr_intercept(ls, k) AS cs, regr_slope(la, k) AS ba, "
        f"regr_intercept(la, k) AS ca, sum(n) AS n FROM x) "
        f"SELECT CASE WHEN max(f.n) >= {SWINGS_MIN_SIGNUPS} THEN corr(x.ls - f.cs - f.bs * x.k, "
        f"x.la - f.ca - f.ba * x.k) END FROM x CROSS JOIN f"
    )
    mix = (
        f"WITH sp AS (SELECT {month.format('p.date')} AS m, c.channel, sum(p.spend_usd) AS v "
        f"FROM {raw}.campaign_performance p JOIN {raw}.marketing_campaigns c ON c.campaign_id = p.campaign_id "
        f"GROUP BY 1, 2), "
        f"sh AS (SELECT m, channel, CAST(v AS DOUBLE PRECISION) / sum(v) OVER (PARTITION BY m) AS s, "
        f"CAST(sum(v) OVER (PARTITION BY channel) AS DOUBLE PRECISION) / sum(v) OVER () AS o FROM sp), "
        f"best AS (SELECT m, sum(s * s / o) AS b FROM sh GROUP BY 1), "
        f"q AS (SELECT {month.format('mql_at')} AS m, source_channel AS channel FROM {raw}.marketing_qualified_leads) "
        f"SELECT (avg(coalesce(sh.s / sh.o, 0)) - 1) / nullif(avg(best.b) - 1, 0) FROM q "
        f"JOIN best ON best.m = q.m LEFT JOIN sh ON sh.m = q.m AND sh.channel = q.channel"
    )
    return [
        _check(
            cfg, "signups_follow_monthly_spend_swings", "accounts", ("accounts", "campaign_performance"), swings,
            f"correlation of the monthly spend and the new accounts {lag} months later, each as its log deviation "
            "from its own log-linear trend (the months' swings, not the shared growth)", present,
            unmeasured=f"fewer than {SWINGS_MIN_SIGNUPS:,} sign-ups: too few a month to see the spend's swings",
        ),
        _check(
            cfg, "mqls_follow_monthly_channel_mix", "marketing_qualified_leads",
            ("marketing_qualified_leads", "campaign_performance", "marketing_campaigns"), mix,
            "how far MQL channels follow each month's spend mix: (mean over MQLs of the month's spend share of "
            "their channel / its overall share) - 1, over the same when every MQL followed its month's mix "
            "(1 = month by month, 0 = only the overall mix)", present,
        ),
    ]  # fmt: skip


def _flow_checks(cfg: WarehouseConfig, raw: str, present: set[str]) -> list[Check]:
    """Page flows inside app sessions (feature pages, exits, bounces) and website sessions (landing page and
    source): each a spread or share that is 1 (or 0) when the column carrying it is shuffled."""
    pairs = ", ".join(f"('{f}', '{p}')" for f, p in cfg.activity.feature_page.items())
    exit_rate = "avg(CASE WHEN is_exit THEN 1.0 ELSE 0.0 END)"
    specs = [
        (
            "feature_pages_viewed_in_session", "feature_usage", ("feature_usage", "page_views"),
            f"WITH m(feature_name, page_path) AS (VALUES {pairs}), "
            f"v AS (SELECT DISTINCT session_id, page_path FROM {raw}.page_views) "
            f"SELECT avg(CASE WHEN v.session_id IS NULL THEN 0.0 ELSE 1.0 END) FROM {raw}.feature_usage f "
            f"JOIN m ON m.feature_name = f.feature_name "
            f"LEFT JOIN v ON v.session_id = f.session_id AND v.page_path = m.page_path",
            "feature events whose session viewed the feature's page / feature events",
        ),
        (
            "exits_depend_on_page", "page_views", ("page_views",),
            f"SELECT max(r) / nullif(min(r), 0) FROM (SELECT page_path, {exit_rate} AS r FROM {raw}.page_views "
            f"GROUP BY 1 HAVING count(*) >= 1000) x",
            "highest / lowest exit rate (a session's last view) among pages with 1,000 views or more",
        ),
        (
            "bounces_depend_on_entry_page", "page_views", ("page_views",),
            f"WITH v AS (SELECT page_path, row_number() OVER (PARTITION BY session_id ORDER BY viewed_at, "
            f"page_view_id) AS i, count(*) OVER (PARTITION BY session_id) AS n FROM {raw}.page_views) "
            f"SELECT max(b) / nullif(min(b), 0) FROM (SELECT page_path, avg(CASE WHEN n = 1 THEN 1.0 ELSE 0.0 END) "
            f"AS b FROM v WHERE i = 1 GROUP BY 1 HAVING count(*) >= 500) x",
            "highest / lowest bounce rate (one-page sessions) among entry pages with 500 sessions or more",
        ),
        (
            "ga_bounce_depends_on_landing_page", "ga_sessions", ("ga_sessions",),
            f"SELECT max(b) - min(b) FROM (SELECT landing_page, avg(CASE WHEN bounced THEN 1.0 ELSE 0.0 END) AS b "
            f"FROM {raw}.ga_sessions WHERE landing_page IS NOT NULL GROUP BY 1 HAVING count(*) >= 500) x",
            "highest minus lowest website bounce rate among landing pages (with 500 sessions or more)",
        ),
        (
            "ga_duration_depends_on_source", "ga_sessions", ("ga_sessions",),
            f"SELECT max(d) / nullif(min(d), 0) FROM (SELECT source, medium, "
            f"avg(CAST(session_duration_seconds AS DOUBLE PRECISION)) AS d FROM {raw}.ga_sessions "
            f"WHERE NOT bounced GROUP BY 1, 2 HAVING count(*) >= 500) x",
            "longest / shortest mean duration of engaged (not bounced) website sessions among sources",
        ),
    ]  # fmt: skip
    return [_check(cfg, name, table, reads, sql, what, present) for name, table, reads, sql, what in specs]


def _geography_checks(cfg: WarehouseConfig, raw: str, present: set[str]) -> list[Check]:
    """Where people and payments are (core/warehouse/geography.py): users and charges in their account's state,
    sessions from their user's city, IP addresses inside their city's block. Each is a share near 1 that falls
    to about the states' concentration (~0.08) when the column is shuffled."""
    from simulation_assets.core.warehouse.geography import Cities

    cities = Cities(list(cfg.locations.states))
    values = ", ".join(
        f"('{cities.states[s]}', '{name.replace(chr(39), chr(39) * 2)}', {i})"
        for i, (s, name) in enumerate(zip(cities.state, cities.name))
    )
    octet = "CAST(split_part({}, '.', {}) AS INTEGER)"

    def block(ip: str) -> str:  # the /20 block of 100.64.0.0/10 an address lies in (-1 outside it)
        return (
            f"CASE WHEN {octet.format(ip, 1)} = 100 THEN ({octet.format(ip, 2)} - 64) * 16 "
            f"+ CAST(floor({octet.format(ip, 3)} / 16.0) AS INTEGER) ELSE -1 END"
        )

    same = "avg(CASE WHEN {} THEN 1.0 ELSE 0.0 END)"
    specs = [
        (
            "users_in_account_state", "users", ("users", "accounts"),
            f"SELECT {same.format('u.state = a.billing_state')} FROM {raw}.users u "
            f"JOIN {raw}.accounts a ON a.account_id = u.account_id",
            "users whose state (their venue's) is their account's billing state / users",
        ),
        (
            "charges_in_account_state", "stripe_charges", ("stripe_charges", "stripe_customers", "accounts"),
            f"SELECT {same.format('ch.billing_state = a.billing_state')} FROM {raw}.stripe_charges ch "
            f"JOIN {raw}.stripe_customers c ON c.customer_id = ch.customer_id "
            f"JOIN {raw}.accounts a ON a.account_id = c.account_id",
            "charges billed to their account's billing state / charges",
        ),
        (
            "sessions_in_user_city", "user_sessions", ("user_sessions", "users"),
            f"SELECT {same.format('s.state = u.state AND s.city = u.city')} FROM {raw}.user_sessions s "
            f"JOIN {raw}.users u ON u.user_id = s.user_id",
            "app sessions from their user's own city / sessions (the others: travel, phones on mobile data)",
        ),
        (
            "ip_addresses_match_city", "user_sessions", ("user_sessions", "users"),
            f"WITH c(state, city, block) AS (VALUES {values}), "
            f"a AS (SELECT state, city, ip_address AS ip FROM {raw}.user_sessions "
            f"UNION ALL SELECT state, city, last_login_ip FROM {raw}.users) "
            f"SELECT {same.format('c.block = ' + block('a.ip'))} FROM a "
            f"LEFT JOIN c ON c.state = a.state AND c.city = a.city",
            "app sessions and users' last log-ins whose IP address lies in the block of their city "
            "(one /20 of 100.64.0.0/10 per city)",
        ),
    ]  # fmt: skip
    return [_check(cfg, name, table, reads, sql, what, present) for name, table, reads, sql, what in specs]
