"""Is the twin closer to the people it was fitted on than to people it never saw?

Every user (real or twin) becomes a vector of behavioural features: log sessions
per week, active days, mean events per session, median session seconds, median
hours between sessions, first day in the window, the shares of their sessions
in six 4-hour blocks and on weekends, and the shares of the ten most common
events among their events; each feature standardized with the training users'
mean and spread.

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
beside holdout users identical to one. Users with the same short history (one
visit of one event on the same day) match without being copied, as often in the
holdout as in an honest twin; a twin that hides a few copied users among its own
(5 % of them) moves neither share above, but has far more exact matches than the
holdout.

The test passes when the share nearer a training user stays within
``dcr_share_max`` (or 1.96 binomial standard errors above one half, if more,
counting the fewer of the twin users and the holdout users),
at most ``TOO_CLOSE_MAX`` (twice the expected 5 %) of twin users are nearer a
training user than the holdout's 5th percentile, and the twin's share of exact
matches exceeds the holdout's by at most ``EXACT_EXCESS_MIN`` (one point) or 1.96
standard errors of the difference, if more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.twin.config import Targets
from simulation_assets.core.twin.features import weekday
from simulation_assets.core.twin.fit import Prepared

MAX_TWIN_USERS = 20_000
TOO_CLOSE_MAX = 0.10
SUBSAMPLES = 5
EXACT_EXCESS_MIN = 0.01  # twin share of exact matches allowed above the holdout's (plus sampling noise)


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
    holdout_exact_matches: int = (
        0  # holdout users identical to one: the share simple behaviour gives uncopied
    )
    exact_share_max: float = float("nan")  # the largest share of exact matches among twin users that passes

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def user_vectors(p: Prepared, top_events: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return (user ids, feature matrix) of every user of ``p`` (unstandardized; see module doc)."""
    stats = p.user_stats.sort("user")
    s = p.sessions
    block = (s["start_ms"].to_numpy() % 86_400_000) // 14_400_000
    weekend = weekday(s["day"].to_numpy()) >= 5
    times = pl.DataFrame({"user": s["user"], "block": block, "weekend": weekend})
    shares = times.group_by("user").agg(
        *[(pl.col("block") == b).mean().alias(f"b{b}") for b in range(6)],
        pl.col("weekend").mean().alias("we"),
    )
    mix = p.events.group_by("user").agg(
        [(pl.col("event") == e).mean().alias(f"e{i}") for i, e in enumerate(top_events)]
    )
    table = (
        stats.select(
            "user",
            pl.col("sessions_per_week").log1p(),
            pl.col("active_days").cast(pl.Float64).log1p(),
            pl.col("events_per_session").log1p(),
            pl.col("session_duration").log1p(),
            pl.col("gap_hours").fill_null(0.0).log1p().alias("gap"),
            (pl.col("first_day") - p.window.first).cast(pl.Float64).alias("first"),
        )
        .join(shares, on="user", how="left")
        .join(mix, on="user", how="left")
        .fill_null(0.0)
        .sort("user")
    )
    return table["user"].to_numpy(), table.drop("user").to_numpy().astype(np.float64)


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
    _, xt = user_vectors(train, top)
    _, xh = user_vectors(hold, top)
    _, xs = user_vectors(twin, top)
    if xh.shape[0] == 0 or xt.shape[0] == 0 or xs.shape[0] == 0:
        return PrivacyReport(
            xs.shape[0], xt.shape[0], xh.shape[0], float("nan"), targets.dcr_share_max, False
        )
    mean, spread = xt.mean(axis=0), xt.std(axis=0)
    spread[spread == 0] = 1.0
    xt, xh, xs = (xt - mean) / spread, (xh - mean) / spread, (xs - mean) / spread
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
    exact, hold_exact = int((twin_to_train < 1e-9).sum()), int((hold_to_train < 1e-9).sum())
    p_twin, p_hold = exact / xs.shape[0], hold_exact / xh.shape[0]
    noise = float(np.sqrt(p_twin * (1 - p_twin) / xs.shape[0] + p_hold * (1 - p_hold) / xh.shape[0]))
    exact_max = p_hold + max(EXACT_EXCESS_MIN, 1.96 * noise)
    return PrivacyReport(
        twin_users=int(xs.shape[0]),
        training_users=int(xt.shape[0]),
        holdout_users=int(xh.shape[0]),
        closer_to_training_share=round(closer, 4),
        bound=round(bound, 4),
        passed=bool(closer <= bound and too_close <= TOO_CLOSE_MAX and p_twin <= exact_max),
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
    )


def copied_identifiers(real: pl.DataFrame, twin: pl.DataFrame) -> dict[str, int]:
    """Return how many of the twin's event uuids, distinct ids and session ids also occur in the real rows.

    ``real`` and ``twin``: normalized export rows (``uuid``, ``distinct_id``, ``session_id``).
    """
    out = {}
    for column in ("uuid", "distinct_id", "session_id"):
        seen = real[column].drop_nulls().unique()
        out[column] = int(twin[column].drop_nulls().unique().is_in(seen.implode()).sum()) if seen.len() else 0
    return out
