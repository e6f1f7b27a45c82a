"""Dagster's DefaultRunLauncher held before a launch, so a test can stop the daemon mid-launch.

A real launcher spends this time starting a container, a pod or (the default launcher) a run
worker that imports the code location; holding it makes the window as long as the test needs,
on a quiet or a busy machine alike. A partition listed in ``hold_until`` launches once its file
exists (the test creates it when the daemon has done what the test waits for); the others at
once. Used by test_daemon_shutdown.py through ``run_launcher`` in the instance configuration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.launcher import DefaultRunLauncher, LaunchRunContext
from dagster._serdes import ConfigurableClassData

# A held launch goes on after this long even if its file never appears (a test that failed first).
LONGEST_HOLD_S = 300.0


class PausingRunLauncher(DefaultRunLauncher):
    def __init__(self, inst_data: ConfigurableClassData | None = None, hold_until: Mapping[str, str] = {}):  # noqa: B006
        super().__init__(inst_data=inst_data)
        self.hold_until = {partition: Path(path) for partition, path in hold_until.items()}

    @classmethod
    def config_type(cls) -> dict:
        return {"hold_until": dg.Field(dg.Map(str, str), is_required=False, default_value={})}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]):  # noqa: ANN206
        return cls(inst_data=inst_data, **config_value)

    def launch_run(self, context: LaunchRunContext) -> None:
        release = self.hold_until.get(context.dagster_run.tags.get("dagster/partition", ""))
        deadline = time.monotonic() + LONGEST_HOLD_S
        while release is not None and not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        super().launch_run(context)
