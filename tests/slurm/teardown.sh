#!/usr/bin/env bash
# Usage: bash tests/slurm/teardown.sh [--two-node]
#
# Stops what tests/slurm/setup.sh (same mode) started, as listed in $STATE_DIR/started: daemons
# by SIGTERM to the PIDs in their PID files (then the stale PID files are removed); with
# --two-node also every process left in the node namespaces, the namespaces and the bridge.
# Daemons, namespaces and links that were there before setup.sh are left alone. munged is shared
# by both test clusters: it stays up while the other one still runs (which then owns it).
# Idempotent.
set -euo pipefail

MODE=one
if [[ "${1:-}" == "--two-node" ]]; then
    MODE=two
elif [[ -n "${1:-}" ]]; then
    echo "teardown.sh: unknown argument '$1' (usage: teardown.sh [--two-node])" >&2
    exit 1
fi
ONE_STATE=${SLURM_TEST_STATE_DIR:-/run/raytest-slurm}
TWO_STATE=${SLURM_TEST_STATE_DIR2:-/run/raytest2-slurm}
if [[ "$MODE" == one ]]; then
    STATE_DIR=$ONE_STATE OTHER_STATE=$TWO_STATE
    CTLD_PIDFILE=/run/slurmctld.pid OTHER_CTLD_PIDFILE=$TWO_STATE/slurmctld.pid
else
    STATE_DIR=$TWO_STATE OTHER_STATE=$ONE_STATE
    CTLD_PIDFILE=$TWO_STATE/slurmctld.pid OTHER_CTLD_PIDFILE=/run/slurmctld.pid
fi
STARTED="$STATE_DIR/started"

log() { echo "teardown.sh: $*" >&2; }

if [[ ! -f "$STARTED" ]]; then
    log "nothing to stop (no $STARTED)"
    exit 0
fi
was_started() { grep -qx "$1" "$STARTED"; }

stop_pidfile() { # stop_pidfile NAME PIDFILE
    local pid
    [[ -f "$2" ]] || return 0
    pid=$(cat "$2")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$1 (pid $pid) did not stop after 10 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$2"
}

# Stop in reverse start order: slurmd(s), slurmctld, the node namespaces, then munged.
if [[ "$MODE" == one ]]; then
    was_started slurmd && stop_pidfile slurmd /run/slurmd.pid
else
    for node in rtn1 rtn2; do
        was_started "slurmd $node" && stop_pidfile "slurmd $node" "$STATE_DIR/slurmd-$node.pid"
    done
fi
was_started slurmctld && stop_pidfile slurmctld "$CTLD_PIDFILE"
if [[ "$MODE" == two ]]; then
    for node in rtn1 rtn2; do
        was_started "netns $node" || continue
        if [[ -e "/run/netns/$node" ]]; then
            # Whatever still runs "on" the node (a job's leftovers) goes with it.
            mapfile -t left < <(ip netns pids "$node" 2>/dev/null || true)
            if ((${#left[@]})); then
                log "killing ${#left[@]} process(es) left on $node"
                kill -KILL "${left[@]}" 2>/dev/null || true
                sleep 0.5
            fi
            ip netns del "$node" || log "could not delete network namespace $node"
        fi
        ip link del "$node-h" >/dev/null 2>&1 || true
    done
    # The node names setup.sh added to /etc/hosts (rewritten in place: it may be a bind mount).
    if grep -qF "# raytest2 node (tests/slurm/setup.sh)" /etc/hosts; then
        hosts=$(grep -vF "# raytest2 node (tests/slurm/setup.sh)" /etc/hosts)
        printf '%s\n' "$hosts" >/etc/hosts
    fi
    if was_started "bridge rtbr0"; then
        ip link del rtbr0 >/dev/null 2>&1 || true
    fi
fi
if was_started munged; then
    if [[ -f "$OTHER_CTLD_PIDFILE" ]] && kill -0 "$(cat "$OTHER_CTLD_PIDFILE")" 2>/dev/null; then
        # The other test cluster still uses munged: hand it over.
        mkdir -p "$OTHER_STATE"
        echo munged >>"$OTHER_STATE/started"
    else
        stop_pidfile munged /run/munge/munged.pid
    fi
fi
rm -f "$STARTED"
log "stopped"
