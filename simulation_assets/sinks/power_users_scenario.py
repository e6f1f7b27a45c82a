"""Read a power-user scenario file (YAML) into the validated model of ``core.power_users.config``."""

from __future__ import annotations

from pathlib import Path

import yaml

from simulation_assets.core.power_users.config import DEFAULT_PROFILES, ConfigError, Scenario, parse_scenario


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Return the scenario in ``path`` (default: the packaged five personas)."""
    file = Path(path) if path else DEFAULT_PROFILES
    if not file.exists():
        raise ConfigError(f"scenario file not found: {file}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"invalid scenario {file}: not valid YAML at{where}: {exc}") from None
    return parse_scenario(data, str(file))
