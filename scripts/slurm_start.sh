#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (root, no systemd): munged, slurmctld, slurmd.
# Idempotent: installs Debian's slurm-wlm and munge if missing, (re)writes /etc/slurm/slurm.conf,
# starts only the daemons that are not running, and waits until the node is idle.
#   sudo scripts/slurm_start.sh           # CI (.ci/run) and local tests
#   SLURM_CPUS=8 scripts/slurm_start.sh   # advertise 8 CPUs so 8 one-CPU jobs run at once
# Partitions: debug (default), low (preemptible, REQUEUE) and high (preempts low).
# No accounting (sacct fails; submitit's job.state stays UNKNOWN, results still come back).
# Stop with scripts/slurm_stop.sh [--purge]. Measured notes: ../shared/docs/slurm.md.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then sed -n '2,9p' "$0"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "slurm_start.sh: must run as root" >&2; exit 1; }
start=$(date +%s)

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

HOST=$(hostname -s)
CPUS=${SLURM_CPUS:-8}
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >>/etc/hosts

conf=$(cat <<EOF
# written by scripts/slurm_start.sh
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=cred_expire=${SLURM_CRED_EXPIRE:-10}
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ReturnToService=2
KillWait=${SLURM_KILLWAIT:-10}
# finished jobs stay visible to `scontrol show job` for an hour: the test suite submits its USR1
# job as it starts and reads the job's state some 15-30 minutes later
MinJobAge=3600
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=low   Nodes=ALL Default=NO  MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=10
PartitionName=high  Nodes=ALL Default=NO  MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
)

. "$(dirname "$0")/slurm_alive.sh"

changed=0
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" >/etc/slurm/slurm.conf
  changed=1
fi

install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
alive munged /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged

for d in slurmctld slurmd; do
  if [ "$changed" = 1 ] && alive "$d" "/run/$d.pid"; then
    kill "$(cat "/run/$d.pid")"
    for _ in $(seq 40); do alive "$d" "/run/$d.pid" || break; sleep 0.25; done
  fi
done
if ! alive slurmctld /run/slurmctld.pid; then
  /usr/sbin/slurmctld
  for _ in $(seq 60); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
fi
alive slurmd /run/slurmd.pid || /usr/sbin/slurmd

for _ in $(seq 120); do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1)
  case "$state" in
    idle|mixed|allocated) echo "slurm_start.sh: node $HOST $state ($CPUS CPUs) after $(( $(date +%s) - start )) s"; exit 0 ;;
    down*|drain*|drained*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
  esac
  sleep 0.5
done
echo "slurm_start.sh: node $HOST never became idle (state: ${state:-none}); see /var/log/slurm/" >&2
exit 1
