#!/usr/bin/env bash
# Install the project with its test extras, the system packages the tests need, then run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_system_deps.sh
scripts/setup.sh test,bench,deploy
.venv/bin/ruff check simulation_assets simulation_assets_tests benchmarks
# SQL lint of the dbt project, templated by dbt (compiles against a throwaway DuckDB file and a target
# folder of its own, never connects); it runs beside the next two steps, each using one core
lint_dir="$(mktemp -d)"
(cd dbt && PATH="$PWD/../.venv/bin:$PATH" WAREHOUSE_DUCKDB_PATH="$lint_dir/lint.duckdb" \
  DBT_TARGET_PATH="$lint_dir/target" ../.venv/bin/sqlfluff lint .) &
lint=$!
# the manifest Dagster reads, prepared by dagster-dbt (also done on load when missing or stale)
PATH="$PWD/.venv/bin:$PATH" .venv/bin/dagster-dbt project prepare-and-package --file simulation_assets/sinks/warehouse_dbt.py >/dev/null
.venv/bin/dagster definitions validate -m simulation_assets.definitions >/dev/null
wait "$lint"
# pytest keeps the test modules it rewrote for its assertion messages in __pycache__, so each worker
# (and the next run) reads them instead of rewriting them, also where PYTHONDONTWRITEBYTECODE is set
exec env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
