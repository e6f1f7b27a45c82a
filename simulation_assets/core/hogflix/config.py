"""Typed configuration of the HogFlix persona lifecycle.

Every default is a number from the HogFlix traffic specification; the section
it comes from is named beside it. A few values the specification leaves open
(plan mix, acquisition sources, the size of the Thu-Sat boost, the calibration
knobs at the bottom) are marked as choices of this project.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Annotated

from pydantic import Field, model_validator

from simulation_assets.core.calendar import DEFAULT_START_DATE as DEFAULT_START_DATE  # re-exported
from simulation_assets.core.config_base import FrozenModel as _Frozen
from simulation_assets.core.config_base import Probability

PositiveInt = Annotated[int, Field(gt=0)]

STATES = ("NEW", "ACTIVE", "CASUAL", "DORMANT", "CHURNED")
PATTERNS = ("DAILY", "REGULAR", "WEEKEND", "BINGE", "MONTHLY")
PLANS = ("Premium", "Standard", "Basic")
LIFE_EVENTS = ("VACATION", "SICK", "BUSY_WORK", "NEW_RELEASE_HYPE")


class Range(_Frozen):
    """Inclusive integer range [low, high]."""

    low: int
    high: int

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"range low ({self.low}) must not exceed high ({self.high})")
        return self


class LifeEventRule(_Frozen):
    """A temporary override of the return probability (section "Life Events")."""

    daily_chance: Probability
    duration_days: Range
    return_probability: Probability


class PatternRule(_Frozen):
    """Base return probability of an activity pattern (section "Activity Patterns")."""

    base_return: Probability
    # Probability on the pattern's high days (weekend, binge, days 1-3 of month, Thu-Sat).
    peak_return: Probability | None = None


class SessionDepth(_Frozen):
    """Videos per active day and average completion (section "Engagement Simulation")."""

    videos: Range
    avg_completion: Probability


class RatingRule(_Frozen):
    """Star rating distribution of one plan ("Rating Distributions"): normal, rounded, clipped 1-5."""

    mean: float
    std: Annotated[float, Field(gt=0)]


class TraitsConfig(_Frozen):
    """Hidden traits that drive behaviour (this project's model; see docs/hogflix.md "Hidden traits")."""

    enabled: bool = True
    # Genre affinity: exponential weights raised to this power (0: no taste; 1.5: the favourite averages 44 %).
    genre_concentration: Annotated[float, Field(ge=0)] = 1.5
    # Price sensitivity (0-1) around each plan's level (Basic customers weigh the price most).
    price_sensitivity: dict[str, Probability] = {"Premium": 0.30, "Standard": 0.50, "Basic": 0.70}
    price_sensitivity_spread: Probability = 0.20
    # Satisfaction (0-1): starts in this range; a visit moves it `learning_rate` of the way towards
    # the day's experience (pivot + completion_weight x (completion - expected_completion) +
    # rating_weight x (mean stars - expected_rating), within 0-1); a day away drifts it towards neutral.
    initial_satisfaction: tuple[Probability, Probability] = (0.50, 0.85)
    learning_rate: Probability = 0.10
    completion_weight: float = 1.5
    expected_completion: Probability = 0.60
    rating_weight: float = 0.2
    expected_rating: float = 3.7
    idle_drift: Probability = 0.02
    neutral_satisfaction: Probability = 0.60
    # What satisfaction drives (relative to `pivot`): the engagement score on a visit, the lapse
    # chance, the day's completion and the stars given.
    pivot: Probability = 0.60
    score_weight: float = 4.0  # score points per unit of satisfaction above the pivot, per visit
    lapse_weight: float = 1.0  # lapse chance x (1 + this x (pivot - satisfaction))
    completion_shift: float = 0.15  # completion + this x (satisfaction - pivot)
    rating_shift: float = 1.5  # stars + this x (satisfaction - pivot)


class SeasonsConfig(_Frozen):
    """Seasonal trends of the return chance ("Seasonal trend simulation"; this project's numbers)."""

    enabled: bool = True
    # Yearly: x (1 + amplitude x cos(2 pi (day of year - peak) / 365)): more viewing in winter.
    yearly_amplitude: Annotated[float, Field(ge=0, lt=1)] = 0.04
    yearly_peak_day: Annotated[int, Field(ge=1, le=366)] = 15
    # Holidays (MM-DD: multiplier): busy family days, and New Year's Eve out of the house.
    holidays: dict[str, Annotated[float, Field(gt=0)]] = {
        "12-25": 1.10,
        "12-26": 1.08,
        "12-31": 0.85,
        "01-01": 1.08,
    }


class BillingConfig(_Frozen):
    """Plan changes, payments and dunning ("Subscription upgrades/downgrades", "Payment failure
    simulation"; this project's numbers, see docs/hogflix.md)."""

    plan_changes_enabled: bool = True
    upgrade_chance: Probability = 0.003  # per visit of an established persona, at neutral traits
    downgrade_chance: Probability = 0.002
    satisfaction_weight: float = 3.0  # chance x (1 + this x (satisfaction - pivot)), or the reverse
    pattern_redraw_share: Probability = 0.5  # of plan changes that re-draw the activity pattern
    payments_enabled: bool = True
    price_cents: dict[str, Annotated[int, Field(gt=0)]] = {"Premium": 1799, "Standard": 1299, "Basic": 699}
    failure_chance: dict[str, Probability] = {"Premium": 0.02, "Standard": 0.03, "Basic": 0.05}  # per charge
    retry_after_days: tuple[int, ...] = (3, 5, 7)  # dunning: days from one attempt to the next
    recovery_chance: Probability = 0.35  # per retry, x (1.5 - price sensitivity)


class LifecycleConfig(_Frozen):
    """All numbers of the daily lifecycle step."""

    # --- Pool ("Target Scale", "Configuration Options": PERSONA_POOL) ---
    persona_pool: PositiveInt = 400
    pool_band: Annotated[float, Field(gt=0, lt=1)] = 0.05  # 380-420 around 400
    # "Dynamic pool scaling": dated targets; between two dates the target moves linearly, before the
    # first it is `persona_pool`, after the last it stays there. Empty: a constant `persona_pool`.
    pool_schedule: dict[dt.date, PositiveInt] = {}
    signups_per_day: Range = Range(low=2, high=5)  # "2-5 new signups per day", at pool 400
    signup_reference_pool: PositiveInt = 400  # signups scale with persona_pool / this
    # "Most common state (60-70% of users)": the band the mean ACTIVE share is checked against.
    active_share_band: tuple[Probability, Probability] = (0.60, 0.70)
    # Pool regulation (project choice, see docs/hogflix.md "Calibration"): signups replace the day's
    # churned personas and close `signup_gain` of the morning's gap to the target; the churn chance of
    # long-dormant personas is the base 3 % at the bottom of the pool band and rises by
    # `crowding_churn` x the base across the band.
    signup_gain: Annotated[float, Field(ge=0)] = 0.3
    crowding_churn: Annotated[float, Field(ge=0)] = 14.0
    # Above the band, established personas also lose interest faster: the lapse chance is
    # multiplied by 1 + `crowding_lapse` x the excess over the band's top in band-widths (a pool
    # handed too many personas drains in weeks instead of months).
    crowding_lapse: Annotated[float, Field(ge=0)] = 3.0

    # --- Lifecycle states ("User Lifecycle System") ---
    new_days: PositiveInt = 7  # NEW for the first 7 days
    new_score: Range = Range(low=85, high=95)
    active_score: Range = Range(low=50, high=80)  # score given to seeded ACTIVE personas
    pattern_assignment_day: PositiveInt = 14  # permanent pattern after 14 days
    dormant_after_inactive_days: PositiveInt = 14
    dormant_return_modifier: Probability = 0.30
    churn_after_inactive_days: PositiveInt = 30
    dormant_daily_churn: Probability = 0.03
    churn_cleanup_share: Probability = 0.90  # 90 % cleaned, 10 % kept
    # CASUAL (this project's rule, from the session-depth table): a persona past its
    # NEW week, not DORMANT, that was active on fewer than `casual_max_active_days`
    # of the last 14 days (so on one day at most) still visits but engages lightly.
    # At most 16: the pool keeps a persona's last 16 days (``persona_state.NUMERIC_COLUMNS["history"]``).
    casual_window_days: Annotated[int, Field(gt=0, le=16)] = 14
    casual_max_active_days: PositiveInt = 2

    # --- Activity patterns ("Activity Patterns") ---
    patterns: dict[str, PatternRule] = {
        "DAILY": PatternRule(base_return=0.85),
        "REGULAR": PatternRule(base_return=0.45, peak_return=0.55),  # Thu-Sat boost: +10 pts (choice)
        "WEEKEND": PatternRule(base_return=0.15, peak_return=0.85),
        "BINGE": PatternRule(base_return=0.05, peak_return=0.90),
        "MONTHLY": PatternRule(base_return=0.03, peak_return=0.80),
    }
    # NEW users start DAILY ("80%+ base return"): kept as is, return_scale does not apply to it.
    new_base_return: Probability = 0.85
    binge_days: Range = Range(low=3, high=7)
    binge_cooldown_days: Range = Range(low=10, high=21)
    monthly_peak_days: Range = Range(low=1, high=3)  # days 1-3 of the month
    # "Pattern Assignment": weights DAILY, REGULAR, WEEKEND, BINGE, MONTHLY per plan.
    pattern_weights: dict[str, tuple[float, float, float, float, float]] = {
        "Premium": (0.25, 0.45, 0.15, 0.10, 0.05),
        "Standard": (0.15, 0.40, 0.20, 0.15, 0.10),
        "Basic": (0.05, 0.30, 0.25, 0.20, 0.20),
    }

    # --- Life events ("Life Events") ---
    life_events: dict[str, LifeEventRule] = {
        "VACATION": LifeEventRule(
            daily_chance=0.005, duration_days=Range(low=7, high=14), return_probability=0.0
        ),
        "SICK": LifeEventRule(daily_chance=0.01, duration_days=Range(low=3, high=5), return_probability=0.10),
        "BUSY_WORK": LifeEventRule(
            daily_chance=0.02, duration_days=Range(low=5, high=10), return_probability=0.20
        ),
        "NEW_RELEASE_HYPE": LifeEventRule(
            daily_chance=0.01, duration_days=Range(low=3, high=7), return_probability=0.95
        ),
    }

    # --- Streaks & engagement score ("Streaks & Habituation") ---
    streak_step_days: PositiveInt = 3
    streak_bonus_per_step: Probability = 0.05
    streak_bonus_max: Probability = 0.20
    streak_break_min_days: PositiveInt = 7
    streak_break_penalty: int = 10
    score_gain_active: int = 2
    score_loss_inactive: int = 1
    score_center: float = 50.0
    score_divisor: Annotated[float, Field(gt=0)] = 200.0

    # --- Engagement per active day: one depth rule (viewing.depth_rows), first match wins ---
    # "Session Depth by State": NEW, CASUAL, BINGE MODE; the ACTIVE row is for an established
    # persona whose permanent pattern is not drawn yet (days 7-13).
    session_depth: dict[str, SessionDepth] = {
        "NEW": SessionDepth(videos=Range(low=3, high=8), avg_completion=0.45),
        "ACTIVE": SessionDepth(videos=Range(low=2, high=5), avg_completion=0.65),
        "CASUAL": SessionDepth(videos=Range(low=1, high=3), avg_completion=0.50),
        # "BINGE MODE 5-15 at 85 %" and the pattern's "Binge periods: 10-15 videos/session": the narrower.
        "BINGE": SessionDepth(videos=Range(low=10, high=15), avg_completion=0.85),
    }
    # "Activity Patterns" (Behavior lines), for ACTIVE personas with a permanent pattern.
    pattern_depth: dict[str, SessionDepth] = {
        "DAILY": SessionDepth(videos=Range(low=5, high=10), avg_completion=0.72),  # "5-10 videos, 70%+"
        "REGULAR": SessionDepth(videos=Range(low=2, high=5), avg_completion=0.60),  # "2-5 videos, 60 %"
        "WEEKEND": SessionDepth(videos=Range(low=1, high=3), avg_completion=0.50),  # "light weekday" (choice)
        "WEEKEND_PEAK": SessionDepth(
            videos=Range(low=4, high=8), avg_completion=0.75
        ),  # "binge on Sat/Sun" (choice)
        "BINGE": SessionDepth(videos=Range(low=1, high=3), avg_completion=0.50),  # "cooldown: minimal"
        "MONTHLY": SessionDepth(videos=Range(low=1, high=3), avg_completion=0.55),  # "check-in visits, 1-3"
    }
    # "SICK ... low engagement when active" (this project's numbers).
    sick_depth: SessionDepth = SessionDepth(videos=Range(low=1, high=2), avg_completion=0.40)
    rate_probability: Probability = 0.20  # per watched video
    # "Rating Distributions": each plan's stars (a persona-day's mean is drawn here; the traffic
    # tier spreads it over the day's rated videos).
    ratings: dict[str, RatingRule] = {
        "Premium": RatingRule(mean=4.2, std=0.8),
        "Standard": RatingRule(mean=3.8, std=1.0),
        "Basic": RatingRule(mean=3.2, std=1.2),
    }
    watchlist_probability: Probability = 0.30  # per active session
    flixbuddy_share: Probability = 0.10  # of daily active users
    flixbuddy_max_per_day: PositiveInt = 50
    flixbuddy_per_day: Range = Range(low=8, high=12)  # "8-12 FlixBuddy interactions per day" at pool 400

    # --- Hidden traits, regions, seasons, churn by plan ("Future Enhancements"; each can be switched off)
    traits: TraitsConfig = TraitsConfig()
    regions_enabled: bool = True  # a country and time zone per persona; the evening peak in local time
    seasons: SeasonsConfig = SeasonsConfig()
    # "Adjustable churn rates per plan": the long-dormant churn chance x this (choice).
    churn_by_plan: dict[str, Annotated[float, Field(ge=0)]] = {"Premium": 0.8, "Standard": 1.0, "Basic": 1.25}
    billing: BillingConfig = BillingConfig()

    # --- Signups: plan mix and acquisition sources (project choices; the spec names plans only) ---
    plan_weights: dict[str, float] = {"Premium": 0.30, "Standard": 0.45, "Basic": 0.25}
    source_weights: dict[str, float] = {
        "organic_search": 0.28,
        "paid_social": 0.18,
        "referral": 0.16,
        "direct": 0.14,
        "newsletter": 0.10,
        "paid_search": 0.09,
        "partner": 0.05,
    }
    email_domain: str = "hogflix-synthetic.test"

    # --- Calibration (project choices, see docs/hogflix.md "Calibration") ---
    # The pattern probabilities describe relative propensity; scaling them brings the
    # daily active count to the spec's figures (~87 of ~400 active on a day, 30-150 sessions).
    return_scale: Annotated[float, Field(gt=0, le=1)] = 0.50
    # Daily chance that an established persona loses interest. Without it the pattern rules
    # alone rarely leave anyone 30 days inactive, so churn could not balance 2-5 signups/day.
    lapse_daily_chance: Probability = 0.0075
    # The peaks that define these patterns (a binge, the check-in on days 1-3) bring a persona back
    # even from DORMANT, and those in `unscaled_peaks` keep their specified chance: a MONTHLY persona
    # between check-ins is DORMANT by the 14-day rule without having lost interest.
    defining_peaks: tuple[str, ...] = ("BINGE", "MONTHLY")
    unscaled_peaks: tuple[str, ...] = ("BINGE",)
    lapsed_return_modifier: Probability = 0.02
    # Initial pool: tenure (days since signup) of the personas present on the first day.
    initial_tenure_days: Range = Range(low=0, high=240)
    initial_dormant_share: Probability = 0.30

    @model_validator(mode="after")
    def _consistent(self) -> LifecycleConfig:
        if set(self.patterns) != set(PATTERNS):
            raise ValueError(f"patterns must define exactly {PATTERNS}")
        for name, table in (("ratings", self.ratings), ("churn_by_plan", self.churn_by_plan),
                            ("traits.price_sensitivity", self.traits.price_sensitivity),
                            ("billing.price_cents", self.billing.price_cents),
                            ("billing.failure_chance", self.billing.failure_chance)):  # fmt: skip
            if set(table) != set(PLANS):
                raise ValueError(f"{name} must define exactly {PLANS}")
        if set(self.pattern_weights) != set(PLANS) or set(self.plan_weights) != set(PLANS):
            raise ValueError(f"pattern_weights and plan_weights must define exactly {PLANS}")
        if set(self.life_events) != set(LIFE_EVENTS):
            raise ValueError(f"life_events must define exactly {LIFE_EVENTS}")
        for plan, weights in self.pattern_weights.items():
            if len(weights) != len(PATTERNS) or abs(sum(weights) - 1.0) > 1e-6:
                raise ValueError(f"pattern_weights[{plan}] must be 5 weights summing to 1")
        for name, weights in (("plan_weights", self.plan_weights), ("source_weights", self.source_weights)):
            if any(w < 0 for w in weights.values()) or abs(sum(weights.values()) - 1.0) > 1e-6:
                raise ValueError(f"{name} must be non-negative and sum to 1")
        if set(self.session_depth) != {"NEW", "ACTIVE", "CASUAL", "BINGE"}:
            raise ValueError("session_depth must define NEW, ACTIVE, CASUAL and BINGE")
        if not set(self.unscaled_peaks) <= set(PATTERNS) or not set(self.defining_peaks) <= set(PATTERNS):
            raise ValueError(f"unscaled_peaks and defining_peaks must name patterns of {PATTERNS}")
        if set(self.pattern_depth) != {*PATTERNS, "WEEKEND_PEAK"}:
            raise ValueError(f"pattern_depth must define {PATTERNS} and WEEKEND_PEAK")
        depths = [*self.session_depth.values(), *self.pattern_depth.values(), self.sick_depth]
        if any(d.videos.low < 1 for d in depths):
            raise ValueError(
                "session_depth, pattern_depth and sick_depth videos must be at least 1 (an active day watches something)"
            )
        if any(d.videos.high > 1000 for d in depths):
            raise ValueError("session_depth, pattern_depth and sick_depth videos must be at most 1000 a day")
        for name, score in (("new_score", self.new_score), ("active_score", self.active_score)):
            if score.low < 0 or score.high > 100:
                raise ValueError(f"{name} must be within the engagement score's 0-100, got {score}")
        if self.initial_tenure_days.low < 0 or self.initial_tenure_days.high > 30_000:
            raise ValueError(f"initial_tenure_days must be within 0-30000, got {self.initial_tenure_days}")
        if self.active_share_band[0] > self.active_share_band[1]:
            raise ValueError(f"active_share_band must be (low, high), got {self.active_share_band}")
        if sum(e.daily_chance for e in self.life_events.values()) > 1.0:
            raise ValueError("life_events daily_chance values must sum to at most 1")
        return self

    def pool_target(self, date: dt.date) -> int:
        """Return the target pool of ``date`` (``persona_pool`` unless ``pool_schedule`` says otherwise)."""
        if not self.pool_schedule:
            return self.persona_pool
        points = sorted(self.pool_schedule.items())
        if date < points[0][0]:
            return self.persona_pool
        for (d0, p0), (d1, p1) in zip(points, points[1:]):
            if d0 <= date < d1:
                return int(round(p0 + (p1 - p0) * (date - d0).days / (d1 - d0).days))
        return points[-1][1]

    def for_date(self, date: dt.date) -> LifecycleConfig:
        """Return this config with ``persona_pool`` set to the target of ``date`` (itself without a schedule);
        every band scaled with the pool (signups, pool range, FlixBuddy) follows."""
        target = self.pool_target(date)
        return self if target == self.persona_pool else self.model_copy(update={"persona_pool": target})

    @property
    def signup_scale(self) -> float:
        """Signups scale with the pool: 2-5/day at 400 personas become 20-50/day at 4,000."""
        return self.persona_pool / self.signup_reference_pool

    @property
    def pool_range(self) -> tuple[int, int]:
        """Inclusive band the non-churned pool should stay in once warmed up (380-420 at 400)."""
        half = self.persona_pool * self.pool_band
        return int(round(self.persona_pool - half)), int(round(self.persona_pool + half))

    @property
    def flixbuddy_per_day_range(self) -> tuple[int, int]:
        """Inclusive daily FlixBuddy band, scaled to the pool (8-12 at 400)."""
        scale = self.signup_scale
        return int(round(self.flixbuddy_per_day.low * scale)), int(round(self.flixbuddy_per_day.high * scale))

    @property
    def signup_range(self) -> tuple[int, int]:
        """Inclusive daily signup band, scaled to the pool (2-5 at 400)."""
        scale = self.signup_scale
        low = max(1, int(round(self.signups_per_day.low * scale)))
        return low, max(low, int(round(self.signups_per_day.high * scale)))


def lifecycle_config_from_env(**overrides: object) -> LifecycleConfig:
    """Build the config from defaults, then ``PERSONA_POOL`` from the environment, then ``overrides``."""
    values: dict[str, object] = {}
    pool = os.environ.get("PERSONA_POOL")
    if pool not in (None, ""):
        try:
            values["persona_pool"] = int(pool)
        except ValueError as exc:
            raise ValueError(f"PERSONA_POOL must be a positive integer, got {pool!r}") from exc
    values.update(overrides)
    return LifecycleConfig(**values)
