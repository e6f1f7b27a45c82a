"""Look-alike users and their events from a twin spec, one UTC day at a time, vectorized and deterministic.

Users (one seeded stream for the whole population, so every day sees the same
people): arrival kind and first day from the arrival model, class from the
class shares of that kind, lifetime from the class's survival curve (churn
hazard raised to the spec's ``churn_multiplier``), a personal daily return chance
from the class's Beta, per-user constant properties, and whether they arrive
anonymous and are identified on their first day.

A day (its own seeded stream, so a day generated alone equals the same day in
a backfill): who is active (first and last day of life always; other alive
days with the user's chance times the weekday multiplier), how many sessions
each has, when they start (first from the class's hour-of-week profile, then a
within-day gap after the previous session ends), the events of every session
(the class's second-order chain, stepped for all sessions at once) with
inter-event times from the transition sketches, ``$identify`` where the spec
places it, then properties.

There is no loop over users, sessions or events: loops run over chain steps,
session ranks within a day, and property keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np
import polars as pl
import pyarrow as pa
from scipy.special import ndtr, ndtri

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.hogflix.ids import uuid7s
from simulation_assets.core.twin.activity import (
    DAY_SESSION_BUCKETS,
    GAP_BLOCKS,
    GAP_LEFT,
    LIFE_BANDS,
    NEIGHBOURS,
    activity_bands,
    clock_position,
    clock_time,
    loyalty_bands,
    streak_compensation,
)
from simulation_assets.core.twin.arrivals import day_blocks, with_calendar
from simulation_assets.core.twin.compiled import MAX_SESSION_EVENTS, CompiledSpec
from simulation_assets.core.twin.config import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE
from simulation_assets.core.twin.features import weekday
from simulation_assets.core.twin.flows import BUCKETS, ELAPSED_BUCKETS, elapsed_bucket, time_bucket
from simulation_assets.core.twin.groups import TwinGroups, make_groups, set_columns
from simulation_assets.core.twin.identity import IDENTIFY
from simulation_assets.core.twin.sketch import draw_from_cdf, sample_sketch, sketch_cdf
from simulation_assets.core.twin.spec import KINDS, START, TwinSpec

EPOCH = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    return (day - EPOCH).days


# A weekday below this share of its class's average day is a quiet one: a life that ends on it was last
# seen on a busier day before (a weekday multiplier's sampling noise is a few per cent; a B2B tool's
# weekend is a tenth of its weekdays).
QUIET_WEEKDAY = 0.8


@dataclass(frozen=True)
class Population:
    """Every twin user, as arrays indexed by user number."""

    cls: np.ndarray  # class
    kind: np.ndarray  # 0 new, 1 backlog
    first: np.ndarray  # first day, as generated-day offset
    lifetime: np.ndarray  # days from first day to leaving (may run past the generated days)
    last_visit: np.ndarray  # age of the last sure visit: the lifetime or a day before it
    rate: np.ndarray  # chance of coming back on an alive day
    identified: np.ndarray  # arrives anonymous, identified on the first day
    depth_u: np.ndarray  # the uniform draw that picks the user's session-depth group (see Generator.depth)
    constant_codes: np.ndarray  # (users, constant keys): index into each key's values
    pace_u: np.ndarray  # the uniform draw of the user's own pace within their band (see Generator.user_pace)
    streak: np.ndarray  # the user's own log-odds shift of a visit the day after a visit


class Generator(CompiledSpec):
    """Compiles a spec into arrays once; then :meth:`day` returns one day's events."""

    def __init__(self, spec: TwinSpec) -> None:
        self.spec = spec
        doc = spec.document
        self.gen = doc.generation
        self.seed = self.gen.seed
        self.start_day = day_number(self.gen.start)
        self.n_classes = len(doc.classes)
        # A dropped event is still generated, then left out of the output: the twin behaves as before and only
        # stops recording it (its sessions keep their length in time and lose its rows).
        self.dropped = sorted(set(self.gen.drop_events))
        self.names = list(spec.events)
        self._compile_flows(spec.tables["transitions"], spec.tables["inter_event_times"])
        self._compile_activity()
        self._compile_properties()

    # ---- population -------------------------------------------------------------------------------------------------
    def _classes(self, g: np.random.Generator, kind: np.ndarray, first: np.ndarray) -> np.ndarray:
        """Draw each user's class: from their arrival kind's mix in the window's week they are first seen in
        (users first seen beyond the window, and every user of an older spec, from their kind's whole mix)."""
        classes = self.spec.document.classes
        shares = np.array([[cd.share_new, cd.share_backlog] for cd in classes])
        cls = np.zeros(len(kind), np.int64)
        window_days = self.arrival.window_days
        block, _ = day_blocks(window_days)
        for kd, name in enumerate(KINDS):
            m = kind == kd
            by_block = np.array([cd.share_by_block.get(name, []) for cd in classes]).T  # blocks x classes
            inside = m & (first < window_days) if by_block.size else np.zeros(len(kind), bool)
            if inside.any():
                cdf = np.cumsum(by_block, axis=1) / np.maximum(by_block.sum(axis=1, keepdims=True), 1e-12)
                cls[inside] = _draw_rows(cdf[block[first[inside]]], g.random(int(inside.sum())))
            rest = m & ~inside
            cdf = np.cumsum(shares[:, kd]) / max(shares[:, kd].sum(), 1e-12)
            cls[rest] = draw_from_cdf(cdf, g.random(int(rest.sum())))
        return cls

    @cached_property
    def population(self) -> Population:
        """Return every user of the twin (the same for every day: one stream keyed by the seed and size)."""
        n, days = self.gen.users, self.gen.days
        g = rng_mod.stream(self.seed, "twin", "population", n)
        # Expected new and backlog users first seen on each generated day (day 0 is the window's day 0).
        new_mean, backlog_mean = self.arrival.expected(np.arange(days), int(weekday(self.start_day)))
        if self.calendar_arrivals:  # a sale or a day in the news brings its own newcomers
            new_mean = with_calendar(new_mean, self.start_day + np.arange(days), self.calendar_arrivals)
        p_backlog = backlog_mean.sum() / max(backlog_mean.sum() + new_mean.sum(), 1e-12)
        kind = (g.random(n) < p_backlog).astype(np.int8)
        first = np.where(
            kind == 1,
            draw_from_cdf(np.cumsum(backlog_mean) / max(backlog_mean.sum(), 1e-12), g.random(n)),
            draw_from_cdf(np.cumsum(new_mean) / max(new_mean.sum(), 1e-12), g.random(n)),
        ).astype(np.int64)
        cls = self._classes(g, kind, first)
        u_life, u_tail = g.random(n), g.random(n)
        lifetime = np.zeros(n, np.int64)
        for (c, kd), surv in self.survival.items():
            m = (cls == c) & (kind == kd)
            if not m.any():
                continue
            # Lifetime L with P(L >= t) = S(t): the largest t with S(t) >= u; past the table, geometric.
            u = u_life[m]
            within = np.searchsorted(-surv, -u, side="right") - 1
            lifetime[m] = within
            # Survivors past the table's last age live on with the tail hazard: a geometric extra.
            beyond = (within >= len(surv) - 1) & (surv[-1] > 0)
            h = float(self.tail[c, kd])
            if h <= 0:
                extra = np.full(int(m.sum()), 10 * 365)
            elif h >= 1:
                extra = np.zeros(int(m.sum()), np.int64)
            else:
                extra = np.floor(np.log(np.maximum(u_tail[m], 1e-300)) / np.log1p(-h)).astype(np.int64)
            lifetime[m] += np.where(beyond, extra, 0)
        last_visit = self._last_visits(cls, first, lifetime)
        band = np.searchsorted(LIFE_BANDS, np.minimum(lifetime, days - 1 - first), side="right") - 1
        alpha, beta = self.beta_life[cls, kind, band, 0], self.beta_life[cls, kind, band, 1]
        rate = g.beta(np.maximum(alpha, 1e-6), np.maximum(beta, 1e-6))
        identified = g.random(n) < self.ident_share[cls, kind]
        # The users' constant properties from their own stream: what the spec holds of them (a key more or
        # less) does not move anyone's activity.
        codes = self.user_keys.draw(rng_mod.stream(self.seed, "twin", "constants", n), n)
        # A class's own combinations first, from their own stream: the population's other draws stay as they were.
        gc = rng_mod.stream(self.seed, "twin", "class-constants", n)
        for c, (combo_codes, cdf, covered) in self.class_draws.items():
            mine = np.flatnonzero(cls == c)
            take = mine[gc.random(mine.size) < covered]
            codes[take] = combo_codes[draw_from_cdf(cdf, gc.random(take.size))]
        depth_u = g.random(n)
        pace_u = g.random(n)
        streak = sample_sketch(self.streak_q, cls, g.random(n))
        return Population(cls=cls.astype(np.int16), kind=kind, first=first, lifetime=lifetime, last_visit=last_visit,
                          rate=rate, identified=identified, depth_u=depth_u, constant_codes=codes, pace_u=pace_u,
                          streak=streak)  # fmt: skip

    def _last_visits(self, cls: np.ndarray, first: np.ndarray, lifetime: np.ndarray) -> np.ndarray:
        """Return each life's last sure visit: its last day, or the latest day before it the user comes on.

        A life's last day is always active, but not on any weekday: a business tool's trial that ends on a
        Saturday was last used on the Friday. Going back from the last day, a day is taken with its weekday's
        multiplier over ``QUIET_WEEKDAY`` times the class's average, an ordinary day always (its own stream;
        so at most six days back, and a class without quiet weekdays keeps every last day). The survival
        curves are calibrated on the visits this gives.
        """
        n = len(cls)
        g = rng_mod.stream(self.seed, "twin", "last-visit", n)
        average = np.maximum(self.weekday_mult.mean(axis=1, keepdims=True), 1e-12)
        taking = np.minimum(self.weekday_mult / (QUIET_WEEKDAY * average), 1.0)
        if (taking >= 1.0).all():
            return lifetime.copy()
        back = np.zeros(n, np.int64)
        open_ = np.ones(n, bool)
        for k in range(7):
            take = open_ & (g.random(n) < taking[cls, weekday(self.start_day + first + lifetime - k)])
            back[take] = k
            open_ &= ~take
        return np.maximum(lifetime - back, 0)

    @cached_property
    def active_by_day(self) -> list[np.ndarray]:
        """Return, per generated day, the users active that day (the whole run's activity, drawn once).

        A day is active with the user's rate times the class's weekday and age-week multipliers, its
        odds then multiplied by the class's factor for the days since the last visit (the day after a
        visit also by the user's own streak factor, its log times the class's ``streak_scale``, and with
        ``streak_keeps_rate`` every day's odds by the user's factor that keeps their share of active days as it
        is without it; on the first days of age by the class's factor
        of that day; in each week of the run by the user's factor of that week, exp(s z - s^2 / 2) with s the
        class's ``week_spread`` and z drawn per user and week from a stream of its own); the first and the
        last sure visit of a life (see :meth:`_last_visits`) are always active.
        """
        pop = self.population
        g = rng_mod.stream(self.seed, "twin", "activity", self.gen.users)
        n = len(pop.cls)
        since = np.zeros(n, np.int64)  # days since the last visit; kept up to date for the users alive only
        top = self.by_recency.shape[1] - 1
        own_streak = pop.streak * self.streak_scale[pop.cls]
        streak = np.exp(own_streak)
        # A streak that keeps the user's rate: their odds on every day move to make up for it (see streak_compensation).
        keeps = self.streak_keeps_rate[pop.cls]
        keep_rate = np.zeros(n)
        if keeps.any():
            keep_rate[keeps] = streak_compensation(
                pop.rate[keeps], own_streak[keeps], self.by_recency[pop.cls[keeps]]
            )
        keep_rate = np.exp(keep_rate)
        spread = self.week_spread[pop.cls]
        weeks = rng_mod.stream(self.seed, "twin", "week-spread", self.gen.users) if spread.any() else None
        week = np.ones(n)
        own = self.own_weekdays
        out = []
        # One vectorized step per day of the run, over the users alive that day.
        for d in range(self.gen.days):
            draw = g.random(n)  # every user's draw, alive or not: the stream stays the same whoever is alive
            if weeks is not None and d % 7 == 0:  # a user's good and bad weeks (every user's draw, as above)
                week = np.exp(spread * weeks.standard_normal(n) - spread**2 / 2)
            who = np.flatnonzero((pop.first <= d) & (d - pop.first <= pop.lifetime))
            cls, age, was = pop.cls[who], d - pop.first[who], since[who]
            by_age = self.by_age[cls, np.clip(age // 7, 0, self.by_age.shape[1] - 1)]
            weekday_mult = self.weekday_mult[cls, int(weekday(self.start_day + d))]
            base = pop.rate[who] * weekday_mult * by_age
            if own is not None:  # the user's own weekdays
                base = base * own[who, int(weekday(self.start_day + d))]
            base = np.clip(base, 1e-6, 1 - 1e-6)
            odds = base / (1 - base) * self.by_recency[cls, np.clip(was + 1, 1, top)]
            odds = np.where(was == 0, odds * streak[who], odds) * week[who] * keep_rate[who]
            if self.by_age_day.shape[2]:  # the first days of age have their own factors
                early = age < self.by_age_day.shape[2]
                factor = self.by_age_day[cls, pop.kind[who], np.clip(age, 0, self.by_age_day.shape[2] - 1)]
                odds = np.where(early, odds * factor, odds)
            factor = self.calendar_activity.get(self.start_day + d)
            if factor is not None:  # a holiday keeps users away, a sale brings them back
                odds = odds * factor
            chance = odds / (1 + odds)
            # A life's first day (whatever ``since`` holds then) and its last sure visit are always active.
            state = (age == 0) | (age == pop.last_visit[who]) | (draw[who] < chance)
            since[who] = np.where(state, 0, was + 1)
            out.append(who[state])
        return out

    @cached_property
    def own_weekdays(self) -> np.ndarray | None:
        """Return each user's factor on each weekday (users, 7) from a weekday mix of their own, or None.

        The mix is drawn (its own stream) from a Dirichlet with the class's mix (its weekday multipliers over
        their sum) as mean and concentration 1 / loyalty - 1, the loyalty that of the user's band of their
        class by return chance; the factor is the user's share of a weekday over the class's, so a class's
        weekdays stay its own on average.
        """
        if not (self.weekday_loyalty > 0).any():
            return None
        pop = self.population
        band = loyalty_bands(pop.rate, pop.cls, self.weekday_loyalty.shape[1])
        loyalty = self.weekday_loyalty[pop.cls, band]
        mix = (self.weekday_mult / np.maximum(self.weekday_mult.sum(axis=1, keepdims=True), 1e-12))[pop.cls]
        shape = np.maximum((1.0 / np.maximum(loyalty, 1e-9) - 1.0)[:, None] * mix, 1e-3)
        draw = rng_mod.stream(self.seed, "twin", "own-weekdays", len(pop.cls)).gamma(np.minimum(shape, 1e9))
        own = draw / np.maximum(draw.sum(axis=1, keepdims=True), 1e-300) / np.maximum(mix, 1e-12)
        return np.where(loyalty[:, None] > 0, own, 1.0)

    @cached_property
    def active_days(self) -> np.ndarray:
        """Return the days each user is active in the run."""
        return np.bincount(np.concatenate(self.active_by_day), minlength=len(self.population.cls))

    @cached_property
    def sessions_trait(self) -> np.ndarray:
        """Return each user's standard normal leaning toward days of several sessions (its own stream).

        A day's count is the class's distribution at Phi(sqrt(rho) z + sqrt(1 - rho) z_day): each class's
        days keep its distribution, and a user's days agree as much as the export's users' do.
        """
        return rng_mod.stream(self.seed, "twin", "sessions-trait", self.gen.users).standard_normal(
            self.gen.users
        )

    @cached_property
    def session_band(self) -> np.ndarray:
        """Return each user's band for sessions per day: where their active days in the run fall in their class."""
        pop = self.population
        if self.spd_band_cuts is None:
            return np.zeros(len(pop.cls), np.int64)
        return activity_bands(self.active_days.astype(np.float64), pop.cls, self.spd_band_cuts)

    @cached_property
    def user_pace(self) -> np.ndarray:
        """Return each user's own log-time pace, drawn from the sketch of their band of active days.

        Banded by the days the user turns out active in the run, ranked among all users (as the fit
        bands the export's users): a shop's regulars read slower than its one-time visitors.
        """
        pop = self.population
        band = np.zeros(len(pop.cls), np.int64)
        if self.pace_band_cuts:
            band = activity_bands(self.active_days.astype(np.float64), band, self.pace_band_cuts)
        return sample_sketch(self.user_pace_q, band, pop.pace_u)

    @cached_property
    def block_active_days(self) -> np.ndarray:
        """Return the days each user is active in the block of the run that holds their first day.

        The run is cut into blocks as long as the export's window (the last one ends with the run): the
        export's users were banded by their active days in a window of that length, so a twin user is too.
        Counted over a run twice the window's length, the users active on 31+ of the window's 63 days
        were ranked below users who came on fewer days for twice as long.
        """
        pop = self.population
        span = max(int(self.arrival.window_days), 1)
        start = np.minimum((pop.first // span) * span, max(self.gen.days - span, 0))
        counts = np.zeros(len(pop.cls), np.int64)
        for d, who in enumerate(self.active_by_day):
            counts[who[(start[who] <= d) & (d < start[who] + span)]] += 1
        return counts

    @cached_property
    def depth(self) -> np.ndarray:
        """Return each user's session-depth group, drawn from their class's shares for their activity band.

        The band is where the days the user is active in their block of the run fall among their class's
        users (as the fit bands the export's users by their active days in the window). Drawn from the
        activity the user gets rather than the activity their return chance promises, the busiest users are
        the ones with the busiest band's depth: banded by expected days, a third of the twin's users active on
        32+ of HogFlix's 63 days had the shallow sessions of a quieter band (HogFlix's have none).
        """
        pop = self.population
        band = activity_bands(self.block_active_days.astype(np.float64), pop.cls, self.depth_band_cuts)
        return _draw_rows(self.depth_band_cdf[pop.cls, band], pop.depth_u)

    @cached_property
    def end_odds(self) -> np.ndarray:
        """Return each user's factor of their sessions' end odds: their (session group, activity band)'s.

        The band is the one their session group was drawn for (see :attr:`depth`).
        """
        pop = self.population
        band = activity_bands(self.block_active_days.astype(np.float64), pop.cls, self.depth_band_cuts)
        odds = self.activity_odds
        return np.where(band < odds.shape[1], odds[self.depth, np.minimum(band, odds.shape[1] - 1)], 1.0)

    # ---- one day ----------------------------------------------------------------------------------------------------
    def day(self, day: dt.date) -> pl.DataFrame:
        """Return the events of the sessions that start on ``day`` (UTC), ordered by user, session and time."""
        offset = day_number(day) - self.start_day
        if offset < 0 or offset >= self.gen.days:
            raise ValueError(f"{day} is outside the twin's days ({self.gen.start} + {self.gen.days} days)")
        pop = self.population
        users = self.active_by_day[offset]
        g = rng_mod.stream(self.seed, "twin", "day", day.isoformat())
        wd = int(weekday(day_number(day)))
        if users.size == 0:
            return empty_frame(self)
        cls = pop.cls[users].astype(np.int64)
        u_sess = g.random(users.size)
        if self.spd_persistence.any():  # the user's own leaning toward days of one session or several
            rho = self.spd_persistence[cls]
            tied = ndtr(np.sqrt(rho) * self.sessions_trait[users] + np.sqrt(1 - rho) * ndtri(u_sess))
            u_sess = np.where(rho > 0, tied, u_sess)
        spd_cdf = (
            self.spd_cdf[cls]
            if self.spd_band_cdf is None
            else self.spd_band_cdf[cls, self.session_band[users]]
        )
        n_sess = np.maximum(_draw_rows(spd_cdf, u_sess), 1)
        owner = np.repeat(np.arange(users.size), n_sess)
        rank = np.arange(owner.size) - np.repeat(np.cumsum(n_sess) - n_sess, n_sess)
        s_user = users[owner]
        s_cls = cls[owner]
        first = (rank == 0) & (offset == pop.first[s_user])  # the user's first session
        codes, e_sess, gaps_s = self._flows(
            s_cls, self.depth[s_user], self.user_pace[s_user], self.end_odds[s_user], first, g
        )
        # Session starts: the first from the hour profile; the others a day gap after the previous one ends.
        day_bucket = np.minimum(n_sess, DAY_SESSION_BUCKETS)[owner] - 1
        hour = _draw_rows(
            self._first_hour_cdf(offset, wd, users, cls, owner, day_bucket), g.random(owner.size)
        )
        start_ms = (
            day_number(day) * MS_PER_DAY + hour * MS_PER_HOUR + g.random(owner.size) * MS_PER_HOUR
        ).astype(np.int64)
        offsets_ms = _segment_cumsum(gaps_s * 1000.0, e_sess).astype(np.int64)
        duration = np.zeros(owner.size, np.int64)
        np.maximum.at(duration, e_sess, offsets_ms)
        if (self.gap_share_q is not None or self.gap_q is not None) and rank.max() > 0:
            u_gap = g.random(owner.size)
            day_start_ms = day_number(day) * MS_PER_DAY
            for r in range(1, int(rank.max()) + 1):
                idx = np.flatnonzero(rank == r)
                prev_end = start_ms[idx - 1] + duration[idx - 1]
                after = n_sess[owner[idx]] - r - 1  # the day's sessions after this one
                start_ms[idx] = self._later_start(s_cls[idx], after, prev_end, day_start_ms, u_gap[idx])
        t_ms = start_ms[e_sess] + offsets_ms
        return self._frame(day, pop, users, owner, s_user, s_cls, rank, start_ms, codes, e_sess, t_ms, g)

    def _first_hour_cdf(self, offset: int, wd: int, users: np.ndarray, cls: np.ndarray, owner: np.ndarray,
                        day_bucket: np.ndarray) -> np.ndarray:  # fmt: skip
        """Return the CDF over 24 hours of each session's hour, were it its day's first.

        The class's hours times the day's bucket's factor and, where the spec has them, times the factor
        of the user's neighbours (active the day before, the day after) over its mean among the class's
        users active that day: the neighbours move a user's day, not the class's.
        """
        s_cls = cls[owner]
        if self.hour_nb_tilt is None:
            return self.hour_cdf[s_cls, wd, day_bucket]
        nb = self._neighbours(offset, users)
        mix = np.zeros((self.n_classes, NEIGHBOURS))
        np.add.at(mix, (cls, nb), 1.0)
        mix /= np.maximum(mix.sum(axis=1, keepdims=True), 1.0)
        mean = np.einsum("cn,bnh->cbh", mix, self.hour_nb_tilt)  # (class, bucket, hour)
        prof = (
            self.hour_prof[:, wd, :, None, :]
            * self.hour_nb_tilt[None]
            / np.maximum(mean[:, :, None, :], 1e-12)
        )
        cdf = np.cumsum(prof / np.maximum(prof.sum(axis=3, keepdims=True), 1e-300), axis=3)
        return cdf[s_cls, day_bucket, nb[owner]]

    def _neighbours(self, offset: int, users: np.ndarray) -> np.ndarray:
        """Return per user active on day ``offset``: 1 if also active the day before, + 2 if the day after."""
        out = np.zeros(users.size, np.int64)
        for bit, d in ((1, offset - 1), (2, offset + 1)):
            near = self.active_by_day[d] if 0 <= d < self.gen.days else np.zeros(0, np.int64)
            if near.size:  # sorted user numbers
                at = np.minimum(np.searchsorted(near, users), near.size - 1)
                out += bit * (near[at] == users)
        return out

    def _later_start(
        self, cls: np.ndarray, after: np.ndarray, prev_end: np.ndarray, day_start_ms: int, u: np.ndarray
    ) -> np.ndarray:
        """Return the start (ms) of a day's later sessions, each a within-day gap after the previous one ended."""
        if self.gap_share_q is not None:
            # The gap takes a share of the day's clock left after the previous session ended, drawn from the
            # sketch of the class's gaps with as many sessions still to come.
            left = np.minimum(after, GAP_LEFT - 1)
            share = np.clip(sample_sketch(self.gap_share_q, cls * GAP_LEFT + left, u), 0.0, 1.0)
            when = np.empty(cls.size)
            for c in np.unique(cls):  # on the clock of the session's class
                at = cls == c
                pos = clock_position(prev_end[at] - day_start_ms, self.clock[c])
                when[at] = clock_time(pos + share[at] * (1.0 - pos), self.clock[c])
            return np.maximum(day_start_ms + when.astype(np.int64), prev_end + self.gap_floor_ms)
        # Specs from before the clock: the sketch of gaps in minutes after sessions that ended in the same
        # block of the day, cut to what is left of the day (the gaps were measured between sessions of one day).
        block = np.clip((prev_end - day_start_ms) // (MS_PER_DAY // GAP_BLOCKS), 0, GAP_BLOCKS - 1)
        rows = cls * GAP_BLOCKS + block
        left_min = (day_start_ms + MS_PER_DAY - prev_end) / MS_PER_MINUTE
        room = sketch_cdf(self.gap_q, rows, left_min, log=True)
        gap_min = sample_sketch(self.gap_q, rows, u * room, log=True)
        return prev_end + (np.maximum(gap_min, 0) * MS_PER_MINUTE).astype(np.int64)

    def _flows(
        self, s_cls: np.ndarray, s_depth: np.ndarray, s_pace: np.ndarray, s_odds: np.ndarray,
        s_first: np.ndarray, g: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """Step every session's chain at once; return (event codes, session of each event, gap before it in s).

        A user's first session starts from the (FIRST, START) state where the spec has it (onboarding:
        an install or a sign-up opens it), else from (START, START) as every other session.
        """
        n = s_cls.size
        live = np.arange(n)
        chain = s_cls.astype(np.int64) * self.depth_groups + s_depth  # the chain's class x groups + group
        prev = np.where(s_first & self.has_first, self.first_sym, self.start_sym).astype(np.int64)
        cur = np.full(n, self.start_sym, np.int64)
        pace = sample_sketch(self.pace_q, np.zeros(n, np.int64), g.random(n)) + s_pace
        run = np.zeros(n, np.int64)  # times in a row the current event has come up
        elapsed = np.zeros(n)  # seconds from the session's first event to its current one
        last_gap = np.zeros(n)  # the gap before the session's current event
        top_repeat = int(self.repeat_syms[-1])
        size = self.time_size
        time_rows = self.time_row  # [position bucket of the gap's first event][cur x size + next]
        out_code, out_sess, out_gap = [], [], []
        for step in range(MAX_SESSION_EVENTS):
            if live.size == 0:
                break
            if step > 0:  # after the event at position step - 1: end the session, or go on
                # The end hazard of the user's (class, depth group) after this event at this position ...
                bucket = min(self._slot_of(step - 1) - 1, len(BUCKETS) - 1)
                # ... its log odds shifted by the time the session has lasted.
                shift = self.elapsed_flat[cur * ELAPSED_BUCKETS + elapsed_bucket(elapsed[live])]
                # ... and by the user's (session group, band of active days).
                odds = self.hazard_by_bucket[bucket][chain * size + cur] * shift * s_odds[live]
                stay = (g.random(live.size) * (1 + odds) >= odds) & (step < self.longest_by_chain[chain])
                live, prev, cur, chain, run = live[stay], prev[stay], cur[stay], chain[stay], run[stay]
                if live.size == 0:
                    break
            group = self._group(chain, prev, cur, step - 1 if step else -1)
            if step == 0 and self.has_first:  # a chain without a first-session start: the usual start
                lacking = np.flatnonzero((group < 0) & (prev == self.first_sym))
                group[lacking] = self._group(chain[lacking], cur[lacking], cur[lacking], -1)
            u = g.random(live.size)
            nxt = np.where(
                group >= 0,
                self.flow_next[_alias_draw(self.flow_alias, np.maximum(group, 0), u)],
                self.end_sym,
            )
            go = nxt != self.end_sym  # a state with nowhere to go ends the session
            if not go.all():
                live, prev, cur, nxt, run, chain = live[go], prev[go], cur[go], nxt[go], run[go], chain[go]
            if step == 0:
                gap = np.zeros(live.size)
            else:
                time_row = time_rows[int(time_bucket(step - 1))]  # the gap's first event is at step - 1
                log_gap = sample_sketch(self.time_q, time_row[cur * size + nxt], g.random(live.size))
                if self.pace_scales_seconds:
                    gap = np.expm1(np.maximum(log_gap, 0.0)) * np.exp(pace[live])
                else:
                    gap = np.expm1(np.maximum(log_gap + pace[live], 0.0))
                # A clock: x -> x after x -> x repeats the gap before, as often as the export's did.
                again = (nxt == cur) & (run >= 2)
                if again.any():
                    copy = again & (g.random(live.size) < self.repeat_gap[cur])
                    gap = np.where(copy, last_gap[live], gap)
                elapsed[live] += gap
                last_gap[live] = gap
            out_code.append(nxt)
            out_sess.append(live)
            out_gap.append(gap)
            # The next state: (event before, event), or (REPEATk, event) from its third time in a row on.
            run = np.where(nxt == cur, run + 1, 1)
            prev = np.where(run >= 3, np.minimum(self.repeat_syms[0] + run - 3, top_repeat), cur)
            cur = nxt
        if not out_code:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        code, sess, gap = np.concatenate(out_code), np.concatenate(out_sess), np.concatenate(out_gap)
        order = np.argsort(sess, kind="stable")  # steps were emitted in order: stable sort keeps them
        return code[order], sess[order], gap[order]

    def _frame(self, day, pop, users, owner, s_user, s_cls, rank, start_ms, codes, e_sess, t_ms, g):  # noqa: ANN001, ANN202
        """Insert ``$identify`` where due, name everything, draw the properties, and build the event frame."""
        n_sess = owner.size
        seq = np.arange(e_sess.size) - np.repeat(np.r_[0, np.cumsum(np.bincount(e_sess, minlength=n_sess))[:-1]],
                                                 np.bincount(e_sess, minlength=n_sess))  # fmt: skip
        # Identify: first day of an identified user, in the spec's session rank, after the spec's event.
        first_day = (day_number(day) - self.start_day) == pop.first[s_user]
        ident_user = pop.identified[s_user] & first_day
        ranks = np.array(sorted(self.ident_session))
        shares = np.array([self.ident_session[r] for r in ranks])
        # One wanted rank per user (drawn per session, a user's sessions could each miss their own draw and
        # leave the user anonymous all day with no $identify, or hold two).
        want_rank = (
            ranks[draw_from_cdf(np.cumsum(shares) / shares.sum(), g.random(users.size))][owner]
            if ranks.size
            else np.zeros(n_sess, np.int64)
        )
        sessions_today = np.bincount(owner, minlength=users.size)[owner]
        ident_sess = ident_user & (rank == np.minimum(want_rank, sessions_today - 1))
        positions = np.array(sorted(self.ident_position))
        pos_share = np.array([self.ident_position[p] for p in positions])
        want_pos = positions[draw_from_cdf(np.cumsum(pos_share) / pos_share.sum(), g.random(n_sess))]
        e_count = np.bincount(e_sess, minlength=n_sess)
        # The identify comes after min(position, events) events of its session (-1: before the first).
        ident_pos = np.minimum(want_pos, e_count) - 1
        ident_rows = np.flatnonzero(ident_sess & (e_count > 0))
        # Insert one row per identify session, right after position ident_pos.
        ins_sess = ident_rows
        ins_after = ident_pos[ins_sess]
        base = np.r_[0, np.cumsum(e_count)[:-1]]
        anchor = np.where(ins_after >= 0, base[ins_sess] + ins_after, base[ins_sess])
        # Its time: halfway to the next event (at most 200 ms after the one before), never out of order.
        has_next = (ins_after >= 0) & (ins_after + 1 < e_count[ins_sess])
        following = t_ms[np.minimum(anchor + 1, max(t_ms.size - 1, 0))] if t_ms.size else anchor
        step = np.where(has_next, np.minimum((following - t_ms[anchor]) // 2, 200), 200)
        ins_t = np.where(ins_after >= 0, t_ms[anchor] + step, t_ms[anchor])
        ident_code = len(self.names) + 2  # a code past START/END, named $identify below
        if ins_sess.size:
            # One insertion per identify session, before the row that follows its anchor (rows stay in order),
            # its lead-in first where the spec has one, a millisecond before it (unless nothing lies between; a
            # session they open has its own events moved 2 ms later for them).
            at = base[ins_sess] + ins_after + 1
            lead = self._lead_ins(day, ins_sess.size)
            led = lead >= 0
            opening = led & (ins_after < 0)
            if opening.any():
                later = np.zeros(n_sess, np.int64)
                later[ins_sess[opening]] = 2
                t_ms = t_ms + later[e_sess]
            limit = np.where(ins_after < 0, ins_t + 1, np.where(has_next, following, np.iinfo(np.int64).max))
            at = np.r_[at[led], at]  # equal positions keep this order: the lead-in, then the $identify
            e_sess = np.insert(e_sess, at, np.r_[ins_sess[led], ins_sess])
            t_ms = np.insert(t_ms, at, np.r_[ins_t[led], np.minimum(ins_t + led, limit)])
            codes = np.insert(codes, at, np.r_[lead[led], np.full(ins_sess.size, ident_code)])
            counts = np.bincount(e_sess, minlength=n_sess)
            seq = np.arange(e_sess.size) - np.repeat(np.r_[0, np.cumsum(counts)[:-1]], counts)
        # Anonymous until the identify: on identify sessions, the rows before it; earlier sessions that day, all.
        is_ident = codes == ident_code
        ident_seq = np.full(n_sess, np.iinfo(np.int64).max)
        ident_seq[e_sess[is_ident]] = seq[is_ident]
        anon_sess_rank = np.full(users.size, -1, np.int64)
        anon_sess_rank[owner[ins_sess]] = rank[ins_sess]
        ev_user_slot = owner[e_sess]
        anonymous = pop.identified[s_user[e_sess]] & first_day[e_sess] & (
            (rank[e_sess] < anon_sess_rank[ev_user_slot]) | ((rank[e_sess] == anon_sess_rank[ev_user_slot]) & (seq < ident_seq[e_sess]))
        )  # fmt: skip
        # Users who are identified later but have no session that day with an identify stay anonymous all day.
        anonymous |= pop.identified[s_user[e_sess]] & first_day[e_sess] & (anon_sess_rank[ev_user_slot] < 0)
        user_no = s_user[e_sess]
        # Every user's id, then their first device's, then a null (made once), gathered per event.
        n_users = self.gen.users
        device_no = user_no + n_users
        # Session and event ids: UUIDv7 of their time with random bits from the day's own id stream.
        ids = rng_mod.stream(self.seed, "twin", "ids", day.isoformat())
        sess_id = random_uuid7s(start_ms, ids).take(e_sess)
        names = pl.Series([*self.names, START, "END", IDENTIFY])
        cols: dict[str, pl.Series] = {
            "uuid": random_uuid7s(t_ms, ids).take(),
            "event": names[_index(codes)],
            "timestamp": pl.Series(t_ms).cast(pl.Datetime("ms", "UTC")),  # epoch ms are UTC: a relabel
            "distinct_id": self.user_ids.take(np.where(anonymous, device_no, user_no)),
            "user_number": pl.Series(user_no.astype(np.int64)),
            "twin_class": pl.Series(pop.cls[user_no].astype(np.int16)),
            "partition_key": pl.Series([day.isoformat()]).new_from_index(0, e_sess.size),
            "sequence": pl.Series(seq.astype(np.int32)),
            "$session_id": sess_id,
            "$window_id": sess_id,
            "$device_id": self.user_ids.take(device_no),
            "$anon_distinct_id": self.user_ids.take(np.where(is_ident, device_no, 2 * n_users)),
        }
        cols |= self._properties(codes, user_no, e_sess, s_user, g, day_number(day) - self.start_day)
        cols |= self._identity_columns(day, codes, user_no, anonymous, is_ident, cols.get("$group_type"))
        frame = pl.DataFrame([s.alias(name) for name, s in cols.items()])
        if not self.dropped:
            return frame
        kept = frame.filter(~pl.col("event").is_in(self.dropped))
        return kept.with_columns(  # the rows of a session numbered again from 0
            pl.int_range(pl.len(), dtype=pl.Int32).over("$session_id").alias("sequence")
        )

    def _lead_ins(self, day: dt.date, n: int) -> np.ndarray:
        """Return the lead-in event's code of ``n`` identify sessions of ``day`` (-1: none), from a stream of its own."""
        names = [name for name in self.ident_lead if name in self.names]
        if not names:
            return np.full(n, -1, np.int64)
        options = np.array([*(self.names.index(name) for name in names), -1])
        shares = np.array([self.ident_lead[name] for name in names])
        shares = np.r_[shares, max(1.0 - shares.sum(), 0.0)]  # none: the rest
        u = rng_mod.stream(self.seed, "twin", "lead-in", day.isoformat()).random(n)
        return options[draw_from_cdf(np.cumsum(shares) / shares.sum(), u)]

    def _identity_columns(self, day, codes, user_no, anonymous, is_ident, group_type):  # noqa: ANN001, ANN202
        """Return what the ``$identify`` rows set and the rows' groups (see ``groups``), from the day's own stream."""
        g = rng_mod.stream(self.seed, "twin", "identity-properties", day.isoformat())
        out = set_columns(self.spec.document.identity.get("set", {}), is_ident, g)
        if self.twin_groups is not None:
            out |= self.twin_groups.columns(self.names, codes, user_no, anonymous, group_type, g)
        return out

    @cached_property
    def twin_groups(self) -> TwinGroups | None:
        """Return every user's groups (made once, from a stream of their own; None: the spec has none)."""
        g = rng_mod.stream(self.seed, "twin", "groups", self.gen.users)
        groups = self.spec.document.identity.get("groups", {})
        return make_groups(groups, self.names, self.population.cls, self.seed, self.start_day * MS_PER_DAY, g)

    def _properties(
        self,
        codes: np.ndarray,
        user_no: np.ndarray,
        e_sess: np.ndarray,
        s_user: np.ndarray,
        g: np.random.Generator,
        offset: int = 0,
    ) -> dict[str, pl.Series]:
        """Draw every property column for events ``codes`` of users ``user_no`` in sessions ``e_sess`` (of ``s_user``)
        on day ``offset`` of the run.

        Keys constant within a session are drawn once per session first; per-user constants were drawn
        with the population. A key of a user or a session is a gather from a column per unit (every user
        of the population, made once; the day's sessions) through one row index all such keys share.
        A key drawn per event visits, in row order, only the rows of the events that carry it (found
        once per set of events), draws presence only where it is uncertain and values only for the rows
        that carry it, and is written as one gather of its value codes.
        """
        out: dict[str, pl.Series] = {}
        n, v = codes.size, len(self.names)
        n_sess = s_user.size
        by_session = self.sessions.draw(g, n_sess)  # no draw without such keys
        if self.sticky_share > 0:  # the user's own device, kept for a share of their sessions
            keep = np.flatnonzero(g.random(n_sess) < self.sticky_share)
            cols = self.sticky_cols
            by_session[keep[:, None], cols[None, :]] = self.own_session_codes[
                s_user[keep][:, None], cols[None, :]
            ]
        for key in self.trends:  # a version of the session's week (see _roll_out)
            if key in self.session_keys:
                by_session[:, self.session_keys.index(key)] = self._versions(key, s_user, offset)
        carried = codes < v  # $identify rows carry no property
        # Row -> unit, the $identify rows pointing at the null after the units.
        user_row = np.where(carried, user_no, self.gen.users)
        sess_row = np.where(carried, e_sess, n_sess)
        user_index, sess_index = _index(user_row), _index(sess_row)
        carries = np.zeros(int(codes.max(initial=v)) + 1, np.bool_)
        rows_of: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # per set of events: their rows, their codes
        present_rows: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # per presence vector: the rows drawn
        parents = set(self.follows.values())
        # Keys whose drawn rows later keys read: the followed keys and the keys others copy from.
        kept = parents | {source for copies in self.sources.values() for source, *_ in copies}
        kept |= {parent for parent, _ in self.num_follow.values()}
        drawn: dict[str, np.ndarray] = {}  # such a key's drawn table row per event (-1: absent)
        order = self.key_order
        if len(order) != len(self.presence):  # keys set after the spec was compiled: after the others
            order = [
                *order,
                *(k for k in sorted(self.presence, key=lambda k: k not in parents) if k not in order),
            ]
        for key in order:  # the followed keys and the sources first
            share, kind = self.presence[key][:v], self.kinds[key]
            parent = self.follows.get(key)
            every = bool((share >= 1.0).all())
            # Drawn per user or per session: (the units' column, each row's unit).
            unit = None
            if key in self.constants:
                unit = (self.user_columns[self.constants.index(key)], user_row)
                if every:  # on every event: one gather in row order
                    out[key] = unit[0][user_index]
                    continue
            elif key in self.session_keys:
                j = self.session_keys.index(key)
                padded = self.sessions.padded[j]
                unit = (padded[_index(np.r_[by_session[:, j], padded.len() - 1])], sess_row)
                if every:
                    out[key] = unit[0][sess_index]
                    continue
            if parent is not None and unit is None and key in self.follow_lookup:
                # Carried on the events of the key it follows, so exactly where that was drawn: when every
                # drawn value has a lookup, the column is one gather (else the rows without one draw below).
                looked = self.follow_lookup[key][drawn[parent]]
                if not ((drawn[parent] >= 0) & (looked < 0)).any():
                    null = self.cat_padded[key].len() - 1
                    out[key] = self.cat_padded[key][_index(np.where(looked >= 0, looked, null))]
                    if key in kept:
                        drawn[key] = looked
                    continue
            # Keys with the same share on every event are present together (a video's id, title, genre and
            # duration): one presence draw for all of them.
            together = share.tobytes() if parent is None else None
            if together is not None and together in present_rows:
                rows, e_rows = present_rows[together]
            else:
                rows, e_rows = self._present(key, share, codes, carries, rows_of, drawn, g)
                if together is not None:
                    present_rows[together] = (rows, e_rows)
            if unit is not None:
                column, unit_of_row = unit
                out[key] = _spread(column, unit_of_row[rows], rows, n)  # typed when compiled
            elif key in self.cat_alias:
                followed_rows, followed = np.zeros(0, np.int64), np.zeros(0, np.int64)
                if key in self.follows:  # its value looked up from the followed key's, where that was drawn
                    parent_row = drawn[self.follows[key]][rows]
                    looked = np.where(parent_row >= 0, self.follow_rows[key][np.maximum(parent_row, 0)], -1)
                    own = looked < 0
                    rows, e_rows, followed_rows, followed = rows[own], e_rows[own], rows[~own], looked[~own]
                # Alias draws (two lookups a row): the value's row of the (event, value) table.
                pos = _alias_draw(self.cat_alias[key], e_rows, g.random(rows.size))
                opens = None
                if key in self.entry_alias and rows.size:  # a session's first row with the key: its own mix
                    alias, has = self.entry_alias[key]
                    opens = np.r_[True, e_sess[rows[1:]] != e_sess[rows[:-1]]] & has[e_rows]
                    at = np.flatnonzero(opens)
                    pos[at] = _alias_draw(alias, e_rows[at], g.random(at.size))
                pair = None
                if key in self.next_alias and rows.size:  # a row followed by some events: their mix
                    pair = _next_pairs(self.next_alias[key][0], rows, e_rows, codes, e_sess, v, opens)
                    at = np.flatnonzero(pair >= 0)
                    pos[at] = self._next_draw(key, pair[at], g)
                hit = self.cat_alias[key][1][e_rows] > 0  # events with values
                if not hit.all():
                    rows, pos, e_rows = rows[hit], pos[hit], e_rows[hit]
                if key in self.sources:
                    self._copy_sources(key, rows, e_rows, pos, drawn, e_sess, g)
                source = None
                if key in self.carry and key not in self.follows:
                    source = _carry_source(self.carry[key][e_rows], e_sess[rows], g)
                if key in self.avoid and key not in self.follows:
                    alias, value_id = self.cat_alias[key], self.cat_value_id[key]
                    pos = _avoid_repeats(pos, value_id[pos], self.avoid[key][e_rows], e_sess[rows], g,
                                         lambda i: self._redraw(key, alias, e_rows, pair, i, g),  # noqa: B023
                                         value_id, source)  # fmt: skip
                for _, chance, value_of in self.follow_carry.get(key, ()):  # the genre before, another video
                    redraw = partial(self._redraw, key, self.cat_alias[key], e_rows, pair, g=g)
                    avoid = self.cat_value_id[key] if key in self.avoid else None
                    pos = _keep_follower(
                        pos, chance[e_rows], e_sess[rows], g, value_of, avoid, redraw, source
                    )
                if source is not None:
                    pos = pos[source]
                if key in self.back:
                    pos = _back_fill(pos, self.back[key][e_rows], e_sess[rows], g,
                                     e_rows, self.cat_value_id[key], self.cat_pairs[key])  # fmt: skip
                if followed.size:
                    rows, pos = np.r_[followed_rows, rows], np.r_[followed, pos]
                if key in self.follows and rows.size > followed.size:  # some drawn on their own: see _same_as
                    order = np.argsort(rows, kind="stable")
                    rows, pos = rows[order], pos[order]
                    source = self._same_as(self.follows[key], rows, drawn, e_sess)
                    pos = pos if source is None else pos[source]
                if key in kept:
                    drawn[key] = np.full(n, -1, np.int64)
                    drawn[key][rows] = pos
                out[key] = _spread(self.cat_padded[key], pos, rows, n)
            elif key in self.num_tables:
                row_of, q = self.num_tables[key]
                sketch_row = row_of[e_rows]
                ok = sketch_row >= 0
                x = sample_sketch(q, sketch_row[ok], g.random(int(ok.sum())))
                for by, lookup, q_by in self.num_by.get(key, ()):  # given the category of its row
                    if by in out:
                        x = _numbers_given(x, rows[ok], e_rows[ok], out[by], lookup, q_by, g)
                looked = None
                if key in self.num_follow:  # the number of its row's category (a video's duration, its id's)
                    parent, table = self.num_follow[key]
                    looked = table[drawn[parent][rows[ok]]] if parent in drawn else None
                    if looked is not None:
                        x = np.where(np.isnan(looked), x, looked)
                source = None
                if key in self.carry:  # the number its session is on (a video's duration)
                    source = _carry_source(self.carry[key][e_rows[ok]], e_sess[rows[ok]], g)
                if key in self.avoid and kind == "integer":  # a progress that moves on: not the same twice
                    x, in_table = np.round(x), sketch_row[ok]
                    x = _avoid_repeats(x, x, self.avoid[key][e_rows[ok]], e_sess[rows[ok]], g,
                                       lambda i: np.round(sample_sketch(q, in_table[i], g.random(i.size))),  # noqa: B023
                                       None, source)  # fmt: skip
                if source is not None:
                    x = x[source]
                if looked is not None:  # (a row carrying the number before it keeps its own category's)
                    x = np.where(np.isnan(looked), x, looked)
                    same = self._same_as(self.num_follow[key][0], rows[ok], drawn, e_sess)
                    x = x if same is None else x[same]
                out[key] = _numbers(np.round(x) if kind == "integer" else x, rows[ok], n, kind == "integer")
        self._roll_out(out, user_no, offset)
        return {key: out[key] for key in self.presence if key in out}  # the spec's key order

    def _same_as(
        self, parent: str, rows: np.ndarray, drawn: dict[str, np.ndarray], e_sess: np.ndarray
    ) -> np.ndarray | None:
        """Return, per row of a following key's ``rows`` (ascending), the row whose value it takes: the row before
        it when both have the same value of the key it follows in one session, else itself (``None``: all
        themselves). A video of a rare id (``other``), carried on from row to row, keeps its genre and duration
        (drawn for each row, its genre changed under it 0.13 of the time on HogFlix); a looked-up value is the
        same on such rows anyway."""
        value = self.cat_value_id[parent][np.maximum(drawn[parent][rows], 0)]
        value = np.where(drawn[parent][rows] >= 0, value, -1)
        sess = e_sess[rows]
        same = np.r_[False, (value[1:] == value[:-1]) & (value[1:] >= 0) & (sess[1:] == sess[:-1])]
        if not same.any():
            return None
        return np.maximum.accumulate(np.where(same, 0, np.arange(rows.size)))

    def _next_draw(self, key: str, pair: np.ndarray, g: np.random.Generator) -> np.ndarray:
        """Return table rows of ``key`` drawn from the mixes of (event, next event) pairs ``pair``."""
        _, tables, table_row = self.next_alias[key]
        return table_row[_alias_draw(tables, pair, g.random(pair.size))]

    def _redraw(
        self,
        key: str,
        alias: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        e_rows: np.ndarray,
        pair: np.ndarray | None,
        i: np.ndarray,
        g: np.random.Generator,
    ) -> np.ndarray:
        """Return fresh draws of ``key`` for rows ``i``: from their (event, next event) mix where they have one,
        else from their event's."""
        out = _alias_draw(alias, e_rows[i], g.random(i.size))
        if pair is not None:
            at = np.flatnonzero(pair[i] >= 0)
            if at.size:
                out[at] = self._next_draw(key, pair[i[at]], g)
        return out

    def _roll_out(self, out: dict[str, pl.Series], user_no: np.ndarray, offset: int) -> None:
        """Replace the values of the version keys that roll out by the day's week's mix, in ``out``.

        The run's 7-day blocks are the export's (past its last, the last one's mix holds). A user takes the
        newest value while their own adoption draw is below its share, else the next newest within the next
        share, and so on: as a new version's share grows week by week, the users who had it keep it.
        """
        for key, (padded, _, _) in self.trends.items():
            if key not in out or key in self.session_keys:  # (a session's version is drawn with the session)
                continue
            rows = np.flatnonzero(out[key].is_not_null().to_numpy())
            out[key] = _spread(padded, self._versions(key, user_no[rows], offset), rows, out[key].len())

    def _versions(self, key: str, users: np.ndarray, offset: int) -> np.ndarray:
        """Return the value codes of version key ``key`` that ``users`` have on day ``offset`` of the run: the
        newest whose cumulative share in the day's 7-day block is above the user's adoption draw."""
        _, codes, cdf = self.trends[key]
        mix = cdf[min(max(offset, 0) // 7, cdf.shape[0] - 1)]
        return codes[np.minimum(np.searchsorted(mix, self.adoption[users], side="right"), codes.size - 1)]

    @cached_property
    def adoption(self) -> np.ndarray:
        """Return every user's own uniform draw of how early they take a new version (made once)."""
        return rng_mod.stream(self.seed, "twin", "adoption", self.gen.users).random(self.gen.users)

    def _copy_sources(
        self,
        key: str,
        rows: np.ndarray,
        e_rows: np.ndarray,
        pos: np.ndarray,
        drawn: dict[str, np.ndarray],
        e_sess: np.ndarray,
        g: np.random.Generator,
    ) -> None:
        """Write into ``pos`` (drawn table rows of ``key`` at ``rows``) the values other keys give, in place.

        A row of an event with a source takes, with the event's chance, the source's value on the same row
        (lag 0) or on the session's last row before it that has the source (lag 1), when ``key`` has that value.
        """
        n = e_sess.size
        for source, lag, chance, value_row in self.sources[key]:
            src = drawn.get(source)
            at = np.flatnonzero(chance[e_rows] > 0)
            if src is None or not at.size:
                continue
            r = rows[at]
            if lag == 0:
                spos = src[r]
            else:
                last = np.maximum.accumulate(np.where(src >= 0, np.arange(n), -1))
                prev = np.where(r > 0, last[np.maximum(r - 1, 0)], -1)
                same = (prev >= 0) & (e_sess[np.maximum(prev, 0)] == e_sess[r])
                spos = np.where(same, src[np.maximum(prev, 0)], -1)
            mapped = np.where(spos >= 0, value_row[np.maximum(spos, 0)], -1)
            take = mapped >= 0
            p = chance[e_rows[at]]
            unsure = np.flatnonzero(take & (p < 1))
            if unsure.size:
                take[unsure] = g.random(unsure.size) < p[unsure]
            pos[at[take]] = mapped[take]

    def _present(
        self,
        key: str,
        share: np.ndarray,
        codes: np.ndarray,
        carries: np.ndarray,
        rows_of: dict[bytes, tuple[np.ndarray, np.ndarray]],
        drawn: dict[str, np.ndarray],
        g: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the rows (ascending) that carry ``key`` and their event codes.

        The rows of its events (found once per set of events), kept where the key it follows was drawn,
        else with the event's share where that is below 1.
        """
        v = len(self.names)
        events = share > 0
        found = rows_of.get(events.tobytes())
        if found is None:
            carries[:] = False
            carries[:v] = events
            rows = np.flatnonzero(carries[codes])
            found = rows_of[events.tobytes()] = (rows, codes[rows])
        rows, e_rows = found
        keep = None
        uncertain = events & (share < 1.0)
        parent = self.follows.get(key)
        if parent is not None:
            with_parent = self.presence[parent][:v] > 0
            uncertain &= ~with_parent
            if (events & with_parent).any():
                keep = np.ones(rows.size, np.bool_)
                at = np.flatnonzero(with_parent[e_rows])
                keep[at] = drawn[parent][rows[at]] >= 0
        if uncertain.any():
            at = np.flatnonzero(uncertain[e_rows])
            keep = np.ones(rows.size, np.bool_) if keep is None else keep
            keep[at] = g.random(at.size) < share[e_rows[at]]
        return (rows[keep], e_rows[keep]) if keep is not None else (rows, e_rows)

    @cached_property
    def own_session_codes(self) -> np.ndarray:
        """Return every user's own values of the per-session keys (their device), drawn like a session's."""
        g = rng_mod.stream(self.seed, "twin", "own-session", self.gen.users)
        return self.sessions.draw(g, self.gen.users)

    @cached_property
    def user_ids(self) -> Uuids:
        """Return every user's distinct id, then every user's first device id (made once; past them: null).

        UUIDv7 of the user's first day (the device's a millisecond before it) with bits hashed from the
        seed and the user number: a user keeps their ids on every day, whichever days are generated.
        """
        every = np.arange(self.gen.users)
        first_ms = (self.start_day + self.population.first) * MS_PER_DAY
        ids = pl.concat([uuid7s(first_ms, self.seed, 31, every), uuid7s(first_ms - 1, self.seed, 32, every)])
        return Uuids(np.frombuffer("".join(ids.to_list()).encode(), np.uint8).reshape(-1, 36))

    @cached_property
    def user_columns(self) -> list[pl.Series]:
        """Return, per constant key, its value for every user of the population and then a null (made once)."""
        codes = self.population.constant_codes
        return [
            padded[_index(np.r_[codes[:, j], padded.len() - 1])]
            for j, padded in enumerate(self.user_keys.padded)
        ]


class ActivitySimulation(Generator):
    """A spec's users and the days each of them is active, without their events (what the fit's calibrations
    simulate): the flows are not compiled, so a spec whose flow tables are still being fitted will do."""

    def _compile_flows(self, transitions: pl.DataFrame, times: pl.DataFrame) -> None:
        self.depth_groups = 1  # read for the events' session groups only

    def with_activity_of(self, spec: TwinSpec) -> ActivitySimulation:
        """Return the simulation of ``spec``, of as many users and days, with this one's population.

        For a ``spec`` that differs from this one's only in what the population does not read (the classes'
        ``week_spread``, ``return_by_age_day``, ``streak_scale`` and ``streak_keeps_rate``): the users are the same,
        only their active days are drawn again.
        """
        sim = ActivitySimulation(spec.with_generation(users=self.gen.users, days=self.gen.days))
        sim.__dict__["population"] = self.population  # the cached_property's slot
        return sim


# Four lower-case hex digits of every 16-bit value, as the uint32 whose little-endian bytes spell them.
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_HEX4 = (
    _HEX[np.arange(1 << 16) >> 12].astype(np.uint32)
    | (_HEX[(np.arange(1 << 16) >> 8) & 15].astype(np.uint32) << 8)
    | (_HEX[(np.arange(1 << 16) >> 4) & 15].astype(np.uint32) << 16)
    | (_HEX[np.arange(1 << 16) & 15].astype(np.uint32) << 24)
)
# A canonical uuid's 36 characters: eight groups of four digits and four dashes (unaligned fields).
_UUID_TEXT = np.dtype(
    {
        "names": ["g0", "g1", "d0", "g2", "d1", "g3", "d2", "g4", "d3", "g5", "g6", "g7"],
        "formats": ["<u4", "<u4", "u1", "<u4", "u1", "<u4", "u1", "<u4", "u1", "<u4", "<u4", "<u4"],
        "offsets": [0, 4, 8, 9, 13, 14, 18, 19, 23, 24, 28, 32],
        "itemsize": 36,
    }
)


class Uuids:
    """Canonical uuid texts as an (n, 36) byte array; :meth:`take` makes a String column of some of them.

    The column is an Arrow string-view array over the texts: each row a 16-byte view (length, first four
    bytes, offset into the one text buffer), so picking rows copies no text (a polars gather of 36-byte
    strings costs 2-3x more) and a row past the texts is null.
    """

    def __init__(self, text: np.ndarray) -> None:
        self.text = np.ascontiguousarray(text, np.uint8)
        self.buffer = pa.py_buffer(self.text)
        self.prefix = np.r_[self.text[:, :4].copy().view("<u4").ravel(), 0].astype(np.uint32)

    @classmethod
    def of_words(cls, high: np.ndarray, low: np.ndarray) -> Uuids:
        """Return the texts of 128-bit values given as two uint64 halves (written in cache-sized blocks)."""
        n = len(high)
        out = np.empty(n, _UUID_TEXT)
        mask, block_rows = np.uint64(0xFFFF), 1 << 16
        for a in range(0, n, block_rows):
            block = out[a : a + block_rows]
            for half, word in enumerate((high[a : a + block_rows], low[a : a + block_rows])):
                for k, shift in enumerate((48, 32, 16, 0)):
                    block[f"g{4 * half + k}"] = _HEX4[(word >> np.uint64(shift)) & mask]
            for k in range(4):
                block[f"d{k}"] = ord("-")
        return cls(out.view(np.uint8).reshape(n, 36))

    def take(self, rows: np.ndarray | None = None) -> pl.Series:
        """Return the texts at ``rows`` (all, in order, when None) as a String column; rows past them are null."""
        count = len(self.text)
        rows = np.arange(count) if rows is None else np.asarray(rows, np.int64)
        n = rows.size
        views = np.zeros((n, 4), np.uint32)
        valid = rows < count
        views[:, 0] = np.where(valid, 36, 0)
        views[:, 1] = self.prefix[np.minimum(rows, count)]
        views[:, 3] = np.where(valid, rows * 36, 0)
        bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
        return pl.Series(
            pa.Array.from_buffers(pa.string_view(), n, [bitmap, pa.py_buffer(views), self.buffer])
        )


def random_uuid7s(ms: np.ndarray, g: np.random.Generator) -> Uuids:
    """Return UUIDv7 texts whose time is ``ms`` and whose 74 other bits are raw draws of ``g``.

    Two raw 64-bit words a row (the generator's own output, no hashing): 48 bits of time, version 7,
    12 random bits | variant 10, 62 random bits.
    """
    ms = np.asarray(ms, np.int64)
    raw = g.bit_generator.random_raw(2 * ms.size).reshape(-1, 2)
    u64 = np.uint64
    high = (ms.view(u64) << u64(16)) | u64(0x7000) | (raw[:, 0] >> u64(52))
    low = (raw[:, 1] >> u64(2)) | u64(1 << 63)
    return Uuids.of_words(high, low)


def _alias_draw(
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], group: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Return the drawn row of each ``group``'s alias table (see ``compiled._alias_tables``) for uniforms ``u``."""
    start, size, chance, alias = tables
    k = size[group]
    x = u * k
    i = np.maximum(np.minimum(x.astype(np.int64), k - 1), 0)
    entry = start[group] + i
    return np.where(x - i < chance[entry], entry, alias[entry])


def _next_pairs(
    pair_of: np.ndarray,
    rows: np.ndarray,
    e_rows: np.ndarray,
    codes: np.ndarray,
    e_sess: np.ndarray,
    v: int,
    opens: np.ndarray | None,
) -> np.ndarray:
    """Return, per row of ``rows`` (events ``e_rows``), the number of its (event, next event) mix (``pair_of``),
    -1 where it has none: after its session's last row, before an ``$identify``, or on a session's first row
    drawn from its own mix (``opens``)."""
    after = np.minimum(rows + 1, codes.size - 1)
    nxt = codes[after]
    known = (rows + 1 < codes.size) & (e_sess[after] == e_sess[rows]) & (nxt < v)
    if opens is not None:
        known &= ~opens
    return np.where(known, pair_of[e_rows, np.minimum(nxt, v - 1)], -1)


def _carry_source(chance: np.ndarray, session: np.ndarray, g: np.random.Generator) -> np.ndarray | None:
    """Return, per row (in session order), the row whose value it takes: itself, or with ``chance`` the row
    before it in its session (a page-leave leaves the page its session is on); ``None`` when every row keeps
    its own.

    A run of rows that carry ends at the last row that kept its own draw (a forward fill): one pass.
    """
    first = np.r_[True, session[1:] != session[:-1]] if session.size else np.zeros(0, np.bool_)
    own = first | (chance <= 0)
    unsure = np.flatnonzero(~own & (chance < 1))
    if unsure.size:
        own[unsure] = g.random(unsure.size) >= chance[unsure]
    if own.all():
        return None
    return np.maximum.accumulate(np.where(own, np.arange(own.size), 0))


AVOID_DRAWS = 8  # draws a row may take to find a value other than the one before (then it keeps its own)


def _avoid_repeats(
    pos: np.ndarray,
    value: np.ndarray,
    chance: np.ndarray,
    session: np.ndarray,
    g: np.random.Generator,
    draw: Callable[[np.ndarray], np.ndarray],
    value_of: np.ndarray | None,
    source: np.ndarray | None = None,
) -> np.ndarray:
    """Return drawn values ``pos`` (rows in session order; ``value``: what each stands for) where, with
    ``chance``, a row whose value equals the final one of the row before it in its session takes another
    value instead: the first of ``AVOID_DRAWS`` further draws (``draw`` of row indices, repeated) that differs,
    so a draw from the event's mix without the value before (a video's progress moves on). ``value_of``: the
    value each drawn position stands for (``None``: the positions are the values).

    A row is compared with the row before's final value, which may itself be another draw, or, on a row that
    carries its value on, the value of the row it carries (``source``: each row's, from :func:`_carry_source`;
    the caller then takes ``pos[source]``, so a page-leave leaves the page as it ends up): the rows are
    settled in passes until none changes (a pass settles at least one more row of every session).
    """
    if pos.size < 2:
        return pos
    first = np.r_[True, session[1:] != session[:-1]]
    maybe = np.flatnonzero(~first & (chance > 0))
    if not maybe.size:
        return pos
    maybe = maybe[g.random(maybe.size) < chance[maybe]]
    src = np.arange(pos.size) if source is None else source
    maybe = maybe[src[maybe] == maybe]  # (a row that carries the value before keeps it)
    # Only a row equal to the row before's own draw, or after a row that may change, can need another value.
    may_change = np.zeros(pos.size, np.bool_)
    may_change[maybe] = True
    before_row = src[maybe - 1]
    keep = (value[maybe] == value[before_row]) | may_change[before_row]
    maybe, before_row = maybe[keep], before_row[keep]
    if not maybe.size:
        return pos
    others = draw(np.tile(maybe, AVOID_DRAWS)).reshape(AVOID_DRAWS, maybe.size).T  # (rows, draws): one call
    other_values = others if value_of is None else value_of[others]
    out, final = pos.copy(), value.copy()
    own_value, rows = value[maybe], np.arange(maybe.size)
    for _ in range(pos.size):
        before = final[before_row]
        differs = other_values != before[:, None]
        pick = np.argmax(differs, axis=1)
        swap = (own_value == before) & differs.any(axis=1)
        new_final = np.where(swap, other_values[rows, pick], own_value)
        if np.array_equal(new_final, final[maybe]):
            break
        final[maybe] = new_final
        out[maybe] = np.where(swap, others[rows, pick], pos[maybe])
    return out


FOLLOW_DRAWS = (
    32  # draws a row may take to find a value whose follower is the one before (then it keeps its own)
)


def _keep_follower(
    pos: np.ndarray,
    chance: np.ndarray,
    session: np.ndarray,
    g: np.random.Generator,
    value_of: np.ndarray,
    avoid: np.ndarray | None,
    draw: Callable[[np.ndarray], np.ndarray],
    source: np.ndarray | None = None,
) -> np.ndarray:
    """Return drawn values ``pos`` (table rows of a key, rows in session order) where, with ``chance``, a row
    takes a value whose follower (``value_of``: the follower's value number per table row, -1 none) is the
    final one of the row before it in its session: the first of ``FOLLOW_DRAWS`` further draws (``draw`` of
    row indices) that gives it, one other than that row's value where the key avoids repeats (``avoid``: each
    table row's value number). The next video opened is of the genre before 0.46 of the time on HogFlix, a
    video the one before never: drawn on its own, the genre followed the video and repeated by chance (0.13).

    Rows that carry the value before them on (``source``: each row's, from :func:`_carry_source`; the caller
    then takes ``pos[source]``) are left alone, and a row's "before" is the row its predecessor carries: the
    rows are settled in passes until none changes (a pass settles at least one more row of every session).
    """
    if pos.size < 2:
        return pos
    src = np.arange(pos.size) if source is None else source
    first = np.r_[True, session[1:] != session[:-1]]
    rows = np.flatnonzero(~first & (chance > 0) & (src == np.arange(pos.size)))
    rows = rows[g.random(rows.size) < chance[rows]]
    if not rows.size:
        return pos
    before_row = src[rows - 1]
    others = draw(np.tile(rows, FOLLOW_DRAWS)).reshape(FOLLOW_DRAWS, rows.size).T  # (rows, draws): one call
    own, at = pos[rows], np.arange(rows.size)
    out = pos.copy()
    for _ in range(pos.size):
        before = out[before_row]
        want = value_of[before]
        match = value_of[others] == want[:, None]
        keep = value_of[own] == want
        if avoid is not None:  # another value than the one before, where there is one of the follower's
            differs = match & (avoid[others] != avoid[before][:, None])
            match = np.where(differs.any(axis=1)[:, None], differs, match)
            keep &= (avoid[own] != avoid[before]) | ~differs.any(axis=1)
        take = (want >= 0) & ~keep & match.any(axis=1)
        new = np.where(take, others[at, np.argmax(match, axis=1)], own)
        if np.array_equal(new, out[rows]):
            break
        out[rows] = new
    return out


def _back_fill(
    pos: np.ndarray, chance: np.ndarray, session: np.ndarray, g: np.random.Generator,
    event: np.ndarray, value_id: np.ndarray, pairs: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Return drawn values ``pos`` (rows in session order) where, with each row's ``chance``, the row before it in
    its session takes its value: an event of one value (a sign-up) comes after a row of that value (its page).

    Only a row whose ``event`` has the value among its own (``pairs``: event code x values + value id) takes it.
    """
    if pos.size < 2:
        return pos
    rows = np.flatnonzero(np.r_[False, session[1:] == session[:-1]] & (chance > 0))
    rows = rows[g.random(rows.size) < chance[rows]]
    if rows.size:
        pair = event[rows - 1] * (int(value_id.max(initial=0)) + 1) + value_id[pos[rows]]
        at = np.minimum(np.searchsorted(pairs, pair), pairs.size - 1)
        rows = rows[pairs[at] == pair]
    if not rows.size:
        return pos
    out = pos.copy()
    out[rows - 1] = pos[rows]
    return out


def _numbers_given(
    x: np.ndarray,
    rows: np.ndarray,
    e_rows: np.ndarray,
    by: pl.Series,
    lookup: pl.DataFrame,
    q: np.ndarray,
    g: np.random.Generator,
) -> np.ndarray:
    """Return the numbers ``x`` drawn at ``rows`` (events ``e_rows``) with those whose (event, value of the category
    column ``by``) has a sketch of its own in ``lookup`` (e, v, srow; sketches ``q``) drawn from it instead."""
    cells = pl.DataFrame({"e": e_rows.astype(np.int64), "v": by.gather(rows).cast(pl.String)})
    srow = cells.join(lookup, on=["e", "v"], how="left", maintain_order="left")["srow"]
    hit = np.flatnonzero(srow.is_not_null().to_numpy())
    if not hit.size:
        return x
    x = x.copy()
    x[hit] = sample_sketch(q, srow.gather(hit).to_numpy().astype(np.int64), g.random(hit.size))
    return x


def _numbers(x: np.ndarray, rows: np.ndarray, n: int, integer: bool) -> pl.Series:
    """Return a column of ``n`` rows holding ``x`` at ``rows`` and null elsewhere (Int64 or Float64).

    Built as one Arrow array over the values and a validity bitmap (no mask array to convert).
    """
    column = np.zeros(n, np.int64 if integer else np.float64)
    column[rows] = x
    valid = np.zeros(n, np.bool_)
    valid[rows] = True
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pl.Series(
        pa.Array.from_buffers(pa.int64() if integer else pa.float64(), n, [bitmap, pa.py_buffer(column)])
    )


def _index(rows: np.ndarray) -> pl.Series:
    """Return row numbers as the unsigned index Series a gather takes (``series[index]``: polars' own kernel).

    ``Series.gather`` with a NumPy array costs 2-3x more (it runs a one-column query) than indexing with an
    index Series.
    """
    return pl.Series(np.asarray(rows).astype(np.uint32, copy=False))


def _spread(values: pl.Series, picks: np.ndarray, rows: np.ndarray, n: int) -> pl.Series:
    """Return a column of ``n`` rows holding ``values[picks]`` at ``rows`` and null elsewhere.

    ``values`` ends with a null (see ``CompiledSpec._compile_properties``): the null rows point at it.
    """
    if rows.size * 8 < n:  # few rows: a null column (one value repeated) with the rows written in
        return (
            values[_index(np.array([values.len() - 1]))]
            .new_from_index(0, n)
            .scatter(rows, values[_index(picks)])
        )
    index = np.full(n, values.len() - 1, np.uint32)  # one gather from the values padded with a null
    index[rows] = picks
    return values[_index(index)]


def _draw_rows(cdfs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws, row i from ``cdfs[i]`` (rows of equal length)."""
    return np.minimum((cdfs <= u[:, None]).sum(axis=1), cdfs.shape[1] - 1)


def _segment_cumsum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``values`` restarting at each new ``segment`` (rows grouped by segment)."""
    total = np.cumsum(values)
    if values.size == 0:
        return total
    starts = np.r_[0, np.flatnonzero(np.diff(segment)) + 1]
    base = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, values.size]))
    return total - base


def empty_frame(gen: Generator) -> pl.DataFrame:
    """Return an empty frame with the generator's columns."""
    schema: dict[str, pl.DataType] = {
        "uuid": pl.String(), "event": pl.String(), "timestamp": pl.Datetime("ms", "UTC"), "distinct_id": pl.String(),
        "user_number": pl.Int64(), "twin_class": pl.Int16(), "partition_key": pl.String(), "sequence": pl.Int32(),
        "$session_id": pl.String(), "$window_id": pl.String(), "$device_id": pl.String(), "$anon_distinct_id": pl.String(),
    }  # fmt: skip
    for key in gen.presence:
        schema[key] = gen.property_dtype(key)
    return pl.DataFrame(schema=schema)


def as_export_rows(events: pl.DataFrame) -> pl.DataFrame:
    """Return twin events as normalized export rows (what ``posthog_export`` would read back from them)."""
    return events.select(
        "uuid",
        "event",
        "distinct_id",
        pl.lit(None, pl.String).alias("person_id"),
        pl.col("timestamp").cast(pl.Datetime("us", "UTC")),
        pl.col("$session_id").alias("session_id"),
        "$anon_distinct_id",
    )
