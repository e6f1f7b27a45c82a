"""Word lists and column-wise string building shared by the generators (names, addresses, e-mails, ids)."""

from __future__ import annotations

import numpy as np
import polars as pl

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


def pick_words(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    """Return ``n`` words drawn uniformly from ``pool``."""
    return pool[rng.integers(0, len(pool), n)]


def strings(values: np.ndarray) -> pl.Series:
    """Return a numpy array as a polars string series."""
    return pl.Series(values.astype(str), dtype=pl.String)


def concat(*parts: pl.Series | str) -> pl.Series:
    """Concatenate string series and literals element-wise."""
    frame = pl.DataFrame({f"p{i}": p for i, p in enumerate(parts) if isinstance(p, pl.Series)})
    exprs = [
        pl.col(f"p{i}").cast(pl.String) if isinstance(p, pl.Series) else pl.lit(p)
        for i, p in enumerate(parts)
    ]
    return frame.select(pl.concat_str(exprs).alias("s"))["s"]
