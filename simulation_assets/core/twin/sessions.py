"""From exported rows to users and sessions.

Users: every ``distinct_id`` and ``person_id`` is a node; an event links its
distinct id to its person id, and an ``$identify`` links ``$anon_distinct_id`` to
the identified id. A user is a connected component of that graph (PostHog merges
the same way), so an anonymous visitor's events before sign-up belong to the
user they became. Ids PostHog refuses to merge on (``anonymous``, ``null``,
``0`` ...) link nothing.

Sessions: the export's ``$session_id`` where most events carry one (events
without it join the user's previous session when it is at most 30 minutes
old); otherwise rebuilt as PostHog does: a new session after 30 minutes of
inactivity, and a session never lasts more than 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from simulation_assets.core.twin.config import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE
from simulation_assets.core.twin.features import Window

# Ids PostHog will not merge on (case-insensitive ones lower-cased), from its person-merge rules.
ILLEGAL_IDS = frozenset(
    {
        "anonymous",
        "guest",
        "distinctid",
        "distinct_id",
        "id",
        "not_authenticated",
        "email",
        "undefined",
        "true",
        "false",
        "[object object]",
        "nan",
        "none",
        "null",
        "0",
        "",
    }  # fmt: skip
)
SESSION_ID_MIN_SHARE = 0.5  # below this share of events with a $session_id, every session is rebuilt

EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "user": pl.Int32(),  # user index, 0..users-1, in the order of ``users["user_key"]``
    "t_ms": pl.Int64(),  # event time, ms since epoch (UTC)
    "event": pl.String(),
    "session": pl.Int64(),  # session index, 0..sessions-1, sessions ordered by user then start
    "seq": pl.Int32(),  # position of the event in its session
    "distinct_id": pl.String(),
}


def stitch_users(events: pl.DataFrame, identifies: pl.DataFrame | None = None) -> pl.Series:
    """Return each row's user key: the representative id of its identity component (see module doc).

    ``events`` needs ``distinct_id``; ``person_id``, ``event`` and ``$anon_distinct_id`` are used when present.
    ``identifies`` (``distinct_id``, ``$anon_distinct_id`` of the ``$identify`` events) may be given
    instead of an ``$anon_distinct_id`` column.
    The representative is the smallest person id of the component, else its smallest distinct id.
    """
    ids, code = _id_codes(events["distinct_id"].cast(pl.String))
    reps = _representatives(events, identifies, ids, code)
    return (
        pl.concat([reps, pl.Series([None], dtype=pl.String)])
        .gather(code.fill_null(len(ids)))
        .alias("user_key")
    )


@dataclass(frozen=True)
class UserIndex:
    """Each row's user (an index into ``users``: ``user``, ``user_key``) and distinct id (an index into ``ids``)."""

    user: np.ndarray
    users: pl.DataFrame
    ids: pl.Series  # the distinct ids, sorted
    id_code: pl.Series  # each row's position in ``ids``


def user_index(events: pl.DataFrame, identifies: pl.DataFrame | None = None) -> UserIndex:
    """Return each row's user: :func:`stitch_users`'s keys, numbered in their sorted order as :func:`sessionize`
    numbers them.

    The graph is built on the distinct ids and the (distinct id, person id) pairs, not on the rows: on
    10.9M events of 110k ids it is the ids' work, not the rows'.
    """
    ids, code = _id_codes(events["distinct_id"].cast(pl.String))
    if code.null_count():
        raise ValueError("rows without a distinct id cannot be given a user")
    users, of_id = _numbered_users(_representatives(events, identifies, ids, code))
    return UserIndex(of_id[code.to_numpy()], users, ids, code)


def _numbered_users(keys: pl.Series) -> tuple[pl.DataFrame, np.ndarray]:
    """Return (``user`` numbered in the sorted order of the distinct ``keys`` with its ``user_key``, each key's user)."""
    users = pl.DataFrame({"user_key": keys.unique().sort()}).with_row_index("user")
    users = users.with_columns(pl.col("user").cast(pl.Int32))
    of_key = pl.DataFrame({"user_key": keys}).join(users, on="user_key", how="left", maintain_order="left")
    return users, of_key["user"].to_numpy()


def _id_codes(distinct: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Return the sorted distinct ids and each row's position among them (null without an id)."""
    ids = distinct.drop_nulls().unique().sort()
    return ids, distinct.cast(pl.Enum(ids.to_list())).to_physical().cast(pl.Int64)


def _representatives(
    events: pl.DataFrame, identifies: pl.DataFrame | None, ids: pl.Series, code: pl.Series
) -> pl.Series:
    """Return the representative id of each of ``ids`` (the sorted distinct ids; ``code``: each row's)."""
    person = events["person_id"].cast(pl.String) if "person_id" in events.columns else None
    edges_a: list[pl.Series] = []
    edges_b: list[pl.Series] = []
    persons = pl.Series("id", [], pl.String)
    if person is not None:
        persons = person.drop_nulls().unique().sort()
        # The (distinct id, person id) pairs of the rows, found on integer codes.
        p_code = person.cast(pl.Enum(persons.to_list())).to_physical()
        pairs = pl.DataFrame({"a": code, "b": p_code}).drop_nulls().unique()
        edges_a.append(ids.gather(pairs["a"]))
        edges_b.append(persons.gather(pairs["b"]))
    if identifies is None and "$anon_distinct_id" in events.columns and "event" in events.columns:
        identifies = events.filter(pl.col("event") == "$identify").select("distinct_id", "$anon_distinct_id")
    if identifies is not None:
        edges_a.append(identifies["$anon_distinct_id"].cast(pl.String))
        edges_b.append(identifies["distinct_id"].cast(pl.String))
    if not edges_a:
        return ids
    pairs = (
        pl.DataFrame({"a": pl.concat(edges_a), "b": pl.concat(edges_b)})
        .drop_nulls()
        .filter(pl.col("a") != pl.col("b"))
        .filter(~pl.col("a").str.to_lowercase().is_in(list(ILLEGAL_IDS)))
        .filter(~pl.col("b").str.to_lowercase().is_in(list(ILLEGAL_IDS)))
        .unique()
    )
    if pairs.is_empty():
        return ids
    nodes = pl.concat([ids, pairs["a"], pairs["b"]]).unique().sort()
    index = pl.DataFrame({"id": nodes, "i": np.arange(len(nodes), dtype=np.int64)})
    a = pairs.join(index, left_on="a", right_on="id", how="left", maintain_order="left")["i"].to_numpy()
    b = pairs.join(index, left_on="b", right_on="id", how="left", maintain_order="left")["i"].to_numpy()
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(len(nodes), len(nodes)))
    _, label = connected_components(graph, directed=False)
    # Representative: the smallest person id in the component, else the smallest id of any kind.
    is_person = np.zeros(len(nodes), np.bool_)
    if person is not None:
        is_person[index.join(pl.DataFrame({"id": persons}), on="id", how="semi")["i"].to_numpy()] = True
    table = pl.DataFrame({"id": nodes, "label": label, "rank": (~is_person).astype(np.int8)})
    reps = table.sort("rank", "id").group_by("label", maintain_order=True).first().select("label", rep="id")
    lookup = table.join(reps, on="label").select("id", "rep")
    return (
        pl.DataFrame({"id": ids})
        .join(lookup, on="id", how="left", maintain_order="left")["rep"]
        .fill_null(ids)
    )


def sessionize(
    events: pl.DataFrame, idle_minutes: float = 30.0, max_session_hours: float = 24.0
) -> tuple[pl.DataFrame, pl.DataFrame, bool]:
    """Return (events, users, rebuilt): events in ``EVENTS_SCHEMA`` order by user, session, time.

    ``events`` needs ``user_key`` (see :func:`stitch_users`), ``timestamp``,
    ``event`` and ``session_id`` (may be all null). ``users`` has one row per
    user: ``user`` (index) and ``user_key``. ``rebuilt`` says whether sessions
    were rebuilt from inactivity instead of taken from ``$session_id``.
    """
    users, user = _numbered_users(events["user_key"].cast(pl.String))
    ids, code = _id_codes(events["distinct_id"].cast(pl.String))
    return sessionize_users(events, UserIndex(user, users, ids, code), idle_minutes, max_session_hours)


def sessionize_users(
    events: pl.DataFrame, index: UserIndex, idle_minutes: float = 30.0, max_session_hours: float = 24.0
) -> tuple[pl.DataFrame, pl.DataFrame, bool]:
    """:func:`sessionize` of ``events`` whose rows' users are known (see :func:`user_index`).

    Rows are put in (user, time) order once, as integers; the text columns are gathered once, at the end,
    through their distinct values (a gather from a small table: a tenth of the CPU of one from the rows').
    Sessions that are runs of consecutive rows in that order (always when rebuilt) are cut and numbered on
    those runs directly; sessions of given ids that interleave (two tabs) take the general path.
    """
    idle_ms = int(idle_minutes * MS_PER_MINUTE)
    max_ms = int(max_session_hours * MS_PER_HOUR)
    t_all = events["timestamp"].dt.epoch("ms").to_numpy()
    sid_all = events["session_id"].cast(pl.String)
    with_sid = sid_all.is_not_null().mean() or 0.0
    rebuilt = with_sid < SESSION_ID_MIN_SHARE
    users = index.users
    user_all = np.asarray(index.user, dtype=np.int32)
    by_time = _user_time_order(user_all, t_all)
    user, t = user_all[by_time], t_all[by_time]
    n = len(t)
    gap = np.diff(t, prepend=t[:1]) if n else t
    new_user = np.r_[True, user[1:] != user[:-1]] if n else np.zeros(0, np.bool_)
    if rebuilt:
        key = None  # sessions are runs: a new one at each user's first row and after each inactivity break
        start = new_user | (gap > idle_ms)
    else:
        # Given ids, per user; a row without one joins the previous row's session when it is recent enough.
        # One integer per (user, session id): the id's number in the order ids first come in the export (a hash
        # join, several times cheaper than ranking the pairs), offset by the user. Numbered in the rows' own
        # order and then put in (user, time) order as integers: gathering 10M id texts cost twice the join.
        ids = sid_all.to_frame("session_id")
        numbered = ids.unique(maintain_order=True).with_row_index("code")
        code = ids.join(numbered, on="session_id", how="left", maintain_order="left", nulls_equal=True)
        code = code["code"].to_numpy().astype(np.int64)[by_time]
        codes = user.astype(np.int64) * (int(code.max()) + 1 if n else 1) + code
        missing = sid_all.is_null().to_numpy()[by_time]
        orphan_start = missing & (new_user | (gap > idle_ms))
        orphan_key = np.cumsum(orphan_start)  # a run of rows without ids, after an inactivity break
        base = np.where(missing, -1, codes)
        # Forward fill the last known id within the user unless an inactivity break came since.
        filled = _ffill_within(base, new_user | orphan_start)
        key = np.where(filled >= 0, filled, -orphan_key - 1)
        start = np.r_[True, key[1:] != key[:-1]] if n else np.zeros(0, np.bool_)
        if pl.Series(key).n_unique() != int(
            start.sum()
        ):  # some session comes back after another: general path
            start = None
    session = _run_sessions(user, t, _split_long_runs(t, start, max_ms)) if start is not None else None
    if session is not None:  # runs: already in (session, time) order
        rows = by_time
    else:
        assert key is not None
        key = _split_long_sessions(user, t, key, max_ms)
        session = _order_sessions(user, t, key)
        # By (session, time): rows are in time order within each user already, and a session has one user,
        # so a stable sort on the session alone gives np.lexsort((t, session)) (on nearly sorted keys: cheap).
        order = np.argsort(session, kind="stable")
        rows, session = by_time[order], session[order]
    events_text = events["event"].cast(pl.String)
    names = events_text.drop_nulls().unique().sort()
    name_code = events_text.cast(pl.Enum(names.to_list())).to_physical()
    out = pl.DataFrame(
        [
            pl.Series("user", user_all[rows], pl.Int32),
            pl.Series("t_ms", t_all[rows], pl.Int64),
            names.gather(name_code.gather(rows)).alias("event"),
            pl.Series("session", session, pl.Int64),
            index.ids.gather(index.id_code.gather(rows)).alias("distinct_id"),
        ]
    )
    first = np.r_[0, np.flatnonzero(np.diff(session)) + 1] if n else np.zeros(0, np.int64)
    seq = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n])) if n else np.zeros(0, np.int64)
    out = out.with_columns(pl.Series("seq", seq.astype(np.int32)))
    return out.select(list(EVENTS_SCHEMA)), users, bool(rebuilt)


def _split_long_runs(t: np.ndarray, start: np.ndarray, max_ms: int) -> np.ndarray:
    """:func:`_split_long_sessions` for sessions that are runs of rows (``start`` marks each run's first row).

    Within a run, rows ``max_ms`` or more after its start are a suffix (times ascend); its first row starts a
    new run, and again, until no run is too long.
    """
    start = start.copy()
    rows = np.arange(len(t))
    while len(t):
        head = np.maximum.accumulate(np.where(start, rows, 0))
        over = (t - t[head]) >= max_ms
        if not over.any():
            break
        start |= over & ~np.r_[False, over[:-1]]
    return start


def _run_sessions(user: np.ndarray, t: np.ndarray, start: np.ndarray) -> np.ndarray | None:
    """:func:`_order_sessions` for sessions that are runs of rows (``start``: each run's first row): the runs'
    numbers, which is their order by (user, start), or None when two runs of a user start at the same
    millisecond (then :func:`_order_sessions` orders them by their keys).

    Rebuilt runs never tie: each starts after an inactivity break or ``max_ms`` after the one before.
    """
    firsts = np.flatnonzero(start)
    u, s0 = user[firsts], t[firsts]
    if ((u[1:] == u[:-1]) & (s0[1:] == s0[:-1])).any():
        return None
    return (np.cumsum(start) - 1).astype(np.int64)


def _user_time_order(user: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Return the stable order of rows by (user, time): one 64-bit key when both fit in it, else lexsort."""
    if user.size == 0:
        return np.zeros(0, np.int64)
    span = int(t.max()) - int(t.min())
    if int(user.min()) >= 0 and int(user.max()) < 2**23 and span < 2**40:  # 8M users, 34 years of ms
        key = (user.astype(np.int64) << 40) | (t - t.min())
        return np.argsort(key, kind="stable")
    return np.lexsort((t, user))


def _ffill_within(values: np.ndarray, resets: np.ndarray) -> np.ndarray:
    """Forward-fill non-negative ``values`` over -1 entries, not across rows where ``resets`` is set."""
    n = len(values)
    idx = np.where((values >= 0) | resets, np.arange(n), 0)
    np.maximum.accumulate(idx, out=idx)
    return values[idx]


def _split_long_sessions(user: np.ndarray, t: np.ndarray, key: np.ndarray, max_ms: int) -> np.ndarray:
    """Start a new session at the first event more than ``max_ms`` after its session's start, repeatedly.

    Each pass splits every over-long session once, so the passes are as many as
    the longest session has days (a handful); rows are in (user, time) order.
    """
    key = key.astype(np.int64)
    next_key = int(key.max()) + 1 if len(key) else 0
    for _ in range(10_000):
        frame = pl.DataFrame({"k": key, "t": t})
        start = frame.select(pl.col("t").min().over("k")).to_series().to_numpy()
        over = (t - start) >= max_ms
        if not over.any():
            break
        # The first over-long row of each session starts a new session with every later row of it.
        first_over = (
            pl.DataFrame({"k": key[over], "r": np.flatnonzero(over)}).group_by("k").agg(pl.col("r").min())
        )
        cut = np.zeros(len(key), np.bool_)
        cut[first_over["r"].to_numpy()] = True
        moved = (
            pl.DataFrame({"k": key, "c": cut}).select(pl.col("c").cum_max().over("k")).to_series().to_numpy()
        )
        key = np.where(moved, key + next_key, key)
        next_key = int(key.max()) + 1
    return key


def _order_sessions(user: np.ndarray, t: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Return session indices 0..S-1 numbered by (user, session start, key)."""
    frame = pl.DataFrame({"u": user, "t": t, "k": key})
    starts = frame.group_by("k").agg(pl.col("u").first(), pl.col("t").min()).sort("u", "t", "k")
    starts = starts.with_row_index("s")
    return (
        frame.join(starts.select("k", "s"), on="k", how="left", maintain_order="left")["s"]
        .to_numpy()
        .astype(np.int64)
    )


def day_index(t_ms: np.ndarray) -> np.ndarray:
    """Return the UTC day number (days since 1970-01-01) of millisecond timestamps."""
    return np.floor_divide(t_ms, MS_PER_DAY)


# An export taken partway through its last day (or whose last sessions spill past midnight) has a last
# day with a fraction of the sessions of the days before. Counted as a day of the window, every user
# looks absent on it: churn, return chances and the rhythm by age all read that as leaving, and the
# twin generates that day in full. A last day with fewer sessions than this share of the mean of the
# 7 days before it is left out of the window (its sessions dropped).
PARTIAL_DAY_SHARE = 0.5


def complete_window(sessions: pl.DataFrame) -> Window:
    """Return the days the sessions start on, without a first or last day cut short (see ``PARTIAL_DAY_SHARE``).

    A last day is cut short by an export taken partway through it; a first day by a product whose day is
    not the UTC day (a site in UTC+2 has its first two local hours on the UTC day before: 7 users there
    against 470-760 on the next days, and a twin that generated that day in full). A first day counts as
    cut short only when its first session starts in the day's second half (with ``start_ms``): a product
    launched in the window has a quiet first day too, but a whole one, and its first users' first days.
    """
    window = Window.of(sessions)
    if window.days < 8:
        return window
    counts = np.bincount(sessions["day"].to_numpy() - window.first, minlength=window.days)
    first, last = window.first, window.last
    if counts[-1] < PARTIAL_DAY_SHARE * counts[-8:-1].mean():
        last -= 1
    if (
        window.days >= 9
        and counts[0] < PARTIAL_DAY_SHARE * counts[1:8].mean()
        and "start_ms" in sessions.columns
    ):
        opened = int(sessions.filter(pl.col("day") == window.first)["start_ms"].min())  # type: ignore[arg-type]
        if opened - window.first * MS_PER_DAY >= MS_PER_DAY // 2:
            first += 1
    return Window(first, last)
