"""Identifiers of the traffic: deterministic UUIDv7 event, session and device ids, vectorized.

Every id is a UUIDv7 (the kind posthog-js generates): its 48-bit time is a
meaningful millisecond and its 74 "random" bits are a stable hash, so the same
seed and partition always give the same ids and a re-sent event carries the
same uuid (PostHog deduplicates it). Event ids use the event's timestamp and a
hash of (seed, persona, timestamp, sequence in the session); session ids use
the session start (PostHog's sessions table ignores any other kind of
``$session_id``) and a hash of (seed, persona, start).
"""

from __future__ import annotations

import uuid

import numpy as np
import polars as pl
import pyarrow as pa

EVENT_SALT = 31  # salt of the event-id hash (sessions, devices and conversations use other salts)
_MASK64 = (1 << 64) - 1
# Two ASCII hex digits per byte value, as one little-endian uint16.
_HEX_PAIRS = np.array(
    [ord(a) | (ord(b) << 8) for a in "0123456789abcdef" for b in "0123456789abcdef"], np.uint16
)


def _splitmix64_int(x: int) -> int:
    """Row-by-row twin of ``_splitmix64`` on a Python int (for the reference implementation)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def uuid7_reference(ms: int, seed: int, salt: int, *values: int) -> uuid.UUID:
    """Return one id of ``uuid7s`` computed row by row with Python ints (the reference implementation)."""
    h = _splitmix64_int((seed * 0x100000001B3 + salt) & _MASK64)
    for v in (ms, *values):
        h = _splitmix64_int(h ^ (v & _MASK64))
    hi = _splitmix64_int(h)
    rand_a = (h >> 48) & 0x0FFF  # 12 bits after the version nibble
    rand_b = ((h & ((1 << 48) - 1)) << 16 | (hi >> 48)) & ((1 << 62) - 1)  # 62 bits after the variant
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def event_uuid(seed: int, persona: int, ts_ms: int, seq: int) -> uuid.UUID:
    """Return the UUIDv7 of one event (reference implementation of ``event_uuids``)."""
    return uuid7_reference(ts_ms, seed, EVENT_SALT, persona, seq)


def format_uuids(raw: np.ndarray) -> pl.Series:
    """Return canonical lower-case uuid strings of an (n, 16) uint8 array."""
    n = raw.shape[0]
    digits = _HEX_PAIRS[raw].view(np.uint8).reshape(n, 32)
    out = np.empty((n, 36), np.uint8)
    out[:, [8, 13, 18, 23]] = ord("-")
    for src, dst in ((0, 0), (8, 9), (12, 14), (16, 19), (20, 24)):
        width = 8 if src == 0 else (12 if src == 20 else 4)
        out[:, dst : dst + width] = digits[:, src : src + width]
    # One Arrow string array over the 36-byte rows (no per-row objects; the bytes are ASCII).
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    arr = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out)])
    return pl.Series(arr)


def event_uuids(seed: int, persona: np.ndarray, ts_ms: np.ndarray, seq: np.ndarray) -> pl.Series:
    """Return the UUIDv7 strings of many events (same values as ``event_uuid`` row by row).

    The time is the event's timestamp, so ids sort like the events, as posthog-js's do.
    """
    return uuid7s(ts_ms, seed, EVENT_SALT, persona, seq)


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
