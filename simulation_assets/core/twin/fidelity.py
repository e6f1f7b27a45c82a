"""How close the twin is to the real export, measured side by side on the same days.

- Per-user distributions (sessions per week, active days, mean events per
  session, median session duration, median hours between sessions): two-sample
  Kolmogorov-Smirnov statistic.
- Hour-of-week profile of session starts, event mix, top transitions (the 20
  most common real ones, the rest pooled), the most common session paths (first
  four events): total-variation distance.
- Weekly retention by first-seen week, weeks 1-8, averaged over the cohorts that
  have the week fully observed: largest gap in points.
- DAU / WAU: the mean daily-over-trailing-7-day active ratio.
- Versions that roll out (:func:`version_mix`): per week of the run, the total-variation distance between
  the twin's mix of a version key over sessions and the export's (the fit's sample).
- Values a session carries on (:func:`carried_values`): per event and key, the share of rows whose value
  is the session's previous one (a page-leave's URL the page's), the fit's sample beside the twin.
- Train on twin, test on real: a churn classifier (logistic regression on
  standardized log features of the weeks before a cutoff; churned = no session
  after it) trained on the twin and tested on the real holdout users, beside the
  same classifier trained on the real training users (ROC AUC).

Small exports: each bound is the target or, when it is larger, the
distance two samples drawn from one population exceed 5 % of the time (KS: the
asymptotic two-sample critical value; TV: a permutation of the pooled users;
retention: z standard errors of the difference of two shares, z making the
largest gap over the weeks observed exceed it 5 % of the time (Bonferroni: 2.73
for 8 weeks); train on twin:
1.96 DeLong standard errors of the difference of the two AUCs on the same test
users). The twin's
side counts as many users as the twin learned from (the training users) when
that is fewer than it has: a twin carries the sampling noise of the users it
was fitted on, however many users it generates. From 5,000 real users on, the
fixed numbers apply.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl
from scipy.stats import norm

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.twin.arrivals import calendar_days, new_and_returning
from simulation_assets.core.twin.config import Targets
from simulation_assets.core.twin.features import DISTRIBUTIONS, Window, user_day_activity
from simulation_assets.core.twin.fit import Prepared

KS_ALPHA_05 = 1.3581  # c(0.05) of the asymptotic two-sample KS distribution
PERMUTATIONS = 200
PERMUTATION_USERS = 20_000
TOP_TRANSITIONS = 20
TOP_PATHS = 10
MIN_CHURN_DAYS = 21  # shorter exports give a churn horizon under a week: the classifier is not measured
PATH_LENGTH = 4
CARRIED_MIN_SHARE = 0.05  # a value repeated on fewer rows on both sides says little (not reported)
VERSION_DRAWS = 2_000  # draws of two weekly mixes of one population, for the TV's critical values


@dataclass
class Comparison:
    name: str
    kind: str  # ks | tv | retention | auc | calendar
    value: float
    bound: float
    passed: bool
    detail: dict = field(default_factory=dict)


@dataclass
class FidelityReport:
    real_users: int
    twin_users: int
    days: int
    comparisons: list[Comparison]
    retention: pl.DataFrame  # week, real, twin, gap
    hour_of_week: pl.DataFrame  # hour_of_week, real, twin
    event_mix: pl.DataFrame  # event, real, twin
    paths: pl.DataFrame  # path, real, twin
    dau_wau: dict[str, float]
    # day (date), real, twin (scaled to the export's users): calendar days a twin misses (a holiday, a launch)
    daily_active: pl.DataFrame = field(default_factory=pl.DataFrame)

    def by_name(self, name: str) -> Comparison:
        return next(c for c in self.comparisons if c.name == name)

    def group_passed(self, kind: str) -> bool:
        return all(c.passed for c in self.comparisons if c.kind == kind)

    def as_dict(self) -> dict:
        return {
            "real_users": self.real_users,
            "twin_users": self.twin_users,
            "days": self.days,
            "comparisons": [asdict(c) for c in self.comparisons],
            "retention": self.retention.to_dicts(),
            "event_mix": self.event_mix.to_dicts(),
            "paths": self.paths.to_dicts(),
            "dau_wau": self.dau_wau,
            "dau_by_day": dau_by_day_summary(self.daily_active),
            "daily_active_users": [{**row, "day": str(row["day"])} for row in self.daily_active.to_dicts()],
        }


# ---- statistics -------------------------------------------------------------------------------------------------------


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Return the two-sample Kolmogorov-Smirnov statistic (largest gap between the empirical CDFs)."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    if a.size == 0 or b.size == 0:
        return 1.0
    grid = np.concatenate([a, b])
    return float(
        np.abs(np.searchsorted(a, grid, "right") / a.size - np.searchsorted(b, grid, "right") / b.size).max()
    )


def ks_critical(n: int, m: int) -> float:
    """Return the 5 % two-sample KS critical value for sample sizes n and m."""
    return KS_ALPHA_05 * float(np.sqrt((n + m) / max(n * m, 1)))


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Return the total-variation distance of two count (or share) vectors."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    return 0.5 * float(np.abs(p / max(p.sum(), 1e-12) - q / max(q.sum(), 1e-12)).sum())


def tv_critical(real_counts: np.ndarray, twin_counts: np.ndarray, g: np.random.Generator) -> float:
    """Return the 95th percentile of the TV distance between random splits of the pooled users.

    ``*_counts``: one row per user, one column per bin; the split keeps the two sample sizes.
    """
    n, m = real_counts.shape[0], twin_counts.shape[0]
    if n > PERMUTATION_USERS:
        real_counts = real_counts[g.choice(n, PERMUTATION_USERS, replace=False)]
    if m > PERMUTATION_USERS:
        twin_counts = twin_counts[g.choice(m, PERMUTATION_USERS, replace=False)]
    pooled = np.vstack([real_counts, twin_counts]).astype(np.float64)
    size = real_counts.shape[0]
    total = pooled.sum(axis=0)
    out = np.empty(PERMUTATIONS)
    for i in range(PERMUTATIONS):
        pick = np.zeros(pooled.shape[0], np.bool_)
        pick[g.choice(pooled.shape[0], size, replace=False)] = True
        a = pick.astype(np.float64) @ pooled
        out[i] = tv_distance(a, total - a)
    return float(np.quantile(out, 0.95))


def _bound(fixed: float, critical: float, real_users: int, targets: Targets) -> float:
    return fixed if real_users >= targets.full_power_users else max(fixed, critical)


# ---- profiles ---------------------------------------------------------------------------------------------------------


def _per_user_counts(frame: pl.DataFrame, column: str, bins: list) -> tuple[np.ndarray, np.ndarray]:
    """Return (users, counts[users x bins]) of ``column`` values per user (values outside ``bins`` dropped)."""
    index = {b: i for i, b in enumerate(bins)}
    users = frame["user"].unique().sort().to_numpy()
    row = np.searchsorted(users, frame["user"].to_numpy())
    col = (
        np.array([index.get(v, -1) for v in frame[column].to_list()])
        if frame.height
        else np.zeros(0, np.int64)
    )
    keep = col >= 0
    counts = np.zeros((users.size, len(bins)))
    np.add.at(counts, (row[keep], col[keep]), 1.0)
    return users, counts


def _transitions(p: Prepared, top: list[str] | None) -> pl.DataFrame:
    ev = p.events.sort("session", "t_ms", "seq")
    pairs = ev.select(
        "user", (pl.col("event") + " → " + pl.col("event").shift(-1).over("session")).alias("pair")
    ).drop_nulls()
    if top is not None:
        pairs = pairs.with_columns(
            pl.when(pl.col("pair").is_in(top)).then(pl.col("pair")).otherwise(pl.lit("other")).alias("pair")
        )
    return pairs


def _paths(p: Prepared) -> pl.DataFrame:
    ev = p.events.filter(pl.col("seq") < PATH_LENGTH).sort("session", "seq")
    return ev.group_by("session", maintain_order=True).agg(
        pl.col("user").first(), pl.col("event").str.join(" → ").alias("path")
    )


def retention_curve(p: Prepared, window: Window, weeks: int) -> pl.DataFrame:
    """Return week, retained share (cohort-size weighted over fully observed cohorts) and users in the base."""
    act = user_day_activity(p.sessions).with_columns(((pl.col("day") - window.first) // 7).alias("week"))
    first = act.group_by("user").agg(pl.col("week").min().alias("cohort"))
    act = act.join(first, on="user").with_columns((pl.col("week") - pl.col("cohort")).alias("age"))
    last_full_week = (window.days // 7) - 1
    rows = []
    for w in range(1, weeks + 1):
        base = first.filter(pl.col("cohort") + w <= last_full_week)
        retained = act.filter(pl.col("age") == w).join(base, on="user", how="semi")["user"].n_unique()
        rows.append(
            {"week": w, "share": retained / base.height if base.height else None, "base": base.height}
        )
    return pl.DataFrame(rows, schema={"week": pl.Int32, "share": pl.Float64, "base": pl.Int64})


def daily_active_users(real: Prepared, twin: Prepared, window: Window) -> pl.DataFrame:
    """Return each day's active users: the export's, and the twin's scaled to as many users as the export.

    Weekly profiles and per-user distributions cannot see a calendar: a Christmas week at a quarter of the
    usual traffic, a launch day at three times. Side by side per date they show.
    """
    days = np.arange(window.first, window.last + 1)
    counts = []
    for p in (real, twin):
        act = user_day_activity(p.sessions)
        counts.append(np.bincount(act["day"].to_numpy() - window.first, minlength=days.size)[: days.size])
    n_real = real.sessions["user"].n_unique()
    n_twin = max(twin.sessions["user"].n_unique(), 1)
    return pl.DataFrame(
        {
            "day": pl.Series(days, dtype=pl.Int32).cast(pl.Date),
            "real": counts[0],
            "twin": np.round(counts[1] * n_real / n_twin, 1),
        }
    )


CALENDAR_SHARE_MAX = (
    0.25  # a calendar day's twin active users within a quarter of the export's (or 3 Poisson sds)
)


def calendar_days_comparison(daily: pl.DataFrame, real: Prepared, window: Window) -> Comparison:
    """Return how far the twin's active users are from the export's on the export's calendar days.

    Calendar days (``arrivals.calendar_days``: a sale, a holiday, a day in the news) are found on the
    export's own newcomers and returning users by day; on each, the twin's active users (scaled to as many
    users as the export) against the export's: the share off, bound by a quarter or three standard deviations of
    the difference of two Poisson counts of the day's size, whichever is larger. No calendar days: 0, passed, with a
    "not applicable" note (as the other checks with nothing to judge say).
    """
    act = user_day_activity(real.sessions)
    first = act.group_by("user").agg(pl.col("day").min())["day"].to_numpy() - window.first
    new, returning = new_and_returning(first, act["day"].to_numpy() - window.first, window.days)
    days = [d for d, _, _ in calendar_days(new, returning)]
    if not days:
        return Comparison("calendar_days", "calendar", 0.0, CALENDAR_SHARE_MAX, True,
                          {"days": 0, "note": "not applicable: no day of the export departs from its weekday"})  # fmt: skip
    r, t = daily["real"].to_numpy()[days].astype(np.float64), daily["twin"].to_numpy()[days]
    off = np.abs(t - r) / np.maximum(r, 1.0)
    bounds = np.maximum(CALENDAR_SHARE_MAX, 3.0 * np.sqrt(2.0 / np.maximum(r, 1.0)))  # two counts' noise
    worst = int(np.argmax(off - bounds))
    dates = [str(daily["day"][d]) for d in days]
    return Comparison("calendar_days", "calendar", round(float(off[worst]), 4), round(float(bounds[worst]), 4),
                      bool((off <= bounds).all()), {"days": len(days), "worst_day": dates[worst],
                      "real": [int(x) for x in r], "twin": [float(x) for x in t], "dates": dates})  # fmt: skip


def dau_by_day_summary(daily: pl.DataFrame) -> dict[str, object]:
    """Return the mean absolute difference of the days' active users (share of the export's mean) and the worst day."""
    if daily.is_empty() or daily["real"].sum() == 0:
        return {}
    diff = (daily["twin"] - daily["real"]).abs()
    worst = int(diff.arg_max())  # type: ignore[arg-type]
    return {
        "mean_abs_difference_share": round(float(diff.mean() / daily["real"].mean()), 4),  # type: ignore[operator]
        "worst_day": str(daily["day"][worst]),
        "worst_real": int(daily["real"][worst]),
        "worst_twin": float(daily["twin"][worst]),
    }


def dau_over_wau(p: Prepared, window: Window) -> float:
    """Return the mean over days (from the 7th) of daily active users over trailing-7-day active users."""
    act = user_day_activity(p.sessions).select("user", "day")
    days = np.arange(window.first + 6, window.last + 1)
    if days.size == 0 or act.is_empty():
        return float("nan")
    day = act["day"].to_numpy()
    user = act["user"].to_numpy()
    dau = np.bincount(day - window.first, minlength=window.days)
    ratios = []
    for d in days:  # one pass per day of the window (tens to hundreds), each vectorized
        in_week = (day > d - 7) & (day <= d)
        wau = np.unique(user[in_week]).size
        if wau:
            ratios.append(dau[d - window.first] / wau)
    return float(np.mean(ratios)) if ratios else float("nan")


# ---- churn classifier -------------------------------------------------------------------------------------------------


def churn_dataset(p: Prepared, window: Window, top_events: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return (features, churned) of the users first seen before the cutoff (``window.days`` minus a horizon).

    Horizon: a third of the window, at most 28 days. Features (log1p): sessions, active days, days since the
    last session, days since the first, mean events per session, median session seconds, sessions in the
    last 7 days, and the share of each of ``top_events`` among the user's events, all before the cutoff.
    """
    horizon = min(28, max(1, window.days // 3))
    cut = window.last + 1 - horizon
    s = p.sessions.filter(pl.col("day") < cut)
    if s.is_empty():
        return np.zeros((0, 7 + len(top_events))), np.zeros(0, np.bool_)
    after = set(p.sessions.filter(pl.col("day") >= cut)["user"].unique().to_list())
    per_user = (
        s.group_by("user")
        .agg(
            pl.len().alias("sessions"),
            pl.col("day").n_unique().alias("active_days"),
            (cut - pl.col("day").max()).alias("recency"),
            (cut - pl.col("day").min()).alias("tenure"),
            pl.col("n_events").mean().alias("depth"),
            pl.col("duration_s").median().alias("duration"),
            (pl.col("day") >= cut - 7).sum().alias("last_week"),
        )
        .sort("user")
    )
    ev = p.events.filter(pl.col("t_ms") < cut * 86_400_000)
    mix = ev.group_by("user").agg(
        [(pl.col("event") == e).mean().alias(f"mix_{i}") for i, e in enumerate(top_events)]
    )
    table = per_user.join(mix, on="user", how="left").fill_null(0)
    x = np.log1p(np.maximum(table.drop("user").to_numpy().astype(np.float64), 0))
    y = np.array([u not in after for u in table["user"].to_list()])
    return x, y


def tstr(
    real_train: Prepared, real_test: Prepared, twin: Prepared, window: Window, seed: int
) -> dict[str, float]:
    """Return the AUCs of the churn classifier trained on real and on twin users, both tested on real holdout users."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    top = (
        real_train.events.group_by("event")
        .agg(pl.len())
        .sort(["len", "event"], descending=[True, False])
        .head(10)["event"]
        .to_list()
    )
    x_test, y_test = churn_dataset(real_test, window, top)
    out: dict[str, float] = {
        "test_users": float(len(y_test)),
        "test_churned": float(y_test.sum()) if len(y_test) else 0.0,
    }
    if len(y_test) == 0 or y_test.all() or not y_test.any():
        out.update({"auc_real": float("nan"), "auc_twin": float("nan")})
        return out
    scores = {}
    for name, source in (("auc_real", real_train), ("auc_twin", twin)):
        x, y = churn_dataset(source, window, top)
        if len(y) < 10 or y.all() or not y.any():
            out[name] = float("nan")
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
        model.fit(x, y)
        scores[name] = model.predict_proba(x_test)[:, 1]
        out[name] = float(roc_auc_score(y_test, scores[name]))
    if len(scores) == 2:
        out["difference_se"] = auc_difference_se(y_test, scores["auc_real"], scores["auc_twin"])
    return out


def auc_difference_se(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Return DeLong's standard error of AUC(a) - AUC(b), two scores of the same test users (labels ``y``).

    Each positive's and each negative's share of the pairs it wins (its placement value) under both
    scores; the variance of the difference is the covariance of those placements over the positives
    and over the negatives (DeLong, DeLong and Clarke-Pearson 1988).
    """
    from scipy.stats import rankdata

    y = np.asarray(y, np.bool_)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        return float("nan")
    v10, v01 = [], []
    for s in (np.asarray(a, np.float64), np.asarray(b, np.float64)):
        r_all = rankdata(s)
        v10.append((r_all[y] - rankdata(s[y])) / n)  # share of negatives each positive outscores
        v01.append(1.0 - (r_all[~y] - rankdata(s[~y])) / m)  # share of positives each negative stays below
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return float(np.sqrt(max(var, 0.0)))


# ---- the report -------------------------------------------------------------------------------------------------------


def clip_to(p: Prepared, window: Window) -> Prepared:
    """Return ``p`` restricted to sessions starting inside ``window`` (users without any dropped)."""
    keep_sessions = p.sessions.filter(pl.col("day").is_between(window.first, window.last))
    ids = keep_sessions["session"]
    users = keep_sessions["user"].unique()
    return Prepared(
        p.events.filter(pl.col("session").is_in(ids)),
        p.users.filter(pl.col("user").is_in(users)),
        keep_sessions,
        p.user_stats.filter(pl.col("user").is_in(users)),
        window,
        p.rebuilt,
        p.rows,
    )


def hide_rare_events(p: Prepared, k: int) -> Prepared:
    """Return ``p`` with event names seen for fewer than k users, or holding personal data, renamed ``other``.

    The report is read beside the twin: it names the real events it compares (mix, transitions, paths)
    under the spec's own rule, so an event one person did ("Exported data for jane@...") is not listed.
    """
    from simulation_assets.core.twin.properties import OTHER, PERSONAL_PATTERN

    users = p.events.group_by("event").agg(pl.col("user").n_unique().alias("u"))
    hidden = users.filter((pl.col("u") < k) | pl.col("event").str.contains(PERSONAL_PATTERN))["event"]
    if hidden.is_empty():
        return p
    events = p.events.with_columns(
        pl.when(pl.col("event").is_in(hidden.implode()))
        .then(pl.lit(OTHER))
        .otherwise(pl.col("event"))
        .alias("event")
    )
    return Prepared(events, p.users, p.sessions, p.user_stats, p.window, p.rebuilt, p.rows)


def compare(
    real: Prepared, twin: Prepared, targets: Targets | None = None, seed: int = 42, k: int = 5
) -> FidelityReport:
    """Return the fidelity report of ``twin`` against ``real`` (both from :func:`~.fit.prepare`).

    The comparison runs on the days both cover. ``real.users['holdout']`` marks the real users the
    twin was not fitted on (the churn classifier's test set). Real event names seen for fewer than ``k``
    users are compared (and named) as ``other`` (:func:`hide_rare_events`).
    """
    from simulation_assets.core.twin.features import user_table

    targets = targets or Targets()
    g = rng_mod.stream(seed, "twin", "fidelity")
    window = Window(max(real.window.first, twin.window.first), min(real.window.last, twin.window.last))
    real, twin = hide_rare_events(clip_to(real, window), k), clip_to(twin, window)
    ru, tu = user_table(real.sessions, window), user_table(twin.sessions, window)
    n_real, n_twin = ru.height, tu.height
    comparisons: list[Comparison] = []
    # The twin knows as much as its training users: its side counts at most that many users.
    learned = min(1.0, real.users.filter(~pl.col("holdout")).height / max(n_twin, 1))
    crit = ks_critical(n_real, int(n_twin * learned))
    for name in DISTRIBUTIONS:
        a, b = ru[name].drop_nulls().to_numpy(), tu[name].drop_nulls().to_numpy()
        stat = ks_statistic(a, b)
        bound = _bound(targets.ks_max, ks_critical(a.size, max(1, int(b.size * learned))), n_real, targets)
        comparisons.append(Comparison(name, "ks", round(stat, 4), round(bound, 4), bool(stat <= bound),
                                      {"real_median": _median(a), "twin_median": _median(b), "critical_5pct": round(crit, 4)}))  # fmt: skip
    # Profiles.
    hours = list(range(168))
    _, rh = _per_user_counts(real.sessions, "hour_of_week", hours)
    _, th = _per_user_counts(twin.sessions, "hour_of_week", hours)
    events = sorted(
        set(real.events["event"].unique().to_list()) | set(twin.events["event"].unique().to_list())
    )
    _, re_ = _per_user_counts(real.events, "event", events)
    _, te = _per_user_counts(twin.events, "event", events)
    real_pairs = _transitions(real, None)
    top = (
        real_pairs.group_by("pair")
        .agg(pl.len())
        .sort(["len", "pair"], descending=[True, False])
        .head(TOP_TRANSITIONS)["pair"]
        .to_list()
    )
    bins_t = [*top, "other"]
    _, rt = _per_user_counts(_transitions(real, top), "pair", bins_t)
    _, tt = _per_user_counts(_transitions(twin, top), "pair", bins_t)
    rp, tp = _paths(real), _paths(twin)
    top_paths = (
        pl.concat([rp, tp])
        .group_by("path")
        .agg(pl.len())
        .sort(["len", "path"], descending=[True, False])
        .head(TOP_PATHS)["path"]
        .to_list()
    )
    bins_p = [*top_paths, "other"]
    rp = rp.with_columns(
        pl.when(pl.col("path").is_in(top_paths)).then(pl.col("path")).otherwise(pl.lit("other")).alias("path")
    )
    tp = tp.with_columns(
        pl.when(pl.col("path").is_in(top_paths)).then(pl.col("path")).otherwise(pl.lit("other")).alias("path")
    )
    _, rpc = _per_user_counts(rp, "path", bins_p)
    _, tpc = _per_user_counts(tp, "path", bins_p)
    for name, a, b in (
        ("hour_of_week", rh, th),
        ("event_mix", re_, te),
        ("top_transitions", rt, tt),
        ("top_paths", rpc, tpc),
    ):
        stat = tv_distance(a.sum(axis=0), b.sum(axis=0))
        n_a, n_b = max(a.shape[0], 1), max(b.shape[0], 1)
        scale = np.sqrt((1 / n_a + 1 / max(n_b * learned, 1)) / (1 / n_a + 1 / n_b))
        critical = tv_critical(a, b, g) * scale
        bound = _bound(targets.tv_max, critical, n_real, targets)
        comparisons.append(
            Comparison(
                name,
                "tv",
                round(stat, 4),
                round(bound, 4),
                bool(stat <= bound),
                {"critical_5pct": round(critical, 4)},
            )
        )
    # Retention.
    r_ret = retention_curve(real, window, targets.retention_weeks)
    t_ret = retention_curve(twin, window, targets.retention_weeks)
    ret = (
        r_ret.join(t_ret, on="week", suffix="_twin")
        .select(
            "week",
            pl.col("share").alias("real"),
            pl.col("share_twin").alias("twin"),
            pl.col("base").alias("real_base"),
            pl.col("base_twin").alias("twin_base"),
        )
        .with_columns((pl.col("twin") - pl.col("real")).abs().alias("gap"))
    )
    observed = ret.drop_nulls(["real", "twin"])
    if observed.is_empty():
        # Not measured is not passed: an export shorter than two full weeks cannot show retention.
        comparisons.append(Comparison("retention_weeks_1_8", "retention", float("nan"), targets.retention_points_max, False,
                                      {"note": f"not measured: {window.days} days hold no full week after a first week"}))  # fmt: skip
    else:
        p = observed["real"].to_numpy()
        se = np.sqrt(
            np.clip(p * (1 - p), 1e-6, None)
            * (
                1 / observed["real_base"].to_numpy()
                + 1 / np.maximum(observed["twin_base"].to_numpy() * learned, 1)
            )
        )
        # The largest gap of several weeks: a 5 % chance over all of them (Bonferroni), not 5 % per week.
        z = float(norm.ppf(1 - 0.025 / observed.height))
        bounds = np.array([_bound(targets.retention_points_max, z * s, n_real, targets) for s in se])
        gaps = observed["gap"].to_numpy()
        worst = int(np.argmax(gaps - bounds))
        comparisons.append(Comparison("retention_weeks_1_8", "retention", round(float(gaps.max()), 4), round(float(bounds[worst]), 4),
                                      bool((gaps <= bounds).all()), {"weeks_observed": observed.height,
                                      "worst_week": int(observed["week"][worst])}))  # fmt: skip
    # Train on twin, test on real.
    train_real = real.subset(holdout=False)
    test_real = real.subset(holdout=True)
    if window.days < MIN_CHURN_DAYS:  # a churn label needs a week without visits to mean anything
        aucs = {"auc_real": float("nan"), "auc_twin": float("nan")}
    else:
        aucs = tstr(train_real, test_real, twin, window, seed)
    gap = abs(aucs["auc_twin"] - aucs["auc_real"])
    se = aucs.get("difference_se", float("nan"))
    auc_bound = _bound(targets.auc_gap_max, 1.96 * se if np.isfinite(se) else 0.0, n_real, targets)
    ok = bool(np.isfinite(gap) and gap <= auc_bound)
    detail = {k: round(v, 4) for k, v in aucs.items()}
    if not np.isfinite(gap):
        detail["note"] = (
            f"not measured: {window.days} days; the churn classifier needs {MIN_CHURN_DAYS}"
            if window.days < MIN_CHURN_DAYS
            else "not measured: a side has too few users or one class"
        )
    comparisons.append(Comparison("tstr_churn_auc", "auc", round(gap, 4) if np.isfinite(gap) else float("nan"),
                                  round(auc_bound, 4), ok, detail))  # fmt: skip
    daily = daily_active_users(real, twin, window)
    comparisons.append(calendar_days_comparison(daily, real, window))
    dau = {"real": round(dau_over_wau(real, window), 4), "twin": round(dau_over_wau(twin, window), 4)}
    return FidelityReport(
        real_users=n_real,
        twin_users=n_twin,
        days=window.days,
        comparisons=comparisons,
        retention=ret,
        hour_of_week=pl.DataFrame(
            {
                "hour_of_week": hours,
                "real": rh.sum(axis=0) / max(rh.sum(), 1),
                "twin": th.sum(axis=0) / max(th.sum(), 1),
            }
        ),
        event_mix=pl.DataFrame(
            {
                "event": events,
                "real": re_.sum(axis=0) / max(re_.sum(), 1),
                "twin": te.sum(axis=0) / max(te.sum(), 1),
            }
        ),
        paths=pl.DataFrame(
            {
                "path": bins_p,
                "real": rpc.sum(axis=0) / max(rpc.sum(), 1),
                "twin": tpc.sum(axis=0) / max(tpc.sum(), 1),
            }
        ),
        dau_wau=dau,
        daily_active=daily,
    )


def _median(x: np.ndarray) -> float | None:
    return round(float(np.median(x)), 3) if x.size else None


def _shares_by_event(hits: pl.DataFrame, key: str, lag: int, export: pl.DataFrame) -> pl.DataFrame:
    """Return per event of ``export`` (event, export, source) the twin's share of ``hits`` (event, u, hit: one row
    per twin row judged, ``u`` its user), its rows, users and standard error over the users (a ratio estimate's
    spread, clustered by user), with ``key`` and ``lag``."""
    per_user = hits.group_by("event", "u").agg(pl.col("hit").sum().alias("y"), pl.len().alias("n"))
    share = pl.col("y").sum() / pl.col("n").sum()
    return per_user.group_by("event").agg(
        pl.lit(key).alias("key"), pl.lit(lag, pl.Int8).alias("lag"), share.alias("twin"),
        pl.col("n").sum().cast(pl.Int64).alias("rows"), pl.len().alias("users"),
        ((pl.col("y") - share * pl.col("n")) ** 2).sum().sqrt().truediv(pl.col("n").sum()).alias("se"),
    ).join(export, on="event", how="inner")  # fmt: skip


def carried_values(
    events: pl.DataFrame,
    event_keys: pl.DataFrame,
    sources: pl.DataFrame | None = None,
    top: int | None = 12,
    categories: pl.DataFrame | None = None,
    lookups: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Return (event, key, source, lag, export, twin, rows): how often an event's value of a key is given by the
    session's current one (``source`` the key itself, ``lag`` 1) or by another key's (``sources``).

    ``events``: the twin's events (``$session_id``, ``timestamp``, ``event`` and the property columns);
    ``event_keys`` and ``sources``: the spec's tables, whose ``same_share`` is the share the fit measured on its
    sample of the export's users (rare values as ``other`` there and in the twin). Per row: the share of the
    event's rows, among those with a source value, equal to it: the same row's (lag 0) or the last one before
    it in the session (lag 1); the ``top`` rows with the most twin rows (every row: ``None``). ``users``: the
    twin users with such rows; ``se``: the standard error of the twin's share over them (a user's rows are
    not independent draws: a ratio estimate's spread over users, clustered by ``user_number`` or, without
    it, ``distinct_id``; at least that of as many independent rows at the export's share). With the spec's
    ``categories``, each (event, key) whose session's first rows have a mix of their own adds a row with
    ``source`` ``first row: V`` (lag 0): the share of the event's first rows with the key in their session
    that have V, the first rows' commonest value (a visit opens ``$direct``). With the spec's ``lookups``, each
    (event, key) that follows another key (``follow_share`` in ``event_keys``) adds a row with ``source``
    ``P (lookup)`` (lag 0): the share of the event's rows whose parent P has a looked-up value that have the
    lookup's value (a video's title and duration those of its id).
    """
    schema = {"event": pl.String, "key": pl.String, "source": pl.String, "lag": pl.Int8, "export": pl.Float64,
              "twin": pl.Float64, "rows": pl.Int64, "users": pl.Int64, "se": pl.Float64}  # fmt: skip
    wanted = []
    if "same_share" in event_keys.columns:
        own = event_keys.drop_nulls("same_share")
        wanted.append(own.select("event", "key", pl.col("key").alias("source"), pl.lit(1, pl.Int8).alias("lag"),
                                 pl.col("same_share").alias("export")))  # fmt: skip
    if sources is not None and sources.height:
        wanted.append(
            sources.select(
                "event", "key", "source", pl.col("lag").cast(pl.Int8), pl.col("same_share").alias("export")
            )
        )
    opening = pl.DataFrame(
        schema={"event": pl.String, "key": pl.String, "value": pl.String, "export": pl.Float64}
    )
    if categories is not None and "entry_share" in categories.columns:
        opening = (
            categories.drop_nulls("entry_share")
            .filter(pl.col("key").is_in(events.columns))
            .sort(["event", "key", "entry_share", "value"], descending=[False, False, True, False])
            .group_by("event", "key", maintain_order=True)
            .first()
            .select("event", "key", "value", pl.col("entry_share").alias("export"))
        )
    following = pl.DataFrame(
        schema={"event": pl.String, "key": pl.String, "parent": pl.String, "export": pl.Float64}
    )
    if lookups is not None and lookups.height and "follow_share" in event_keys.columns:
        following = (
            event_keys.drop_nulls("follow_share")
            .join(lookups.select("key", "parent").unique(), on="key", how="inner")
            .filter(pl.col("key").is_in(events.columns) & pl.col("parent").is_in(events.columns))
            .select("event", "key", "parent", pl.col("follow_share").alias("export"))
        )
    if (not wanted and opening.is_empty() and following.is_empty()) or events.is_empty():
        return pl.DataFrame(schema=schema)
    measured = (
        pl.concat(wanted)
        if wanted
        else pl.DataFrame(schema={c: schema[c] for c in ("event", "key", "source", "lag", "export")})
    ).filter(  # fmt: skip
        pl.col("key").is_in(events.columns) & pl.col("source").is_in(events.columns)
    )
    if measured.is_empty() and opening.is_empty() and following.is_empty():
        return pl.DataFrame(schema=schema)
    order = ["$session_id", "timestamp", *(["sequence"] if "sequence" in events.columns else [])]
    keys = sorted(
        set(measured["key"]) | set(measured["source"]) | set(opening["key"]) | set(following["key"])
        | set(following["parent"])
    )  # fmt: skip
    unit = next((c for c in ("user_number", "distinct_id") if c in events.columns), "$session_id")
    frame = events.select(
        list(dict.fromkeys([*order, unit, "event", *keys]))
    )  # (a key may be named as a column)
    frame = frame.with_row_index("__i").sort([*order, "__i"])
    parts = []
    for (key, source, lag), part in measured.group_by("key", "source", "lag", maintain_order=True):
        given = pl.col(source).cast(pl.String)
        if lag == 1:
            given = given.shift(1).forward_fill().over("$session_id")
        rows = frame.select(
            "event", pl.col(unit).alias("u"), pl.col(key).cast(pl.String).alias("v"), given.alias("s")
        ).drop_nulls(["v", "s"])
        hits = rows.select("event", "u", (pl.col("v") == pl.col("s")).alias("hit"))
        parts.append(
            _shares_by_event(hits, key, lag, part.select("event", "export", pl.lit(source).alias("source")))
        )
    for (key,), part in opening.group_by("key", maintain_order=True):
        present = pl.col(key).is_not_null()
        first = present & (present.cast(pl.Int32).cum_sum().over("$session_id") == 1)
        hits = (
            frame.filter(first)
            .select("event", pl.col(unit).alias("u"), pl.col(key).cast(pl.String).alias("v"))
            .join(part.select("event", "value"), on="event", how="inner")
            .select("event", "u", (pl.col("v") == pl.col("value")).alias("hit"))
        )
        export = part.select("event", "export", ("first row: " + pl.col("value")).alias("source"))
        parts.append(_shares_by_event(hits, key, 0, export))
    for (key, parent), part in following.group_by("key", "parent", maintain_order=True):
        table = lookups.filter((pl.col("key") == key) & (pl.col("parent") == parent))  # type: ignore[union-attr]
        number = frame.schema[key].is_numeric()
        want = pl.col("value").cast(pl.Float64, strict=False) if number else pl.col("value")
        v = pl.col(key).cast(pl.Float64) if number else pl.col(key).cast(pl.String)
        hits = (
            frame.select(
                "event", pl.col(unit).alias("u"), v.alias("v"), pl.col(parent).cast(pl.String).alias("p")
            )
            .drop_nulls(["v", "p"])
            .join(table.select(pl.col("parent_value").alias("p"), want.alias("want")), on="p", how="inner")
            .select("event", "u", (pl.col("v") == pl.col("want")).alias("hit"))
        )
        export = part.select("event", "export", pl.lit(f"{parent} (lookup)").alias("source"))
        parts.append(_shares_by_event(hits, key, 0, export))
    if not parts:
        return pl.DataFrame(schema=schema)
    table = pl.concat(parts).select([pl.col(c).cast(t) for c, t in schema.items()])
    # Never below a binomial draw of the row's count at the export's share: the spread over users is nil when
    # the twin has one user of the row or all its rows agree (a one-row comparison judged with no noise). The
    # share is taken as if one row more of each kind had been seen (Laplace's rule of succession): at a share
    # of 0 or 1 a plain binomial has no spread either, and a rare event's one twin row would fail on its own.
    n = pl.col("rows").clip(1)
    share = (pl.col("export") * n + 1) / (n + 2)
    binomial = (share * (1 - share) / n).sqrt()
    table = table.with_columns(pl.max_horizontal("se", binomial).alias("se"))
    table = table.filter(pl.max_horizontal("export", "twin") >= CARRIED_MIN_SHARE)
    table = table.sort(["rows", "event", "key", "source"], descending=[True, False, False, False])
    return (table if top is None else table.head(top)).with_columns(
        pl.col("export").round(4), pl.col("twin").round(4), pl.col("se").round(5)
    )


def version_mix(events: pl.DataFrame, trends: pl.DataFrame, start: dt.date) -> pl.DataFrame:
    """Return (key, week, export, twin, tv, sessions, effective): each week's mix of a version key that rolls out.

    ``events``: the twin's events from ``start`` (its first day); ``trends``: the spec's ``property_trends``
    (each 7-day block's mix over the sessions of the fit's sample of the export). Per key and week, the
    twin's mix over its sessions (a session's first value) beside the export's, as the shares of the newest
    value (``export``, ``twin``) and the total-variation distance over every value (``tv``). A user's
    sessions of a week mostly share a version, so the week's mix is worth fewer draws than its sessions:
    ``effective`` is Kish's effective sample size over the users, (sum of their sessions)^2 / sum of squares.
    """
    schema = {"key": pl.String, "week": pl.Int32, "export": pl.Float64, "twin": pl.Float64, "tv": pl.Float64,
              "sessions": pl.Int64, "effective": pl.Float64}  # fmt: skip
    unit = next((c for c in ("user_number", "distinct_id") if c in events.columns), "$session_id")
    parts = []
    for (key,), real in trends.group_by("key", maintain_order=True):
        if key not in events.columns:
            continue
        blocks = int(real["block"].max()) + 1  # type: ignore[arg-type]
        day = (pl.col("timestamp").min().dt.date() - pl.lit(start)).dt.total_days()
        sessions = (
            events.drop_nulls(key)
            .group_by("$session_id")
            .agg(day.alias("day"), pl.col(unit).first().alias("u"), pl.col(key).first().cast(pl.String).alias("value"))
            .with_columns((pl.col("day") // 7).clip(0, blocks - 1).cast(pl.Int16).alias("block"))
        )  # fmt: skip
        twin = (
            sessions.group_by("block", "value")
            .agg(pl.len().alias("n"))
            .with_columns((pl.col("n") / pl.col("n").sum().over("block")).alias("twin"))
        )
        effective = (
            sessions.group_by("block", "u")
            .agg(pl.len().alias("m"))
            .group_by("block")
            .agg((pl.col("m").sum().cast(pl.Float64) ** 2 / (pl.col("m") ** 2).sum()).alias("effective"))
        )
        both = real.join(twin, on=["block", "value"], how="full", coalesce=True).with_columns(
            pl.col("share").fill_null(0.0), pl.col("twin").fill_null(0.0), pl.col("n").fill_null(0)
        )
        newest = real.filter(pl.col("rank") == 0)["value"][0]
        parts.append(
            both.group_by("block")
            .agg(
                (pl.col("share").filter(pl.col("value") == newest).sum()).alias("export"),
                (pl.col("twin").filter(pl.col("value") == newest).sum()).alias("twin"),
                (0.5 * (pl.col("share") - pl.col("twin")).abs().sum()).alias("tv"),
                pl.col("n").sum().alias("sessions"),
            )
            .filter(pl.col("sessions") > 0)
            .join(effective, on="block", how="left")
            .select(
                pl.lit(key).alias("key"), pl.col("block").alias("week"), "export", "twin", "tv", "sessions",
                "effective",
            )
        )  # fmt: skip
    if not parts:
        return pl.DataFrame(schema=schema)
    table = pl.concat([p.select([pl.col(c).cast(t) for c, t in schema.items()]) for p in parts])
    return table.sort("key", "week").with_columns(
        pl.col("export", "twin", "tv").round(4), pl.col("effective").round(1)
    )


def carried_values_comparison(
    table: pl.DataFrame,
    sample_users: int,
    twin_users: int,
    targets: Targets,
    missing: list[str] | None = None,
) -> Comparison:
    """Return the check of the values sessions carry on: every row of :func:`carried_values` (all of them).

    A row's share is a yes-or-no mix, so its gap is that mix's total-variation distance: within the TV
    target, or when larger within the two-sample critical value. The twin's side has its own standard
    error over its users (``se``); the export's side is the fit's sample of ``sample_users`` users, whose
    error is the twin's scaled to as many users (the spread per user being the same when the twin is
    right). z makes the largest of the rows' gaps exceed its bound 5 % of the time (Bonferroni). An export
    without such values passes with a "not applicable" note; one whose keys the twin lacks (``missing``)
    fails with a "not measured" note.
    """
    name, tolerance = "carried_values", targets.tv_max
    if missing:
        return Comparison(name, "carried", float("nan"), tolerance, False,
                          {"note": f"not measured: the twin has no {', '.join(sorted(missing))}"})  # fmt: skip
    if table.is_empty():
        return Comparison(name, "carried", 0.0, tolerance, True,
                          {"note": "not applicable: the export carries no value on within its sessions"})  # fmt: skip
    gaps = (table["export"] - table["twin"]).abs().to_numpy()
    scale = np.sqrt(1.0 + max(twin_users, 1) / max(sample_users, 1))
    z = float(norm.ppf(1 - 0.025 / table.height))
    critical = z * table["se"].fill_null(0.0).to_numpy() * scale
    bounds = np.maximum(tolerance, critical)
    worst = int(np.argmax(gaps - bounds))
    row = table.row(worst, named=True)
    return Comparison(name, "carried", round(float(gaps[worst]), 4), round(float(bounds[worst]), 4),
                      bool((gaps <= bounds).all()), {"rows_judged": table.height, "worst": {
                          k: row[k] for k in ("event", "key", "source", "lag", "export", "twin")},
                          "largest_gap": round(float(gaps.max()), 4), "mean_gap": round(float(gaps.mean()), 4),
                          "critical_5pct": round(float(critical[worst]), 4), "sample_users": sample_users,
                          "failing": table.filter(pl.Series(gaps > bounds)).select("event", "key", "source", "lag",
                                                                                    "export", "twin").to_dicts()})  # fmt: skip


def version_mix_comparison(
    table: pl.DataFrame, trends: pl.DataFrame, sample_users: int, twin_users: int, targets: Targets, seed: int
) -> Comparison:
    """Return the check of the versions that roll out: each week's mix (:func:`version_mix`) and their mean.

    Per key and week, the TV between the twin's mix and the export's within the TV target or, when larger,
    the two-sample critical value: the distance two mixes drawn from the export's week exceed (the twin's
    side as many draws as its ``effective`` size, the export's the same scaled to the fit's ``sample_users``),
    at a 5 % chance for the largest of the weeks (Bonferroni); per key, the mean TV over its weeks within the
    target or the 95th percentile of the mean of those draws. An export without a version that rolls out
    passes with a "not applicable" note; a twin without the key's values fails with "not measured".
    """
    name, tolerance = "version_mix", targets.tv_max
    if trends.is_empty():
        return Comparison(name, "versions", 0.0, tolerance, True,
                          {"note": "not applicable: no version key rolls out in the export"})  # fmt: skip
    missing = sorted(set(trends["key"]) - set(table["key"]))
    if missing:
        return Comparison(name, "versions", float("nan"), tolerance, False,
                          {"note": f"not measured: the twin has no values of {', '.join(missing)}"})  # fmt: skip
    g = rng_mod.stream(seed, "twin", "fidelity", "versions")
    level = 1 - 0.05 / table.height
    rows, means = [], {}
    for (key,), weeks in table.group_by("key", maintain_order=True):
        real = trends.filter(pl.col("key") == key)
        draws = []
        for week, tv, effective in weeks.select("week", "tv", "effective").iter_rows():
            p = real.filter(pl.col("block") == week).sort("rank")["share"].to_numpy().astype(np.float64)
            p = p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / p.size)
            n_twin = max(1, round(effective or 1.0))
            n_real = max(1, round((effective or 1.0) * sample_users / max(twin_users, 1)))
            a = g.multinomial(n_real, p, VERSION_DRAWS) / n_real
            b = g.multinomial(n_twin, p, VERSION_DRAWS) / n_twin
            null = 0.5 * np.abs(a - b).sum(axis=1)
            draws.append(null)
            critical = float(np.quantile(null, level))
            rows.append((key, week, tv, critical, max(tolerance, critical)))
        mean_critical = float(np.quantile(np.mean(draws, axis=0), 0.95))
        means[key] = {"mean_tv": round(float(weeks["tv"].mean()), 4),  # type: ignore[arg-type]
                      "bound": round(max(tolerance, mean_critical), 4), "critical_5pct": round(mean_critical, 4)}  # fmt: skip
    over = np.array([tv - bound for _, _, tv, _, bound in rows])
    worst = rows[int(np.argmax(over))]
    mean_ok = all(m["mean_tv"] <= m["bound"] for m in means.values())
    return Comparison(name, "versions", round(float(worst[2]), 4), round(float(worst[4]), 4),
                      bool((over <= 0).all() and mean_ok), {"weeks_judged": len(rows), "worst_key": worst[0],
                      "worst_week": int(worst[1]), "critical_5pct": round(worst[3], 4), "mean": means,
                      "largest_tv": round(float(max(r[2] for r in rows)), 4),
                      "sample_users": sample_users,
                      "failing_weeks": [{"key": k, "week": int(w), "tv": t, "bound": round(b, 4)}
                                        for k, w, t, _, b in rows if t > b]})  # fmt: skip


def session_value_comparisons(
    events: pl.DataFrame,
    tables: dict[str, pl.DataFrame],
    sample_users: int,
    start: dt.date,
    days: int,
    targets: Targets | None = None,
    seed: int = 42,
) -> tuple[pl.DataFrame, pl.DataFrame, list[Comparison]]:
    """Return (carried values, version mixes, their two checks) of the twin's ``events`` against the spec's
    ``tables``, on the export's ``days`` from the twin's first day ``start`` (the days both cover)."""
    targets = targets or Targets()
    inside = events.filter(pl.col("timestamp").dt.date() < start + dt.timedelta(days=days))
    users = int(inside["user_number" if "user_number" in inside.columns else "distinct_id"].n_unique())
    keys, sources = tables["event_keys"], tables.get("property_sources")
    carried = carried_values(inside, keys, sources, top=None, categories=tables.get("event_categories"),
                             lookups=tables.get("property_lookups"))  # fmt: skip
    own = (
        keys.filter(pl.col("same_share") >= CARRIED_MIN_SHARE)
        if "same_share" in keys.columns
        else keys.head(0)
    )
    wanted = own["key"].to_list()
    if sources is not None and sources.height:
        wanted += [*sources["key"], *sources["source"]]
    missing = sorted({k for k in wanted if k not in inside.columns}) if inside.height else []
    trends = tables.get("property_trends", pl.DataFrame())
    versions = version_mix(inside, trends, start) if trends.height else pl.DataFrame()
    return carried, versions, [
        carried_values_comparison(carried, sample_users, users, targets, missing),
        version_mix_comparison(versions, trends, sample_users, users, targets, seed),
    ]  # fmt: skip
