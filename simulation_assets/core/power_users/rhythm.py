"""When a power user comes and how long they stay: active days, session start, length and think times.

A persona's ``usage_frequency`` (the scenario's words: ``daily``, ``weekly``, ``3x per week``,
``weekly, evenings and weekends``) becomes a number of sessions per ISO week on allowed weekdays
and a window of local start hours; ``session_minutes`` and ``analyses_per_session`` are ranges
drawn per session. Every draw comes from ``core.rng`` streams keyed by (seed, persona, day or
week), so a day re-run alone gets the same session as in a backfill.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulation_assets.core.rng import stable_uuid, stream

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Local start windows in hours (start inclusive, end exclusive).
WORKING_HOURS = (8.0, 18.0)
EVENING_HOURS = (19.0, 22.0)  # seed: "off-peak hours usage (7pm-10pm)"
FREQUENCY_FORMS = "daily, weekly, 'N x per week', optionally with 'evenings' and/or 'weekends'"
_TIMES_A_WEEK = re.compile(r"(\d+(?:\.\d+)?)\s*(?:x|times?)\s*(?:per|a|/)\s*week")


class RhythmSpec(BaseModel):
    """The rhythm fields of a persona profile (all optional beyond the scenario's three)."""

    model_config = ConfigDict(extra="forbid")

    usage_frequency: str = "daily"
    session_minutes: tuple[float, float] = (20.0, 45.0)
    analyses_per_session: tuple[int, int] = (2, 5)
    time_zone: str = "America/New_York"
    active_days: tuple[str, ...] | None = Field(default=None, description="weekdays a session may fall on")
    start_hours: tuple[float, float] | None = Field(default=None, description="local start window [from, to)")
    start_hour_shift: float = Field(default=0.0, ge=-12, le=12, description="hours added to the start window")

    @field_validator("session_minutes", "analyses_per_session", "start_hours", mode="before")
    @classmethod
    def _range(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (value, value)
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as America/Chicago"
            ) from None
        return value

    @field_validator("active_days")
    @classmethod
    def _days(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        days = tuple(d.strip().lower()[:3] for d in value)
        bad = [d for d in days if d not in WEEKDAYS]
        if bad or not days:
            raise ValueError(f"weekdays must be among {', '.join(WEEKDAYS)}, got {list(value)!r}")
        return tuple(dict.fromkeys(days))

    @model_validator(mode="after")
    def _ordered(self) -> RhythmSpec:
        lo, hi = self.session_minutes
        if not 0 < lo <= hi <= 24 * 60:
            raise ValueError(
                f"session_minutes must be [low, high] with 0 < low <= high <= 1440, got {[lo, hi]}"
            )
        a, b = self.analyses_per_session
        if not 0 <= a <= b:
            raise ValueError(f"analyses_per_session must be [low, high] with 0 <= low <= high, got {[a, b]}")
        if self.start_hours is not None and not 0 <= self.start_hours[0] <= self.start_hours[1] <= 24:
            raise ValueError(f"start_hours must lie within [0, 24], got {list(self.start_hours)}")
        parse_frequency(self.usage_frequency)
        return self


@dataclass(frozen=True)
class Rhythm:
    """A persona's resolved rhythm: sessions per ISO week on which weekdays, starting in which local hours."""

    sessions_per_week: float
    active_days: tuple[str, ...]
    start_hours: tuple[float, float]
    session_minutes: tuple[float, float]
    analyses_per_session: tuple[int, int]
    time_zone: str


def parse_frequency(text: str) -> tuple[float, tuple[str, ...], tuple[float, float]]:
    """Return (sessions per week, allowed weekdays, local start hours) for a ``usage_frequency`` phrase.

    Raises ValueError listing the forms understood.
    """
    words = text.strip().lower()
    evenings, weekends = "evening" in words, "weekend" in words
    if "daily" in words or "every day" in words:
        per_week = 7.0
    elif match := _TIMES_A_WEEK.search(words):
        per_week = float(match.group(1))
    elif "weekly" in words or "once a week" in words:
        per_week = 1.0
    else:
        raise ValueError(f"usage_frequency {text!r} not understood; use {FREQUENCY_FORMS}")
    if not 0 < per_week <= 7:
        raise ValueError(f"usage_frequency {text!r}: sessions per week must be in (0, 7]")
    if weekends and evenings:
        days: tuple[str, ...] = ("fri", "sat", "sun")  # Friday evening starts the weekend
    elif weekends:
        days = ("sat", "sun")
    elif per_week < 7 and not evenings:
        days = WEEKDAYS[:5]  # a professional's sessions fall on working days
    else:
        days = WEEKDAYS
    return per_week, days, EVENING_HOURS if evenings else WORKING_HOURS


def resolve(spec: RhythmSpec) -> Rhythm:
    """Return the rhythm of ``spec``: the frequency phrase's defaults, overridden by explicit fields."""
    per_week, days, hours = parse_frequency(spec.usage_frequency)
    days = spec.active_days or days
    lo, hi = spec.start_hours or hours
    shift = min(max(spec.start_hour_shift, -lo), 24.0 - hi)  # the window stays within the local day
    return Rhythm(
        sessions_per_week=min(per_week, float(len(days))),
        active_days=days,
        start_hours=(lo + shift, hi + shift),
        session_minutes=spec.session_minutes,
        analyses_per_session=spec.analyses_per_session,
        time_zone=spec.time_zone,
    )


def active_weekdays(rhythm: Rhythm, seed: int, user: str, year: int, week: int) -> list[int]:
    """Return the ISO weekdays (1 = Monday) of ``user``'s sessions in ISO week ``year``-W``week``.

    A fractional sessions-per-week adds one more session with that probability.
    """
    rng = stream(seed, "power_users", "rhythm", user, year, week)
    whole = math.floor(rhythm.sessions_per_week)
    count = min(whole + int(rng.random() < rhythm.sessions_per_week - whole), len(rhythm.active_days))
    allowed = np.array([WEEKDAYS.index(d) + 1 for d in rhythm.active_days])
    return sorted(int(d) for d in rng.choice(allowed, size=count, replace=False))


def is_active(rhythm: Rhythm, seed: int, user: str, day: dt.date) -> bool:
    """Return whether ``user`` has a session on ``day`` (their local calendar day)."""
    year, week, weekday = day.isocalendar()
    return weekday in active_weekdays(rhythm, seed, user, year, week)


@dataclass(frozen=True)
class SessionPlan:
    """One session: when it starts (UTC and local), how long it lasts and how many analyses it holds."""

    session_id: str
    start_utc: dt.datetime
    start_local: dt.datetime
    minutes: float
    analyses: int


def session_id(seed: int, user: str, day: str) -> str:
    """Return the session's UUID, stable for (seed, user, day)."""
    return str(stable_uuid(seed, "power_users", "session", user, day))


def plan_session_time(rhythm: Rhythm, seed: int, user: str, day: dt.date) -> SessionPlan:
    """Return the session of ``user`` on local day ``day``: start in the rhythm's hours, length and analyses."""
    rng = stream(seed, "power_users", "session", user, day.isoformat())
    lo, hi = rhythm.start_hours
    hour = lo + rng.random() * (hi - lo)
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=zoneinfo.ZoneInfo(rhythm.time_zone))
    local = midnight + dt.timedelta(seconds=round(hour * 3600))
    minutes = rhythm.session_minutes[0] + rng.random() * (
        rhythm.session_minutes[1] - rhythm.session_minutes[0]
    )
    analyses = int(rng.integers(rhythm.analyses_per_session[0], rhythm.analyses_per_session[1] + 1))
    return SessionPlan(
        session_id=session_id(seed, user, day.isoformat()),
        start_utc=local.astimezone(dt.UTC),
        start_local=local,
        minutes=float(minutes),
        analyses=analyses,
    )


class ThinkTime(BaseModel):
    """A think time before an action: log-normal with this median (seconds) and shape."""

    model_config = ConfigDict(extra="forbid")

    median_s: float = Field(gt=0, le=3600)
    sigma: float = Field(default=0.6, ge=0, le=3)


def default_think_times() -> dict[str, ThinkTime]:
    """Return think times per action type; reading an analysis takes longer than opening the pricing page."""
    return {
        "default": ThinkTime(median_s=30),
        "login": ThinkTime(median_s=8, sigma=0.4),
        "analyze_property": ThinkTime(median_s=120),
        "batch_analyze_properties": ThinkTime(median_s=90),
        "use_calculator": ThinkTime(median_s=75),
        "export_analyses": ThinkTime(median_s=40),
        "view_history": ThinkTime(median_s=45),
        "support_chat": ThinkTime(median_s=60),
        "view_pricing": ThinkTime(median_s=50),
        "checkout": ThinkTime(median_s=90),
    }


def think_seconds(
    action_types: list[str],
    table: dict[str, ThinkTime],
    session_seconds: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return the simulated think time (seconds) before each action of a session.

    ``action_types[i]`` is the type of action ``i``; each pause is drawn from its type's log-normal
    (none before the first action), then all are scaled so they add up to ``session_seconds``: the
    per-action draws set the proportions, the persona's session length sets the total.
    """
    n = len(action_types)
    if n == 0:
        return np.zeros(0)
    default = table.get("default", ThinkTime(median_s=30))
    medians = np.array([(table.get(t) or default).median_s for t in action_types])
    sigmas = np.array([(table.get(t) or default).sigma for t in action_types])
    raw = medians * np.exp(sigmas * rng.standard_normal(n))
    raw[0] = 0.0  # the session starts with its first action
    total = raw.sum()
    return raw * (session_seconds / total) if total > 0 else raw


def parse_pace(text: str) -> float:
    """Return the speed of think times for ``--pace``: ``simulated`` 0 (not slept), ``real`` 1, ``x60``/``60`` 60.

    Raises ValueError naming the valid forms.
    """
    words = str(text).strip().lower()
    if words in ("simulated", "sim", "fast", ""):
        return 0.0
    if words in ("real", "realtime", "real-time"):
        return 1.0
    try:
        speed = float(words.removeprefix("x"))
    except ValueError:
        speed = -1.0
    if not 0 < speed <= 1_000_000:
        raise ValueError(f"pace must be 'simulated', 'real' or a speed-up such as x60, got {text!r}")
    return speed


def expected_active_share(rhythm: Rhythm, day: dt.date) -> float:
    """Return the probability that a user with ``rhythm`` has a session on ``day``."""
    if WEEKDAYS[day.weekday()] not in rhythm.active_days:
        return 0.0
    return min(1.0, rhythm.sessions_per_week / len(rhythm.active_days))


def rhythm_columns(rhythm: Rhythm) -> tuple:
    """Return the rhythm as the users table stores it (sessions/week, days, start window, ranges)."""
    return (
        rhythm.sessions_per_week,
        ",".join(rhythm.active_days),
        rhythm.start_hours[0],
        rhythm.start_hours[1],
        rhythm.session_minutes[0],
        rhythm.session_minutes[1],
        rhythm.analyses_per_session[0],
        rhythm.analyses_per_session[1],
    )


def rhythm_from_row(row: dict) -> Rhythm:
    """Return the rhythm stored in a users-table row (see ``rhythm_columns``)."""
    return Rhythm(
        sessions_per_week=float(row["sessions_per_week"]),
        active_days=tuple(str(row["rhythm_days"]).split(",")),
        start_hours=(float(row["start_hour_from"]), float(row["start_hour_to"])),
        session_minutes=(float(row["session_minutes_min"]), float(row["session_minutes_max"])),
        analyses_per_session=(int(row["analyses_min"]), int(row["analyses_max"])),
        time_zone=str(row["time_zone"]),
    )
