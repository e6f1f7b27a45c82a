#!/usr/bin/env bash
# Install the project with its test extras, the system packages the tests need, then run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_system_deps.sh
scripts/setup.sh test,bench,deploy
.venv/bin/ruff check simulation_assets simulation_assets_tests benchmarks
# Two checks run in the background, each on one core (~15 s and ~7 s of CPU), beside the dbt preparation and
# the tests, where those leave a core idle (waiting on servers and daemons, or one worker done before the
# other); a failure of either fails the run after the tests, with its output.
checks="$(mktemp -d)"
# SQL lint of the dbt project, templated by dbt (it compiles against a throwaway DuckDB file and a target
# folder of its own, never connects)
(cd dbt && PATH="$PWD/../.venv/bin:$PATH" WAREHOUSE_DUCKDB_PATH="$checks/lint.duckdb" \
  DBT_TARGET_PATH="$checks/target" ../.venv/bin/sqlfluff lint .) >"$checks/lint.log" 2>&1 &
lint=$!
# the manifest Dagster reads, prepared by dagster-dbt (also done on load when missing or stale); the
# validation and the tests read it
PATH="$PWD/.venv/bin:$PATH" .venv/bin/dagster-dbt project prepare-and-package --file simulation_assets/sinks/warehouse_dbt.py >/dev/null
.venv/bin/dagster definitions validate -m simulation_assets.definitions >"$checks/validate.log" 2>&1 &
validate=$!
# pytest keeps the test modules it rewrote for its assertion messages in __pycache__, so each worker
# (and the next run) reads them instead of rewriting them, also where PYTHONDONTWRITEBYTECODE is set;
# --durations: every run lists its slowest tests
status=0
env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m pytest -n 2 --dist loadgroup --durations=25 "$@" || status=$?
for check in lint validate; do
  if wait "${!check}"; then
    echo "$check: passed"
  else
    echo "$check: FAILED"
    cat "$checks/$check.log"
    status=1
  fi
done
exit "$status"
