"""Geography: states, cities and IP blocks on accounts, venues, users, app sessions and charges.

``geography_cases`` are the corruptions that make each geography check fail (the column shuffled);
test_checks.py runs them with every other check's case on the same DEV tables.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.warehouse import geography
from simulation_assets.core.warehouse.config import WarehouseConfig
from simulation_assets.core.warehouse.generate import Warehouse
from simulation_assets_tests.warehouse.test_acquisition import shuffled


def geography_cases() -> list[tuple[str, list[str]]]:
    return [
        ("users_in_account_state", shuffled("accounts", "billing_state", "account_id")),
        ("charges_in_account_state", shuffled("stripe_charges", "billing_state", "charge_id")),
        ("sessions_in_user_city", shuffled("user_sessions", "city", "session_id")),
        ("ip_addresses_match_city", shuffled("user_sessions", "ip_address", "session_id")),
    ]


def test_every_city_owns_a_distinct_non_routable_block_and_addresses_name_their_city() -> None:
    cities = geography.Cities(list(WarehouseConfig().locations.states))
    assert len(cities.name) == 63 and len(set(zip(cities.state, cities.name))) == 63
    rng = np.random.default_rng(1)
    city = np.repeat(np.arange(len(cities.name)), 200)
    address = geography.addresses(rng, city)
    assert (geography.city_of(address) == city).all()
    text = geography.dotted(address)
    assert (geography.parse(text) == address).all()
    shared = ipaddress.ip_network("100.64.0.0/10")
    for value in text.sample(500, seed=1):
        ip = ipaddress.ip_address(value)
        assert ip in shared and not ip.is_global  # RFC 6598: never a real host's address
    # cities of a state follow their shares
    ca = cities.draw(rng, np.zeros(20_000, dtype=np.int64))
    shares = np.bincount(ca, minlength=4)[:4] / 20_000
    assert shares == pytest.approx([0.40, 0.25, 0.20, 0.15], abs=0.015)


def test_a_state_without_shipped_cities_gets_one_and_the_blocks_run_out_loudly() -> None:
    cities = geography.Cities(["CA", "WY"])
    assert cities.name[-1] == "WY Metro"
    with pytest.raises(ValueError, match="address blocks"):
        geography.Cities([f"S{i}" for i in range(geography.MAX_CITIES + 1)])


def test_people_and_payments_are_where_their_account_is(dev_warehouse: Warehouse) -> None:
    accounts = dev_warehouse.whole("accounts").select("account_id", "billing_state", "billing_city")
    venues = dev_warehouse.whole("locations").join(accounts, on="account_id")
    main = venues.group_by("account_id").agg(pl.all().sort_by("location_id").first())
    assert ((main["state"] == main["billing_state"]) & (main["city"] == main["billing_city"])).all()
    users = dev_warehouse.whole("users")
    # every user works at one of their account's venues
    pairs = venues.select("account_id", "state", "city").unique()
    assert users.join(pairs, on=["account_id", "state", "city"], how="anti").height == 0
    charges = (
        dev_warehouse.whole("stripe_charges")
        .join(dev_warehouse.whole("stripe_customers").select("customer_id", "account_id"), on="customer_id")
        .join(accounts, on="account_id", suffix="_account")
    )
    assert (charges["billing_state"] == charges["billing_state_account"]).all()
    assert (charges["billing_city"] == charges["billing_city_account"]).all()
    cities = dev_warehouse.cities
    paid_from = geography.city_of(geography.parse(charges["ip_address"]))
    home = cities.index_of(charges["billing_state"], charges["billing_city"])
    assert (paid_from == home).mean() == pytest.approx(
        0.85 + 0.15 * 0.05, abs=0.03
    )  # 15 % paid from anywhere
    sessions = dev_warehouse.whole("user_sessions")
    at = cities.index_of(sessions["state"], sessions["city"])
    assert (geography.city_of(geography.parse(sessions["ip_address"])) == at).all()
    away = sessions.join(users.select("user_id", pl.col("city").alias("home")), on="user_id").with_columns(
        (pl.col("city") != pl.col("home")).alias("away")
    )
    by_device = dict(away.group_by("device_type").agg(pl.col("away").mean()).iter_rows())
    assert by_device["mobile"] > 4 * by_device["desktop"], by_device
