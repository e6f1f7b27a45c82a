"""Fixtures shared by the funnel tests."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.features import build_features
from simulation_assets.core.funnel.models import ModelReport, train_and_evaluate


@pytest.fixture(scope="session")
def model_features() -> pl.DataFrame:
    """Model features of five default daily cohorts of 600,000 impressions (about 7,000 logged-in people)."""
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=d) for d in range(5)]
    frames = [simulate_cohort_events(d, CohortConfig(), seed=8, impressions=600_000).events for d in days]
    return build_features(pl.concat(frames))


@pytest.fixture(scope="session")
def default_week() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Events and ground truth of a week of default daily cohorts (1,000,000 impressions a day, seed 42)."""
    cohorts = [
        simulate_cohort_events(dt.date(2026, 1, 1) + dt.timedelta(days=d), CohortConfig(), seed=42)
        for d in range(7)
    ]
    return pl.concat([c.events for c in cohorts]), pl.concat([c.users for c in cohorts])


@pytest.fixture(scope="session")
def model_report(model_features) -> ModelReport:
    """The three models trained on :func:`model_features` (seed 1)."""
    return train_and_evaluate(model_features, seed=1)


@pytest.fixture(scope="session")
def shuffled_report(model_features) -> ModelReport:
    """The same models trained on shuffled labels (seed 1)."""
    return train_and_evaluate(model_features, shuffle_labels=True, seed=1)


# The modules whose tests use the trained models share one xdist group, so one worker builds the features and
# the models (~7 s of CPU); handed out one module at a time, each worker built them.
MODELS_GROUP = "funnel_models"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put every test of a module where some test asks for ``model_features`` in ``MODELS_GROUP``."""
    modules = {
        item.nodeid.split("::", 1)[0]
        for item in items
        if "model_features" in getattr(item, "fixturenames", ())
    }
    for item in items:
        if item.nodeid.split("::", 1)[0] in modules and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(MODELS_GROUP))
