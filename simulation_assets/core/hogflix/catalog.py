"""The HogFlix title catalog: a fixed, seed-independent list of videos with genre, length and popularity.

Titles are built from word lists so they read like a catalog; ids are stable
UUIDv5s, so the same video has the same id in every run and every table.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import polars as pl

from simulation_assets.core.rng import stable_uuid, stream

GENRES = ("action", "comedy", "sci-fi", "family", "drama", "thriller", "documentary", "romance")
_ADJECTIVES = (
    "Midnight", "Silent", "Golden", "Broken", "Hidden", "Electric", "Crimson", "Last", "Frozen", "Wild",
    "Lucky", "Distant", "Velvet", "Iron", "Paper", "Neon", "Quiet", "Burning", "Lost", "Little",
)  # fmt: skip
_NOUNS = (
    "Harbor", "Signal", "Orchard", "Frontier", "Circuit", "Garden", "Empire", "Voyage", "Witness", "Kingdom",
    "Summer", "Machine", "River", "Heist", "Carnival", "Atlas", "Lighthouse", "Protocol", "Parade", "Echo",
)  # fmt: skip


@lru_cache(maxsize=8)
def catalog(size: int = 240) -> pl.DataFrame:
    """Return ``size`` videos: index, video_id, slug, title, genre, minutes, popularity (sums to 1)."""
    g = stream(0, "hogflix", "catalog", size)
    idx = np.arange(size)
    genre = idx % len(GENRES)
    minutes = np.clip(np.round(np.exp(np.log(42.0) + 0.45 * g.standard_normal(size))), 5, 120).astype(
        np.int32
    )
    # Zipf-like popularity: a few titles get most plays, as on real catalogs.
    popularity = 1.0 / (g.permutation(size) + 1.0) ** 0.9
    titles = [
        f"{_ADJECTIVES[(i * 7) % len(_ADJECTIVES)]} {_NOUNS[(i * 11 + i // len(_NOUNS)) % len(_NOUNS)]}"
        + ("" if i < len(_NOUNS) * 4 else f" {i // (len(_NOUNS) * 4) + 1}")
        for i in idx.tolist()
    ]
    slugs = [f"v{i:04d}-{t.lower().replace(' ', '-')}" for i, t in enumerate(titles)]
    return pl.DataFrame(
        {
            "video_index": idx.astype(np.int32),
            "video_id": [str(stable_uuid(0, "hogflix", "video", i)) for i in idx.tolist()],
            "slug": slugs,
            "title": titles,
            "genre": [GENRES[k] for k in genre.tolist()],
            "minutes": minutes,
            "popularity": popularity / popularity.sum(),
        }
    )


def pick_videos(size: int, u: np.ndarray, genre: np.ndarray) -> np.ndarray:
    """Return video indices: by popularity where ``genre`` < 0, else uniformly within that genre."""
    cat = catalog(size)
    cdf = np.cumsum(cat["popularity"].to_numpy())
    by_popularity = np.searchsorted(cdf, u * cdf[-1], side="right").clip(0, size - 1)
    # Video i has genre i % len(GENRES): the k-th video of genre g is g + k * len(GENRES).
    n_genres = len(GENRES)
    per_genre = (size - np.maximum(genre, 0) + n_genres - 1) // n_genres
    within = np.maximum(genre, 0) + np.floor(u * per_genre).astype(np.int64) * n_genres
    return np.where(genre < 0, by_popularity, within).astype(np.int32)
