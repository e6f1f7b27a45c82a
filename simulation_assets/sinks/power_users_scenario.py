"""Read a power-user scenario file (YAML) into the validated model of ``core.power_users.config``."""

from __future__ import annotations

from pathlib import Path

from simulation_assets.core.power_users.config import DEFAULT_PROFILES, ConfigError, Scenario, parse_scenario
from simulation_assets.sinks.config_files import ConfigFileError, read_overrides


def load_scenario(path: str | Path | None = None, source: str = "scenario") -> Scenario:
    """Return the scenario in ``path`` (default: the packaged five personas).

    ``source`` names what pointed at the file (``--config``, ``POWER_USERS_SCENARIO``) in errors.
    Raises ConfigError naming the file, or the field and persona at fault.
    """
    file = Path(path) if path else DEFAULT_PROFILES
    try:
        data = read_overrides(file, source)
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None
    return parse_scenario(data, str(file))
