#!/usr/bin/env bash
# Stop the test services started by start.sh (slurmd, slurmctld, sshd), each by its own pid file.
# munged is left running (it is the machine's). Idempotent. Pass --clean to delete the state folder.
set -uo pipefail

BASE="${SWM_TEST_SERVICES_DIR:-/tmp/swm-test-services}"

stop_pidfile() {
    local pidfile="$1" pid
    [ -s "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
}

if [ -s "$BASE/slurm/slurm.conf" ] && command -v scancel >/dev/null 2>&1; then
    SLURM_CONF="$BASE/slurm/slurm.conf" timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
fi
stop_pidfile "$BASE/run/slurmd.pid"
stop_pidfile "$BASE/run/slurmctld.pid"
stop_pidfile "$BASE/run/sshd.pid"
if [ "${1:-}" = "--clean" ]; then
    rm -rf "$BASE"
fi
echo "stop.sh: test services stopped"
