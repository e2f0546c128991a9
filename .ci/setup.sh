#!/usr/bin/env bash
# Set up a machine for swm-jupyter: Debian packages (with --system-packages), a virtual environment
# in .venv (or $SWM_VENV) with swm-jupyter and the extras named in $SWM_EXTRAS, the front end built,
# (with the test or hub extra) JupyterHub's configurable-http-proxy from npm inside that environment,
# and (with the test extra) another CPython with an older cloudpickle for the executor's tests.
# Idempotent: a second run only checks. Used by .ci/lab.sh and .ci/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--system-packages" ]; then
  missing=()
  for pkg in slurm-wlm munge openssh-server sudo chromium chromium-driver acl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "== apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

venv="${SWM_VENV:-$PWD/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "== python3 -m venv $venv"
  python3 -m venv "$venv"
fi
echo "== pip install -e .[${SWM_EXTRAS:-lab}] (builds the JupyterLab extension with npm)"
quiet=(-q)
[ "${SWM_PIP_VERBOSE:-0}" = 1 ] && quiet=()  # .ci/lab.sh: show each package as it is installed
"$venv/bin/pip" install "${quiet[@]}" --disable-pip-version-check -e ".[${SWM_EXTRAS:-lab}]" 2>&1 \
  | sed '/^WARNING: Location .* is ignored/d; /^Requirement already satisfied/d'

case ",${SWM_EXTRAS:-lab}," in
  *,test,* | *,hub,*)
    if [ ! -x "$venv/bin/configurable-http-proxy" ]; then
      echo "== npm install configurable-http-proxy into $venv (JupyterHub's proxy, found there by the example hub)"
      npm install -g --prefix "$venv" --no-audit --no-fund --loglevel=error "configurable-http-proxy@5"
    fi
    ;;
esac

case ",${SWM_EXTRAS:-lab}," in
  *,test,*)
    # The executor's version-mismatch tests run calls on another CPython (another minor version,
    # found on PATH or through pyenv; this Python if there is none) with cloudpickle 2.2.1 from
    # PyPI, in a venv inside $venv. Made once; a second run only checks it (well under a second).
    echo "== other Python for the executor's mismatch tests (tests/other_python.py)"
    "$venv/bin/python" tests/other_python.py
    ;;
esac
