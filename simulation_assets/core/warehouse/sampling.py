"""Vectorized sampling helpers shared by the warehouse generators (numpy only, no row loops)."""

from __future__ import annotations

import numpy as np
import polars as pl

DAY = 86_400
US = 1_000_000


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Return int64 counts summing exactly to ``total``, proportional to ``weights`` (largest remainder)."""
    w = np.asarray(weights, dtype=np.float64)
    if total == 0 or w.size == 0:
        return np.zeros(w.size, dtype=np.int64)
    share = w / w.sum() * total
    counts = np.floor(share).astype(np.int64)
    short = int(total - counts.sum())
    if short:
        order = np.argsort(-(share - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def exact_choice(rng: np.random.Generator, n: int, shares: dict[str, float]) -> np.ndarray:
    """Return ``n`` int8 codes (index into ``shares``) whose frequencies match the shares exactly, shuffled."""
    counts = apportion(n, np.fromiter(shares.values(), dtype=np.float64))
    codes = np.repeat(np.arange(len(shares), dtype=np.int8), counts)
    return rng.permutation(codes)


def choice(rng: np.random.Generator, n: int, shares: dict[str, float] | np.ndarray) -> np.ndarray:
    """Return ``n`` independent int16 codes drawn with the given shares (inverse CDF)."""
    p = (
        np.fromiter(shares.values(), dtype=np.float64)
        if isinstance(shares, dict)
        else np.asarray(shares, float)
    )
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1).astype(np.int16)


def allocate(rng: np.random.Generator, total: int, weights: np.ndarray, low: int, high: int) -> np.ndarray:
    """Return per-parent counts in [low, high] summing to ``total``, extra rows multinomial by ``weights``."""
    n = len(weights)
    if not n * low <= total <= n * high:
        raise ValueError(f"cannot split {total} rows over {n} parents with {low}..{high} each")
    counts = np.full(n, low, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64).copy()
    extra = total - n * low
    while extra > 0:
        room = high - counts
        w_open = np.where(room > 0, w, 0.0)
        add = rng.multinomial(extra, w_open / w_open.sum())
        over = np.maximum(add - room, 0)
        counts += add - over
        extra = int(over.sum())
    return counts


def dirty_rows(start: int, stop: int, share: float, salt: int) -> np.ndarray:
    """Return which global rows ``start .. stop - 1`` get dirt: a fixed hash of the row index below ``share``,
    so a chunk's dirt does not depend on the other chunks and the total is ``dirty_count``."""
    rows = np.arange(start, stop, dtype=np.uint64) + np.uint64(salt)
    hashed = (rows * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)  # 24 well-mixed bits
    return hashed < np.uint64(round(share * (1 << 24)))


def dirty_count(total: int, share: float, salt: int) -> int:
    """Return how many of ``total`` rows ``dirty_rows`` marks."""
    return int(dirty_rows(0, total, share, salt).sum())


def chunk_bounds(total: int, chunks: int, k: int) -> tuple[int, int]:
    """Return the [start, stop) row range of chunk ``k`` when ``total`` rows are split into ``chunks``."""
    return total * k // chunks, total * (k + 1) // chunks


def epoch_seconds(day: object) -> int:
    """Return the UTC epoch seconds of a ``datetime.date``."""
    import datetime as dt

    assert isinstance(day, dt.date)
    return int((day - dt.date(1970, 1, 1)).days) * DAY


def growth_times(rng: np.random.Generator, n: int, start: int, end: int, yearly_growth: float) -> np.ndarray:
    """Return ``n`` epoch seconds in [start, end) whose density grows by ``yearly_growth`` a year."""
    years = (end - start) / (365.25 * DAY)
    u = rng.random(n)
    a = np.log1p(yearly_growth)
    t = np.log1p(u * np.expm1(a * years)) / a if abs(a) > 1e-12 else u * years
    return (start + t * 365.25 * DAY).astype(np.int64)


def between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray, skew: float = 1.0) -> np.ndarray:
    """Return int64 times in [low, high]; ``skew`` > 1 pulls them towards ``low``."""
    u = rng.random(len(low))
    if skew != 1.0:
        u = u**skew
    return (low + u * (high - low)).astype(np.int64)


def ts(seconds: np.ndarray) -> pl.Series:
    """Return epoch seconds as a polars ``Datetime('us')`` series."""
    return pl.Series(np.asarray(seconds, dtype=np.int64) * US).cast(pl.Datetime("us"))


def ts_nullable(seconds: np.ndarray, valid: np.ndarray) -> pl.Series:
    """Return epoch seconds as ``Datetime('us')`` with nulls where ``valid`` is False."""
    s = pl.Series(np.asarray(seconds, dtype=np.int64) * US)
    return (
        s.set(pl.Series(~valid), None).cast(pl.Datetime("us"))
        if (~valid).any()
        else s.cast(pl.Datetime("us"))
    )


def dates(seconds: np.ndarray) -> pl.Series:
    """Return epoch seconds as a polars ``Date`` series (UTC day)."""
    return pl.Series((np.asarray(seconds, dtype=np.int64) // DAY).astype(np.int32)).cast(pl.Date)


def labels(codes: np.ndarray, names: dict[str, float] | list[str] | tuple[str, ...]) -> pl.Series:
    """Return codes mapped to their names as a string series (gathered natively, no Python objects).

    Not through ``categorical``: that imports PyArrow (~0.1 s of CPU), which a warehouse command
    otherwise never loads; the strings are the same, and gathering them is faster.
    """
    return pl.Series([str(k) for k in names], dtype=pl.String).gather(np.asarray(codes).astype(np.int32))


def categorical(codes: np.ndarray, names: list[str]) -> pl.Series:
    """Return codes as a dictionary-encoded (Categorical) string series without building the strings."""
    import pyarrow as pa

    array = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes).astype(np.int32)), pa.array(names))
    return pl.Series(pl.from_arrow(array))


def prefix_ids(prefix: str, index: np.ndarray, width: int = 14) -> pl.Series:
    """Return Stripe-style ids ``<prefix><zero-padded index>`` built column-wise."""
    frame = pl.DataFrame({"i": np.asarray(index, dtype=np.int64)})
    return frame.select((pl.lit(prefix) + pl.col("i").cast(pl.String).str.zfill(width)).alias("id"))["id"]


HOUR = 3_600
MONTH = 2_629_746  # average Gregorian month in seconds
NULL_TS = np.iinfo(np.int64).min  # stands for a null timestamp in int64 epoch-second arrays


def local_index(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (parent index, position within parent) for rows laid out parent by parent, ``counts`` per parent."""
    parent = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return parent, np.arange(len(parent)) - starts[parent]


def to_seconds(series: pl.Series) -> np.ndarray:
    """Return a datetime or date series as int64 epoch seconds (nulls become ``NULL_TS``)."""
    if series.dtype == pl.Date:
        return series.cast(pl.Int32).cast(pl.Int64).fill_null(NULL_TS // DAY).to_numpy() * DAY
    return (series.cast(pl.Datetime("us")).dt.epoch("s")).fill_null(NULL_TS).to_numpy()


def cumulative_shares(weights: tuple[float, ...] | list[float]) -> np.ndarray:
    """Return the float32 cumulative distribution of ``weights`` (last value 1), for ``searchsorted`` draws."""
    w = np.asarray(weights, dtype=np.float64)
    return (np.cumsum(w) / w.sum()).astype(np.float32)
