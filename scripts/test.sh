#!/usr/bin/env bash
# Install the project with its test extras, the system packages the tests need, then run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_system_deps.sh
scripts/setup.sh test,bench,deploy
.venv/bin/ruff check simulation_assets simulation_assets_tests benchmarks
.venv/bin/dagster definitions validate -m simulation_assets.definitions >/dev/null
exec .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
