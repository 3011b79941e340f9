#!/usr/bin/env bash
# A one-node Slurm on this machine, for CI and for trying the job scripts in examples/slurm/:
# installs slurm-wlm and munge if missing (Debian/Ubuntu), writes /etc/slurm/slurm.conf for this
# host, starts munged, slurmctld and slurmd, and waits until the node takes jobs.
# Needs root. scripts/slurm-down.sh stops the daemons again.
#
#   sudo scripts/slurm-up.sh && sudo scripts/slurm-test.sh && sudo scripts/slurm-down.sh
#
# Choices, for a machine without systemd or cgroups (a CI container):
# - proctrack/linuxproc and task/none: no cgroups needed;
# - no slurmdbd: `scontrol show job` gives the states (sacct would need accounting);
# - SlurmUser=root, state and logs under $SLURM_CI_DIR (default /var/tmp/cnn-tui-slurm);
# - AuthInfo=cred_expire=10: a requeued job may start again after 11 s (the default: 121 s);
# - sched_interval=2: the scheduler looks at pending jobs every 2 s (the default: 60 s);
# - KillWait=10, OverTimeLimit=0: a job past its time limit is killed within seconds;
# - OverSubscribe=FORCE:4: up to four jobs share a core, so the test's jobs run side by side on
#   a 2-core machine instead of queueing behind each other.
set -euo pipefail

DIR=${SLURM_CI_DIR:-/var/tmp/cnn-tui-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by cnn-tui scripts/slurm-up.sh"

[ "$(id -u)" = 0 ] || { echo "slurm-up.sh: needs root (it starts the Slurm daemons)" >&2; exit 1; }

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >/dev/null
fi

if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  echo "slurm-up.sh: $CONF exists and was not written by this script; not replacing it" >&2
  exit 1
fi

# munge: the key comes with the package; make one if it did not.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if id -u munge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
  else
    /usr/sbin/munged --force
  fi
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
munge -n | unmunge >/dev/null || { echo "slurm-up.sh: munged does not answer" >&2; exit 1; }

# This node as slurmd sees it: CPUs, sockets, cores, threads and memory.
node=$(slurmd -C | head -n 1)
host=$(hostname -s)
mkdir -p "$DIR/ctld" "$DIR/d" /etc/slurm
cat >"$CONF" <<EOF
$MARK
ClusterName=cnn-tui-ci
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
KillWait=10
OverTimeLimit=0
MinJobAge=600
$node State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF

# -c: start with no jobs from an earlier session.
slurmctld -c
slurmd
for _ in $(seq 60); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 1
done
if [ "${state:-}" != idle ]; then
  echo "slurm-up.sh: node $host is '${state:-unknown}', not idle; logs in $DIR" >&2
  tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
  exit 1
fi
echo "slurm up: $(sinfo -h -o '%P %D node %T %c CPUs') ($(sinfo -V)); $node"
