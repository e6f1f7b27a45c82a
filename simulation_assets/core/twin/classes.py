"""Latent activity classes: a finite mixture fitted by EM, the number of classes chosen by BIC.

Each user is described by three things, independent given the class:

- **when** they visit: their session starts counted in 42 cells (7 weekdays x
  six 4-hour blocks, UTC), a multinomial with class probabilities;
- **how often**: of the days after their first one up to the end of the window,
  on how many they came back, a binomial with a class rate;
- **how deep**: the mean log number of events of their sessions, a normal with
  a class mean and variance.

EM runs from a few seeded starts on a sample of users; the candidate numbers of
classes are compared by BIC (-2 log-likelihood + parameters x log users), and
candidates with a class smaller than max(k, 1 % of users) are not allowed (a
class must describe a crowd, not a person). Every user is then given the class
of highest posterior probability.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.twin.features import weekday

TIME_CELLS = 42  # 7 weekdays x 6 blocks of 4 hours
_EPS = 1e-9
THREADS = 2  # candidate numbers of classes fitted at once (NumPy's products and ufuncs let go of the GIL)


@dataclass(frozen=True)
class Mixture:
    """Fitted class parameters: weights, visit-time cell probabilities, return rate, depth normal."""

    weights: np.ndarray  # (C,)
    cells: np.ndarray  # (C, 42)
    rate: np.ndarray  # (C,) chance to come back on a given later day
    depth_mean: np.ndarray  # (C,)
    depth_var: np.ndarray  # (C,)
    log_likelihood: float
    users: int

    @property
    def classes(self) -> int:
        return len(self.weights)

    @property
    def parameters(self) -> int:
        return self.classes * (TIME_CELLS - 1 + 1 + 2) + self.classes - 1

    @property
    def bic(self) -> float:
        return -2.0 * self.log_likelihood + self.parameters * np.log(max(self.users, 2))


@dataclass(frozen=True)
class UserDescriptors:
    """The three descriptors of every user, as arrays aligned with ``user`` ids."""

    user: np.ndarray
    cells: np.ndarray  # (N, 42) session counts
    returns: np.ndarray  # active days after the first
    trials: np.ndarray  # days after the first, to the window's end
    depth: np.ndarray  # mean log events per session


def describe_users(sessions: pl.DataFrame, users: pl.DataFrame) -> UserDescriptors:
    """Return the descriptors of the users of ``users`` (from :func:`~.features.user_table`)."""
    start = sessions["start_ms"].to_numpy()
    day = sessions["day"].to_numpy()
    block = ((start % 86_400_000) // 14_400_000).astype(np.int64)
    cell = weekday(day) * 6 + block
    ids = users["user"].to_numpy()
    index = np.full(int(max(ids.max(), sessions["user"].max())) + 1, -1, np.int64)  # type: ignore[arg-type]
    index[ids] = np.arange(len(ids))
    row = index[sessions["user"].to_numpy()]
    keep = row >= 0
    counts = np.zeros((len(ids), TIME_CELLS), np.float64)
    np.add.at(counts, (row[keep], cell[keep]), 1.0)
    depth_sum = np.bincount(row[keep], np.log(sessions["n_events"].to_numpy()[keep]), minlength=len(ids))
    n = np.maximum(users["n_sessions"].to_numpy(), 1)
    return UserDescriptors(
        user=ids,
        cells=counts,
        returns=(users["active_days"].to_numpy() - 1).astype(np.float64),
        trials=(users["exposure_days"].to_numpy() - 1).astype(np.float64),
        depth=depth_sum / n,
    )


def _log_densities(d: UserDescriptors, m: Mixture) -> np.ndarray:
    """Return log p(user | class) for every user and class, (N, C)."""
    out = d.cells @ np.log(m.cells.T + _EPS)
    rate = np.clip(m.rate, 1e-6, 1 - 1e-6)
    out += (
        d.returns[:, None] * np.log(rate)[None, :]
        + (d.trials - d.returns)[:, None] * np.log1p(-rate)[None, :]
    )
    var = np.maximum(m.depth_var, 1e-4)
    out += -0.5 * (
        np.log(2 * np.pi * var)[None, :] + (d.depth[:, None] - m.depth_mean[None, :]) ** 2 / var[None, :]
    )
    return out


def _m_step(d: UserDescriptors, resp: np.ndarray) -> tuple[np.ndarray, ...]:
    w = resp.sum(axis=0) + _EPS
    cells = resp.T @ d.cells + 0.5  # half a visit of smoothing per cell keeps log-probabilities finite
    cells /= cells.sum(axis=1, keepdims=True)
    rate = (resp.T @ d.returns + 0.5) / (resp.T @ d.trials + 1.0)
    mean = (resp.T @ d.depth) / w
    var = (resp.T @ d.depth**2) / w - mean**2
    return w / w.sum(), cells, rate, mean, np.maximum(var, 1e-3)


def start_points(n: int, classes: int, rng: np.random.Generator, starts: int = 3) -> list[np.ndarray]:
    """Return the responsibilities ``starts`` EM runs with ``classes`` classes start from, for ``n`` users."""
    # Seeded around random users (k-means++ style spread by activity).
    return [rng.dirichlet(np.ones(classes), size=n) for _ in range(starts)]


def fit_mixture(
    d: UserDescriptors,
    classes: int,
    rng: np.random.Generator | None,
    starts: int = 3,
    iterations: int = 200,
    begin: list[np.ndarray] | None = None,
) -> Mixture:
    """Return the best of ``starts`` EM runs with ``classes`` classes on descriptors ``d``.

    The runs start from ``begin`` (see :func:`start_points`), else from points drawn from ``rng``.
    """
    n = len(d.user)
    best: Mixture | None = None
    if begin is None:
        assert rng is not None
        begin = start_points(n, classes, rng, starts)
    for resp in begin:
        previous = -np.inf
        params = _m_step(d, resp)
        ll = -np.inf
        for _ in range(iterations):
            m = Mixture(*params, log_likelihood=0.0, users=n)
            logp = _log_densities(d, m) + np.log(params[0] + _EPS)[None, :]
            top = logp.max(axis=1, keepdims=True)
            norm = top[:, 0] + np.log(np.exp(logp - top).sum(axis=1))
            ll = float(norm.sum())
            resp = np.exp(logp - norm[:, None])
            params = _m_step(d, resp)
            if ll - previous < 1e-7 * abs(ll) + 1e-9:
                break
            previous = ll
        fitted = Mixture(*params, log_likelihood=ll, users=n)
        if best is None or fitted.log_likelihood > best.log_likelihood:
            best = fitted
    assert best is not None
    return _ordered(best)


def _ordered(m: Mixture) -> Mixture:
    """Return ``m`` with classes ordered by return rate, most active first (stable, readable class ids)."""
    order = np.argsort(-m.rate, kind="stable")
    return Mixture(m.weights[order], m.cells[order], m.rate[order], m.depth_mean[order], m.depth_var[order],
                   m.log_likelihood, m.users)  # fmt: skip


def select_classes(
    d: UserDescriptors, max_classes: int, min_class_users: int, rng: np.random.Generator
) -> tuple[Mixture, list[dict[str, float]]]:
    """Fit 1..``max_classes`` classes and return (the BIC-best allowed mixture, the candidates' table).

    The candidates are fitted ``THREADS`` at a time, in order, from start points all drawn first: the same
    draws as one after the other, and ``rng`` is left where fitting them one after the other would leave it.
    """
    n = len(d.user)
    counts = [c for c in range(1, max_classes + 1) if c * min_class_users <= n]
    begins, states = [], []
    for c in counts:
        begins.append(start_points(n, c, rng))
        states.append(rng.bit_generator.state)
    pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="twin-classes")
    try:
        fits = [pool.submit(fit_mixture, d, c, None, begin=b) for c, b in zip(counts, begins, strict=True)]
        table, best = _chosen(fits, counts, min_class_users, n)
    finally:  # candidates beyond the last one looked at: not started, or left to finish unread
        pool.shutdown(wait=False, cancel_futures=True)
    if table:
        rng.bit_generator.state = states[len(table) - 1]
    if best is None:
        best = fit_mixture(d, 1, rng)
    for row in table:
        row["chosen"] = row["classes"] == best.classes
    return best, table


def _chosen(fits: list, counts: list[int], min_class_users: int, n: int) -> tuple[list[dict[str, float]], Mixture | None]:  # fmt: skip
    """Return (the candidates' table, the BIC-best allowed mixture): candidates looked at in order until BIC rose
    twice in a row."""
    table: list[dict[str, float]] = []
    best: Mixture | None = None
    worse_in_a_row = 0
    for c, fitted in zip(counts, fits, strict=True):
        m = fitted.result()
        smallest = float(m.weights.min() * n)
        allowed = smallest >= min_class_users
        table.append({"classes": c, "bic": round(m.bic, 1), "log_likelihood": round(m.log_likelihood, 1),
                      "smallest_class_users": round(smallest, 1), "allowed": allowed})  # fmt: skip
        if allowed and (best is None or m.bic < best.bic):
            best, worse_in_a_row = m, 0
        else:
            worse_in_a_row += 1
            if worse_in_a_row >= 2:  # BIC rose twice in a row: more classes will not help
                break
    return table, best


def assign(d: UserDescriptors, m: Mixture) -> np.ndarray:
    """Return each user's class of highest posterior probability."""
    logp = _log_densities(d, m) + np.log(m.weights + _EPS)[None, :]
    return np.argmax(logp, axis=1).astype(np.int16)
