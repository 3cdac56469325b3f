#!/usr/bin/env bash
# Usage: bash tests/slurm/setup.sh
#
# Installs (if missing) and starts a one-node SLURM test cluster on this machine, for
# tests/test_slurm.py: Debian's slurmctld, slurmd, slurm-client and munge (plus shellcheck).
# Needs root. Idempotent: when the test cluster already answers and its node is idle, it is reused.
#
# The cluster: ClusterName=raytest, one node (this host, NodeAddr=127.0.0.1, 2 CPUs, no GPUs),
# one partition "debug". Daemons are started directly (no systemd); the ones this script started
# are listed in $STATE_DIR/started so tests/slurm/teardown.sh stops only those.
#
# Prints "SLURM_TEST_CLUSTER=reused" or "SLURM_TEST_CLUSTER=started" as its last line.
# Exit status: 0 ready; 1 error; 3 SLURM cannot be set up here (not root and not running),
# or a different SLURM cluster is configured on this host (the tests then skip).
set -euo pipefail

STATE_DIR=${SLURM_TEST_STATE_DIR:-/run/raytest-slurm}
CONF=/etc/slurm/slurm.conf
CLUSTER_NAME=raytest
MARKER="# written by tests/slurm/setup.sh (clinical-discriminator test cluster)"

log() { echo "setup.sh: $*" >&2; }
die() { log "error: $*"; exit "${2:-1}"; }

node_state() { timeout 10 sinfo -h -o %t 2>/dev/null | head -n1 || true; }

wait_idle() {
    local i state=""
    for i in $(seq 1 60); do
        state=$(node_state)
        case "$state" in
            idle | mix | alloc) return 0 ;;
        esac
        # A node left DOWN/DRAIN by an earlier run: bring it back.
        if [[ "$state" == down* || "$state" == drain* ]] && ((i % 5 == 0)); then
            scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
        fi
        sleep 0.5
        : "$i"
    done
    die "the SLURM node did not become idle (state: '${state:-no answer}'); see /var/log/slurm/*.log"
}

# 1. Reuse a running test cluster.
if command -v sinfo >/dev/null 2>&1 && [[ -n "$(node_state)" ]]; then
    name=$(scontrol show config 2>/dev/null | awk -F'= ' '/^ClusterName/ {print $2}' | tr -d ' ')
    if [[ "$name" != "$CLUSTER_NAME" ]]; then
        log "a different SLURM cluster ('$name') answers on this host; not touching it"
        exit 3
    fi
    wait_idle
    echo "SLURM_TEST_CLUSTER=reused"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    log "SLURM is not running here and installing/starting it needs root"
    exit 3
fi

# 2. Install what is missing.
missing=()
for pair in slurmctld:/usr/sbin/slurmctld slurmd:/usr/sbin/slurmd slurm-client:/usr/bin/sbatch \
    munge:/usr/sbin/munged shellcheck:/usr/bin/shellcheck; do
    [[ -x "${pair#*:}" ]] || missing+=("${pair%%:*}")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || { log "apt-get not found; cannot install ${missing[*]}"; exit 3; }
    log "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# 3. Configuration (never overwrite a slurm.conf this script did not write).
if [[ -f "$CONF" ]] && ! grep -qF "$MARKER" "$CONF"; then
    log "$CONF exists and was not written by this script; not touching it"
    exit 3
fi
host=$(hostname -s)
mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
real_mb=$((mem_kb * 8 / 10 / 1024))
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm "$STATE_DIR"
cat >"$CONF.tmp" <<CONFEOF
$MARKER
ClusterName=$CLUSTER_NAME
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
EnforcePartLimits=ALL
MinJobAge=5
KillWait=30
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFEOF
mv "$CONF.tmp" "$CONF"

# 4. Start the daemons that are not running; remember which ones we started.
alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
: >"$STATE_DIR/started.new"
[[ -f "$STATE_DIR/started" ]] && cat "$STATE_DIR/started" >>"$STATE_DIR/started.new"

mkdir -p /run/munge
chown munge:munge /run/munge
if ! alive /run/munge/munged.pid; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    echo munged >>"$STATE_DIR/started.new"
fi
if ! alive /run/slurmctld.pid; then
    rm -f /run/slurmctld.pid
    /usr/sbin/slurmctld
    echo slurmctld >>"$STATE_DIR/started.new"
fi
if ! alive /run/slurmd.pid; then
    rm -f /run/slurmd.pid
    /usr/sbin/slurmd
    echo slurmd >>"$STATE_DIR/started.new"
fi
sort -u "$STATE_DIR/started.new" >"$STATE_DIR/started"
rm -f "$STATE_DIR/started.new"

wait_idle
echo "SLURM_TEST_CLUSTER=started"
