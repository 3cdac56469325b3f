#!/usr/bin/env bash
# Usage: bash tests/slurm/teardown.sh
#
# Stops the SLURM test daemons that tests/slurm/setup.sh started (listed in $STATE_DIR/started),
# by SIGTERM to the PIDs in their PID files, then removes the stale PID files. Daemons that were
# already running before setup.sh are left alone. Idempotent.
set -euo pipefail

STATE_DIR=${SLURM_TEST_STATE_DIR:-/run/raytest-slurm}
STARTED="$STATE_DIR/started"

log() { echo "teardown.sh: $*" >&2; }

if [[ ! -f "$STARTED" ]]; then
    log "nothing to stop (no $STARTED)"
    exit 0
fi

pidfile_of() {
    case "$1" in
        slurmd) echo /run/slurmd.pid ;;
        slurmctld) echo /run/slurmctld.pid ;;
        munged) echo /run/munge/munged.pid ;;
    esac
}

# Stop in reverse start order: slurmd, slurmctld, then munged.
for daemon in slurmd slurmctld munged; do
    grep -qx "$daemon" "$STARTED" || continue
    pidfile=$(pidfile_of "$daemon")
    if [[ -f "$pidfile" ]]; then
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.2
            done
            if kill -0 "$pid" 2>/dev/null; then
                log "$daemon (pid $pid) did not stop after 10 s; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        rm -f "$pidfile"
    fi
done
rm -f "$STARTED"
log "stopped"
