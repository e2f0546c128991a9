#!/usr/bin/env bash
# Start the test services: munged, a one-node Slurm cluster (slurmctld + slurmd) and an sshd on
# 127.0.0.1, each with its own configuration under $SWM_TEST_SERVICES_DIR (default
# /tmp/swm-test-services). Idempotent: what already runs is left alone, what is missing is started.
# Needs root and the Debian packages slurm-wlm, munge and openssh-server.
# Writes $SWM_TEST_SERVICES_DIR/env (KEY=value lines) for the tests.
set -euo pipefail

BASE="${SWM_TEST_SERVICES_DIR:-/tmp/swm-test-services}"
SSH_PORT="${SWM_TEST_SSH_PORT:-42022}"
CTLD_PORT="${SWM_TEST_SLURMCTLD_PORT:-46817}"
SLURMD_PORT="${SWM_TEST_SLURMD_PORT:-46818}"
NODE_CPUS="${SWM_TEST_SLURM_CPUS:-8}"
HOST="$(hostname -s)"

die() { echo "start.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (munged, slurmd and sshd need it)"
for bin in munged munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo sshd ssh-keygen; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || die \
        "'$bin' not found: install the Debian packages first (apt-get install -y slurm-wlm munge openssh-server)"
done
export PATH="$PATH:/usr/sbin:/sbin"

mkdir -p "$BASE"/{slurm/state,slurm/spool,slurm/log,ssh,run}
chmod 755 "$BASE"

# --- munge -------------------------------------------------------------------------------------
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null 2>&1; then mungekey --create --force
        else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
    fi
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
    chmod 755 /run/munge
    su -s /bin/sh munge -c "munged --force" || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do munge_ok && break; sleep 0.2; done
    munge_ok || die "munged runs but 'munge -n | unmunge' fails"
fi

# --- Slurm -------------------------------------------------------------------------------------
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
CONF="$BASE/slurm/slurm.conf"
cat >"$CONF.new" <<EOF
# Written by swm-jupyter tests/services/start.sh: a one-node test cluster on 127.0.0.1.
ClusterName=swmtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$BASE/slurm/state
SlurmdSpoolDir=$BASE/slurm/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/slurm/log/slurmctld.log
SlurmdLogFile=$BASE/slurm/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=20
EnforcePartLimits=ALL
KillWait=5
SchedulerParameters=sched_interval=5,defer_batch
MaxArraySize=100001
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$NODE_CPUS RealMemory=$MEM_MB Gres=gpu:2 Features=fast State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=other Nodes=$HOST Default=NO MaxTime=INFINITE State=UP
EOF
cat >"$BASE/slurm/gres.conf" <<EOF
NodeName=$HOST Name=gpu File=/dev/null
NodeName=$HOST Name=gpu File=/dev/zero
EOF
rm -f "$BASE/slurm/cgroup.conf"
changed=0
if ! cmp -s "$CONF.new" "$CONF"; then mv "$CONF.new" "$CONF"; changed=1; else rm -f "$CONF.new"; fi
export SLURM_CONF="$CONF"

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "$changed" = 1 ]; then
    for pidfile in "$BASE/run/slurmd.pid" "$BASE/run/slurmctld.pid"; do
        if running "$pidfile"; then kill "$(cat "$pidfile")"; sleep 1; fi
    done
fi
if ! running "$BASE/run/slurmctld.pid"; then
    slurmctld || die "slurmctld did not start; see $BASE/slurm/log/slurmctld.log"
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q "UP" && break; sleep 0.3; done
scontrol ping 2>/dev/null | grep -q "UP" || die "slurmctld does not answer; see $BASE/slurm/log/slurmctld.log"
if ! running "$BASE/run/slurmd.pid"; then
    slurmd || die "slurmd did not start; see $BASE/slurm/log/slurmd.log"
fi
state=""
for _ in $(seq 120); do
    state="$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n1)"
    case "$state" in
        idle* | mixed* | alloc* | completing*) break ;;
        drain* | down*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle* | mixed* | alloc* | completing*) ;;
    *) die "the Slurm node is '$state', not idle; see $BASE/slurm/log/slurmd.log" ;;
esac

# --- sshd --------------------------------------------------------------------------------------
SSHD_DIR="$BASE/ssh"
[ -s "$SSHD_DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -f "$SSHD_DIR/host_ed25519" -C swm-test-host
[ -s "$SSHD_DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -f "$SSHD_DIR/id_ed25519" -C swm-test-client
cp "$SSHD_DIR/id_ed25519.pub" "$SSHD_DIR/authorized_keys"
chmod 600 "$SSHD_DIR/id_ed25519" "$SSHD_DIR/host_ed25519" "$SSHD_DIR/authorized_keys"
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")" >"$SSHD_DIR/known_hosts"
cat >"$SSHD_DIR/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSHD_DIR/host_ed25519
AuthorizedKeysFile $SSHD_DIR/authorized_keys
PidFile $BASE/run/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
MaxSessions 100
MaxStartups 100:30:200
Subsystem sftp internal-sftp
EOF
mkdir -p /run/sshd && chmod 755 /run/sshd
if ! running "$BASE/run/sshd.pid"; then
    "$(command -v sshd || echo /usr/sbin/sshd)" -f "$SSHD_DIR/sshd_config" -E "$BASE/run/sshd.log" \
        || die "sshd did not start; see $BASE/run/sshd.log"
fi
for _ in $(seq 50); do
    ssh -o BatchMode=yes -o UserKnownHostsFile="$SSHD_DIR/known_hosts" -o StrictHostKeyChecking=yes \
        -i "$SSHD_DIR/id_ed25519" -p "$SSH_PORT" "$(id -un)@127.0.0.1" true 2>/dev/null && break
    sleep 0.2
done
ssh -o BatchMode=yes -o UserKnownHostsFile="$SSHD_DIR/known_hosts" -o StrictHostKeyChecking=yes \
    -i "$SSHD_DIR/id_ed25519" -p "$SSH_PORT" "$(id -un)@127.0.0.1" true \
    || die "sshd does not accept the test key on 127.0.0.1:$SSH_PORT; see $BASE/run/sshd.log"

cat >"$BASE/env" <<EOF
SWM_TEST_SERVICES_DIR=$BASE
SLURM_CONF=$CONF
SWM_TEST_SLURM_NODE=$HOST
SWM_TEST_SLURM_CPUS=$NODE_CPUS
SWM_TEST_SLURMCTLD_PIDFILE=$BASE/run/slurmctld.pid
SWM_TEST_SSH_HOST=127.0.0.1
SWM_TEST_SSH_PORT=$SSH_PORT
SWM_TEST_SSH_USER=$(id -un)
SWM_TEST_SSH_KEY=$SSHD_DIR/id_ed25519
SWM_TEST_KNOWN_HOSTS=$SSHD_DIR/known_hosts
SWM_TEST_SSHD_PIDFILE=$BASE/run/sshd.pid
EOF
echo "start.sh: munged, slurmctld, slurmd and sshd (127.0.0.1:$SSH_PORT) are up; env in $BASE/env"
