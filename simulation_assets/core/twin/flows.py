"""Event flow within a session: when it ends, which event comes next, and how long in between.

- **End of session**: after the event at position t the session ends with a
  hazard that depends on the class, the user's depth group, that event and t
  (positions 0-31 one by one, then in buckets 12 % wider each): the share of
  sessions reaching that event at that position which end there, smoothed
  toward the same figure for the depth group over all classes (then toward the
  group's overall end rate after that event). This reproduces the
  export's session lengths, which a plain Markov chain would flatten into a
  geometric distribution.
- **Next event**: a second-order Markov chain per class (the state is the last
  two events, START before the first), the class's counts smoothed toward the
  class's first-order chance (last event only), itself smoothed toward the
  first-order chance of all classes (Dirichlet pseudo-counts ``flow_smoothing``);
  on top, where a state is common enough at a given position (bucket), its own
  chances there, smoothed toward the position-free ones. Positions matter: a
  session that has looped through three reports is nearer its logout than one
  that just opened the dashboard, and a session's opening events follow their
  own script. Transitions seen for fewer than k users are not counted at all.
- **Time between events**: per transition (event -> next event) a quantile
  sketch of the log seconds between them once the session's pace is taken out;
  the pace (how much slower or faster than usual a whole session runs, the mean
  log-time residual of its gaps, shrunk by its noise) has its own sketch, drawn
  once per session. A transition with too few observations uses its first event's
  sketch, then the whole export's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.twin.sketch import grouped_sketches, quantile_sketch

ANY = -1  # "any next event" in the inter-event time table
EXACT_POSITIONS = 32
POSITIONAL_MIN = 10  # observations a (class, prev, cur, position) state needs for its own row


def position_buckets(max_position: int = 100_000) -> np.ndarray:
    """Return the first position of each bucket: 0..31 one by one, then buckets 12 % wider each."""
    edges = list(range(EXACT_POSITIONS))
    x = float(EXACT_POSITIONS)
    while x < max_position:
        edges.append(int(round(x)))
        x = max(x * 1.12, edges[-1] + 1)
    return np.unique(np.array(edges, np.int64))


BUCKETS = position_buckets()


def bucket_of(position: np.ndarray) -> np.ndarray:
    """Return the bucket index of 0-based event positions."""
    return np.searchsorted(BUCKETS, np.asarray(position), side="right") - 1


@dataclass(frozen=True)
class FlowTables:
    """Codes index ``events``; START = V. Transitions hold no END: ends come from ``hazard``."""

    events: tuple[str, ...]
    transitions: pl.DataFrame  # class, prev, cur, bucket (-1: any position), next, probability
    hazard: pl.DataFrame  # class, depth, cur, bucket, hazard
    times: pl.DataFrame  # cur, next (ANY = fallback), level, log_seconds
    pace: np.ndarray  # quantile sketch of a session's log-time pace


def vocabulary(
    events: pl.DataFrame, k: int, limit: int, exclude: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """Return (kept event names, dropped ones): names seen for at least k users, the ``limit`` most widespread."""
    users = events.group_by("event").agg(pl.col("user").n_unique().alias("users"), pl.len().alias("rows"))
    users = users.filter(~pl.col("event").is_in(list(exclude))).sort(
        ["users", "rows", "event"], descending=[True, True, False]
    )
    kept = users.filter(pl.col("users") >= k).head(limit)["event"].to_list()
    dropped = sorted(set(users["event"].to_list()) - set(kept))
    return kept, dropped


def coded_sessions(events: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Return the events whose name is in ``names`` with integer codes, in session order, re-sequenced."""
    lookup = pl.DataFrame({"event": names, "code": np.arange(len(names), dtype=np.int32)})
    kept = events.join(lookup, on="event", how="inner").sort("session", "t_ms", "seq")
    return kept.with_columns(pl.int_range(pl.len()).over("session").cast(pl.Int32).alias("pos"))


def fit_flows(coded: pl.DataFrame, classes: np.ndarray, depth: np.ndarray, names: list[str], k: int,
              smoothing: float, levels: int) -> FlowTables:  # fmt: skip
    """Fit the per-class chains, end hazards and time sketches (see module doc).

    ``coded`` comes from :func:`coded_sessions`; ``classes[user]`` is each user's class and
    ``depth[user]`` their session-depth group.
    """
    v = len(names)
    start = v
    code = coded["code"].to_numpy().astype(np.int64)
    session = coded["session"].to_numpy()
    user = coded["user"].to_numpy()
    pos = coded["pos"].to_numpy().astype(np.int64)
    t = coded["t_ms"].to_numpy()
    n = len(code)
    first = np.r_[True, session[1:] != session[:-1]] if n else np.zeros(0, np.bool_)
    last = np.r_[session[1:] != session[:-1], True] if n else np.zeros(0, np.bool_)
    prev = np.where(first, start, np.r_[start, code[:-1]])
    nxt = np.r_[code[1:], 0] if n else code
    cls = np.asarray(classes)[user].astype(np.int64)
    n_classes = int(np.max(classes)) + 1 if len(classes) else 1
    hazard = _hazard(cls, np.asarray(depth)[user].astype(np.int64), code, pos, last, n_classes, smoothing)
    # Transitions (never END): one row per event that has a next one, plus (START, START) -> first event.
    go = ~last
    f = np.flatnonzero(first)
    rows = pl.DataFrame(
        {
            "class": np.r_[cls[go], cls[f]],
            "prev": np.r_[prev[go], np.full(f.size, start)],
            "cur": np.r_[code[go], np.full(f.size, start)],
            "next": np.r_[nxt[go], code[f]],
            "user": np.r_[user[go], user[f]],
            "bucket": np.r_[bucket_of(pos[go]), np.full(f.size, -1)],
        }
    )
    transitions = _chain(rows, k, smoothing, n_classes, start)
    order = ["class", "prev", "cur", "bucket", "next", "probability"]
    anywhere = transitions.with_columns(pl.lit(-1, pl.Int32).alias("bucket")).select(order)
    transitions = pl.concat([anywhere, _positional(rows, transitions, k, smoothing).select(order)])
    transitions = transitions.sort("class", "prev", "cur", "bucket", "next")
    times, pace = _time_sketches(code, nxt, t, last, session, v, k, levels)
    return FlowTables(tuple(names), transitions, hazard, times, pace)


def _hazard(cls: np.ndarray, depth: np.ndarray, code: np.ndarray, pos: np.ndarray, last: np.ndarray,
            n_classes: int, b: float) -> pl.DataFrame:  # fmt: skip
    """Return the end hazard per (class, depth group, event, position bucket).

    Smoothed toward the depth group's figure over all classes, itself smoothed toward the group's
    end rate of that event at any position.
    """
    frame = pl.DataFrame({"class": cls, "depth": depth, "cur": code, "bucket": bucket_of(pos), "end": last})
    overall = frame.group_by("depth", "cur").agg(pl.col("end").mean().alias("h_event"))
    pooled = frame.group_by("depth", "cur", "bucket").agg(pl.len().alias("n"), pl.col("end").sum().alias("e"))
    pooled = pooled.join(overall, on=["depth", "cur"]).with_columns(
        ((pl.col("e") + b * pl.col("h_event")) / (pl.col("n") + b)).alias("h_pool")
    )
    per = frame.group_by("class", "depth", "cur", "bucket").agg(
        pl.len().alias("nc"), pl.col("end").sum().alias("ec")
    )
    grid = (
        pl.DataFrame({"class": np.arange(n_classes, dtype=np.int64)})
        .join(pooled.select("depth", "cur", "bucket", "h_pool"), how="cross")
        .join(per, on=["class", "depth", "cur", "bucket"], how="left")
        .fill_null(0)
    )
    grid = grid.with_columns(((pl.col("ec") + b * pl.col("h_pool")) / (pl.col("nc") + b)).alias("hazard"))
    return grid.select(
        pl.col("class").cast(pl.Int16),
        pl.col("depth").cast(pl.Int16),
        pl.col("cur").cast(pl.Int32),
        pl.col("bucket").cast(pl.Int32),
        "hazard",
    ).sort("class", "depth", "cur", "bucket")


def _positional(rows: pl.DataFrame, chain: pl.DataFrame, k: int, b: float) -> pl.DataFrame:
    """Return next-event chances per (class, prev, cur, position bucket), smoothed toward ``chain``.

    Only states seen at least ``POSITIONAL_MIN`` times get a row (rarer ones would equal the
    position-free chance anyway); (prev, cur, bucket, next) must be seen for k users.
    """
    rows = rows.filter(pl.col("bucket") >= 0)
    ok = (
        rows.group_by("prev", "cur", "bucket", "next")
        .agg(pl.col("user").n_unique().alias("u"))
        .filter(pl.col("u") >= k)
    )
    counted = rows.join(
        ok.select("prev", "cur", "bucket", "next"), on=["prev", "cur", "bucket", "next"], how="semi"
    )
    n4 = counted.group_by("class", "prev", "cur", "bucket", "next").agg(pl.len().alias("n4"))
    states = n4.group_by("class", "prev", "cur", "bucket").agg(pl.col("n4").sum().alias("total"))
    states = states.filter(pl.col("total") >= POSITIONAL_MIN)
    cast = [pl.col(c).cast(pl.Int64) for c in ("class", "prev", "cur", "next")]
    grid = (
        states.with_columns(pl.col("class", "prev", "cur").cast(pl.Int64))
        .join(chain.with_columns(*cast), on=["class", "prev", "cur"], how="inner")
        .join(
            n4.with_columns(pl.col("class", "prev", "cur", "next").cast(pl.Int64)),
            on=["class", "prev", "cur", "bucket", "next"],
            how="left",
        )  # fmt: skip
        .fill_null(0)
    )
    grid = grid.with_columns(
        ((pl.col("n4") + b * pl.col("probability")) / (pl.col("total") + b)).alias("probability")
    )
    return grid.filter(pl.col("probability") > 0).select(
        pl.col("class").cast(pl.Int16),
        pl.col("prev").cast(pl.Int32),
        pl.col("cur").cast(pl.Int32),
        pl.col("bucket").cast(pl.Int32),
        pl.col("next").cast(pl.Int32),
        pl.col("probability").cast(pl.Float64),
    )


def _chain(rows: pl.DataFrame, k: int, b: float, n_classes: int, start: int) -> pl.DataFrame:
    """Return the smoothed second-order transition probabilities of every class (see module doc)."""
    # k-anonymity: a (cur, next) pair, and a (prev, cur, next) triple, must be seen for k users.
    pair_ok = rows.group_by("cur", "next").agg(pl.col("user").n_unique().alias("u")).filter(pl.col("u") >= k)
    triple_ok = (
        rows.group_by("prev", "cur", "next")
        .agg(pl.col("user").n_unique().alias("u"))
        .filter(pl.col("u") >= k)
    )
    rows = rows.join(pair_ok.select("cur", "next"), on=["cur", "next"], how="semi")
    pooled1 = rows.group_by("cur", "next").agg(pl.len().alias("n"))
    pooled1 = pooled1.with_columns((pl.col("n") / pl.col("n").sum().over("cur")).alias("p_pool"))
    class1 = rows.group_by("class", "cur", "next").agg(pl.len().alias("n1"))
    class2 = rows.join(triple_ok.select("prev", "cur", "next"), on=["prev", "cur", "next"], how="semi")
    class2 = class2.group_by("class", "prev", "cur", "next").agg(pl.len().alias("n2"))
    # States: every (prev, cur) the pooled first-order chain can reach, plus (START, START).
    support = pooled1.select(pl.col("cur").cast(pl.Int64), pl.col("next").cast(pl.Int64))
    states = pl.concat(
        [
            support.filter(pl.col("cur") != start).select(
                pl.col("cur").alias("prev"), pl.col("next").alias("cur")
            ),
            support.filter(pl.col("cur") == start).select(
                pl.col("cur").alias("prev"), pl.col("next").alias("cur")
            ),
            pl.DataFrame({"prev": [start], "cur": [start]}, schema={"prev": pl.Int64, "cur": pl.Int64}),
        ]
    ).unique()
    grid = (
        pl.DataFrame({"class": np.arange(n_classes, dtype=np.int64)})
        .join(states, how="cross")
        .join(support, on="cur", how="inner")
        .join(
            pooled1.select(pl.col("cur").cast(pl.Int64), pl.col("next").cast(pl.Int64), "p_pool"),
            on=["cur", "next"],
            how="left",
        )
        .join(
            class1.with_columns(pl.col("class", "cur", "next").cast(pl.Int64)),
            on=["class", "cur", "next"],
            how="left",
        )
        .join(
            class2.with_columns(pl.col("class", "prev", "cur", "next").cast(pl.Int64)),
            on=["class", "prev", "cur", "next"],
            how="left",
        )
        .fill_null(0)
    )
    n1_total = (
        grid.unique(["class", "cur", "next"])
        .group_by("class", "cur")
        .agg(pl.col("n1").sum().alias("n1_total"))
    )
    grid = grid.join(n1_total, on=["class", "cur"], how="left").with_columns(
        ((pl.col("n1") + b * pl.col("p_pool")) / (pl.col("n1_total") + b)).alias("p1")
    )
    grid = grid.with_columns(pl.col("n2").sum().over("class", "prev", "cur").alias("n2_total"))
    grid = grid.with_columns(
        ((pl.col("n2") + b * pl.col("p1")) / (pl.col("n2_total") + b)).alias("probability")
    )
    grid = grid.with_columns(pl.col("probability") / pl.col("probability").sum().over("class", "prev", "cur"))
    return (
        grid.filter(pl.col("probability") > 0)
        .select(
            pl.col("class").cast(pl.Int16),
            pl.col("prev").cast(pl.Int32),
            pl.col("cur").cast(pl.Int32),
            pl.col("next").cast(pl.Int32),
            pl.col("probability").cast(pl.Float64),
        )
        .sort("class", "prev", "cur", "next")
    )


def _time_sketches(code: np.ndarray, nxt: np.ndarray, t: np.ndarray, last: np.ndarray, session: np.ndarray,
                   v: int, k: int, levels: int) -> tuple[pl.DataFrame, np.ndarray]:  # fmt: skip
    """Return (sketches per (cur, next) / (cur, ANY) / (ANY, ANY) of pace-free log gaps, the pace sketch)."""
    within = ~last
    gap_s = (np.r_[t[1:], t[-1:]] - t) / 1000.0 if t.size else t.astype(np.float64)
    cur, to, gap, sess = code[within], nxt[within], gap_s[within], session[within]
    log_gap = np.log1p(np.maximum(gap, 0.0))
    width = v + 2
    pair = cur * width + to
    # Pace: a session's mean residual against each transition's median, shrunk by the noise of its few gaps.
    med = pl.DataFrame({"p": pair, "x": log_gap}).group_by("p").agg(pl.col("x").median().alias("m"))
    resid = (
        log_gap
        - pl.DataFrame({"p": pair}).join(med, on="p", how="left", maintain_order="left")["m"].to_numpy()
    )
    per = pl.DataFrame({"s": sess, "r": resid}).group_by("s").agg(pl.col("r").mean().alias("mean"), pl.col("r").var().alias("var"),
                                                                   pl.len().alias("n"))  # fmt: skip
    per = per.filter(pl.col("n") >= 2)
    pace_by_session = np.zeros(int(session.max()) + 1 if session.size else 1)
    pace = np.zeros(levels)
    if per.height >= 2 * k:
        means = per["mean"].to_numpy()
        noise = float(np.nanmean(per["var"].to_numpy() / per["n"].to_numpy()))
        spread = float(np.var(means))
        shrink = np.sqrt(max(spread - noise, 0.0) / spread) if spread > 0 else 0.0
        centre = float(np.mean(means))
        shrunk = centre + (means - centre) * shrink
        pace_by_session[per["s"].to_numpy()] = shrunk
        sketch = quantile_sketch(shrunk, levels, k)
        pace = sketch if sketch is not None else pace
    adjusted = log_gap - pace_by_session[sess]
    names, q = grouped_sketches(pair, adjusted, levels, k)
    parts = [pl.DataFrame({"cur": names // width, "next": names % width, "q": q.tolist()})]
    names1, q1 = grouped_sketches(cur, adjusted, levels, k)
    parts.append(pl.DataFrame({"cur": names1, "next": np.full(names1.size, ANY), "q": q1.tolist()}))
    overall = quantile_sketch(adjusted, levels, k)
    if overall is None:
        overall = np.log1p(np.full(levels, 10.0))
    parts.append(pl.DataFrame({"cur": [ANY], "next": [ANY], "q": [overall.tolist()]}))
    table = pl.concat(
        [
            p.with_columns(pl.col("cur").cast(pl.Int32), pl.col("next").cast(pl.Int32))
            for p in parts
            if p.height
        ]
    )
    times = (
        table.with_columns(pl.int_ranges(0, levels).alias("level"))
        .explode("q", "level")
        .select(
            "cur", "next", pl.col("level").cast(pl.Int16), pl.col("q").cast(pl.Float64).alias("log_seconds")
        )
    )
    return times, pace
