"""A population of power users cloned from the scenario's archetypes, deterministically.

``population: {size: 100}`` (or ``--users 100``) turns the five archetypes into 100 users: each
clone gets a distinct synthetic name, user id and e-mail in the simulated domain, and slightly
varied traits (session length, start hours, time zone, the probability of optional actions),
drawn from ``core.rng`` streams keyed by (seed, archetype, clone number). Scripts, edge cases
and analyses per session stay the archetype's, so every clone provokes the same edge cases.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulation_assets.core.rng import stream

# Personas are ``core.power_users.config.Persona`` models (not imported: config imports this module).
Persona = Any

# Time zones clones may move to (the archetype keeps its own half of the time).
US_TIME_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
# Synthetic first names by initial: a clone of Paula is a P-name, so the archetype stays readable.
FIRST_NAMES = {
    "A": ("Ada", "Amir", "Anya", "Arlo"),
    "B": ("Ben", "Bea", "Bruno", "Bianca", "Basil", "Bodhi"),
    "F": ("Frank", "Fay", "Felix", "Farah", "Flora", "Finn"),
    "P": ("Paula", "Priya", "Pedro", "Petra", "Pablo", "Pia"),
    "R": ("Rita", "Ravi", "Rosa", "Rafael", "Ruth", "Remy"),
    "W": ("Will", "Wren", "Wanda", "Wes", "Winona", "Wade"),
}
_FALLBACK_NAMES = ("Alex", "Sam", "Jordan", "Casey", "Robin", "Morgan")


class PopulationSpec(BaseModel):
    """How many users to clone from the archetypes, in which proportions, and how much they differ."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(
        default=0, ge=0, le=1_000_000, description="0: the archetypes themselves, one user each"
    )
    weights: dict[str, float] = Field(
        default_factory=dict, description="archetype name -> share of the population (default: equal)"
    )
    trait_spread: float = Field(default=0.15, ge=0, le=0.5, description="relative spread of varied traits")
    time_zones: tuple[str, ...] = US_TIME_ZONES

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if v < 0}
        if bad:
            raise ValueError(f"weights must be >= 0, got {bad}")
        return value


def clone_counts(archetypes: list[str], size: int, weights: dict[str, float]) -> dict[str, int]:
    """Return how many clones each archetype gets: ``size`` split by ``weights`` (largest remainder)."""
    w = np.array([weights.get(a, 1.0 if not weights else 0.0) for a in archetypes], dtype=float)
    if w.sum() <= 0:
        raise ValueError(f"population weights give every archetype 0; archetypes: {', '.join(archetypes)}")
    exact = size * w / w.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: size - counts.sum()]] += 1
    return dict(zip(archetypes, counts.tolist()))


def _first_name(archetype_name: str, rng: np.random.Generator) -> str:
    last = archetype_name.split("-")[-1]
    names = FIRST_NAMES.get(last[:1].upper(), _FALLBACK_NAMES)
    return str(names[int(rng.integers(len(names)))])


def clone_persona(persona: Persona, number: int, width: int, seed: int, spec: PopulationSpec) -> Persona:
    """Return clone ``number`` (1-based) of the validated archetype ``persona``."""
    rng = stream(seed, "power_users", "population", persona.name, number)
    first = _first_name(persona.name, rng)
    tag = f"{number:0{width}d}"
    local, domain = persona.email.split("@", 1)
    profile = persona.persona
    spread = spec.trait_spread
    factor = 1.0 + spread * (2.0 * rng.random() - 1.0)
    lo, hi = profile.session_minutes
    changes: dict = {
        "session_minutes": (max(1.0, round(lo * factor, 1)), max(1.0, round(hi * factor, 1))),
        "start_hour_shift": round(float(rng.uniform(-1.0, 1.0)), 2),
        "archetype": persona.name,
    }
    if rng.random() < 0.5:
        changes["time_zone"] = str(spec.time_zones[int(rng.integers(len(spec.time_zones)))])
    actions = []
    for action in persona.actions:
        p = action.probability
        if 0.0 < p < 1.0:  # optional habits vary; scripted steps (probability 1) stay
            varied = float(np.clip(p * (1.0 + spread * (2.0 * rng.random() - 1.0)), 0.0, 1.0))
            action = action.model_copy(update={"probability": varied})
        actions.append(action)
    parts = persona.name.split("-")
    parts[-1] = first
    return persona.model_copy(
        update={
            "name": "-".join(parts) + f"-{tag}",
            "user_id": f"{persona.user_id}_{tag}",
            "email": f"{first.lower()}.{local}.{tag}@{domain}",
            "persona": profile.model_copy(update=changes),
            "actions": actions,
        }
    )


def clone_population(personas: list[Persona], seed: int, spec: PopulationSpec) -> list[Persona]:
    """Return ``spec.size`` clones of ``personas`` (clones of one archetype together, archetypes in order).

    A size of 0 returns ``personas`` unchanged. Raises ValueError on weights naming unknown personas.
    """
    if spec.size == 0:
        return list(personas)
    archetypes = [p.name for p in personas]
    unknown = sorted(set(spec.weights) - set(archetypes))
    if unknown:
        raise ValueError(
            f"population.weights names unknown personas {unknown}; valid: {', '.join(archetypes)}"
        )
    counts = clone_counts(archetypes, spec.size, spec.weights)
    width = max(3, len(str(max(counts.values()))))
    clones = [
        clone_persona(persona, k, width, seed, spec)
        for persona in personas
        for k in range(1, counts[persona.name] + 1)
    ]
    names = [c.name for c in clones]
    if len(set(names)) != len(names):
        raise ValueError("population clones got repeated names; give the archetypes distinct name prefixes")
    return clones
