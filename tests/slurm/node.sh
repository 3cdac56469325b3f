#!/usr/bin/env bash
# Usage: bash tests/slurm/node.sh start|kill|pids NODE
#
# One node of the two-node test cluster (tests/slurm/setup.sh --two-node), i.e. one network
# namespace on this machine:
#   start NODE   start the node's slurmd in its namespace, under the node's own hostname (a new
#                UTS namespace), with its own spool/pid/log paths (slurm.conf's %n)
#   kill NODE    SIGKILL every process of the node (slurmd, slurmstepd, Ray's raylet and workers,
#                anything started there), as when the machine crashes; the namespace stays, so
#                `start` brings the node back
#   pids NODE    list the PIDs of the node's processes
set -euo pipefail

CONF=${SLURM_CONF2:-/etc/slurm-raytest2/slurm.conf}
STATE_DIR=${SLURM_TEST_STATE_DIR2:-/run/raytest2-slurm}

die() { echo "node.sh: error: $*" >&2; exit 1; }
[[ $# -eq 2 ]] || die "usage: node.sh start|kill|pids NODE"
cmd=$1 node=$2
[[ "$node" =~ ^[a-z0-9]+$ ]] || die "bad node name '$node'"
[[ -e "/run/netns/$node" ]] || die "no network namespace '$node' (run tests/slurm/setup.sh --two-node)"

node_pids() { ip netns pids "$node" 2>/dev/null || true; }

case "$cmd" in
    start)
        pidfile="$STATE_DIR/slurmd-$node.pid"
        if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            exit 0
        fi
        rm -f "$pidfile"
        # slurmd daemonizes; the UTS namespace lives on with it (and everything it starts).
        # nsenter, not `ip netns exec`: that one remounts /sys, and slurmd needs the cgroup fs.
        # shellcheck disable=SC2016  # expanded by the inner bash
        nsenter --net="/run/netns/$node" unshare --uts bash -c \
            'hostname "$1" && exec /usr/sbin/slurmd -f "$2" -N "$1"' slurmd-start "$node" "$CONF"
        for _ in $(seq 1 40); do
            [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && exit 0
            sleep 0.25
        done
        die "slurmd of $node did not start (see /var/log/slurm/raytest2/slurmd-$node.log)"
        ;;
    kill)
        for _ in $(seq 1 20); do
            mapfile -t pids < <(node_pids)
            ((${#pids[@]})) || exit 0
            kill -KILL "${pids[@]}" 2>/dev/null || true
            sleep 0.25
        done
        die "processes of $node still alive: $(node_pids | tr '\n' ' ')"
        ;;
    pids) node_pids ;;
    *) die "unknown command '$cmd' (start, kill or pids)" ;;
esac
