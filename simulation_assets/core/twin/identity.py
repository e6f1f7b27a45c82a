"""Identity: which users arrive anonymous and are identified during the window, and where.

Estimator: per class and arrival kind, the share of users with an ``$identify`` event in the window; over all
identified users, which of their sessions (first, second, ...) holds the first ``$identify``, the event right
before it in that session (its lead-in: the sign-up page's view; none when it opens the session) and how many
events come before that. The distributions keep only answers seen for at least k users. The lead-in rows are
left out of the flows' fit (:func:`without_lead_ins`): the twin writes them with the ``$identify``, so its chain
does not place that page view in sessions that identify no one (a notes app's sign-up page, seen only before
``$identify``: the path "opened, synced, page view, identify" was 7.0 % of the export's first four events and
1.9 % of the twin's). In the twin such a user's events carry an anonymous device id until the ``$identify``
(which names it in ``$anon_distinct_id``), and their user id from then on.
"""

from __future__ import annotations

import numpy as np
import polars as pl

IDENTIFY = "$identify"
MAX_SESSION_INDEX = 10
MAX_POSITION = 100


def fit_identity(
    events: pl.DataFrame, strata: np.ndarray, k: int, n_strata: int, names: list[str] | None = None
) -> dict[str, object]:
    """Return the identity part of the spec from sessionized ``events`` and each user's stratum.

    ``strata[user]`` is any grouping of users (class x arrival kind); ``identified_share``
    is given per stratum. With ``names`` (the flows' events), the lead-in: the event of ``names`` right before
    each user's first ``$identify`` in its session ("" for none), and the position then counts the events
    before the lead-in.
    """
    ident = events.filter(pl.col("event") == IDENTIFY)
    sessions = _user_sessions(events)
    users = sessions.select(pl.col("user").unique())
    per_stratum = np.bincount(np.asarray(strata)[users["user"].to_numpy()], minlength=n_strata)
    if ident.is_empty():
        return {"identified_share": [0.0] * n_strata, "session": {"0": 1.0}, "position": {"0": 1.0}}
    first = _first_identifies(events)
    ident_users = first["user"].to_numpy()
    counts = np.bincount(np.asarray(strata)[ident_users], minlength=n_strata)
    share = np.divide(counts, per_stratum, out=np.zeros(n_strata), where=per_stratum > 0)
    # Which session of the user (0-based), and the event before it.
    sessions = sessions.with_columns(pl.int_range(pl.len()).over("user").alias("ordinal"))
    at = first.join(sessions, on=["user", "session"], how="left")
    ordinal = np.minimum(at["ordinal"].to_numpy(), MAX_SESSION_INDEX)
    out: dict[str, object] = {"identified_share": [round(float(x), 6) for x in share],
                              "session": _k_shares(ordinal, k, default=0)}  # fmt: skip
    seq = first["seq"].to_numpy()
    if names is not None:
        lead_in = _lead_in_of(events, first, names, k)
        seq = seq - (lead_in != "")
        out["lead_in"] = _k_shares(lead_in, k, default="")
    out["position"] = _k_shares(np.minimum(seq, MAX_POSITION), k, default=0)
    return out


def _first_identifies(events: pl.DataFrame) -> pl.DataFrame:
    """Return each user's first ``$identify`` row (user, session, seq, ...)."""
    return (
        events.filter(pl.col("event") == IDENTIFY).sort("t_ms").group_by("user", maintain_order=True).first()
    )


def _lead_in_of(events: pl.DataFrame, first: pl.DataFrame, names: list[str], k: int) -> np.ndarray:
    """Return, per ``first`` identify, the event of ``names`` right before it in its session ("" for none, and for
    an event before fewer than k users' identifies)."""
    wanted = first.filter(pl.col("seq") > 0).select("user", "session", (pl.col("seq") - 1).alias("seq"))
    rows = events.join(wanted, on=["user", "session", "seq"], how="inner").select("user", "event")
    lead = first.select("user").join(rows, on="user", how="left", maintain_order="left")
    out = lead["event"].fill_null("").to_numpy().astype(str)
    out[~np.isin(out, [name for name in names if name != IDENTIFY])] = ""
    out[~np.isin(out, [name for name in _k_shares(out, k, default="") if name])] = ""
    return out


def without_lead_ins(events: pl.DataFrame, names: list[str], k: int) -> pl.DataFrame:
    """Return ``events`` without the lead-in rows of the users' first ``$identify`` (the twin writes them with it):
    the rows right before it of the lead-in events :func:`fit_identity` keeps, in their order."""
    first = _first_identifies(events)
    if first.is_empty():
        return events
    take = _lead_in_of(events, first, names, k) != ""
    if not take.any():
        return events
    rows = first.filter(pl.Series(take)).select("session", (pl.col("seq") - 1).alias("seq"))
    return events.join(rows, on=["session", "seq"], how="anti", maintain_order="left")


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
