#!/usr/bin/env bash
# The main job for a new user: set everything up, then open JupyterLab with swm-jupyter and the
# local site, keeping jobs in the embedded store under the Jupyter data folder.
# JupyterLab opens a working copy of docs/examples (in .lab-examples/, made on the first run and
# kept after), so running the demo never modifies tracked files. Arguments go to `jupyter lab`.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== swm-jupyter: setting up (the first run installs Python packages and builds the front end: a few minutes)"
SWM_EXTRAS=lab SWM_PIP_VERBOSE=1 bash .ci/setup.sh
venv="${SWM_VENV:-$PWD/.venv}"
work="${SWM_NOTEBOOK_DIR:-$PWD/.lab-examples}"
if [ ! -d "$work" ]; then
  echo "== a working copy of the examples in $work (your changes stay there)"
  mkdir -p "$work"
  cp -R docs/examples/. "$work/"
fi
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-root)
echo "== jupyter lab --notebook-dir=$work ${extra[*]} $*"
exec "$venv/bin/jupyter" lab --notebook-dir="$work" "${extra[@]}" "$@"
