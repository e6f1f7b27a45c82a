#!/usr/bin/env bash
# Install the project and run the demo on embedded defaults (no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null 2>&1 || scripts/install_system_deps.sh
scripts/setup.sh
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
.venv/bin/simulate demo --output demo_output
echo
echo "Next: DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dagster dev   (then open http://127.0.0.1:3000)"
