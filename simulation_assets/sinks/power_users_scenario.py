"""Read a power-user scenario file (YAML) into the validated model of ``core.power_users.config``.

A command reads its scenario in several places (the input check, the persona partitions of the
definitions, each asset of its runs): the file is parsed and validated once per process and
version of the file (its path, size and modification time), and every later read returns the same
``Scenario``. Scenarios are values: code derives new ones with ``model_copy``/``populated`` and never
changes one in place (``Scenario`` is frozen).
"""

from __future__ import annotations

import os
from pathlib import Path

from simulation_assets.core.power_users.config import DEFAULT_PROFILES, ConfigError, Scenario, parse_scenario
from simulation_assets.sinks.config_files import ConfigFileError, read_overrides

_PARSED: dict[tuple[str, int, int, int], Scenario] = {}  # (path, inode, size, mtime ns) -> scenario
_KEPT = 8  # versions of scenario files kept per process


def load_scenario(path: str | Path | None = None, source: str = "scenario") -> Scenario:
    """Return the scenario in ``path`` (default: the packaged five personas).

    ``source`` names what pointed at the file (``--config``, ``POWER_USERS_SCENARIO``) in errors.
    Raises ConfigError naming the file, or the field and persona at fault (errors are never kept:
    a fixed file is read again).
    """
    file = Path(path) if path else DEFAULT_PROFILES
    key = _version(file)
    if key is not None and key in _PARSED:
        return _PARSED[key]
    try:
        data = read_overrides(file, source)
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None
    scenario = parse_scenario(data, str(file))
    if key is not None and key == _version(file):  # unchanged while it was read
        if len(_PARSED) >= _KEPT:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[key] = scenario
    return scenario


def _version(file: Path) -> tuple[str, int, int, int] | None:
    try:
        stat = os.stat(file.expanduser())
    except OSError:
        return None  # read_overrides names the problem
    return str(file.expanduser().resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns
