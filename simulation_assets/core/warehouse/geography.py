"""US geography of the warehouse: the cities of each state and one IPv4 block per city.

A small shipped table (no download): a few cities per state with their relative share of the
state's venues. Every city owns one /20 block (4,096 addresses) of the shared address space
100.64.0.0/10 (RFC 6598, carrier-grade NAT): addresses that look like an ISP customer's but are never
routable on the Internet, so no generated address can belong to a real host. The blocks are numbered
in the order of the configured states and this table's cities, so an address names its city:
``city = (address - 100.64.0.0) >> 12``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

# state -> (city, share of the state's venues); states not listed get one city, "<state> Metro".
CITIES: dict[str, tuple[tuple[str, float], ...]] = {
    "CA": (("Los Angeles", 0.40), ("San Francisco", 0.25), ("San Diego", 0.20), ("Sacramento", 0.15)),
    "TX": (("Houston", 0.35), ("Dallas", 0.30), ("Austin", 0.20), ("San Antonio", 0.15)),
    "FL": (("Miami", 0.35), ("Orlando", 0.25), ("Tampa", 0.25), ("Jacksonville", 0.15)),
    "NY": (("New York", 0.75), ("Buffalo", 0.10), ("Rochester", 0.08), ("Albany", 0.07)),
    "IL": (("Chicago", 0.80), ("Springfield", 0.10), ("Peoria", 0.10)),
    "PA": (("Philadelphia", 0.50), ("Pittsburgh", 0.35), ("Harrisburg", 0.15)),
    "OH": (("Columbus", 0.40), ("Cleveland", 0.35), ("Cincinnati", 0.25)),
    "GA": (("Atlanta", 0.70), ("Savannah", 0.20), ("Athens", 0.10)),
    "NC": (("Charlotte", 0.45), ("Raleigh", 0.35), ("Asheville", 0.20)),
    "MI": (("Detroit", 0.50), ("Grand Rapids", 0.30), ("Ann Arbor", 0.20)),
    "NJ": (("Newark", 0.40), ("Jersey City", 0.35), ("Hoboken", 0.25)),
    "VA": (("Richmond", 0.40), ("Virginia Beach", 0.35), ("Arlington", 0.25)),
    "WA": (("Seattle", 0.65), ("Spokane", 0.20), ("Tacoma", 0.15)),
    "AZ": (("Phoenix", 0.60), ("Tucson", 0.25), ("Scottsdale", 0.15)),
    "MA": (("Boston", 0.70), ("Cambridge", 0.15), ("Worcester", 0.15)),
    "TN": (("Nashville", 0.55), ("Memphis", 0.30), ("Knoxville", 0.15)),
    "CO": (("Denver", 0.60), ("Boulder", 0.20), ("Colorado Springs", 0.20)),
    "NV": (("Las Vegas", 0.80), ("Reno", 0.20)),
    "OR": (("Portland", 0.75), ("Eugene", 0.15), ("Bend", 0.10)),
    "LA": (("New Orleans", 0.60), ("Baton Rouge", 0.25), ("Lafayette", 0.15)),
}  # fmt: skip

BASE_ADDRESS = (100 << 24) | (64 << 16)  # 100.64.0.0
BLOCK_BITS = 12  # a /20 per city
MAX_CITIES = 1 << (22 - BLOCK_BITS)  # the /10 holds 1,024 blocks


class Cities:
    """The cities of the configured states: ``state[c]`` (index into ``states``), ``name[c]``, and per state
    the cumulative shares of its cities (``first[s]`` .. ``first[s] + count[s]``)."""

    def __init__(self, states: list[str]) -> None:
        rows = [(s, city, share) for s, state in enumerate(states)
                for city, share in CITIES.get(state, ((f"{state} Metro", 1.0),))]  # fmt: skip
        if len(rows) > MAX_CITIES:
            raise ValueError(
                f"{len(rows)} cities do not fit the {MAX_CITIES} address blocks of 100.64.0.0/10"
            )
        self.states = list(states)
        self.state = np.array([r[0] for r in rows], dtype=np.int64)
        self.name = [r[1] for r in rows]
        share = np.array([r[2] for r in rows])
        self.count = np.bincount(self.state, minlength=len(states))
        self.first = np.cumsum(self.count) - self.count
        totals = np.bincount(self.state, weights=share, minlength=len(states))
        self.cumulative = np.cumsum(share / totals[self.state])  # running over all cities
        self.before = np.concatenate([[0.0], self.cumulative])[
            self.first
        ]  # cumulative share before each state

    def draw(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        """Return a city (global index) in each state (index into ``states``), by the cities' shares."""
        state = np.asarray(state, dtype=np.int64)
        last = self.first[state] + self.count[state] - 1
        target = self.before[state] + rng.random(len(state)) * (self.cumulative[last] - self.before[state])
        city = np.searchsorted(self.cumulative, target, side="right")
        return np.clip(city, self.first[state], self.first[state] + self.count[state] - 1)

    def index_of(self, states: pl.Series, cities: pl.Series) -> np.ndarray:
        """Return the global index of each (state, city) pair of two label columns."""
        index = {f"{self.states[s]}|{name}": i for i, (s, name) in enumerate(zip(self.state, self.name))}
        keys = pl.select(pl.concat_str([states, cities], separator="|")).to_series()
        return keys.replace_strict(index, return_dtype=pl.Int64).to_numpy()

    def draw_anywhere(self, rng: np.random.Generator, state_shares: dict[str, float], n: int) -> np.ndarray:
        """Return ``n`` cities anywhere: a state by ``state_shares``, then a city in it."""
        cdf = np.cumsum(np.array([state_shares[s] for s in self.states]))
        state = np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"), len(self.states) - 1)
        return self.draw(rng, state)

    def state_labels(self, city: np.ndarray) -> pl.Series:
        """Return the state code of each city (global index)."""
        return pl.Series(self.states, dtype=pl.String).gather(self.state[np.asarray(city)])

    def city_labels(self, city: np.ndarray) -> pl.Series:
        """Return the name of each city (global index)."""
        return pl.Series(self.name, dtype=pl.String).gather(np.asarray(city))


def addresses(rng: np.random.Generator, city: np.ndarray) -> np.ndarray:
    """Return one IPv4 address (as an integer) per row inside its city's block (never the block's first or
    last address)."""
    host = rng.integers(1, (1 << BLOCK_BITS) - 1, len(city))
    return BASE_ADDRESS + (np.asarray(city, dtype=np.int64) << BLOCK_BITS) + host


def dotted(address: np.ndarray) -> pl.Series:
    """Return integer IPv4 addresses as dotted-quad strings."""
    a = pl.Series(np.asarray(address, dtype=np.int64))
    parts = [((a // (1 << shift)) % 256).cast(pl.String) for shift in (24, 16, 8, 0)]
    return pl.select(pl.concat_str(parts, separator=".")).to_series().alias("ip")


def city_of(address: np.ndarray) -> np.ndarray:
    """Return the city (global index) whose block holds each integer address."""
    return (np.asarray(address, dtype=np.int64) - BASE_ADDRESS) >> BLOCK_BITS


def parse(dotted_addresses: pl.Series) -> np.ndarray:
    """Return dotted-quad strings as integer addresses."""
    o = dotted_addresses.str.split_exact(".", 3).struct.unnest().cast(pl.Int64).to_numpy()
    return (o[:, 0] << 24) | (o[:, 1] << 16) | (o[:, 2] << 8) | o[:, 3]
