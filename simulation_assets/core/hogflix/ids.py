"""Identifiers of the traffic: deterministic event, session and device ids, vectorized.

Event ids are RFC 4122 UUIDv5: SHA-1 of a fixed namespace and a 28-byte name
packed from (seed, persona, timestamp in ms, sequence in the session), so the
same seed and partition always give the same ids and a re-sent event carries
the same uuid (PostHog deduplicates it). The hashing runs in DuckDB's
vectorized ``sha1`` on one thread, a whole column at a time.

Session and device ids are UUIDv7 (the kind posthog-js generates, and the
only kind PostHog's sessions table accepts for ``$session_id``): the 48-bit
time is the session start or device creation and the 74 "random" bits are a
stable hash of (seed, persona, time).
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.rng import splitmix64, stable_uuid

if TYPE_CHECKING:
    import duckdb

EVENT_NAMESPACE = stable_uuid(0, "hogflix", "event-uuid-namespace")
# The UUIDv5 name of an event: little-endian seed, persona, milliseconds and sequence (28 bytes).
_EVENT_NAME = np.dtype([("seed", "<u8"), ("persona", "<i8"), ("ts", "<i8"), ("seq", "<u4")])
_SHA1_INPUT = np.dtype([("namespace", "V16"), ("name", _EVENT_NAME)])
_MASK64 = (1 << 64) - 1
# Two ASCII hex digits per byte value, as one little-endian uint16.
_HEX_PAIRS = np.array(
    [ord(a) | (ord(b) << 8) for a in "0123456789abcdef" for b in "0123456789abcdef"], np.uint16
)


def _splitmix64_int(x: int) -> int:
    """Row-by-row twin of ``core.rng.splitmix64`` on a Python int (for the reference implementation)."""
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
    """Return the UUIDv5 of one event with ``hashlib`` (reference implementation of ``event_uuids``)."""
    name = np.zeros(1, _EVENT_NAME)
    name[0] = (seed, persona, ts_ms, seq)
    digest = hashlib.sha1(EVENT_NAMESPACE.bytes + name.tobytes()).digest()
    return uuid.UUID(bytes=digest[:16], version=5)


_local = threading.local()


def _duckdb() -> duckdb.DuckDBPyConnection:
    """Return this thread's in-memory DuckDB (one thread: the figure per core stays honest)."""
    con = getattr(_local, "con", None)
    if con is None or _local.pid != os.getpid():
        import duckdb  # only the event ids need it: the lifecycle's imports stay without DuckDB

        con = duckdb.connect(config={"threads": 1})
        _local.con, _local.pid = con, os.getpid()
    return con


# Four lower-case hex digits of every 16-bit value, as the uint32 whose little-endian bytes spell them.
_HEX4 = _HEX_PAIRS[np.arange(1 << 16) >> 8].astype(np.uint32) | (
    _HEX_PAIRS[np.arange(1 << 16) & 0xFF].astype(np.uint32) << 16
)
# A canonical uuid string as 36 bytes: eight groups of four digits and four dashes (unaligned fields).
_UUID_TEXT = np.dtype(
    {
        "names": ["g0", "g1", "d0", "g2", "d1", "g3", "d2", "g4", "d3", "g5", "g6", "g7"],
        "formats": ["<u4", "<u4", "u1", "<u4", "u1", "<u4", "u1", "<u4", "u1", "<u4", "<u4", "<u4"],
        "offsets": [0, 4, 8, 9, 13, 14, 18, 19, 23, 24, 28, 32],
        "itemsize": 36,
    }
)

_FORMAT_BLOCK = 1 << 16
# Up to this many strings a Series is made from the rows as NumPy bytes; above, from one Arrow array over
# them (no copy, but a pool-sized day's few signups would load PyArrow and its compute module for it).
_ARROW_STRINGS = 1 << 16


def format_uuid_words(high: np.ndarray, low: np.ndarray) -> pl.Series:
    """Return canonical lower-case uuid strings of 128-bit values given as two uint64 halves.

    Rows are written in blocks that stay in cache: the twelve field stores of a block hit the same
    few hundred kilobytes instead of sweeping the whole output twelve times.
    """
    n = len(high)
    out = np.empty(n, _UUID_TEXT)
    mask, dash = np.uint64(0xFFFF), ord("-")
    shifts = [np.uint64(s) for s in (48, 32, 16, 0)]
    for a in range(0, n, _FORMAT_BLOCK):
        block = out[a : a + _FORMAT_BLOCK]
        for half, word in enumerate((high[a : a + _FORMAT_BLOCK], low[a : a + _FORMAT_BLOCK])):
            for k, shift in enumerate(shifts):
                block[f"g{4 * half + k}"] = _HEX4[(word >> shift) & mask]
        for k in range(4):
            block[f"d{k}"] = dash
    if n < _ARROW_STRINGS:  # the same strings, through NumPy's fixed-width bytes
        return pl.Series(out.view("S36")).cast(pl.String)
    import pyarrow as pa

    # One Arrow string array over the 36-byte rows (no per-row objects; the bytes are ASCII).
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    arr = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out)])
    return pl.Series(arr)


def format_uuids(raw: np.ndarray) -> pl.Series:
    """Return canonical lower-case uuid strings of an (n, 16) uint8 array."""
    words = np.ascontiguousarray(raw, np.uint8).view(">u8").astype(np.uint64)
    return format_uuid_words(words[:, 0], words[:, 1])


def event_uuids(seed: int, persona: np.ndarray, ts_ms: np.ndarray, seq: np.ndarray) -> pl.Series:
    """Return the UUIDv5 strings of many events (same values as ``event_uuid`` row by row)."""
    n = len(persona)
    if n == 0:
        return pl.Series([], dtype=pl.String)
    packed = np.empty(n, _SHA1_INPUT)
    packed["namespace"] = np.frombuffer(EVENT_NAMESPACE.bytes, "V16")[0]
    name = packed["name"]
    name["seed"], name["persona"], name["ts"], name["seq"] = seed, persona, ts_ms, seq
    size = _SHA1_INPUT.itemsize
    import pyarrow as pa

    names = pa.table(
        {"b": pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), n, [None, pa.py_buffer(packed)])}
    )
    query = _duckdb().from_arrow(names).select("sha1(b::BLOB) AS h")
    hexed = query.to_arrow_table().column("h").combine_chunks()
    if hexed.type != pa.string():  # plain 32-bit offsets and one values buffer below
        hexed = hexed.cast(pa.string())
    offsets = np.frombuffer(hexed.buffers()[1], np.int32, n + 1, offset=4 * hexed.offset)
    digits = np.frombuffer(hexed.buffers()[2], np.uint8, 40 * n, offset=int(offsets[0])).view(_SHA1_HEX)
    # The first 32 of the 40 hex digits, in uuid groups, with the version and variant digits set.
    out = np.empty(n, _UUID5_TEXT)
    for field in ("g0", "g1", "g2", "g3", "g4"):
        out[field] = digits[field]
    out["version"] = ord("5")
    out["variant"] = _VARIANT_DIGIT[digits["variant"]]
    for k in range(4):
        out[f"d{k}"] = ord("-")
    text_offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pl.Series(
        pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(text_offsets), pa.py_buffer(out)])
    )


# DuckDB's sha1 gives 40 hex digits; a uuid keeps the first 32 as 8-4-4-4-12, the 13th digit
# replaced by the version (5) and the 17th by the variant (8, 9, a or b).
_SHA1_HEX = np.dtype(
    {
        "names": ["g0", "g1", "g2", "variant", "g3", "g4"],
        "formats": ["V8", "V4", "V3", "u1", "V3", "V12"],
        "offsets": [0, 8, 13, 16, 17, 20],
        "itemsize": 40,
    }
)
_UUID5_TEXT = np.dtype(
    {
        "names": ["g0", "d0", "g1", "d1", "version", "g2", "d2", "variant", "g3", "d3", "g4"],
        "formats": ["V8", "u1", "V4", "u1", "u1", "V3", "u1", "u1", "V3", "u1", "V12"],
        "offsets": [0, 8, 9, 13, 14, 15, 18, 19, 20, 23, 24],
        "itemsize": 36,
    }
)
_VARIANT_DIGIT = np.zeros(256, np.uint8)
for _value, _digit in enumerate(b"0123456789abcdef"):
    _VARIANT_DIGIT[_digit] = b"0123456789abcdef"[(_value & 3) | 8]


def stable_hash(seed: int, salt: int, *columns: np.ndarray) -> np.ndarray:
    """Return a uint64 hash per row of integer ``columns``, stable across runs and machines."""
    with np.errstate(over="ignore"):
        h = splitmix64(np.uint64(seed) * np.uint64(0x100000001B3) + np.uint64(salt))
        out = np.full(len(columns[0]), h, np.uint64)
        for col in columns:
            out = splitmix64(out ^ np.asarray(col).astype(np.int64).view(np.uint64))
        return out


def hash_unit(seed: int, salt: int, *columns: np.ndarray) -> np.ndarray:
    """Return a uniform in [0, 1) per row, a stable function of ``columns``."""
    return (stable_hash(seed, salt, *columns) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def uuid7s(ms: np.ndarray, seed: int, salt: int, *columns: np.ndarray) -> pl.Series:
    """Return UUIDv7 strings whose time is ``ms`` and whose random bits hash (seed, salt, columns)."""
    ms = np.asarray(ms, np.int64)
    lo = stable_hash(seed, salt, ms, *columns)
    hi = splitmix64(lo)
    u64 = np.uint64
    # 48-bit time, version 7, 12 bits of hash | variant 10, 62 bits of hash (same bits as the reference).
    high = (ms.view(u64) << u64(16)) | u64(0x7000) | ((lo >> u64(48)) & u64(0x0FFF))
    low = u64(1 << 63) | (((lo << u64(16)) | (hi >> u64(48))) & u64((1 << 62) - 1))
    return format_uuid_words(high, low)


def uuid7_ms(value: str) -> int:
    """Return the millisecond timestamp embedded in a UUIDv7 string."""
    return uuid.UUID(value).int >> 80
