#!/usr/bin/env bash
# Usage: bash tests/slurm/setup.sh [--two-node]
#
# Installs (if missing) and starts a SLURM test cluster on this machine, for tests/test_slurm.py
# (one node) and tests/test_multinode.py (--two-node): Debian's slurmctld, slurmd, slurm-client
# and munge, plus shellcheck and iproute2. Needs root. Idempotent: a test cluster that already
# answers with all its nodes up is reused.
#
# One node (default): ClusterName=raytest, this host (NodeAddr=127.0.0.1, 2 CPUs, no GPUs),
# partition "debug", config /etc/slurm/slurm.conf.
#
# Two nodes (--two-node): ClusterName=raytest2, config /etc/slurm-raytest2/slurm.conf (clients
# need SLURM_CONF=that path). Each node is its own network + UTS namespace on this machine, as on
# a real cluster its own host: rtn1 (10.231.0.11) and rtn2 (10.231.0.12), 1 CPU each, joined by
# the bridge rtbr0 (10.231.0.1, where slurmctld listens on port 6827). Each node runs its own
# slurmd (-N NODE, its own spool/pid/log paths); both share this host's file system, as cluster
# nodes share NFS/Lustre, and the node names resolve through marked lines in /etc/hosts. `ip netns exec rtn2 CMD` runs CMD "on" node rtn2;
# tests/slurm/node.sh kills or restarts a node. Subnet: RT_SUBNET (default 10.231.0).
#
# Daemons are started directly (no systemd); what this script started (daemons, namespaces, the
# bridge) is listed in $STATE_DIR/started so tests/slurm/teardown.sh removes only that. munged
# is shared by both clusters.
#
# Prints "SLURM_TEST_CLUSTER=reused" or "SLURM_TEST_CLUSTER=started" as its last line (with
# --two-node, "SLURM_CONF=..." before it).
# Exit status: 0 ready; 1 error; 3 SLURM cannot be set up here (not root and not running),
# or a different SLURM cluster is configured on this host (the tests then skip).
set -euo pipefail

MODE=one
if [[ "${1:-}" == "--two-node" ]]; then
    MODE=two
elif [[ -n "${1:-}" ]]; then
    echo "setup.sh: unknown argument '$1' (usage: setup.sh [--two-node])" >&2
    exit 1
fi

MARKER="# written by tests/slurm/setup.sh (clinical-discriminator test cluster)"
SUBNET=${RT_SUBNET:-10.231.0}
BRIDGE=rtbr0
HOSTS_MARK="# raytest2 node (tests/slurm/setup.sh)"
TWO_NODES=(rtn1 rtn2)
if [[ "$MODE" == one ]]; then
    STATE_DIR=${SLURM_TEST_STATE_DIR:-/run/raytest-slurm}
    CONF_DIR=/etc/slurm
    CLUSTER_NAME=raytest
    CTLD_PIDFILE=/run/slurmctld.pid
    LOG_DIR=/var/log/slurm
    LIB_DIR=/var/lib/slurm
else
    STATE_DIR=${SLURM_TEST_STATE_DIR2:-/run/raytest2-slurm}
    CONF_DIR=/etc/slurm-raytest2
    CLUSTER_NAME=raytest2
    CTLD_PIDFILE=$STATE_DIR/slurmctld.pid
    LOG_DIR=/var/log/slurm/raytest2
    LIB_DIR=/var/lib/slurm/raytest2
fi
CONF=$CONF_DIR/slurm.conf
export SLURM_CONF=$CONF

log() { echo "setup.sh: $*" >&2; }
die() { log "error: $*"; exit "${2:-1}"; }
alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# States of the cluster's nodes, one per line ("" when slurmctld does not answer).
node_states() { timeout 10 sinfo -h -N -o %t 2>/dev/null || true; }
# Node names of the cluster (one-node: this host).
cluster_nodes() {
    if [[ "$MODE" == one ]]; then hostname -s; else printf '%s\n' "${TWO_NODES[@]}"; fi
}

all_up() {
    local states n
    states=$(node_states)
    n=$(cluster_nodes | wc -l)
    [[ $(grep -cE '^(idle|mix|alloc)$' <<<"$states") -eq "$n" ]]
}

wait_idle() {
    local i node
    for i in $(seq 1 90); do
        all_up && return 0
        # A node left DOWN/DRAIN by an earlier run (or a node-loss test): bring it back.
        if ((i % 5 == 0)); then
            for node in $(cluster_nodes); do
                scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
            done
        fi
        sleep 0.5
    done
    die "the SLURM node(s) did not become idle (states: '$(node_states | tr '\n' ' ')'); see $LOG_DIR/*.log"
}

# Node names resolve, as on a real cluster (torch.distributed's gloo finds its address from the
# host name): one line per node in /etc/hosts, marked, removed by teardown.sh.
ensure_hosts() {
    local i=0 node
    for node in "${TWO_NODES[@]}"; do
        i=$((i + 1))
        if ! grep -qE "^${SUBNET//./\\.}\.1${i}[[:space:]]+${node}([[:space:]]|$)" /etc/hosts; then
            [[ -w /etc/hosts ]] || die "cannot add $node to /etc/hosts"
            echo "$SUBNET.1$i $node $HOSTS_MARK" >>/etc/hosts
        fi
    done
}

# 1. Reuse a running test cluster.
if command -v sinfo >/dev/null 2>&1 && [[ -f "$CONF" ]] && [[ -n "$(node_states)" ]]; then
    name=$(scontrol show config 2>/dev/null | awk -F'= ' '/^ClusterName/ {print $2}' | tr -d ' ')
    if [[ "$name" != "$CLUSTER_NAME" ]]; then
        log "a different SLURM cluster ('$name') answers on this host; not touching it"
        exit 3
    fi
    if all_up || [[ "$MODE" == one ]]; then
        [[ "$MODE" == two ]] && ensure_hosts
        wait_idle
        [[ "$MODE" == two ]] && echo "SLURM_CONF=$CONF"
        echo "SLURM_TEST_CLUSTER=reused"
        exit 0
    fi
    # Two nodes, slurmctld up but a node is down (e.g. killed by a node-loss test): restart
    # what is missing below.
fi

if [[ $(id -u) -ne 0 ]]; then
    log "SLURM is not running here and installing/starting it needs root"
    exit 3
fi

# 2. Install what is missing.
missing=()
for pair in slurmctld:/usr/sbin/slurmctld slurmd:/usr/sbin/slurmd slurm-client:/usr/bin/sbatch \
    munge:/usr/sbin/munged shellcheck:/usr/bin/shellcheck iproute2:/usr/sbin/ip; do
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
mkdir -p "$CONF_DIR" "$LIB_DIR/slurmctld" "$LIB_DIR/slurmd" "$LOG_DIR" "$STATE_DIR"
if [[ "$MODE" == one ]]; then
    real_mb=$((mem_kb * 8 / 10 / 1024))
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
JobCompLoc=$LOG_DIR/jobcomp.log
SlurmctldPidFile=$CTLD_PIDFILE
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=$LIB_DIR/slurmctld
SlurmdSpoolDir=$LIB_DIR/slurmd
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFEOF
else
    # Each node gets 40% of the machine's memory (SLURM only checks it against requests).
    real_mb=$((mem_kb * 4 / 10 / 1024))
    cat >"$CONF.tmp" <<CONFEOF
$MARKER
ClusterName=$CLUSTER_NAME
SlurmctldHost=$host($SUBNET.1)
SlurmctldPort=6827
SlurmdPort=6818
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
KillWait=10
# A killed node is marked DOWN after 20 s (default 300 s).
SlurmdTimeout=20
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
SlurmctldPidFile=$CTLD_PIDFILE
SlurmdPidFile=$STATE_DIR/slurmd-%n.pid
StateSaveLocation=$LIB_DIR/slurmctld
SlurmdSpoolDir=$LIB_DIR/slurmd-%n
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd-%n.log
NodeName=${TWO_NODES[0]} NodeAddr=$SUBNET.11 CPUs=1 RealMemory=$real_mb State=UNKNOWN
NodeName=${TWO_NODES[1]} NodeAddr=$SUBNET.12 CPUs=1 RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFEOF
fi
mv "$CONF.tmp" "$CONF"

# 4. Start what is not running; remember what we started.
# Recorded at once, so a failure half-way still leaves teardown.sh the list.
started() { echo "$1" >>"$STATE_DIR/started"; }

mkdir -p /run/munge
chown munge:munge /run/munge
if ! alive /run/munge/munged.pid; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    started munged
fi

if [[ "$MODE" == two ]]; then
    # The network: bridge $BRIDGE ($SUBNET.1/24) on the host; per node a namespace with its own
    # loopback and one end of a veth pair ($SUBNET.1x/24), the other end on the bridge.
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        started "bridge $BRIDGE"
    fi
    # Not `ip addr show | grep -q` under pipefail: grep -q exits at the first match, `ip` may then
    # die of SIGPIPE, and the pipeline "fails" although the address is there.
    bridge_addrs=$(ip -4 addr show dev "$BRIDGE")
    [[ "$bridge_addrs" == *" $SUBNET.1/24"* ]] || ip addr add "$SUBNET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    i=0
    for node in "${TWO_NODES[@]}"; do
        i=$((i + 1))
        if [[ ! -e "/run/netns/$node" ]]; then
            ip netns add "$node"
            started "netns $node"
        fi
        if ! ip netns exec "$node" ip link show eth0 >/dev/null 2>&1; then
            ip link del "$node-h" >/dev/null 2>&1 || true
            ip link add "$node-h" type veth peer name "$node-n"
            ip link set "$node-n" netns "$node"
            ip netns exec "$node" ip link set "$node-n" name eth0
            ip netns exec "$node" ip addr add "$SUBNET.1$i/24" dev eth0
        fi
        ip link set "$node-h" master "$BRIDGE"
        ip link set "$node-h" up
        ip netns exec "$node" ip link set lo up
        ip netns exec "$node" ip link set eth0 up
    done
    ensure_hosts
fi

if ! alive "$CTLD_PIDFILE"; then
    rm -f "$CTLD_PIDFILE"
    /usr/sbin/slurmctld -f "$CONF"
    started slurmctld
fi

if [[ "$MODE" == one ]]; then
    if ! alive /run/slurmd.pid; then
        rm -f /run/slurmd.pid
        /usr/sbin/slurmd
        started slurmd
    fi
else
    for node in "${TWO_NODES[@]}"; do
        if ! alive "$STATE_DIR/slurmd-$node.pid"; then
            bash "$(dirname "${BASH_SOURCE[0]}")/node.sh" start "$node"
            started "slurmd $node"
        fi
    done
fi
if [[ -f "$STATE_DIR/started" ]]; then
    sort -u "$STATE_DIR/started" >"$STATE_DIR/started.tmp"
    mv "$STATE_DIR/started.tmp" "$STATE_DIR/started"
fi

wait_idle
[[ "$MODE" == two ]] && echo "SLURM_CONF=$CONF"
echo "SLURM_TEST_CLUSTER=started"
