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
# pip takes ~12 s of CPU to find that nothing changed: skip it when this folder was installed with these
# extras from this pyproject.toml and the package still imports from here
stamp=".venv/.simulation-assets-installed"
root="$(pwd -P)"
key="$(cat pyproject.toml; echo "$extras $root"; .venv/bin/python -V)"
key="$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)"
here="$(.venv/bin/python -c 'import os, simulation_assets; print(os.path.dirname(os.path.dirname(simulation_assets.__file__)))' 2>/dev/null || true)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$key" ] || [ "$here" != "$root" ]; then
  rm -f "$stamp"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c "import simulation_assets" # fail loudly if the install did not work
  echo "$key" > "$stamp"
fi
# pip does not byte-compile an editable install; compile it once so no command compiles the package
# again (where PYTHONDONTWRITEBYTECODE is set, every process would, ~0.1 s of CPU each)
.venv/bin/python -m compileall -q -j 0 simulation_assets >/dev/null
scripts/build_webapp.sh  # bundle posthog-js into the HogFlix reference web app
