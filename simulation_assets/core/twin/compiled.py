"""A twin spec compiled into lookup arrays once: the event chains, the activity model and the properties."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.twin.activity import (
    ACTIVITY_BANDS,
    DAY_SESSION_BUCKETS,
    GAP_BLOCKS,
    GAP_LEFT,
    LIFE_BANDS,
    NEIGHBOURS,
)
from simulation_assets.core.twin.arrivals import Arrivals
from simulation_assets.core.twin.flows import (
    BUCKETS,
    ELAPSED_BUCKETS,
    TIME_POSITIONS,
    bucket_of,
    elapsed_bucket,
    time_bucket,
)
from simulation_assets.core.twin.properties import OTHER
from simulation_assets.core.twin.sketch import draw_from_cdf
from simulation_assets.core.twin.spec import ANY, FIRST, KINDS, REPEATS, START, Generation, TwinSpec

MAX_SESSION_EVENTS = 2_000  # no twin session runs longer, whatever its spec says
STATE_LOOKUP_MAX = 16_000_000  # (class, prev, cur) triples indexed directly up to this many (64 MB)


class CompiledSpec:
    """The spec's tables as arrays the generator indexes; :class:`Generator` builds on it.

    The generator sets ``spec``, ``gen``, ``names`` (the events kept) and ``n_classes`` before it
    calls the ``_compile_*`` steps.
    """

    spec: TwinSpec
    gen: Generation
    names: list[str]
    n_classes: int

    # ---- compilation ------------------------------------------------------------------------------------------------
    def _compile_flows(self, transitions: pl.DataFrame, times: pl.DataFrame) -> None:
        v = len(self.names)
        self.start_sym, self.end_sym = v, v + 1
        # Codes: events 0..V-1, START V, END V+1, the REPEATS symbols (previous events only) V+2...
        self.repeat_syms = np.arange(v + 2, v + 2 + len(REPEATS), dtype=np.int64)
        # FIRST (the start state of a user's first session) takes END's code: END never precedes an event.
        code = {name: i for i, name in enumerate(self.names)} | {START: v, FIRST: v + 1}
        self.first_sym = v + 1
        self.has_first = bool(transitions.filter(pl.col("prev") == FIRST).height)
        code |= {name: int(c) for name, c in zip(REPEATS, self.repeat_syms, strict=True)}
        hz = self.spec.tables["end_hazard"].filter(pl.col("cur").is_in(self.names))
        self.depth_groups = int(hz["depth"].max()) + 1 if hz.height else 1  # type: ignore[operator]
        # Chains are kept per (class, depth group): the state's "class" is class x groups + group; a row
        # for every group (depth -1) stands for each of them.
        every = transitions.filter(pl.col("depth") < 0).drop("depth")
        groups_of = pl.DataFrame({"depth": np.arange(self.depth_groups, dtype=np.int16)})
        transitions = pl.concat(
            [
                transitions.filter(pl.col("depth") >= 0),
                every.join(groups_of, how="cross").select(transitions.columns),
            ]
        ).with_columns((pl.col("class").cast(pl.Int64) * self.depth_groups + pl.col("depth")).alias("class"))
        t = transitions.with_columns(
            pl.col("prev").replace_strict(code, return_dtype=pl.Int64).alias("p"),
            pl.col("cur").replace_strict(code, return_dtype=pl.Int64).alias("c"),
            pl.col("next").replace_strict(code, return_dtype=pl.Int64).alias("n"),
        ).filter(pl.col("probability") > 0)
        # A row applies at any position (slot 0) or in one position bucket (slot bucket + 1).
        position = t["position"].to_numpy()
        slot = np.where(position < 0, 0, bucket_of(np.maximum(position, 0)) + 1)
        t = t.with_columns(pl.Series("slot", slot, pl.Int64))
        share = pl.col("probability") / pl.col("probability").sum().over("class", "p", "c", "slot")
        t = t.with_columns(share.alias("q")).sort("class", "p", "c", "slot", "n")
        groups = t.select("class", "p", "c", "slot").unique(maintain_order=True).with_row_index("g")
        t = t.join(groups, on=["class", "p", "c", "slot"], how="left", maintain_order="left")
        size = v + 2
        self.slots = len(BUCKETS) + 1
        g_cols = [groups[c].to_numpy() for c in ("class", "p", "c", "slot")]
        self.state_key = self._key(*g_cols)  # sorted: groups come in (class, p, c, slot) order
        self.state_gid = groups["g"].to_numpy().astype(np.int64)
        self._compile_state_lookup()
        # Each state's chances of the next event as a Walker alias table (rows grouped by state): a draw is two
        # lookups instead of a binary search over every state's cumulative chances.
        self.flow_next = t["n"].to_numpy().astype(np.int64)
        self.flow_alias = _alias_tables(
            t["g"].to_numpy().astype(np.int64), t["q"].to_numpy(), len(self.state_gid)
        )
        # End hazard per (class, event, position bucket).
        self.hazard = np.ones((self.n_classes, self.depth_groups, size, len(BUCKETS)))
        if hz.height:
            cur = hz["cur"].replace_strict(code, return_dtype=pl.Int64).to_numpy()
            bucket = bucket_of(hz["position"].to_numpy())
            # Buckets the export never reached keep the last hazard seen for that event (filled forward below).
            self.hazard[:] = np.nan
            self.hazard[hz["class"].to_numpy(), hz["depth"].to_numpy(), cur, bucket] = hz["hazard"].to_numpy()
            filled = np.where(np.isnan(self.hazard), 0.0, self.hazard)
            seen = ~np.isnan(self.hazard)
            idx = np.where(seen, np.arange(len(BUCKETS))[None, None, None, :], 0)
            np.maximum.accumulate(idx, axis=3, out=idx)
            self.hazard = np.take_along_axis(filled, idx, axis=3)
            self.hazard[~seen.any(axis=3)] = 1.0
        # Log-odds shift of the end hazard by (event, elapsed-time bucket).
        self.elapsed_odds = np.zeros((size, ELAPSED_BUCKETS))
        by_elapsed = self.spec.tables["end_by_elapsed"].filter(pl.col("cur").is_in(self.names))
        if by_elapsed.height:
            cur = by_elapsed["cur"].replace_strict(code, return_dtype=pl.Int64).to_numpy()
            bucket = elapsed_bucket(by_elapsed["elapsed_s"].to_numpy())
            self.elapsed_odds[cur, bucket] = by_elapsed["log_odds"].to_numpy()
        # What a session step reads: the hazards as odds and the shifts as factors (computed once, not per step).
        self.hazard_odds = self.hazard / np.maximum(1 - self.hazard, 1e-12)
        self.elapsed_factor = np.exp(self.elapsed_odds)
        # The same as flat rows a step indexes with one integer: odds [bucket][chain x size + event] (chain =
        # class x depth groups + group), factor [event x ELAPSED_BUCKETS + elapsed bucket].
        self.hazard_by_bucket = np.ascontiguousarray(self.hazard_odds.reshape(-1, len(BUCKETS)).T)
        self.elapsed_flat = self.elapsed_factor.ravel()
        # Per chain (class x depth groups + group), the most events a session has: its class's longest in the
        # export (older specs: no bound but the generator's own).
        longest = [int(x) for x in self.spec.document.flow.get("longest_session", [])]
        cap = np.array(longest if len(longest) == self.n_classes else [MAX_SESSION_EVENTS] * self.n_classes)
        self.longest_by_chain = np.repeat(np.clip(cap, 1, MAX_SESSION_EVENTS), self.depth_groups).astype(
            np.int64
        )
        # Share of x -> x gaps, after an x -> x gap, that repeat the gap before (per event code).
        self.repeat_gap = np.zeros(size)
        for name, share in dict(self.spec.document.flow.get("repeated_gap_share", {})).items():
            if name in code and code[name] < v:
                self.repeat_gap[code[name]] = float(share)
        # Paces multiply a gap's seconds (specs from before: added to its log1p).
        self.pace_scales_seconds = bool(self.spec.document.flow.get("pace_scales_seconds", False))
        pace = self.spec.tables["session_pace"].sort("level")["log_pace"].to_numpy()
        self.pace_q = pace[None, :] if pace.size >= 2 else np.zeros((1, 2))
        # A user's own pace: a sketch per band of active days (cuts in flow.pace_band_cuts; none: one band).
        own = self.spec.tables["user_pace"].sort("band", "level")
        cuts = self.spec.document.flow.get("pace_band_cuts")
        self.pace_band_cuts = tuple(float(x) for x in cuts) if cuts else ()
        bands = int(own["band"].max()) + 1 if own.height else 1  # type: ignore[operator]
        if own.height >= 2 and own.height % bands == 0:
            self.user_pace_q = own["log_pace"].to_numpy().reshape(bands, own.height // bands)
        else:
            self.user_pace_q = np.zeros((1, 2))
        # Bands without their cuts in the document: the first band's sketch for every user.
        if self.user_pace_q.shape[0] != len(self.pace_band_cuts) + 1:
            self.user_pace_q, self.pace_band_cuts = self.user_pace_q[:1], ()
        # The end hazard's odds factor per (session group, activity band within the class: the depth shares'
        # bands); 1 without a row (older specs: none).
        shifts = self.spec.tables["end_by_activity"].filter(pl.col("depth") < self.depth_groups)
        bands = int(shifts["band"].max()) + 1 if shifts.height else 1  # type: ignore[operator]
        self.activity_odds = np.ones((self.depth_groups, bands))
        self.activity_odds[shifts["depth"].to_numpy(), shifts["band"].to_numpy()] = np.exp(
            shifts["log_odds"].to_numpy()
        )
        # Inter-event times: row of the sketch table for every (position bucket, cur, next), fallbacks resolved.
        names = {name: i for i, name in enumerate(self.names)}
        sketches = times.sort("cur", "next", "position", "level")
        keys = sketches.select("cur", "next", "position").unique(maintain_order=True)
        levels = int(sketches["level"].max()) + 1  # type: ignore[operator]
        self.time_q = (
            sketches["log_seconds"].to_numpy().reshape(keys.height, levels)
        )  # log1p seconds, pace-free
        row_of = {(a, b): i for i, (a, b, p) in enumerate(keys.iter_rows()) if p < 0}
        overall = row_of.get((ANY, ANY), 0)
        any_position = np.full((size, size), overall, np.int64)
        for name, i in names.items():
            fallback = row_of.get((name, ANY), overall)
            any_position[i, :] = fallback
            for other, j in names.items():
                if (name, other) in row_of:
                    any_position[i, j] = row_of[(name, other)]
        # Rows [position bucket][cur x size + next]: a bucket without its own sketch has the transition's.
        self.time_size = size
        self.time_row = np.repeat(any_position.reshape(1, -1), len(TIME_POSITIONS), axis=0)
        for i, (a, b, p) in enumerate(keys.iter_rows()):
            if p >= 0 and a in names and b in names:
                self.time_row[int(time_bucket(p)), names[a] * size + names[b]] = i

    def _compile_activity(self) -> None:
        doc, tables = self.spec.document, self.spec.tables
        m = self.gen.churn_multiplier
        surv = tables["survival"].sort("class", "kind", "age_days")
        self.survival: dict[tuple[int, int], np.ndarray] = {}
        for (c, kind), part in surv.group_by("class", "kind", maintain_order=True):
            self.survival[(int(c), KINDS.index(str(kind)))] = (
                part["survival"].to_numpy() ** m
            )  # S(t)^m: hazards x m
        self.tail = np.array(
            [[1 - (1 - cd.tail_hazard.get(k, 0.0)) ** m for k in KINDS] for cd in doc.classes]
        )
        self.beta = np.array([[cd.return_beta.get(k, [1.0, 1.0]) for k in KINDS] for cd in doc.classes])
        # Per lifetime band (a spec without bands uses the kind's Beta in every band).
        bands = len(LIFE_BANDS)
        self.beta_life = np.repeat(self.beta[:, :, None, :], bands, axis=2)
        for c, cd in enumerate(doc.classes):
            for j, k in enumerate(KINDS):
                rows = cd.return_beta_by_life.get(k, [])
                if len(rows) == bands:
                    self.beta_life[c, j] = np.array(rows)
        self.weekday_mult = np.array([cd.weekday_multipliers for cd in doc.classes])
        recency = max(len(cd.return_by_recency) for cd in doc.classes)
        self.by_recency = np.array([[1.0, *cd.return_by_recency, *cd.return_by_recency[-1:] * (recency - len(cd.return_by_recency))]
                                    for cd in doc.classes])  # fmt: skip
        depth = self.spec.tables["depth_groups"]
        share = np.zeros((self.n_classes, self.depth_groups))
        share[:, 0] = 1e-12
        keep = depth.filter(pl.col("depth") < self.depth_groups)
        share[keep["class"].to_numpy(), keep["depth"].to_numpy()] += keep["share"].to_numpy()
        self.depth_cdf = np.cumsum(share, axis=1) / share.sum(axis=1, keepdims=True)
        # Per (class, activity band); bands the spec lacks use the class's shares.
        # Band cuts (shares of the class by active days); a spec without them used thirds.
        cuts = doc.flow.get("depth_band_cuts")
        self.depth_band_cuts = tuple(float(x) for x in cuts) if cuts else None
        bands = len(self.depth_band_cuts) + 1 if self.depth_band_cuts else ACTIVITY_BANDS
        self.depth_band_cdf = np.repeat(self.depth_cdf[:, None, :], bands, axis=1)
        banded = self.spec.tables["depth_by_activity"].filter(
            (pl.col("depth") < self.depth_groups) & (pl.col("band") < bands)
        )
        if banded.height:
            by_band = np.zeros((self.n_classes, bands, self.depth_groups))
            np.add.at(by_band, (banded["class"].to_numpy(), banded["band"].to_numpy(), banded["depth"].to_numpy()),
                      banded["share"].to_numpy())  # fmt: skip
            total = by_band.sum(axis=2, keepdims=True)
            cdf = np.cumsum(by_band, axis=2) / np.maximum(total, 1e-12)
            self.depth_band_cdf = np.where(total > 0, cdf, self.depth_band_cdf)
        # Each user's own streak: a sketch per class of the log-odds shift the day after a visit (zeros: none).
        streak = tables["user_streak"].filter(pl.col("class") < self.n_classes).sort("class", "level")
        levels = int(streak["level"].max()) + 1 if streak.height else 2  # type: ignore[operator]
        self.streak_q = np.zeros((self.n_classes, levels))
        if streak.height:
            at = (streak["class"].to_numpy(), streak["level"].to_numpy())
            self.streak_q[at] = streak["log_odds"].to_numpy()
        weeks = max(len(cd.activity_by_age_week) for cd in doc.classes)
        self.by_age = np.array([cd.activity_by_age_week + cd.activity_by_age_week[-1:] * (weeks - len(cd.activity_by_age_week))
                                for cd in doc.classes])  # fmt: skip
        # x the odds on each of the first days of age, per (class, kind) (a spec without them: none).
        days = max([len(v) for cd in doc.classes for v in cd.return_by_age_day.values()] + [0])
        self.by_age_day = np.ones((self.n_classes, len(KINDS), days))
        for c, cd in enumerate(doc.classes):
            for j, k in enumerate(KINDS):
                factors = cd.return_by_age_day.get(k, [])
                self.by_age_day[c, j, : len(factors)] = factors
        self.ident_share = np.array([[cd.identified_share.get(k, 0.0) for k in KINDS] for cd in doc.classes])
        spd = tables["sessions_per_day"]
        self.spd_persistence = np.array([cd.sessions_persistence for cd in doc.classes])
        self.week_spread = np.array([cd.week_spread for cd in doc.classes])
        self.streak_scale = np.array([cd.streak_scale for cd in doc.classes])
        self.streak_keeps_rate = np.array([cd.streak_keeps_rate for cd in doc.classes])
        bands = max((len(cd.weekday_loyalty) for cd in doc.classes), default=0)
        self.weekday_loyalty = np.array([cd.weekday_loyalty or [0.0] * bands for cd in doc.classes]).reshape(
            self.n_classes, bands
        )
        self.spd_cdf = np.zeros((self.n_classes, 31))
        for (c,), part in spd.group_by("class"):
            pmf = np.zeros(31)
            pmf[np.clip(part["sessions"].to_numpy(), 1, 30)] += part["share"].to_numpy()
            self.spd_cdf[int(c)] = np.cumsum(pmf) / max(pmf.sum(), 1e-12)
        for c in range(self.n_classes):
            if self.spd_cdf[c, -1] == 0:
                self.spd_cdf[c, 1:] = 1.0
        # Per (class, activity band) where the spec has them (older specs: the class's for every user).
        cuts = doc.sessions.get("band_cuts")
        self.spd_band_cuts = tuple(float(x) for x in cuts) if cuts else None
        banded = tables["sessions_by_activity"]
        self.spd_band_cdf = None
        if self.spd_band_cuts and banded.height:
            bands = len(self.spd_band_cuts) + 1
            banded = banded.filter((pl.col("class") < self.n_classes) & (pl.col("band") < bands))
            pmf = np.zeros((self.n_classes, bands, 31))
            np.add.at(pmf, (banded["class"].to_numpy(), banded["band"].to_numpy(),
                            np.clip(banded["sessions"].to_numpy(), 1, 30)), banded["share"].to_numpy())  # fmt: skip
            total = pmf.sum(axis=2, keepdims=True)
            self.spd_band_cdf = np.where(total > 0, np.cumsum(pmf, axis=2) / np.maximum(total, 1e-12),
                                         self.spd_cdf[:, None, :])  # fmt: skip
        hours = tables["hour_profile"].sort("class", "weekday", "hour")
        prof = np.zeros((self.n_classes, 7, 24))
        prof[hours["class"].to_numpy(), hours["weekday"].to_numpy(), hours["hour"].to_numpy()] = hours[
            "share"
        ].to_numpy()
        prof += 1e-12
        # (class, weekday, the day's session bucket, hour): the class's hours times the bucket's tilt.
        t = tables["first_hour_tilt"]
        tilt = np.ones((DAY_SESSION_BUCKETS, 24))
        rows = t.filter(pl.col("neighbours") < 0)
        tilt[rows["bucket"].to_numpy(), rows["hour"].to_numpy()] = rows["factor"].to_numpy()
        prof = prof[:, :, None, :] * tilt[None, None, :, :]
        self.hour_prof = prof / prof.sum(axis=3, keepdims=True)
        self.hour_cdf = np.cumsum(self.hour_prof, axis=3)
        # (bucket, neighbours, hour): the factor by whether the user is active the day before and after, where
        # the spec has it; generation divides it by its mean over the day's users of the class.
        rows = t.filter(pl.col("neighbours") >= 0)
        self.hour_nb_tilt: np.ndarray | None = None
        if rows.height:
            self.hour_nb_tilt = np.ones((DAY_SESSION_BUCKETS, NEIGHBOURS, 24))
            at = (rows["bucket"].to_numpy(), rows["neighbours"].to_numpy(), rows["hour"].to_numpy())
            self.hour_nb_tilt[at] = rows["factor"].to_numpy()
        # Rows class * GAP_BLOCKS + block of the previous session's end (specs from before the day clock).
        gaps = tables["day_gaps"]
        self.gap_q = (
            _sketch_rows(gaps, "block", "log_minutes", self.n_classes, GAP_BLOCKS) if gaps.height else None
        )
        # Later sessions of a day by their share of the clock left (specs that have it).
        clock = tables["day_clock"].sort("class", "hour")
        self.clock: np.ndarray | None = None
        if clock.height == 24 * self.n_classes:
            self.clock = clock["share"].to_numpy().reshape(self.n_classes, 24)
        shares = tables["day_gap_shares"]
        self.gap_share_q: np.ndarray | None = None
        if self.clock is not None and shares.height:
            # Rows class * GAP_LEFT + sessions still to come (0: the next is the day's last, 1: more).
            self.gap_share_q = _sketch_rows(shares, "left", "share", self.n_classes, GAP_LEFT)
            # Sessions the fit rebuilt were at least the idle timeout apart.
            self.gap_floor_ms = (
                int(doc.sessions["idle_minutes"] * 60_000) if doc.source.sessions_rebuilt else 0
            )
        # Calendar days by day number: x the new users expected, x the odds of a return (the spec's dates).
        epoch = dt.date(1970, 1, 1)
        self.calendar_arrivals = {
            (c.date - epoch).days: c.arrivals for c in doc.calendar if c.arrivals != 1.0
        }
        self.calendar_activity = {
            (c.date - epoch).days: c.activity for c in doc.calendar if c.activity != 1.0
        }
        a = doc.arrivals
        self.arrival = Arrivals(a.intercept, a.slope, tuple(a.weekday_log), a.backlog_users, a.backlog_decay,
                                a.window_days, tuple(a.week_factor))  # fmt: skip
        ident = doc.identity
        self.ident_session = {int(k): float(v) for k, v in ident.get("session", {0: 1.0}).items()}
        self.ident_position = {int(k): float(v) for k, v in ident.get("position", {0: 1.0}).items()}
        self.ident_lead = {str(k): float(v) for k, v in ident.get("lead_in", {}).items()}  # "": none

    def _compile_properties(self) -> None:
        doc, tables = self.spec.document, self.spec.tables
        props = doc.properties
        self.kinds: dict[str, str] = dict(props.get("kinds", {}))
        self.constants = [c for c in props.get("constants", []) if c in self.kinds]
        self.combo_share = float(props.get("combo_share", 0.0))
        code = {name: i for i, name in enumerate(self.names)}
        v = len(self.names) + 2
        self.user_keys = _joint_draws(self.constants, self.kinds, self.combo_share,
                                      tables["constant_marginals"], tables["constant_combos"])  # fmt: skip
        # Keys constant within a session (specs fitted before them have none): drawn once per session.
        self.session_keys = [c for c in props.get("session_constants", []) if c in self.kinds]
        self.sessions = _joint_draws(self.session_keys, self.kinds, float(props.get("session_combo_share", 0.0)),
                                     tables["session_marginals"], tables["session_combos"])  # fmt: skip
        # Of those, the ones a user tends to keep (a device): their columns and the chance a session keeps them.
        sticky = set(props.get("session_sticky_keys", []))
        self.sticky_cols = np.array([j for j, key in enumerate(self.session_keys) if key in sticky], np.int64)
        self.sticky_share = float(props.get("session_sticky_share", 0.0)) if self.sticky_cols.size else 0.0
        self.const_series, self.const_cdf = self.user_keys.series, self.user_keys.cdf
        self.combo_codes, self.combo_cdf = self.user_keys.combo_codes, self.user_keys.combo_cdf
        self._compile_trends(
            tables["property_trends"], tables["constant_marginals"], tables["session_marginals"]
        )
        # Each class's own combinations (specs fitted before them have none): class -> (codes, cdf, share covered).
        self.class_draws = _class_draws(self.constants, tables["constant_marginals"], tables["class_combos"])
        keys = tables["event_keys"].filter(pl.col("event").is_in(self.names))
        self.presence: dict[str, np.ndarray] = {}
        for (key,), part in keys.group_by("key", maintain_order=True):
            arr = np.zeros(v)
            arr[[code[e] for e in part["event"].to_list()]] = part["present_share"].to_numpy()
            self.presence[str(key)] = arr
        self.presence = {k: self.presence[k] for k in sorted(self.presence) if k in self.kinds}
        # Per key, each event's chance of taking the session's current value (the previous row's with the key).
        self.carry: dict[str, np.ndarray] = {}
        for (key,), part in keys.filter(pl.col("carry_share") > 0).group_by("key", maintain_order=True):
            arr = np.zeros(v)
            arr[[code[e] for e in part["event"].to_list()]] = part["carry_share"].to_numpy()
            self.carry[str(key)] = arr
        # ... its chance of drawing again a value equal to that one (values that move on), and the chance the row
        # before takes the event's only value (the page before a sign-up is the sign-up page).
        self.avoid = _per_event(keys, "avoid_share", code, v)
        self.back = _per_event(keys, "back_share", code, v)
        # Categorical keys: per key, the (event, value) rows sorted by event code, as alias tables (start,
        # size per event code; chance, alias per row), and the rows' values.
        cats = _later_mixes(tables["event_categories"].filter(pl.col("event").is_in(self.names)), keys)
        following = tables["event_next_categories"].filter(
            pl.col("event").is_in(self.names) & pl.col("next").is_in(self.names)
        )
        cats = _rest_mixes(cats, following)
        # Per key with a mix of its own on the rows an event follows: (pair number of each (event, next event)
        # code, -1: none; the pairs' alias tables; each alias row's row of the key's table).
        self.next_alias: dict[str, tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]] = {}
        self.cat_alias: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        # Per key with a mix of its own on a session's first rows: those rows' alias tables (over the same table
        # rows) and which event codes have one.
        self.entry_alias: dict[
            str, tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
        ] = {}
        self.cat_series: dict[str, pl.Series] = {}
        cat_text: dict[str, list[str]] = {}
        self.cat_value_id: dict[str, np.ndarray] = {}  # per key, each table row's value as a number
        self.cat_pairs: dict[str, np.ndarray] = {}
        for (key,), part in cats.group_by("key", maintain_order=True):
            part = part.with_columns(
                pl.col("event").replace_strict(code, return_dtype=pl.Int64).alias("e")
            ).sort("e", "value")
            values = part["value"].to_list()
            self.cat_alias[str(key)] = _alias_tables(part["e"].to_numpy(), part["share"].to_numpy(), v)
            entry = part["entry_share"]
            if entry.null_count() < entry.len():
                has = np.zeros(v, np.bool_)
                has[part.filter(pl.col("entry_share").is_not_null())["e"].unique().to_numpy()] = True
                self.entry_alias[str(key)] = (
                    _alias_tables(part["e"].to_numpy(), entry.fill_null(0.0).to_numpy(), v),
                    has,
                )
            mine = following.filter(pl.col("key") == key)
            if mine.height:
                self.next_alias[str(key)] = _next_tables(part, mine, code, v)
            self.cat_series[str(key)] = _typed(
                pl.Series(values, dtype=pl.String), self.kinds.get(str(key), "category")
            )
            cat_text[str(key)] = values
            self.cat_value_id[str(key)] = np.unique(np.array(values, dtype=object), return_inverse=True)[1]
            # The (event code, value) pairs the key's table has, as sorted codes: which events may take a value.
            ids = self.cat_value_id[str(key)]
            self.cat_pairs[str(key)] = np.unique(part["e"].to_numpy() * (int(ids.max(initial=0)) + 1) + ids)
        # The value columns with a null appended: a day's column is one gather, its null rows pointing past the values.
        self.const_padded = self.user_keys.padded
        self.cat_padded = {key: values.extend_constant(None, 1) for key, values in self.cat_series.items()}
        # Keys whose value follows another's: per row of the parent's table, the row of the key's value (-1: none).
        follows = dict(props.get("follows", {}))
        self.follows = {
            k: p for k, p in sorted(follows.items()) if k in self.cat_alias and p in self.cat_alias
        }
        self.follow_rows: dict[str, np.ndarray] = {}
        lookups = tables["property_lookups"]
        for key, parent in self.follows.items():
            part = lookups.filter((pl.col("key") == key) & (pl.col("parent") == parent))
            value_of = dict(zip(part["parent_value"].to_list(), part["value"].to_list(), strict=True))
            # A looked-up value the key's own mix lacks (its category cap or a rare reading made it ``other``
            # there, its parent's value kept it): a row of its own, gathered, never drawn.
            extra = sorted(set(value_of.values()) - set(cat_text[key]))
            if extra:
                cat_text[key] = [*cat_text[key], *extra]
                self.cat_series[key] = _typed(
                    pl.Series(cat_text[key], dtype=pl.String), self.kinds.get(key, "category")
                )
                self.cat_padded[key] = self.cat_series[key].extend_constant(None, 1)
            row_of: dict[str, int] = {}
            for i, text in enumerate(cat_text[key]):
                row_of.setdefault(text, i)
            self.follow_rows[key] = np.array(
                [
                    row_of.get(value_of.get(text, ""), -1) if text in value_of else -1
                    for text in cat_text[parent]
                ],
                np.int64,
            )
        # Followers carried on within a session more often than the key they follow (the next video opened is
        # of the genre before more often than the video is the one before): per followed key, (follower, the
        # chance a row not carried on takes a value giving the follower's value before, per event code, and the
        # follower's value number per row of the followed key's table, -1: none).
        self.follow_carry: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
        for key, parent in self.follows.items():
            if key not in self.carry:
                continue
            own = self.carry.get(parent, np.zeros(v))
            more = self.carry[key] > own + FOLLOW_CARRY_MIN
            # (Where another key gives the followed key its value, that copy is what the follower repeats: a page
            # view's referring domain is the one before because its referrer is the URL before.)
            copied = tables["property_sources"].filter(pl.col("key") == parent)["event"].to_list()
            more[[code[e] for e in copied if e in code]] = False
            if not more.any():
                continue
            extra = np.where(more, (self.carry[key] - own) / np.maximum(1 - own, 1e-9), 0.0).clip(0.0, 1.0)
            ids = np.unique(np.array(cat_text[key], dtype=object), return_inverse=True)[1]
            rows = self.follow_rows[key]
            value = np.where(rows >= 0, ids[np.maximum(rows, 0)], -1)
            self.follow_carry.setdefault(parent, []).append((key, extra, value))
        # Followers carried on exactly the events of the key they follow: the lookup with a -1 appended, so the
        # followed key's drawn row (-1: absent) indexes it directly.
        self.follow_lookup = {
            key: np.r_[rows, -1]
            for key, rows in self.follow_rows.items()
            if np.array_equal(self.presence.get(key, np.zeros(v))[: v - 2] > 0,
                              self.presence.get(self.follows[key], np.zeros(v))[: v - 2] > 0)
        }  # fmt: skip
        self._compile_sources(tables["property_sources"], code, v, cat_text)
        nums = tables["event_numbers"].filter(pl.col("event").is_in(self.names)).sort("key", "event", "level")
        self.num_tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for (key,), part in nums.group_by("key", maintain_order=True):
            events = part.select("event").unique(maintain_order=True)["event"].to_list()
            levels = part.height // max(len(events), 1)
            q = part["value"].to_numpy().reshape(len(events), levels)
            row = np.full(v, -1, np.int64)
            row[[code[e] for e in events]] = np.arange(len(events))
            self.num_tables[str(key)] = (row, q)
        # Numbers drawn given a category of their row: per key, (the category, (event code, value, sketch row), sketches).
        # (Per key, one entry per category: each event has its own.)
        self.num_by: dict[str, list[tuple[str, pl.DataFrame, np.ndarray]]] = {}
        by = tables["event_numbers_by"].filter(
            pl.col("event").is_in(self.names) & pl.col("key").is_in(list(self.num_tables))
        )
        for (key, parent), part in by.sort("key", "by", "event", "by_value", "level").group_by(
            "key", "by", maintain_order=True
        ):
            if parent not in self.kinds or part.is_empty():
                continue
            cells = part.select("event", "by_value").unique(maintain_order=True).with_row_index("srow")
            levels = part.height // max(cells.height, 1)
            lookup = cells.select(
                pl.col("event").replace_strict(code, return_dtype=pl.Int64).alias("e"),
                pl.col("by_value").alias("v"),
                pl.col("srow").cast(pl.Int64),
            )
            self.num_by.setdefault(str(key), []).append(
                (str(parent), lookup, part["value"].to_numpy().reshape(cells.height, levels))
            )
        # Numbers that follow a category (a video's duration its id): per key, (the category, the number of each
        # row of the category's table, NaN where none, with a NaN appended for rows without the category).
        self.num_follow: dict[str, tuple[str, np.ndarray]] = {}
        for key, parent in sorted(follows.items()):
            if key not in self.num_tables or parent not in self.cat_alias or parent in self.follows:
                continue
            part = lookups.filter((pl.col("key") == key) & (pl.col("parent") == parent))
            value_of = dict(
                zip(
                    part["parent_value"].to_list(),
                    part["value"].cast(pl.Float64, strict=False).to_list(),
                    strict=True,
                )
            )
            number = [value_of.get(text) for text in cat_text[parent]]
            self.num_follow[key] = (
                parent,
                np.array([np.nan if x is None else x for x in [*number, None]], np.float64),
            )
        # A number drawn given a category, or following one, is drawn after every category (numbers give no other
        # key its value).
        last = set(self.num_by) | set(self.num_follow)
        self.key_order = [k for k in self.key_order if k not in last] + [
            k for k in self.key_order if k in last
        ]

    def _compile_sources(
        self, sources: pl.DataFrame, code: dict[str, int], v: int, text: dict[str, list[str]]
    ) -> None:
        """Compile the keys whose value another key gives (specs fitted before them have none).

        ``self.sources[key]``: (source, lag, chance per event code, the key's table row of each of the source's
        table rows by value, -1 where the key has no such value); ``self.key_order``: the keys in the order they
        are drawn, the followed keys and the sources first (a source that would close a loop is left out).
        """
        parents = set(self.follows.values())
        order = sorted(self.presence, key=lambda k: k not in parents)
        self.sources: dict[str, list[tuple[str, int, np.ndarray, np.ndarray]]] = {}
        usable = sources.filter(
            pl.col("event").is_in(self.names)
            & pl.col("key").is_in(list(self.cat_alias))
            & pl.col("source").is_in(list(self.cat_alias))
            & ~pl.col("key").is_in(list(self.follows))
        )
        needs: dict[str, set[str]] = {key: {parent} for key, parent in self.follows.items()}
        for (key, source, lag), part in usable.group_by("key", "source", "lag", maintain_order=True):
            key, source = str(key), str(source)
            if _reaches(needs, source, key):  # the source (through its own sources) needs this key: a loop
                continue
            needs.setdefault(key, set()).add(source)
            chance = np.zeros(v)
            chance[[code[e] for e in part["event"].to_list()]] = part["copy_share"].to_numpy()
            first: dict[str, int] = {}
            for i, value in enumerate(text[key]):
                first.setdefault(value, i)
            rows = np.array([first.get(value, -1) for value in text[source]], np.int64)
            self.sources.setdefault(key, []).append((source, int(lag), chance, rows))
        placed: list[str] = []
        for key in order:  # each key after the keys it copies from
            _place(key, needs, placed, set(order))
        self.key_order = placed

    def _compile_trends(
        self, trends: pl.DataFrame, user_marg: pl.DataFrame, session_marg: pl.DataFrame
    ) -> None:
        """Compile the version keys that roll out (specs fitted before them have none): per key, its column of
        values (with a null appended), the positions in it of the key's values newest first, and per 7-day
        block of the run their cumulative shares."""
        self.trends: dict[str, tuple[pl.Series, np.ndarray, np.ndarray]] = {}
        for (key,), part in trends.group_by("key", maintain_order=True):
            key = str(key)
            if key in self.constants:
                j, marg = self.constants.index(key), user_marg
                padded = self.user_keys.padded[j]
            elif key in self.session_keys:
                j, marg = self.session_keys.index(key), session_marg
                padded = self.sessions.padded[j]
            else:
                continue
            known = marg.filter(pl.col("key") == key)["value"]
            part = part.join(known.to_frame("value").unique(), on="value", how="semi").sort("block", "rank")
            values = part.filter(pl.col("block") == part["block"].min())["value"]
            blocks = int(part["block"].n_unique())
            if values.is_empty() or part.height != blocks * values.len():
                continue
            share = part["share"].to_numpy().reshape(blocks, values.len())
            cdf = np.cumsum(share, axis=1) / np.maximum(share.sum(axis=1, keepdims=True), 1e-12)
            # Apps update, they do not go back: the share of each version or a newer one never falls from one
            # week to the next (a dip is the sample's noise), so a user who had a version keeps it or a newer.
            cdf = np.minimum(np.maximum.accumulate(cdf, axis=0), 1.0)
            self.trends[key] = (padded, _value_codes(values, known), cdf)

    def property_dtype(self, key: str) -> pl.DataType:
        """Return the column type of property ``key`` (text keys: an Enum of their values)."""
        if key in self.constants:
            return self.const_series[self.constants.index(key)].dtype
        if key in self.session_keys:
            return self.sessions.series[self.session_keys.index(key)].dtype
        if key in self.cat_series:
            return self.cat_series[key].dtype
        kind = self.kinds[key]
        return {"boolean": pl.Boolean(), "integer": pl.Int64(), "number": pl.Float64()}.get(kind, pl.String())

    def _key(self, cls: np.ndarray, prev: np.ndarray, cur: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """Return the sortable integer key of a chain state (class, prev, cur, position slot)."""
        w = np.int64(len(self.names) + 2 + len(REPEATS))
        base = (np.asarray(cls, np.int64) * w + np.asarray(prev, np.int64)) * w + np.asarray(cur, np.int64)
        return base * np.int64(self.slots) + np.asarray(slot, np.int64)

    def _compile_state_lookup(self) -> None:
        """Index the chain's states by (class, previous, current) directly: one array lookup instead of a search.

        ``state_row[(class x W + prev) x W + cur]`` is the state's row (every possible triple has an entry; the
        last row stands for a state the spec lacks) and ``state_by_slot[slot, row]`` its group in each position
        slot: the slot's own chances, else the position-free ones (-1: none). Left empty when the table would
        be large (then :meth:`_group` searches ``state_key``).
        """
        triples = self.state_key // self.slots
        w = len(self.names) + 2 + len(REPEATS)
        size = max(
            self.n_classes * self.depth_groups * w * w, (int(triples.max()) + 1) if len(triples) else 0
        )
        self.state_row = np.zeros(0, np.int32)
        self.state_by_slot = np.zeros((self.slots, 0), np.int64)
        if not len(triples) or size > STATE_LOOKUP_MAX:
            return
        rows, row_of = np.unique(triples, return_inverse=True)
        slots = np.full((len(rows) + 1, self.slots), -1, np.int64)
        slots[row_of, self.state_key % self.slots] = self.state_gid
        self.state_by_slot = np.ascontiguousarray(np.where(slots >= 0, slots, slots[:, :1]).T)
        self.state_row = np.full(size, len(rows), np.int32)
        self.state_row[rows] = np.arange(len(rows))

    def _group(self, cls: np.ndarray, prev: np.ndarray, cur: np.ndarray, position: int) -> np.ndarray:
        """Return each state's row group: its position bucket's own chances if any, else position-free ones.

        ``cls``: the chain's class, class x depth groups + the user's depth group.

        A repeat state (REPEATk, x) the spec lacks (a spec fitted before repeats were counted) is (x, x).
        """
        if not len(self.state_row):
            return self._group_searched(cls, prev, cur, position)
        w = np.int64(len(self.names) + 2 + len(REPEATS))
        by_row = self.state_by_slot[self._slot_of(position) if position >= 0 else 0]
        cls = np.asarray(cls, np.int64)
        out = by_row[self.state_row[(cls * w + prev) * w + cur]]
        if position >= 0:
            again = np.flatnonzero((out < 0) & (prev >= self.repeat_syms[0]))
            if again.size:
                out[again] = by_row[self.state_row[(cls[again] * w + cur[again]) * w + cur[again]]]
        return out

    def _slot_of(self, position: int) -> int:
        """Return the position slot (bucket + 1) of a 0-based event position."""
        table = self.__dict__.get("_slots_by_position")
        if table is None:
            table = self.__dict__["_slots_by_position"] = bucket_of(np.arange(4096)) + 1
        return int(table[position]) if position < len(table) else int(bucket_of(np.array([position]))[0]) + 1

    def _group_searched(
        self, cls: np.ndarray, prev: np.ndarray, cur: np.ndarray, position: int
    ) -> np.ndarray:
        """Return each state's row group: its position bucket's own chances if any, else position-free ones.

        ``cls``: the chain's class, class x depth groups + the user's depth group.

        A repeat state (REPEATk, x) the spec lacks (a spec fitted before repeats were counted) is (x, x).
        """
        out = np.full(cls.size, -1, np.int64)
        if not len(self.state_key):
            return out
        slots = (int(bucket_of(np.array([position]))[0]) + 1, 0) if position >= 0 else (0,)
        tries = [(slot, prev) for slot in slots]
        if position >= 0 and (prev >= self.repeat_syms[0]).any():
            tries += [(slot, np.where(prev >= self.repeat_syms[0], cur, prev)) for slot in slots]
        for slot, prev in tries:
            todo = np.flatnonzero(out < 0)
            if todo.size == 0:
                break
            key = self._key(cls[todo], prev[todo], cur[todo], np.full(todo.size, slot))
            at = np.minimum(np.searchsorted(self.state_key, key), len(self.state_key) - 1)
            hit = self.state_key[at] == key
            out[todo[hit]] = self.state_gid[at[hit]]
        return out


@dataclass(frozen=True)
class JointDraws:
    """Keys drawn together once per unit (a user, a session): a combination or, else, each key on its own.

    ``series[j]``: key j's values in its column type; ``padded[j]``: the same with a null appended (a
    column is one gather, null rows pointing past the values); ``cdf[j]``: their cumulative shares;
    ``combo_codes``: (combinations, keys) value indices; ``combo_cdf``: the combinations' cumulative shares;
    ``combo_share``: the chance a unit takes a whole combination.
    """

    keys: list[str]
    series: list[pl.Series]
    padded: list[pl.Series]
    cdf: list[np.ndarray]
    combo_codes: np.ndarray
    combo_cdf: np.ndarray
    combo_share: float

    def draw(self, g: np.random.Generator, n: int) -> np.ndarray:
        """Return (n, keys) value indices: a combination with chance ``combo_share``, else each key alone."""
        codes = np.zeros((n, len(self.keys)), np.int64)
        if not self.keys:
            return codes
        take_combo = (g.random(n) < self.combo_share) & (len(self.combo_cdf) > 0)
        u = g.random(n)
        if len(self.combo_cdf):
            codes[take_combo] = self.combo_codes[draw_from_cdf(self.combo_cdf, u[take_combo])]
        alone = ~take_combo
        for j, cdf in enumerate(self.cdf):
            r = g.random(n)
            codes[alone, j] = draw_from_cdf(cdf, r[alone]) if len(cdf) else 0
        return codes


def _reaches(needs: dict[str, set[str]], start: str, goal: str) -> bool:
    """Whether ``start`` needs ``goal``, directly or through the keys it needs."""
    seen, todo = set(), [start]
    while todo:
        key = todo.pop()
        if key == goal:
            return True
        if key not in seen:
            seen.add(key)
            todo.extend(needs.get(key, ()))
    return False


def _place(key: str, needs: dict[str, set[str]], placed: list[str], known: set[str]) -> None:
    """Append ``key`` to ``placed`` after the keys it needs (a depth-first topological order)."""
    if key in placed or key not in known:
        return
    for source in sorted(needs.get(key, ())):
        _place(source, needs, placed, known)
    placed.append(key)


def _joint_draws(
    keys: list[str], kinds: dict[str, str], combo_share: float, marg: pl.DataFrame, combos: pl.DataFrame
) -> JointDraws:
    """Compile the per-key shares (``marg``: key, value, share) and combinations (``combos``) of ``keys``."""
    series, cdfs, known = [], [], []
    for key in keys:
        part = marg.filter(pl.col("key") == key)
        known.append(part["value"])
        series.append(_typed(pl.Series(part["value"].to_list(), dtype=pl.String), kinds[key]))
        share = part["share"].to_numpy()
        cdfs.append(np.cumsum(share) / max(share.sum(), 1e-12))
    combo_codes = np.zeros((combos.height, len(keys)), np.int64)
    for j, key in enumerate(keys):
        combo_codes[:, j] = _value_codes(combos[key], known[j])
    share = combos["share"].to_numpy() if combos.height else np.zeros(0)
    return JointDraws(list(keys), series, [v.extend_constant(None, 1) for v in series], cdfs, combo_codes,
                      np.cumsum(share) / max(share.sum(), 1e-12), combo_share)  # fmt: skip


def _class_draws(
    keys: list[str], marg: pl.DataFrame, by_class: pl.DataFrame
) -> dict[int, tuple[np.ndarray, np.ndarray, float]]:
    """Compile ``class_combos`` into class -> (combination value indices, cumulative shares, share covered)."""
    if not keys or by_class.is_empty() or any(key not in by_class.columns for key in keys):
        return {}
    known = [marg.filter(pl.col("key") == key)["value"] for key in keys]
    out = {}
    for c in sorted(by_class["class"].unique().to_list()):
        part = by_class.filter(pl.col("class") == c)
        codes = np.zeros((part.height, len(keys)), np.int64)
        for j, key in enumerate(keys):
            codes[:, j] = _value_codes(part[key], known[j])
        share = part["share"].to_numpy()
        covered = float(min(1.0, share.sum()))
        if covered > 0:
            out[int(c)] = (codes, np.cumsum(share) / share.sum(), covered)
    return out


def _value_codes(values: pl.Series, known: pl.Series) -> np.ndarray:
    """Return each of ``values``' index among ``known`` (its last, where a value repeats), 0 where it is not there.

    A hash join on the values: a combinations table of a site with many pages holds tens of thousands of
    rows per class, and a dictionary lookup per row was a second of a generator's start.
    """
    if values.dtype != known.dtype:  # (the spec's tables hold text) Python's equality, value by value
        lookup = {val: i for i, val in enumerate(known.to_list())}
        return np.array([lookup.get(x, 0) for x in values.to_list()], np.int64)
    index = pl.DataFrame({"v": known, "i": np.arange(known.len(), dtype=np.int64)}).unique("v", keep="last")
    found = pl.DataFrame({"v": values}).join(
        index, on="v", how="left", maintain_order="left", nulls_equal=True
    )
    return found["i"].fill_null(0).to_numpy()


def _alias_tables(
    event: np.ndarray, share: np.ndarray, codes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return Walker alias tables of the rows' shares within each event (rows grouped by ``event``).

    (start, size) per event code give its rows; a draw for event e takes row ``start[e] + i``, i uniform
    in 0..size-1, and keeps it with chance ``chance[row]``, else takes ``alias[row]`` (Vose's method): two
    lookups a draw instead of a binary search, each row still drawn with exactly its share.
    """
    start = np.zeros(codes, np.int64)
    size = np.zeros(codes, np.int64)
    chance = np.ones(len(share))
    alias = np.arange(len(share), dtype=np.int64)
    firsts = np.r_[0, np.flatnonzero(event[1:] != event[:-1]) + 1] if len(event) else np.zeros(0, np.int64)
    ends = np.r_[firsts[1:], len(event)].astype(np.int64)
    start[event[firsts]], size[event[firsts]] = firsts, ends - firsts
    for a, b in zip(firsts.tolist(), ends.tolist(), strict=True):
        if b - a == 1:  # one row: always itself
            continue
        p = np.asarray(share[a:b], np.float64)
        scaled = p * (b - a) / p.sum() if p.sum() > 0 else np.ones(b - a)
        small = [i for i in range(b - a) if scaled[i] < 1.0]
        large = [i for i in range(b - a) if scaled[i] >= 1.0]
        while small and large:
            s, big = small.pop(), large.pop()
            chance[a + s], alias[a + s] = scaled[s], a + big
            scaled[big] -= 1.0 - scaled[s]
            (small if scaled[big] < 1.0 else large).append(big)
        for i in small + large:  # what is left holds 1 up to rounding
            chance[a + i] = 1.0
    return start, size, chance, alias


def _later_mixes(cats: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """Return ``cats`` with ``share`` the mix of the rows after a session's first, where the first rows have their
    own (``entry_share``): (share - f entry_share) / (1 - f), f the event's share of first rows (``entry_rows``),
    clipped at 0 (an edited spec may not add up), so first and later rows together keep the event's mix."""
    f = keys.select("event", "key", pl.col("entry_rows").fill_null(0.0).clip(0.0, 0.99))
    later = (
        (pl.col("share") - pl.col("entry_rows") * pl.col("entry_share")) / (1 - pl.col("entry_rows"))
    ).clip(0.0)
    return (
        cats.join(f, on=["event", "key"], how="left")
        .with_columns(
            pl.when(pl.col("entry_share").is_not_null()).then(later).otherwise(pl.col("share")).alias("share")
        )  # fmt: skip
        .drop("entry_rows")
    )


# A follower carried on more often than its key by this much (or more) has its key drawn to keep it (see
# CompiledSpec.follow_carry); below, the two carry shares differ by the sample's noise.
FOLLOW_CARRY_MIN = 0.05


def _rest_mixes(cats: pl.DataFrame, following: pl.DataFrame) -> pl.DataFrame:
    """Return ``cats`` with ``share``, where an event's rows followed by some events have mixes of their own
    (``following``: event_next_categories), the mix of its other rows: (share - sum f p) / (1 - sum f), f each
    next event's share of the rows (``next_rows``) and p its mix, clipped at 0, so all rows keep the event's mix.
    """
    if following.is_empty():
        return cats
    f = following.unique(["event", "key", "next"]).group_by("event", "key").agg(pl.col("next_rows").sum())
    fp = following.group_by("event", "key", "value").agg(
        (pl.col("next_rows") * pl.col("share")).sum().alias("fp")
    )
    rest = (pl.col("share") - pl.col("fp").fill_null(0.0)) / (1 - pl.col("next_rows").clip(0.0, 0.99))
    return (
        cats.join(f, on=["event", "key"], how="left")
        .join(fp, on=["event", "key", "value"], how="left")
        .with_columns(
            pl.when(pl.col("next_rows").is_not_null())
            .then(rest.clip(0.0))
            .otherwise(pl.col("share"))
            .alias("share")
        )  # fmt: skip
        .drop("next_rows", "fp")
    )


def _next_tables(
    part: pl.DataFrame, following: pl.DataFrame, code: dict[str, int], v: int
) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    """Return (pair, alias tables, table row) of one key's mixes per (event, next event) (``following``).

    ``part``: the key's (e, value) table rows as drawn (sorted by event code ``e``). ``pair[e, n]`` numbers the
    (event, next event) codes with a mix of their own (-1: none); each pair's alias rows are its event's table
    rows with the pair's shares (0 for a value its mix lacks), and ``table row`` maps an alias row back to the
    key's table row, so a draw is a row of the same table as the event's own draws.
    """
    pair = np.full((v, v), -1, np.int64)
    groups, shares, rows = [], [], []
    table = part.with_row_index("__t")
    for p, ((event, nxt), mix) in enumerate(following.group_by("event", "next", maintain_order=True)):
        pair[code[str(event)], code[str(nxt)]] = p
        own = table.filter(pl.col("e") == code[str(event)]).join(
            mix.select("value", pl.col("share").alias("__p")), on="value", how="left"
        )
        groups.append(np.full(own.height, p, np.int64))
        shares.append(own["__p"].fill_null(0.0).to_numpy())
        rows.append(own["__t"].to_numpy().astype(np.int64))
    n_pairs = len(groups)
    tables = _alias_tables(np.concatenate(groups), np.concatenate(shares), n_pairs)
    return pair, tables, np.concatenate(rows)


def _per_event(keys: pl.DataFrame, column: str, code: dict[str, int], v: int) -> dict[str, np.ndarray]:
    """Return, per key with a positive ``column`` on some event, that column by event code (0 elsewhere)."""
    out: dict[str, np.ndarray] = {}
    if column not in keys.columns:
        return out
    for (key,), part in keys.filter(pl.col(column) > 0).group_by("key", maintain_order=True):
        arr = np.zeros(v)
        arr[[code[e] for e in part["event"].to_list()]] = part[column].to_numpy()
        out[str(key)] = arr
    return out


def _typed(values: pl.Series, kind: str) -> pl.Series:
    """Return text values in the column type of their kind (``other`` becomes null where it is not a category).

    Text keys become an ``Enum`` of their values: a day's column is then a gather of small codes, written to
    Parquet as a dictionary-encoded string column (read back as text by DuckDB and PostHog-shaped readers).
    """
    if kind == "boolean":
        return values.str.to_lowercase().replace_strict(
            {"true": True, "false": False}, default=None, return_dtype=pl.Boolean
        )
    if kind in ("integer", "number"):
        cleaned = pl.select(pl.when(values == OTHER).then(None).otherwise(values)).to_series()
        return cleaned.cast(pl.Float64, strict=False).cast(
            pl.Int64 if kind == "integer" else pl.Float64, strict=False
        )
    # Text: an Enum over the key's values, so a column is drawn as codes into them (no string per row).
    return values.cast(pl.Enum(values.drop_nulls().unique(maintain_order=True)))


def _sketch_rows(table: pl.DataFrame, group: str, value: str, n_classes: int, groups: int) -> np.ndarray:
    """Return the sketches of a (class, ``group``) table as rows class * ``groups`` + group.

    A row is the (class, group)'s sketch where the table has one, else the class's sketch for any group
    (``group`` -1), else the median over classes of those (of every row when no class has one).
    """
    table = table.sort("class", group, "level")
    levels = int(table["level"].max()) + 1  # type: ignore[operator]
    any_group = table.filter(pl.col(group) < 0)
    pooled = (
        (any_group if any_group.height else table)
        .group_by("level")
        .agg(pl.col(value).median())
        .sort("level")[value]
        .to_numpy()
    )
    q = np.tile(pooled, (n_classes, groups, 1))
    for (c,), part in any_group.group_by("class"):
        q[int(c)] = part[value].to_numpy()
    for (c, b), part in table.filter(pl.col(group) >= 0).group_by("class", group):
        q[int(c), int(b)] = part[value].to_numpy()
    return q.reshape(n_classes * groups, levels)
