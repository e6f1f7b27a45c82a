"""New users per day: a log-linear trend with weekly seasonality, plus the users who were already there,
scaled week by week to the export's own level.

The number of users first seen on window day d (0-based) is Poisson with mean

    f[week(d)] * (exp(a + b * d / D + w[weekday(d)])  +  B * (1 - r) * r ** d)

The first term is genuinely new users: a trend over the window's D days and a
multiplier per weekday (Monday's fixed at 1). The second is the backlog: B users
who were active before the export began and show up for the first time on day
d with a geometric delay (r close to 1 for products whose regulars come rarely).
The ten numbers are fitted by maximum likelihood (L-BFGS on the Poisson
log-likelihood, f = 1).

f is the level of each 7-day block of the window (a last block shorter than four
days joins the one before): the users first seen in the block divided by the
fitted model's expectation for it, where the two differ by more than two Poisson
standard deviations (else 1: the model stands where it fits). The smooth model alone cannot follow a level
that changes abruptly (a product that stopped acquiring users, a launch week):
fitted to an export whose new users all came in its first six weeks, it went on
bringing them in for the next thirteen. With f the expected arrivals of every
block are the export's or within noise of them, the shape within a block (weekday, backlog decay) stays
the model's, and the share of backlog users on each day (the model's two terms)
is unchanged. Beyond the window's last day the trend continues, times the last
block's f.

The generator scales both parts to the requested number of users, so the twin
keeps the export's share of backlog users and the shape of its arrivals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize

from simulation_assets.core.twin.features import weekday

# A block's class mix is shrunk toward the whole window's by this many users (class_mix_by_block).
MIX_PRIOR_USERS = 25
# A block whose class mix is this far (total variation) from the other blocks' keeps its own (class_mix_by_block).
JUMP_TV = 0.1


@dataclass(frozen=True)
class Arrivals:
    intercept: float  # a
    slope: float  # b, per window length
    weekday_log: tuple[float, ...]  # w, Monday first, Monday = 0
    backlog_users: float  # B
    backlog_decay: float  # r
    window_days: int  # D
    week_factor: tuple[float, ...] = ()  # f, per 7-day block of the window (empty: 1 everywhere)

    def model_new(self, days: np.ndarray, first_weekday: int) -> np.ndarray:
        """The smooth model's expected new users on window days ``days`` (0-based), day 0 a ``first_weekday``."""
        d = np.asarray(days, np.float64)
        w = np.asarray(self.weekday_log)[(first_weekday + d.astype(np.int64)) % 7]
        # The trend is extended beyond the window but not let to explode or vanish: at most x4 / x0.25.
        trend = np.clip(self.slope * d / max(self.window_days, 1), -np.log(4), np.log(4))
        return np.exp(self.intercept + trend + w)

    def model_backlog(self, days: np.ndarray) -> np.ndarray:
        """The smooth model's expected backlog users first seen on window days ``days``."""
        d = np.asarray(days, np.float64)
        return self.backlog_users * (1 - self.backlog_decay) * self.backlog_decay**d

    def level(self, days: np.ndarray) -> np.ndarray:
        """Return f of each window day (beyond the window, the last block's)."""
        d = np.asarray(days, np.int64)
        if not self.week_factor:
            return np.ones(d.shape)
        return np.asarray(self.week_factor)[np.clip(d // 7, 0, len(self.week_factor) - 1)]

    def expected(self, days: np.ndarray, first_weekday: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the expected (new, backlog) users first seen on window days ``days``."""
        f = self.level(days)
        return f * self.model_new(days, first_weekday), f * self.model_backlog(days)


def fit_arrivals(first_days: np.ndarray, window_first: int, window_days: int) -> Arrivals:
    """Fit the arrival model to the window-day (UTC day number) each user was first seen on."""
    counts = np.bincount(np.asarray(first_days, np.int64) - window_first, minlength=window_days)[:window_days]
    counts = counts.astype(np.float64)
    d = np.arange(window_days, dtype=np.float64)
    wd = weekday(window_first + np.arange(window_days))
    onehot = np.zeros((window_days, 7))
    onehot[np.arange(window_days), wd] = 1.0
    fit_trend = window_days >= 14
    fit_week = window_days >= 14

    def unpack(x: np.ndarray) -> tuple[float, float, np.ndarray, float, float]:
        a, b = x[0], (x[1] if fit_trend else 0.0)
        w = np.r_[0.0, x[2:8]] if fit_week else np.zeros(7)
        return a, b, w, np.exp(x[8]), 1 / (1 + np.exp(-x[9]))

    def nll(x: np.ndarray) -> float:
        a, b, w, big_b, r = unpack(x)
        lam = np.exp(a + b * d / window_days + onehot @ w) + big_b * (1 - r) * r**d + 1e-9
        return float(lam.sum() - (counts * np.log(lam)).sum())

    tail = counts[window_days // 2 :].mean() if window_days > 1 else counts.mean()
    x0 = np.zeros(10)
    x0[0] = np.log(max(tail, 0.1))
    x0[8] = np.log(max(counts[: max(1, window_days // 7)].sum() - tail * max(1, window_days // 7), 1.0))
    x0[9] = 1.0
    result = minimize(
        nll, x0, method="L-BFGS-B", bounds=[(-20, 20), (-10, 10)] + [(-5, 5)] * 6 + [(-20, 25), (-8, 12)]
    )
    a, b, w, big_b, r = unpack(result.x)
    model = Arrivals(float(a), float(b), tuple(float(v) for v in w), float(big_b), float(r), window_days)
    new, old = model.expected(np.arange(window_days), int(weekday(window_first)))
    return replace(model, week_factor=week_factors(counts, new + old))


def day_blocks(window_days: int) -> tuple[np.ndarray, int]:
    """Return each window day's 7-day block and the number of blocks (a last block under 4 days joins the one
    before)."""
    blocks = max(1, window_days // 7 + (1 if window_days % 7 >= 4 else 0))
    return np.minimum(np.arange(window_days) // 7, blocks - 1), blocks


def class_mix_by_block(
    first_days: np.ndarray,
    classes: np.ndarray,
    n_classes: int,
    window_days: int,
    prior: np.ndarray,
    weights: np.ndarray | None = None,
    looks: np.ndarray | None = None,
) -> np.ndarray:
    """Return the share of each class among the users first seen in each 7-day block (blocks x classes).

    Who arrives can change abruptly: an export of a running product opens on its regulars (first seen in
    its first days because they were already there), a day in the news brings one-visit readers. A block
    whose mix is further than JUMP_TV (total variation) from the mix of the other blocks' users keeps its
    own mix (the furthest first, then again without it); every other block takes the mix of all those
    blocks' users together. Slow drifts are not followed: a user first seen near the window's end is judged on a few days, so the classes of late blocks drift
    toward whatever a short history looks like, and copying that drift made early cohorts too short-lived
    (the twin's classes are fitted on everyone). Mixes are shrunk toward ``prior`` by MIX_PRIOR_USERS
    users' worth. ``first_days`` are 0-based window days; ``weights`` count each user in part (e.g. the
    chance they are of one arrival kind).

    ``looks`` (blocks x blocks x classes): how the users of each block (second axis) look when judged on no
    more days than the users of a block (first axis) have, e.g. by :func:`~.fit.class_looks`. A block is then
    compared with the other blocks as they looked after as few days: users first seen near the window's
    end are judged on a few days, and a few busy days make a user look like a heavy one. Compared with
    everyone's whole history, a window's last blocks drift away one after the other, each is taken for a
    jump, and the twin's late newcomers are the heavy classes (a 6,000-user app whose users' interest fades
    with age, alike whenever they came: its last three blocks' newcomers 33-43 % of two classes that
    are 7 % of the first weeks'; the twin's daily users 1.2-1.3 times the export's in its last two weeks).
    Without ``looks`` every block is compared with the others' whole histories.
    """
    block, blocks = day_blocks(window_days)
    b = block[np.clip(np.asarray(first_days, np.int64), 0, window_days - 1)]
    w = np.ones(len(b)) if weights is None else np.asarray(weights, np.float64)
    counts = np.zeros((blocks, n_classes))
    np.add.at(counts, (b, np.asarray(classes, np.int64)), w)
    prior = np.asarray(prior, np.float64) / max(float(np.sum(prior)), 1e-12)

    def shrunk(c: np.ndarray) -> np.ndarray:
        return (c + MIX_PRIOR_USERS * prior) / (c.sum(axis=-1, keepdims=True) + MIX_PRIOR_USERS)

    own = shrunk(counts)
    if looks is None:
        looks = np.broadcast_to(counts, (blocks, blocks, n_classes))
    # Blocks b and j are compared as both look on the days the later of the two has: block j's users judged on
    # that span beside block b's judged on it too (b's shares weighted over the j's like the j's users).
    ar = np.arange(blocks)
    later = np.maximum.outer(ar, ar)
    other = looks[later, ar[None, :]]  # [b, j]: block j on the span of the later of b and j
    mine = looks[later, ar[:, None]]  # [b, j]: block b on that span
    mine = mine / np.maximum(mine.sum(axis=2, keepdims=True), 1e-12)
    size = counts.sum(axis=1)
    jump = np.zeros(blocks, bool)
    # The furthest block from the others (jumps found so far left out), one at a time.
    while (~jump).sum() > 1:
        pair = (~jump)[None, :] & (ar[:, None] != ar[None, :])
        rest = shrunk((other * pair[:, :, None]).sum(axis=1))
        weight = pair * size[None, :]
        like = (mine * weight[:, :, None]).sum(axis=1) / np.maximum(weight.sum(axis=1), 1e-12)[:, None]
        tv = np.where(jump, -1.0, 0.5 * np.abs(shrunk(like * size[:, None]) - rest).sum(axis=1))
        if tv.max() <= JUMP_TV:
            break
        jump[int(np.argmax(tv))] = True
    mix = np.where(jump[:, None], own, shrunk(counts[~jump].sum(axis=0)))
    return np.round(mix, 6)


def week_factors(counts: np.ndarray, expected: np.ndarray) -> tuple[float, ...]:
    """Return f per 7-day block (a last block under 4 days joins the one before).

    A block whose count is within two Poisson standard deviations of the model's expectation keeps the
    model (f = 1): only a level the model clearly misses is followed, not the noise of a small export.
    Otherwise f is the count over the expectation (floored at 1e-9, so f x expectation gives the count).
    """
    block, blocks = day_blocks(len(counts))
    seen = np.bincount(block, weights=counts, minlength=blocks)
    want = np.bincount(block, weights=expected, minlength=blocks)
    misses = np.abs(seen - want) > 2 * np.sqrt(np.maximum(want, 1.0))
    f = np.where(misses, seen / np.maximum(want, 1e-9), 1.0)
    return tuple(round(float(x), 6) for x in f)


def backlog_posterior(arrivals: Arrivals, first_days: np.ndarray, window_first: int) -> np.ndarray:
    """Return each user's probability of being a backlog user given the window day they were first seen."""
    d = np.asarray(first_days, np.int64) - window_first
    new = arrivals.model_new(d, int(weekday(window_first)))
    old = arrivals.model_backlog(d)
    return old / (old + new + 1e-12)


# Calendar days: a date whose first-seen users or returning users depart from the same weekday's level (the
# median of that weekday within CALENDAR_SPAN days either side) by a factor beyond CALENDAR_RATIO and by more
# than CALENDAR_Z Poisson standard deviations keeps a factor of its own. The window's first week is left out
# (every user is first seen then).
CALENDAR_SPAN = 21
CALENDAR_RATIO = 1.25
CALENDAR_Z = 5.0
CALENDAR_MIN_LEVEL = 20.0
CALENDAR_ONE_SIDED_RATIO = 2.0


def weekday_level(counts: np.ndarray) -> np.ndarray:
    """Return each day's level: the median count of the same weekday within CALENDAR_SPAN days (the day itself and
    the window's first week left out)."""
    days = np.arange(counts.size)
    level = np.zeros(counts.size)
    for d in days:
        same = days[(days % 7 == d % 7) & (days != d) & (days >= 7) & (np.abs(days - d) <= CALENDAR_SPAN)]
        level[d] = float(np.median(counts[same])) if same.size else float(counts[d])
    return level


def new_and_returning(first: np.ndarray, active_day: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Return per day the users first seen that day and the other active users (days from the window's first)."""
    new = np.bincount(first, minlength=days)[:days].astype(np.float64)
    return new, np.bincount(active_day, minlength=days)[:days] - new


def calendar_days(new: np.ndarray, returning: np.ndarray) -> list[tuple[int, float, float]]:
    """Return (window day, factor on new users, factor on returning users) of the days that depart from their level.

    ``new``/``returning``: per window day, the users first seen that day and the other active users. A day
    departs clearly when its count is beyond CALENDAR_RATIO of its weekday level, and by CALENDAR_Z Poisson
    standard deviations; where the level has the same weekday on one side only (the window's second and last
    weeks) beyond CALENDAR_ONE_SIDED_RATIO: on a growing product the first weeks' returning users all sit
    below the weeks after them. The returning users' factor is the day's count over its level; the
    newcomers' is the day's over the mean of the other days of its 7-day block (the arrival model's level
    per block holds the day's jump among them; ``with_calendar`` shares the block by it), 1 where the day
    does not depart.
    """
    out = []
    levels = [weekday_level(np.asarray(x, np.float64)) for x in (new, returning)]
    for d in range(7, len(new)):
        # A level from one side only may be a trend's rather than the weekday's: there only a jump of newcomers
        # counts (a growing product's returning users sit below the weeks after them for weeks on end).
        two_sided = d - 7 >= 7 and d + 7 < len(new)
        flags = []
        for j, (x, level) in enumerate(zip((new, returning), levels)):
            lv = max(level[d], 1.0)
            ratio = x[d] / lv
            ratio_max = CALENDAR_RATIO if two_sided else CALENDAR_ONE_SIDED_RATIO
            flags.append((two_sided or j == 0) and level[d] >= CALENDAR_MIN_LEVEL
                         and abs(x[d] - lv) > CALENDAR_Z * np.sqrt(lv) and not 1 / ratio_max <= ratio <= ratio_max)  # fmt: skip
        if any(flags):
            block = np.arange((d // 7) * 7, min((d // 7) * 7 + 7, len(new)))
            others = float(np.mean(new[block[block != d]])) if block.size > 1 else float(new[d])
            f_new = float(new[d] / max(others, 1.0)) if flags[0] else 1.0
            f_ret = float(returning[d] / max(levels[1][d], 1.0)) if flags[1] else 1.0
            out.append((d, f_new, f_ret))
    return out


def with_calendar(new_mean: np.ndarray, days: np.ndarray, factors: dict[int, float]) -> np.ndarray:
    """Return the expected new users per day with each calendar day's factor; its 7-day block keeps its total.

    ``days``: the day numbers of ``new_mean``'s entries (blocks of 7 from the first); ``factors``: by day
    number, the day's newcomers over the mean of its block's other days. The arrival model's level per
    block was fitted to the block's users, the day's jump among them.
    """
    out = np.asarray(new_mean, np.float64).copy()
    for i, day in enumerate(days):
        f = factors.get(int(day))
        if f is None:
            continue
        seg = out[(i // 7) * 7 : (i // 7) * 7 + 7]  # a view of the day's block
        others = np.arange(seg.size) != i % 7
        total, rest = seg.sum(), seg[others].sum()
        if not others.any() or rest <= 0:
            out[i] *= f
            continue
        # The day f times the mean of the block's other days; the block keeps its total.
        day = f * rest / others.sum()
        share = day / (day + rest)
        out[i] = total * share
        seg[others] *= total * (1 - share) / rest
    return out
