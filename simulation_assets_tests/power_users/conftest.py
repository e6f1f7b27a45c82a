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


def lean_scenario_file(folder: Path, keep: tuple[str, ...] = ("reset_user", "login", "view_pricing")) -> Path:
    """Write the packaged scenario with each persona's actions cut to the types ``keep``; return its path.

    The personas keep their seed rhythm (frequency, local hours, session length); only the scripted
    edge cases go, whose waits (rate-limit windows, back-offs, 1 s exports) a test of the rhythm or
    of the CLI's plumbing does not need.
    """
    import yaml

    from simulation_assets.sinks.power_users_scenario import load_scenario

    data = load_scenario().model_dump(mode="json", by_alias=True, exclude={"population"})
    for persona in data["simulations"]:
        actions = [a for a in persona["actions"] if a["type"] in keep]
        persona["actions"] = [{k: v for k, v in a.items() if k != "edge_case"} for a in actions]
    path = folder / "lean_scenario.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path
