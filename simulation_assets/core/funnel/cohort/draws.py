"""Vectorized building blocks of a cohort: time units, random ids, labelled choices, buckets.

Every function takes whole arrays and draws from the generator it is given, so a
cohort's draws happen in one fixed order and the same seed gives the same bytes.
"""

from __future__ import annotations

import functools

import numpy as np
import polars as pl

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
"""Durations in milliseconds (event times are epoch milliseconds)."""


_HEX_PAIRS = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint16)
_HEX_QUADS = (_HEX_PAIRS.astype(np.uint32)[:, None] << 16 | _HEX_PAIRS[None, :]).ravel()
"""The hex digits of every 16-bit value of two bytes as they lie in memory (4 characters in 32 bits)."""


def hex_ids(gen: np.random.Generator, n: int, prefix: str, nbytes: int = 12) -> pl.Series:
    """Return ``n`` ids ``prefix`` + 2*``nbytes`` random hex digits (deterministic for the stream)."""
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    digits = hex_digits(gen, n, nbytes)
    text = np.empty((n, len(head) + 2 * nbytes), dtype=np.uint8)
    text[:, : len(head)] = head
    text[:, len(head) :] = digits
    return text_rows(text)


def hex_digits(gen: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    """Return ``n`` rows of 2*``nbytes`` random hex digits as ASCII codes (``n`` x 2*``nbytes`` uint8).

    One table lookup per two random bytes; the draws are those of :func:`hex_ids`.
    """
    raw = gen.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    raw[:, -1] |= 1  # kept from an earlier encoding, so the ids stay the same
    if nbytes % 2 == 0 and np.little_endian:
        return _HEX_QUADS.take(raw.view(np.uint16).astype(np.intp)).view(np.uint8).reshape(n, 2 * nbytes)
    return _HEX_PAIRS[raw].view(np.uint8).reshape(n, 2 * nbytes)


def text_rows(text: np.ndarray) -> pl.Series:
    """Return each row of an ``n`` x width uint8 array of ASCII codes as one string.

    Handed to polars as one buffer: rows of fixed width become binary values, then text
    (building the Series from numpy's fixed-width ``bytes`` type cost ~3x a whole id draw).
    """
    n, width = text.shape
    rows = pl.Series("id", np.ascontiguousarray(text).ravel()).reshape((n, width))
    return rows.cast(pl.List(pl.UInt8)).cast(pl.Binary).cast(pl.String)


def null_unless(keep: np.ndarray, values: pl.Series) -> pl.Series:
    """Return ``values`` where ``keep`` is true and null elsewhere."""
    return (
        values.to_frame("v")
        .select(pl.when(pl.lit(pl.Series(keep, dtype=pl.Boolean))).then(pl.col("v")))
        .to_series()
        .rename(values.name)
    )


def lognormal_ms(
    gen: np.random.Generator, median_ms: float, sigma: float, n: int, shift: np.ndarray | float = 0.0
) -> np.ndarray:
    """Return ``n`` log-normal durations in milliseconds (at least 1) around ``median_ms``."""
    return np.maximum(1, median_ms * np.exp(sigma * gen.standard_normal(n) + shift)).astype(np.int64)


def labels(choices: tuple[str, ...], index: np.ndarray) -> pl.Series:
    """Return ``choices[index]`` as a string Series (no per-row Python, no numpy unicode).

    Indexing with a numpy array takes rows directly; ``Series.gather`` goes through a query
    (~3x the time for the few thousand rows of a typical call, ~180 calls per cohort).
    """
    return _choices(choices)[np.asarray(index, dtype=np.int64)]


@functools.lru_cache(maxsize=256)
def _choices(choices: tuple[str, ...]) -> pl.Series:
    return pl.Series(list(choices), dtype=pl.String)


def pick(
    gen: np.random.Generator, choices: tuple[str, ...], p: tuple[float, ...] | None, n: int
) -> pl.Series:
    """Return ``n`` labels drawn from ``choices`` with probabilities ``p`` (uniform when None)."""
    return labels(choices, gen.choice(len(choices), size=n, p=p))


def select(values: pl.Series | np.ndarray, mask: np.ndarray) -> pl.Series | np.ndarray:
    """Return the rows of ``values`` (numpy or polars) where ``mask`` is true."""
    if isinstance(values, pl.Series):
        return values.filter(pl.Series(mask, dtype=pl.Boolean))
    return values[mask]


def select_all(values: dict[str, object], mask: np.ndarray, **override: object) -> dict[str, object]:
    """Return ``values`` with every array or Series cut to ``mask`` (scalars kept), then ``override``."""
    out: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, pl.Series):
            out[key] = value.filter(pl.Series(mask))
        elif isinstance(value, np.ndarray):
            out[key] = value[mask]
        else:
            out[key] = value
    out.update(override)
    return out


def duration_bucket(seconds: np.ndarray) -> pl.Series:
    """Return the plan's video duration buckets (section 9B) of durations in seconds."""
    return labels(("0-10s", "10-30s", "30-60s", "60s+"), np.searchsorted([10, 30, 60], seconds, side="right"))


def file_size_bucket(nbytes: np.ndarray) -> pl.Series:
    """Return file size buckets of sizes in bytes."""
    index = np.searchsorted([50, 150, 500], nbytes / 1e6, side="right")
    return labels(("0-50mb", "50-150mb", "150-500mb", "500mb+"), index)


def latency_bucket(ms: np.ndarray) -> pl.Series:
    """Return the plan's latency buckets (section 2F) of processing times in milliseconds."""
    return labels(("<30s", "30-120s", ">120s"), np.searchsorted([30_000, 120_000], ms, side="right"))
