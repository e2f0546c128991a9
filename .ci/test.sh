#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine (Debian's Slurm, munge, sshd and Chromium;
# the Python environment; the built front end) and run the whole suite. The Slurm cluster and the
# sshd are started by the tests' session fixtures (tests/services/start.sh) and stopped after.
set -euo pipefail
cd "$(dirname "$0")/.."
SWM_EXTRAS="test,bench" bash .ci/setup.sh --system-packages
venv="${SWM_VENV:-$PWD/.venv}"
export PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv"

echo "== ruff"
ruff check swm_jupyter tests benchmarks

echo "== the wheel: built once, installed into a fresh environment with no node on PATH"
rm -rf dist .venv-wheel
pip wheel -q --no-deps -w dist . 2>&1 | sed '/^WARNING: Location .* is ignored/d'
python3 -m venv .venv-wheel
PATH=/nonexistent .venv-wheel/bin/python -m pip install -q --disable-pip-version-check dist/swm_jupyter-*.whl \
  "jupyterlab>=4.1,<5" 2>&1 | sed '/^WARNING: Location .* is ignored/d'
PATH=/nonexistent .venv-wheel/bin/jupyter labextension list 2>&1 \
  | grep -E "swm-jupyter-labextension .*enabled.*OK"
PATH=/nonexistent .venv-wheel/bin/jupyter server extension list 2>&1 | grep -E "swm_jupyter.*enabled"

echo "== front end: lint, jest, and the UI tests in Chromium against the wheel's JupyterLab"
# A failure here does not stop the run: pytest runs too, and the run fails at the end.
ui_status=0
SWM_JUPYTER="$PWD/.venv-wheel/bin/jupyter" bash labextension/ui-tests/run.sh || ui_status=$?

echo "== pytest"
pytest_status=0
pytest -q -W error::jupyter_server.utils.JupyterServerAuthWarning -p no:cacheprovider "$@" tests || pytest_status=$?

if [ "$ui_status" != 0 ] || [ "$pytest_status" != 0 ]; then
  echo "== FAILED: front end and UI tests exit $ui_status, pytest exit $pytest_status"
  exit 1
fi
