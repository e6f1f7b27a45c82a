"""The generator of every raw table, one module per source system, listed in one explicit registry.

``GENERATORS[table]`` builds a table from the environment's ``Warehouse``: ``build(wh)`` for a table
generated whole, ``build(wh, k)`` for chunk ``k`` of a table split into chunks (``schema.Table.chunks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from simulation_assets.core.warehouse.generators import app, ga, hubspot, iot, marketing, stripe, usage


@dataclass(frozen=True)
class TableGenerator:
    """How one table is built: ``build(wh)`` whole, or ``build(wh, k)`` per chunk when ``chunked``."""

    build: Callable[..., pl.DataFrame]
    chunked: bool = False


GENERATORS: dict[str, TableGenerator] = {
    "accounts": TableGenerator(app.accounts),
    "locations": TableGenerator(app.locations),
    "users": TableGenerator(app.users),
    "devices": TableGenerator(app.devices),
    "subscriptions": TableGenerator(app.subscriptions),
    "stripe_customers": TableGenerator(stripe.customers),
    "stripe_prices": TableGenerator(stripe.prices),
    "stripe_subscriptions": TableGenerator(stripe.subscriptions),
    "stripe_subscription_items": TableGenerator(stripe.subscription_items),
    "stripe_invoices": TableGenerator(stripe.invoices),
    "stripe_charges": TableGenerator(stripe.charges),
    "stripe_events": TableGenerator(stripe.events, chunked=True),
    "hubspot_companies": TableGenerator(hubspot.companies),
    "hubspot_contacts": TableGenerator(hubspot.contacts),
    "hubspot_deals": TableGenerator(hubspot.deals),
    "hubspot_engagements": TableGenerator(hubspot.engagements),
    "hubspot_tickets": TableGenerator(hubspot.tickets),
    "marketing_campaigns": TableGenerator(marketing.campaigns),
    "campaign_performance": TableGenerator(marketing.campaign_performance),
    "attribution_touchpoints": TableGenerator(marketing.attribution_touchpoints, chunked=True),
    "marketing_qualified_leads": TableGenerator(marketing.marketing_qualified_leads),
    "ga_sessions": TableGenerator(ga.sessions, chunked=True),
    "user_sessions": TableGenerator(usage.user_sessions, chunked=True),
    "page_views": TableGenerator(usage.page_views, chunked=True),
    "feature_usage": TableGenerator(usage.feature_usage, chunked=True),
    "tap_events": TableGenerator(iot.tap_events, chunked=True),
    "device_health": TableGenerator(iot.device_health, chunked=True),
}
