"""The twin spec: a readable YAML document plus tables, everything the generator needs and nothing more.

The document holds the scalars a person reads and edits (how many users and
days to generate, a churn multiplier, events to drop, class shares, the arrival
model, what privacy removed); the tables hold the distributions (lifetimes,
hours, transitions, sketches, property values), one Parquet file each, with
event names spelled out so an edit needs no code book. ``version`` is the
format's version: a spec written by another version is refused with a message
rather than misread.

Only the checks live here (pure); reading and writing the files is
``simulation_assets.sinks.twin_spec_store``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated, Any

import polars as pl
from pydantic import Field, NonNegativeFloat, ValidationError

from simulation_assets.core.config_base import FrozenModel, scenario_key

FORMAT = "simulation-assets-twin"
VERSION = 1

TABLE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "survival": {"class": pl.Int16(), "kind": pl.String(), "age_days": pl.Int32(), "survival": pl.Float64()},
    "sessions_per_day": {"class": pl.Int16(), "sessions": pl.Int16(), "share": pl.Float64()},
    # The same per activity band of the class (sessions.band_cuts); absent: sessions_per_day for all.
    "sessions_by_activity": {
        "class": pl.Int16(),
        "band": pl.Int16(),
        "sessions": pl.Int16(),
        "share": pl.Float64(),
    },
    "hour_profile": {"class": pl.Int16(), "weekday": pl.Int8(), "hour": pl.Int8(), "share": pl.Float64()},
    # block: the 4-hour block of the day in which the session before the gap ended; -1 (or absent, older specs): any.
    # Factor on a class's first-session hours by the day's sessions (bucket 0: one, 1: two, 2: three or more).
    # neighbours: 1 if the user is active the day before, + 2 if the day after; -1 (or absent, older specs): any.
    "first_hour_tilt": {
        "bucket": pl.Int8(),
        "neighbours": pl.Int8(),
        "hour": pl.Int8(),
        "factor": pl.Float64(),
    },
    "day_gaps": {"class": pl.Int16(), "block": pl.Int8(), "level": pl.Int16(), "log_minutes": pl.Float64()},
    # A class's day clock: the share of its session starts in each UTC hour.
    "day_clock": {"class": pl.Int16(), "hour": pl.Int8(), "share": pl.Float64()},
    # A within-day gap as the share it takes of the clock left after the earlier session ended, per class and
    # sessions still to come (left 0: the next is the day's last; 1: more; -1: any). Specs that have this
    # table place later sessions by it; older ones by ``day_gaps`` (minutes).
    "day_gap_shares": {"class": pl.Int16(), "left": pl.Int8(), "level": pl.Int16(), "share": pl.Float64()},
    "transitions": {
        "class": pl.Int16(),
        "depth": pl.Int16(),  # the users' session-depth group; -1 (or absent, older specs): every group
        "prev": pl.String(),
        "cur": pl.String(),
        "position": pl.Int32(),  # first position of the bucket the row applies to; -1: any position
        "next": pl.String(),
        "probability": pl.Float64(),
    },
    "end_hazard": {
        "class": pl.Int16(),
        "depth": pl.Int16(),
        "cur": pl.String(),
        "position": pl.Int32(),
        "hazard": pl.Float64(),
    },
    # Shift of the end hazard's log odds by the time since the session's first event (bucket start, s).
    "end_by_elapsed": {"cur": pl.String(), "elapsed_s": pl.Int32(), "log_odds": pl.Float64()},
    # Shift of the end hazard's log odds by the user's (session group, band of active days: flow.pace_band_cuts).
    "end_by_activity": {"depth": pl.Int16(), "band": pl.Int16(), "log_odds": pl.Float64()},
    "session_pace": {"level": pl.Int16(), "log_pace": pl.Float64()},
    "user_pace": {
        "band": pl.Int16(),  # band of active days (flow.pace_band_cuts); absent (older specs): one for all
        "level": pl.Int16(),
        "log_pace": pl.Float64(),
    },  # a user's own pace, on top of the session's
    # A user's own log-odds shift of a visit the day after a visit (streaks), a sketch per class.
    "user_streak": {"class": pl.Int16(), "level": pl.Int16(), "log_odds": pl.Float64()},
    "depth_groups": {"class": pl.Int16(), "depth": pl.Int16(), "share": pl.Float64()},
    # The same shares per activity band (third of the class by active days); absent: depth_groups for all.
    "depth_by_activity": {
        "class": pl.Int16(),
        "band": pl.Int16(),
        "depth": pl.Int16(),
        "share": pl.Float64(),
    },
    "inter_event_times": {
        "cur": pl.String(),
        "next": pl.String(),
        "position": pl.Int32(),  # first position of the gap's bucket (flows.TIME_POSITIONS); -1 or absent: any
        "level": pl.Int16(),
        "log_seconds": pl.Float64(),
    },
    # same_share: the export's share of the event's rows equal to the session's previous value of the key;
    # carry_share: the chance the twin copies that value instead of drawing; avoid_share: the chance it draws
    # again a value equal to it; back_share: the chance the row before takes an event's only value (absent in
    # older specs: 0); entry_rows: the share of the event's rows that open their session's use of the key, where
    # those rows keep a mix of their own (event_categories.entry_share; null elsewhere and in older specs);
    # follow_share: for a key that follows another (property_lookups), the export's share of the event's rows
    # with a looked-up parent value whose value is the lookup's (null elsewhere and in older specs).
    "event_keys": {
        "event": pl.String(),
        "key": pl.String(),
        "present_share": pl.Float64(),
        "same_share": pl.Float64(),
        "carry_share": pl.Float64(),
        "avoid_share": pl.Float64(),
        "back_share": pl.Float64(),
        "entry_rows": pl.Float64(),
        "follow_share": pl.Float64(),
    },
    "event_categories": {
        "event": pl.String(),
        "key": pl.String(),
        "value": pl.String(),
        "share": pl.Float64(),
        "entry_share": pl.Float64(),
    },
    # The mix of an event's rows followed by event ``next`` in their session, where it differs from the event's
    # other rows' (the page viewed before a product's view); next_rows: those rows' share of the event's rows
    # (after a session's first, where the first rows have a mix of their own).
    "event_next_categories": {
        "event": pl.String(),
        "key": pl.String(),
        "next": pl.String(),
        "next_rows": pl.Float64(),
        "value": pl.String(),
        "share": pl.Float64(),
    },
    "event_numbers": {"event": pl.String(), "key": pl.String(), "level": pl.Int16(), "value": pl.Float64()},
    # A number's sketch per value of the category of its row that explains it (a revenue by its currency).
    "event_numbers_by": {
        "event": pl.String(),
        "key": pl.String(),
        "by": pl.String(),
        "by_value": pl.String(),
        "level": pl.Int16(),
        "value": pl.Float64(),
    },
    "constant_marginals": {"key": pl.String(), "value": pl.String(), "share": pl.Float64()},
    "constant_combos": {"share": pl.Float64()},  # plus one String column per constant key
    # The same per activity class (shares of the class's users, adding up to the share they cover).
    "class_combos": {"class": pl.Int16(), "share": pl.Float64()},
    # Keys constant within a session: the same two tables over sessions (one String column per key).
    "session_marginals": {"key": pl.String(), "value": pl.String(), "share": pl.Float64()},
    "session_combos": {"share": pl.Float64()},
    # Keys whose value follows another key's (a video's title, or its duration, its id): the value for each
    # parent value (a number's as text).
    "property_lookups": {
        "key": pl.String(),
        "parent": pl.String(),
        "parent_value": pl.String(),
        "value": pl.String(),
    },
    # An event's value of a key copied from another key of the row (lag 0) or of the session's previous row (1).
    "property_sources": {
        "event": pl.String(),
        "key": pl.String(),
        "source": pl.String(),
        "lag": pl.Int8(),
        "same_share": pl.Float64(),
        "copy_share": pl.Float64(),
    },
    # Version keys that roll out: each 7-day block's mix over sessions, rank 0 the newest value.
    "property_trends": {
        "key": pl.String(),
        "block": pl.Int16(),
        "value": pl.String(),
        "share": pl.Float64(),
        "rank": pl.Int32(),
    },
}
# Tables added after the first specs (or kept only for older specs: day_gaps): empty when absent.
OPTIONAL_TABLES = frozenset(
    {
        "end_by_elapsed",
        "end_by_activity",
        "user_pace",
        "depth_by_activity",
        "sessions_by_activity",
        "user_streak",
        "first_hour_tilt",
        "day_gaps",
        "day_clock",
        "day_gap_shares",
        "session_marginals",
        "session_combos",
        "property_lookups",
        "class_combos",
        "property_trends",
        "property_sources",
        "event_next_categories",
        "event_numbers_by",
    }
)
START, END, ANY = "START", "END", "*"
# The largest log-odds shift of the end hazard by a user's session group and band of active days.
END_SHIFT_LIMIT = 3.0
# "Previous event" of the start state of a user's first session in the window (absent in older specs).
FIRST = "FIRST"
# "Previous event" of a chain state whose current event is the 3rd, 4th, 5th-or-later of its name in a row.
REPEATS = ("REPEAT3", "REPEAT4", "REPEAT5+")
KINDS = ("new", "backlog")


class SpecError(ValueError):
    """A spec that cannot drive the generator; the message names the field or table."""


class Source(FrozenModel):
    export: str
    rows: int
    users: int
    training_users: int
    holdout_users: int
    first_day: dt.date
    last_day: dt.date
    sessions_rebuilt: bool
    # Users left out of the fit as machines (crawlers, load tests: features.extreme_users) and their events;
    # the report leaves them out of the export's side too (0 in older specs).
    machine_users: int = Field(default=0, ge=0)
    machine_events: int = Field(default=0, ge=0)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


class Generation(FrozenModel):
    """What ``simulate twin run`` makes by default; edit to scale users, change churn, drop events."""

    users: int = Field(gt=0)
    days: int = Field(gt=0)
    start: dt.date
    seed: int = Field(default=42, ge=0)
    churn_multiplier: float = Field(
        default=1.0, ge=0.0, description="x the daily churn hazard of every class"
    )
    drop_events: list[str] = Field(default_factory=list, description="event names the twin never emits")


class ArrivalsDoc(FrozenModel):
    intercept: float
    slope: float
    weekday_log: list[float] = Field(min_length=7, max_length=7)
    backlog_users: float = Field(ge=0)
    backlog_decay: float = Field(ge=0, lt=1)
    window_days: int = Field(gt=0)
    # x the model's expected arrivals, per 7-day block of the window (beyond it, the last); absent: 1
    week_factor: list[NonNegativeFloat] = Field(default_factory=list)


class ClassDoc(FrozenModel):
    id: int = Field(ge=0)
    share_new: float = Field(ge=0)
    share_backlog: float = Field(ge=0)
    # Per arrival kind, the class's share among that kind's users first seen in each 7-day block of the
    # window (empty in older specs: share_new / share_backlog everywhere).
    share_by_block: dict[str, list[float]] = Field(default_factory=dict)
    return_beta: dict[str, list[float]]  # kind -> [alpha, beta]
    return_beta_by_life: dict[str, list[list[float]]] = Field(
        default_factory=dict
    )  # kind -> per lifetime band
    return_by_recency: list[float] = Field(
        min_length=1
    )  # x the odds of a visit, by days since the last one (1..)
    activity_by_age_week: list[float] = Field(min_length=1)  # x the daily chance, by week of user age
    # kind -> x the odds of a visit on each of the first days of age (0..), on top of the rest; absent: none
    return_by_age_day: dict[str, list[float]] = Field(default_factory=dict)
    tail_hazard: dict[str, float]  # kind -> daily churn chance beyond the survival table
    weekday_multipliers: list[float] = Field(min_length=7, max_length=7)
    # How much a user keeps to weekdays of their own, per band of the class's users by return chance (equal
    # shares, lowest first): each user's weekday mix is drawn from a Dirichlet with the class's mix as mean and
    # concentration 1 / loyalty - 1 (empty, and older specs: the class's mix for everyone).
    weekday_loyalty: list[Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(default_factory=list)
    # How much a user's days agree on their number of sessions: the correlation of the Gaussian copula that
    # ties them (0, and older specs: each day's count drawn afresh from the class's distribution).
    sessions_persistence: float = Field(default=0.0, ge=0.0, lt=1.0)
    # How much a user's weeks differ: each 7-day week of the run (from its first day) multiplies a user's odds
    # of a visit by exp(s z - s^2 / 2), z a fresh standard normal per user and week (0, and older specs: none).
    week_spread: float = Field(default=0.0, ge=0.0, le=5.0)
    # x the log odds of the user's own streak (table ``user_streak``), fitted by simulation (1, and older specs: as
    # estimated); with ``streak_keeps_rate`` each user's odds on every day move so that their streak leaves their
    # share of active days as their return chance says (false, and older specs: the streak adds to it).
    streak_scale: float = Field(default=1.0, ge=0.0, le=10.0)
    streak_keeps_rate: bool = False
    identified_share: dict[str, float]  # kind -> share of users identified during the window
    training_users: int = Field(ge=0)


class CalendarDay(FrozenModel):
    """A date whose traffic departs from its weekday's level: x the new users expected, x the odds of a return."""

    date: dt.date
    arrivals: NonNegativeFloat = 1.0
    activity: NonNegativeFloat = 1.0


class SpecDocument(FrozenModel):
    format: str
    version: int
    source: Source
    generation: Generation
    arrivals: ArrivalsDoc
    classes: list[ClassDoc] = Field(min_length=1)
    class_selection: dict[str, Any]
    sessions: dict[str, Any]  # idle_minutes, max_hours; band_cuts (absent in older specs)
    flow: dict[str, Any]
    identity: dict[str, Any]
    properties: dict[str, Any]
    privacy: dict[str, Any]
    fit: dict[str, Any] = Field(default_factory=dict)
    # Dates that depart from their weekday's level (a sale, a holiday, a day in the news); absent: none.
    calendar: list[CalendarDay] = Field(default_factory=list)
    tables: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass
class TwinSpec:
    """A validated document and its tables."""

    document: SpecDocument
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)

    @property
    def events(self) -> list[str]:
        return list(self.document.flow["events"])

    @property
    def n_classes(self) -> int:
        return len(self.document.classes)

    def key(self) -> str:
        """Return a short stable name of this spec's content (document and tables) for the store."""
        digest = {name: frame.hash_rows().sum() for name, frame in sorted(self.tables.items())}
        return scenario_key("twin", {"doc": self.document.model_dump(mode="json"), "tables": digest})

    def with_generation(self, **changes: Any) -> TwinSpec:
        """Return a copy whose ``generation`` section has ``changes`` applied (validated)."""
        merged = {
            **self.document.generation.model_dump(),
            **{k: v for k, v in changes.items() if v is not None},
        }
        try:
            generation = Generation(**merged)
        except ValidationError as exc:
            raise SpecError(f"generation: {_first_error(exc)}") from None
        return TwinSpec(self.document.model_copy(update={"generation": generation}), self.tables)


def build_document(data: dict[str, Any]) -> SpecDocument:
    """Validate a document mapping; raise SpecError naming the first bad field."""
    if not isinstance(data, dict):
        raise SpecError("the spec document must be a mapping")
    if data.get("format") != FORMAT:
        raise SpecError(f"format: expected {FORMAT!r}, got {data.get('format')!r} (is this a twin spec?)")
    if data.get("version") != VERSION:
        raise SpecError(
            f"version: this build reads twin specs of version {VERSION}, got {data.get('version')!r}"
        )
    try:
        document = SpecDocument(**data)
    except ValidationError as exc:
        raise SpecError(_first_error(exc)) from None
    bands = {len(cd.weekday_loyalty) for cd in document.classes} - {0}
    if len(bands) > 1:
        raise SpecError(
            f"classes[].weekday_loyalty: every class needs the same number of bands (or none), got {sorted(bands)}"
        )
    return document


def validate_tables(document: SpecDocument, tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Return the tables cast to their schemas; raise SpecError naming a missing table or column."""
    out = {}
    for name, schema in TABLE_SCHEMAS.items():
        if name in OPTIONAL_TABLES and name not in tables:  # specs written before the table existed
            tables = {**tables, name: pl.DataFrame(schema=schema)}
        if name not in tables:
            raise SpecError(f"table {name!r} is missing")
        frame = tables[name]
        # Chains written before they were kept per depth group stand for every group.
        if name == "transitions" and "depth" not in frame.columns:
            frame = frame.with_columns(pl.lit(-1, pl.Int16).alias("depth"))
        if name == "inter_event_times" and "position" not in frame.columns:  # gaps at any position
            frame = frame.with_columns(pl.lit(-1, pl.Int32).alias("position"))
        if name == "event_categories" and "entry_share" not in frame.columns:  # one mix for every row
            frame = frame.with_columns(pl.lit(None, pl.Float64).alias("entry_share"))
        if name == "event_keys":  # written before values were carried within sessions: every row drawn
            frame = frame.with_columns(
                *[
                    pl.lit(None, pl.Float64).alias(c)
                    for c in ("same_share", "entry_rows", "follow_share")
                    if c not in frame.columns
                ],
                *[
                    pl.lit(0.0).alias(c)
                    for c in ("carry_share", "avoid_share", "back_share")
                    if c not in frame.columns
                ],
            )
        if name == "user_pace" and "band" not in frame.columns:  # one sketch for every user
            frame = frame.with_columns(pl.lit(0, pl.Int16).alias("band"))
        if (
            name == "first_hour_tilt" and "neighbours" not in frame.columns
        ):  # one factor whatever the neighbours
            frame = frame.with_columns(pl.lit(-1, pl.Int8).alias("neighbours"))
        # Gaps written before they were kept per block of the day apply after any block.
        if name == "day_gaps" and "block" not in frame.columns:
            frame = frame.with_columns(pl.lit(-1, pl.Int8).alias("block"))
        missing = [c for c in schema if c not in frame.columns]
        if missing:
            raise SpecError(f"table {name!r} lacks column(s) {', '.join(missing)}")
        try:
            out[name] = frame.with_columns([pl.col(c).cast(t) for c, t in schema.items()])
        except pl.exceptions.PolarsError as exc:
            raise SpecError(f"table {name!r}: {str(exc).splitlines()[0]}") from None
    n = len(document.classes)
    for name in ("survival", "sessions_per_day", "hour_profile", "transitions", "end_hazard", "depth_groups"):
        bad = out[name].filter((pl.col("class") < 0) | (pl.col("class") >= n))
        if not bad.is_empty():
            raise SpecError(
                f"table {name!r} names class {bad['class'][0]}, but the spec has classes 0..{n - 1}"
            )
    shifts = out["end_by_activity"]
    wrong = shifts.filter(
        ~pl.col("log_odds").is_finite() | (pl.col("log_odds").abs() > END_SHIFT_LIMIT)
        | (pl.col("depth") < 0) | (pl.col("band") < 0)
    )  # fmt: skip
    if not wrong.is_empty():
        row = wrong.row(0, named=True)
        raise SpecError(
            f"table 'end_by_activity': log_odds must be within ±{END_SHIFT_LIMIT:g} for a session group (depth) and "
            f"band of 0 or more, got {row['log_odds']} at depth {row['depth']}, band {row['band']}"
        )
    known = set(document.flow["events"]) | {START, END}
    for column in ("prev", "cur", "next"):
        allowed = known | set(REPEATS) | {FIRST} if column == "prev" else known
        unknown = set(out["transitions"][column].unique().to_list()) - allowed
        if unknown:
            raise SpecError(
                f"table 'transitions' column {column!r} names events not in flow.events: {sorted(unknown)[:5]}"
            )
    constants = list(document.properties.get("constants", []))
    missing = [c for c in constants if c not in tables["constant_combos"].columns]
    if missing:
        raise SpecError(f"table 'constant_combos' lacks the constant key column(s) {', '.join(missing)}")
    out["constant_combos"] = tables["constant_combos"].with_columns(
        pl.col("share").cast(pl.Float64), *[pl.col(c).cast(pl.String) for c in constants]
    )
    by_class = out["class_combos"]
    if by_class.height:
        missing = [c for c in constants if c not in by_class.columns]
        if missing:
            raise SpecError(f"table 'class_combos' lacks the constant key column(s) {', '.join(missing)}")
        out["class_combos"] = by_class.with_columns(*[pl.col(c).cast(pl.String) for c in constants])
    per_session = list(document.properties.get("session_constants", []))
    combos = tables.get("session_combos", out["session_combos"])
    missing = [c for c in per_session if c not in combos.columns]
    if missing:
        raise SpecError(f"table 'session_combos' lacks the session key column(s) {', '.join(missing)}")
    out["session_combos"] = combos.with_columns(
        pl.col("share").cast(pl.Float64), *[pl.col(c).cast(pl.String) for c in per_session]
    )
    return out


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" + (
        f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
    )
