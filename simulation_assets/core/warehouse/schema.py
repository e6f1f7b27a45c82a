"""The typed schema of every raw warehouse table, in one place.

Each table names its source system (for dbt sources and staging model names),
its columns with logical types, its primary key, foreign keys, the temporal
rules its rows obey ("no row before its parent's creation") and how many chunk
files it is split into. Tables are listed in generation (dependency) order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

# logical type -> (polars dtype, DuckDB type, PostgreSQL type)
TYPES: dict[str, tuple[pl.DataType, str, str]] = {
    "bigint": (pl.Int64(), "BIGINT", "BIGINT"),
    "int": (pl.Int32(), "INTEGER", "INTEGER"),
    "smallint": (pl.Int16(), "SMALLINT", "SMALLINT"),
    "double": (pl.Float64(), "DOUBLE", "DOUBLE PRECISION"),
    "real": (pl.Float32(), "FLOAT", "REAL"),
    "text": (pl.String(), "VARCHAR", "TEXT"),
    "bool": (pl.Boolean(), "BOOLEAN", "BOOLEAN"),
    "timestamp": (pl.Datetime("us"), "TIMESTAMP", "TIMESTAMP"),
    "date": (pl.Date(), "DATE", "DATE"),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = False
    description: str = ""


@dataclass(frozen=True)
class ForeignKey:
    column: str
    parent: str
    parent_column: str


@dataclass(frozen=True)
class TemporalRule:
    """``table.column`` must not be earlier than ``parent.parent_column`` of the row ``fk_column`` points to."""

    column: str
    fk_column: str
    parent_column: str


@dataclass(frozen=True)
class Table:
    name: str
    source: str
    entity: str
    description: str
    columns: tuple[Column, ...]
    primary_key: str
    foreign_keys: tuple[ForeignKey, ...] = ()
    temporal: tuple[TemporalRule, ...] = ()
    chunks: int = 1
    # Column pairs (earlier, later) within one row.
    ordered: tuple[tuple[str, str], ...] = ()
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def polars_schema(self) -> dict[str, pl.DataType]:
        return {c.name: TYPES[c.type][0] for c in self.columns}

    @property
    def staging_model(self) -> str:
        return f"stg_{self.source}__{self.entity}"

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name}")

    def foreign_key(self, column: str) -> ForeignKey:
        for fk in self.foreign_keys:
            if fk.column == column:
                return fk
        raise KeyError(f"{self.name}.{column} is not a foreign key")


def _cols(spec: str) -> tuple[Column, ...]:
    """Parse ``name:type[?], ...`` (``?`` = nullable) into columns."""
    out = []
    for part in spec.split(","):
        name, typ = (p.strip() for p in part.split(":"))
        out.append(Column(name, typ.rstrip("?"), typ.endswith("?")))
    return tuple(out)


def _fks(*triples: str) -> tuple[ForeignKey, ...]:
    """Parse ``col->parent.col`` strings."""
    out = []
    for t in triples:
        col, target = t.split("->")
        parent, parent_col = target.split(".")
        out.append(ForeignKey(col.strip(), parent.strip(), parent_col.strip()))
    return tuple(out)


def _rules(*triples: str) -> tuple[TemporalRule, ...]:
    """Parse ``col>=fk_col.parent_col`` strings."""
    out = []
    for t in triples:
        col, target = t.split(">=")
        fk, parent_col = target.split(".")
        out.append(TemporalRule(col.strip(), fk.strip(), parent_col.strip()))
    return tuple(out)


TABLES: tuple[Table, ...] = (
    Table(
        "accounts", "app", "accounts", "Customer accounts (bars, restaurants, hotels) with tier and MRR.",
        _cols(
            "account_id:bigint, account_name:text, industry:text, tier:text, mrr_usd:double, employee_count:int, "
            "domain:text, billing_state:text, billing_city:text, status:text, created_at:timestamp, churned_at:timestamp?"
        ),
        "account_id", ordered=(("created_at", "churned_at"),),
    ),
    Table(
        "locations", "app", "locations", "Venues of an account (1-5 per account).",
        _cols(
            "location_id:bigint, account_id:bigint, location_name:text, location_type:text, state:text, city:text, "
            "zip_code:text, address:text, opened_at:timestamp"
        ),
        "location_id", _fks("account_id->accounts.account_id"), _rules("opened_at>=account_id.created_at"),
    ),
    Table(
        "users", "app", "users", "People who log into the app (2-10 per account by tier).",
        _cols(
            "user_id:bigint, account_id:bigint, email:text, first_name:text, last_name:text, role:text, "
            "permissions:text, created_at:timestamp, last_login_at:timestamp, state:text, city:text, last_login_ip:text"
        ),
        "user_id", _fks("account_id->accounts.account_id"), _rules("created_at>=account_id.created_at"),
        ordered=(("created_at", "last_login_at"),),
    ),
    Table(
        "devices", "app", "devices", "Smart tap controllers installed at locations (2-5 per location).",
        _cols(
            "device_id:bigint, location_id:bigint, account_id:bigint, serial_number:text, model:text, "
            "firmware_version:text, status:text, installed_at:timestamp, last_seen_at:timestamp"
        ),
        "device_id", _fks("location_id->locations.location_id", "account_id->accounts.account_id"),
        _rules("installed_at>=location_id.opened_at"), ordered=(("installed_at", "last_seen_at"),),
    ),
    Table(
        "subscriptions", "app", "subscriptions", "Plan history of each account (first plan plus plan changes).",
        _cols(
            "subscription_id:bigint, account_id:bigint, plan_tier:text, billing_interval:text, status:text, "
            "mrr_usd:double, change_reason:text, started_with_trial:bool, trial_start:timestamp?, "
            "trial_end:timestamp?, started_at:timestamp, ended_at:timestamp?"
        ),
        "subscription_id", _fks("account_id->accounts.account_id"), _rules("started_at>=account_id.created_at"),
        ordered=(("started_at", "ended_at"), ("trial_start", "trial_end")),
    ),
    Table(
        "stripe_customers", "stripe", "customers", "Stripe customers, one per account.",
        _cols(
            "customer_id:text, account_id:bigint, email:text, name:text, currency:text, delinquent:bool, "
            "metadata:text, created:timestamp"
        ),
        "customer_id", _fks("account_id->accounts.account_id"),
    ),
    Table(
        "stripe_prices", "stripe", "prices", "The 12 Stripe prices: three plans and three add-ons, monthly and annual.",
        _cols(
            "price_id:text, product_id:text, nickname:text, plan:text, recurring_interval:text, "
            "unit_amount:bigint, currency:text, active:bool, created:timestamp"
        ),
        "price_id",
    ),
    Table(
        "stripe_subscriptions", "stripe", "subscriptions", "Stripe subscriptions mirroring the app subscriptions.",
        _cols(
            "stripe_subscription_id:text, customer_id:text, subscription_id:bigint, status:text, "
            "billing_interval:text, created:timestamp, start_date:timestamp, trial_start:timestamp?, "
            "trial_end:timestamp?, current_period_start:timestamp, current_period_end:timestamp, "
            "canceled_at:timestamp?, ended_at:timestamp?"
        ),
        "stripe_subscription_id",
        _fks("customer_id->stripe_customers.customer_id", "subscription_id->subscriptions.subscription_id"),
        _rules("created>=customer_id.created"),
        ordered=(("current_period_start", "current_period_end"), ("start_date", "ended_at")),
    ),
    Table(
        "stripe_subscription_items", "stripe", "subscription_items", "Line items: the plan plus optional add-ons.",
        _cols("subscription_item_id:text, stripe_subscription_id:text, price_id:text, quantity:int, created:timestamp"),
        "subscription_item_id",
        _fks(
            "stripe_subscription_id->stripe_subscriptions.stripe_subscription_id", "price_id->stripe_prices.price_id"
        ),
        _rules("created>=stripe_subscription_id.created"),
    ),
    Table(
        "stripe_invoices", "stripe", "invoices", "Monthly (or annual) invoices; 95% are paid.",
        _cols(
            "invoice_id:text, customer_id:text, stripe_subscription_id:text, number:text, status:text, "
            "billing_reason:text, amount_due:bigint, amount_paid:bigint, amount_remaining:bigint, currency:text, "
            "attempt_count:int, period_start:timestamp, period_end:timestamp, created:timestamp, "
            "due_date:timestamp, paid_at:timestamp?"
        ),
        "invoice_id",
        _fks(
            "customer_id->stripe_customers.customer_id",
            "stripe_subscription_id->stripe_subscriptions.stripe_subscription_id",
        ),
        _rules("created>=stripe_subscription_id.created"),
        ordered=(("period_start", "period_end"), ("created", "paid_at")),
    ),
    Table(
        "stripe_charges", "stripe", "charges", "Successful charges, one per paid invoice, for the amount paid.",
        _cols(
            "charge_id:text, invoice_id:text, customer_id:text, amount:bigint, amount_refunded:bigint, currency:text, "
            "status:text, paid:bool, payment_method_type:text, outcome_type:text, created:timestamp, billing_state:text, "
            "billing_city:text, ip_address:text"
        ),
        "charge_id",
        _fks("invoice_id->stripe_invoices.invoice_id", "customer_id->stripe_customers.customer_id"),
        _rules("created>=invoice_id.created"),
    ),
    Table(
        "stripe_events", "stripe", "events",
        "Audit trail of Stripe object changes (customer, subscription, invoice, charge), one row per webhook delivery.",
        _cols(
            "delivery_id:bigint, event_id:text, type:text, object_type:text, object_id:text, customer_id:text, "
            "created:timestamp, received_at:timestamp, api_version:text, livemode:bool"
        ),
        "delivery_id", _fks("customer_id->stripe_customers.customer_id"), _rules("created>=customer_id.created"),
        chunks=4, ordered=(("created", "received_at"),),
    ),
    Table(
        "hubspot_companies", "hubspot", "companies", "CRM companies: every account plus prospects.",
        _cols(
            "company_id:bigint, account_id:bigint?, name:text, domain:text, industry:text, employee_count:int, "
            "lifecycle_stage:text, is_customer:bool, created_at:timestamp"
        ),
        "company_id", _fks("account_id->accounts.account_id"),
    ),
    Table(
        "hubspot_contacts", "hubspot", "contacts", "CRM contacts at companies with a lead score.",
        _cols(
            "contact_id:bigint, company_id:bigint, email:text, first_name:text, last_name:text, job_title:text?, "
            "lifecycle_stage:text, lead_score:int, created_at:timestamp"
        ),
        "contact_id", _fks("company_id->hubspot_companies.company_id"), _rules("created_at>=company_id.created_at"),
    ),
    Table(
        "hubspot_deals", "hubspot", "deals", "Deals in the default pipeline; 25% of closed deals are won.",
        _cols(
            "deal_id:bigint, company_id:bigint, contact_id:bigint, deal_name:text, pipeline:text, deal_stage:text, "
            "amount_usd:double, is_closed:bool, is_won:bool, created_at:timestamp, close_date:timestamp?"
        ),
        "deal_id",
        _fks("company_id->hubspot_companies.company_id", "contact_id->hubspot_contacts.contact_id"),
        _rules("created_at>=company_id.created_at", "created_at>=contact_id.created_at"),
        ordered=(("created_at", "close_date"),),
    ),
    Table(
        "hubspot_engagements", "hubspot", "engagements", "Calls, e-mails, meetings, notes and tasks on deals.",
        _cols(
            "engagement_id:bigint, deal_id:bigint, contact_id:bigint, company_id:bigint, engagement_type:text, "
            "owner_id:int, occurred_at:timestamp, duration_minutes:int, engagement_source:text"
        ),
        "engagement_id",
        _fks(
            "deal_id->hubspot_deals.deal_id", "contact_id->hubspot_contacts.contact_id",
            "company_id->hubspot_companies.company_id",
        ),
        _rules("occurred_at>=deal_id.created_at"),
    ),
    Table(
        "hubspot_tickets", "hubspot", "tickets", "Support tickets; accounts with poor device uptime open more.",
        _cols(
            "ticket_id:bigint, company_id:bigint, account_id:bigint, subject:text, category:text, priority:text, "
            "pipeline_stage:text, created_at:timestamp, first_reply_at:timestamp, closed_at:timestamp?, archived:bool"
        ),
        "ticket_id",
        _fks("company_id->hubspot_companies.company_id", "account_id->accounts.account_id"),
        _rules("created_at>=account_id.created_at"),
        ordered=(("created_at", "first_reply_at"), ("created_at", "closed_at")),
    ),
    Table(
        "marketing_campaigns", "marketing", "campaigns", "Paid and e-mail campaigns (channel mix 40/30/20/10).",
        _cols(
            "campaign_id:bigint, campaign_name:text, channel:text, objective:text, start_date:date, end_date:date, "
            "daily_budget_usd:double, total_budget_usd:double"
        ),
        "campaign_id", ordered=(("start_date", "end_date"),),
    ),
    Table(
        "campaign_performance", "marketing", "campaign_performance", "Daily impressions, clicks, spend per campaign.",
        _cols(
            "performance_id:bigint, campaign_id:bigint, date:date, impressions:bigint, clicks:bigint, "
            "spend_usd:double, conversions:int"
        ),
        "performance_id", _fks("campaign_id->marketing_campaigns.campaign_id"), _rules("date>=campaign_id.start_date"),
    ),
    Table(
        "attribution_touchpoints", "marketing", "attribution_touchpoints",
        "Multi-touch journeys per contact; position-based weights sum to 1 per contact.",
        _cols(
            "touchpoint_id:bigint, contact_id:bigint, campaign_id:bigint, channel:text, touch_position:int, "
            "journey_length:int, touched_at:timestamp, attribution_weight:double"
        ),
        "touchpoint_id",
        _fks("contact_id->hubspot_contacts.contact_id", "campaign_id->marketing_campaigns.campaign_id"),
        _rules("touched_at>=contact_id.created_at"), chunks=4,
    ),
    Table(
        "marketing_qualified_leads", "marketing", "mqls", "Contacts that became marketing qualified leads.",
        _cols(
            "mql_id:bigint, contact_id:bigint, campaign_id:bigint, source_channel:text, lead_score:int, "
            "mql_at:timestamp, converted_to_sql:bool, sql_at:timestamp?"
        ),
        "mql_id",
        _fks("contact_id->hubspot_contacts.contact_id", "campaign_id->marketing_campaigns.campaign_id"),
        _rules("mql_at>=contact_id.created_at"), ordered=(("mql_at", "sql_at"),),
    ),
    Table(
        "ga_sessions", "google_analytics", "sessions", "Website sessions with source/medium and channel group.",
        _cols(
            "ga_session_id:bigint, client_id:text, campaign_id:bigint?, source:text, medium:text, channel_group:text, "
            "landing_page:text?, device_category:text, session_start:timestamp, pageviews:int, "
            "session_duration_seconds:int, bounced:bool, converted:bool"
        ),
        "ga_session_id", _fks("campaign_id->marketing_campaigns.campaign_id"), chunks=4,
    ),
    Table(
        "user_sessions", "app", "user_sessions", "App log-in sessions of users.",
        _cols(
            "session_id:bigint, user_id:bigint, account_id:bigint, started_at:timestamp, ended_at:timestamp, "
            "duration_seconds:int, device_type:text, ip_address:text, state:text, city:text"
        ),
        "session_id",
        _fks("user_id->users.user_id", "account_id->accounts.account_id"),
        _rules("started_at>=user_id.created_at"), chunks=10, ordered=(("started_at", "ended_at"),),
    ),
    Table(
        "page_views", "app", "page_views", "Pages viewed inside app sessions.",
        _cols(
            "page_view_id:bigint, session_id:bigint, user_id:bigint, page_path:text, viewed_at:timestamp, "
            "time_on_page_seconds:int, is_exit:bool"
        ),
        "page_view_id",
        _fks("session_id->user_sessions.session_id", "user_id->users.user_id"),
        _rules("viewed_at>=session_id.started_at"), chunks=10,
    ),
    Table(
        "feature_usage", "app", "feature_usage",
        "Feature events inside app sessions: features released over the years, adopted per account, gated by tier.",
        _cols(
            "feature_event_id:bigint, session_id:bigint, user_id:bigint, account_id:bigint, feature_name:text, "
            "feature_category:text, used_at:timestamp, success:bool, error_code:text?"
        ),
        "feature_event_id",
        _fks("session_id->user_sessions.session_id", "user_id->users.user_id", "account_id->accounts.account_id"),
        _rules("used_at>=session_id.started_at"), chunks=10,
    ),
    Table(
        "tap_events", "iot", "tap_events", "Every pour measured by a tap device: product, volume, temperature.",
        _cols(
            "tap_event_id:bigint, device_id:bigint, location_id:bigint, account_id:bigint, poured_at:timestamp, "
            "product_type:text, volume_ml:real, temperature_c:real, duration_ms:int"
        ),
        "tap_event_id",
        _fks(
            "device_id->devices.device_id", "location_id->locations.location_id", "account_id->accounts.account_id"
        ),
        _rules("poured_at>=device_id.installed_at"), chunks=40,
    ),
    Table(
        "device_health", "iot", "device_health", "Daily uptime, errors and temperature per device over its last 30 days (the outages of the taps).",
        _cols(
            "health_id:bigint, device_id:bigint, recorded_at:timestamp, uptime_pct:double, error_count:int, "
            "avg_temperature_c:real?, needs_maintenance:bool, maintenance_performed:bool"
        ),
        "health_id", _fks("device_id->devices.device_id"), _rules("recorded_at>=device_id.installed_at"), chunks=4,
    ),
)  # fmt: skip

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in TABLES)
SOURCES: tuple[str, ...] = tuple(dict.fromkeys(t.source for t in TABLES))


def table(name: str) -> Table:
    """Return the table called ``name``; raise KeyError naming the valid tables."""
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown warehouse table {name!r}; valid: {', '.join(TABLE_NAMES)}") from None


def parents(name: str) -> list[str]:
    """Return the tables ``name`` has foreign keys to (deduplicated, schema order)."""
    wanted = {fk.parent for fk in table(name).foreign_keys if fk.parent != name}
    return [t for t in TABLE_NAMES if t in wanted]


def conform(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """Return ``frame`` with exactly the schema's columns, order and types; raise if a column is missing."""
    spec = table(name)
    missing = [c for c in spec.column_names if c not in frame.columns]
    extra = [c for c in frame.columns if c not in spec.column_names]
    if missing or extra:
        raise ValueError(
            f"{name}: generated columns differ from the schema (missing {missing}, extra {extra})"
        )
    exprs = []
    for c in spec.columns:
        keep = c.type == "text" and isinstance(frame.schema[c.name], pl.Categorical | pl.Enum)
        exprs.append(pl.col(c.name) if keep else pl.col(c.name).cast(TYPES[c.type][0]))
    return frame.select(exprs)
