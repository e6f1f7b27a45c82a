"""Fit a twin spec to an imported export: every estimator of the package, on the training users only.

Two steps, so the caller can read properties for a sample of users in between
(reading every property of millions of events is the slow part of an import):

1. :func:`prepare` stitches users, rebuilds sessions where needed, computes the
   per-session and per-user figures and splits users into training and holdout
   (a stable hash of the user, ``holdout_share`` of them held out).
2. :func:`fit` fits classes, arrivals, activity, flows, identity and properties
   and returns the :class:`~.spec.TwinSpec`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.twin import activity as act
from simulation_assets.core.twin.arrivals import (
    backlog_posterior,
    calendar_days,
    class_mix_by_block,
    day_blocks,
    fit_arrivals,
    new_and_returning,
)
from simulation_assets.core.twin.classes import (
    Mixture,
    UserDescriptors,
    assign,
    describe_users,
    select_classes,
)
from simulation_assets.core.twin.config import FitConfig
from simulation_assets.core.twin.features import (
    Window,
    extreme_users,
    session_table,
    user_day_activity,
    user_table,
)
from simulation_assets.core.twin.flows import (
    BUCKETS,
    PACE_BAND_CUTS,
    coded_sessions,
    depth_pace_groups,
    depth_shares_by_band,
    fit_flows,
    user_pace,
    vocabulary,
)
from simulation_assets.core.twin.groups import fit_groups, fit_set
from simulation_assets.core.twin.identity import IDENTIFY, fit_identity, without_lead_ins
from simulation_assets.core.twin.properties import (
    GROUP_COLUMNS,
    candidate_keys,
    fit_properties,
    group_holders,
    sample_sessions,
)
from simulation_assets.core.twin.sessions import complete_window, sessionize_users, user_index
from simulation_assets.core.twin.spec import (
    FIRST,
    FORMAT,
    KINDS,
    REPEATS,
    START,
    TABLE_SCHEMAS,
    VERSION,
    CalendarDay,
    TwinSpec,
    build_document,
    validate_tables,
)

if TYPE_CHECKING:
    from simulation_assets.core.twin.generate import ActivitySimulation


@dataclass
class Prepared:
    """An imported export: sessionized events, per-session and per-user tables, the holdout split."""

    events: pl.DataFrame  # sessions.EVENTS_SCHEMA
    users: pl.DataFrame  # user, user_key, holdout
    sessions: pl.DataFrame  # features.session_table
    user_stats: pl.DataFrame  # features.user_table (+ holdout)
    window: Window
    rebuilt: bool
    rows: int

    def without(self, users: pl.Series) -> Prepared:
        """Return these tables without ``users`` (numbers): their events, sessions and rows."""
        if users.is_empty():
            return self
        out = pl.col("user").is_in(users.implode())
        return Prepared(self.events.filter(~out), self.users.filter(~out), self.sessions.filter(~out),
                        self.user_stats.filter(~out), self.window, self.rebuilt, self.rows)  # fmt: skip

    def subset(self, holdout: bool) -> Prepared:
        """Return the training (``holdout=False``) or holdout users' part."""
        ids = self.users.filter(pl.col("holdout") == holdout)["user"]
        return Prepared(
            self.events.filter(pl.col("user").is_in(ids)),
            self.users.filter(pl.col("holdout") == holdout),
            self.sessions.filter(pl.col("user").is_in(ids)),
            self.user_stats.filter(pl.col("user").is_in(ids)),
            self.window,
            self.rebuilt,
            self.rows,
        )


def prepare(events: pl.DataFrame, cfg: FitConfig, identifies: pl.DataFrame | None = None) -> Prepared:
    """Import normalized export rows (``posthog_export.EXPORT_SCHEMA`` columns).

    Anonymous ids are linked to identified ones through ``identifies`` (``distinct_id`` and
    ``$anon_distinct_id`` of the ``$identify`` events) or an ``$anon_distinct_id`` column of ``events``.
    """
    index = user_index(events, identifies)
    sessionized, users, rebuilt = sessionize_users(events, index, cfg.idle_minutes, cfg.max_session_hours)
    users = users.with_columns(pl.Series("holdout", holdout_mask(users["user_key"], cfg)))
    sessions = session_table(sessionized)
    window = complete_window(sessions)
    if window != Window.of(sessions):  # a first or last day cut short: dropped
        sessions = sessions.filter(pl.col("day").is_between(window.first, window.last))
        sessionized = sessionized.filter(pl.col("session").is_in(sessions["session"]))
        users = users.filter(pl.col("user").is_in(sessions["user"].unique()))
    stats = user_table(sessions, window).join(users.select("user", "holdout"), on="user", how="left")
    return Prepared(sessionized, users, sessions, stats, window, rebuilt, events.height)


def holdout_mask(user_keys: pl.Series, cfg: FitConfig) -> np.ndarray:
    """Return which users are held out: a keyed BLAKE2b hash of the user key below ``holdout_share``."""
    salt = f"twin-holdout-{cfg.seed}".encode()
    unit = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(k.encode(), key=salt, digest_size=8).digest(), "little") / 2**64
            for k in user_keys.to_list()
        ),
        np.float64,
        count=user_keys.len(),
    )
    return unit < cfg.holdout_share


def property_sample_ids(prepared: Prepared, cfg: FitConfig, id_hash: pl.DataFrame) -> list[str]:
    """Return the distinct ids whose events' properties the fit reads.

    Training users in the order of a seeded draw, taken while their events stay within
    ``property_sample_rows`` (and at most ``property_sample_users`` users; at least one).
    ``id_hash`` gives each distinct id (``distinct_id``) a seeded 64-bit hash (``hash``, UInt64). A user's
    draw is r ** k, r the largest of their k ids' hashes as a share of 2 ** 64: uniform whatever k, so every
    user is as likely to be taken. And every id of the users taken hashes below the largest r taken, so a
    reader can keep the properties of the rows whose id hashes low while it reads the core fields, instead of
    reading the export a second time for them (``sinks/twin_source.py``).
    """
    pairs = prepared.events.select("user", "distinct_id").unique().join(id_hash, on="distinct_id", how="left")
    draws = pairs.group_by("user").agg(
        (pl.col("hash").cast(pl.Float64).max() / 2.0**64).log().mul(pl.len()).alias("draw")
    )
    train = (
        prepared.user_stats.filter(~pl.col("holdout"))
        .select("user", "total_events")
        .join(draws, on="user", how="left")
        .sort("draw", "user", nulls_last=True)
    )
    rows = train["total_events"].to_numpy()
    take = max(1, int(np.searchsorted(np.cumsum(rows), cfg.property_sample_rows, side="right")))
    chosen = train["user"].head(min(take, cfg.property_sample_users))
    return pairs.filter(pl.col("user").is_in(chosen.implode()))["distinct_id"].unique().sort().to_list()


def fit(
    prepared: Prepared,
    property_sample: pl.DataFrame,
    key_stats: pl.DataFrame,
    cfg: FitConfig,
    export_name: str,
) -> TwinSpec:
    """Return the twin spec fitted on ``prepared``'s training users.

    ``property_sample``: the sampled users' rows (``distinct_id``, ``event``, optionally ``timestamp``
    (then keys constant within a visit are found) and one text column per key); ``key_stats``: the export's ``property_keys`` table.
    """
    # BLAS on one thread: the fit's matrix products are small (users x classes), and OpenBLAS's
    # threads spin-wait for each other on a busy 2-core machine (the class EM took 10x the CPU time
    # with two). One thread also gives the same sums, so the same spec, on any machine.
    with threadpool_limits(1, user_api="blas"):
        return _fit(prepared, property_sample, key_stats, cfg, export_name)


class FitError(ValueError):
    """The export is readable but cannot be fitted (e.g. too few users to stay k-anonymous)."""


def _fit(
    prepared: Prepared,
    property_sample: pl.DataFrame,
    key_stats: pl.DataFrame,
    cfg: FitConfig,
    export_name: str,
) -> TwinSpec:
    machines = extreme_users(prepared.user_stats)  # crawlers and the like: see extreme_users
    left_out_events = int(
        prepared.user_stats.filter(pl.col("user").is_in(machines.implode()))["total_events"].sum()
    )
    prepared = prepared.without(machines)
    train = prepared.subset(holdout=False)
    k, levels = cfg.k_anonymity, cfg.quantile_levels
    window = prepared.window
    g = rng_mod.stream(cfg.seed, "twin", "fit")
    sessions, users = train.sessions, train.user_stats.sort("user")
    activity = user_day_activity(sessions)
    n_users = users.height
    if n_users < 2 * k:
        raise FitError(
            f"the export has {n_users} training users after the holdout; a twin needs at least {2 * k} (2 x k)"
        )

    # Arrivals, and whether each user was new or already there when the window opened.
    first_days = users["first_day"].to_numpy()
    arrivals = fit_arrivals(first_days, window.first, window.days)
    backlog = backlog_posterior(arrivals, first_days, window.first)
    kind = np.where(backlog > 0.5, 1, 0)

    # Classes on a sample, then every user assigned.
    desc = describe_users(sessions, users)
    sample = np.arange(n_users)
    if n_users > cfg.class_sample_users:
        sample = np.sort(g.choice(n_users, cfg.class_sample_users, replace=False))
    sub = UserDescriptors(
        desc.user[sample], desc.cells[sample], desc.returns[sample], desc.trials[sample], desc.depth[sample]
    )
    min_class = max(k, int(0.01 * len(sample)))
    mixture, candidates = select_classes(sub, cfg.max_classes, min_class, g)
    cls_by_row = assign(desc, mixture)
    n_classes = mixture.classes
    user_ids = users["user"].to_numpy()
    classes = np.zeros(int(prepared.users["user"].max()) + 1, np.int16)  # type: ignore[arg-type]
    classes[user_ids] = cls_by_row

    spans = act.user_spans(users, activity, cls_by_row, window)
    succ, trials = act.returns_and_trials(spans, window)
    first_hours = act.first_session_hours(sessions)
    first_hours = first_hours.with_columns(pl.Series("class", classes[first_hours["user"].to_numpy()]))
    pooled_hours = act.hour_profile(first_hours)
    tilt = act.first_hour_tilt(first_hours)
    clock = act.day_clock(sessions, classes, n_classes)
    gaps = act.within_day_gaps(sessions)
    gaps = gaps.with_columns(pl.Series("class", classes[gaps["user"].to_numpy()]))
    gaps = gaps.with_columns(pl.Series("share", act.gap_shares(gaps, clock)))

    # Session groups: every user's depth group (quantiles of their shrunk mean log events per session), split
    # by seconds per event: users as deep may fill their sessions with slower or quicker events. Both means are
    # shrunk toward the mean of the user's class and activity band (see flows.depth_pace_groups).
    band = act.activity_bands(spans.active_days.astype(np.float64), cls_by_row, act.DEPTH_BAND_CUTS)
    n_bands = len(act.DEPTH_BAND_CUTS) + 1
    groups = cfg.depth_groups * cfg.pace_groups
    depth_by_row = depth_pace_groups(sessions, user_ids, cls_by_row, band, cfg.depth_groups, cfg.pace_groups)
    depth = np.zeros_like(classes, dtype=np.int64)
    depth[user_ids] = depth_by_row
    # Flows need only the classes and depth groups: they are fitted on a second core while the activity
    # estimators and the calibrations (which never read them) run here.
    names, dropped_events, rare_events = vocabulary(train.events, k, cfg.max_events, exclude=(IDENTIFY,))
    pace_band = np.zeros_like(classes, dtype=np.int64)
    pace_band[spans.user] = act.activity_bands(
        spans.active_days.astype(np.float64), np.zeros(n_users, np.int64), PACE_BAND_CUTS
    )
    # The row before a user's first $identify (a sign-up page's view) is written by the twin with it: not a flow's.
    flow_events = without_lead_ins(train.events, names, k)
    depth_band = np.zeros_like(classes, dtype=np.int64)
    depth_band[user_ids] = band
    flow_job = _background(_flow_tables, flow_events, names, classes, depth, pace_band, depth_band, cfg)
    depth_rows = [
        pl.DataFrame({"class": c, "depth": np.arange(groups),
                      "share": np.bincount(depth_by_row[cls_by_row == c], minlength=groups) / max(int((cls_by_row == c).sum()), 1)})
        for c in range(n_classes)
    ]  # fmt: skip
    # ... and per activity band within the class: frequent users may also stay longer each time.
    depth_band_rows = [depth_shares_by_band(depth_by_row, cls_by_row, band, n_classes, n_bands, groups,
                                            act.DEPTH_BAND_PRIOR)]  # fmt: skip
    survival_rows, spd_rows, hour_rows, gap_rows, class_docs, streak_rows = [], [], [], [], [], []
    # Calendar days with a returning-users factor of their own are left out of the activity fits.
    calendar = calendar_days(*new_and_returning(first_days - window.first, activity["day"].to_numpy() - window.first,
                                                window.days))  # fmt: skip
    calendar_skip = np.array([window.first + d for d, _, f_ret in calendar if f_ret != 1.0], np.int64)
    spd_band_rows: list[pl.DataFrame] = []
    session_band = act.activity_bands(spans.active_days.astype(np.float64), cls_by_row, act.SESSION_BAND_CUTS)
    n_session_bands = len(act.SESSION_BAND_CUTS) + 1
    horizon = window.days
    for c in range(n_classes):
        members = cls_by_row == c
        betas, betas_life, tails = {}, {}, {}
        weekdays = act.weekday_multipliers(spans, activity, window, members)
        # Lifetimes first: their churn chances also weight the idle days the activity fits see.
        lives, posterior = {}, spans.churn_weight.copy()
        for kind_id, kind_name in enumerate(("new", "backlog")):
            m = members & (kind == kind_id)
            if m.sum() < act.MIN_STRATUM_USERS:
                m = members
            lives[kind_name], chance = act.self_consistent_survival(
                spans.lifetime[m], spans.churn_weight[m], horizon, window.last - spans.first[m]
            )
            own = kind[m] == kind_id  # a stratum too small to stand alone was fitted on the whole class
            posterior[np.flatnonzero(m)[own]] = chance[own]
        class_spans = dataclasses.replace(spans, churn_weight=posterior)
        # A user's own weekday (a timesheet tool's users each come on their day), taken into the activity fits.
        seen = act.weekdays_seen(spans, activity, members)
        loyalty, loyalty_band = act.weekday_loyalty(spans, seen, members, weekdays, k)
        own = (act.own_weekdays_posterior(seen, weekdays / weekdays.sum(), loyalty[loyalty_band])
               if loyalty.any() else None)  # fmt: skip
        grid = act.daily_grid(class_spans, activity, window, members, calendar_skip, own)
        by_age = act.age_profile(grid, weekdays, (window.days + 6) // 7)
        by_recency = act.return_by_recency(grid, weekdays, by_age)
        streak_rows.append(pl.DataFrame({"class": c, "level": np.arange(levels),
                                         "log_odds": act.streak_spread(grid, weekdays, by_age, by_recency, levels, k)}))  # fmt: skip
        for kind_id, kind_name in enumerate(("new", "backlog")):
            m = members & (kind == kind_id)
            if m.sum() < act.MIN_STRATUM_USERS:
                m = members
            life = lives[kind_name]
            survival_rows.append(pl.DataFrame({"class": c, "kind": kind_name, "age_days": np.arange(len(life.survival)),
                                               "survival": life.survival}))  # fmt: skip
            tails[kind_name] = round(life.tail_hazard, 6)
            a, b = act.beta_binomial(succ[m], trials[m])
            betas[kind_name] = [round(a, 6), round(b, 6)]
            # Per lifetime band, each user as gone (by their churn chance) or still there: see returns_by_fate.
            fate_s, fate_t, fate_band, fate_w = act.returns_by_fate(spans, window, posterior)
            both = np.r_[m, m]
            by_band = []
            for band in range(len(act.LIFE_BANDS)):  # four bands
                mb = both & (fate_band == band)
                enough = fate_w[mb].sum() >= act.MIN_STRATUM_USERS
                ab = act.beta_binomial(fate_s[mb], fate_t[mb], fate_w[mb]) if enough else (a, b)
                by_band.append([round(ab[0], 6), round(ab[1], 6)])
            betas_life[kind_name] = by_band
        ids = user_ids[members]
        class_activity = activity.filter(pl.col("user").is_in(ids))
        pmf = act.sessions_per_day_pmf(class_activity, k)
        spd_rows.append(
            pl.DataFrame({"class": c, "sessions": np.arange(1, len(pmf)), "share": pmf[1:]}).filter(
                pl.col("share") > 0
            )
        )
        # ... per activity band, and the copula's correlation on what the band does not say.
        row_band = session_band[np.searchsorted(user_ids, class_activity["user"].to_numpy())]
        by_band = act.sessions_per_day_by_band(class_activity, row_band, n_session_bands, pmf, k)
        spd_band_rows.append(pl.DataFrame({
            "class": c, "band": np.repeat(np.arange(n_session_bands), len(pmf) - 1),
            "sessions": np.tile(np.arange(1, len(pmf)), n_session_bands), "share": by_band[:, 1:].ravel(),
        }).filter(pl.col("share") > 0))  # fmt: skip
        profile = act.hour_profile(first_hours.filter(pl.col("class") == c), pooled_hours)
        wd, hr = np.meshgrid(np.arange(7), np.arange(24), indexing="ij")
        hour_rows.append(
            pl.DataFrame({"class": c, "weekday": wd.ravel(), "hour": hr.ravel(), "share": profile.ravel()})
        )
        class_gaps = gaps.filter(pl.col("class") == c)
        for left in (-1, *range(act.GAP_LEFT)):  # any count of sessions to come, then each
            part = class_gaps if left < 0 else class_gaps.filter(pl.col("left") == left)
            sketch = (
                act.gap_sketch(part["share"].to_numpy(), levels, k, log=False)
                if part.height >= act.GAP_BLOCK_MIN_GAPS
                else None
            )
            if sketch is not None:
                gap_rows.append(
                    pl.DataFrame({"class": c, "left": left, "level": np.arange(levels), "share": sketch})
                )
        class_docs.append(
            {
                "id": c,
                "share_new": round(
                    float(((1 - backlog) * members).sum() / max((1 - backlog).sum(), 1e-9)), 6
                ),
                "share_backlog": round(float((backlog * members).sum() / max(backlog.sum(), 1e-9)), 6),
                "return_beta": betas,
                "return_beta_by_life": betas_life,
                "return_by_recency": [round(float(x), 4) for x in by_recency[1:]],
                "activity_by_age_week": [round(float(x), 4) for x in by_age],
                "tail_hazard": tails,
                "weekday_multipliers": [round(float(x), 6) for x in weekdays],
                "weekday_loyalty": [round(float(x), 6) for x in loyalty] if loyalty.any() else [],
                "sessions_persistence": round(
                    act.sessions_persistence(class_activity, by_band, k, row_band), 6
                ),
                "identified_share": {},
                "training_users": int(members.sum()),
            }
        )

    strata = np.zeros_like(classes, dtype=np.int64)
    strata[user_ids] = cls_by_row.astype(np.int64) * 2 + kind
    identity = fit_identity(train.events, strata, k, 2 * n_classes, names)
    shares = identity.pop("identified_share")
    # Who arrives when: each class's share among the users of each arrival kind first seen in each week of
    # the window (each user counted by the chance of either kind; a kind's mix shrunk toward its share_*).
    # Each block compared with the others as they looked after as few days as its own users had.
    kinds = {"new": 1 - backlog, "backlog": backlog}
    looks = class_looks(sessions, users, sample, mixture, window, kinds)
    mixes = {
        name: class_mix_by_block(first_days - window.first, cls_by_row, n_classes, window.days,
                                 np.array([doc[f"share_{name}"] for doc in class_docs]), w, looks[name])
        for name, w in kinds.items()
    }  # fmt: skip
    for c, doc in enumerate(class_docs):
        doc["identified_share"] = {"new": shares[2 * c], "backlog": shares[2 * c + 1]}
        doc["share_by_block"] = {name: [float(x) for x in mix[:, c]] for name, mix in mixes.items()}

    # Properties on the sampled users' rows.
    keys, dropped_keys = candidate_keys(key_stats, cfg.max_property_keys)
    id_map = train.events.select("distinct_id", "user").unique("distinct_id")
    sample_rows = property_sample.join(id_map, on="distinct_id", how="inner")
    identity |= _groups_and_sets(sample_rows, classes, n_classes, n_users, k, cfg.max_categories)
    sample_rows = sample_rows.filter(pl.col("event").is_in(names))
    if "timestamp" in sample_rows.columns:  # the sampled users' visits: keys constant within one are found
        day = pl.col("timestamp").dt.date().cast(pl.Int32) - window.first  # and a version's weekly mix
        sample_rows = (
            sample_sessions(sample_rows, cfg.idle_minutes).with_columns(day.alias("day")).drop("timestamp")
        )
    sampled = sample_rows["user"].unique().sort().to_numpy() if sample_rows.height else np.zeros(0, np.int64)
    user_class = pl.DataFrame({"user": sampled, "class": classes[sampled].astype(np.int16)})
    props = fit_properties(
        sample_rows, keys, k, levels, cfg.max_categories, dropped_keys, user_class, window.days
    )

    holdout_users = int(prepared.users["holdout"].sum())
    first = dt.date(1970, 1, 1) + dt.timedelta(days=window.first)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "source": {
            "export": export_name,
            "rows": prepared.rows,
            "users": prepared.users.height,
            "training_users": n_users,
            "holdout_users": holdout_users,
            "first_day": first,
            "last_day": first + dt.timedelta(days=window.days - 1),
            "sessions_rebuilt": prepared.rebuilt,
            "machine_users": machines.len(),
            "machine_events": left_out_events,
        },
        "generation": {
            "users": prepared.users.height,
            "days": window.days,
            "start": first,
            "seed": cfg.seed,
            "churn_multiplier": 1.0,
            "drop_events": [],
        },  # fmt: skip
        "arrivals": {
            "intercept": round(arrivals.intercept, 6),
            "slope": round(arrivals.slope, 6),
            "weekday_log": [round(x, 6) for x in arrivals.weekday_log],
            "backlog_users": round(arrivals.backlog_users, 3),
            "backlog_decay": round(arrivals.backlog_decay, 6),
            "window_days": window.days,
            "week_factor": list(arrivals.week_factor),
        },
        "classes": class_docs,
        "class_selection": {
            "criterion": "BIC",
            "sample_users": int(len(sample)),
            "min_class_users": min_class,
            "candidates": candidates,
        },  # fmt: skip
        "sessions": {
            "idle_minutes": cfg.idle_minutes,
            "max_hours": cfg.max_session_hours,
            # Table sessions_by_activity: band b holds a class's users whose active-day rank is below cut b.
            "band_cuts": [round(x, 6) for x in act.SESSION_BAND_CUTS],
        },  # fmt: skip
        "flow": {
            "order": 2,
            "smoothing": cfg.flow_smoothing,
            "events": names,
            "end_hazard": "by class, depth group, event and position (0-31, then buckets 12 % wider), "
            "its log odds shifted by event and time since the session's first event (buckets doubling from 1 s)",
            # Session groups: depth group x pace_groups + pace group (seconds per event within the depth group).
            "depth_groups": groups,
            # Table depth_by_activity: band b holds a class's users whose active-day rank is below cut b.
            "depth_band_cuts": [round(x, 6) for x in act.DEPTH_BAND_CUTS],
            "pace_groups": cfg.pace_groups,
            # Table user_pace: band b holds the users whose active-day rank among all users is below cut b.
            "pace_band_cuts": [round(x, 6) for x in PACE_BAND_CUTS],
            # Paces (session_pace, user_pace) are log factors of the gap's seconds (older specs: added to log1p).
            "pace_scales_seconds": True,
            # Share of an event's gaps to itself, after such a gap, that copy the gap before (a clock).
            "repeated_gap_share": {},  # the flows' own, filled in below
            # Per class, the most events in one session that k of its users reached: a twin session ends there.
            "longest_session": [],  # filled in below
        },  # fmt: skip
        "identity": identity,
        "properties": {
            "kinds": props.kinds,
            "constants": list(props.constants),
            "combo_share": round(props.combo_share, 6),
            "session_constants": list(props.session_keys),
            "session_combo_share": round(props.session_combo_share, 6),
            "session_sticky_keys": list(props.sticky_keys),
            "session_sticky_share": props.sticky_share,
            "follows": props.follows,
            "sample_users": int(sample_rows["user"].n_unique()) if sample_rows.height else 0,
        },  # fmt: skip
        "fit": cfg.model_dump(mode="json"),
        "privacy": {
            "k": k,
            "holdout_share": cfg.holdout_share,
            "identifiers": "never copied: users, devices, sessions and event uuids are generated",
            "timestamps": "never copied: only distributions of hours, gaps and durations",
            "dropped_events": [
                {"event": e, "reason": f"beyond the {cfg.max_events} most widespread"} for e in dropped_events
            ],
            # Names not written down: an event or key seen by few users, or holding personal data, is their data.
            "rare_events_dropped": rare_events,
            "dropped_properties": props.dropped,
            "rare_properties_dropped": props.rare_keys,
            "url_query_strings_trimmed": props.urls_trimmed,
            "url_paths_with_ids_replaced": props.url_segments,
            "personal_values_removed": props.personal_values,
            "rare_values": f"values seen for fewer than {k} users became '{'other'}'",
            "numbers": f"quantile sketches of {levels} points, winsorized at the {k}-th smallest and largest value",
        },
    }
    tables = {
        "survival": pl.concat(survival_rows),
        "sessions_per_day": pl.concat(spd_rows),
        "sessions_by_activity": pl.concat(spd_band_rows),
        "hour_profile": pl.concat(hour_rows),
        # neighbours -1: the bucket's factor; 0..3: the factor by neighbours too (see act.first_hour_tilt).
        "first_hour_tilt": pl.DataFrame(
            {
                "bucket": np.repeat(np.arange(act.DAY_SESSION_BUCKETS), (act.NEIGHBOURS + 1) * 24),
                "neighbours": np.tile(np.repeat(np.arange(-1, act.NEIGHBOURS), 24), act.DAY_SESSION_BUCKETS),
                "hour": np.tile(np.arange(24), act.DAY_SESSION_BUCKETS * (act.NEIGHBOURS + 1)),
                "factor": np.concatenate([tilt[0][:, None, :], tilt[1]], axis=1).ravel(),
            }
        ),
        "day_clock": pl.DataFrame(
            {
                "class": np.repeat(np.arange(n_classes), 24),
                "hour": np.tile(np.arange(24), n_classes),
                "share": clock.ravel(),
            }
        ),
        "day_gap_shares": pl.concat(gap_rows)
        if gap_rows
        else pl.DataFrame({"class": [], "left": [], "level": [], "share": []}),
        "depth_groups": pl.concat(depth_rows),
        "depth_by_activity": pl.concat(depth_band_rows),
        "user_streak": pl.concat(streak_rows),
        "event_keys": props.event_keys,
        "event_categories": props.categories,
        "event_next_categories": props.next_categories,
        "event_numbers": props.numbers,
        "event_numbers_by": props.numbers_by,
        "constant_marginals": props.marginals,
        "constant_combos": props.combos,
        "class_combos": props.class_combos,
        "session_marginals": props.session_marginals,
        "session_combos": props.session_combos,
        "property_lookups": props.lookups,
        "property_trends": props.trends,
        "property_sources": props.sources,
    }
    # The calibrations simulate activity only: they run on the spec with empty flow tables, the flows then put in.
    doc = build_document(document)
    spec = TwinSpec(
        doc,
        validate_tables(doc, {**tables, **{n: pl.DataFrame(schema=TABLE_SCHEMAS[n]) for n in FLOW_TABLES}}),
    )
    spec = calibrate_week_spread(spec, activity, window)
    spec = calibrate_streak_scale(spec, activity, window)
    spec = calibrate_survival(spec, window)
    spec = calibrate_first_days(spec, activity, user_ids, first_days, cls_by_row * 2 + kind, window)
    spec = calibrate_calendar(spec, activity, first_days, window)
    flow_tables, repeated, longest = flow_job.result()
    flow = {**spec.document.flow, "repeated_gap_share": repeated, "longest_session": longest}
    doc = spec.document.model_copy(update={"flow": flow})
    return TwinSpec(doc, validate_tables(doc, {**spec.tables, **flow_tables}))


FLOW_TABLES = (
    "transitions",
    "end_hazard",
    "end_by_elapsed",
    "end_by_activity",
    "session_pace",
    "user_pace",
    "inter_event_times",
)


def _groups_and_sets(
    sample: pl.DataFrame, classes: np.ndarray, n_classes: int, n_users: int, k: int, max_values: int
) -> dict[str, object]:
    """Return the identity parts fitted on the sampled rows (user, event, properties): ``groups`` (see
    :func:`groups.fit_groups`) and ``set`` (what ``$identify`` rows set; :func:`groups.fit_set`), where present."""
    out: dict[str, object] = {}
    if sample.is_empty():
        return out
    columns = [c for c in sample.columns if re.match(GROUP_COLUMNS, c)]
    users = sample["user"].unique().sort().to_numpy()
    user_class = pl.DataFrame({"user": users, "class": classes[users].astype(np.int64)})
    groups = fit_groups(sample, columns, user_class, n_classes, users.size / max(n_users, 1), k)
    if groups:
        out["groups"] = groups
    sets = fit_set(sample, IDENTIFY, k, group_holders(sample), max_values)
    if sets:
        out["set"] = sets
    return out


def _background(fn, *args) -> Future:  # noqa: ANN001
    """Return the future of ``fn(*args)`` run on a thread of its own (NumPy and Polars let go of the GIL)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-fit")
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)  # the thread ends with the job


def _flow_tables(events: pl.DataFrame, names: list[str], classes: np.ndarray, depth: np.ndarray,
                 pace_band: np.ndarray, depth_band: np.ndarray, cfg: FitConfig) -> tuple[dict[str, pl.DataFrame], dict[str, float], list[int]]:  # fmt: skip
    """Return the spec's flow tables (``FLOW_TABLES``), its ``flow.repeated_gap_share`` and ``flow.longest_session``."""
    k, levels = cfg.k_anonymity, cfg.quantile_levels
    coded = coded_sessions(events, names)
    flows = fit_flows(coded, classes, depth, names, k, cfg.flow_smoothing, levels, depth_band)
    # Each user's own pace, by band of active days over all users (see flows.user_pace).
    paces = user_pace(flows.session_paces, flows.within_user, pace_band, len(PACE_BAND_CUTS) + 1, levels, k)
    label = np.array([*names, START, *REPEATS, FIRST], dtype=object)
    bucket = flows.transitions["bucket"].to_numpy()
    transitions = flows.transitions.select(
        "class",
        "depth",
        pl.Series("prev", label[flows.transitions["prev"].to_numpy()], pl.String),
        pl.Series("cur", label[flows.transitions["cur"].to_numpy()], pl.String),
        pl.Series("position", np.where(bucket >= 0, BUCKETS[np.maximum(bucket, 0)], -1), pl.Int32),
        pl.Series("next", label[flows.transitions["next"].to_numpy()], pl.String),
        "probability",
    )
    hazard = flows.hazard.select(
        "class",
        "depth",
        pl.Series("cur", label[flows.hazard["cur"].to_numpy()], pl.String),
        pl.Series("position", BUCKETS[flows.hazard["bucket"].to_numpy()], pl.Int32),
        "hazard",
    )
    by_elapsed = flows.end_by_elapsed.select(
        pl.Series("cur", label[flows.end_by_elapsed["cur"].to_numpy()], pl.String),
        (2 ** pl.col("elapsed") - 1).cast(pl.Int32).alias("elapsed_s"),
        "log_odds",
    )
    time_label = np.array([*names, START, "*"], dtype=object)
    times = flows.times
    inter = times.select(
        pl.Series("cur", time_label[times["cur"].to_numpy()], pl.String),
        pl.Series("next", time_label[times["next"].to_numpy()], pl.String),
        "position",
        "level",
        "log_seconds",
    )

    tables = {
        "transitions": transitions,
        "end_hazard": hazard,
        "end_by_elapsed": by_elapsed,
        "end_by_activity": flows.end_by_activity,
        "session_pace": pl.DataFrame({"level": np.arange(levels), "log_pace": flows.pace}),
        "user_pace": paces,
        "inter_event_times": inter,
    }
    repeated = {names[x]: share for x, share in sorted(flows.repeat_gap.items()) if share > 0}
    return tables, repeated, longest_sessions(coded, classes, k)


def longest_sessions(coded: pl.DataFrame, classes: np.ndarray, k: int) -> list[int]:
    """Return, per class, the most events in one session that k of its users reached (all users' where it has fewer).

    The end hazards of rare late positions are smoothed toward the event's usual ones, and positions past the
    last one k users reached keep the last hazard, so a chain that loops can run on far past any session of
    the export: the synthetic B2B product's sessions end by 25 events, the twin had 0.6 % longer ones. A twin
    session ends at its class's longest.
    """
    n_classes = int(np.max(classes)) + 1 if len(classes) else 1
    if coded.height == 0:
        return [0] * n_classes
    per_user = coded.group_by("user").agg((pl.col("pos").max() + 1).alias("events"))
    events = per_user["events"].to_numpy().astype(np.int64)
    cls = np.asarray(classes)[per_user["user"].to_numpy()].astype(np.int64)
    overall = np.sort(events)[::-1][min(k, events.size) - 1]
    out = []
    for c in range(n_classes):
        mine = np.sort(events[cls == c])[::-1]
        out.append(int(mine[k - 1]) if mine.size >= k else int(overall))
    return out


def class_looks(sessions: pl.DataFrame, users: pl.DataFrame, sample: np.ndarray, mixture: Mixture,
                window: Window, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # fmt: skip
    """Return, per set of user weights (an arrival kind's), the users of each 7-day block (second axis) by class
    (third), judged on no more days of age than the users of a block (first axis) have.

    Users first seen before that block are judged on as many days as a user first seen on one of its days
    has (its days taken in turn by the users' own first days, so the spans spread as its users' do); its own
    and later users on all their days. Counted on the class sample (``sample``: rows of ``users``, sorted by
    user) and scaled to each block's weighted users (see :func:`~.arrivals.class_mix_by_block`).
    """
    block, blocks = day_blocks(window.days)
    first_day = users["first_day"].to_numpy()
    first = first_day[sample] - window.first
    at = block[np.clip(first, 0, window.days - 1)]
    every = block[np.clip(first_day - window.first, 0, window.days - 1)]
    ids = users["user"].to_numpy()[sample]
    part = sessions.filter(pl.col("user").is_in(pl.Series(ids)))
    row = np.searchsorted(ids, part["user"].to_numpy())
    day = part["day"].to_numpy()
    stride = window.last + 2
    user_day = np.unique(row.astype(np.int64) * stride + day)  # the sample's distinct (user, day)
    ud_row, ud_day = user_day // stride, user_day % stride
    own = window.last + 1 - first_day[sample]  # each user's own days in the window
    looks = {name: np.zeros((blocks, blocks, mixture.classes)) for name in weights}
    totals = {name: np.bincount(every, w, minlength=blocks) for name, w in weights.items()}  # weighted users
    for b in range(blocks):  # a dozen blocks or so, each over the class sample's sessions
        days = np.flatnonzero(block == b)
        span = np.where(first < days[0], window.days - days[first % days.size], own)
        until = first_day[sample] + span
        keep = day < until[row]
        frame = pl.DataFrame({
            "user": ids,
            "n_sessions": np.bincount(row[keep], minlength=ids.size),
            "active_days": np.bincount(ud_row[ud_day < until[ud_row]], minlength=ids.size),
            "exposure_days": np.minimum(own, span),
        })  # fmt: skip
        cls = assign(describe_users(part.filter(pl.Series(keep)), frame), mixture)
        for name, w in weights.items():
            counts = np.zeros((blocks, mixture.classes))
            np.add.at(counts, (at, cls), w[sample])
            looks[name][b] = (
                counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12) * totals[name][:, None]
            )
    return looks


# Rounds of the lifetime curves' correction by simulation (see calibrate_survival); one gives the same to 0.01.
SURVIVAL_CALIBRATION_ROUNDS = 2


def simulated_activity(
    spec: TwinSpec, users: int, days: int, population_of: ActivitySimulation | None = None
) -> tuple[ActivitySimulation, pl.DataFrame, pl.DataFrame]:
    """Return the twin's activity over ``days``: its simulation, the active (user, day) rows and each user's span.

    ``population_of``: a simulation whose users to take again (see ``ActivitySimulation.with_activity_of``).
    """
    from simulation_assets.core.twin.generate import (
        ActivitySimulation,  # the generator imports this package's estimators
    )

    if population_of is not None:
        gen = population_of.with_activity_of(spec)
    else:
        gen = ActivitySimulation(spec.with_generation(users=users, days=days))
    day = np.concatenate([np.full(a.size, d) for d, a in enumerate(gen.active_by_day)])
    activity = pl.DataFrame({"user": np.concatenate(gen.active_by_day), "day": day}).sort("user", "day")
    return gen, activity, act.first_last_days(activity)


WEEK_SPREAD_MAX = 2.0  # the largest week spread tried (a user's odds x 7 or / 7 in one week in six)
WEEK_SPREAD_ROUNDS = 4  # simulations after the first, each narrowing the bracket (regula falsi)
MIN_SPREAD_WEEKS = 200  # fewer weeks inside the export's users' spans than this: no spread fitted


def calibrate_week_spread(spec: TwinSpec, activity: pl.DataFrame, window: Window) -> TwinSpec:
    """Return the spec with every class's ``week_spread`` fitted by simulation (one value for all classes).

    The day-by-day model (a user's rate, the rhythm, the days since the last visit) spreads a user's visits
    over their weeks; real users' visits bunch: a series watched in a few evenings, then two quiet weeks.
    HogFlix's 1,200-user export left 18.0 % of the weeks inside its users' active spans without a visit, the
    twin 14.1 %: with as many active days, the twin's users came in more of their weeks, and kept 3-5 points
    more of each cohort in weeks 3-7. Each week of the run multiplies a user's odds of a visit by
    exp(s z - s^2 / 2) (z standard normal per user and week); s is the one whose simulated twin
    (``calibration_users`` users over the export's days) leaves as many of those weeks empty as the export's
    training users do, found by regula falsi in [0, ``WEEK_SPREAD_MAX``]. 0 when the twin already leaves as
    many empty (its visits bunch enough) or the export has too few such weeks to say.
    """
    real, weeks = act.empty_week_share(activity["user"].to_numpy(), activity["day"].to_numpy() - window.first)
    if weeks < MIN_SPREAD_WEEKS:
        return spec
    users = calibration_users(spec)

    def with_spread(s: float) -> TwinSpec:
        classes = [cd.model_copy(update={"week_spread": round(s, 4)}) for cd in spec.document.classes]
        return TwinSpec(spec.document.model_copy(update={"classes": classes}), spec.tables)

    runs: list[ActivitySimulation] = []  # the first; the spread leaves the population as it is

    def gap(s: float) -> float:  # the twin's share of empty weeks less the export's
        gen, sim, _ = simulated_activity(with_spread(s), users, window.days, runs[0] if runs else None)
        runs.append(gen)
        return act.empty_week_share(sim["user"].to_numpy(), sim["day"].to_numpy())[0] - real

    spread = increasing_root(gap, WEEK_SPREAD_MAX, WEEK_SPREAD_ROUNDS - 1)
    return spec if spread is None else with_spread(spread)


def increasing_root(gap: Callable[[float], float], hi: float, rounds: int) -> float | None:
    """Return where ``gap`` (increasing, a simulation per call) crosses zero in [0, ``hi``], by regula falsi.

    None when ``gap(0) >= 0`` (nothing to add); ``hi`` when ``gap(hi) <= 0``; otherwise the bracket is narrowed
    ``rounds`` times and the root interpolated from the last one.
    """
    lo, g_lo = 0.0, gap(0.0)
    if g_lo >= 0:
        return None
    g_hi = gap(hi)
    if g_hi <= 0:
        return hi
    for _ in range(rounds):
        mid = lo - g_lo * (hi - lo) / (g_hi - g_lo)
        g_mid = gap(mid)
        lo, g_lo, hi, g_hi = (mid, g_mid, hi, g_hi) if g_mid < 0 else (lo, g_lo, mid, g_mid)
    return lo - g_lo * (hi - lo) / (g_hi - g_lo)


STREAK_SCALE_MAX = 8.0  # the largest multiplier of the users' own streaks tried
STREAK_SCALE_ROUNDS = 3  # simulations after the bracket's, each narrowing it (regula falsi)
MIN_STREAK_USERS = 200  # fewer export users with two returns or more than this: the streaks stay as estimated


def calibrate_streak_scale(spec: TwinSpec, activity: pl.DataFrame, window: Window) -> TwinSpec:
    """Return the spec with the users' own streaks scaled by a factor fitted by simulation, keeping their rates.

    The one-step estimate of a user's streak is taken against their own rate, estimated from the same days: a
    user who comes in runs also looks like a frequent one, and the rate takes part of the run, so the sketch
    comes out too narrow (HogFlix's 1,200 users' shares of next-day returns vary beyond binomial noise by
    0.050 in variance, the twin's by 0.041). Every class's ``streak_keeps_rate`` is set (a streak moves
    visits into runs and leaves the user's share of active days as their return chance says: widened alone,
    the streaks gave HogFlix's twin more active days than its users, active days KS 0.054 -> 0.064), and its
    ``streak_scale`` is the factor (regula falsi in [0, ``STREAK_SCALE_MAX``], one for every class) whose twin
    (``calibration_users`` users over the export's days, one population) has the export's training users'
    between-user variance of that share (:func:`~.activity.next_day_spread`). Runs after the week spread's
    calibration: good weeks also bring days in a row.
    """
    if not (spec.tables["user_streak"]["log_odds"] != 0).any():
        return spec
    days = activity.select("user", "day").sort("user", "day")
    real, counted = act.next_day_spread(days["user"].to_numpy(), days["day"].to_numpy())
    if counted < MIN_STREAK_USERS:
        return spec
    users = calibration_users(spec)

    def scaled(m: float) -> TwinSpec:
        update = {"streak_scale": round(m, 4), "streak_keeps_rate": True}
        classes = [cd.model_copy(update=update) for cd in spec.document.classes]
        return TwinSpec(spec.document.model_copy(update={"classes": classes}), spec.tables)

    runs: list[ActivitySimulation] = []  # the first; the scale leaves the population's draws as they are

    def gap(m: float) -> float:  # the twin's spread less the export's
        gen, sim, _ = simulated_activity(scaled(m), users, window.days, runs[0] if runs else None)
        runs.append(gen)
        return act.next_day_spread(sim["user"].to_numpy(), sim["day"].to_numpy())[0] - real

    scale = increasing_root(gap, STREAK_SCALE_MAX, STREAK_SCALE_ROUNDS)
    return scaled(0.0 if scale is None else scale)


def calibrate_survival(spec: TwinSpec, window: Window) -> TwinSpec:
    """Return the spec with each (class, kind)'s lifetime curve corrected for the bias of its estimator.

    The lifetime estimator judges users by their absence at the window's end and by the gaps of users
    like them; gaps seen between visits are the shorter ones (a long gap does not fit in the window),
    so it takes too many absences for departures: fitted to the twin's own activity, whose lifetimes
    are known, HogFlix's curves came out 3-8 points low at 6-9 weeks of age, and the twin kept too
    few of the first week's users in the window's last week. So the twin's activity is simulated over
    the export's days (``calibration_users`` users), the same estimator is run on it, and each
    curve is multiplied by the simulated users' own survival over the estimate (the tail hazard by
    the same ratio over the ages it is taken from); ``SURVIVAL_CALIBRATION_ROUNDS`` times from the fitted curves,
    the simulation each time from the corrected ones.
    """
    doc, fitted = spec.document, spec.tables["survival"]
    users = calibration_users(spec)
    corrected = spec
    for _ in range(SURVIVAL_CALIBRATION_ROUNDS):
        gen, activity, spans_frame = simulated_activity(corrected, users, window.days)
        ids = spans_frame["user"].to_numpy()
        cls, kind = gen.population.cls[ids].astype(np.int64), gen.population.kind[ids]
        lifetime = gen.population.lifetime[ids]
        sim_window = Window(0, window.days - 1)
        spans = act.user_spans(spans_frame, activity, cls, sim_window)
        rows, tails = [], {}
        for (c, kind_name), part in fitted.group_by("class", "kind", maintain_order=True):
            c, kind_id = int(c), KINDS.index(str(kind_name))
            curve = part.sort("age_days")["survival"].to_numpy()
            tail = float(doc.classes[c].tail_hazard.get(str(kind_name), 0.0))
            m = (cls == c) & (kind == kind_id)
            if m.sum() < act.MIN_STRATUM_USERS:
                m = cls == c
            if m.sum() >= act.MIN_STRATUM_USERS:
                est, _ = act.self_consistent_survival(
                    spans.lifetime[m], spans.churn_weight[m], window.days, sim_window.last - spans.first[m]
                )
                ages = np.arange(curve.size)
                truth = (lifetime[m][None, :] >= ages[:, None]).mean(axis=1)
                guess = act.survival_at(est, ages)
                ratio = np.divide(truth, guess, out=np.ones_like(truth), where=(guess > 0) & (truth > 0))
                curve = np.minimum.accumulate(np.clip(curve * ratio, 0.0, 1.0))
                keep = len(est.survival) - 1
                start = max(1, (2 * keep) // 3)
                s_start, s_keep = (lifetime[m] >= start).mean(), (lifetime[m] >= keep).mean()
                if keep > start and s_start > 0 and s_keep > 0 and est.tail_hazard < 1:
                    true_tail = 1 - (s_keep / s_start) ** (1 / (keep - start))
                    tail = float(np.clip(1 - (1 - tail) * (1 - true_tail) / (1 - est.tail_hazard), 0.0, 1.0))
            rows.append(part.sort("age_days").with_columns(pl.Series("survival", curve)))
            tails.setdefault(c, {})[str(kind_name)] = round(tail, 6)
        classes = [cd.model_copy(update={"tail_hazard": {**cd.tail_hazard, **tails.get(c, {})}})
                   for c, cd in enumerate(doc.classes)]  # fmt: skip
        tables = {**spec.tables, "survival": pl.concat(rows)}
        corrected = TwinSpec(doc.model_copy(update={"classes": classes}), tables)
    return corrected


# Rounds of the calendar days' factors by simulation (calibrate_calendar): two left a marketplace's Christmas 7-17 % high.
CALENDAR_ROUNDS = 3


def calibrate_calendar(
    spec: TwinSpec, activity: pl.DataFrame, first_days: np.ndarray, window: Window
) -> TwinSpec:
    """Return the spec with the export's calendar days (``arrivals.calendar_days``), their factors by simulation.

    The factors (on the day's expected new users, and on the odds of a return that day) start at the day's
    newcomers and returning users over their weekday's level and are multiplied by the export's count over
    the twin's (scaled to as many users), counted on the twin's simulated activity (``calibration_users``
    users, over its days), ``CALENDAR_ROUNDS`` times: an odds factor moves
    the day's visits by less than itself, and the twin's level of the weekday is its own.
    """
    days = window.days
    new, returning = new_and_returning(
        first_days - window.first, activity["day"].to_numpy() - window.first, days
    )
    found = calendar_days(new, returning)
    if not found:
        return spec
    target = np.array([[f_new, f_ret] for _, f_new, f_ret in found])
    at = np.array([d for d, _, _ in found])
    factor = target.copy()
    users = calibration_users(spec)
    epoch = dt.date(1970, 1, 1)

    def with_factors(f: np.ndarray) -> TwinSpec:
        cal = [CalendarDay(date=epoch + dt.timedelta(days=int(window.first + d)), arrivals=round(float(a), 4),
                           activity=round(float(b), 4)) for d, (a, b) in zip(at, f)]  # fmt: skip
        return TwinSpec(spec.document.model_copy(update={"calendar": cal}), spec.tables)

    real = np.stack([new[at], returning[at]], axis=1)
    for _ in range(CALENDAR_ROUNDS):
        _, sim, spans = simulated_activity(with_factors(factor), users, days)
        twin_new, twin_ret = new_and_returning(spans["first_day"].to_numpy(), sim["day"].to_numpy(), days)
        scale = first_days.size / max(spans.height, 1)  # the export's users per twin user
        twin = np.stack([twin_new[at], twin_ret[at]], axis=1) * scale
        moved = (target != 1.0) & np.array([False, True])  # the newcomers' share of their block is exact
        # Within a factor of 10 of the export's own ratio: a day the rest of the model misses is no calendar day.
        lo, hi = np.minimum(target, 1.0) / 10, np.maximum(target, 1.0) * 10
        factor = np.where(moved, np.clip(factor * real / np.maximum(twin, 1.0), lo, hi), factor)
    return with_factors(factor)


CALIBRATION_ROUNDS = 4
# Twin users simulated per calibration round: as many as the export has, at least CALIBRATION_USERS and at most
# CALIBRATION_MAX_USERS (a news site's 555,000 users took 12 of the fit's 52 CPU seconds in calibration runs,
# 5 at 200,000, and its twin's fidelity figures came out the same: docs/twin-history.md, tenth round).
CALIBRATION_USERS = 20_000
CALIBRATION_MAX_USERS = 200_000
MIN_CALIBRATION_USERS = 30  # a (class, kind, day of age) with fewer users on either side keeps its factor


def calibration_users(spec: TwinSpec) -> int:
    """Return how many twin users a calibration round simulates (``CALIBRATION_USERS``, ``CALIBRATION_MAX_USERS``)."""
    return int(np.clip(spec.document.generation.users, CALIBRATION_USERS, CALIBRATION_MAX_USERS))


def first_days_visits(first: np.ndarray, cls: np.ndarray, active_user: np.ndarray, active_day: np.ndarray,
                      last: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Return (visits, users) per (class, day of age 0..AGE_DAYS - 1) of the users seen long enough to count.

    ``first``/``cls``: per user; ``active_user``/``active_day``: one row per active (user, day); ``last``: the
    last day. A user counts when all of their first AGE_DAYS days are by ``last`` (in a window shorter than
    twice that, half of its days): a user first seen a few days before the end is put in a class on those
    days alone, so the classes of late arrivals mean what a short history looks like (an app whose users'
    interest fades with age: its busiest two classes were 2.5-4 % of the users first seen in its first
    three weeks and 32-46 % of those of its last three, and a middling class's users first seen on days
    50-63 came on 2.2 of their first six days after the first, those first seen on days 7-20 on 4.1).
    Counted at the ages they had room for, they pulled the young ages' shares toward their own and the
    later ages not: one set of users for every age.
    """
    days = act.AGE_DAYS
    room = np.clip(last - first + 1, 0, days)  # ages 0..room-1 are within the window
    counted = last - first + 1 >= min(days, (last + 1) // 2)
    age = active_day - first[active_user]
    keep = (age >= 0) & (age < days) & counted[active_user]
    visits = np.bincount(cls[active_user][keep] * days + age[keep], minlength=n_classes * days)
    users = np.zeros((n_classes, days + 1))
    np.add.at(users, (cls[counted], room[counted]), 1.0)
    at_risk = users[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]  # users with room > age
    return visits.reshape(n_classes, days).astype(np.float64), at_risk


def calibrate_first_days(spec: TwinSpec, activity: pl.DataFrame, user_ids: np.ndarray, first_days: np.ndarray,
                         strata: np.ndarray, window: Window) -> TwinSpec:  # fmt: skip
    """Return the spec with the first-days odds factors of each class and kind calibrated by simulation.

    The activity fits take each user's own share of active days as their rate, so a user who came
    every day of a short first week looks like a daily user and says little about first days. A
    twin whose users draw a rate and then live their first days came back on 55-60 % of the second
    to seventh days of HogFlix's new users (HogFlix: 64 % on the second, 51 % on the seventh) and on
    40 % of the ninth to fourteenth (HogFlix: 31 %). So the twin's own first days are simulated
    (``calibration_users`` users, over the export's days), and the
    factor of each (class, kind, day of age) is multiplied by the odds of the share of the export's
    users back that day over the twin's, ``CALIBRATION_ROUNDS`` times from 1. ``user_ids``,
    ``first_days``, ``strata``: the training users (sorted), their first day and class x 2 + kind.
    """
    # Imported here: the generator imports this package's estimators, not the other way round.
    from simulation_assets.core.twin.generate import ActivitySimulation

    n = 2 * len(spec.document.classes)
    real_v, real_n = first_days_visits(
        first_days - window.first, strata.astype(np.int64), np.searchsorted(user_ids, activity["user"].to_numpy()),
        activity["day"].to_numpy() - window.first, window.days - 1, n,
    )  # fmt: skip
    real = np.clip(real_v / np.maximum(real_n, 1), 1e-3, 1 - 1e-3)
    factors = np.ones((n, act.AGE_DAYS))
    users = calibration_users(spec)
    first: ActivitySimulation | None = None  # the factors leave the population as it is: one for every round
    for _ in range(CALIBRATION_ROUNDS):
        if first is None:
            gen = first = ActivitySimulation(spec.with_generation(users=users, days=window.days))
        else:
            gen = first.with_activity_of(spec)
        pop = gen.population
        day = np.concatenate([np.full(a.size, d) for d, a in enumerate(gen.active_by_day)])
        who = np.concatenate(gen.active_by_day)
        twin_strata = pop.cls.astype(np.int64) * 2 + pop.kind
        twin_v, twin_n = first_days_visits(pop.first, twin_strata, who, day, window.days - 1, n)
        twin = np.clip(twin_v / np.maximum(twin_n, 1), 1e-3, 1 - 1e-3)
        ok = (real_n >= MIN_CALIBRATION_USERS) & (twin_n >= MIN_CALIBRATION_USERS)
        ok[:, 0] = False  # the first day is always active
        factors = np.clip(factors * np.where(ok, (real / (1 - real)) / (twin / (1 - twin)), 1.0), 0.02, 50.0)
        classes = [
            cd.model_copy(update={"return_by_age_day": {
                kind: [round(float(x), 4) for x in factors[2 * c + j]] for j, kind in enumerate(KINDS)}})
            for c, cd in enumerate(spec.document.classes)
        ]  # fmt: skip
        spec = TwinSpec(spec.document.model_copy(update={"classes": classes}), spec.tables)
    return spec
