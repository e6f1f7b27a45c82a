"""Identifiers of the traffic: deterministic UUIDv5 event ids and UUIDv7 session/device ids, vectorized.

Event ids are RFC 4122 UUIDv5 (SHA-1) of a fixed 28-byte name packed from the
global seed, the persona number, the event timestamp (ms) and the event's
sequence number within its session, so re-sending a partition gives PostHog
the same uuid and it deduplicates. Session ids are UUIDv7 whose 48-bit time is
the session start (PostHog's sessions table ignores any other kind) and whose
random bits are a hash of (seed, persona, start), so they are stable too.
"""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import polars as pl

from simulation_assets.core.rng import stable_uuid

EVENT_NAMESPACE = stable_uuid(0, "hogflix", "event-uuid-namespace")
_NAME_DTYPE = np.dtype([("seed", "<u8"), ("persona", "<i8"), ("ts", "<i8"), ("seq", "<u4")])
# Two ASCII hex digits per byte value, as one little-endian uint16.
_HEX_PAIRS = np.array(
    [ord(a) | (ord(b) << 8) for a in "0123456789abcdef" for b in "0123456789abcdef"], np.uint16
)


def event_uuid_name(seed: int, persona: int, ts_ms: int, seq: int) -> bytes:
    """Return the 28-byte UUIDv5 name of one event (little-endian seed, persona, ms, sequence)."""
    arr = np.zeros(1, _NAME_DTYPE)
    arr[0] = (seed, persona, ts_ms, seq)
    return arr.tobytes()


def event_uuid(seed: int, persona: int, ts_ms: int, seq: int) -> uuid.UUID:
    """Return the UUIDv5 of one event (reference implementation of ``event_uuids``)."""
    digest = hashlib.sha1(EVENT_NAMESPACE.bytes + event_uuid_name(seed, persona, ts_ms, seq)).digest()
    return uuid.UUID(bytes=digest[:16], version=5)


def format_uuids(raw: np.ndarray) -> pl.Series:
    """Return canonical lower-case uuid strings of an (n, 16) uint8 array."""
    n = raw.shape[0]
    digits = _HEX_PAIRS[raw].view(np.uint8).reshape(n, 32)
    out = np.empty((n, 36), np.uint8)
    out[:, [8, 13, 18, 23]] = ord("-")
    for src, dst in ((0, 0), (8, 9), (12, 14), (16, 19), (20, 24)):
        width = 8 if src == 0 else (12 if src == 20 else 4)
        out[:, dst : dst + width] = digits[:, src : src + width]
    return pl.Series(np.ascontiguousarray(out).view("S36").ravel()).cast(pl.String)


def event_uuids(seed: int, persona: np.ndarray, ts_ms: np.ndarray, seq: np.ndarray) -> pl.Series:
    """Return the UUIDv5 strings of many events (same values as ``event_uuid`` row by row).

    Packing, version bits and hex formatting are array operations; the SHA-1
    itself runs in C through ``hashlib`` once per event.
    """
    n = len(persona)
    names = np.empty(n, _NAME_DTYPE)
    names["seed"] = seed
    names["persona"] = persona
    names["ts"] = ts_ms
    names["seq"] = seq
    buf = names.tobytes()
    size = _NAME_DTYPE.itemsize
    sha1, ns = hashlib.sha1, EVENT_NAMESPACE.bytes
    digests = b"".join([sha1(ns + buf[i : i + size]).digest() for i in range(0, n * size, size)])
    raw = np.frombuffer(digests, np.uint8).reshape(n, 20)[:, :16].copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return format_uuids(raw)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Return the splitmix64 finalizer of uint64 values (a fast, well-mixed stable hash)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def stable_hash(seed: int, salt: int, *columns: np.ndarray) -> np.ndarray:
    """Return a uint64 hash per row of integer ``columns``, stable across runs and machines."""
    with np.errstate(over="ignore"):
        h = _splitmix64(np.uint64(seed) * np.uint64(0x100000001B3) + np.uint64(salt))
        out = np.full(len(columns[0]), h, np.uint64)
        for col in columns:
            out = _splitmix64(out ^ np.asarray(col).astype(np.int64).view(np.uint64))
        return out


def hash_unit(seed: int, salt: int, *columns: np.ndarray) -> np.ndarray:
    """Return a uniform in [0, 1) per row, a stable function of ``columns``."""
    return (stable_hash(seed, salt, *columns) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def uuid7s(ms: np.ndarray, seed: int, salt: int, *columns: np.ndarray) -> pl.Series:
    """Return UUIDv7 strings whose time is ``ms`` and whose random bits hash (seed, salt, columns)."""
    ms = np.asarray(ms, np.int64)
    n = len(ms)
    lo = stable_hash(seed, salt, ms, *columns)
    hi = _splitmix64(lo)
    raw = np.empty((n, 16), np.uint8)
    t = ms.astype(">u8").view(np.uint8).reshape(n, 8)[:, 2:]  # 48-bit big-endian milliseconds
    raw[:, :6] = t
    raw[:, 6:14] = lo.astype(">u8").view(np.uint8).reshape(n, 8)
    raw[:, 14:] = hi.astype(">u8").view(np.uint8).reshape(n, 8)[:, :2]
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return format_uuids(raw)


def uuid7_ms(value: str) -> int:
    """Return the millisecond timestamp embedded in a UUIDv7 string."""
    return uuid.UUID(value).int >> 80
