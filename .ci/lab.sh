#!/usr/bin/env bash
# The main job for a new user: set everything up, then open JupyterLab with swm-jupyter and the
# local site, keeping jobs in the embedded store under the Jupyter data folder.
set -euo pipefail
cd "$(dirname "$0")/.."
SWM_EXTRAS=lab bash .ci/setup.sh
venv="${SWM_VENV:-$PWD/.venv}"
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-root)
exec "$venv/bin/jupyter" lab --notebook-dir="${SWM_NOTEBOOK_DIR:-$PWD/docs/examples}" "${extra[@]}" "$@"
