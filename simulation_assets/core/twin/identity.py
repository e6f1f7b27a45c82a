"""Identity: which users arrive anonymous and are identified during the window, and where.

Estimator: per class and arrival kind, the share of users with an ``$identify``
event in the window; over all identified users, which of their sessions (first,
second, ...) holds the first ``$identify``, and how many events come before it in
that session. Both distributions keep only answers seen for at least k users. In the twin such a user's events carry an
anonymous device id until the ``$identify`` (which names it in
``$anon_distinct_id``), and their user id from then on.
"""

from __future__ import annotations

import numpy as np
import polars as pl

IDENTIFY = "$identify"
MAX_SESSION_INDEX = 10
MAX_POSITION = 100


def fit_identity(events: pl.DataFrame, strata: np.ndarray, k: int, n_strata: int) -> dict[str, object]:
    """Return the identity part of the spec from sessionized ``events`` and each user's stratum.

    ``strata[user]`` is any grouping of users (class x arrival kind); ``identified_share``
    is given per stratum.
    """
    ident = events.filter(pl.col("event") == IDENTIFY)
    sessions = _user_sessions(events)
    users = sessions.select(pl.col("user").unique())
    per_stratum = np.bincount(np.asarray(strata)[users["user"].to_numpy()], minlength=n_strata)
    if ident.is_empty():
        return {"identified_share": [0.0] * n_strata, "session": {"0": 1.0}, "position": {"0": 1.0}}
    first = ident.sort("t_ms").group_by("user", maintain_order=True).first()
    ident_users = first["user"].to_numpy()
    counts = np.bincount(np.asarray(strata)[ident_users], minlength=n_strata)
    share = np.divide(counts, per_stratum, out=np.zeros(n_strata), where=per_stratum > 0)
    # Which session of the user (0-based), and the event before it.
    sessions = sessions.with_columns(pl.int_range(pl.len()).over("user").alias("ordinal"))
    at = first.join(sessions, on=["user", "session"], how="left")
    ordinal = np.minimum(at["ordinal"].to_numpy(), MAX_SESSION_INDEX)
    position = np.minimum(first["seq"].to_numpy(), MAX_POSITION)
    return {
        "identified_share": [round(float(x), 6) for x in share],
        "session": _k_shares(ordinal, k, default=0),
        "position": _k_shares(position, k, default=0),
    }


def _user_sessions(events: pl.DataFrame) -> pl.DataFrame:
    """Return the distinct (user, session) pairs sorted by user and session.

    Sessionized events come ordered by session, and sessions numbered by user: the pairs are then where
    the session changes (a tenth of the CPU of finding the distinct pairs among millions of rows).
    """
    session = events["session"].to_numpy()
    if len(session) > 1 and (np.diff(session) >= 0).all():
        firsts = np.r_[0, np.flatnonzero(np.diff(session)) + 1]
        if (np.diff(events["user"].to_numpy()[firsts]) >= 0).all():
            return events.select("user", "session")[firsts]
    return events.select("user", "session").unique().sort("user", "session")


def _k_shares(values: np.ndarray, k: int, default: object) -> dict:
    """Return {value: share} over the values seen at least k times (one value per user), else {default: 1}."""
    vals, counts = np.unique(values, return_counts=True)
    keep = counts >= k
    if not keep.any():
        return {str(default): 1.0}
    total = counts[keep].sum()
    # Keys are text, as YAML and JSON make them anyway: the spec reads back exactly as it was written.
    return {str(v): round(float(c / total), 6) for v, c in zip(vals[keep].tolist(), counts[keep])}
