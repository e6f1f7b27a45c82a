"""Is the twin closer to the people it was fitted on than to people it never saw?

Every user (real or twin) becomes a vector of behavioural features, from their
sessions on the days both the export and the twin cover: log sessions, active
days and events, log mean and largest events per session, the share of one-event
sessions, log median session seconds, log median and shortest hours between
sessions, first and last day, the mean direction of their session starts on the
24-hour clock (cosine and sine), the share at weekends, and the shares of the ten
most common events among their events; each feature standardized with the
training users' mean and spread. (The clock replaced six 4-hour blocks: an hour's
shift moved a session into the next block, and a block few users use has so
small a spread that one such session was several standard deviations.)

Distance to closest record (DCR): for every twin user, the Euclidean distance
to the nearest training user and to the nearest holdout user, with the training
users subsampled to as many as the holdout has. A twin that learned the
population and not the people is as close to either group: about half of its
users are nearer a training user (with the training users subsampled, a copied
user finds its original only in that share of the draws, so copying shows as a
share of one half plus half the subsampling ratio: 0.625 at a 20 % holdout).
Second, the distances themselves: twin users' distance to the nearest training
user beside holdout users' distance to it. Only 5 % of holdout users are nearer a
training user than the holdout's 5th percentile; a twin that copies people has
far more users that close (a copied user sits at distance 0).

Third, exact copies: twin users identical in every feature to a training user,
beside holdout users identical to one. A twin that hides a few copied users among
its own (5 % of them) moves neither share above, but has far more exact matches
than the holdout.

Fourth, membership: copies moved in time (each user by up to an hour, gaps and
durations stretched by up to a tenth) are identical to nobody and, in a crowd of
similar users, not nearer than the holdout's 5th percentile either. But a copy
singles its original out: seen from the original, one twin user is much nearer
than the second nearest. For every training and holdout user, the ratio of the
distances to their nearest and second-nearest twin users (without the clock,
which a move in time changes); a user is singled out at a ratio at or below the
holdout users' 5th percentile. Training and holdout users are drawn alike from
the same people, so without copies as many of each are singled out, however
well or badly the twin matches the export; with copies, more training users are.

The test passes when the share nearer a training user stays within
``dcr_share_max`` (or 1.96 binomial standard errors above one half, if more,
counting the fewer of the twin users and the holdout users),
at most ``TOO_CLOSE_MAX`` (twice the expected 5 %) of twin users are nearer a
training user than the holdout's 5th percentile, the twin's share of exact
matches exceeds the holdout's by at most ``EXACT_EXCESS_MIN`` (one point) or 1.96
standard errors of the difference, if more, and the training users' share
singled out exceeds the holdout users' by at most ``SINGLED_OUT_EXCESS_MIN`` (one
point) or ``SINGLED_OUT_Z`` (3) standard errors of the difference, if more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.twin.config import MS_PER_DAY, MS_PER_HOUR, Targets
from simulation_assets.core.twin.features import Window, weekday
from simulation_assets.core.twin.fit import Prepared

MAX_TWIN_USERS = 20_000
TOO_CLOSE_MAX = 0.10
SUBSAMPLES = 5
EXACT_EXCESS_MIN = 0.01  # twin share of exact matches allowed above the holdout's (plus sampling noise)
MEMBERSHIP_LEAVES_OUT = ("clock_cos", "clock_sin")  # what a copy moved in time changes most
MEMBERSHIP_TWIN_USERS = 100_000  # twin users (at most) among which real users look for their nearest two
MEMBERSHIP_QUERIES = 20_000  # training users and holdout users (at most, each) that look
SINGLED_OUT_QUANTILE = 0.05  # singled out: a nearest-ratio as low as the lowest 5 % of the holdout users'
SINGLED_OUT_EXCESS_MIN = 0.01  # training share singled out allowed above the holdout's: one point ...
SINGLED_OUT_Z = 3.0  # ... or 3 standard errors of the difference, if more (one-sided, 0.13 % by chance)


@dataclass
class PrivacyReport:
    twin_users: int
    training_users: int
    holdout_users: int
    closer_to_training_share: float
    bound: float
    passed: bool
    too_close_share: float = float("nan")  # twin users nearer a training user than the holdout's p5
    dcr_quantiles: dict[str, dict[str, float]] = field(default_factory=dict)
    exact_copies: int = 0  # twin users identical in every feature to a training user
    holdout_exact_matches: int = 0  # holdout users identical to one: what simple behaviour gives uncopied
    exact_share_max: float = float("nan")  # the largest share of exact matches among twin users that passes
    # Membership: real users singled out by a twin user (nearest-ratio at or below the cut), training beside holdout.
    singled_out_cut: float = float("nan")
    training_singled_out_share: float = float("nan")
    holdout_singled_out_share: float = float("nan")
    singled_out_share_max: float = float("nan")  # the largest training share that passes

    def as_dict(self) -> dict:
        return self.__dict__.copy()


FEATURES = (
    "sessions", "active_days", "events", "events_per_session", "largest_session", "one_event_sessions",
    "duration", "gap", "shortest_gap", "first_day", "last_day", "clock_cos", "clock_sin", "weekend",
)  # fmt: skip


def user_vectors(
    p: Prepared, top_events: list[str], window: Window | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (user ids, feature matrix) of every user of ``p`` with a session in ``window`` (default: ``p``'s), from
    those sessions only: ``FEATURES`` then the shares of ``top_events`` (unstandardized; see module doc)."""
    window = window or p.window
    s = p.sessions.filter(pl.col("day").is_between(window.first, window.last)).sort("user", "start_ms")
    events = p.events.join(s.select("session"), on="session", how="semi")
    clock = 2 * np.pi * (s["start_ms"].to_numpy() % MS_PER_DAY) / MS_PER_DAY
    s = s.with_columns(
        pl.Series("cos", np.cos(clock)),
        pl.Series("sin", np.sin(clock)),
        pl.Series("weekend", weekday(s["day"].to_numpy()) >= 5),
        ((pl.col("start_ms") - pl.col("start_ms").shift(1).over("user")) / MS_PER_HOUR).alias("gap_h"),
    )
    depth = pl.col("n_events").cast(pl.Float64)
    per_user = s.group_by("user").agg(
        pl.len().cast(pl.Float64).log1p().alias("sessions"),
        pl.col("day").n_unique().cast(pl.Float64).log1p().alias("active_days"),
        depth.sum().log1p().alias("events"),
        depth.mean().log1p().alias("events_per_session"),
        depth.max().log1p().alias("largest_session"),
        (pl.col("n_events") == 1).mean().alias("one_event_sessions"),
        pl.col("duration_s").median().log1p().alias("duration"),
        pl.col("gap_h").drop_nulls().median().log1p().alias("gap"),
        pl.col("gap_h").drop_nulls().min().log1p().alias("shortest_gap"),
        (pl.col("day").min() - window.first).cast(pl.Float64).alias("first_day"),
        (pl.col("day").max() - window.first).cast(pl.Float64).alias("last_day"),
        pl.col("cos").mean().alias("clock_cos"),
        pl.col("sin").mean().alias("clock_sin"),
        pl.col("weekend").mean(),
    )
    mix = events.group_by("user").agg(
        [(pl.col("event") == e).mean().alias(f"e{i}") for i, e in enumerate(top_events)]
    )
    table = per_user.select("user", *FEATURES).join(mix, on="user", how="left").fill_null(0.0).sort("user")
    return table["user"].to_numpy(), table.drop("user").to_numpy().astype(np.float64)


def nearest_ratio(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Return each query's distance to its nearest row of ``reference`` over its distance to the second nearest.

    Near 0: one reference row sits far closer than any other, as a copy sits by its original. Two rows at
    distance 0 (a crowd of identical short histories) give 1: nothing singles the query out.
    """
    from sklearn.neighbors import NearestNeighbors

    d = NearestNeighbors(n_neighbors=2).fit(reference).kneighbors(queries)[0]
    return np.where(d[:, 1] > 0, d[:, 0] / np.where(d[:, 1] > 0, d[:, 1], 1.0), 1.0)


def dcr_test(real: Prepared, twin: Prepared, targets: Targets | None = None, seed: int = 42) -> PrivacyReport:
    """Return the distance-to-closest-record test of ``twin`` against ``real``'s training and holdout users."""
    from sklearn.neighbors import NearestNeighbors

    targets = targets or Targets()
    g = rng_mod.stream(seed, "twin", "privacy")
    train, hold = real.subset(holdout=False), real.subset(holdout=True)
    top = (
        real.events.group_by("event")
        .agg(pl.len())
        .sort(["len", "event"], descending=[True, False])
        .head(10)["event"]
        .to_list()
    )
    # The days both cover: a twin run longer than the export would otherwise differ from its own copies.
    window = Window(max(real.window.first, twin.window.first), min(real.window.last, twin.window.last))
    _, xt = user_vectors(train, top, window)
    _, xh = user_vectors(hold, top, window)
    _, xs = user_vectors(twin, top, window)
    if xh.shape[0] == 0 or xt.shape[0] == 0 or xs.shape[0] == 0:
        return PrivacyReport(
            xs.shape[0], xt.shape[0], xh.shape[0], float("nan"), targets.dcr_share_max, False
        )
    mean, spread = xt.mean(axis=0), xt.std(axis=0)
    spread[spread == 0] = 1.0
    xt, xh, xs = (xt - mean) / spread, (xh - mean) / spread, (xs - mean) / spread
    twin_all = xs
    if xs.shape[0] > MAX_TWIN_USERS:
        xs = xs[g.choice(xs.shape[0], MAX_TWIN_USERS, replace=False)]
    n = min(xt.shape[0], xh.shape[0])
    xh_eq = xh[g.choice(xh.shape[0], n, replace=False)]
    d_hold = NearestNeighbors(n_neighbors=1).fit(xh_eq).kneighbors(xs)[0][:, 0]
    # Averaged over several draws of the training subsample: the share then hardly depends on the draw.
    shares = []
    for _ in range(SUBSAMPLES):
        xt_eq = xt[g.choice(xt.shape[0], n, replace=False)]
        d_train = NearestNeighbors(n_neighbors=1).fit(xt_eq).kneighbors(xs)[0][:, 0]
        # Ties (both at the same distance) count half: a twin user exactly between the groups is no evidence.
        shares.append(float(((d_train < d_hold) + 0.5 * (d_train == d_hold)).mean()))
    closer = float(np.mean(shares))
    # The share is noisy in the twin users and in the reference users alike: the smaller count decides.
    bound = max(targets.dcr_share_max, 0.5 + 1.96 * float(np.sqrt(0.25 / min(xs.shape[0], n))))
    full_train = NearestNeighbors(n_neighbors=1).fit(xt)
    twin_to_train = full_train.kneighbors(xs)[0][:, 0]
    hold_to_train = full_train.kneighbors(xh)[0][:, 0]
    too_close = float((twin_to_train < np.quantile(hold_to_train, 0.05)).mean())
    q = [0.01, 0.05, 0.25, 0.5]
    exact, hold_exact = _identical(xs, xt), _identical(xh, xt)
    p_twin, p_hold = exact / xs.shape[0], hold_exact / xh.shape[0]
    noise = float(np.sqrt(p_twin * (1 - p_twin) / xs.shape[0] + p_hold * (1 - p_hold) / xh.shape[0]))
    exact_max = p_hold + max(EXACT_EXCESS_MIN, 1.96 * noise)
    member = _singled_out(xt, xh, twin_all, g)
    return PrivacyReport(
        twin_users=int(xs.shape[0]),
        training_users=int(xt.shape[0]),
        holdout_users=int(xh.shape[0]),
        closer_to_training_share=round(closer, 4),
        bound=round(bound, 4),
        passed=bool(
            closer <= bound
            and too_close <= TOO_CLOSE_MAX
            and p_twin <= exact_max
            and not member.get("training_singled_out_share", 0.0) > member.get("singled_out_share_max", 1.0)
        ),
        too_close_share=round(too_close, 4),
        dcr_quantiles={
            "twin_to_training": {
                f"p{int(x * 100)}": round(float(np.quantile(twin_to_train, x)), 4) for x in q
            },
            "holdout_to_training": {
                f"p{int(x * 100)}": round(float(np.quantile(hold_to_train, x)), 4) for x in q
            },
        },
        exact_copies=exact,
        holdout_exact_matches=hold_exact,
        exact_share_max=round(exact_max, 4),
        **member,
    )


def _singled_out(xt: np.ndarray, xh: np.ndarray, xs: np.ndarray, g: np.random.Generator) -> dict[str, float]:
    """Membership test: is a training user more often singled out by one twin user than a holdout user is?

    Each real user's nearest-ratio among the twin users (``nearest_ratio``); the cut is the holdout users'
    ``SINGLED_OUT_QUANTILE`` quantile. Training and holdout users are drawn alike from the same people, so
    without copies the same share of each falls at or below the cut, however well or badly the twin matches
    the export; a copy, even moved in time, singles its original out.
    """
    if xs.shape[0] < 2:  # no second nearest: nothing to single anyone out with
        return {}
    keep = [i for i in range(xs.shape[1]) if i >= len(FEATURES) or FEATURES[i] not in MEMBERSHIP_LEAVES_OUT]
    xs, xt, xh = xs[:, keep], xt[:, keep], xh[:, keep]
    twin = _at_most(xs, MEMBERSHIP_TWIN_USERS, g)
    rt = nearest_ratio(twin, _at_most(xt, MEMBERSHIP_QUERIES, g))
    rh = nearest_ratio(twin, _at_most(xh, MEMBERSHIP_QUERIES, g))
    cut = float(np.quantile(rh, SINGLED_OUT_QUANTILE))
    st, sh = float((rt <= cut).mean()), float((rh <= cut).mean())
    pooled = (st * rt.size + sh * rh.size) / (rt.size + rh.size)
    noise = float(np.sqrt(pooled * (1 - pooled) * (1 / rt.size + 1 / rh.size)))
    return {
        "singled_out_cut": round(cut, 4),
        "training_singled_out_share": round(st, 4),
        "holdout_singled_out_share": round(sh, 4),
        "singled_out_share_max": round(sh + max(SINGLED_OUT_EXCESS_MIN, SINGLED_OUT_Z * noise), 4),
    }


def _identical(rows: np.ndarray, reference: np.ndarray) -> int:
    """Return how many of ``rows`` equal a row of ``reference`` in every feature (compared as bytes: a distance
    computed through dot products is off zero by rounding)."""
    as_bytes = np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))
    seen = np.ascontiguousarray(reference + 0.0).view(as_bytes).ravel()  # + 0.0: -0.0 becomes 0.0
    return int(np.isin(np.ascontiguousarray(rows + 0.0).view(as_bytes).ravel(), seen).sum())


def _at_most(x: np.ndarray, n: int, g: np.random.Generator) -> np.ndarray:
    """Return ``x``, or ``n`` of its rows drawn without replacement (in their order) when it has more."""
    return x[np.sort(g.choice(x.shape[0], n, replace=False))] if x.shape[0] > n else x


def copied_identifiers(real: pl.DataFrame, twin: pl.DataFrame) -> dict[str, int]:
    """Return how many of the twin's event uuids, distinct ids and session ids also occur in the real rows.

    ``real`` and ``twin``: normalized export rows (``uuid``, ``distinct_id``, ``session_id``).
    """
    out = {}
    for column in ("uuid", "distinct_id", "session_id"):
        seen = real[column].drop_nulls().unique()
        out[column] = int(twin[column].drop_nulls().unique().is_in(seen.implode()).sum()) if seen.len() else 0
    return out
