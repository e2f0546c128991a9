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

echo "== front end: lint, jest, UI tests in Chromium"
bash labextension/ui-tests/run.sh

echo "== pytest"
pytest -q -W error::jupyter_server.utils.JupyterServerAuthWarning -p no:cacheprovider "$@" tests
