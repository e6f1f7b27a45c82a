"""One environment's synthetic warehouse: every raw table, whole or chunk by chunk, from one seed.

``Warehouse(seed, env).chunk(table, k)`` returns chunk ``k`` of a table as a polars frame
conforming to ``schema``. The tables themselves are built by the per-source modules under
``generators/`` (listed in ``generators.GENERATORS``); the opt-in dirt profile is applied to them afterwards
(``dirt.py``). Integer primary keys are ``row index + 1``
(Stripe ids add a prefix), so a foreign key to a table is arithmetic on its row index. Small
parent tables are generated whole and kept in memory; big tables (tap events, sessions, page
views, ...) are split into a fixed number of chunks. Every table and chunk draws from its own
stream ``(seed, "warehouse", env, table, chunk, part)``, so chunks come out the same in any order
or process.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import polars as pl

from simulation_assets.core.rng import stream
from simulation_assets.core.warehouse import dirt, geography, schema
from simulation_assets.core.warehouse.config import WarehouseConfig, row_counts
from simulation_assets.core.warehouse.generators import (
    GENERATORS,
    acquisition,
    app,
    health,
    hubspot,
    iot,
    marketing,
    stripe,
    usage,
)
from simulation_assets.core.warehouse.sampling import chunk_bounds, epoch_seconds


class Warehouse:
    """Generator of one environment's tables for one seed."""

    def __init__(self, seed: int, env: str, config: WarehouseConfig | None = None) -> None:
        self.seed = int(seed)
        self.env = env
        self.cfg = config or WarehouseConfig()
        self.rows = row_counts(env, self.cfg)
        self.history_start = epoch_seconds(self.cfg.window.start)  # epoch seconds
        self.history_end = epoch_seconds(self.cfg.window.end)
        self._tables: dict[str, pl.DataFrame] = {}
        self._sessions: tuple[int, dict[str, np.ndarray]] | None = None  # the last session chunk built

    # ----------------------------------------------------------------- plumbing
    def rng(self, table: str, chunk: int = 0, part: str = "main") -> np.random.Generator:
        """Return the random stream of ``table``'s chunk ``chunk`` (``part`` names a separate stream)."""
        return stream(self.seed, "warehouse", self.env, table, chunk, part)

    def chunk_rows(self, table: str, k: int) -> tuple[int, int]:
        """Return the [start, stop) global row range of chunk ``k``."""
        n = schema.table(table).chunks
        if not 0 <= k < n:
            raise ValueError(f"{table} has chunks 0..{n - 1}, got {k}")
        return chunk_bounds(self.rows[table], n, k)

    def chunk(self, table: str, k: int = 0) -> pl.DataFrame:
        """Return chunk ``k`` of ``table`` with the schema's columns and types."""
        spec = schema.table(table)
        if spec.chunks == 1:
            if k != 0:
                raise ValueError(f"{table} is not chunked; only chunk 0 exists")
            return self.whole(table)
        start, _ = self.chunk_rows(table, k)
        return schema.conform(
            dirt.apply(self.cfg, table, GENERATORS[table].build(self, k), start, self.rows[table]), table
        )

    def whole(self, table: str) -> pl.DataFrame:
        """Return a whole table (chunked tables are concatenated: use for small environments only)."""
        if table not in self._tables:
            spec = schema.table(table)
            if spec.chunks == 1:
                frame = schema.conform(
                    dirt.apply(self.cfg, table, GENERATORS[table].build(self), 0, self.rows[table]), table
                )
            else:
                frame = pl.concat([self.chunk(table, k) for k in range(spec.chunks)])
            self._tables[table] = frame
        return self._tables[table]

    def sessions(self, k: int) -> dict[str, np.ndarray]:
        """Return the arrays of user-session chunk ``k``, shared by that chunk of page views and feature usage."""
        if self._sessions is None or self._sessions[0] != k:
            self._sessions = (k, usage.session_arrays(self, k))  # keep one chunk's sessions at a time
        return self._sessions[1]

    # -------------------------------------------- latent traits shared across sources
    @cached_property
    def account_span(self) -> tuple[np.ndarray, np.ndarray]:
        """(created, active end) epoch seconds of every account."""
        return app.account_span(self)

    @cached_property
    def tier_codes(self) -> np.ndarray:
        """Every account's tier as an index into ``TIER_ORDER``."""
        return app.tier_codes(self)

    @cached_property
    def size_weight(self) -> np.ndarray:
        """Every account's relative size (drives locations, users, devices, pours)."""
        return app.size_weight(self)

    @cached_property
    def subscription_plan(self) -> dict[str, np.ndarray]:
        """Every account's subscription timeline."""
        return app.subscription_plan(self)

    @cached_property
    def stripe_periods(self) -> dict[str, np.ndarray]:
        """Billing periods of every Stripe subscription."""
        return stripe.periods(self)

    @cached_property
    def invoice_plan(self) -> dict[str, np.ndarray]:
        """Every invoice's subscription, period, amount and payment."""
        return stripe.invoice_plan(self)

    @cached_property
    def contact_layout(self) -> tuple[np.ndarray, np.ndarray]:
        """Contacts per company and each company's first contact."""
        return hubspot.contact_layout(self)

    @cached_property
    def campaign_layout(self) -> dict[str, np.ndarray]:
        """Each campaign's days and first day."""
        return marketing.campaign_layout(self)

    @cached_property
    def daily_spend(self) -> np.ndarray:
        """The total marketing spend of every day of the window (USD)."""
        return marketing.daily_spend(self)

    @cached_property
    def journey_layout(self) -> tuple[np.ndarray, np.ndarray]:
        """Touchpoints per contact and each contact's first touchpoint."""
        return marketing.journey_layout(self)

    @cached_property
    def cities(self) -> geography.Cities:
        """The cities (and IP blocks) of the configured states."""
        return geography.Cities(list(self.cfg.locations.states))

    @cached_property
    def account_city(self) -> np.ndarray:
        """Every account's billing city (index into ``cities``)."""
        return app.account_cities(self, self.whole("accounts")["billing_state"])

    @cached_property
    def user_city(self) -> np.ndarray:
        """Every user's city (index into ``cities``): the city of the venue they work at."""
        table = self.whole("users")
        return self.cities.index_of(table["state"], table["city"])

    @cached_property
    def funnel_channel_shares(self) -> np.ndarray:
        """Each month's share of the marketing spend by channel (months x channels)."""
        return acquisition.channel_month_shares(self)

    @cached_property
    def funnel_accounts(self) -> dict[str, np.ndarray]:
        """Every account traced back through the acquisition funnel (see generators/acquisition.py)."""
        return acquisition.account_plan(self)

    @cached_property
    def funnel_contacts(self) -> dict[str, np.ndarray]:
        """Every contact's journey, the MQLs and the deals of the acquisition funnel."""
        return acquisition.contact_plan(self)

    @cached_property
    def app_calendar(self) -> dict[str, np.ndarray]:
        """The calendar the app sessions follow (damped), cumulative by day."""
        return usage.app_calendar(self)

    @cached_property
    def user_weights(self) -> dict[str, np.ndarray]:
        """Each user's share of the app sessions, life span and account."""
        return usage.user_weights(self)

    @cached_property
    def user_roles(self) -> np.ndarray:
        """Every user's role as an index into ``users.roles``."""
        codes = {name: i for i, name in enumerate(self.cfg.users.roles)}
        return self.whole("users")["role"].replace_strict(codes, return_dtype=pl.Int64).to_numpy()

    @cached_property
    def page_graph(self) -> dict[str, np.ndarray]:
        """The cumulative entry and transition tables of the page graph, per role."""
        return usage.page_graph(self)

    @cached_property
    def feature_adoption(self) -> np.ndarray:
        """When every account adopts every feature (accounts x features, epoch seconds; inf = never)."""
        return usage.feature_adoption(self)

    @cached_property
    def feature_adoption_flat(self) -> np.ndarray:
        """``feature_adoption`` flattened (account x features + feature), for one-index gathers."""
        return np.ascontiguousarray(self.feature_adoption).ravel()

    @cached_property
    def feature_tables(self) -> np.ndarray:
        """Per tier, 65,536 quantiles of the feature mix among the features the tier allows."""
        return usage.feature_tables(self)

    @cached_property
    def site_quality(self) -> np.ndarray:
        """Every account's site quality (standard normal; low means devices fail more often)."""
        return -self.rng("accounts", 0, "site").standard_normal(self.rows["accounts"])

    @cached_property
    def health_base(self) -> np.ndarray:
        """The tier-free part of every account's monthly health (accounts x months)."""
        return health.base_health(self)

    @cached_property
    def account_health(self) -> np.ndarray:
        """Every account's health in every month of the window (accounts x months, see generators/health.py)."""
        return health.with_tiers(self, self.health_base, list(app.TIER_ORDER), self.tier_codes)

    @cached_property
    def life_health(self) -> np.ndarray:
        """Every account's mean health over its life."""
        created, end = self.account_span
        return health.life_mean(self, self.account_health, created, end)

    @cached_property
    def tap_intensity(self) -> np.ndarray:
        """Every account's relative pours per device (healthier accounts pour more)."""
        return np.exp(self.cfg.health.tap_sensitivity * self.life_health)

    @cached_property
    def device_profile(self) -> dict[str, np.ndarray]:
        """Per-device latent traits (life, volume, warmth, failures)."""
        return iot.device_profile(self)

    @cached_property
    def account_uptime(self) -> np.ndarray:
        """Mean device uptime fraction of every account."""
        return iot.account_uptime(self)

    @cached_property
    def tap_tables(self) -> dict[str, np.ndarray]:
        """Lookup tables of the tap-event sampler."""
        return iot.tap_lookup_tables(self)
