"""The app's core tables: accounts, locations, users, devices and the subscription history.

Every function takes the environment's ``Warehouse`` (``wh``) and returns a frame, or an array
of the latent traits other sources share (account life spans, tiers, size weights, the plan of
each account's subscriptions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.warehouse import geography
from simulation_assets.core.warehouse.generators import health, marketing
from simulation_assets.core.warehouse.generators.text import (
    FIRST_NAMES,
    LAST_NAMES,
    NAME_NOUNS,
    NAME_WORDS,
    PERMISSIONS,
    STATE_ZIP_PREFIX,
    STREETS,
    concat,
    pick_words,
    strings,
)
from simulation_assets.core.warehouse.sampling import (
    DAY,
    HOUR,
    NULL_TS,
    allocate,
    between,
    choice,
    exact_choice,
    labels,
    local_index,
    to_seconds,
    ts,
    ts_nullable,
)

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse

TIER_ORDER = ("Basic", "Pro", "Enterprise")


def accounts(wh: Warehouse) -> pl.DataFrame:
    """Accounts with industry and tier mixes, MRR inside the tier's range, growth-curve creation and churn."""
    spec, n, rng = wh.cfg.accounts, wh.rows["accounts"], wh.rng("accounts")
    window = wh.cfg.window
    industry = exact_choice(rng, n, spec.industries)
    tier = exact_choice(rng, n, spec.tiers)
    tiers = list(spec.tiers)
    mrr_low = np.array([spec.mrr_usd[t][0] for t in tiers])[tier]
    mrr_high = np.array([spec.mrr_usd[t][1] for t in tiers])[tier]
    mrr = np.round(mrr_low + rng.random(n) * (mrr_high - mrr_low), 2)
    staff_low = np.array([spec.employees[t][0] for t in tiers])[tier]
    staff_high = np.array([spec.employees[t][1] for t in tiers])[tier]
    employees = np.round(
        np.exp(np.log(staff_low) + rng.random(n) * (np.log(staff_high) - np.log(staff_low)))
    ).astype(np.int32)
    latest = wh.history_end - window.min_tenure_days * DAY
    # sign-ups follow the marketing spend of recent months on top of the growth curve (generators/marketing.py)
    signups = marketing.signup_weights(wh)[None, :]
    start = np.full(n, wh.history_start)
    created = np.sort(
        health.weighted_times(wh, health.month_cdf(wh, signups), np.zeros(n, dtype=np.int64), start,
                              np.full(n, latest), rng.random(n))
    )  # fmt: skip
    # churn follows the account's health (tier, site, lasting trait, monthly swings): see generators/health.py
    account_health = health.with_tiers(wh, wh.health_base, tiers, tier)
    churn_at = health.churn_times(wh, account_health, created, rng)
    churned = churn_at < wh.history_end
    ids = np.arange(1, n + 1)
    industries = list(spec.industries)
    noun = np.empty(n, dtype=object)
    for i, name in enumerate(industries):
        mask = industry == i
        noun[mask] = pick_words(rng, NAME_NOUNS.get(name, NAME_NOUNS["Other"]), int(mask.sum()))
    word = pick_words(rng, NAME_WORDS, n)
    name = concat(strings(word), " ", strings(noun.astype(str)))
    slug = name.str.to_lowercase().str.replace_all(" ", "")
    domain = concat(slug, pl.Series(ids), ".example.com")
    state = choice(rng, n, wh.cfg.locations.states)
    city = account_cities(wh, labels(state, wh.cfg.locations.states))
    return pl.DataFrame(
        {
            "account_id": ids,
            "account_name": name,
            "industry": labels(industry, industries),
            "tier": labels(tier, tiers),
            "mrr_usd": mrr,
            "employee_count": employees,
            "domain": domain,
            "billing_state": labels(state, wh.cfg.locations.states),
            "billing_city": wh.cities.city_labels(city),
            "status": np.where(churned, "churned", "active"),
            "created_at": ts(created),
            "churned_at": ts_nullable(churn_at, churned),
        }
    )


def account_cities(wh: Warehouse, states: pl.Series) -> np.ndarray:
    """Return each account's billing city (index into ``wh.cities``), a city of its billing state drawn from its
    own stream, so the accounts table and the tables that read it agree."""
    codes = {name: i for i, name in enumerate(wh.cities.states)}
    return wh.cities.draw(
        wh.rng("accounts", 0, "city"), states.replace_strict(codes, return_dtype=pl.Int64).to_numpy()
    )


def account_span(wh: Warehouse) -> tuple[np.ndarray, np.ndarray]:
    """Return (created, active end) epoch seconds of every account (end = churn or the window's end)."""
    table = wh.whole("accounts")
    created = to_seconds(table["created_at"])
    churned = to_seconds(table["churned_at"])
    return created, np.where(churned == NULL_TS, wh.history_end, churned)


def tier_codes(wh: Warehouse) -> np.ndarray:
    """Return each account's tier as an index into ``TIER_ORDER``."""
    codes = {name: i for i, name in enumerate(TIER_ORDER)}
    return wh.whole("accounts")["tier"].replace_strict(codes, return_dtype=pl.Int64).to_numpy()


def size_weight(wh: Warehouse) -> np.ndarray:
    """Return each account's relative size (more locations, users, devices for higher tiers)."""
    table = wh.whole("accounts")
    return table["tier"].replace_strict(wh.cfg.accounts.size_weight, return_dtype=pl.Float64).to_numpy()


def locations(wh: Warehouse) -> pl.DataFrame:
    """1-5 venues per account (more for bigger tiers), mostly in the account's billing state."""
    spec, n, rng = wh.cfg.locations, wh.rows["locations"], wh.rng("locations")
    low, high = spec.per_account
    counts = allocate(rng, n, wh.size_weight, low, high)
    account, _ = local_index(counts)
    created, active_end = wh.account_span
    opened = between(
        rng, created[account], created[account] + (active_end[account] - created[account]) // 5, skew=3.0
    )
    kind = exact_choice(rng, n, spec.types)
    table = wh.whole("accounts")
    state = table["billing_state"].to_numpy()[account]
    keep_home = rng.random(n) < 0.7
    other = labels(choice(rng, n, spec.states), spec.states).to_numpy()
    _, position = local_index(counts)
    keep_home |= position == 0  # the main venue is where the account bills from
    state = np.where(keep_home, state, other)
    # its city: the account's own for most venues in its state (all main venues), else a city of the state
    geo, cities = wh.rng("locations", 0, "city"), wh.cities
    codes = {name: i for i, name in enumerate(cities.states)}
    city = cities.draw(
        geo, pl.Series(state, dtype=pl.String).replace_strict(codes, return_dtype=pl.Int64).to_numpy()
    )
    home_city = keep_home & ((position == 0) | (geo.random(n) < wh.cfg.geography.home_city_share))
    city = np.where(home_city, wh.account_city[account], city)
    prefix = pl.Series(state, dtype=pl.String).replace_strict(
        STATE_ZIP_PREFIX, default=50, return_dtype=pl.Int64
    )
    zips = prefix.to_numpy() * 1000 + rng.integers(0, 1000, n)
    number = rng.integers(1, 9999, n)
    street = pick_words(rng, STREETS, n)
    type_names = labels(kind, spec.types)
    return pl.DataFrame(
        {
            "location_id": np.arange(1, n + 1),
            "account_id": account + 1,
            "location_name": concat(table["account_name"].gather(account), " ", type_names),
            "location_type": type_names,
            "state": pl.Series(state, dtype=pl.String),
            "city": cities.city_labels(city),
            "zip_code": pl.Series(zips).cast(pl.String).str.zfill(5),
            "address": concat(pl.Series(number), " ", strings(street), " St"),
            "opened_at": ts(opened),
        }
    )


def users(wh: Warehouse) -> pl.DataFrame:
    """2-10 users per account by tier, roles 10/30/60 %, e-mails on the account's domain."""
    spec, n, rng = wh.cfg.users, wh.rows["users"], wh.rng("users")
    low, high = spec.per_account
    counts = allocate(rng, n, wh.size_weight, low, high)
    account, position = local_index(counts)
    acc_created, acc_end = wh.account_span
    created = between(
        rng,
        acc_created[account],
        acc_created[account] + (acc_end[account] - acc_created[account]) // 2,
        skew=2.0,
    )
    role = exact_choice(rng, n, spec.roles)
    gap_days = np.array([1.0, 2.0, 6.0])[role]  # admins log in most often
    last = acc_end[account] - (rng.exponential(1.0, n) * gap_days[:n] * DAY).astype(np.int64)
    last = np.maximum(last, created + HOUR)
    first = pick_words(rng, FIRST_NAMES, n)
    last_name = pick_words(rng, LAST_NAMES, n)
    table = wh.whole("accounts")
    roles = labels(role, spec.roles)
    # each user works at one of the account's venues (the main one more often), and logs in from its city
    venues = wh.whole("locations")
    venue_city = wh.cities.index_of(venues["state"], venues["city"])
    per_account = np.bincount(venues["account_id"].to_numpy() - 1, minlength=table.height)
    first_venue = np.cumsum(per_account) - per_account
    geo = wh.rng("users", 0, "geo")
    main = geo.random(n) < wh.cfg.geography.main_location_share
    venue = first_venue[account] + np.where(main, 0, (geo.random(n) * per_account[account]).astype(np.int64))
    city = venue_city[venue]
    email = concat(
        strings(first).str.to_lowercase(), ".", strings(last_name).str.to_lowercase(), pl.Series(position + 1),
        "@", table["domain"].gather(account),
    )  # fmt: skip
    return pl.DataFrame(
        {
            "user_id": np.arange(1, n + 1),
            "account_id": account + 1,
            "email": email,
            "first_name": strings(first),
            "last_name": strings(last_name),
            "role": roles,
            "permissions": roles.replace_strict(PERMISSIONS, return_dtype=pl.String),
            "created_at": ts(created),
            "last_login_at": ts(last),
            "state": wh.cities.state_labels(city),
            "city": wh.cities.city_labels(city),
            "last_login_ip": geography.dotted(geography.addresses(geo, city)),
        }
    )


def devices(wh: Warehouse) -> pl.DataFrame:
    """2-5 tap devices per location, status 85/10/5 %, last seen according to the status."""
    spec, n, rng = wh.cfg.devices, wh.rows["devices"], wh.rng("devices")
    venues = wh.whole("locations")
    venue_account = venues["account_id"].to_numpy() - 1
    low, high = spec.per_location
    counts = allocate(rng, n, wh.size_weight[venue_account], low, high)
    location, _ = local_index(counts)
    account = venue_account[location]
    _, acc_end = wh.account_span
    opened = to_seconds(venues["opened_at"])[location]
    installed = between(rng, opened, opened + (acc_end[account] - opened) // 5, skew=2.0)
    status = exact_choice(rng, n, spec.status)
    end = acc_end[account]
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
            "serial_number": concat("TF-", pl.Series(ids).cast(pl.String).str.zfill(8)),
            "model": labels(choice(rng, n, spec.models), spec.models),
            "firmware_version": labels(choice(rng, n, spec.firmware), spec.firmware),
            "status": labels(status, spec.status),
            "installed_at": ts(installed),
            "last_seen_at": ts(seen),
        }
    )


def subscription_plan(wh: Warehouse) -> dict[str, np.ndarray]:
    """Return the subscription timeline of every account (trials, win-backs, plan changes)."""
    spec, rng = wh.cfg.subscriptions, wh.rng("subscriptions", 0, "plan")
    n, total = wh.rows["accounts"], wh.rows["subscriptions"]
    extra = total - n
    if extra < 0:
        raise ValueError("subscriptions must be at least the number of accounts")
    created, active_end = wh.account_span
    trial = np.zeros(n, dtype=bool)
    n_trial = round(spec.trial_share * n)
    trial[rng.permutation(n)[:n_trial]] = True
    n_fail = min(round(n_trial * (1 - spec.trial_conversion)), extra)
    fail = np.zeros(n, dtype=bool)
    fail[rng.permutation(np.flatnonzero(trial))[:n_fail]] = True
    n_change = extra - n_fail
    if n_change > n - n_fail:
        raise ValueError("too many subscriptions for one plan change per account")
    change = np.zeros(n, dtype=bool)
    change[rng.permutation(np.flatnonzero(~fail))[:n_change]] = True
    annual = np.zeros(n, dtype=bool)
    annual[rng.permutation(n)[: round(spec.annual_billing_share * n)]] = True
    trial_end = created + spec.trial_days * DAY
    winback = trial_end + ((7 + 53 * rng.random(n)) * DAY).astype(np.int64)
    change_at = created + ((0.2 + 0.6 * rng.random(n)) * (active_end - created)).astype(np.int64)
    upgrade = rng.random(n) < spec.upgrade_share
    tier = wh.tier_codes
    prev_tier = np.where(upgrade, tier - 1, tier + 1)
    prev_tier = np.where(prev_tier < 0, 1, np.where(prev_tier > 2, 1, prev_tier))
    return {
        "trial": trial, "fail": fail, "change": change, "annual": annual, "trial_end": trial_end,
        "winback": winback, "change_at": change_at, "prev_tier": prev_tier, "tier": tier,
    }  # fmt: skip


def subscriptions(wh: Warehouse) -> pl.DataFrame:
    """Each account's first subscription, plus a win-back after a lapsed trial or one plan change."""
    plan, rng = wh.subscription_plan, wh.rng("subscriptions")
    table = wh.whole("accounts")
    n = table.height
    created, active_end = wh.account_span
    churned = table["churned_at"].is_not_null().to_numpy()
    second = np.flatnonzero(plan["fail"] | plan["change"])
    # first subscription of every account
    first_end = np.select([plan["fail"], plan["change"]], [plan["trial_end"], plan["change_at"]], active_end)
    first_tier = np.where(plan["change"], plan["prev_tier"], plan["tier"])
    first_has_end = plan["fail"] | plan["change"] | churned
    first_status = np.where(plan["fail"], "trial_expired", np.where(first_has_end, "canceled", "active"))
    mrr = table["mrr_usd"].to_numpy()
    ranges = wh.cfg.accounts.mrr_usd
    low = np.array([ranges[t][0] for t in TIER_ORDER])
    high = np.array([ranges[t][1] for t in TIER_ORDER])
    prev_mrr = np.round(low[first_tier] + rng.random(n) * (high[first_tier] - low[first_tier]), 2)
    first_mrr = np.where(plan["change"], prev_mrr, mrr)
    # second subscription (win-back after a lapsed trial, or a plan change)
    second_start = np.where(plan["fail"][second], plan["winback"][second], plan["change_at"][second])
    second_status = np.where(churned[second], "canceled", "active")
    reason = np.where(plan["fail"][second], "win_back",
                      np.where(plan["prev_tier"][second] < plan["tier"][second], "upgrade", "downgrade"))  # fmt: skip
    tiers = np.array(TIER_ORDER)
    has_trial = np.concatenate([plan["trial"], np.zeros(len(second), dtype=bool)])
    starts = np.concatenate([created, second_start])
    trial_end = np.concatenate([plan["trial_end"], np.zeros(len(second), dtype=np.int64)])
    ends = np.concatenate([first_end, active_end[second]])
    has_end = np.concatenate([first_has_end, churned[second]])
    interval = np.where(plan["annual"], "year", "month")
    return pl.DataFrame(
        {
            "subscription_id": np.arange(1, n + len(second) + 1),
            "account_id": np.concatenate([np.arange(1, n + 1), second + 1]),
            "plan_tier": np.concatenate([tiers[first_tier], tiers[plan["tier"][second]]]),
            "billing_interval": np.concatenate([interval, interval[second]]),
            "status": np.concatenate([first_status, second_status]),
            "mrr_usd": np.concatenate([first_mrr, mrr[second]]),
            "change_reason": np.concatenate([np.full(n, "new"), reason]),
            "started_with_trial": has_trial,
            "trial_start": ts_nullable(starts, has_trial),
            "trial_end": ts_nullable(trial_end, has_trial),
            "started_at": ts(starts),
            "ended_at": ts_nullable(ends, has_end),
        }
    )
