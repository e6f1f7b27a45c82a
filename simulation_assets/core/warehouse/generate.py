"""Vectorized generators for every raw warehouse table.

``Warehouse(seed, env).chunk(table, k)`` returns chunk ``k`` of a table as a
polars frame conforming to ``schema``. Integer primary keys are ``row index + 1``
(Stripe ids add a prefix), so a foreign key to a table is arithmetic on its row
index. Small parent tables are generated whole and kept in memory; big tables
(tap events, sessions, page views, ...) are split into a fixed number of chunks.
Every table and chunk draws from its own stream ``(seed, "warehouse", env,
table, chunk, part)``, so chunks come out the same in any order or process.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.rng import stream
from simulation_assets.core.warehouse import schema
from simulation_assets.core.warehouse.config import WarehouseConfig, row_counts
from simulation_assets.core.warehouse.sampling import (
    DAY,
    allocate,
    apportion,
    between,
    categorical,
    choice,
    chunk_bounds,
    dates,
    epoch_seconds,
    exact_choice,
    growth_times,
    labels,
    prefix_ids,
    ts,
    ts_nullable,
)

HOUR = 3_600
MONTH = 2_629_746  # average Gregorian month in seconds
NULL_TS = np.iinfo(np.int64).min

FIRST_NAMES = np.array(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph "
    "Jessica Thomas Sarah Carlos Karen Daniel Lisa Matthew Nancy Anthony Betty Mark Sandra Luis Ashley Steven "
    "Kimberly Paul Emily Andrew Donna Joshua Michelle Kevin Maria".split()
)
LAST_NAMES = np.array(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores".split()
)
NAME_WORDS = np.array(
    "Copper Oak Harbor Golden Rusty Velvet Iron Blue Silver Crown Lucky Old Red Summit River Maple Stone "
    "Anchor Union Liberty Cedar Fox Brick Lantern Hollow Northern Pearl Wild Eagle Barrel".split()
)
NAME_NOUNS = {
    "Restaurant": np.array("Kitchen Table Bistro Grill Eatery Diner Trattoria Smokehouse".split()),
    "Bar": np.array("Tavern Taproom Saloon Pub Alehouse Lounge Brewhouse Cellar".split()),
    "Hotel": np.array("Hotel Inn Lodge Suites Resort House".split()),
    "Other": np.array("Stadium Arena Club Market Hall Theater".split()),
}
STREETS = np.array(
    "Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Sunset Lincoln Jackson Bay".split()
)
JOB_TITLES = {"Owner": 0.2, "General Manager": 0.25, "Bar Manager": 0.2, "Operations Director": 0.1,
              "Beverage Director": 0.1, "Finance Manager": 0.1, "IT Manager": 0.05}  # fmt: skip
PERMISSIONS = {
    "admin": '{"billing": true, "users": true, "devices": true, "reports": true}',
    "manager": '{"billing": false, "users": true, "devices": true, "reports": true}',
    "staff": '{"billing": false, "users": false, "devices": false, "reports": true}',
}
STATE_ZIP_PREFIX = {
    "CA": 90, "TX": 75, "FL": 32, "NY": 10, "IL": 60, "PA": 19, "OH": 43, "GA": 30, "NC": 27, "MI": 48,
    "NJ": 7, "VA": 22, "WA": 98, "AZ": 85, "MA": 2, "TN": 37, "CO": 80, "NV": 89, "OR": 97, "LA": 70,
}  # fmt: skip
CHANNEL_OF_SOURCE = {"google/cpc": "google_ads", "facebook/paid": "meta", "linkedin/paid": "linkedin",
                     "newsletter/email": "email"}  # fmt: skip
CHANNEL_GROUP = {"organic": "Organic Search", "(none)": "Direct", "cpc": "Paid Search", "paid": "Paid Social",
                 "email": "Email", "referral": "Referral"}  # fmt: skip
TIER_ORDER = ("Basic", "Pro", "Enterprise")
EVENT_TYPES = (
    "customer.created", "customer.updated", "customer.subscription.created", "customer.subscription.updated",
    "customer.subscription.deleted", "invoice.created", "invoice.finalized", "invoice.paid",
    "invoice.payment_failed", "charge.succeeded",
)  # fmt: skip


def _words(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    return pool[rng.integers(0, len(pool), n)]


def _str(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype(str), dtype=pl.String)


def _cat(*parts: pl.Series | str) -> pl.Series:
    """Concatenate string series and literals element-wise."""
    frame = pl.DataFrame({f"p{i}": p for i, p in enumerate(parts) if isinstance(p, pl.Series)})
    exprs = [
        pl.col(f"p{i}").cast(pl.String) if isinstance(p, pl.Series) else pl.lit(p)
        for i, p in enumerate(parts)
    ]
    return frame.select(pl.concat_str(exprs).alias("s"))["s"]


def _local_index(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (parent index, position within parent) for rows laid out parent by parent."""
    parent = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return parent, np.arange(len(parent)) - starts[parent]


class Warehouse:
    """Generator of one environment's tables for one seed."""

    def __init__(self, seed: int, env: str, config: WarehouseConfig | None = None) -> None:
        self.seed = int(seed)
        self.env = env
        self.cfg = config or WarehouseConfig()
        self.rows = row_counts(env, self.cfg)
        self.t0 = epoch_seconds(self.cfg.window.start)
        self.t1 = epoch_seconds(self.cfg.window.end)
        self._cache: dict[str, object] = {}

    # ----------------------------------------------------------------- plumbing
    def rng(self, table: str, chunk: int = 0, part: str = "main") -> np.random.Generator:
        return stream(self.seed, "warehouse", self.env, table, chunk, part)

    def chunks(self, table: str) -> int:
        return schema.table(table).chunks

    def chunk_rows(self, table: str, k: int) -> tuple[int, int]:
        """Return the [start, stop) global row range of chunk ``k``."""
        n = self.chunks(table)
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
        frame = getattr(self, f"_gen_{table}")(k)
        return schema.conform(frame, table)

    def whole(self, table: str) -> pl.DataFrame:
        """Return a whole table (chunked tables are concatenated: use for small environments only)."""
        key = f"table:{table}"
        if key not in self._cache:
            spec = schema.table(table)
            if spec.chunks == 1:
                frame = schema.conform(getattr(self, f"_gen_{table}")(), table)
            else:
                frame = pl.concat([self.chunk(table, k) for k in range(spec.chunks)])
            self._cache[key] = frame
        return self._cache[key]  # type: ignore[return-value]

    def _memo(self, key: str, build):  # noqa: ANN001, ANN202
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    @staticmethod
    def _sec(series: pl.Series) -> np.ndarray:
        """Return a datetime/date series as int64 epoch seconds (nulls -> NULL_TS)."""
        if series.dtype == pl.Date:
            return series.cast(pl.Int32).cast(pl.Int64).fill_null(NULL_TS // DAY).to_numpy() * DAY
        return (series.cast(pl.Datetime("us")).dt.epoch("s")).fill_null(NULL_TS).to_numpy()

    def account_span(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (created, active end) epoch seconds of every account (end = churn or window end)."""

        def build() -> tuple[np.ndarray, np.ndarray]:
            acc = self.whole("accounts")
            created = self._sec(acc["created_at"])
            churned = self._sec(acc["churned_at"])
            return created, np.where(churned == NULL_TS, self.t1, churned)

        return self._memo("account_span", build)

    def tier_codes(self) -> np.ndarray:
        codes = {name: i for i, name in enumerate(TIER_ORDER)}
        return self._memo(
            "tier_codes",
            lambda: self.whole("accounts")["tier"].replace_strict(codes, return_dtype=pl.Int64).to_numpy(),
        )

    # ------------------------------------------------------------------ app core
    def _gen_accounts(self) -> pl.DataFrame:
        c, n, rng = self.cfg.accounts, self.rows["accounts"], self.rng("accounts")
        w = self.cfg.window
        industry = exact_choice(rng, n, c.industries)
        tier = exact_choice(rng, n, c.tiers)
        tiers = list(c.tiers)
        lo = np.array([c.mrr_usd[t][0] for t in tiers])[tier]
        hi = np.array([c.mrr_usd[t][1] for t in tiers])[tier]
        mrr = np.round(lo + rng.random(n) * (hi - lo), 2)
        elo = np.array([c.employees[t][0] for t in tiers])[tier]
        ehi = np.array([c.employees[t][1] for t in tiers])[tier]
        employees = np.round(np.exp(np.log(elo) + rng.random(n) * (np.log(ehi) - np.log(elo)))).astype(
            np.int32
        )
        latest = self.t1 - w.min_tenure_days * DAY
        created = np.sort(growth_times(rng, n, self.t0, latest, w.account_yoy_growth))
        hazard = -np.log1p(-self.cfg.subscriptions.annual_churn) / (365.25 * DAY)
        churn_at = created + w.min_tenure_days * DAY + rng.exponential(1.0 / hazard, n).astype(np.int64)
        churned = churn_at < self.t1
        ids = np.arange(1, n + 1)
        industries = list(c.industries)
        noun = np.empty(n, dtype=object)
        for i, name in enumerate(industries):
            mask = industry == i
            noun[mask] = _words(rng, NAME_NOUNS.get(name, NAME_NOUNS["Other"]), int(mask.sum()))
        word = _words(rng, NAME_WORDS, n)
        name = _cat(_str(word), " ", _str(noun.astype(str)))
        slug = name.str.to_lowercase().str.replace_all(" ", "")
        domain = _cat(slug, pl.Series(ids), ".example.com")
        state = choice(rng, n, self.cfg.locations.states)
        return pl.DataFrame(
            {
                "account_id": ids,
                "account_name": name,
                "industry": labels(industry, industries),
                "tier": labels(tier, tiers),
                "mrr_usd": mrr,
                "employee_count": employees,
                "domain": domain,
                "billing_state": labels(state, self.cfg.locations.states),
                "status": np.where(churned, "churned", "active"),
                "created_at": ts(created),
                "churned_at": ts_nullable(churn_at, churned),
            }
        )

    def _size_weight(self) -> np.ndarray:
        acc = self.whole("accounts")
        return acc["tier"].replace_strict(self.cfg.accounts.size_weight, return_dtype=pl.Float64).to_numpy()

    def _gen_locations(self) -> pl.DataFrame:
        c, n, rng = self.cfg.locations, self.rows["locations"], self.rng("locations")
        lo, hi = c.per_account
        counts = allocate(rng, n, self._size_weight(), lo, hi)
        account, _ = _local_index(counts)
        a, b = self.account_span()
        opened = between(rng, a[account], a[account] + (b[account] - a[account]) // 5, skew=3.0)
        kind = exact_choice(rng, n, c.types)
        acc = self.whole("accounts")
        state = acc["billing_state"].to_numpy()[account]
        keep_home = rng.random(n) < 0.7
        other = labels(choice(rng, n, c.states), c.states).to_numpy()
        state = np.where(keep_home, state, other)
        prefix = pl.Series(state, dtype=pl.String).replace_strict(
            STATE_ZIP_PREFIX, default=50, return_dtype=pl.Int64
        )
        zips = prefix.to_numpy() * 1000 + rng.integers(0, 1000, n)
        number = rng.integers(1, 9999, n)
        street = _words(rng, STREETS, n)
        type_names = labels(kind, c.types)
        return pl.DataFrame(
            {
                "location_id": np.arange(1, n + 1),
                "account_id": account + 1,
                "location_name": _cat(acc["account_name"].gather(account), " ", type_names),
                "location_type": type_names,
                "state": pl.Series(state, dtype=pl.String),
                "zip_code": pl.Series(zips).cast(pl.String).str.zfill(5),
                "address": _cat(pl.Series(number), " ", _str(street), " St"),
                "opened_at": ts(opened),
            }
        )

    def _gen_users(self) -> pl.DataFrame:
        c, n, rng = self.cfg.users, self.rows["users"], self.rng("users")
        lo, hi = c.per_account
        counts = allocate(rng, n, self._size_weight(), lo, hi)
        account, position = _local_index(counts)
        a, b = self.account_span()
        created = between(rng, a[account], a[account] + (b[account] - a[account]) // 2, skew=2.0)
        role = exact_choice(rng, n, c.roles)
        gap_days = np.array([1.0, 2.0, 6.0])[role]  # admins log in most often
        last = b[account] - (rng.exponential(1.0, n) * gap_days[:n] * DAY).astype(np.int64)
        last = np.maximum(last, created + HOUR)
        first = _words(rng, FIRST_NAMES, n)
        lastn = _words(rng, LAST_NAMES, n)
        acc = self.whole("accounts")
        roles = labels(role, c.roles)
        email = _cat(
            _str(first).str.to_lowercase(), ".", _str(lastn).str.to_lowercase(), pl.Series(position + 1),
            "@", acc["domain"].gather(account),
        )  # fmt: skip
        return pl.DataFrame(
            {
                "user_id": np.arange(1, n + 1),
                "account_id": account + 1,
                "email": email,
                "first_name": _str(first),
                "last_name": _str(lastn),
                "role": roles,
                "permissions": roles.replace_strict(PERMISSIONS, return_dtype=pl.String),
                "created_at": ts(created),
                "last_login_at": ts(last),
            }
        )

    def _gen_devices(self) -> pl.DataFrame:
        c, n, rng = self.cfg.devices, self.rows["devices"], self.rng("devices")
        loc = self.whole("locations")
        loc_account = loc["account_id"].to_numpy() - 1
        lo, hi = c.per_location
        counts = allocate(rng, n, self._size_weight()[loc_account], lo, hi)
        location, _ = _local_index(counts)
        account = loc_account[location]
        _, b = self.account_span()
        opened = self._sec(loc["opened_at"])[location]
        installed = between(rng, opened, opened + (b[account] - opened) // 5, skew=2.0)
        status = exact_choice(rng, n, c.status)
        end = b[account]
        lag = np.select(
            [status == 0, status == 1],
            [rng.random(n) * 300, DAY + rng.random(n) * 29 * DAY],
            rng.random(n) * 3 * DAY,
        ).astype(np.int64)
        seen = np.maximum(end - lag, installed + HOUR)
        ids = np.arange(1, n + 1)
        return pl.DataFrame(
            {
                "device_id": ids,
                "location_id": location + 1,
                "account_id": account + 1,
                "serial_number": _cat("TF-", pl.Series(ids).cast(pl.String).str.zfill(8)),
                "model": labels(choice(rng, n, c.models), c.models),
                "firmware_version": labels(choice(rng, n, c.firmware), c.firmware),
                "status": labels(status, c.status),
                "installed_at": ts(installed),
                "last_seen_at": ts(seen),
            }
        )

    def device_profile(self) -> dict[str, np.ndarray]:
        """Per-device latent traits shared by tap events, health rows and tickets (uptime, warmth, volume)."""

        def build() -> dict[str, np.ndarray]:
            dev = self.whole("devices")
            rng = self.rng("devices", 0, "profile")
            n = dev.height
            status = dev["status"].to_numpy()
            up = self.cfg.taps.uptime
            mean = np.select([status == s for s in up], [up[s][0] for s in up], 0.95)
            spread = np.select([status == s for s in up], [up[s][1] for s in up], 0.05)
            uptime = np.clip(mean + spread * rng.standard_normal(n), 0.3, 0.9999)
            warm = np.select([status == "maintenance", status == "offline"], [2.5, 1.0], 0.0)
            account = dev["account_id"].to_numpy() - 1
            size = np.sqrt(self._size_weight()[account])
            volume = size * np.exp(0.3 * rng.standard_normal(n)) * np.where(status == "maintenance", 0.6, 1.0)
            _, b = self.account_span()
            installed = self._sec(dev["installed_at"])
            return {
                "uptime": uptime,
                "temp_offset": (warm + 0.3 * rng.standard_normal(n)).astype(np.float32),
                "volume": volume,
                "installed": installed,
                "active_end": b[account],
                "account": account,
                "location": dev["location_id"].to_numpy() - 1,
            }

        return self._memo("device_profile", build)

    def _subscription_plan(self) -> dict[str, np.ndarray]:
        """Return the subscription timeline of every account (trials, win-backs, plan changes)."""

        def build() -> dict[str, np.ndarray]:
            s, rng = self.cfg.subscriptions, self.rng("subscriptions", 0, "plan")
            n, total = self.rows["accounts"], self.rows["subscriptions"]
            extra = total - n
            if extra < 0:
                raise ValueError("subscriptions must be at least the number of accounts")
            a, b = self.account_span()
            trial = np.zeros(n, dtype=bool)
            n_trial = round(s.trial_share * n)
            trial[rng.permutation(n)[:n_trial]] = True
            n_fail = min(round(n_trial * (1 - s.trial_conversion)), extra)
            fail = np.zeros(n, dtype=bool)
            fail[rng.permutation(np.flatnonzero(trial))[:n_fail]] = True
            n_change = extra - n_fail
            if n_change > n - n_fail:
                raise ValueError("too many subscriptions for one plan change per account")
            change = np.zeros(n, dtype=bool)
            change[rng.permutation(np.flatnonzero(~fail))[:n_change]] = True
            annual = np.zeros(n, dtype=bool)
            annual[rng.permutation(n)[: round(s.annual_billing_share * n)]] = True
            trial_end = a + s.trial_days * DAY
            winback = trial_end + ((7 + 53 * rng.random(n)) * DAY).astype(np.int64)
            change_at = a + ((0.2 + 0.6 * rng.random(n)) * (b - a)).astype(np.int64)
            upgrade = rng.random(n) < s.upgrade_share
            tier = self.tier_codes()
            prev_tier = np.where(upgrade, tier - 1, tier + 1)
            prev_tier = np.where(prev_tier < 0, 1, np.where(prev_tier > 2, 1, prev_tier))
            return {
                "trial": trial, "fail": fail, "change": change, "annual": annual, "trial_end": trial_end,
                "winback": winback, "change_at": change_at, "prev_tier": prev_tier, "tier": tier,
            }  # fmt: skip

        return self._memo("subscription_plan", build)

    def _gen_subscriptions(self) -> pl.DataFrame:
        p, rng = self._subscription_plan(), self.rng("subscriptions")
        acc = self.whole("accounts")
        n = acc.height
        a, b = self.account_span()
        churned = acc["churned_at"].is_not_null().to_numpy()
        second = np.flatnonzero(p["fail"] | p["change"])
        # first subscription of every account
        first_end = np.select([p["fail"], p["change"]], [p["trial_end"], p["change_at"]], b)
        first_tier = np.where(p["change"], p["prev_tier"], p["tier"])
        first_has_end = p["fail"] | p["change"] | churned
        first_status = np.where(p["fail"], "trial_expired", np.where(first_has_end, "canceled", "active"))
        mrr = acc["mrr_usd"].to_numpy()
        rngs = self.cfg.accounts.mrr_usd
        lo = np.array([rngs[t][0] for t in TIER_ORDER])
        hi = np.array([rngs[t][1] for t in TIER_ORDER])
        prev_mrr = np.round(lo[first_tier] + rng.random(n) * (hi[first_tier] - lo[first_tier]), 2)
        first_mrr = np.where(p["change"], prev_mrr, mrr)
        # second subscription (win-back after a lapsed trial, or a plan change)
        s_start = np.where(p["fail"][second], p["winback"][second], p["change_at"][second])
        s_status = np.where(churned[second], "canceled", "active")
        reason = np.where(p["fail"][second], "win_back", np.where(p["prev_tier"][second] < p["tier"][second],
                                                                   "upgrade", "downgrade"))  # fmt: skip
        tiers = np.array(TIER_ORDER)
        has_trial = np.concatenate([p["trial"], np.zeros(len(second), dtype=bool)])
        starts = np.concatenate([a, s_start])
        trial_end = np.concatenate([p["trial_end"], np.zeros(len(second), dtype=np.int64)])
        ends = np.concatenate([first_end, b[second]])
        has_end = np.concatenate([first_has_end, churned[second]])
        interval = np.where(p["annual"], "year", "month")
        return pl.DataFrame(
            {
                "subscription_id": np.arange(1, n + len(second) + 1),
                "account_id": np.concatenate([np.arange(1, n + 1), second + 1]),
                "plan_tier": np.concatenate([tiers[first_tier], tiers[p["tier"][second]]]),
                "billing_interval": np.concatenate([interval, interval[second]]),
                "status": np.concatenate([first_status, s_status]),
                "mrr_usd": np.concatenate([first_mrr, mrr[second]]),
                "change_reason": np.concatenate([np.full(n, "new"), reason]),
                "started_with_trial": has_trial,
                "trial_start": ts_nullable(starts, has_trial),
                "trial_end": ts_nullable(trial_end, has_trial),
                "started_at": ts(starts),
                "ended_at": ts_nullable(ends, has_end),
            }
        )

    # -------------------------------------------------------------------- stripe
    def _gen_stripe_customers(self) -> pl.DataFrame:
        acc, rng = self.whole("accounts"), self.rng("stripe_customers")
        n = acc.height
        ids = np.arange(1, n + 1)
        return pl.DataFrame(
            {
                "customer_id": prefix_ids("cus_", ids),
                "account_id": ids,
                "email": _cat("billing@", acc["domain"]),
                "name": acc["account_name"],
                "currency": np.full(n, "usd"),
                "delinquent": rng.random(n) < 0.02,
                "metadata": _cat('{"account_id": ', pl.Series(ids), "}"),
                "created": acc["created_at"],
            }
        )

    def _price_table(self) -> pl.DataFrame:
        s = self.cfg.subscriptions
        rows = []
        for kind, items in (("plan", s.plan_monthly_cents), ("addon", s.addon_monthly_cents)):
            for name, cents in items.items():
                for interval in ("month", "year"):
                    amount = cents if interval == "month" else round(cents * 12 * (1 - s.annual_discount))
                    rows.append(
                        {
                            "price_id": f"price_{name.lower()}_{interval}ly",
                            "product_id": f"prod_{name.lower()}",
                            "nickname": f"{name.replace('_', ' ').title()} ({interval}ly)",
                            "plan": name if kind == "plan" else f"addon:{name}",
                            "recurring_interval": interval,
                            "unit_amount": amount,
                        }
                    )
        return pl.DataFrame(rows)

    def _gen_stripe_prices(self) -> pl.DataFrame:
        prices = self._price_table()
        n = prices.height
        return prices.with_columns(
            currency=pl.lit("usd"), active=pl.lit(True), created=ts(np.full(n, self.t0 - 30 * DAY))
        )

    def _stripe_sub_periods(self) -> dict[str, np.ndarray]:
        """Billing anchor, period length and end of every Stripe subscription (= app subscription)."""

        def build() -> dict[str, np.ndarray]:
            sub = self.whole("subscriptions")
            started = self._sec(sub["started_at"])
            trial_end = self._sec(sub["trial_end"])
            ended = self._sec(sub["ended_at"])
            end = np.where(ended == NULL_TS, self.t1, ended)
            expired = sub["status"].to_numpy() == "trial_expired"
            paid_from = np.where(trial_end != NULL_TS, trial_end, started)
            period = np.where(sub["billing_interval"].to_numpy() == "year", 12 * MONTH, MONTH)
            periods = np.where(expired, 0, np.maximum(np.ceil((end - paid_from) / period), 0)).astype(
                np.int64
            )
            created = started + self.rng("stripe_subscriptions", 0, "lag").integers(0, 600, len(started))
            return {"paid_from": paid_from, "period": period, "periods": periods, "end": end,
                    "created": created, "account": sub["account_id"].to_numpy() - 1}  # fmt: skip

        return self._memo("stripe_periods", build)

    def _gen_stripe_subscriptions(self) -> pl.DataFrame:
        sub = self.whole("subscriptions")
        p = self._stripe_sub_periods()
        n = sub.height
        status = sub["status"].to_numpy()
        ref = np.maximum(p["end"] - 1, p["paid_from"])
        idx = np.maximum((ref - p["paid_from"]) // p["period"], 0)
        cps = np.where(
            status == "trial_expired", self._sec(sub["trial_start"]), p["paid_from"] + idx * p["period"]
        )
        cpe = np.where(status == "trial_expired", p["end"], cps + p["period"])
        ended = sub["ended_at"].is_not_null().to_numpy()
        ended_s = self._sec(sub["ended_at"])
        return pl.DataFrame(
            {
                "stripe_subscription_id": prefix_ids("sub_", np.arange(1, n + 1)),
                "customer_id": prefix_ids("cus_", p["account"] + 1),
                "subscription_id": sub["subscription_id"],
                "status": np.where(status == "trial_expired", "incomplete_expired", status),
                "billing_interval": sub["billing_interval"],
                "created": ts(p["created"]),
                "start_date": sub["started_at"],
                "trial_start": sub["trial_start"],
                "trial_end": sub["trial_end"],
                "current_period_start": ts(cps),
                "current_period_end": ts(cpe),
                "canceled_at": ts_nullable(ended_s - DAY, ended),
                "ended_at": sub["ended_at"],
            }
        )

    def _gen_stripe_subscription_items(self) -> pl.DataFrame:
        rng, n_items = self.rng("stripe_subscription_items"), self.rows["stripe_subscription_items"]
        sub = self.whole("subscriptions")
        p = self._stripe_sub_periods()
        weight = (
            sub["plan_tier"].replace_strict(self.cfg.accounts.size_weight, return_dtype=pl.Float64).to_numpy()
        )
        addons = list(self.cfg.subscriptions.addon_monthly_cents)
        counts = allocate(rng, n_items, weight, 1, 1 + len(addons))
        parent, pos = _local_index(counts)
        interval = sub["billing_interval"].to_numpy()[parent]
        plan = sub["plan_tier"].to_numpy()[parent]
        addon = np.array(addons + [""])[np.maximum(pos - 1, 0)]
        name = np.where(pos == 0, np.char.lower(plan.astype(str)), addon)
        price = _cat("price_", _str(name), "_", _str(interval), "ly")
        created = p["created"][parent] + np.where(
            pos == 0,
            0,
            (rng.random(len(parent)) * 0.3 * (p["end"][parent] - p["created"][parent])).astype(np.int64),
        )
        quantity = np.where(pos == 0, 1, 1 + rng.integers(0, 3, len(parent)))
        return pl.DataFrame(
            {
                "subscription_item_id": prefix_ids("si_", np.arange(1, len(parent) + 1)),
                "stripe_subscription_id": prefix_ids("sub_", parent + 1),
                "price_id": price,
                "quantity": quantity.astype(np.int32),
                "created": ts(created),
            }
        )

    def _invoice_core(self) -> dict[str, np.ndarray]:
        def build() -> dict[str, np.ndarray]:
            s, rng = self.cfg.subscriptions, self.rng("stripe_invoices")
            n_inv, n_paid = self.rows["stripe_invoices"], self.rows["stripe_charges"]
            if n_paid > n_inv:
                raise ValueError("stripe_charges cannot exceed stripe_invoices (one charge per paid invoice)")
            p = self._stripe_sub_periods()
            sub = self.whole("subscriptions")
            q = (
                apportion(n_inv, p["periods"].astype(float))
                if p["periods"].sum()
                else apportion(n_inv, np.ones(len(p["periods"])))
            )
            parent, j = _local_index(q)
            idx = np.maximum(p["periods"] - q, 0)[parent] + j
            manual = idx >= p["periods"][parent]
            span = np.maximum(p["end"] - p["paid_from"], DAY)[parent]
            m = len(parent)
            period_start = np.where(
                manual,
                p["paid_from"][parent] + (rng.random(m) * (span - DAY)).astype(np.int64),
                p["paid_from"][parent] + idx * p["period"][parent],
            )
            period_end = np.where(manual, period_start + DAY, period_start + p["period"][parent])
            created = np.minimum(period_start + 600 + rng.integers(0, 3000, m), self.t1 - 1)
            created = np.maximum(created, p["created"][parent])
            mrr = sub["mrr_usd"].to_numpy()[parent]
            annual = p["period"][parent] > MONTH
            amount = np.round(mrr * 100 * np.where(annual, 12 * (1 - s.annual_discount), 1.0)).astype(
                np.int64
            )
            amount = np.where(manual, np.round(amount * 0.2), amount).astype(np.int64)
            paid = np.zeros(m, dtype=bool)
            paid[rng.permutation(m)[:n_paid]] = True
            late = rng.random(m) < s.late_payment_share
            lag = np.where(late, (3 + 27 * rng.random(m)) * DAY, HOUR + rng.random(m) * 47 * HOUR).astype(
                np.int64
            )
            paid_at = np.maximum(np.minimum(created + lag, self.t1 - 1), created)
            return {"parent": parent, "idx": idx, "manual": manual, "period_start": period_start,
                    "period_end": period_end, "created": created, "amount": amount, "paid": paid,
                    "late": late, "paid_at": paid_at}  # fmt: skip

        return self._memo("invoice_core", build)

    def _gen_stripe_invoices(self) -> pl.DataFrame:
        v, rng = self._invoice_core(), self.rng("stripe_invoices", 0, "status")
        p = self._stripe_sub_periods()
        m = len(v["parent"])
        recent = v["created"] > self.t1 - 30 * DAY
        unpaid_status = np.where(recent, "open", np.where(rng.random(m) < 0.6, "uncollectible", "void"))
        status = np.where(v["paid"], "paid", unpaid_status)
        reason = np.where(
            v["manual"], "manual", np.where(v["idx"] == 0, "subscription_create", "subscription_cycle")
        )
        paid_amount = np.where(v["paid"], v["amount"], 0)
        attempts = np.where(v["paid"], np.where(v["late"], 2 + rng.integers(0, 3, m), 1), 4).astype(np.int32)
        ids = np.arange(1, m + 1)
        return pl.DataFrame(
            {
                "invoice_id": prefix_ids("in_", ids),
                "customer_id": prefix_ids("cus_", p["account"][v["parent"]] + 1),
                "stripe_subscription_id": prefix_ids("sub_", v["parent"] + 1),
                "number": _cat("INV-", pl.Series(ids).cast(pl.String).str.zfill(8)),
                "status": status,
                "billing_reason": reason,
                "amount_due": v["amount"],
                "amount_paid": paid_amount,
                "amount_remaining": v["amount"] - paid_amount,
                "currency": np.full(m, "usd"),
                "attempt_count": attempts,
                "period_start": ts(v["period_start"]),
                "period_end": ts(v["period_end"]),
                "created": ts(v["created"]),
                "due_date": ts(v["created"] + 7 * DAY),
                "paid_at": ts_nullable(v["paid_at"], v["paid"]),
            }
        )

    def _gen_stripe_charges(self) -> pl.DataFrame:
        v, rng = self._invoice_core(), self.rng("stripe_charges")
        p = self._stripe_sub_periods()
        inv = np.flatnonzero(v["paid"])
        n = len(inv)
        account = p["account"][v["parent"][inv]]
        methods = self.cfg.subscriptions.payment_methods
        method_of_account = choice(self.rng("stripe_charges", 0, "method"), self.rows["accounts"], methods)
        return pl.DataFrame(
            {
                "charge_id": prefix_ids("ch_", np.arange(1, n + 1)),
                "invoice_id": prefix_ids("in_", inv + 1),
                "customer_id": prefix_ids("cus_", account + 1),
                "amount": v["amount"][inv],
                "amount_refunded": np.zeros(n, dtype=np.int64),
                "currency": np.full(n, "usd"),
                "status": np.full(n, "succeeded"),
                "paid": np.ones(n, dtype=bool),
                "payment_method_type": labels(method_of_account[account], methods),
                "outcome_type": np.full(n, "authorized"),
                "created": ts(v["paid_at"][inv] + rng.integers(0, 2, n)),
            }
        )

    def _gen_stripe_events(self, k: int) -> pl.DataFrame:
        start, stop = self.chunk_rows("stripe_events", k)
        n, rng = stop - start, self.rng("stripe_events", k)
        acc_created, _ = self.account_span()
        p = self._stripe_sub_periods()
        v = self._invoice_core()
        paid_inv = np.flatnonzero(v["paid"])
        kind = choice(rng, n, [0.06, 0.08, 0.60, 0.26])  # customer, subscription, invoice, charge
        sub_step = rng.integers(0, 3, n)
        inv_step = rng.integers(0, 3, n)
        u = rng.random(n)
        event = np.zeros(n, dtype=np.int16)  # index into EVENT_TYPES
        obj_id = np.zeros(n, dtype=np.int64)
        customer = np.zeros(n, dtype=np.int64)
        created = np.zeros(n, dtype=np.int64)
        # customers
        m = kind == 0
        i = (u[m] * len(acc_created)).astype(np.int64)
        upd = sub_step[m] > 0
        event[m] = np.where(upd, 1, 0)
        obj_id[m], customer[m] = i, i
        created[m] = acc_created[i] + np.where(upd, (rng.random(int(m.sum())) * 30 * DAY).astype(np.int64), 0)
        # subscriptions
        m = kind == 1
        i = (u[m] * len(p["created"])).astype(np.int64)
        step = sub_step[m]
        has_end = p["end"][i] < self.t1
        step = np.where((step == 2) & ~has_end, 1, step)
        event[m] = 2 + step
        obj_id[m], customer[m] = i, p["account"][i]
        mid = p["created"][i] + ((p["end"][i] - p["created"][i]) * rng.random(int(m.sum()))).astype(np.int64)
        created[m] = np.select([step == 0, step == 1], [p["created"][i], mid], p["end"][i])
        # invoices
        m = kind == 2
        i = (u[m] * len(v["created"])).astype(np.int64)
        step = inv_step[m]
        paid = v["paid"][i]
        event[m] = 5 + np.where((step == 2) & ~paid, 3, step)
        obj_id[m], customer[m] = i, p["account"][v["parent"][i]]
        final = np.where(paid, v["paid_at"][i], v["created"][i] + DAY)
        created[m] = np.select([step == 0, step == 1], [v["created"][i], v["created"][i] + 60], final)
        # charges
        m = kind == 3
        i = (u[m] * max(len(paid_inv), 1)).astype(np.int64)
        inv = paid_inv[i] if len(paid_inv) else np.zeros(int(m.sum()), dtype=np.int64)
        event[m], obj_id[m] = 9, i
        customer[m] = p["account"][v["parent"][inv]]
        created[m] = v["paid_at"][inv]
        created = np.minimum(np.maximum(created, acc_created[customer]), self.t1 - 1)
        object_kind = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 3], dtype=np.int8)[event]
        object_prefix = labels(object_kind, ["cus_", "sub_", "in_", "ch_"])
        object_id = _cat(object_prefix, pl.Series(obj_id + 1).cast(pl.String).str.zfill(14))
        return pl.DataFrame(
            {
                "event_id": prefix_ids("evt_", np.arange(start + 1, stop + 1)),
                "type": labels(event, EVENT_TYPES),
                "object_type": labels(object_kind, ["customer", "subscription", "invoice", "charge"]),
                "object_id": object_id,
                "customer_id": prefix_ids("cus_", customer + 1),
                "created": ts(created),
                "api_version": np.full(n, "2024-06-20"),
                "livemode": np.zeros(n, dtype=bool),
            }
        )

    # ------------------------------------------------------------------- hubspot
    def _gen_hubspot_companies(self) -> pl.DataFrame:
        c, rng = self.cfg.crm, self.rng("hubspot_companies")
        acc = self.whole("accounts")
        n_acc, n = acc.height, self.rows["hubspot_companies"]
        if n < n_acc:
            raise ValueError("hubspot_companies must cover every account")
        prospects = n - n_acc
        a, _ = self.account_span()
        lead = (14 + rng.random(n_acc) * 166) * DAY
        cust_created = np.maximum(a - lead.astype(np.int64), self.t0 - 365 * DAY)
        p_created = growth_times(
            rng, prospects, self.t0, self.t1 - 60 * DAY, self.cfg.window.account_yoy_growth
        )
        industries = self.cfg.accounts.industries
        p_ind = labels(exact_choice(rng, prospects, industries), industries)
        p_emp = np.clip(np.round(np.exp(rng.normal(3.3, 1.0, prospects))), 5, 500).astype(np.int32)
        stages = {k: v for k, v in c.lifecycle_stages.items() if k != "customer"}
        tot = sum(stages.values())
        p_stage = labels(choice(rng, prospects, {k: v / tot for k, v in stages.items()}), stages)
        pid = np.arange(n_acc + 1, n + 1)
        p_name = _cat(
            _str(_words(rng, NAME_WORDS, prospects)), " ", _str(_words(rng, NAME_NOUNS["Bar"], prospects))
        )
        return pl.DataFrame(
            {
                "company_id": np.arange(1, n + 1),
                "account_id": pl.concat(
                    [acc["account_id"], pl.Series(np.full(prospects, None), dtype=pl.Int64)]
                ),
                "name": pl.concat([acc["account_name"], p_name]),
                "domain": pl.concat([acc["domain"], _cat("prospect", pl.Series(pid), ".example.com")]),
                "industry": pl.concat([acc["industry"], p_ind]),
                "employee_count": pl.concat([acc["employee_count"], pl.Series(p_emp)]),
                "lifecycle_stage": pl.concat([pl.Series(np.full(n_acc, "customer")), p_stage]),
                "is_customer": np.arange(n) < n_acc,
                "created_at": ts(np.concatenate([cust_created, p_created])),
            }
        )

    def _contact_layout(self) -> tuple[np.ndarray, np.ndarray]:
        def build() -> tuple[np.ndarray, np.ndarray]:
            comp = self.whole("hubspot_companies")
            n = self.rows["hubspot_contacts"]
            w = np.sqrt(comp["employee_count"].to_numpy().astype(float))
            high = max(2, 10 * -(-n // comp.height))
            counts = allocate(self.rng("hubspot_contacts", 0, "layout"), n, w, 1, high)
            return counts, np.cumsum(counts) - counts

        return self._memo("contact_layout", build)

    def _gen_hubspot_contacts(self) -> pl.DataFrame:
        c, rng = self.cfg.crm, self.rng("hubspot_contacts")
        comp = self.whole("hubspot_companies")
        counts, _ = self._contact_layout()
        company, _ = _local_index(counts)
        n = len(company)
        cc = self._sec(comp["created_at"])[company]
        created = between(rng, cc, cc + (self.t1 - 30 * DAY - cc) // 2, skew=2.0)
        is_cust = comp["is_customer"].to_numpy()[company]
        stage = np.where(
            is_cust, "customer", labels(choice(rng, n, c.lifecycle_stages), c.lifecycle_stages).to_numpy()
        )
        score_mean = pl.Series(stage).replace_strict(
            {"subscriber": 15, "lead": 30, "marketingqualifiedlead": 60, "salesqualifiedlead": 70,
             "opportunity": 75, "customer": 80, "evangelist": 85}, default=40, return_dtype=pl.Float64,
        ).to_numpy()  # fmt: skip
        score = np.clip(np.round(score_mean + 12 * rng.standard_normal(n)), 0, 100).astype(np.int32)
        first = _words(rng, FIRST_NAMES, n)
        last = _words(rng, LAST_NAMES, n)
        ids = np.arange(1, n + 1)
        email = _cat(_str(first).str.to_lowercase(), ".", _str(last).str.to_lowercase(), pl.Series(ids), "@",
                     comp["domain"].gather(company))  # fmt: skip
        return pl.DataFrame(
            {
                "contact_id": ids,
                "company_id": company + 1,
                "email": email,
                "first_name": _str(first),
                "last_name": _str(last),
                "job_title": labels(choice(rng, n, JOB_TITLES), JOB_TITLES),
                "lifecycle_stage": pl.Series(stage.astype(str)),
                "lead_score": score,
                "created_at": ts(created),
            }
        )

    def _gen_hubspot_deals(self) -> pl.DataFrame:
        c, rng, n = self.cfg.crm, self.rng("hubspot_deals"), self.rows["hubspot_deals"]
        comp = self.whole("hubspot_companies")
        contacts = self.whole("hubspot_contacts")
        counts, offsets = self._contact_layout()
        emp = comp["employee_count"].to_numpy().astype(float)
        w = np.sqrt(emp) * np.where(comp["is_customer"].to_numpy(), 2.0, 1.0)
        company = np.searchsorted(np.cumsum(w / w.sum()), rng.random(n), side="right").clip(
            0, comp.height - 1
        )
        contact = offsets[company] + (rng.random(n) * counts[company]).astype(np.int64)
        base = np.maximum(self._sec(comp["created_at"])[company], self._sec(contacts["created_at"])[contact])
        created = between(rng, base, base + (self.t1 - 2 * DAY - base) * 7 // 10)
        open_ = np.zeros(n, dtype=bool)
        open_[rng.permutation(n)[: round(c.open_share * n)]] = True
        closed = np.flatnonzero(~open_)
        won = np.zeros(n, dtype=bool)
        won[rng.permutation(closed)[: round(c.win_rate * len(closed))]] = True
        stage = np.where(won, "closedwon", "closedlost").astype(object)
        stage[open_] = labels(choice(rng, int(open_.sum()), c.open_stages), c.open_stages).to_numpy()
        duration = (np.exp(rng.normal(np.log(45), 0.6, n)) * DAY).astype(np.int64)
        close = np.minimum(created + duration, self.t1 - 1)
        amount = np.round(np.exp(rng.normal(np.log(emp[company] * 120.0), 0.5)), -1)
        return pl.DataFrame(
            {
                "deal_id": np.arange(1, n + 1),
                "company_id": company + 1,
                "contact_id": contact + 1,
                "deal_name": _cat(comp["name"].gather(company), " - annual plan"),
                "pipeline": np.full(n, "default"),
                "deal_stage": pl.Series(stage.astype(str)),
                "amount_usd": amount,
                "is_closed": ~open_,
                "is_won": won,
                "created_at": ts(created),
                "close_date": ts_nullable(close, ~open_),
            }
        )

    def _gen_hubspot_engagements(self) -> pl.DataFrame:
        c, rng, n = self.cfg.crm, self.rng("hubspot_engagements"), self.rows["hubspot_engagements"]
        deals = self.whole("hubspot_deals")
        stage_w = {"closedwon": 2.0, "closedlost": 1.0, "appointmentscheduled": 0.6, "qualifiedtobuy": 0.8,
                   "presentationscheduled": 1.0, "decisionmakerboughtin": 1.3, "contractsent": 1.6}  # fmt: skip
        w = deals["deal_stage"].replace_strict(stage_w, return_dtype=pl.Float64).to_numpy()
        counts = rng.multinomial(n, w / w.sum())
        deal, _ = _local_index(counts)
        created = self._sec(deals["created_at"])[deal]
        close = self._sec(deals["close_date"])[deal]
        end = np.where(close == NULL_TS, self.t1 - 1, close)
        when = between(rng, created, end)
        kind = choice(rng, n, c.engagement_types)
        minutes = np.select(
            [kind == 1, kind == 2], [5 + rng.integers(0, 26, n), 30 + rng.integers(0, 31, n)], 0
        )
        company = deals["company_id"].to_numpy()[deal]
        return pl.DataFrame(
            {
                "engagement_id": np.arange(1, n + 1),
                "deal_id": deal + 1,
                "contact_id": deals["contact_id"].to_numpy()[deal],
                "company_id": company,
                "engagement_type": labels(kind, c.engagement_types),
                "owner_id": (1 + company % 50).astype(np.int32),
                "occurred_at": ts(when),
                "duration_minutes": minutes.astype(np.int32),
            }
        )

    def account_uptime(self) -> np.ndarray:
        """Return the mean device uptime fraction of every account (1.0 for accounts without devices)."""
        prof = self.device_profile()
        n = self.rows["accounts"]
        total = np.bincount(prof["account"], weights=prof["uptime"], minlength=n)
        count = np.bincount(prof["account"], minlength=n)
        return np.where(count > 0, total / np.maximum(count, 1), 1.0)

    def _gen_hubspot_tickets(self) -> pl.DataFrame:
        c, rng, n = self.cfg.crm, self.rng("hubspot_tickets"), self.rows["hubspot_tickets"]
        prof = self.device_profile()
        devices = np.bincount(prof["account"], minlength=self.rows["accounts"])
        w = np.maximum(devices, 1) * (1 + c.ticket_uptime_sensitivity * (1 - self.account_uptime()) * 10)
        counts = rng.multinomial(n, w / w.sum())
        account, _ = _local_index(counts)
        a, b = self.account_span()
        created = between(rng, a[account], b[account] - DAY)
        reply = created + (rng.exponential(4.0, n) * HOUR).astype(np.int64) + 60
        closed = created < self.t1 - 14 * DAY
        closed &= rng.random(n) < 0.97
        close = created + (rng.exponential(2.0, n) * DAY).astype(np.int64) + HOUR
        close = np.maximum(close, reply)
        category = labels(choice(rng, n, c.ticket_categories), c.ticket_categories)
        stage = np.where(
            closed, "closed", np.where(rng.random(n) < 0.5, "waiting_on_us", "waiting_on_contact")
        )
        return pl.DataFrame(
            {
                "ticket_id": np.arange(1, n + 1),
                "company_id": account + 1,
                "account_id": account + 1,
                "subject": _cat(category.str.replace_all("_", " ").str.to_titlecase(), " request"),
                "category": category,
                "priority": labels(choice(rng, n, c.ticket_priorities), c.ticket_priorities),
                "pipeline_stage": stage,
                "created_at": ts(created),
                "first_reply_at": ts(reply),
                "closed_at": ts_nullable(close, closed),
            }
        )

    # ----------------------------------------------------------------- marketing
    def _campaign_layout(self) -> dict[str, np.ndarray]:
        def build() -> dict[str, np.ndarray]:
            rng = self.rng("marketing_campaigns", 0, "layout")
            n, rows = self.rows["marketing_campaigns"], self.rows["campaign_performance"]
            window_days = (self.t1 - self.t0) // DAY
            days = apportion(rows, 0.3 + 1.4 * rng.random(n))
            if days.max() > window_days:
                raise ValueError("campaign_performance rows exceed campaigns x window days")
            start_day = self.t0 // DAY + (rng.random(n) * (window_days - days + 1)).astype(np.int64)
            return {"days": days, "start_day": start_day, "offset": np.cumsum(days) - days}

        return self._memo("campaign_layout", build)

    def _gen_marketing_campaigns(self) -> pl.DataFrame:
        m, rng, n = self.cfg.marketing, self.rng("marketing_campaigns"), self.rows["marketing_campaigns"]
        lay = self._campaign_layout()
        channel = exact_choice(rng, n, m.channels)
        budget_mean = np.array([350.0, 250.0, 300.0, 60.0])[np.minimum(channel, 3)]
        daily = np.round(budget_mean * np.exp(0.4 * rng.standard_normal(n)), 2)
        objectives = np.array(["awareness", "lead_generation", "retargeting", "webinar"])
        objective = _words(rng, objectives, n)
        start = lay["start_day"] * DAY
        names = _cat(labels(channel, m.channels), " ", _str(objective), " ", dates(start).dt.strftime("%Y-%m"),
                     " #", pl.Series(np.arange(1, n + 1)))  # fmt: skip
        return pl.DataFrame(
            {
                "campaign_id": np.arange(1, n + 1),
                "campaign_name": names,
                "channel": labels(channel, m.channels),
                "objective": _str(objective),
                "start_date": dates(start),
                "end_date": dates(start + (lay["days"] - 1) * DAY),
                "daily_budget_usd": daily,
                "total_budget_usd": np.round(daily * lay["days"], 2),
            }
        )

    def _gen_campaign_performance(self) -> pl.DataFrame:
        m, rng = self.cfg.marketing, self.rng("campaign_performance")
        camp = self.whole("marketing_campaigns")
        lay = self._campaign_layout()
        campaign, offset = _local_index(lay["days"])
        n = len(campaign)
        day = lay["start_day"][campaign] + offset
        month = dates(day * DAY).dt.month().to_numpy()
        season = 1.0 + 0.15 * np.cos((month - 11) / 12 * 2 * np.pi)  # busier towards the holidays
        channel = camp["channel"].to_numpy()[campaign]
        ctr = pl.Series(channel).replace_strict(m.ctr, return_dtype=pl.Float64).to_numpy()
        cpc = pl.Series(channel).replace_strict(m.cpc_usd, return_dtype=pl.Float64).to_numpy()
        spend = camp["daily_budget_usd"].to_numpy()[campaign] * (0.75 + 0.3 * rng.random(n)) * season
        clicks = np.maximum(np.round(spend / (cpc * np.exp(0.2 * rng.standard_normal(n)))), 0).astype(
            np.int64
        )
        impressions = np.round(clicks / (ctr * np.exp(0.2 * rng.standard_normal(n)))).astype(np.int64)
        conversions = rng.binomial(clicks, 0.03).astype(np.int32)
        return pl.DataFrame(
            {
                "performance_id": np.arange(1, n + 1),
                "campaign_id": campaign + 1,
                "date": dates(day * DAY),
                "impressions": np.maximum(impressions, clicks),
                "clicks": clicks,
                "spend_usd": np.round(spend, 2),
                "conversions": conversions,
            }
        )

    def _campaigns_before(
        self, rng: np.random.Generator, when: np.ndarray, subset: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (campaign index, time no earlier than its start) picking among recently started campaigns."""
        lay = self._campaign_layout()
        ids = np.arange(len(lay["start_day"])) if subset is None else subset
        start = lay["start_day"][ids] * DAY
        order = np.argsort(start, kind="stable")
        start_sorted = start[order]
        k = np.searchsorted(start_sorted, when, side="right")
        recent = max(1, round(0.16 * len(ids)))
        pick = np.maximum(
            k - 1 - (rng.random(len(when)) * np.minimum(np.maximum(k, 1), recent)).astype(np.int64), 0
        )
        chosen = ids[order[pick]]
        return chosen, np.maximum(when, lay["start_day"][chosen] * DAY)

    def _journey_layout(self) -> tuple[np.ndarray, np.ndarray]:
        def build() -> tuple[np.ndarray, np.ndarray]:
            rng = self.rng("attribution_touchpoints", 0, "layout")
            n_contacts, n = self.rows["hubspot_contacts"], self.rows["attribution_touchpoints"]
            w = np.exp(0.6 * rng.standard_normal(n_contacts))
            counts = allocate(rng, n, w, 1, max(2, 8 * -(-n // n_contacts)))
            return counts, np.cumsum(counts) - counts

        return self._memo("journey_layout", build)

    def _gen_attribution_touchpoints(self, k: int) -> pl.DataFrame:
        m = self.cfg.marketing
        start, stop = self.chunk_rows("attribution_touchpoints", k)
        rng, n = self.rng("attribution_touchpoints", k), stop - start
        counts, offsets = self._journey_layout()
        rows = np.arange(start, stop)
        contact = np.searchsorted(offsets, rows, side="right") - 1
        pos = rows - offsets[contact]
        length = counts[contact]
        created = self._sec(self.whole("hubspot_contacts")["created_at"])[contact]
        span = np.minimum(90 * DAY, self.t1 - 1 - created)
        touched = created + ((pos + rng.random(n)) / length * span).astype(np.int64)
        campaign, touched = self._campaigns_before(rng, touched)
        touched = np.minimum(touched, self.t1 - 1)
        first, last = m.first_touch_weight, m.last_touch_weight
        middle = (1 - first - last) / np.maximum(length - 2, 1)
        weight = np.select(
            [length == 1, length == 2, pos == 0, pos == length - 1],
            [1.0, 0.5, first + (1 - first - last) * (length == 2), last],
            middle,
        )
        camp = self.whole("marketing_campaigns")
        return pl.DataFrame(
            {
                "touchpoint_id": rows + 1,
                "contact_id": contact + 1,
                "campaign_id": campaign + 1,
                "channel": camp["channel"].gather(campaign),
                "touch_position": (pos + 1).astype(np.int32),
                "journey_length": length.astype(np.int32),
                "touched_at": ts(touched),
                "attribution_weight": weight,
            }
        )

    def _gen_marketing_qualified_leads(self) -> pl.DataFrame:
        rng, n = self.rng("marketing_qualified_leads"), self.rows["marketing_qualified_leads"]
        contacts = self.whole("hubspot_contacts")
        who = np.sort(rng.choice(contacts.height, size=n, replace=False))
        created = self._sec(contacts["created_at"])[who]
        when = np.minimum(created + (rng.exponential(14.0, n) * DAY).astype(np.int64), self.t1 - 2 * DAY)
        when = np.maximum(when, created)
        campaign, when = self._campaigns_before(rng, when)
        converted = rng.random(n) < 0.4
        sql_at = np.minimum(when + (rng.exponential(7.0, n) * DAY).astype(np.int64) + HOUR, self.t1 - 1)
        camp = self.whole("marketing_campaigns")
        return pl.DataFrame(
            {
                "mql_id": np.arange(1, n + 1),
                "contact_id": who + 1,
                "campaign_id": campaign + 1,
                "source_channel": camp["channel"].gather(campaign),
                "lead_score": np.clip(np.round(70 + 10 * rng.standard_normal(n)), 50, 100).astype(np.int32),
                "mql_at": ts(when),
                "converted_to_sql": converted,
                "sql_at": ts_nullable(np.maximum(sql_at, when), converted),
            }
        )

    def _gen_ga_sessions(self, k: int) -> pl.DataFrame:
        m, a = self.cfg.marketing, self.cfg.activity
        start, stop = self.chunk_rows("ga_sessions", k)
        rng, n = self.rng("ga_sessions", k), stop - start
        when = growth_times(rng, n, self.t0, self.t1 - DAY, self.cfg.window.account_yoy_growth)
        src = choice(rng, n, m.ga_sources)
        src_names = list(m.ga_sources)
        camp = self.whole("marketing_campaigns")
        channels = camp["channel"].to_numpy()
        campaign = np.full(n, -1, dtype=np.int64)
        for sm, channel in CHANNEL_OF_SOURCE.items():
            rows = (
                np.flatnonzero(src == src_names.index(sm))
                if sm in src_names
                else np.array([], dtype=np.int64)
            )
            subset = np.flatnonzero(channels == channel)
            if len(rows) and len(subset):
                campaign[rows], when[rows] = self._campaigns_before(rng, when[rows], subset)
        bounced = rng.random(n) < m.bounce_rate
        duration = np.where(
            bounced, rng.integers(0, 11, n), np.exp(rng.normal(np.log(m.median_session_seconds), 0.9, n))
        ).astype(np.int32)
        pageviews = np.where(bounced, 1, 2 + rng.geometric(0.4, n) - 1).astype(np.int32)
        medium = labels(src, [k.split("/")[1] for k in src_names])
        landing = labels(choice(rng, n, {"/": 0.45, "/pricing": 0.2, "/features": 0.15, "/blog": 0.15,
                                          "/demo": 0.05}), ["/", "/pricing", "/features", "/blog", "/demo"])  # fmt: skip
        return pl.DataFrame(
            {
                "ga_session_id": np.arange(start + 1, stop + 1),
                "client_id": _cat(
                    "GA1.1.", pl.Series(rng.integers(10**8, 10**9, n)), ".", pl.Series(when // DAY)
                ),  # fmt: skip
                "campaign_id": pl.Series(np.where(campaign >= 0, campaign + 1, 0)).set(
                    pl.Series(campaign < 0), None
                ),
                "source": labels(src, [k.split("/")[0] for k in src_names]),
                "medium": medium,
                "channel_group": medium.replace_strict(
                    CHANNEL_GROUP, default="Other", return_dtype=pl.String
                ),
                "landing_page": landing,
                "device_category": labels(choice(rng, n, a.device_types), a.device_types),
                "session_start": ts(when),
                "pageviews": pageviews,
                "session_duration_seconds": duration,
                "bounced": bounced,
                "converted": ~bounced & (rng.random(n) < 0.04),
            }
        )

    # ------------------------------------------------------------ app activity
    def _user_weights(self) -> dict[str, np.ndarray]:
        def build() -> dict[str, np.ndarray]:
            users = self.whole("users")
            account = users["account_id"].to_numpy() - 1
            _, b = self.account_span()
            created = self._sec(users["created_at"])
            end = b[account]
            role_w = (
                users["role"].replace_strict(self.cfg.users.login_weight, return_dtype=pl.Float64).to_numpy()
            )
            days = (end - created) / DAY
            return {
                "p": role_w * days / (role_w * days).sum(),
                "created": created,
                "end": end,
                "account": account,
            }

        return self._memo("user_weights", build)

    def _spread_days(
        self,
        rng: np.random.Generator,
        low: np.ndarray,
        high: np.ndarray,
        hour_cdf: np.ndarray,
        weekday_cdf: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return epoch seconds strictly inside (low, high): a whole day between them, a weekday mix, an hour curve."""
        n = len(low)
        first_day = low // DAY + 1
        last_day = high // DAY - 1
        if weekday_cdf is None:
            day = first_day + (rng.random(n, dtype=np.float32) * (last_day - first_day + 1)).astype(np.int64)
        else:
            dow = np.searchsorted(weekday_cdf, rng.random(n, dtype=np.float32), side="right").clip(0, 6)
            first = first_day + (dow - (first_day + 3) % 7) % 7  # 1970-01-01 was a Thursday
            weeks = (last_day - first) // 7 + 1
            day = first + 7 * (rng.random(n, dtype=np.float32) * weeks).astype(np.int64)
        hour = np.searchsorted(hour_cdf, rng.random(n, dtype=np.float32), side="right").clip(0, 23)
        return day * DAY + hour * HOUR + rng.integers(0, HOUR, n)

    @staticmethod
    def _cdf(weights: tuple[float, ...] | list[float]) -> np.ndarray:
        w = np.asarray(weights, dtype=np.float64)
        return (np.cumsum(w) / w.sum()).astype(np.float32)

    def _sessions(self, k: int) -> dict[str, np.ndarray]:
        """Return the arrays of user-session chunk ``k`` (shared by page views and feature usage)."""
        key = f"sessions:{k}"
        if key in self._cache:
            return self._cache[key]  # type: ignore[return-value]
        self._cache = {kk: vv for kk, vv in self._cache.items() if not kk.startswith("sessions:")}
        start, stop = self.chunk_rows("user_sessions", k)
        rng, n = self.rng("user_sessions", k), stop - start
        uw = self._user_weights()
        counts = rng.multinomial(n, uw["p"])
        user, _ = _local_index(counts)
        started = self._spread_days(
            rng, uw["created"][user], uw["end"][user], self._cdf(self.cfg.activity.hour_weights)
        )
        minutes = np.exp(rng.normal(np.log(self.cfg.activity.median_session_minutes), 0.8, n))
        duration = np.maximum((minutes * 60).astype(np.int64), 30)
        out = {"id": np.arange(start + 1, stop + 1), "user": user, "account": uw["account"][user],
               "started": started, "duration": duration, "device": choice(rng, n, self.cfg.activity.device_types)}  # fmt: skip
        self._cache[key] = out
        return out

    def _gen_user_sessions(self, k: int) -> pl.DataFrame:
        s = self._sessions(k)
        return pl.DataFrame(
            {
                "session_id": s["id"],
                "user_id": s["user"] + 1,
                "account_id": s["account"] + 1,
                "started_at": ts(s["started"]),
                "ended_at": ts(s["started"] + s["duration"]),
                "duration_seconds": s["duration"].astype(np.int32),
                "device_type": labels(s["device"], self.cfg.activity.device_types),
            }
        )

    def _gen_page_views(self, k: int) -> pl.DataFrame:
        s = self._sessions(k)
        start, stop = self.chunk_rows("page_views", k)
        rng, n = self.rng("page_views", k), stop - start
        n_sessions = len(s["id"])
        if n < n_sessions:
            raise ValueError("page_views needs at least one row per user session")
        dur = s["duration"].astype(np.float64)
        counts = 1 + rng.multinomial(n - n_sessions, dur / dur.sum())
        session, pos = _local_index(counts)
        c = counts[session]
        slot = s["duration"][session] / c
        viewed = s["started"][session] + ((pos + rng.random(n)) * slot).astype(np.int64)
        pages = self.cfg.activity.pages
        return pl.DataFrame(
            {
                "page_view_id": np.arange(start + 1, stop + 1),
                "session_id": s["id"][session],
                "user_id": s["user"][session] + 1,
                "page_path": labels(choice(rng, n, pages), pages),
                "viewed_at": ts(viewed),
                "time_on_page_seconds": np.maximum(slot * (0.5 + rng.random(n)), 1).astype(np.int32),
                "is_exit": pos == c - 1,
            }
        )

    def _gen_feature_usage(self, k: int) -> pl.DataFrame:
        a = self.cfg.activity
        s = self._sessions(k)
        start, stop = self.chunk_rows("feature_usage", k)
        rng, n = self.rng("feature_usage", k), stop - start
        dur = s["duration"].astype(np.float64)
        counts = rng.multinomial(n, dur / dur.sum())
        session, _ = _local_index(counts)
        tier = self.tier_codes()[s["account"][session]]
        names = list(a.features)
        feature = np.zeros(n, dtype=np.int16)
        u = rng.random(n)
        for t in range(len(TIER_ORDER)):
            allowed = np.array([TIER_ORDER.index(a.feature_min_tier.get(f, "Basic")) <= t for f in names])
            w = np.fromiter(a.features.values(), dtype=np.float64) * allowed
            cdf = np.cumsum(w / w.sum())
            rows = tier == t
            feature[rows] = np.searchsorted(cdf, u[rows], side="right").clip(0, len(names) - 1)
        used = s["started"][session] + (rng.random(n) * s["duration"][session]).astype(np.int64)
        success = rng.random(n) >= a.error_rate
        errors = labels(choice(rng, n, [0.5, 0.3, 0.2]), ["timeout", "validation_error", "sync_failed"])
        return pl.DataFrame(
            {
                "feature_event_id": np.arange(start + 1, stop + 1),
                "session_id": s["id"][session],
                "user_id": s["user"][session] + 1,
                "account_id": s["account"][session] + 1,
                "feature_name": labels(feature, names),
                "used_at": ts(used),
                "success": success,
                "error_code": errors.set(pl.Series(success), None),
            }
        )

    # ----------------------------------------------------------------------- iot
    def _tap_tables(self) -> dict[str, np.ndarray]:
        """Per-device day tables and 16-bit lookup tables that make tap-event sampling a few gathers per row."""

        def build() -> dict[str, np.ndarray]:
            t = self.cfg.taps
            prof = self.device_profile()
            first_day = prof["installed"] // DAY + 1
            last_day = prof["active_end"] // DAY - 1
            dow = np.arange(7)
            # first day with weekday d on or after the device's first full day, and how many such weeks follow
            first = first_day[:, None] + (dow[None, :] - (first_day[:, None] + 3) % 7) % 7
            weeks = (last_day[:, None] - first) // 7 + 1
            if (weeks < 1).any():
                raise ValueError("every device needs at least a week of activity for tap events")
            grid = (np.arange(65536) + 0.5) / 65536
            lut = lambda w: np.searchsorted(np.cumsum(w) / np.sum(w), grid).astype(np.uint8)  # noqa: E731
            # time of day in microseconds: the inverse CDF of the hourly curve at 65,536 quantiles
            hours = np.asarray(t.hour_weights, dtype=np.float64)
            cdf = np.concatenate([[0.0], np.cumsum(hours) / hours.sum()])
            tod = np.interp(grid, cdf, np.arange(25) * HOUR)
            return {
                "first": first.astype(np.int32).ravel(),
                "weeks": weeks.astype(np.int32).ravel(),
                "dow_lut": lut(np.asarray(t.weekday_weights)),
                "tod_us": (tod * 1_000_000).astype(np.int64),
                "product_lut": lut(np.fromiter(t.products.values(), dtype=np.float64)),
                "ml": np.array(list(t.pour_ml.values()), dtype=np.float32),
                "serve": np.array([t.serve_celsius[p] for p in t.products], dtype=np.float32),
                "location": (prof["location"] + 1).astype(np.int64),
                "account": (prof["account"] + 1).astype(np.int64),
            }

        return self._memo("tap_tables", build)

    def _gen_tap_events(self, k: int) -> pl.DataFrame:
        t = self.cfg.taps
        start, stop = self.chunk_rows("tap_events", k)
        rng, n = self.rng("tap_events", k), stop - start
        prof = self.device_profile()
        tab = self._tap_tables()
        days = (prof["active_end"] - prof["installed"]) / DAY
        w = prof["volume"] * days
        counts = rng.multinomial(n, w / w.sum())
        device = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        # one 64-bit draw per row, read as four 16-bit uniforms: weekday, product, week, time of day
        bits = rng.bit_generator.random_raw(n).view(np.uint16).reshape(n, 4)
        slot = device * 7 + tab["dow_lut"][bits[:, 0]]
        product = tab["product_lut"][bits[:, 1]]
        week = np.multiply(bits[:, 2], tab["weeks"][slot], dtype=np.int32) >> 16
        day = tab["first"][slot] + 7 * week
        poured_us = day * np.int64(DAY * 1_000_000) + tab["tod_us"][bits[:, 3]]
        z = rng.standard_normal((2, n), dtype=np.float32)
        volume = tab["ml"][product] * (np.float32(1.0) + np.float32(0.06) * z[0])
        temperature = tab["serve"][product] + prof["temp_offset"][device] + np.float32(0.4) * z[1]
        duration = (volume * np.float32(1000 / t.flow_ml_per_s)).astype(np.int32)
        device += 1
        return pl.DataFrame(
            {
                "tap_event_id": np.arange(start + 1, stop + 1, dtype=np.int64),
                "device_id": device,
                "location_id": tab["location"][device - 1],
                "account_id": tab["account"][device - 1],
                "poured_at": pl.Series(poured_us).cast(pl.Datetime("us")),
                "product_type": categorical(product, list(t.products)),
                "volume_ml": volume,
                "temperature_c": temperature,
                "duration_ms": duration,
            }
        )

    def _gen_device_health(self, k: int) -> pl.DataFrame:
        t = self.cfg.taps
        start, stop = self.chunk_rows("device_health", k)
        rng, n = self.rng("device_health", k), stop - start
        prof = self.device_profile()
        rows = np.arange(start, stop)
        device, offset = rows // t.health_days, rows % t.health_days
        day = prof["active_end"][device] // DAY - t.health_days + offset
        uptime = np.clip(prof["uptime"][device] + 0.01 * rng.standard_normal(n), 0.0, 1.0)
        errors = rng.poisson((1 - uptime) * 20).astype(np.int32)
        temp = np.float32(t.serve_celsius.get("draft_beer", 3.0)) + prof["temp_offset"][device]
        temp = temp + np.float32(0.2) * rng.standard_normal(n, dtype=np.float32)
        return pl.DataFrame(
            {
                "health_id": rows + 1,
                "device_id": device + 1,
                "recorded_at": ts(day * DAY + 6 * HOUR),
                "uptime_pct": np.round(uptime * 100, 2),
                "error_count": errors,
                "avg_temperature_c": temp,
                "needs_maintenance": (uptime < 0.9) | (errors > 5),
            }
        )
