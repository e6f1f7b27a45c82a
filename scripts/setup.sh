#!/usr/bin/env bash
# Create .venv and install the project with the given extras (default: none).
# Usage: scripts/setup.sh [extras]   e.g. scripts/setup.sh test,bench
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import simulation_assets" # fail loudly if the install did not work
# pip does not byte-compile an editable install; compile it once so no command compiles the package
# again (where PYTHONDONTWRITEBYTECODE is set, every process would, ~0.1 s of CPU each)
.venv/bin/python -m compileall -q -j 0 simulation_assets >/dev/null
scripts/build_webapp.sh  # bundle posthog-js into the HogFlix reference web app
