"""Fixtures shared by the funnel tests."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.features import build_features


@pytest.fixture(scope="session")
def model_features() -> pl.DataFrame:
    """Model features of five default daily cohorts of 600,000 impressions (about 7,000 logged-in people)."""
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=d) for d in range(5)]
    frames = [simulate_cohort_events(d, CohortConfig(), seed=8, impressions=600_000).events for d in days]
    return build_features(pl.concat(frames))
