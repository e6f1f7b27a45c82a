"""Load shapes: how many requests per second (open model) or virtual users (closed model) over time.

A shape is named in the scenario file under ``load_shapes`` and compiles to a piecewise-linear
level ``level(t)``: arrivals per second for the open model (Poisson arrivals at that rate, sent
whether or not earlier requests came back), or concurrent virtual users for the closed model
(each user sends, waits for the answer, thinks, sends again). Kinds:

``constant`` / ``soak``  one level (``rate`` or ``users``) for ``duration_s`` (soak: a long one)
``ramp``                 from ``start`` to ``end`` linearly over ``duration_s``
``step``                 ``start``, then ``+step`` every ``every_s``, ``steps`` times
``spike``                ``base``, jumping to ``peak`` at ``at_s`` for ``for_s`` seconds
``day``                  the personas' own rhythm over 24 hours, compressed into ``duration_s``,
                         scaled so the busiest hour reaches ``peak``

Open-model arrivals are Poisson by default. ``arrivals: paced`` sends them instead as Locust's
``constant_throughput`` users do: ``ceil(level * pace_s)`` users, each sending once every ``pace_s``
from the moment it joins; users who join together stay in step, so their requests leave in bursts.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Annotated, Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from simulation_assets.core.power_users.rhythm import WEEKDAYS, Rhythm

MAX_RATE = 100_000.0  # arrivals per second; far above what one process sends


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Literal["open", "closed"] = Field(
        default="open", description="open: Poisson arrivals at the level (req/s); closed: the level is users"
    )
    think_s: float = Field(
        default=1.0, ge=0, le=3600, description="closed model: mean pause between requests"
    )
    max_in_flight: int = Field(
        default=10_000, ge=1, le=1_000_000, description="open model: cap on pending requests"
    )
    arrivals: Literal["poisson", "paced"] = Field(
        default="poisson",
        description="open model: Poisson arrivals, or paced users each sending once every pace_s",
    )
    pace_s: float = Field(default=1.0, gt=0, le=3600, description="paced arrivals: each user's period")

    def points(self) -> list[tuple[float, float]]:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    @property
    def duration(self) -> float:
        """Return the shape's length in seconds."""
        return self.points()[-1][0]


class Constant(_Shape):
    kind: Literal["constant", "soak"]
    level: float = Field(
        validation_alias=AliasChoices("rate", "users", "level"),
        ge=0,
        le=MAX_RATE,
        description="req/s (open, key `rate`) or users (closed, key `users`)",
    )
    duration_s: float = Field(gt=0, le=7 * 86400)

    def points(self) -> list[tuple[float, float]]:
        return [(0.0, self.level), (self.duration_s, self.level)]


class Ramp(_Shape):
    kind: Literal["ramp"]
    start: float = Field(ge=0, le=MAX_RATE)
    end: float = Field(ge=0, le=MAX_RATE)
    duration_s: float = Field(gt=0, le=7 * 86400)

    def points(self) -> list[tuple[float, float]]:
        return [(0.0, self.start), (self.duration_s, self.end)]


class Step(_Shape):
    kind: Literal["step"]
    start: float = Field(ge=0, le=MAX_RATE)
    step: float = Field(ge=-MAX_RATE, le=MAX_RATE)
    every_s: float = Field(gt=0, le=86400)
    steps: int = Field(ge=1, le=1000, description="how many levels after the first")

    @model_validator(mode="after")
    def _within(self) -> Step:
        last = self.start + self.step * self.steps
        if not 0 <= last <= MAX_RATE:
            raise ValueError(f"the last step reaches {last:g}; levels must stay within [0, {MAX_RATE:g}]")
        return self

    def points(self) -> list[tuple[float, float]]:
        out = [(0.0, self.start)]
        for k in range(1, self.steps + 1):
            t = k * self.every_s
            out += [(t, self.start + self.step * (k - 1)), (t, self.start + self.step * k)]
        out.append(((self.steps + 1) * self.every_s, self.start + self.step * self.steps))
        return out


class Spike(_Shape):
    kind: Literal["spike"]
    base: float = Field(ge=0, le=MAX_RATE)
    peak: float = Field(ge=0, le=MAX_RATE)
    at_s: float = Field(ge=0)
    for_s: float = Field(gt=0)
    duration_s: float = Field(gt=0, le=7 * 86400)

    @model_validator(mode="after")
    def _inside(self) -> Spike:
        if self.at_s + self.for_s > self.duration_s:
            raise ValueError(
                f"the spike ends at {self.at_s + self.for_s:g} s, after duration_s {self.duration_s:g}"
            )
        return self

    def points(self) -> list[tuple[float, float]]:
        a, b = self.at_s, self.at_s + self.for_s
        return [
            (0.0, self.base),
            (a, self.base),
            (a, self.peak),
            (b, self.peak),
            (b, self.base),
            (self.duration_s, self.base),
        ]


class Day(_Shape):
    kind: Literal["day"]
    peak: float = Field(gt=0, le=MAX_RATE, description="level of the busiest hour")
    duration_s: float = Field(
        gt=0, le=7 * 86400, description="the 24 hours compressed into this many seconds"
    )
    profile: tuple[float, ...] = Field(
        default=(), description="24 hourly weights (UTC); empty: built from the personas' rhythm"
    )

    @model_validator(mode="after")
    def _profile(self) -> Day:
        if self.profile and (len(self.profile) != 24 or min(self.profile) < 0):
            raise ValueError("profile must hold 24 non-negative hourly weights")
        return self

    def with_profile(self, profile: np.ndarray) -> Day:
        """Return the shape with its 24 hourly weights set (unless the file gave its own)."""
        return (
            self
            if len(self.profile) == 24
            else self.model_copy(update={"profile": tuple(map(float, profile))})
        )

    def points(self) -> list[tuple[float, float]]:
        if len(self.profile) != 24:
            raise ValueError("a day shape needs its 24-hour profile; call with_profile() first")
        weights = np.asarray(self.profile, dtype=float)
        levels = self.peak * weights / weights.max() if weights.max() > 0 else weights
        hour = self.duration_s / 24.0
        out = [(0.0, float(levels[0]))]
        out += [((h + 0.5) * hour, float(levels[h])) for h in range(24)]
        out.append((self.duration_s, float(levels[23])))
        return out


LoadShape = Annotated[Constant | Ramp | Step | Spike | Day, Field(discriminator="kind")]


def peak_level(shape: _Shape) -> float:
    """Return the shape's highest level (a day shape's is its ``peak``, whatever its profile)."""
    return shape.peak if isinstance(shape, Day) else max(level for _, level in shape.points())


def level_at(shape: _Shape, t: np.ndarray) -> np.ndarray:
    """Return the shape's level (req/s or users) at times ``t`` (seconds from its start)."""
    points = shape.points()
    times = np.array([p[0] for p in points])
    levels = np.array([p[1] for p in points])
    return np.interp(np.asarray(t, dtype=float), times, levels)


def cumulative(shape: _Shape, grid_s: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Return (times, expected arrivals so far) on a fine grid: the integral of the rate."""
    steps = max(2, int(np.ceil(shape.duration / grid_s)) + 1)
    times = np.linspace(0.0, shape.duration, steps)
    rate = level_at(shape, times)
    area = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) * np.diff(times) / 2.0)])
    return times, area


def arrival_times(shape: _Shape, rng: np.random.Generator, share: float = 1.0) -> np.ndarray:
    """Return sorted arrival times (seconds from the start) at ``share`` of the shape's rate.

    Paced arrivals: :func:`paced_times` (no dice). Poisson arrivals: a non-homogeneous Poisson process conditioned on its count: the requested number of
    arrivals (the integral of the rate, rounded) placed as uniform points on the expected count
    and mapped back through the cumulative rate. Gaps and per-second counts vary as Poisson
    arrivals do, while the total is exactly what the shape asks for, so any shortfall in the
    achieved rate is the generator's, not the dice's.
    """
    if shape.arrivals == "paced":
        return paced_times(shape, share)
    times, area = cumulative(shape)
    n = int(round(area[-1] * share))
    marks = np.sort(rng.random(n)) * area[-1]
    return np.interp(marks, area, times)


def paced_times(shape: _Shape, share: float = 1.0, grid_s: float = 0.01) -> np.ndarray:
    """Return the sorted send times of paced users following ``share`` of the shape's rate.

    At each moment ``ceil(level * share * pace_s)`` users are in (the level read on a ``grid_s``
    grid, as Locust's ``LoadTestShape`` sets its user count from the rate); a user sends when it
    joins and every ``pace_s`` after, until it leaves (the last to join leaves first). Users who
    join at one moment send together, every ``pace_s``: bursts, as Locust's ``constant_throughput``
    users do. The plan is deterministic and is also what :func:`requested_per_second` counts.
    """
    pace = shape.pace_s
    steps = max(2, int(np.ceil(shape.duration / grid_s)) + 1)
    edges = np.linspace(0.0, shape.duration, steps)
    # the level inside each grid cell (its middle: a step's two points share one time)
    users = np.ceil(level_at(shape, (edges[:-1] + edges[1:]) / 2.0) * share * pace - 1e-9).astype(np.int64)
    users = np.concatenate([[0], users, [0]])  # nobody before the start or after the end
    at = np.concatenate([[0.0], edges[:-1], [shape.duration]])  # when each cell's count begins
    changes = np.flatnonzero(np.diff(users)) + 1
    joined: list[float] = []  # join times of the users in, in joining order
    sends: list[np.ndarray] = []
    for k in changes:
        t, want = float(at[k]), int(users[k])
        while len(joined) < want:
            joined.append(t)
        while len(joined) > want:
            start = joined.pop()
            count = int(np.ceil((t - start) / pace - 1e-9))
            sends.append(start + pace * np.arange(count))
    return np.sort(np.concatenate(sends)) if sends else np.zeros(0)


def requested_per_second(shape: _Shape, share: float = 1.0) -> np.ndarray:
    """Return the expected arrivals in each whole second of the shape (the last may be partial).

    Paced arrivals: the plan's own sends per second.
    """
    if shape.arrivals == "paced":
        edges = np.arange(0.0, np.ceil(shape.duration) + 1.0)
        return np.histogram(paced_times(shape, share), bins=edges)[0].astype(float)
    times, area = cumulative(shape)
    edges = np.arange(0.0, np.ceil(shape.duration) + 1.0)
    at = np.interp(np.minimum(edges, shape.duration), times, area) * share
    return np.diff(at)


def day_profile(rhythms: list[Rhythm], day: dt.date) -> np.ndarray:
    """Return 24 hourly weights (UTC hours) of expected users in session on ``day``.

    Each user counts with the probability of a session that day (sessions per week over its
    weekdays), spread uniformly over its local start window and the session length after it.
    """
    weights = np.zeros(24)
    for rhythm in rhythms:
        if WEEKDAYS[day.weekday()] not in rhythm.active_days:
            continue
        p = min(1.0, rhythm.sessions_per_week / len(rhythm.active_days))
        offset = dt.datetime.combine(day, dt.time(12), tzinfo=zoneinfo.ZoneInfo(rhythm.time_zone)).utcoffset()
        shift = offset.total_seconds() / 3600.0 if offset else 0.0
        lo, hi = rhythm.start_hours
        length = sum(rhythm.session_minutes) / 2.0 / 60.0
        # in session at local hour h if it started within (h - length, h]: overlap with the start window
        for h in range(24):
            start_from, start_to = max(lo, h - length), min(hi, h + 1.0)
            covered = max(0.0, start_to - start_from) / max(hi - lo, 1e-9)
            weights[int(np.floor(h - shift)) % 24] += p * min(1.0, covered)
    return weights
