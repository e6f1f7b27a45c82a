"""Event flow within a session: when it ends, which event comes next, and how long in between.

- **Session groups**: every user is in one group, their depth group (quantiles of their mean log
  events per session) split by seconds per event (quantiles within the depth group), both means
  shrunk toward their class and activity band's (:func:`depth_pace_groups`). The chains and end
  hazards below are per (class, group); "depth group" below means this group.
- **End of session**: after the event at position t the session ends with a
  hazard that depends on the class, the user's depth group, that event and t
  (positions 0-31 one by one, then in buckets 12 % wider each): the share of
  sessions reaching that event at that position which end there, smoothed
  toward the same figure for the depth group over all classes (then toward the
  group's overall end rate after that event). This reproduces the
  export's session lengths, which a plain Markov chain would flatten into a
  geometric distribution. On top, the time the session has lasted so far
  (buckets doubling from 1 s to 18 h) moves the odds of ending after each event:
  a logistic fit of the ends on the elapsed bucket of that event, with the
  hazard above as offset (ridge-penalized, buckets seen fewer than 30 times
  keep odds 1). Sessions that always run for a while before they can end, or
  that end once their time is up, keep that shape although neither their
  position nor their last event tells it.
- **Next event**: a second-order Markov chain per class and depth group (the state is the last
  two events, START before the first; when the last event repeats itself, the
  state counts the repeats instead: ``REPEAT3`` for the third in a row,
  ``REPEAT4`` for the fourth, ``REPEAT5+`` beyond, so a loop that always stops
  after three rounds, such as progress events during a video, stops after three
  in the twin too instead of running a geometric number of rounds): the depth
  group's counts smoothed toward the class's second-order chance, those toward
  the class's first-order chance (last event only), itself smoothed toward the
  first-order chance of all classes (Dirichlet pseudo-counts ``flow_smoothing``),
  so users with long sessions may fill them differently (more watching, less
  browsing); on top, where a state is common enough at a given position
  (bucket), its own chances there, smoothed toward the class's at that position
  (or the position-free ones). Positions matter: a
  session that has looped through three reports is nearer its logout than one
  that just opened the dashboard, and a session's opening events follow their
  own script. Transitions seen for fewer than k users are not counted at all.
- **Time between events**: per transition (event -> next event) a quantile
  sketch of the log seconds between them once the session's pace is taken out;
  the pace (how much slower or faster than usual a whole session runs, the mean
  log-time residual of its gaps, shrunk by its noise) has its own sketch, drawn
  once per session. A transition with too few observations uses its first event's
  sketch, then the whole export's. An event that follows itself on a clock (a
  heartbeat, progress pings of one video) repeats the same gap: for each event,
  the share of its self-repeats after a self-repeat whose gap equals the one
  before (within 1 %) is kept, and the twin copies the previous gap that often.
- **User pace**: some users linger more than others on whatever they do, and
  how much often goes with how often they come (a shop's regulars read every
  page; a streaming service's daily viewers watch longer). A session's pace (the
  mean log-time residual of its gaps against each transition's median) is split
  into the user's own part and the session's (one-way random effects over the
  sessions with two or more gaps): the within-user spread of session paces, less
  the noise of their few gaps, is the session part, kept as the pace sketch above
  (deviations from the user's mean); what is left of the sessions' spread is
  between users. Users are banded by their active days (shares of all users,
  ``PACE_BAND_CUTS``), and each band keeps a quantile sketch of its users' mean
  paces pulled toward the band's centre until their spread is the band's
  between-user spread (the mean's own noise taken out). A twin user is banded the
  same way by the days they turn out active and draws one pace from their band's
  sketch, added to every log gap of theirs, on top of a session draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.twin.properties import PERSONAL_PATTERN
from simulation_assets.core.twin.sketch import grouped_sketches, quantile_sketch
from simulation_assets.core.twin.spec import END_SHIFT_LIMIT, REPEATS


def first_symbol(v: int) -> int:
    """Return the code of FIRST, the previous event of a user's first session's start state (after REPEATS)."""
    return v + 1 + len(REPEATS)


ANY = -1  # "any next event" in the inter-event time table
EXACT_POSITIONS = 32
POSITIONAL_MIN = 10  # observations a (class, prev, cur, position) state needs for its own row
# User pace bands: cuts at shares of all users ranked by active days (ties by row order).
PACE_BAND_CUTS = (0.25, 0.5, 0.75, 0.9, 0.97)
# Gap sketches by the position of the gap's first event: first position of each bucket (then doubling).
TIME_POSITIONS = (0, 1, 2, 3, 4, 8, 16, 32, 64, 128)
TIME_POSITION_PRIOR = 100.0


def position_buckets(max_position: int = 100_000) -> np.ndarray:
    """Return the first position of each bucket: 0..31 one by one, then buckets 12 % wider each."""
    edges = list(range(EXACT_POSITIONS))
    x = float(EXACT_POSITIONS)
    while x < max_position:
        edges.append(int(round(x)))
        x = max(x * 1.12, edges[-1] + 1)
    return np.unique(np.array(edges, np.int64))


BUCKETS = position_buckets()
ELAPSED_BUCKETS = (
    17  # seconds since the session's first event: bucket b holds [2^b - 1, 2^(b+1) - 1); the last, all later
)
ELAPSED_MIN_ROWS = 30
ELAPSED_RIDGE = 1.0
ACTIVITY_RIDGE = 5.0  # the ridge of the end hazard's shifts per (session group, band of active days)


def elapsed_bucket(seconds: np.ndarray) -> np.ndarray:
    """Return the elapsed-time bucket of seconds since a session's first event."""
    x = np.log2(np.maximum(np.asarray(seconds, np.float64), 0.0) + 1.0)
    return np.minimum(x.astype(np.int64), ELAPSED_BUCKETS - 1)


def bucket_of(position: np.ndarray) -> np.ndarray:
    """Return the bucket index of 0-based event positions."""
    return np.searchsorted(BUCKETS, np.asarray(position), side="right") - 1


@dataclass(frozen=True)
class FlowTables:
    """Codes index ``events``; START = V, REPEATS = V+1.. . Transitions hold no END: ends come from ``hazard``."""

    events: tuple[str, ...]
    transitions: pl.DataFrame  # class, depth, prev, cur, bucket (-1: any position), next, probability
    hazard: pl.DataFrame  # class, depth, cur, bucket, hazard
    times: pl.DataFrame  # cur, next (ANY = fallback), position (bucket's first; -1: any), level, log_seconds
    pace: np.ndarray  # quantile sketch of a session's log-time pace around its user's own
    end_by_elapsed: pl.DataFrame  # cur, elapsed (bucket), log_odds: added to the end hazard's log odds
    end_by_activity: pl.DataFrame  # depth (session group), band (of active days), log_odds: added as well
    repeat_gap: dict[int, float]  # event -> share of x -> x gaps (after an x -> x) equal to the one before
    session_paces: pl.DataFrame  # user, pace (raw mean residual), noise (its variance from its gaps): 2+ gaps
    within_user: float  # variance of a session's true pace around its user's own


def vocabulary(
    events: pl.DataFrame, k: int, limit: int, exclude: tuple[str, ...]
) -> tuple[list[str], list[str], int]:
    """Return (kept event names, dropped names that may be listed, how many other names were dropped).

    Kept: names seen for at least k users and holding no personal data (an e-mail, a phone number ...:
    ``properties.PERSONAL_PATTERN``), the ``limit`` most widespread. A dropped name is listed only when it
    was seen for k users and holds no personal data: an event seen by one user is itself their data.
    """
    users = events.group_by("event").agg(pl.col("user").n_unique().alias("users"), pl.len().alias("rows"))
    users = users.filter(~pl.col("event").is_in(list(exclude))).sort(
        ["users", "rows", "event"], descending=[True, True, False]
    )
    shareable = (pl.col("users") >= k) & ~pl.col("event").str.contains(PERSONAL_PATTERN)
    kept = users.filter(shareable).head(limit)["event"].to_list()
    listed = sorted(set(users.filter(shareable)["event"].to_list()) - set(kept))
    return kept, listed, users.height - len(kept) - len(listed)


def coded_sessions(events: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Return the events whose name is in ``names`` with integer codes, in session order, re-sequenced."""
    if _in_session_order(events):  # as sessionize returns them: no join and sort of the rows' names needed
        kept = events.filter(pl.col("event").is_in(names))
        codes = pl.col("event").replace_strict(
            names, np.arange(len(names), dtype=np.int32), return_dtype=pl.Int32
        )
        kept = kept.with_columns(codes.alias("code"))
        session = kept["session"].to_numpy()
        n = session.size
        first = np.r_[0, np.flatnonzero(np.diff(session)) + 1] if n else np.zeros(0, np.int64)
        pos = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n])) if n else np.zeros(0, np.int64)
        return kept.with_columns(pl.Series("pos", pos.astype(np.int32)))
    lookup = pl.DataFrame({"event": names, "code": np.arange(len(names), dtype=np.int32)})
    kept = events.join(lookup, on="event", how="inner").sort("session", "t_ms", "seq")
    return kept.with_columns(pl.int_range(pl.len()).over("session").cast(pl.Int32).alias("pos"))


def _in_session_order(events: pl.DataFrame) -> bool:
    """Whether rows come by session, then time, then position in the session (each step ascending)."""
    session, t, seq = (events[c].to_numpy() for c in ("session", "t_ms", "seq"))
    if session.size < 2:
        return True
    ds, dt_, dq = np.diff(session), np.diff(t), np.diff(seq)
    return bool(((ds > 0) | ((ds == 0) & ((dt_ > 0) | ((dt_ == 0) & (dq > 0))))).all())


def run_lengths(code: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Return how many times in a row (1, 2, ...) each event's name has come up in its session so far."""
    n = code.size
    if n == 0:
        return np.zeros(0, np.int64)
    new_run = first | np.r_[True, code[1:] != code[:-1]]
    start = np.maximum.accumulate(np.where(new_run, np.arange(n), 0))
    return np.arange(n) - start + 1


def repeat_states(code: np.ndarray, first: np.ndarray, v: int) -> np.ndarray:
    """Return each event's "previous event" symbol: the event before it, or a REPEATS code (V+1..) from 3 in a row.

    Rows at a session's first event get a meaningless value (the caller puts START there).
    """
    run = run_lengths(code, first)
    before = np.r_[v, code[:-1]] if code.size else code
    return np.where(run >= 3, v + np.minimum(run, 2 + len(REPEATS)) - 2, before)


def fit_flows(coded: pl.DataFrame, classes: np.ndarray, depth: np.ndarray, names: list[str], k: int,
              smoothing: float, levels: int, band: np.ndarray | None = None) -> FlowTables:  # fmt: skip
    """Fit the per-class chains, end hazards and time sketches (see module doc).

    ``coded`` comes from :func:`coded_sessions`; ``classes[user]`` is each user's class,
    ``depth[user]`` their session-depth group and ``band[user]`` the activity band (within their class) their
    group was drawn for (none: one band).
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
    prev = np.where(first, start, repeat_states(code, first, v))
    nxt = np.r_[code[1:], 0] if n else code
    cls = np.asarray(classes)[user].astype(np.int64)
    n_classes = int(np.max(classes)) + 1 if len(classes) else 1
    user_depth = np.asarray(depth)[user].astype(np.int64)
    hazard = _hazard(cls, user_depth, code, pos, last, n_classes, smoothing)
    begin = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, np.int64)
    elapsed = (t - t[begin]) / 1000.0 if n else np.zeros(0)
    user_band = np.asarray(band)[user].astype(np.int64) if band is not None else np.zeros(n, np.int64)
    hazard, by_elapsed, by_activity = _end_by_elapsed(
        hazard, cls, user_depth, code, bucket_of(pos), elapsed_bucket(elapsed), last, v, (user, user_band, k)
    )
    # Transitions (never END): one row per event that has a next one, plus (START, START) -> first event,
    # (FIRST, START) for the user's first session (rows are in user order: the user's first row starts it).
    go = ~last
    f = np.flatnonzero(first)
    user_first = np.r_[True, user[1:] != user[:-1]] if n else np.zeros(0, np.bool_)
    rows = pl.DataFrame(
        {
            "class": np.r_[cls[go], cls[f]],
            "prev": np.r_[prev[go], np.where(user_first[f], first_symbol(v), start)],
            "cur": np.r_[code[go], np.full(f.size, start)],
            "next": np.r_[nxt[go], code[f]],
            "depth": np.r_[user_depth[go], user_depth[f]],
            "user": np.r_[user[go], user[f]],
            "bucket": np.r_[bucket_of(pos[go]), np.full(f.size, -1)],
        }
    )
    by_class = _chain(rows, k, smoothing, n_classes, start)
    by_depth = _by_depth(rows, by_class, k, smoothing, int(user_depth.max()) + 1 if n else 1)
    order = ["class", "depth", "prev", "cur", "bucket", "next", "probability"]
    anywhere = by_depth.with_columns(pl.lit(-1, pl.Int32).alias("bucket")).select(order)
    positional = _positional(rows, by_class, by_depth, k, smoothing).select(order)
    transitions = pl.concat([anywhere, positional]).sort("class", "depth", "prev", "cur", "bucket", "next")
    times, paces = _time_sketches(code, nxt, t, last, session, pos, v, k, levels)
    session_user = np.zeros(int(session.max()) + 1 if n else 1, np.int64)
    session_user[session] = user
    paces = paces.with_columns(pl.Series("user", session_user[paces["session"].to_numpy()]))
    pace, within = session_pace(paces, levels, k)
    return FlowTables(tuple(names), transitions, hazard, times, pace, by_elapsed, by_activity,
                      repeated_gaps(code, nxt, t, last, first, k), paces.drop("session"), within)  # fmt: skip


REPEAT_GAP_TOLERANCE = 0.01  # relative difference under which two gaps count as the same


def repeated_gaps(code: np.ndarray, nxt: np.ndarray, t: np.ndarray, last: np.ndarray, first: np.ndarray,
                  k: int) -> dict[int, float]:  # fmt: skip
    """Return, per event x with at least 2k x -> x gaps after an x -> x gap, the share equal to the gap before."""
    n = code.size
    if n < 3:
        return {}
    gap = np.r_[t[1:] - t[:-1], 0].astype(np.float64)
    loop = ~last & (nxt == code)  # row i's gap (to i + 1) is an x -> x gap
    follows = np.r_[False, loop[:-1]] & loop & ~first  # ... and so was the gap before it, same session
    rows = np.flatnonzero(follows)
    if rows.size == 0:
        return {}
    same = np.abs(gap[rows] - gap[rows - 1]) <= REPEAT_GAP_TOLERANCE * np.maximum(gap[rows - 1], 1.0)
    total = np.bincount(code[rows])
    equal = np.bincount(code[rows], same.astype(np.float64), minlength=total.size)
    return {int(x): round(float(equal[x] / total[x]), 4) for x in np.flatnonzero(total >= 2 * k)}


def _end_by_elapsed(hazard: pl.DataFrame, cls: np.ndarray, depth: np.ndarray, code: np.ndarray,
                    bucket: np.ndarray, elapsed: np.ndarray, last: np.ndarray, v: int,
                    activity: tuple[np.ndarray, np.ndarray, int] | None = None,
                    ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """Return (the hazard table refitted jointly with the shifts, the shifts per (event, elapsed bucket), the
    shifts per (session group, activity band)).

    A logistic model of the ends: log odds = the smoothed hazard's + a shift of its (class, depth, event,
    position) cell + a shift of its (event, elapsed) cell + a shift of its (session group, band of the
    user's active days within their class) cell, all ridge-penalized (so a cell with few rows keeps the smoothed hazard),
    fitted by alternating Newton steps on the distinct (cell, cell, cell) pairs. Position and elapsed time
    go together: fitting the elapsed shifts alone on top of the position hazards would count their common
    part twice. The activity shifts are kept at a mean of zero over each group's rows (the group's level is
    its hazards'), and a (group, band) cell of fewer than k users (``activity``: each row's user, band and
    k) has none: within a session group the users seen on few days are its extremes (their few sessions
    put them there), and a group's hazards, fitted on its sessions, are mostly its regulars'.
    """
    shape = (
        int(cls.max()) + 1 if cls.size else 1,
        int(depth.max()) + 1 if depth.size else 1,
        v,
        len(BUCKETS),
    )
    table = np.full(shape, 0.5)
    cells = np.ravel_multi_index(
        (hazard["class"].to_numpy(), hazard["depth"].to_numpy(), hazard["cur"].to_numpy(), hazard["bucket"].to_numpy()),
        shape,
    )  # fmt: skip
    table.ravel()[cells] = hazard["hazard"].to_numpy()
    hazard_cell = np.ravel_multi_index((cls, depth, code, np.minimum(bucket, len(BUCKETS) - 1)), shape)
    size = v * ELAPSED_BUCKETS
    # Rows that share a hazard cell, an elapsed cell and an activity cell share everything: fit on the distinct
    # triples (sorted: the sums below add in this order, and the group-by's own order changes from run to run).
    groups = shape[1]
    user, band, k = activity if activity is not None else (np.zeros(cls.size, np.int64), None, 1)
    band = np.zeros(cls.size, np.int64) if band is None else band
    bands = int(band.max()) + 1 if band.size else 1
    act = depth.astype(np.int64) * bands + band  # (session group, band) cell of each row
    pairs = (
        pl.DataFrame(
            {
                "key": hazard_cell.astype(np.int64) * size + code * ELAPSED_BUCKETS + elapsed,
                "act": act,
                "end": last,
            }
        )
        .group_by("key", "act")
        .agg(pl.len().alias("n"), pl.col("end").sum().alias("e"))
        .sort("key", "act")
    )
    key, weight = pairs["key"].to_numpy(), pairs["n"].to_numpy().astype(np.float64)
    ends_pair = pairs["e"].to_numpy().astype(np.float64)
    cell, base_cell = key % size, key // size
    local = np.unique(base_cell, return_inverse=True)[1]  # hazard cells that have rows, numbered
    m = int(local.max()) + 1 if local.size else 0
    clipped = np.clip(table.ravel(), 1e-6, 1 - 1e-6)
    logit = np.log(clipped / (1 - clipped))  # the smoothed hazards' log odds, every cell
    offset = logit[base_cell]
    rows = np.bincount(cell, weight, minlength=size)
    ends = np.bincount(cell, ends_pair, minlength=size)
    base_ends = np.bincount(local, ends_pair, minlength=m)
    act_cell = pairs["act"].to_numpy()
    n_act = groups * bands
    # Cells of k users or more get a shift; the others stay at their group's level.
    users_in = pl.DataFrame({"act": act, "user": user}).unique().group_by("act").len()
    free = np.zeros(n_act, np.bool_)
    free[users_in.filter(pl.col("len") >= k)["act"].to_numpy()] = True
    act_ends = np.bincount(act_cell, ends_pair, minlength=n_act)
    act_group = np.arange(n_act) // bands
    theta, delta, gamma = np.zeros(size), np.zeros(m), np.zeros(n_act)
    for _ in range(30):  # alternating Newton steps, every cell at once
        p = 1 / (1 + np.exp(-(offset + theta[cell] + delta[local] + gamma[act_cell])))
        expected = np.bincount(cell, weight * p, minlength=size)
        slope = np.bincount(cell, weight * p * (1 - p), minlength=size)
        theta = np.clip(theta + (ends - expected - ELAPSED_RIDGE * theta) / (slope + ELAPSED_RIDGE), -12, 12)
        p = 1 / (1 + np.exp(-(offset + theta[cell] + delta[local] + gamma[act_cell])))
        expected = np.bincount(local, weight * p, minlength=m)
        slope = np.bincount(local, weight * p * (1 - p), minlength=m)
        delta = np.clip(
            delta + (base_ends - expected - ELAPSED_RIDGE * delta) / (slope + ELAPSED_RIDGE), -12, 12
        )
        if bands > 1:
            p = 1 / (1 + np.exp(-(offset + theta[cell] + delta[local] + gamma[act_cell])))
            expected = np.bincount(act_cell, weight * p, minlength=n_act)
            slope = np.bincount(act_cell, weight * p * (1 - p), minlength=n_act)
            step = np.where(
                free, (act_ends - expected - ACTIVITY_RIDGE * gamma) / (slope + ACTIVITY_RIDGE), 0.0
            )
            gamma = np.clip(gamma + step, -END_SHIFT_LIMIT, END_SHIFT_LIMIT)
            # Each group's mean shift over its rows is its hazards' part, not the bands'.
            rows_of = np.bincount(act_cell, weight, minlength=n_act) * free
            mean = np.bincount(act_group, gamma * rows_of, minlength=groups) / np.maximum(
                np.bincount(act_group, rows_of, minlength=groups), 1.0
            )
            gamma = np.where(free, gamma - mean[act_group], 0.0)
    theta[rows < ELAPSED_MIN_ROWS] = 0.0
    # The refitted hazard of every cell that had rows; the others keep the smoothed one.
    flat = table.ravel().copy()
    seen = np.unique(base_cell)
    flat[seen] = 1 / (1 + np.exp(-(logit[seen] + delta)))
    refitted = hazard.with_columns(pl.Series("hazard", flat[cells]))
    keep = np.flatnonzero(theta != 0.0)
    shifts = pl.DataFrame(
        {
            "cur": (keep // ELAPSED_BUCKETS).astype(np.int32),
            "elapsed": (keep % ELAPSED_BUCKETS).astype(np.int32),
            "log_odds": theta[keep],
        }  # fmt: skip
    )
    keep = np.flatnonzero(gamma != 0.0)
    by_activity = pl.DataFrame(
        {
            "depth": (keep // bands).astype(np.int16),
            "band": (keep % bands).astype(np.int16),
            "log_odds": gamma[keep],
        }  # fmt: skip
    )
    return refitted, shifts, by_activity


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


def _by_depth(rows: pl.DataFrame, chain: pl.DataFrame, k: int, b: float, groups: int) -> pl.DataFrame:
    """Return next-event chances per (class, depth group, prev, cur): the group's counts smoothed toward ``chain``.

    Users of one class who keep long sessions may also fill them differently (more watching, less
    browsing): each depth group's second-order counts, smoothed toward the class's chain (Dirichlet
    pseudo-counts ``b``), keep that mix. Triples seen for fewer than k users are not counted.
    """
    triple_ok = _seen_by_k(rows, ("prev", "cur", "next"), k)
    counted = rows.join(triple_ok.select("prev", "cur", "next"), on=["prev", "cur", "next"], how="semi")
    n2 = (
        counted.group_by("class", "depth", "prev", "cur", "next")
        .agg(pl.len().alias("n2"))
        .with_columns(pl.col("class", "depth", "prev", "cur", "next").cast(pl.Int64))
    )
    cast = [pl.col(c).cast(pl.Int64) for c in ("class", "prev", "cur", "next")]
    grid = (
        chain.with_columns(*cast)
        .join(pl.DataFrame({"depth": np.arange(groups, dtype=np.int64)}), how="cross")
        .join(n2, on=["class", "depth", "prev", "cur", "next"], how="left")
        .fill_null(0)
    )
    grid = grid.with_columns(pl.col("n2").sum().over("class", "depth", "prev", "cur").alias("total"))
    grid = grid.with_columns(
        ((pl.col("n2") + b * pl.col("probability")) / (pl.col("total") + b)).alias("probability")
    )
    return _positive_chances(grid, ("prev", "cur", "next"))


def _positional(
    rows: pl.DataFrame, chain: pl.DataFrame, by_depth: pl.DataFrame, k: int, b: float
) -> pl.DataFrame:
    """Return next-event chances per (class, depth group, prev, cur, position bucket).

    Smoothed toward the class's own chances at that position (themselves smoothed toward the
    position-free ``chain``) where the class's state is seen ``POSITIONAL_MIN`` times there, else
    toward the group's position-free chances (``by_depth``). Only (class, group) states seen at least
    ``POSITIONAL_MIN`` times get a row (rarer ones would equal the position-free chance anyway);
    (prev, cur, bucket, next) must be seen for k users.
    """
    rows = rows.filter(pl.col("bucket") >= 0)
    ok = _seen_by_k(rows, ("prev", "cur", "bucket", "next"), k)
    counted = rows.join(
        ok.select("prev", "cur", "bucket", "next"), on=["prev", "cur", "bucket", "next"], how="semi"
    )
    ids = ["class", "prev", "cur", "next"]
    # The class's chances at each position, smoothed toward its position-free chain.
    n4 = counted.group_by("class", "prev", "cur", "bucket", "next").agg(pl.len().alias("n4"))
    states = n4.group_by("class", "prev", "cur", "bucket").agg(pl.col("n4").sum().alias("total"))
    states = states.filter(pl.col("total") >= POSITIONAL_MIN)
    at_class = (
        states.with_columns(pl.col("class", "prev", "cur").cast(pl.Int64))
        .join(chain.with_columns(pl.col(*ids).cast(pl.Int64)), on=["class", "prev", "cur"], how="inner")
        .join(n4.with_columns(pl.col(*ids).cast(pl.Int64)), on=["class", "prev", "cur", "bucket", "next"], how="left")
        .fill_null(0)
        .select("class", "prev", "cur", "bucket", "next",
                ((pl.col("n4") + b * pl.col("probability")) / (pl.col("total") + b)).alias("p_class"))
    )  # fmt: skip
    # Each depth group's own counts there, smoothed toward the class's (or the group's position-free) chances.
    n5 = counted.group_by("class", "depth", "prev", "cur", "bucket", "next").agg(pl.len().alias("n5"))
    keys = ["class", "depth", "prev", "cur", "bucket"]
    states = (
        n5.group_by(*keys).agg(pl.col("n5").sum().alias("total")).filter(pl.col("total") >= POSITIONAL_MIN)
    )
    grid = (
        states.with_columns(pl.col(*keys).cast(pl.Int64))
        .join(by_depth.with_columns(pl.col("class", "depth", "prev", "cur", "next").cast(pl.Int64)),
              on=["class", "depth", "prev", "cur"], how="inner")
        .join(at_class, on=["class", "prev", "cur", "bucket", "next"], how="left")
        .join(n5.with_columns(pl.col(*keys, "next").cast(pl.Int64)), on=[*keys, "next"], how="left")
    )  # fmt: skip
    # A state the class has at this position takes the class's chances there as its prior.
    has_class = pl.col("p_class").sum().over(*keys) > 0
    prior = pl.when(has_class).then(pl.col("p_class").fill_null(0.0)).otherwise(pl.col("probability"))
    grid = grid.with_columns(prior.alias("prior"), pl.col("n5").fill_null(0))
    grid = grid.with_columns(
        ((pl.col("n5") + b * pl.col("prior")) / (pl.col("total") + b)).alias("probability")
    )
    return _positive_chances(grid, ("prev", "cur", "bucket", "next"))


def _positive_chances(grid: pl.DataFrame, keys: tuple[str, ...]) -> pl.DataFrame:
    """Return the rows of ``grid`` with a chance above zero: class, depth group, ``keys``, probability."""
    return grid.filter(pl.col("probability") > 0).select(
        pl.col("class").cast(pl.Int16),
        pl.col("depth").cast(pl.Int16),
        *(pl.col(c).cast(pl.Int32) for c in keys),
        pl.col("probability").cast(pl.Float64),
    )


def _seen_by_k(rows: pl.DataFrame, columns: tuple[str, ...], k: int) -> pl.DataFrame:
    """Return the distinct values of ``columns`` (non-negative integers) seen for at least ``k`` users.

    The same rows as ``group_by(columns).agg(user.n_unique()).filter(>= k)`` (in another order): the columns and
    the user are packed into one integer whose distinct values are counted, a fifth of the CPU of a group-by
    on several columns over millions of rows.
    """
    values = [rows[c].to_numpy() for c in (*columns, "user")]
    sizes = [int(v.max()) + 1 if v.size else 1 for v in values]
    if any(v.size and int(v.min()) < 0 for v in values) or float(np.prod(sizes, dtype=np.float64)) >= 2.0**62:
        out = rows.group_by(*columns).agg(pl.col("user").n_unique().alias("u")).filter(pl.col("u") >= k)
        return out.select(*columns)
    packed = np.ravel_multi_index(tuple(v.astype(np.int64) for v in values), sizes)
    cells = pl.Series(packed).unique().to_numpy() // sizes[-1]  # one per (cell, user)
    kept, users = np.unique(cells, return_counts=True)
    kept = kept[users >= k]
    unpacked = np.unravel_index(kept, sizes[:-1])
    return pl.DataFrame(
        [pl.Series(c, u, dtype=rows.schema[c]) for c, u in zip(columns, unpacked, strict=True)]
    )


def _chain(rows: pl.DataFrame, k: int, b: float, n_classes: int, start: int) -> pl.DataFrame:
    """Return the smoothed second-order transition probabilities of every class (see module doc)."""
    # k-anonymity: a (cur, next) pair, and a (prev, cur, next) triple, must be seen for k users.
    pair_ok = _seen_by_k(rows, ("cur", "next"), k)
    triple_ok = _seen_by_k(rows, ("prev", "cur", "next"), k)
    rows = rows.join(pair_ok.select("cur", "next"), on=["cur", "next"], how="semi")
    pooled1 = rows.group_by("cur", "next").agg(pl.len().alias("n"))
    pooled1 = pooled1.with_columns((pl.col("n") / pl.col("n").sum().over("cur")).alias("p_pool"))
    class1 = rows.group_by("class", "cur", "next").agg(pl.len().alias("n1"))
    class2 = rows.join(triple_ok.select("prev", "cur", "next"), on=["prev", "cur", "next"], how="semi")
    class2 = class2.group_by("class", "prev", "cur", "next").agg(pl.len().alias("n2"))
    # States: every (prev, cur) the pooled first-order chain can reach, plus (START, START), plus
    # (REPEATk, x) for every event x that may follow itself.
    support = pooled1.select(pl.col("cur").cast(pl.Int64), pl.col("next").cast(pl.Int64))
    loops = support.filter((pl.col("cur") == pl.col("next")) & (pl.col("cur") != start))["cur"]
    repeat_codes = np.arange(start + 1, start + 1 + len(REPEATS), dtype=np.int64)
    states = pl.concat(
        [
            pl.DataFrame(
                {
                    "prev": np.repeat(repeat_codes, loops.len()),
                    "cur": np.tile(loops.to_numpy(), repeat_codes.size),
                },
                schema={"prev": pl.Int64, "cur": pl.Int64},
            ),  # fmt: skip
            support.filter(pl.col("cur") != start).select(
                pl.col("cur").alias("prev"), pl.col("next").alias("cur")
            ),
            support.filter(pl.col("cur") == start).select(
                pl.col("cur").alias("prev"), pl.col("next").alias("cur")
            ),
            pl.DataFrame(
                {"prev": [start, first_symbol(start)], "cur": [start, start]},
                schema={"prev": pl.Int64, "cur": pl.Int64},
            ),
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
    # Rows in a fixed order before the window sums add floats (the joins' order changes from run to run).
    grid = grid.sort("class", "prev", "cur", "next")
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


def _mean_var_by(key: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return (the keys with at least two values, their mean, sample variance and count), in key order.

    Summed in row order (``np.bincount``), so two fits of one export give the same bytes: Polars'
    group-by adds floats on several threads in an order that changes from run to run.
    """
    n = np.bincount(key)
    mean = np.bincount(key, values, minlength=n.size) / np.maximum(n, 1)
    dev = values - mean[key]
    var = np.bincount(key, dev * dev, minlength=n.size) / np.maximum(n - 1, 1)
    keep = np.flatnonzero(n >= 2)
    return keep, mean[keep], var[keep], n[keep].astype(np.float64)


def time_bucket(position: np.ndarray | int) -> np.ndarray:
    """Return the bucket (index into ``TIME_POSITIONS``) of the position of a gap's first event."""
    return np.searchsorted(TIME_POSITIONS, np.asarray(position), side="right") - 1


def _median_by(key: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return the median of ``values`` over the rows of each key, for every row."""
    med = pl.DataFrame({"key": key, "x": values}).group_by("key").agg(pl.col("x").median().alias("m"))
    return pl.DataFrame({"key": key}).join(med, on="key", how="left", maintain_order="left")["m"].to_numpy()


def _session_paces(sess: np.ndarray, resid: np.ndarray, load: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return (sessions with two gaps or more, their least-squares paces, residual variances, sums of load^2).

    Each session's pace is the fit of its gaps' residuals ``resid`` ~ pace x ``load``; the variance is of
    the residuals around it (one degree of freedom taken). Summed in row order (``np.bincount``): two fits
    of one export give the same bytes.
    """
    if sess.size == 0:
        z = np.zeros(0)
        return z.astype(np.int64), z, z, z
    n = np.bincount(sess).astype(np.float64)
    sum_l2 = np.bincount(sess, load * load, minlength=n.size)
    pace = np.bincount(sess, load * resid, minlength=n.size) / np.maximum(sum_l2, 1e-12)
    dev = resid - load * pace[sess]
    var = np.bincount(sess, dev * dev, minlength=n.size) / np.maximum(n - 1, 1)
    keep = np.flatnonzero((n >= 2) & (sum_l2 > 1e-9))
    return keep, pace[keep], var[keep], sum_l2[keep]


def _time_sketches(code: np.ndarray, nxt: np.ndarray, t: np.ndarray, last: np.ndarray, session: np.ndarray,
                   pos: np.ndarray, v: int, k: int, levels: int) -> tuple[pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """Return (sketches of pace-free log gaps per (cur, next[, position bucket]) / (cur, ANY) / (ANY, ANY), paces).

    The paces: one row per session with two or more gaps (session, pace = the least-squares log factor
    of its gaps' seconds, noise = its variance from the gaps' spread); the gaps' seconds are divided by
    their session's pace shrunk by that noise (the whole spread of session paces, users' and sessions'
    own parts together). A gap's centre (for the residual) and its sketch are its transition's at its
    position bucket, blended with the transition's over all positions by ``n / (n + TIME_POSITION_PRIOR)``
    (n: gaps in the bucket).
    """
    within = ~last
    gap_s = (np.r_[t[1:], t[-1:]] - t) / 1000.0 if t.size else t.astype(np.float64)
    cur, to, gap, sess = code[within], nxt[within], gap_s[within], session[within]
    log_gap = np.log1p(np.maximum(gap, 0.0))
    width = v + 2
    pair = cur * width + to
    buckets = len(TIME_POSITIONS)
    cell = pair * buckets + time_bucket(pos[within])
    count = np.bincount(cell) if cell.size else np.zeros(1, np.int64)
    weight = np.where(count >= 2 * k, count / (count + TIME_POSITION_PRIOR), 0.0)
    w = weight[cell]
    # Pace: how much slower or quicker than usual a session runs, as a log factor of its gaps' seconds. A
    # gap's log1p shows a pace p as about p x load, load = g / (1 + g) at its centre g (a second's gap
    # barely stretches): a session's pace is the least-squares fit of its residuals on their loads,
    # shrunk by the noise of its few gaps.
    centre_gap = w * _median_by(cell, log_gap) + (1 - w) * _median_by(pair, log_gap)
    resid = log_gap - centre_gap
    load = -np.expm1(-centre_gap)
    sessions, means, var, sum_l2 = _session_paces(sess, resid, load)
    noise = var / sum_l2
    pace_by_session = np.zeros(int(session.max()) + 1 if session.size else 1)
    if sessions.size >= 2 * k:
        spread = float(np.var(means))
        shrink = np.sqrt(max(spread - float(np.mean(noise)), 0.0) / spread) if spread > 0 else 0.0
        centre = float(np.mean(means))
        pace_by_session[sessions] = centre + (means - centre) * shrink
    paces = pl.DataFrame({"session": sessions, "pace": means, "noise": noise})
    adjusted = np.log1p(np.maximum(gap, 0.0) * np.exp(-pace_by_session[sess]))
    names, q = grouped_sketches(pair, adjusted, levels, k)
    any_position = np.full(names.size, -1)
    parts = [
        pl.DataFrame(
            {"cur": names // width, "next": names % width, "position": any_position, "q": q.tolist()}
        )
    ]
    # Positional sketches (quantiles averaged with the transition's, by the bucket's weight).
    cells, qc = grouped_sketches(cell, adjusted, levels, k)
    row_of_pair = np.full(width * width, -1, np.int64)
    row_of_pair[names] = np.arange(names.size)
    own = row_of_pair[cells // buckets]
    ok = own >= 0
    cells, qc, own = cells[ok], qc[ok], own[ok]
    blended = weight[cells][:, None] * qc + (1 - weight[cells][:, None]) * q[own]
    parts.append(
        pl.DataFrame(
            {
                "cur": cells // buckets // width,
                "next": cells // buckets % width,
                "position": np.asarray(TIME_POSITIONS)[cells % buckets],
                "q": blended.tolist(),
            }
        )
    )
    names1, q1 = grouped_sketches(cur, adjusted, levels, k)
    parts.append(
        pl.DataFrame(
            {
                "cur": names1,
                "next": np.full(names1.size, ANY),
                "position": np.full(names1.size, -1),
                "q": q1.tolist(),
            }
        )
    )
    overall = quantile_sketch(adjusted, levels, k)
    if overall is None:
        overall = np.log1p(np.full(levels, 10.0))
    parts.append(pl.DataFrame({"cur": [ANY], "next": [ANY], "position": [-1], "q": [overall.tolist()]}))
    table = pl.concat(
        [
            p.with_columns(
                pl.col("cur").cast(pl.Int32), pl.col("next").cast(pl.Int32), pl.col("position").cast(pl.Int32)
            )
            for p in parts
            if p.height
        ]
    )
    times = (
        table.with_columns(pl.int_ranges(0, levels).alias("level"))
        .explode("q", "level")
        .select(
            "cur",
            "next",
            "position",
            pl.col("level").cast(pl.Int16),
            pl.col("q").cast(pl.Float64).alias("log_seconds"),
        )
    )
    return times, paces


def session_pace(paces: pl.DataFrame, levels: int, k: int) -> tuple[np.ndarray, float]:
    """Return (the sketch of a session's true pace around its user's mean, that variance); see module doc.

    ``paces``: user, pace, noise per session (from :func:`_time_sketches`). Without two users of two
    sessions or more, the whole spread of the session paces is the session's.
    """
    flat = np.zeros(levels)
    if paces.height < 2 * k:
        return flat, 0.0
    user, x, noise = paces["user"].to_numpy(), paces["pace"].to_numpy(), paces["noise"].to_numpy()
    total = max(float(np.var(x)) - float(np.mean(noise)), 0.0)
    users, means, var, count = _mean_var_by(user, x)
    if users.size < 2 * k:
        centred = x - float(np.mean(x))
        scale = np.sqrt(total / float(np.var(centred))) if np.var(centred) > 0 else 0.0
        sketch = quantile_sketch(centred * scale, levels, k)
        return (flat, 0.0) if sketch is None else (sketch, total)
    several = np.isin(user, users)
    mean_of = np.zeros(int(user.max()) + 1)
    n_of = np.zeros(int(user.max()) + 1)
    mean_of[users], n_of[users] = means, count
    # Deviations from the user's mean, scaled up for the mean's own share of them; their true spread is
    # the pooled within-user variance less the gaps' noise.
    dev = (x[several] - mean_of[user[several]]) * np.sqrt(n_of[user[several]] / (n_of[user[several]] - 1))
    within = float(np.average(var, weights=count - 1)) - float(np.mean(noise[several]))
    within = min(max(within, 0.0), total)
    spread = float(np.var(dev))
    sketch = quantile_sketch(dev * (np.sqrt(within / spread) if spread > 0 else 0.0), levels, k)
    return (flat, 0.0) if sketch is None else (sketch, within)


def user_pace(paces: pl.DataFrame, within: float, band: np.ndarray, bands: int, levels: int,
              k: int) -> pl.DataFrame:  # fmt: skip
    """Return the per-band quantile sketches of the users' own paces (band, level, log_pace); see module doc.

    ``paces``/``within`` from :class:`FlowTables`; ``band[user]`` is the user's active-days band. A band
    with fewer than 2k users with paces takes the sketch of all users.
    """
    levels_range = np.arange(levels)
    user, x, noise = paces["user"].to_numpy(), paces["pace"].to_numpy(), paces["noise"].to_numpy()
    n = np.bincount(user).astype(np.float64) if user.size else np.zeros(1)
    users = np.flatnonzero(n > 0)
    count = n[users]
    means = np.bincount(user, x, minlength=n.size)[users] / count
    # The noise of a user's mean: their sessions' own spread and their gaps' noise, over their sessions.
    err = (within + np.bincount(user, noise, minlength=n.size)[users] / count) / count
    user_band = np.asarray(band)[users] if users.size else users

    def sketch(m: np.ndarray) -> np.ndarray | None:
        if m.sum() < 2 * k:
            return None
        centre = float(np.mean(means[m]))
        spread = float(np.var(means[m]))
        between = max(spread - float(np.mean(err[m])), 0.0)
        scale = np.sqrt(between / spread) if spread > 0 else 0.0
        return quantile_sketch(centre + (means[m] - centre) * scale, levels, k)

    overall = sketch(np.ones(users.size, np.bool_))
    if overall is None:
        overall = np.zeros(levels)
    rows = []
    for b in range(bands):
        own = sketch(user_band == b)
        pace = overall if own is None else own
        rows.append(pl.DataFrame({"band": b, "level": levels_range, "log_pace": pace}))
    return pl.concat(rows).with_columns(pl.col("band").cast(pl.Int16), pl.col("level").cast(pl.Int16))


def _shrunk_means(user: np.ndarray, x: np.ndarray, row_of: np.ndarray, classes: np.ndarray,
                  band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Return (each row's mean of ``x`` over its values shrunk toward its band's mean, whether it has values).

    Empirical Bayes: the mean keeps the share between / (between + within / n) of its distance to the
    mean of the users of its class and band, ``within`` the users' mean variance of one value around
    their own mean (users with two values or more) and ``between`` the class's spread of means around
    their bands' means, less their noise (over the whole class: a band of one-visit users alone would
    say little about its own spread, and all of them would be put at its mean).
    """
    rows = row_of[user]
    size = classes.size
    n = np.bincount(rows, minlength=size).astype(np.float64)
    total = np.bincount(rows, x, minlength=size)
    mean = np.divide(total, n, out=np.zeros(size), where=n > 0)
    dev = x - mean[rows]
    sq = np.bincount(rows, dev * dev, minlength=size)
    several = n >= 2
    within = float(np.mean(sq[several] / (n[several] - 1))) if several.any() else 0.0
    seen = n > 0
    centre = np.zeros(size)
    stratum = classes.astype(np.int64) * (int(band.max()) + 1 if band.size else 1) + band
    for c in np.unique(stratum[seen]):  # classes x bands: a few dozen
        sel = seen & (stratum == c)
        centre[sel] = float(mean[sel].mean())
    out = np.zeros(size)
    for c in np.unique(classes[seen]):  # a handful of classes
        sel = seen & (classes == c)
        between = max(float(np.mean((mean[sel] - centre[sel]) ** 2)) - float(np.mean(within / n[sel])), 0.0)
        weight = between / np.maximum(between + within / n[sel], 1e-12)
        out[sel] = centre[sel] + (mean[sel] - centre[sel]) * weight
    return out, seen


def depth_pace_groups(sessions: pl.DataFrame, user_ids: np.ndarray, classes: np.ndarray, band: np.ndarray,
                      depth_groups: int, pace_groups: int) -> np.ndarray:  # fmt: skip
    """Return each user's session group by row of ``user_ids``: depth group x ``pace_groups`` + pace group.

    Depth: quantile bins over all users of the user's mean log events per session; pace: within each
    depth bin, quantile bins of the user's mean log seconds per event (sessions of two events or more).
    Both means are shrunk toward the mean of the users of the same class and activity band (``classes``,
    ``band`` by row) by how little the user's few sessions say (empirical Bayes). Users with as many events
    a session may spend very different times on them (a streaming service's viewers who watch against
    those who browse the catalogue), and each keeps to their way: the groups' own chains and end hazards
    carry that. The centre is the band's because depth follows activity: shrunk toward
    their class's mean, the one-visit users of a class whose regulars stay long were put in its middle
    groups, and the twin's occasional users came out as deep as its regulars. Users without a session
    are in the middle group, without a session of two events in the middle pace group of their depth bin.
    """
    size = user_ids.size
    out = np.full(size, (depth_groups // 2) * pace_groups + pace_groups // 2, np.int64)
    if size == 0:
        return out
    row_of = np.full(int(max(user_ids.max(), sessions["user"].max() or 0)) + 1, -1, np.int64)  # type: ignore[operator]
    row_of[user_ids] = np.arange(size)
    mine = row_of[sessions["user"].to_numpy()] >= 0
    user = sessions["user"].to_numpy()[mine]
    n_events = sessions["n_events"].to_numpy()[mine].astype(np.float64)
    depth, seen = _shrunk_means(user, np.log(n_events), row_of, classes, band)
    if depth_groups <= 1 or seen.sum() < 2:
        d = np.zeros(size, np.int64) if depth_groups <= 1 else np.full(size, depth_groups // 2, np.int64)
    else:
        edges = np.quantile(depth[seen], np.arange(1, depth_groups) / depth_groups)
        d = np.full(size, depth_groups // 2, np.int64)
        d[seen] = np.searchsorted(edges, depth[seen], side="right")
    p = np.full(size, pace_groups // 2, np.int64)
    if pace_groups > 1:
        multi = n_events >= 2
        per_event = sessions["duration_s"].to_numpy()[mine][multi] / (n_events[multi] - 1)
        pace, has = _shrunk_means(user[multi], np.log1p(np.maximum(per_event, 0.0)), row_of, classes, band)
        for g in range(max(depth_groups, 1)):
            sel = has & (d == g)
            if sel.sum() < pace_groups:
                continue
            edges = np.quantile(pace[sel], np.arange(1, pace_groups) / pace_groups)
            p[sel] = np.searchsorted(edges, pace[sel], side="right")
    return d * pace_groups + p


def depth_shares_by_band(group: np.ndarray, classes: np.ndarray, band: np.ndarray, n_classes: int, bands: int,
                         groups: int, prior: float) -> pl.DataFrame:  # fmt: skip
    """Return the share of each session group per (class, activity band): class, band, depth, share.

    ``group``, ``classes``, ``band`` are per user; a band's counts are pulled toward its class's shares by
    ``prior`` users' worth (a band without users has the class's shares).
    """
    count = np.zeros((n_classes, bands, groups))
    np.add.at(count, (classes.astype(np.int64), band.astype(np.int64), group.astype(np.int64)), 1.0)
    by_class = count.sum(axis=1)
    p_class = by_class / np.maximum(by_class.sum(axis=1, keepdims=True), 1.0)
    share = (count + prior * p_class[:, None, :]) / (count.sum(axis=2, keepdims=True) + prior)
    c, b, g = np.meshgrid(np.arange(n_classes), np.arange(bands), np.arange(groups), indexing="ij")
    return pl.DataFrame({"class": c.ravel(), "band": b.ravel(), "depth": g.ravel(), "share": share.ravel()})
