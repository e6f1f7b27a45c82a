"""A reference target on loopback and one full default run, shared by the power-user tests of a worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulation_assets.sinks.power_users_client import PowerUserTarget, RunResult
from simulation_assets.target.server import LocalTarget


@pytest.fixture(scope="session")
def reference_target() -> Iterator[LocalTarget]:
    """The bundled PropIQ-like API served on a free 127.0.0.1 port."""
    with LocalTarget() as target:
        yield target


@pytest.fixture(scope="session")
def default_run(
    reference_target: LocalTarget, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunResult, Path]:
    """The five packaged personas, in parallel, against the reference target; plus the log path."""
    log = tmp_path_factory.mktemp("power_users") / "simulation.log"
    result = PowerUserTarget(base_url=reference_target.base_url).run(day="2026-01-15", log_path=log, env={})
    return result, log


def integration_resources() -> dict[str, object]:
    """The webhook and W&B resources of ``power_user_runs``, both off (no URL, W&B disabled)."""
    from simulation_assets.sinks.power_users_notify import StripeEventWebhook
    from simulation_assets.sinks.power_users_wandb import WandbAnalysisLog

    return {"power_users_webhook": StripeEventWebhook(), "power_users_wandb": WandbAnalysisLog()}
