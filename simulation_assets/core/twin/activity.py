"""How a class's users come back: lifetime, daily returns, weekday rhythm, sessions a day and their times.

Estimators (per class; lifetime and returns also per arrival kind, new or backlog):

- **lifetime** (days from the first to the last active day) by the Kaplan-Meier
  estimator: a user absent for the last a days of the window counts as churned
  on their last visit with a chance, and for the rest as still there, at risk
  until the window's end (censored there). The chance is first the share of
  gaps between visits of users of their class who lived as long, and are in the
  same third of the class by active-day density, that are no longer than a; then the posterior q / (q + (1 - q) P(gap > a)), q the fitted
  curve's chance of leaving between the last visit and the window's end, and
  the curve is fitted again (self-consistent). The activity fits below weight a
  user's idle days after their last visit by the same chances. The curve's last
  week of ages is dropped (absences of a few days are all that judge a cohort
  there), and beyond the table the hazard stays at its average over the last
  third of it.
- **returns**: while alive, each later day is active with the user's own chance
  p, drawn from a Beta fitted by maximum likelihood to the users' (returns, days)
  as a beta-binomial (the days strictly between the first and the last active
  day for churned users, every day after the first for the others).
- **age**: a class's users may come less often as they age; activity by week of
  age over what their own rates expect gives a multiplier per week of age. Days
  after a user's last visit count as alive days only by the chance the user is
  still there (as do the recency fit's), so recent lapsers do not make the last
  weeks of age look quieter than they are.
- **returns by lifetime**: the Beta is fitted per lifetime band (under a week,
  1-3 weeks, 3-6 weeks, longer), since users who leave soon often come every
  day until they do while long-lived ones settle to a slower rhythm. Each user
  counts twice, weighted by their churn chance (the lifetime fit's): as gone at
  their last visit (the days strictly between first and last visit, banded by
  that lifetime) and as still there (every day after the first, banded by the
  days seen), which is how a twin user is banded by the days it lives in the
  run; a band with fewer than 30 users' weight uses the class's Beta.
- **recency**: a visit is likelier the day after a visit (streaks) and less likely
  once a user has been away (breaks): the odds of a visit are multiplied by a
  factor of the days since the last visit (1 to 28), fitted by a logistic
  regression of the class's visits on recency with the users' own chances as
  offsets.
- **streaks per user**: beyond the class's recency factors, users differ in how
  often a visit is followed by one the next day (some come in runs, others spread
  out at the same rate): a log-odds shift of that day per user, its spread
  between users estimated beyond the noise of their few days (method of moments)
  and kept as a quantile sketch per class; each twin user draws their own.
- **first days**: an odds factor per day of age for the first ``AGE_DAYS``
  days, per class and kind, calibrated by simulating the twin (see
  ``fit.calibrate_first_days``).
- **sessions per active day**: the class's empirical distribution (1..30, the
  tail k-anonymous); a user's days are tied by a Gaussian copula whose
  correlation is fitted on how much users differ in their share of days with
  several sessions (see ``sessions_persistence``).
- **session depth**: users fall into session groups (``flows.depth_pace_groups``:
  quantiles of their mean log events per session, each split by seconds per
  event); each class has a share of users per group, and sessions end with the
  hazards of the user's (class, group), so heavy and light users keep their own
  session lengths.
- **session depth by activity**: the depth group shares are also kept per
  activity band (the class's users by their active days in the window, cut at
  a third, two thirds and nine tenths; each band's shares pulled toward the
  class's by six users' worth), so users who come often can keep longer (or
  shorter) sessions than the class's occasional users; a twin user's band is
  where in their class the days they turn out active in the run fall.
- **session times**: the hour (UTC) of the day's first session from the class's
  hour-of-week profile (smoothed toward the class's all-week hours); each further
  session that day starts a within-day gap after the previous one ended (a
  quantile sketch of the class's gaps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import betaln, ndtr, ndtri

from simulation_assets.core.twin.features import Window, weekday
from simulation_assets.core.twin.sketch import capped_pmf, quantile_sketch

MAX_SESSIONS_PER_DAY = 30
MIN_STRATUM_USERS = 30  # fewer users than this in a (class, kind): use the class's pooled estimate
LIFE_BANDS = (0, 7, 21, 42)  # first days of the lifetime bands the return chance is fitted in
MAX_RECENCY = 28  # days since the last visit beyond which the return chance no longer changes
ACTIVITY_BANDS = 3  # absences are judged per third of a class's users by active-day density
# Depth shares are kept per activity band: the class's users by active days, cut at these shares (a
# band for the busiest tenth: in HogFlix the heaviest users are also the deepest, 92 events a session
# against 54 for the next ones). A band's shares are pulled toward the class's by DEPTH_BAND_PRIOR users.
DEPTH_BAND_CUTS = (1 / 3, 2 / 3, 0.9)
DEPTH_BAND_PRIOR = 6.0


def activity_bands(
    rate: np.ndarray, classes: np.ndarray, cuts: tuple[float, ...] | None = None
) -> np.ndarray:
    """Return each user's activity band within their class, by ``rate``: equal thirds, or cut at the shares ``cuts``.

    Ties go by row order, so the bands hold the same numbers of users however rates tie.
    """
    rate, classes = np.asarray(rate, np.float64), np.asarray(classes, np.int64)
    order = np.lexsort((np.arange(rate.size), rate, classes))
    sorted_cls = classes[order]
    start = np.searchsorted(sorted_cls, sorted_cls, side="left")
    size = np.searchsorted(sorted_cls, sorted_cls, side="right") - start
    band = np.zeros(rate.size, np.int64)
    rank = np.arange(rate.size) - start
    if cuts is None:
        band[order] = (rank * ACTIVITY_BANDS) // np.maximum(size, 1)
    else:
        band[order] = np.searchsorted(np.asarray(cuts, np.float64), rank / np.maximum(size, 1), side="right")
    return band


@dataclass(frozen=True)
class Lifetime:
    survival: np.ndarray  # S(t) = P(lifetime >= t), t = 0..T
    tail_hazard: float  # daily churn chance beyond T


def kaplan_meier(
    duration: np.ndarray, churned: np.ndarray, horizon: int, observed: np.ndarray | None = None
) -> Lifetime:
    """Return the discrete Kaplan-Meier survival of ``duration`` (days) with churn flags, up to ``horizon``.

    ``churned`` may be a chance (0-1) per user: the user counts as that fraction of a churn at
    ``duration`` and the rest as still alive when observation ended, ``observed`` days after their
    start (default ``duration``): a user who may still come back stays at risk until the window ends.
    """
    duration = np.clip(np.asarray(duration, np.int64), 0, horizon)
    churned = np.where(duration < horizon, np.asarray(churned, np.float64), 0.0)
    censor = (
        duration
        if observed is None
        else np.clip(np.maximum(np.asarray(observed, np.int64), duration), 0, horizon)
    )
    events = np.bincount(duration, churned, minlength=horizon + 1).astype(np.float64)
    exits = events + np.bincount(censor, 1.0 - churned, minlength=horizon + 1)
    at_risk = exits[::-1].cumsum()[::-1]  # users whose observed time is >= t
    hazard = np.divide(events, at_risk, out=np.zeros_like(events), where=at_risk > 0)
    survival = np.r_[1.0, np.cumprod(1.0 - hazard)[:-1]]
    observed = np.flatnonzero(at_risk > 0)
    last = int(observed.max()) if observed.size else 0
    start = max(1, (2 * last) // 3)
    if last > start and survival[start] > 0:
        ratio = survival[last] / survival[start]
        tail = 1.0 - ratio ** (1.0 / (last - start)) if ratio > 0 else 1.0
    else:  # a short curve: its mean hazard (all of a class gone after their first day: 1)
        tail = float(hazard[: last + 1].mean())
    survival = survival[: last + 1] if last else survival[:1]
    return Lifetime(survival, float(np.clip(tail, 0.0, 1.0)))


# Rounds of churn chances re-derived from the survival curve. On HogFlix (11.4M events) one round
# brought retention weeks 1-8 from 4.2 to 2.3 points off; three went to 3.0 with no other gain.
SURVIVAL_ROUNDS = 1


def survival_at(life: Lifetime, age: np.ndarray) -> np.ndarray:
    """Return S(age): the curve within its table, then its geometric tail."""
    age = np.clip(np.asarray(age, np.int64), 0, None)
    top = len(life.survival) - 1
    return life.survival[np.minimum(age, top)] * (1 - life.tail_hazard) ** np.maximum(age - top, 0)


def self_consistent_survival(lifetime: np.ndarray, gap_weight: np.ndarray, horizon: int,
                             observed: np.ndarray) -> tuple[Lifetime, np.ndarray]:  # fmt: skip
    """Return the Kaplan-Meier survival with churn chances that agree with it (see module doc).

    ``gap_weight``: per user the chance no gap of users like them is as long as their absence (the chance
    an absence that long means they left, if nothing else were known). A user absent ``a`` days has left
    with the posterior chance q / (q + (1 - q) (1 - gap_weight)), q the survival curve's chance of
    leaving between their last visit and the window's end; the curve is then re-estimated with those
    chances, ``SURVIVAL_ROUNDS`` rounds from the plain weights. Returns the curve and the chances.
    """
    lifetime = np.asarray(lifetime, np.int64)
    observed = np.asarray(observed, np.int64)
    weight = np.asarray(gap_weight, np.float64)
    life = kaplan_meier(lifetime, weight, horizon, observed)
    posterior = weight
    for _ in range(SURVIVAL_ROUNDS):
        q = 1 - survival_at(life, observed) / np.maximum(survival_at(life, lifetime), 1e-12)
        stay = 1 - weight  # chance an alive user would be absent this long
        posterior = np.divide(q, q + (1 - q) * stay, out=np.ones_like(q), where=(q + (1 - q) * stay) > 0)
        posterior = np.where(observed > lifetime, posterior, 0.0)
        life = kaplan_meier(lifetime, posterior, horizon, observed)
    return trim_edge(life), posterior


# The curve's last ages are where every user of a cohort that came on the window's first day is seen
# only a few days before the end: absences that short say little, and the curve drops there (HogFlix's
# heaviest class lost a quarter of its users in the last 6 of 63 days, 0.4 % a day before). The table
# stops this many days earlier and the tail hazard carries on from there.
EDGE_DAYS = 7
MIN_TABLE_DAYS = 14  # a curve shorter than this keeps its last ages


def trim_edge(life: Lifetime) -> Lifetime:
    """Return the curve without its last ``EDGE_DAYS`` ages, the tail hazard taken from its last third."""
    keep = len(life.survival) - 1 - EDGE_DAYS
    if keep < MIN_TABLE_DAYS:
        return life
    survival = life.survival[: keep + 1]
    start = max(1, (2 * keep) // 3)
    if survival[start] <= 0:
        return Lifetime(survival, 1.0)
    ratio = survival[keep] / survival[start]
    tail = 1.0 - ratio ** (1.0 / (keep - start)) if ratio > 0 else 1.0
    return Lifetime(survival, float(np.clip(tail, 0.0, 1.0)))


def beta_binomial(
    successes: np.ndarray, trials: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, float]:
    """Return the maximum-likelihood (alpha, beta) of a beta-binomial for the given users (optionally weighted)."""
    s = np.asarray(successes, np.float64)
    n = np.asarray(trials, np.float64)
    weight = np.ones_like(s) if weights is None else np.asarray(weights, np.float64)
    keep = (n > 0) & (weight > 0)
    s, n, weight = s[keep], n[keep], weight[keep]
    if s.size < 2:
        return 1.0, 1.0
    mean = float(np.clip((weight * s).sum() / (weight * n).sum(), 1e-4, 1 - 1e-4))
    # Users share (returns, days) pairs: each distinct pair is evaluated once, weighted by its users.
    pairs, index = np.unique(np.c_[s, n], axis=0, return_inverse=True)
    s, n, w = pairs[:, 0], pairs[:, 1], np.bincount(index.ravel(), weight, minlength=len(pairs))

    def nll(x: np.ndarray) -> float:
        a, b = np.exp(x)
        return float(-(w * (betaln(s + a, n - s + b) - betaln(a, b))).sum())

    x0 = np.log([mean * 2.0, (1 - mean) * 2.0])
    result = minimize(nll, x0, method="L-BFGS-B", bounds=[(-9, 9), (-9, 9)])
    a, b = np.exp(result.x)
    return float(a), float(b)


def visit_gap_days(activity: pl.DataFrame) -> pl.DataFrame:
    """Return per user with two active days or more the 90th percentile of days between consecutive active days."""
    # Grouped over the users with a gap only (a news site's one-visit readers are most users): the others'
    # quantile is null either way, and they are left out of the join's right side.
    return (
        activity.sort("user", "day")
        .with_columns((pl.col("day") - pl.col("day").shift(1).over("user")).alias("gap"))
        .drop_nulls("gap")
        .group_by("user")
        .agg(pl.col("gap").quantile(0.9).alias("gap90"))
    )


@dataclass(frozen=True)
class UserSpans:
    """Per user: first and last active day, active days, churned flag, lifetime (days)."""

    user: np.ndarray
    first: np.ndarray
    last: np.ndarray
    active_days: np.ndarray
    churned: np.ndarray
    lifetime: np.ndarray
    churn_weight: np.ndarray  # chance the user has left: no gap of their class's is as long as their absence


def first_last_days(activity: pl.DataFrame) -> pl.DataFrame:
    """Return each user's first and last active day and number of active days, from (user, day) rows."""
    return (
        activity.group_by("user")
        .agg(
            pl.col("day").min().alias("first_day"),
            pl.col("day").max().alias("last_day"),
            pl.len().alias("active_days"),
        )
        .sort("user")
    )


def user_spans(users: pl.DataFrame, activity: pl.DataFrame, classes: np.ndarray, window: Window) -> UserSpans:
    """Return the users' spans, with churn decided against their class's usual gap (see module doc)."""
    gaps = visit_gap_days(activity)
    table = users.select("user", "first_day", "last_day", "active_days").join(
        gaps, on="user", how="left", maintain_order="left"
    )
    gap90 = table["gap90"].to_numpy().astype(np.float64)
    cls = np.asarray(classes)
    usual = np.ones(cls.max() + 1 if cls.size else 1)
    for c in range(len(usual)):
        g = gap90[(cls == c) & np.isfinite(gap90)]
        usual[c] = float(np.clip(np.quantile(g, 0.9), 1, 28)) if g.size else 7.0
    first = table["first_day"].to_numpy()
    last = table["last_day"].to_numpy()
    churned = (window.last - last) > usual[cls]
    # Users are judged by the gaps of users of their class as long-lived and about as frequent: a
    # daily user's week away says more than an occasional user's.
    density = table["active_days"].to_numpy() / np.maximum(last - first + 1, 1)
    strata = cls * ACTIVITY_BANDS + activity_bands(density, cls)
    weight = churn_weights(activity, table["user"].to_numpy(), strata, last - first, window.last - last)
    return UserSpans(table["user"].to_numpy(), first, last, table["active_days"].to_numpy(), churned,
                     last - first, weight)  # fmt: skip


MIN_WEIGHT_GAPS = 200  # fewer gaps than this among users as long-lived: judge by the next shorter lifetimes


def churn_weights(
    activity: pl.DataFrame, user_ids: np.ndarray, cls: np.ndarray, lived: np.ndarray, absence: np.ndarray
) -> np.ndarray:
    """Return per user the chance they have left: no gap between visits of users like them is as long.

    A user last seen ``absence`` days before the window's end, ``lived`` days after their first visit,
    is still there with the chance that a gap between two visits of a user of their class who lived at
    least as long (in whole weeks) is longer than ``absence``, and gone otherwise. Long-lived users go
    dormant for weeks and come back; short-lived ones rarely have long gaps, so judging everyone by the
    whole class's gaps would end the longest lives too early. Lifetimes whose users have fewer than
    ``MIN_WEIGHT_GAPS`` gaps use the gaps of the next shorter lifetimes.
    """
    gaps = (
        activity.sort("user", "day")
        .with_columns((pl.col("day") - pl.col("day").shift(1).over("user")).alias("gap"))
        .drop_nulls("gap")
    )
    row = np.searchsorted(user_ids, gaps["user"].to_numpy())
    gap = gaps["gap"].to_numpy()
    gap_class, gap_weeks = cls[row], lived[row] // 7
    weeks = lived // 7
    weight = np.zeros(user_ids.size)
    for c in np.unique(cls):  # a handful of classes
        in_class = gap_class == c
        g_all, w_all = gap[in_class], gap_weeks[in_class]
        members = np.flatnonzero(cls == c)
        if g_all.size == 0:  # nobody came back twice: gone once away longer than a week
            weight[members] = absence[members] > 7
            continue
        for w in np.unique(weeks[members]):  # at most a window's weeks
            at = members[weeks[members] == w]
            floor = int(w)
            while floor > 0 and int((w_all >= floor).sum()) < MIN_WEIGHT_GAPS:
                floor -= 1
            g = np.sort(g_all[w_all >= floor])
            weight[at] = np.searchsorted(g, absence[at], side="right") / g.size
    return weight


def life_band(lifetime: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """Return the lifetime band of users who lived ``lifetime`` days, ``exposure`` days of which were seen."""
    return np.searchsorted(LIFE_BANDS, np.minimum(lifetime, exposure), side="right") - 1


def returns_by_fate(spans: UserSpans, window: Window, churn: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return (returns, days, lifetime band, weight) of two records per user: gone at the last visit, or still there.

    Weighted by the user's churn chance and its complement. A user who left counts the days strictly
    between their first and last visit and is banded by that lifetime; one still there counts every day
    after the first and is banded by the days seen, as a twin user is banded by the days it lives in
    the run: the bands mean the same on both sides.
    """
    gone_s, gone_t = spans.active_days - 2, spans.lifetime - 1
    stay_s, stay_t = spans.active_days - 1, window.last - spans.first
    succ = np.r_[np.maximum(gone_s, 0), np.maximum(stay_s, 0)]
    trials = np.maximum(np.r_[gone_t, stay_t], 0)
    band = np.r_[life_band(spans.lifetime, spans.lifetime), life_band(stay_t, stay_t)]
    weight = np.r_[churn, 1.0 - churn]
    return succ, trials, band, weight


def returns_and_trials(spans: UserSpans, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Return (active days, days) of each user's alive span after the first day (see module doc)."""
    succ = np.where(spans.churned, spans.active_days - 2, spans.active_days - 1)
    trials = np.where(spans.churned, spans.lifetime - 1, window.last - spans.first)
    ok = trials > 0
    return np.where(ok, np.maximum(succ, 0), 0), np.where(ok, trials, 0)


def weekday_multipliers(
    spans: UserSpans, activity: pl.DataFrame, window: Window, members: np.ndarray
) -> np.ndarray:
    """Return the seven weekday multipliers of active-day chance for the users ``members`` (bool mask)."""
    first = spans.first[members] + 1
    last = np.where(spans.churned[members], spans.last[members] - 1, window.last)
    exposure = weekday_counts(first, last)
    ids = spans.user[members]
    act = activity.filter(pl.col("user").is_in(ids))
    joined = act.join(pl.DataFrame({"user": ids, "f": first, "l": last}), on="user", how="inner").filter(
        (pl.col("day") >= pl.col("f")) & (pl.col("day") <= pl.col("l"))
    )
    active = np.bincount(weekday(joined["day"].to_numpy()), minlength=7).astype(np.float64)
    days = exposure.sum(axis=0)
    rate = (active + 1.0) / (days + 1.0 / max(active.sum() / max(days.sum(), 1), 1e-3))
    mean = (rate * days).sum() / max(days.sum(), 1)
    return rate / mean if mean > 0 else np.ones(7)


def weekday_counts(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Return, per row, how many days of each weekday lie in [first, last] (zero when last < first)."""
    first = np.asarray(first, np.int64)
    last = np.asarray(last, np.int64)
    n = np.maximum(last - first + 1, 0)
    full, rest = n // 7, n % 7
    out = np.repeat(full[:, None], 7, axis=1)
    start_wd = weekday(first)
    offset = (np.arange(7)[None, :] - start_wd[:, None]) % 7
    out += (offset < rest[:, None]).astype(np.int64)
    return out


MAX_WEEKDAY_LOYALTY = 0.95  # a user's weekday mix may be all but fixed, never wholly


def weekdays_seen(spans: UserSpans, activity: pl.DataFrame, members: np.ndarray) -> np.ndarray:
    """Return (members, 7): each member's active days after their first, by weekday."""
    ids = spans.user[members]
    rows = activity.filter(pl.col("user").is_in(ids))
    row = np.searchsorted(ids, rows["user"].to_numpy())
    day = rows["day"].to_numpy()
    keep = day > spans.first[members][row]
    x = np.zeros((ids.size, 7))
    np.add.at(x, (row[keep], weekday(day[keep])), 1.0)
    return x


# A user's own weekdays are judged per band of the class's users by how often they come (equal shares by rate):
# a user back on most days cannot keep to one weekday, one who comes once a week may.
LOYALTY_BANDS = 5
LOYALTY_Z = 2.0  # a band's loyalty within this many standard errors of none is none


def loyalty_bands(rate: np.ndarray, classes: np.ndarray, bands: int) -> np.ndarray:
    """Return each user's band of their class by ``rate``: ``bands`` equal shares, lowest first."""
    return activity_bands(rate, classes, tuple(np.arange(1, bands) / bands))


def weekday_loyalty(spans: UserSpans, seen: np.ndarray, members: np.ndarray, weekdays: np.ndarray,
                    k: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Return how much a class's users keep to weekdays of their own, per band by rate, and each member's band.

    A timesheet tool's users each come on their own day of the week; a class's weekday multipliers say only
    when its users come on average. Each user's weekday mix is taken as drawn from a Dirichlet with the
    class's mix m (the multipliers over their sum) as mean and concentration a, and the loyalty is
    1 / (a + 1) (0: the class's mix for everyone). With x_d of a user's n active days after their first on
    weekday d, E[sum_d x_d (x_d - 1)] = n (n - 1) (sum m_d^2 + (1 - sum m_d^2) / (a + 1)), m here the class's
    mix over the weekdays of the user's span (their first day after the first to their last): summed over
    a band's users with two such days or more, the method of moments gives the band's loyalty, 0 within
    ``LOYALTY_Z`` standard errors of 0 (noise: HogFlix's classes came out at 0.000-0.005). Bands: the
    members with such days by n over their span (``LOYALTY_BANDS`` equal shares); a band of fewer than
    2 k users takes the class's value, a class of fewer has none. Clipped to [0, ``MAX_WEEKDAY_LOYALTY``].
    ``seen``: :func:`weekdays_seen`.
    """
    n = seen.sum(axis=1)
    span = np.maximum(spans.last[members] - spans.first[members], 1)
    band = loyalty_bands(n / span, np.zeros(n.size, np.int64), LOYALTY_BANDS)
    ok = n >= 2
    if ok.sum() < 2 * k:
        return np.zeros(LOYALTY_BANDS), band
    first, last = spans.first[members] + 1, spans.last[members]
    m = weekday_counts(first, last) * np.asarray(weekdays, np.float64)[None, :]
    m /= np.maximum(m.sum(axis=1, keepdims=True), 1e-12)
    pairs, same = n * (n - 1), (m * m).sum(axis=1)
    collide = (seen * (seen - 1)).sum(axis=1)

    def moment(at: np.ndarray) -> float:
        excess, spread = collide[at] - pairs[at] * same[at], pairs[at] * (1 - same[at])
        if spread.sum() <= 0:
            return 0.0
        value = float(excess.sum() / spread.sum())
        # A ratio over users: its standard error from the users' residuals. Within noise: none.
        error = float(np.sqrt(((excess - value * spread) ** 2).sum()) / spread.sum())
        return float(np.clip(value, 0.0, MAX_WEEKDAY_LOYALTY)) if value > LOYALTY_Z * error else 0.0

    whole = moment(ok)
    out = np.array([moment(ok & (band == b)) if (ok & (band == b)).sum() >= 2 * k else whole
                    for b in range(LOYALTY_BANDS)])  # fmt: skip
    return out, band


def own_weekdays_posterior(seen: np.ndarray, mix: np.ndarray, loyalty: np.ndarray) -> np.ndarray:
    """Return (users, 7): each user's expected factor per weekday given the days they were seen on (``loyalty``: theirs).

    The Dirichlet's posterior mean, (x_d + a m_d) / (n + a), over the class's mix m; the activity fits take
    these factors with the weekday multipliers, so a class's recency factors do not also learn a weekly
    user's seven-day gaps (the twin gives them both).
    """
    mix = np.asarray(mix, np.float64)
    a = (1.0 / np.maximum(np.asarray(loyalty, np.float64), 1e-9) - 1.0)[:, None]
    post = (seen + a * mix[None, :]) / (seen.sum(axis=1, keepdims=True) + a)
    return np.where(a < 1e8, post / np.maximum(mix, 1e-12)[None, :], 1.0)


@dataclass(frozen=True)
class DailyGrid:
    """Every alive day of a class's users: whose, when, how old, active or not, and the user's rate."""

    row: np.ndarray  # index of the user among the class's members
    day: np.ndarray
    age_week: np.ndarray  # weeks since the user's first day
    active: np.ndarray  # 0/1
    later: np.ndarray  # not the user's first day
    rate: np.ndarray  # the user's share of active days after their first (per row)
    weight: np.ndarray  # 1 up to the user's last visit; after it, the chance they are still there
    age_day: np.ndarray  # days since the user's first day
    own: np.ndarray  # the user's own factor of the day's weekday (1 without weekdays of their own)


def daily_grid(
    spans: UserSpans,
    activity: pl.DataFrame,
    window: Window,
    members: np.ndarray,
    skip: np.ndarray | None = None,
    own_weekdays: np.ndarray | None = None,
) -> DailyGrid | None:
    """Return the class's alive user-days (first day to last, or to the window's end while alive).

    Days in ``skip`` (calendar days: a holiday, a sale) weigh nothing: they have factors of their own, and
    left in, a Christmas week read as a quiet seventh week of age for the users first seen in November.
    ``own_weekdays`` (members, 7): each member's own factor per weekday (see ``own_weekdays_posterior``).
    """
    first = spans.first[members]
    end = np.where(spans.churned[members], spans.last[members], window.last)
    ids = spans.user[members]
    length = (end - first + 1).astype(np.int64)
    if ids.size == 0 or length.max() < 3:
        return None
    row = np.repeat(np.arange(ids.size), length)
    offset = np.arange(row.size) - np.repeat(np.cumsum(length) - length, length)
    day = np.repeat(first, length) + offset
    index = pl.DataFrame({"user": ids[row], "day": day, "i": np.arange(row.size)})
    hits = index.join(activity.select("user", "day"), on=["user", "day"], how="semi")["i"].to_numpy()
    x = np.zeros(row.size)
    x[hits] = 1.0
    later = offset > 0
    # Days after the last visit count as alive days only as far as the user may still be there: a
    # recent lapser seen as alive but idle would make the last weeks of age look quieter than they are.
    weight = np.where(day > spans.last[members][row], 1.0 - spans.churn_weight[members][row], 1.0)
    if skip is not None and skip.size:
        weight = np.where(np.isin(day, skip), 0.0, weight)
    rate = np.bincount(row[later], (x * weight)[later], minlength=ids.size) / np.maximum(
        np.bincount(row[later], weight[later], minlength=ids.size), 1e-9
    )
    own = np.ones(row.size) if own_weekdays is None else own_weekdays[row, weekday(day)]
    return DailyGrid(row, day, offset // 7, x, later, rate[row], weight, offset, own)


def age_profile(grid: DailyGrid | None, weekdays: np.ndarray, weeks: int) -> np.ndarray:
    """Return the class's activity by week of user age relative to the users' own rates (mean ~1).

    Week a: active alive days at that age over what the users' rates and the weekday rhythm expect;
    weeks with fewer than 30 alive user-days repeat the last reliable week.
    """
    out = np.ones(max(weeks, 1))
    if grid is None:
        return out
    expected = np.clip(grid.rate * weekdays[weekday(grid.day)] * grid.own, 0.0, 1.0)
    week = np.minimum(grid.age_week, len(out) - 1)
    w = grid.weight[grid.later]
    got = np.bincount(week[grid.later], grid.active[grid.later] * w, minlength=len(out))
    exp = np.bincount(week[grid.later], expected[grid.later] * w, minlength=len(out))
    days = np.bincount(week[grid.later], w, minlength=len(out))
    last = 1.0
    for a in range(len(out)):  # a few dozen weeks
        if days[a] >= 30 and exp[a] > 0:
            last = float(np.clip(got[a] / exp[a], 0.05, 5.0))
        out[a] = last
    return out


def recency_rows(grid: DailyGrid, weekdays: np.ndarray, by_age: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return, for every alive day after a user's first: (recency, visited, weight, offset) of the recency fits.

    Recency is the days since the user's last visit (capped at MAX_RECENCY); offset the log odds of
    the chance the user's own rate times the weekday and age multipliers gives.
    """
    n = grid.row.size
    visited = np.where(grid.active > 0, np.arange(n), -1)
    last_visit = np.maximum.accumulate(visited)  # rows come user by user, each starting on an active day
    before = np.r_[-1, last_visit[:-1]]
    recency = np.clip(np.where(grid.later, grid.day - grid.day[np.maximum(before, 0)], 0), 0, MAX_RECENCY)
    mult = weekdays[weekday(grid.day)] * grid.own * by_age[np.minimum(grid.age_week, len(by_age) - 1)]
    chance = np.clip(grid.rate * mult, 1e-4, 1 - 1e-4)[grid.later]
    return (
        recency[grid.later],
        grid.active[grid.later],
        grid.weight[grid.later],
        np.log(chance / (1 - chance)),
    )


def _recency_factors(
    g: np.ndarray, x: np.ndarray, w: np.ndarray, offset: np.ndarray, cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (log factor, weighted days) per cell ``g``: sum(sigmoid(offset + theta[g])) = visits, by Newton steps."""
    got = np.bincount(g, x * w, minlength=cells)
    days = np.bincount(g, w, minlength=cells)
    theta = np.zeros(cells)
    for _ in range(30):  # Newton steps on every cell at once
        p = 1 / (1 + np.exp(-(offset + theta[g])))
        expected = np.bincount(g, p * w, minlength=cells)
        slope = np.bincount(g, p * (1 - p) * w, minlength=cells)
        theta = np.clip(
            theta + np.divide(got - expected, slope, out=np.zeros_like(slope), where=slope > 0), -8, 8
        )
    return theta, days


def return_by_recency(grid: DailyGrid | None, weekdays: np.ndarray, by_age: np.ndarray) -> np.ndarray:
    """Return the class's odds multiplier of a visit by days since the last one (index 1..MAX_RECENCY).

    For every alive day after a user's first: how many days since they last came, whether they came,
    and the chance their own rate times the weekday and age multipliers gives. At each recency g the
    multiplier m solves sum(sigmoid(logit(chance) + log m)) = visits over the days at recency g (a
    logistic fit with the users' chances as offsets, by Newton steps); g >= MAX_RECENCY is pooled and a
    recency seen on fewer than 30 user-days repeats the last reliable one. Streaks (coming back the next
    day more than the rate says) and breaks (rarely returning once away) show as a shape over g, and the
    odds scale keeps frequent users' chances below one.
    """
    out = np.ones(MAX_RECENCY + 1)
    if grid is None:
        return out
    g, x, w, offset = recency_rows(grid, weekdays, by_age)
    theta, days = _recency_factors(g, x, w, offset, MAX_RECENCY + 1)
    last = 1.0
    for r in range(1, MAX_RECENCY + 1):  # 28 recencies
        if days[r] >= 30:
            last = float(np.exp(theta[r]))
        out[r] = last
    return out


def empty_week_share(user: np.ndarray, day: np.ndarray) -> tuple[float, int]:
    """Return (share of weeks without a visit, weeks counted) over the weeks inside users' active spans.

    ``user``/``day``: one row per active (user, day), days counted from the window's first (weeks are
    its 7-day blocks, as the weekly retention's). A user's weeks strictly between the first and the last
    week they came in are weeks they were there for; how many of those saw no visit says how much users'
    visits bunch into some weeks, whatever their lifetimes.
    """
    frame = pl.DataFrame({"user": np.asarray(user), "week": np.asarray(day, np.int64) // 7}).unique()
    per = frame.group_by("user").agg(
        pl.col("week").min().alias("a"), pl.col("week").max().alias("b"), pl.len().alias("k")
    )
    inner = np.maximum(per["b"].to_numpy().astype(np.int64) - per["a"].to_numpy() - 1, 0)
    seen = np.maximum(per["k"].to_numpy().astype(np.int64) - 2, 0)
    weeks = int(inner.sum())
    return (float((inner - seen).sum() / weeks) if weeks else 0.0), weeks


def next_day_spread(user: np.ndarray, day: np.ndarray) -> tuple[float, int]:
    """Return (between-user variance of the users' shares of returns that come the next day, users counted).

    ``user``/``day``: one row per active (user, day), sorted by user and day. A return is an active day after
    an earlier one; the share is counted over the users with two returns or more, and the binomial noise of
    each share (p (1 - p) / (n - 1), unbiased for n returns) is taken out of their variance: what is left says
    how much users differ in coming on runs of days, whatever their number of days.
    """
    user, day = np.asarray(user), np.asarray(day, np.int64)
    again = np.flatnonzero(user[1:] == user[:-1]) + 1  # a return: a row after a row of the same user
    if again.size == 0:
        return 0.0, 0
    who = np.unique(user[again], return_inverse=True)[1]
    n = np.bincount(who).astype(np.float64)
    p = np.bincount(who, (day[again] - day[again - 1] == 1).astype(np.float64)) / n
    keep = n >= 2
    if keep.sum() < 2:
        return 0.0, int(keep.sum())
    p, n = p[keep], n[keep]
    return float(np.var(p) - np.mean(p * (1 - p) / (n - 1))), int(p.size)


# The recencies (days since the last visit) whose factors stand for "after a day away" in streak_compensation.
STREAK_RECENCIES = (2, 8)


def streak_compensation(rate: np.ndarray, streak: np.ndarray, by_recency: np.ndarray) -> np.ndarray:
    """Return each user's log-odds shift that keeps their share of active days what it is without their streak.

    A user's streak multiplies the odds of a visit the day after a visit; on its own it also changes how many
    days they come (a user of runs comes more, one who spreads out less), which their return chance already
    says: the export's users' rates are their shares of active days, streaks included. So every day of the
    user's odds moves by t, the one whose two-state chain (the chance after a visit sigmoid(logit(rate) +
    log f_1 + streak + t), after a day away sigmoid(logit(rate) + mean log f_2..7 + t), f the class's recency
    factors per user in ``by_recency``) has the stationary share it has with no streak and t = 0. By bisection
    over every user at once.
    """
    base = np.log(np.clip(rate, 1e-6, 1 - 1e-6) / (1 - np.clip(rate, 1e-6, 1 - 1e-6)))
    after = base + np.log(by_recency[:, 1])
    away = base + np.log(by_recency[:, STREAK_RECENCIES[0] : STREAK_RECENCIES[1]]).mean(axis=1)

    def share(t: np.ndarray | float, s: np.ndarray | float) -> np.ndarray:
        q1, q0 = 1 / (1 + np.exp(-(after + s + t))), 1 / (1 + np.exp(-(away + t)))
        return q0 / (1 - q1 + q0)

    target = share(0.0, 0.0)
    lo, hi = np.full(rate.shape, -8.0), np.full(rate.shape, 8.0)
    for _ in range(40):  # bisection to 2^-36 of the bracket, every user at once
        mid = (lo + hi) / 2
        low = share(mid, streak) < target
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    return np.where(streak != 0, (lo + hi) / 2, 0.0)


AGE_DAYS = 14  # the first two weeks of a user's life have their own odds factor per day of age (see fit)


MIN_STREAK_INFO = 1.0  # users whose days after a visit carry less Fisher information than this say nothing


def streak_spread(grid: DailyGrid | None, weekdays: np.ndarray, by_age: np.ndarray, by_recency: np.ndarray,
                  levels: int, k: int) -> np.ndarray:  # fmt: skip
    """Return the quantile sketch of the users' own streak: a log-odds shift of a visit the day after a visit.

    Some users come in runs of days and then stay away for a while; others of the same rate spread
    their visits out. On the days after a visit, each user's visits against the chance the class's
    model gives them (own rate x weekday x age, recency 1) give a one-step estimate of their shift
    (visits - expected) / information, whose sampling variance is 1 / information. The spread of
    those estimates beyond that noise (method of moments, as the user pace) is the between-user
    spread: the sketch is the estimates pulled toward their centre until their spread is that, centred
    on zero. Zeros when no spread shows beyond the noise.
    """
    flat = np.zeros(levels)
    if grid is None:
        return flat
    n = grid.row.size
    visited = np.where(grid.active > 0, np.arange(n), -1)
    before = np.r_[-1, np.maximum.accumulate(visited)[:-1]]
    after_visit = grid.later & (grid.day - grid.day[np.maximum(before, 0)] == 1)
    mult = weekdays[weekday(grid.day)] * grid.own * by_age[np.minimum(grid.age_week, len(by_age) - 1)]
    chance = np.clip(grid.rate * mult, 1e-4, 1 - 1e-4)[after_visit]
    odds = chance / (1 - chance) * by_recency[1]
    p = odds / (1 + odds)
    row, x, w = grid.row[after_visit], grid.active[after_visit], grid.weight[after_visit]
    users = int(grid.row.max()) + 1
    info = np.bincount(row, w * p * (1 - p), minlength=users)
    resid = np.bincount(row, w * (x - p), minlength=users)
    ok = info >= MIN_STREAK_INFO
    if ok.sum() < 2 * k:
        return flat
    shift, noise = resid[ok] / info[ok], 1.0 / info[ok]
    centre = float(np.average(shift, weights=info[ok]))
    spread = float(np.var(shift))
    between = spread - float(np.mean(noise))
    if between <= 0 or spread <= 0:
        return flat
    sketch = quantile_sketch((shift - centre) * np.sqrt(between / spread), levels, k)
    return flat if sketch is None else sketch - float(np.mean(sketch))


def sessions_per_day_pmf(activity: pl.DataFrame, k: int) -> np.ndarray:
    """Return P(sessions = s) for s = 0..30 (index 0 unused) over the given active user-days."""
    return capped_pmf(activity["sessions"].to_numpy(), activity["user"].to_numpy(), MAX_SESSIONS_PER_DAY, k)


# Sessions per day are also kept per activity band (the class's users by active days in the window, cut at
# these shares), each band's distribution pulled toward the class's by SESSION_BAND_PRIOR days' worth: in a
# mobile app the users who come most days are also the ones who open it several times a day.
SESSION_BAND_CUTS = (1 / 3, 2 / 3, 0.9)
SESSION_BAND_PRIOR = 50.0


def sessions_per_day_by_band(activity: pl.DataFrame, band: np.ndarray, bands: int, pmf: np.ndarray,
                             k: int) -> np.ndarray:  # fmt: skip
    """Return a (bands, 31) table: P(sessions = s) over the active days of each band's users.

    ``band``: each row of ``activity``'s band. A band's tail is k-anonymous among its own users; its counts
    are pulled toward the class's ``pmf`` by ``SESSION_BAND_PRIOR`` days (a band without days: the class's).
    """
    out = np.repeat(pmf[None, :], bands, axis=0)
    for b in range(bands):
        at = band == b
        days = int(at.sum())
        if days:
            own = capped_pmf(activity["sessions"].to_numpy()[at], activity["user"].to_numpy()[at],
                             MAX_SESSIONS_PER_DAY, k)  # fmt: skip
            out[b] = (days * own + SESSION_BAND_PRIOR * pmf) / (days + SESSION_BAND_PRIOR)
    return out


# A user's days' session counts are tied by a Gaussian copula: the count of a day is the class's
# distribution (the user's band's) at the quantile Phi(sqrt(rho) z_user + sqrt(1 - rho) z_day). rho is
# fitted on whether a day holds two sessions or more; up to this value.
MAX_PERSISTENCE = 0.95
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()  # E[f(z)], z ~ N(0, 1), is sum(_WEIGHTS * f(_NODES))


def multi_share_spread(rho: float, threshold: float | np.ndarray) -> float | np.ndarray:
    """Return the variance over users of P(a day holds 2+ sessions) when days are tied by ``rho``.

    A day holds two or more when its latent normal is above ``threshold``: given the user's z that
    chance is Phi((sqrt(rho) z - threshold) / sqrt(1 - rho)). One variance per threshold given.
    """
    t = np.asarray(threshold, np.float64)[..., None]
    p = ndtr((np.sqrt(rho) * _NODES - t) / np.sqrt(1.0 - rho))
    mean = p @ _WEIGHTS
    spread = (p * p) @ _WEIGHTS - mean * mean
    return float(spread) if np.ndim(threshold) == 0 else spread


def sessions_persistence(
    activity: pl.DataFrame, pmf: np.ndarray, k: int, band: np.ndarray | None = None
) -> float:
    """Return how much a user's days agree on whether they hold one session or several (0: not at all).

    Users differ beyond the day-to-day noise: in a B2B tool an admin opens it three times most
    days and a casual member once, though both belong to the class that comes on weekdays. Over the
    users with two active days or more, m of n days holding two sessions or more, the mean of
    m (m - 1) / (n (n - 1)) estimates E[p^2] without the binomial noise (p a user's own chance of such
    a day), so V = E[p^2] - E[p]^2 is the spread of those chances between users. The copula's rho is
    the one whose spread of chances (at the distribution's share of such days) is V, found by
    bisection; 0 with fewer than 2 k such users or when every day (or none) holds several sessions.

    With ``band`` (each row's activity band) and ``pmf`` one row per band, V is the spread within each
    band around the band's own mean, summed over the bands by their users: how much users differ that
    their band (how many days they come) does not already say. Taken over the whole class instead, a
    mobile app's frequent users' busier days read as a leaning the copula then gave at random to
    frequent and occasional users alike (hours between sessions KS 0.031 -> 0.054).
    """
    frame = activity.select("user", "sessions").with_columns(
        pl.Series("band", np.zeros(activity.height, np.int64) if band is None else np.asarray(band, np.int64))
    )
    per = frame.group_by("user").agg(
        pl.len().alias("n"), (pl.col("sessions") >= 2).sum().alias("m"), pl.col("band").first()
    ).filter(pl.col("n") >= 2)  # fmt: skip
    pmfs = np.atleast_2d(pmf)
    share = pmfs[:, 2:].sum(axis=1)
    if per.height < 2 * k:
        return 0.0
    n, m = per["n"].to_numpy().astype(np.float64), per["m"].to_numpy().astype(np.float64)
    b = per["band"].to_numpy()
    users = np.bincount(b, minlength=len(pmfs)).astype(np.float64)
    ok = (users > 0) & (share > 0.0) & (share < 1.0)
    if not ok.any():
        return 0.0
    pair = np.bincount(b, m * (m - 1) / (n * (n - 1)), minlength=len(pmfs))
    single = np.bincount(b, m / n, minlength=len(pmfs))
    within = pair - single**2 / np.maximum(users, 1.0)  # per band: users x (E[p^2] - E[p]^2)
    spread = float(within[ok].sum() / users[ok].sum())
    threshold, weight = ndtri(1.0 - share[ok]), users[ok] / users[ok].sum()

    def model(rho: float) -> float:
        return float(weight @ multi_share_spread(rho, threshold))

    if spread <= 0:
        return 0.0
    if spread >= model(MAX_PERSISTENCE):
        return MAX_PERSISTENCE
    lo, hi = 0.0, MAX_PERSISTENCE
    for _ in range(40):  # the spread grows with rho
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if model(mid) < spread else (lo, mid)
    return 0.5 * (lo + hi)


DAY_SESSION_BUCKETS = 3  # days of 1, 2, and 3 or more sessions
# Whether the user is also active the day before and the day after (0: neither, 1: before, 2: after, 3: both).
NEIGHBOURS = 4


def first_session_hours(sessions: pl.DataFrame) -> pl.DataFrame:
    """Return each active user-day's first session: user, weekday, hour (UTC), the day's session bucket, neighbours.

    ``neighbours`` is 1 if the user is active the day before, plus 2 if active the day after.
    """
    first = (
        sessions.sort("start_ms")
        .group_by("user", "day", maintain_order=True)
        .agg(pl.col("start_ms").first(), pl.len().alias("sessions"))
    )
    days = first.select("user", "day")
    keys = days.with_columns(pl.lit(1, pl.Int8).alias("on"))
    prev = days.join(
        keys.with_columns(pl.col("day") + 1), on=["user", "day"], how="left", maintain_order="left"
    )
    nxt = days.join(
        keys.with_columns(pl.col("day") - 1), on=["user", "day"], how="left", maintain_order="left"
    )
    neighbours = prev["on"].fill_null(0).to_numpy() + 2 * nxt["on"].fill_null(0).to_numpy()
    hour = (first["start_ms"].to_numpy() % 86_400_000) // 3_600_000
    bucket = np.minimum(first["sessions"].to_numpy(), DAY_SESSION_BUCKETS) - 1
    return pl.DataFrame({"user": first["user"], "weekday": weekday(first["day"].to_numpy()), "hour": hour,
                         "bucket": bucket, "neighbours": neighbours.astype(np.int64)})  # fmt: skip


def first_hour_tilt(first: pl.DataFrame, strength: float = 24.0) -> tuple[np.ndarray, np.ndarray]:
    """Return factors on a class's first-session hours: (by the day's bucket, by bucket and neighbours).

    Over all users: P(first hour | the day's session bucket) / P(first hour), a (buckets, 24) array, and
    P(first hour | bucket, neighbours) / P(first hour), (buckets, neighbours, 24). Days with more
    sessions start earlier (the later sessions need the rest of the day). And a day between active
    days is placed by them: in a mobile app used in many time zones a user's evening falls after
    midnight UTC, so a UTC day after an active day starts early and one before an active day ends late
    (one-session days: median first hour 8.8 after an active day, 13.8 after a day away). Generation
    multiplies a class's hour profile by the bucket's factor and by the neighbours' factor over its
    mean among the class's users active that day, so the class's hours stay the class's whatever its
    users' neighbours. Each bucket's hours are smoothed toward the overall hours with ``strength``
    pseudo-days, each (bucket, neighbours) toward its bucket's.
    """
    counts = np.zeros((DAY_SESSION_BUCKETS, NEIGHBOURS, 24))
    np.add.at(
        counts, (first["bucket"].to_numpy(), first["neighbours"].to_numpy(), first["hour"].to_numpy()), 1.0
    )
    overall = (counts.sum(axis=(0, 1)) + 1.0) / (counts.sum() + 24.0)
    by_bucket = counts.sum(axis=1) + strength * overall[None, :]
    by_bucket /= by_bucket.sum(axis=1, keepdims=True)
    cell = counts + strength * by_bucket[:, None, :]
    cell /= cell.sum(axis=2, keepdims=True)
    return by_bucket / overall[None, :], cell / overall[None, None, :]


def hour_profile(first: pl.DataFrame, pooled: np.ndarray | None = None, strength: float = 24.0) -> np.ndarray:
    """Return a (7, 24) profile: P(hour | weekday), smoothed toward the all-week hours (then ``pooled``)."""
    counts = np.zeros((7, 24))
    np.add.at(counts, (first["weekday"].to_numpy(), first["hour"].to_numpy()), 1.0)
    week = counts.sum(axis=0)
    week = week + (strength * pooled.mean(axis=0) if pooled is not None else 1.0)
    week /= week.sum()
    smoothed = counts + strength * week[None, :]
    return smoothed / smoothed.sum(axis=1, keepdims=True)


GAP_BLOCKS = 6  # the day in blocks of 4 hours (UTC), by when the session before the gap ended
GAP_BLOCK_MIN_GAPS = 200  # fewer gaps after a block (in a class, or in all) fall back to the wider sketch
GAP_LEFT = 2  # sessions still to come in the day after a gap: the next one only, or more
CLOCK_FLOOR = 1.0  # pseudo-sessions per hour in the day's clock: every hour keeps some room


def within_day_gaps(sessions: pl.DataFrame) -> pl.DataFrame:
    """Return the gaps between one session's end and the next session's start on the same day, per user.

    ``gap_minutes`` is the gap; ``block`` the 4-hour block of the day in which the earlier session ended
    (older specs' gap sketches are per block); ``end_ms``/``start_ms`` are the gap's ends as ms of the
    day; ``left`` is how many of the day's sessions come after the gap, less one, capped at
    ``GAP_LEFT - 1``: a gap before the day's last session may take the rest of the day, one before
    several more may not.
    """
    s = sessions.sort("user", "start_ms")
    # On the sorted rows' arrays (window expressions over 555k users' groups cost several CPU seconds).
    user, day = s["user"].to_numpy(), s["day"].to_numpy()
    start, end = s["start_ms"].to_numpy(), s["end_ms"].to_numpy()
    n = user.size
    # A gap: a row after a row of the same user and day (users come in runs, and each user's days in order).
    same = np.zeros(n, np.bool_)
    same[1:] = (user[1:] == user[:-1]) & (day[1:] == day[:-1])
    at = np.flatnonzero(same)
    new_day = np.r_[True, ~same[1:]] if n else np.zeros(0, np.bool_)
    firsts = np.flatnonzero(new_day)
    size = np.diff(np.r_[firsts, n])
    rank = np.arange(n) - np.repeat(firsts, size)  # position within the (user, day)
    after = np.repeat(size, size) - rank - 1  # the day's sessions after this one
    prev_end = end[at - 1]
    block_ms = 86_400_000 // GAP_BLOCKS
    return pl.DataFrame(
        [
            pl.Series("user", user[at], s.schema["user"]),
            # times the reciprocal, as polars divides a column by a number: the same bits as before
            pl.Series("gap_minutes", np.maximum((start[at] - prev_end) * (1 / 60_000.0), 0.0), pl.Float64),
            pl.Series("block", np.clip((prev_end % 86_400_000) // block_ms, 0, GAP_BLOCKS - 1), pl.Int8),
            pl.Series("end_ms", prev_end % 86_400_000, s.schema["end_ms"]),
            pl.Series("start_ms", start[at] % 86_400_000, s.schema["start_ms"]),
            pl.Series("left", np.clip(after[at], 0, GAP_LEFT - 1), pl.Int8),
        ]
    )


def day_clock(
    sessions: pl.DataFrame, classes: np.ndarray, n_classes: int, strength: float = 24.0
) -> np.ndarray:
    """Return (classes, 24): each class's share of session starts per UTC hour (all of its sessions).

    Each class's hours are smoothed toward everyone's with ``strength`` pseudo-sessions, and everyone's
    keep ``CLOCK_FLOOR`` pseudo-sessions an hour, so that every hour of the clock has some room.
    """
    hour = (sessions["start_ms"].to_numpy() % 86_400_000) // 3_600_000
    cls = classes[sessions["user"].to_numpy()]
    counts = np.zeros((n_classes, 24))
    np.add.at(counts, (cls, hour), 1.0)
    pooled = counts.sum(axis=0) + CLOCK_FLOOR
    pooled /= pooled.sum()
    smoothed = counts + strength * pooled[None, :]
    return smoothed / smoothed.sum(axis=1, keepdims=True)


def clock_position(ms_of_day: np.ndarray, clock: np.ndarray) -> np.ndarray:
    """Return the share of the day's session starts before each time of day (linear within an hour)."""
    t = np.clip(np.asarray(ms_of_day, np.float64), 0.0, 86_400_000.0) / 3_600_000.0
    knots = np.r_[0.0, np.cumsum(clock)]
    return np.interp(t, np.arange(25.0), knots)


def clock_time(position: np.ndarray, clock: np.ndarray) -> np.ndarray:
    """Return the time of day (ms) at which the share ``position`` of the day's session starts has passed."""
    knots = np.r_[0.0, np.cumsum(clock)]
    return np.interp(np.asarray(position, np.float64), knots, np.arange(25.0)) * 3_600_000.0


def gap_shares(gaps: pl.DataFrame, clock: np.ndarray) -> np.ndarray:
    """Return each gap as the share it takes of what is left of its class's day clock after the earlier session.

    On the clock (time measured in shares of the day's session starts) a product whose users pick the
    hours of their visits independently has gaps that depend only on how many visits are still to come;
    in hours the same gaps would be long in the quiet morning and short in the busy afternoon.
    ``gaps`` needs a ``class`` column; ``clock`` is :func:`day_clock`'s.
    """
    cls = gaps["class"].to_numpy()
    a = np.empty(gaps.height)
    b = np.empty(gaps.height)
    for c in np.unique(cls):
        at = cls == c
        a[at] = clock_position(gaps["end_ms"].to_numpy()[at], clock[c])
        b[at] = clock_position(gaps["start_ms"].to_numpy()[at], clock[c])
    return np.clip((b - a) / np.maximum(1.0 - a, 1e-9), 0.0, 1.0)


def gap_sketch(gaps: np.ndarray, levels: int, k: int, log: bool = True) -> np.ndarray | None:
    """Return the quantile sketch of within-day gaps (minutes on a log scale, or shares of the day's clock)."""
    return quantile_sketch(gaps, levels, k, log=log)
