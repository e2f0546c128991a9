#!/usr/bin/env bash
# One entry for CI: install the npm dependencies, run the jest tests, then the UI tests against
# a real `jupyter lab` (started by ui-tests/global-setup.ts) in Debian's Chromium.
# Needs: node >= 18 and npm, /usr/bin/chromium (or $SWM_CHROMIUM), and a Python environment with
# swm-jupyter installed (its `jupyter` found as $SWM_JUPYTER, $VIRTUAL_ENV/bin/jupyter or on PATH).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== npm ci"
npm ci --no-audit --no-fund

echo "== lint (prettier, eslint, tsc)"
npm run lint

echo "== jest"
npx jest --ci

echo "== build check: the extension is installed in the Python environment"
JUPYTER="${SWM_JUPYTER:-${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/}jupyter}"
"$JUPYTER" labextension list 2>&1 | grep -E "swm-jupyter-labextension .*enabled.*OK"

echo "== UI tests (playwright, ${SWM_CHROMIUM:-/usr/bin/chromium})"
# The server's log is kept, and its end printed when a test fails, so a CI failure can be read.
if ! SWM_KEEP_LAB_LOG=1 npx playwright test --config ui-tests/playwright.config.ts "$@"; then
  echo "== UI tests failed; the end of the jupyter lab log:"
  tail -n 120 ui-tests/test-results/server.json.log 2>/dev/null || echo "(no log kept)"
  exit 1
fi
