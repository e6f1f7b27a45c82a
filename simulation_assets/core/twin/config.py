"""Settings of the twin's fit and the targets its checks hold it to."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from simulation_assets.core.config_base import FrozenModel, Probability

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000


class FitConfig(FrozenModel):
    """How the twin is fitted; every number here is written into the spec."""

    seed: int = Field(default=42, ge=0)
    k_anonymity: Annotated[int, Field(ge=2)] = 5  # a value seen for fewer users than this is never copied
    holdout_share: Probability = 0.2  # real users kept out of the fit (privacy test, train-on-twin test)
    idle_minutes: float = Field(default=30.0, gt=0)  # PostHog's session idle timeout
    max_session_hours: float = Field(default=24.0, gt=0)  # PostHog's longest session
    max_classes: int = Field(default=8, ge=1, le=20)
    class_sample_users: int = Field(
        default=20_000, ge=100
    )  # users the class mixture is fitted on (a seeded sample)
    property_sample_users: int = Field(default=20_000, ge=100)  # at most this many users' properties modelled
    property_sample_rows: int = Field(default=250_000, ge=1_000)  # ... and about this many of their events
    depth_groups: int = Field(default=6, ge=1, le=20)  # session-depth groups of users (quantiles)
    # ... each split into this many groups by seconds per event (quantiles within the depth group)
    pace_groups: int = Field(default=2, ge=1, le=5)
    max_events: int = Field(default=120, ge=2)  # event names kept in the flow model (most users first)
    max_property_keys: int = Field(default=64, ge=0)
    quantile_levels: int = Field(default=41, ge=5)  # points of every quantile sketch
    flow_smoothing: float = Field(default=5.0, gt=0)  # pseudo-counts pulling a sparse state to its backoff
    max_categories: int = Field(default=200, ge=2)  # values kept per categorical property


class Targets(FrozenModel):
    """The fidelity and privacy targets (docs/twin.md explains each)."""

    ks_max: float = 0.05  # two-sample KS statistic of each per-user distribution
    tv_max: float = 0.05  # total-variation distance of each profile / mix
    full_power_users: int = 5_000  # from this many real users on, the fixed bounds apply as they are
    retention_points_max: float = 0.03  # weekly retention, weeks 1-8
    retention_weeks: int = 8
    auc_gap_max: float = 0.03  # train-on-twin AUC within this of train-on-real
    dcr_share_max: float = 0.55  # share of twin users closer to a training user than to a holdout user
