"""The calendar of a bar business: a yearly season, US holidays and the weekday rhythm, as day weights.

``day_weights`` returns one relative weight per day (epoch days ``first .. first + n - 1``): the
season (monthly weights placed mid-month and interpolated linearly, so there are no steps at month
boundaries), times the weekday weight, times a holiday's multiplier on its date. Tap events are spread
over each device's days in proportion to these weights; app sessions follow a damped copy.

Holidays are named rules (``HOLIDAY_RULES``), so a configuration can change their multipliers or
drop them, but not invent dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np

EPOCH = dt.date(1970, 1, 1)


def _fixed(month: int, day: int) -> Callable[[int], dt.date]:
    return lambda year: dt.date(year, month, day)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """Return the ``n``-th (1-based) ``weekday`` (Monday 0) of ``month``."""
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def super_bowl_sunday(year: int) -> dt.date:
    """The first Sunday of February until the 2021 season, the second Sunday since (17-game seasons)."""
    return _nth_weekday(year, 2, 6, 1 if year <= 2021 else 2)


def thanksgiving(year: int) -> dt.date:
    """The fourth Thursday of November."""
    return _nth_weekday(year, 11, 3, 4)


HOLIDAY_RULES: dict[str, Callable[[int], dt.date]] = {
    "new_years_eve": _fixed(12, 31),
    "super_bowl_sunday": super_bowl_sunday,
    "st_patricks_day": _fixed(3, 17),
    "cinco_de_mayo": _fixed(5, 5),
    "independence_day": _fixed(7, 4),
    "halloween": _fixed(10, 31),
    "thanksgiving_eve": lambda year: thanksgiving(year) - dt.timedelta(days=1),
    "thanksgiving_day": thanksgiving,
    "christmas_day": _fixed(12, 25),
}


def holiday_dates(name: str, first: dt.date, last: dt.date) -> list[dt.date]:
    """Return the dates of holiday ``name`` between ``first`` and ``last`` (inclusive)."""
    rule = HOLIDAY_RULES[name]
    dates = [rule(year) for year in range(first.year, last.year + 1)]
    return [d for d in dates if first <= d <= last]


def epoch_day(day: dt.date) -> int:
    return (day - EPOCH).days


def season_curve(month_weights: tuple[float, ...], days: np.ndarray) -> np.ndarray:
    """Return the seasonal weight of each epoch day: monthly weights at mid-month, linear in between."""
    dates = days.astype("datetime64[D]")
    years = dates.astype("datetime64[Y]")
    day_of_year = (dates - years).astype(np.int64)
    length = ((years + 1).astype("datetime64[D]") - years.astype("datetime64[D]")).astype(np.int64)
    position = (day_of_year + 0.5) / length * 12 - 0.5  # 0 = mid-January, 11 = mid-December
    w = np.asarray(month_weights, dtype=np.float64)
    low = np.floor(position).astype(np.int64)
    frac = position - low
    return w[low % 12] * (1 - frac) + w[(low + 1) % 12] * frac


def day_weights(
    first: int,
    n: int,
    month_weights: tuple[float, ...],
    weekday_weights: tuple[float, ...],
    holidays: dict[str, float],
    strength: float = 1.0,
) -> np.ndarray:
    """Return the weight of each epoch day ``first .. first + n - 1``: season x weekday x holiday.

    ``strength`` in [0, 1] damps every factor towards 1 (0 gives a flat calendar)."""
    days = np.arange(first, first + n, dtype=np.int64)
    season = season_curve(month_weights, days)
    weekday = np.asarray(weekday_weights, dtype=np.float64)[(days + 3) % 7]  # 1970-01-01 was a Thursday
    holiday = np.ones(n)
    start = EPOCH + dt.timedelta(days=first)
    end = EPOCH + dt.timedelta(days=first + n - 1)
    for name, multiplier in holidays.items():
        for d in holiday_dates(name, start, end):
            holiday[epoch_day(d) - first] *= multiplier
    season, weekday, holiday = (season / season.mean(), weekday / weekday.mean(), holiday)
    weights = season * weekday * holiday
    return 1.0 + strength * (weights - 1.0) if strength != 1.0 else weights
