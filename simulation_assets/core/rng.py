"""Deterministic random streams.

Every draw in the project comes from a stream named by the global seed and a
tuple of keys (domain, asset, partition key, chunk, ...). Streams are derived
with a cryptographic hash of the keys, never Python's ``hash()``, so the same
seed and keys give the same numbers in any process, on any machine, in any
order: a partition computed alone equals the same partition inside a backfill.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable

import numpy as np

_KEY_SEPARATOR = b"\x1f"


def _key_words(keys: Iterable[object]) -> list[int]:
    """Return the 32-bit words of a BLAKE2b digest over the string form of ``keys``."""
    digest = hashlib.blake2b(
        _KEY_SEPARATOR.join(str(k).encode("utf-8") for k in keys), digest_size=16
    ).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def stream(seed: int, *keys: object) -> np.random.Generator:
    """Return an independent PCG64 generator for ``seed`` and the ordered ``keys``."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    sequence = np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(_key_words(keys)))
    return np.random.Generator(np.random.PCG64(sequence))


def stable_uuid(seed: int, *keys: object) -> uuid.UUID:
    """Return a UUIDv5 that depends only on ``seed`` and ``keys`` (for ids that must not change on re-runs)."""
    name = "/".join(str(k) for k in (seed, *keys))
    return uuid.uuid5(_NAMESPACE, name)


_NAMESPACE = uuid.UUID("6f1d2a57-3c1e-4b8e-9a55-2d1c5f0e7b10")


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Return the splitmix64 finalizer of uint64 values: a fast, well-mixed hash that is the same in any
    process and on any machine (for per-row choices keyed by an index or an id, without a stream)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
