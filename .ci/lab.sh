#!/usr/bin/env bash
# The main job for a new user: set everything up, then open JupyterLab with swm-jupyter and the
# local site, keeping jobs in the embedded store under the Jupyter data folder. JupyterLab opens
# in a working copy of docs/examples (demo/, or $SWM_NOTEBOOK_DIR), so running the demo changes
# no file of the repository. Extra arguments go to `jupyter lab` (e.g. --port=9999).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== setting up: Python environment, swm-jupyter and its front end (.ci/setup.sh; a second run only checks)"
SWM_EXTRAS=lab bash .ci/setup.sh
venv="${SWM_VENV:-$PWD/.venv}"
notebooks="${SWM_NOTEBOOK_DIR:-$PWD/demo}"
if [ ! -d "$notebooks" ]; then
  echo "== copying the examples (docs/examples) into $notebooks: the demo works on this copy"
  mkdir -p "$notebooks"
  cp -R docs/examples/. "$notebooks/"
else
  echo "== using the examples already in $notebooks (delete the folder for a fresh copy)"
fi
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-root)
echo "== starting JupyterLab in $notebooks with the local site${*:+ (and: $*)}; stop it with Ctrl-C"
exec "$venv/bin/jupyter" lab --notebook-dir="$notebooks" "${extra[@]}" "$@"
