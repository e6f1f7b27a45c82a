#!/usr/bin/env bash
# Bundle posthog-js (pinned in simulation_assets/webapp/package-lock.json) into the HogFlix
# reference web app: installs it from the npm registry and copies the self-contained browser
# build into the package's static folder. Nothing is fetched when the app runs.
set -euo pipefail
cd "$(dirname "$0")/../simulation_assets/webapp"
target=static/posthog.js
if ! command -v npm >/dev/null 2>&1; then
  echo "build_webapp: npm not found, skipping; the HogFlix web app needs it once to bundle posthog-js" >&2
  exit 0
fi
if [ -s "$target" ] && [ "$target" -nt package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
# array.full.no-external: the whole SDK (autocapture, recordings, ...) with no script loaded later.
cp node_modules/posthog-js/dist/array.full.no-external.js "$target.tmp"
mv "$target.tmp" "$target"
echo "build_webapp: posthog-js $(node -p "require('./node_modules/posthog-js/package.json').version") -> simulation_assets/webapp/$target"
