"""Typed configuration of HogFlix traffic: sessions, navigation, interactions, FlixBuddy.

The lifecycle (``config.py``) decides who visits on a day, when, and how much
they watch, rate and add to the watchlist. The numbers here decide how a visit
unfolds into pages and events. Defaults are the specification's figures
("Engagement Simulation", "FlixBuddy Integration", "Performance & Limits");
values marked "choice" are this project's calibration (see docs/hogflix-traffic.md).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from simulation_assets.core.config_base import FrozenModel as _Frozen
from simulation_assets.core.config_base import Probability

Positive = Annotated[float, Field(gt=0.0)]

ENTRY_POINTS = ("homepage", "search", "category", "watchlist", "flixbuddy")

# "FlixBuddy Integration": the eight question templates.
FLIXBUDDY_QUESTIONS = (
    "What's a good action movie?",
    "I want something funny to watch",
    "Show me sci-fi movies",
    "Recommend a family-friendly movie",
    "What are the most popular shows?",
    "I'm in the mood for a thriller",
    "Any good documentaries?",
    "What should I watch tonight?",
)
# Follow-up questions of a multi-turn conversation (this project's; the specification has one question).
FLIXBUDDY_FOLLOW_UPS = (
    "Something shorter?",
    "Anything newer?",
    "Is the first one good for kids?",
    "Which of those is the most popular?",
    "Something similar to the second one?",
    "I've seen those. Any others?",
)


class TrafficConfig(_Frozen):
    """All numbers that turn a persona's visit into a session of events."""

    # --- Navigation ("Navigation Flows": entry points) ---
    entry_weights: dict[str, float] = {
        "homepage": 0.40,
        "search": 0.15,
        "category": 0.20,
        "watchlist": 0.15,
        "flixbuddy": 0.10,
    }
    # --- Interaction probabilities ("Interaction Probabilities") ---
    open_probability: Probability = 0.75  # a listing page leads to a title click
    start_probability: Probability = 0.60  # an opened title is played
    # "Common Paths: watchlist -> watch -> watch (sequential)": each video after a session's first
    # starts from the previous watch page (next episode) with this chance, without listing or title
    # pages (choice).
    autoplay_next_probability: Probability = 0.3
    # "Device type variation": a persona keeps its devices across sessions; this share of its
    # sessions is on its second device (choice; 0: one device per persona).
    second_device_share: Probability = 0.2
    # Genre affinity in a session (see core/hogflix/traits.py): a browsed title comes from the
    # persona's tastes with this chance (else by popularity); a title's completion and stars move
    # with how much the persona likes its genre, relative to the session's other titles.
    affinity_pick_share: Probability = 0.6
    affinity_completion_shift: Annotated[float, Field(ge=0, le=1)] = 0.25
    affinity_rating_shift: Annotated[float, Field(ge=0)] = 1.5
    rating_spread: Annotated[float, Field(ge=0)] = 0.5  # stars around the persona-day's mean
    support_ticket_probability: Probability = 0.02  # per active session
    support_tickets_per_user_hour: Annotated[int, Field(gt=0)] = 5  # "Performance & Limits"
    extra_ticket_probability: Probability = 0.15  # choice: a ticket session files another one
    # --- Event shape and calibration (choice: ~5-10k events/day at pool 400) ---
    progress_milestones: tuple[int, ...] = (25, 50, 75)  # `video_progress` heartbeats (percent)
    completed_at_percent: Annotated[float, Field(gt=0, le=100)] = 95.0  # `video_completed` from here
    # A started video is either abandoned before half (mean completion `abandoned_mean`) or kept
    # (mean `kept_mean`); the chance of keeping it preserves the persona's completion of the day.
    # With the state mix of the lifecycle this puts ~55 % of started videos past 50 % ("Interaction
    # Probabilities": reach 50 % progress, 55 % of started videos).
    abandoned_mean: Annotated[float, Field(gt=0, lt=0.5)] = 0.30
    kept_mean: Annotated[float, Field(gt=0.5, lt=1)] = 0.92
    # Spread of one video's completion within its branch (Beta concentration).
    completion_concentration: Positive = 3.0
    listing_dwell_s: tuple[float, float] = (20.0, 0.7)  # lognormal median seconds, sigma
    title_dwell_s: tuple[float, float] = (15.0, 0.6)
    flixbuddy_chat_s: tuple[float, float] = (45.0, 0.5)
    signup_flow_s: tuple[float, float] = (150.0, 0.4)
    # --- Site ---
    host: str = "hogflix.example"
    catalog_size: Annotated[int, Field(gt=10)] = 240
    # --- FlixBuddy ("FlixBuddy Integration") ---
    flixbuddy_max_per_run: Annotated[int, Field(gt=0)] = 50
    flixbuddy_min_interval_s: Annotated[float, Field(ge=0)] = 5.0  # 1 request per 5 s
    # Multi-turn conversations ("Multi-message conversations"): turns (user messages) -> weight (choice);
    # off: one question and one answer. Each turn is one call, within the cap and the throttle.
    flixbuddy_multi_turn: bool = True
    flixbuddy_turn_weights: dict[Annotated[int, Field(ge=1, le=10)], Annotated[float, Field(ge=0)]] = {
        2: 0.35, 3: 0.25, 4: 0.20, 5: 0.12, 6: 0.08,
    }  # fmt: skip
    # --- Checks ("Target Scale", "Expected Costs"), at the reference pool of 400 ---
    sessions_per_day: tuple[int, int] = (30, 150)
    events_per_day: tuple[int, int] = (5_000, 10_000)  # "~5,000-10,000 events/day" (an estimate)
    # The events band is the specification's cost estimate: the run's mean day must be inside it and
    # every day within this share of its edges (a quiet Tuesday or a busy Saturday may step out).
    events_day_tolerance: Annotated[float, Field(ge=0, lt=1)] = 0.2
    reference_pool: Annotated[int, Field(gt=0)] = 400

    @model_validator(mode="after")
    def _consistent(self) -> TrafficConfig:
        if sum(self.flixbuddy_turn_weights.values()) <= 0:
            raise ValueError("flixbuddy_turn_weights must give some turn count a positive weight")
        if set(self.entry_weights) != set(ENTRY_POINTS):
            raise ValueError(f"entry_weights must define exactly {ENTRY_POINTS}")
        if any(w < 0 for w in self.entry_weights.values()) or sum(self.entry_weights.values()) <= 0:
            raise ValueError("entry_weights must be non-negative with a positive sum")
        if any(not 0 < m < 100 for m in self.progress_milestones):
            raise ValueError("progress_milestones must be percentages strictly between 0 and 100")
        return self

    def scaled_range(self, band: tuple[int, int], pool: int) -> tuple[int, int]:
        """Return ``band`` (defined at ``reference_pool``) scaled to ``pool``."""
        scale = pool / self.reference_pool
        return int(round(band[0] * scale)), int(round(band[1] * scale))
