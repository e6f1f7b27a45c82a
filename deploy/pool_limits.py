"""Write the pool limits of deploy/pools.yaml into the Dagster instance at $DAGSTER_HOME.

Dagster keeps pool (concurrency key) limits in the instance database, not in dagster.yaml.
Run once per instance, and again after editing pools.yaml; it is idempotent:

    python deploy/pool_limits.py            # apply deploy/pools.yaml
    python deploy/pool_limits.py --check    # exit 1 if the instance differs from the file
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

POOLS_FILE = Path(__file__).with_name("pools.yaml")


def read_pool_limits(path: Path = POOLS_FILE) -> dict[str, int]:
    """Return ``{pool: limit}`` from ``path``; raise ValueError naming a bad entry."""
    loaded = yaml.safe_load(path.read_text()) or {}
    pools = loaded.get("pools") if isinstance(loaded, dict) else None
    if not isinstance(pools, dict) or not pools:
        raise ValueError(f"{path} must hold a mapping `pools: {{name: limit}}`")
    for name, limit in pools.items():
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"{path}: pool {name!r} needs a limit >= 0, got {limit!r}")
    return {str(name): int(limit) for name, limit in pools.items()}


def current_limits(instance, pools: dict[str, int]) -> dict[str, int | None]:  # noqa: ANN001
    """Return the limit the instance holds for each pool in ``pools`` (None when unset)."""
    storage = instance.event_log_storage
    known = set(storage.get_concurrency_keys())
    return {
        name: (storage.get_concurrency_info(name).slot_count if name in known else None) for name in pools
    }


def apply_pool_limits(instance, pools: dict[str, int]) -> dict[str, int]:  # noqa: ANN001
    """Set each pool's limit on ``instance``; return what was written."""
    for name, limit in pools.items():
        instance.event_log_storage.set_concurrency_slots(name, limit)
    return pools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=POOLS_FILE, help="pools YAML (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 on a difference")
    args = parser.parse_args(argv)
    try:
        pools = read_pool_limits(args.file)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import dagster as dg

    instance = dg.DagsterInstance.get()
    if args.check:
        held = current_limits(instance, pools)
        wrong = {name: (held[name], limit) for name, limit in pools.items() if held[name] != limit}
        for name, (have, want) in wrong.items():
            print(f"{name}: instance has {have}, {args.file.name} says {want}")
        return 1 if wrong else 0
    for name, limit in apply_pool_limits(instance, pools).items():
        print(f"pool {name}: limit {limit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
