"""Groups (PostHog's group analytics) and what an ``$identify`` sets, fitted without copying a key or a value.

Groups. An export's rows name their user's groups in ``$groups`` (an object of group type -> key), and a
``$groupidentify`` row names the group it describes in ``$group_type`` and ``$group_key``. Estimators, on
the property sample's users (a share ``f`` of the training users):

- per group type and class, the share of the class's users who belong to a group of that type (the group
  most of their rows name);
- users per group: each group's sampled users ``m`` stand for ``m / f`` users, weighted by ``1 / (1 - (1 -
  f)^(m / f))`` (a small group is less likely to be sampled at all), in buckets of sizes; a bucket holds
  groups of at least k, the groups of a rarer bucket are counted in the nearest kept one below (or above);
- per event, the share of its rows carrying ``$groups`` among the rows of users who have a group.

The twin makes its own groups: each type's members (drawn by class) are dealt into groups of sizes drawn
from the buckets, and every group gets a synthetic UUID key. Rows carry ``$groups`` with the event's share
(never a row before the user's ``$identify``); a ``$groupidentify`` row's ``$group_key`` is its user's group
of the row's ``$group_type`` (a user without one: a group of their own).

What ``$identify`` sets. The ``$set`` (and ``$set_once``) objects of the sampled ``$identify`` rows: the
share of rows carrying each, and per inner key the shares of its values as text, counted like a category
property (a value seen by fewer than k users, or users of fewer than k groups, becomes ``other``; a key
named like an identifier or mostly holding rare or personal values, an e-mail address, is left out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.twin.properties import (
    _IDENTIFIER_PATTERN,
    OTHER,
    PERSONAL_PATTERN,
    _suppress_rare,
)

GROUPS = "$groups"
GROUP_IDENTIFY = "$groupidentify"
SET_KEYS = ("$set", "$set_once")
# Bucket edges of users per group: [1, 2), [2, 3) ... then about 1.5x wider each.
SIZE_EDGES = (1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 45, 70, 100, 150, 230, 350, 500, 750, 1000, 1500, 2300, 3500,
              5000)  # fmt: skip


def user_groups(sample: pl.DataFrame, columns: list[str]) -> pl.DataFrame | None:
    """Return (user, one column per group type named by the type: the group most of the user's rows name).

    ``columns`` are ``sample``'s group columns: ``$groups`` (an object of group type -> key as JSON text or a
    struct), its flattened ``$groups.<type>`` columns or ``$group_0``..``$group_4`` (types ``group_0``..).
    None when no row names a group.
    """
    if not columns:
        return None
    rows = sample.select("user", *columns)
    parts = [rows.select("user")]
    for c in columns:
        column = rows[c]
        if c == GROUPS:
            decoded = _objects(column)
            if decoded is None:
                continue
            parts.append(decoded.struct.unnest().select(pl.all().cast(pl.String)))
        else:
            name = c.removeprefix(f"{GROUPS}.").removeprefix("$")
            parts.append(column.cast(pl.String).alias(name).to_frame())
    frame = pl.concat(parts, how="horizontal") if len(parts) > 1 else None
    if frame is None:
        return None
    types = [c for c in frame.columns if c != "user" and frame[c].null_count() < frame.height]
    if not types:
        return None
    return (
        frame.group_by("user").agg(pl.col(c).drop_nulls().mode().sort().first() for c in types).sort("user")
    )


def fit_groups(
    sample: pl.DataFrame,
    columns: list[str],
    user_class: pl.DataFrame,
    n_classes: int,
    sampled_share: float,
    k: int,
) -> dict[str, object]:
    """Return the spec's ``identity.groups`` from ``sample`` (user, event, group ``columns``); {} without groups.

    ``user_class`` (user, class) covers the sampled users; ``sampled_share`` is their share of the training users.
    """
    per_user = user_groups(sample, columns)
    if per_user is None:
        return {}
    f = min(max(sampled_share, 1e-6), 1.0)
    everyone = user_class.join(per_user, on="user", how="left")
    in_class = np.bincount(everyone["class"].to_numpy(), minlength=n_classes).astype(np.float64)
    types = []
    for name in [c for c in per_user.columns if c != "user"]:
        has = everyone[name].is_not_null().to_numpy()
        holders = np.bincount(everyone["class"].to_numpy()[has], minlength=n_classes)
        share = np.divide(holders, in_class, out=np.zeros(n_classes), where=in_class > 0)
        sizes = everyone.filter(pl.col(name).is_not_null()).group_by(name).len()["len"].to_numpy()
        buckets = _size_buckets(sizes, f, k)
        if not buckets:
            continue  # fewer than k groups: nothing of their sizes is kept
        types.append({"type": name, "member_share": [round(float(x), 6) for x in share], "sizes": buckets})
    if not types:
        return {}
    member = pl.any_horizontal(pl.col(t["type"]).is_not_null() for t in types)
    members = per_user.filter(member).select("user")
    carried = _carrying(sample, columns)
    rows = sample.select("user", "event", carried.alias("carried")).join(members, on="user", how="semi")
    shares = rows.group_by("event").agg(pl.col("carried").mean()).sort("event")
    return {
        "types": types,
        "event_share": {e: round(float(s), 6) for e, s in shares.iter_rows() if s > 0},
    }


def _carrying(sample: pl.DataFrame, columns: list[str]) -> pl.Expr:
    """Whether a row names a group in any of ``columns`` (an empty object names none)."""
    names = []
    for c in columns:
        if isinstance(sample.schema[c], pl.Struct):
            names.append(pl.col(c).is_not_null())
        else:
            text = pl.col(c).cast(pl.String)
            names.append(text.is_not_null() & ~text.is_in(["{}", ""]))
    return pl.any_horizontal(names)


def _size_buckets(sizes: np.ndarray, f: float, k: int) -> list[list[float]]:
    """Return [[low, high, share], ...]: users per group in buckets [low, high), each of at least k groups."""
    est = np.maximum(np.round(sizes / f), sizes)
    weight = 1.0 / np.maximum(1.0 - (1.0 - f) ** est, 1e-9)
    edges = np.array([*SIZE_EDGES, max(SIZE_EDGES[-1] * 2, int(est.max(initial=1)) + 1)])
    bucket = np.clip(np.searchsorted(edges, est, side="right") - 1, 0, edges.size - 2)
    counts = np.bincount(bucket, minlength=edges.size - 1)
    kept = np.flatnonzero(counts >= k)
    if not kept.size:
        return []
    below = np.searchsorted(kept, bucket, side="right") - 1  # the nearest kept bucket below, else the first
    target = kept[np.maximum(below, 0)]
    w = np.bincount(target, weights=weight, minlength=edges.size - 1)[kept]
    w = w / w.sum()
    return [[int(edges[b]), int(edges[b + 1]), round(float(s), 6)] for b, s in zip(kept, w, strict=True)]


def fit_set(sample: pl.DataFrame, event: str, k: int, holders: pl.DataFrame | None, max_values: int) -> dict:
    """Return the spec's ``identity.set`` from the ``event`` rows of ``sample`` (user, event, ``$set``/``$set_once``
    as JSON text or structs): per object, the share of rows carrying it and each inner key's value shares."""
    rows = sample.filter(pl.col("event") == event)
    out: dict[str, object] = {}
    for key in [c for c in SET_KEYS if c in rows.columns]:
        column = _objects(rows[key])
        if column is None:
            continue
        fields = column.struct.unnest()
        carried = column.is_not_null()
        keys: dict[str, dict[str, object]] = {}
        for name in sorted(fields.columns):
            if re.search(_IDENTIFIER_PATTERN, name) or isinstance(fields[name].dtype, pl.Struct | pl.List):
                continue
            values = pl.DataFrame({"user": rows["user"], "value": fields[name].cast(pl.String)}).drop_nulls()
            if values.height < k:
                continue
            personal = values["value"].str.contains(PERSONAL_PATTERN)
            values = values.with_columns(
                pl.when(personal).then(None).otherwise(pl.col("value")).alias("value")
            )
            kept = _suppress_rare(values.drop_nulls(), k, max_values, holders)
            common = kept.filter(pl.col("value") != OTHER)
            if common.height <= 0.5 * values.height:
                continue  # mostly rare or personal values: an identifier
            shares = kept.group_by("value").len().sort("len", "value", descending=[True, False])
            total = shares["len"].sum()
            keys[name] = {
                "share": round(values.height / max(int(carried.sum()), 1), 6),
                "values": {v: round(n / total, 6) for v, n in shares.iter_rows()},
            }
        if keys:
            out[key] = {"share": round(float(carried.mean() or 0.0), 6), "keys": keys}
    return out


# ---- the twin's own groups and sets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwinGroups:
    """Every twin user's groups (made once per population) and the chances rows name them."""

    types: list[str]
    group_of: np.ndarray  # (types, users): the user's group of each type, -1 none
    start: np.ndarray  # (types,): where each type's group keys start in ``keys``
    own: np.ndarray  # (types,): where each type's keys of every user's own group (of one) start
    keys: pl.Series  # every type's keys, then a null
    event_share: np.ndarray  # per event code: the chance a member's row carries $groups

    def columns(
        self,
        names: list[str],
        codes: np.ndarray,
        user_no: np.ndarray,
        anonymous: np.ndarray,
        group_type: pl.Series | None,
        g: np.random.Generator,
    ) -> dict[str, pl.Series]:
        """Return ``$groups`` for rows of events ``codes`` (index into ``names``, past them: none) of users
        ``user_no``, and ``$group_key`` on the ``$groupidentify`` rows (their ``$group_type``'s group)."""
        n, null = codes.size, self.keys.len() - 1
        share = np.r_[
            self.event_share, np.zeros(max(int(codes.max(initial=0)) + 1 - self.event_share.size, 0))
        ]
        group = self.group_of[:, user_no]  # (types, rows)
        carry = (group >= 0).any(axis=0) & ~anonymous & (g.random(n) < share[codes])
        start = self.start
        fields = [
            self.keys[_gather(np.where(carry & (group[t] >= 0), start[t] + group[t], null))].alias(name)
            for t, name in enumerate(self.types)
        ]
        struct = pl.DataFrame(fields).select(pl.when(pl.lit(pl.Series(carry))).then(pl.struct(self.types)))
        out = {GROUPS: struct.to_series().alias(GROUPS)}
        if GROUP_IDENTIFY in names:
            which = np.zeros(n, np.int64)  # the row's group type (without $group_type: the first)
            if group_type is not None:
                for t, name in enumerate(self.types):
                    which[(group_type == name).fill_null(False).to_numpy()] = t
            mine = group[which, np.arange(n)]
            index = np.where(mine >= 0, start[which] + mine, self.own[which] + user_no)
            index = np.where(codes == names.index(GROUP_IDENTIFY), index, null)
            out["$group_key"] = self.keys[_gather(index)].alias("$group_key")
        return out


def make_groups(
    doc: dict, names: list[str], cls: np.ndarray, seed: int, first_ms: int, g: np.random.Generator
) -> TwinGroups | None:
    """Return the twin's groups for users of classes ``cls`` from the spec's ``identity.groups`` (None: none).

    Per type, the members (by their class's share) are shuffled and dealt into groups whose sizes are drawn
    from the buckets (uniform within one); keys are UUIDv7 of ``first_ms`` hashed from the seed, the type
    and the group (or user) number: synthetic, and the same for every day.
    """
    from simulation_assets.core.hogflix.ids import uuid7s

    if not doc or not doc.get("types"):
        return None
    n = cls.size
    types, group_of, keys, start, own, at = [], [], [], [], [], 0
    for t, spec in enumerate(doc["types"]):
        share = np.asarray(spec["member_share"], np.float64)
        share = np.r_[share, np.zeros(max(int(cls.max(initial=0)) + 1 - share.size, 0))]
        members = np.flatnonzero(g.random(n) < share[cls])
        members = members[g.permutation(members.size)]
        buckets = np.asarray(spec["sizes"], np.float64)
        cdf = np.cumsum(buckets[:, 2]) / buckets[:, 2].sum()
        sizes = np.zeros(0, np.int64)
        while sizes.sum() < members.size:  # a few rounds: each draws as many groups as members are left
            left = members.size - int(sizes.sum())
            b = np.minimum(np.searchsorted(cdf, g.random(left), side="right"), cdf.size - 1)
            drawn = np.floor(buckets[b, 0] + g.random(left) * (buckets[b, 1] - buckets[b, 0])).astype(
                np.int64
            )
            sizes = np.r_[sizes, drawn[: np.searchsorted(np.cumsum(drawn), left) + 1]]
        mine = np.full(n, -1, np.int64)
        mine[members] = np.repeat(np.arange(sizes.size), sizes)[: members.size]
        n_groups = int(mine.max(initial=-1)) + 1
        ms = np.full(n_groups + n, first_ms, np.int64)
        keys.append(uuid7s(ms, seed, 40 + t, np.r_[np.arange(n_groups), np.arange(n) + (1 << 32)]))
        types.append(str(spec["type"]))
        group_of.append(mine)
        start.append(at)
        own.append(at + n_groups)
        at += n_groups + n
    share = doc.get("event_share", {})
    event_share = np.array([float(share.get(name, 0.0)) for name in names])
    return TwinGroups(
        types,
        np.array(group_of).reshape(len(types), n),
        np.array(start, np.int64),
        np.array(own, np.int64),
        pl.concat([*keys, pl.Series([None], dtype=pl.String)]),
        event_share,
    )


def set_columns(doc: dict, ident: np.ndarray, g: np.random.Generator) -> dict[str, pl.Series]:
    """Return the ``$set`` / ``$set_once`` objects of the ``ident`` rows, drawn from the spec's ``identity.set``."""
    out = {}
    n = ident.size
    for key, spec in (doc or {}).items():
        carried = ident & (g.random(n) < float(spec["share"]))
        fields = []
        for name, inner in spec["keys"].items():
            values = list(inner["values"])
            cdf = np.cumsum(list(inner["values"].values()))
            pick = np.minimum(np.searchsorted(cdf / cdf[-1], g.random(n), side="right"), len(values) - 1)
            present = carried & (g.random(n) < float(inner["share"]))
            codes = np.where(present, pick, len(values))
            fields.append(pl.Series(name, [*values, None], pl.String)[_gather(codes)])
        frame = pl.DataFrame(fields) if fields else pl.DataFrame({"__": [None] * n})
        struct = frame.select(pl.when(pl.lit(pl.Series(carried))).then(pl.struct(frame.columns)))
        out[key] = struct.to_series().alias(key)
    return out


def _gather(index: np.ndarray) -> pl.Series:
    return pl.Series(index.astype(np.uint32 if index.size and index.max() < 2**32 else np.int64))


def _objects(column: pl.Series) -> pl.Series | None:
    """Return ``column`` as a struct Series: a struct column as it is, JSON object text decoded (other
    text null); None when it holds no object."""
    if isinstance(column.dtype, pl.Struct):
        return column
    text = column.cast(pl.String)
    is_object = text.str.starts_with("{").fill_null(False)
    if not bool(is_object.any()):
        return None
    decoded = _masked(text, is_object).str.json_decode(infer_schema_length=None)
    return decoded if isinstance(decoded.dtype, pl.Struct) else None


def _masked(values: pl.Series, keep: pl.Series) -> pl.Series:
    """Return ``values`` with null where ``keep`` is false."""
    return pl.select(pl.when(pl.lit(keep)).then(pl.lit(values))).to_series().alias(values.name)
