#!/usr/bin/env bash
# Stops what scripts/slurm-up.sh started: slurmd, slurmctld (by their pid files) and munged.
set -uo pipefail
DIR=${SLURM_CI_DIR:-/var/tmp/cnn-tui-slurm}

stop() { # NAME PIDFILE
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "slurm-down.sh: $1 ($pid) still running after 10 s; killing it" >&2
  kill -9 "$pid" 2>/dev/null
}
# Jobs still queued or running (a test that failed half-way) are cancelled first: slurmd's
# step daemons would outlive it.
if jobs=$(squeue -h -o %A 2>/dev/null) && [ -n "$jobs" ]; then
  echo "slurm-down.sh: cancelling jobs $(echo $jobs)"
  scancel $jobs
  for _ in $(seq 30); do
    [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
    sleep 1
  done
fi
stop slurmd "$DIR/slurmd.pid"
stop slurmctld "$DIR/slurmctld.pid"
stop munged /run/munge/munged.pid
echo "slurm down"
