"""Dagster's DefaultRunLauncher with a pause before each launch, so a test can stop the daemon mid-launch.

A real launcher spends this time starting a container, a pod or (the default launcher) a run
worker that imports the code location; the pause makes the window long and known. The pause is
per partition (``pause_seconds``, partitions not listed launch at once). Used by
test_daemon_shutdown.py through ``run_launcher`` in the instance configuration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._core.launcher import DefaultRunLauncher, LaunchRunContext
from dagster._serdes import ConfigurableClassData


class PausingRunLauncher(DefaultRunLauncher):
    def __init__(
        self, inst_data: ConfigurableClassData | None = None, pause_seconds: Mapping[str, float] = {}
    ):  # noqa: B006
        super().__init__(inst_data=inst_data)
        self.pause_seconds = dict(pause_seconds)

    @classmethod
    def config_type(cls) -> dict:
        return {"pause_seconds": dg.Field(dg.Map(str, float), is_required=False, default_value={})}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]):  # noqa: ANN206
        return cls(inst_data=inst_data, **config_value)

    def launch_run(self, context: LaunchRunContext) -> None:
        time.sleep(self.pause_seconds.get(context.dagster_run.tags.get("dagster/partition", ""), 0.0))
        super().launch_run(context)
