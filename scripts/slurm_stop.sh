#!/usr/bin/env bash
# Stop the one-node SLURM cluster started by scripts/slurm_start.sh: cancel jobs, stop slurmd,
# slurmctld and munged by their pid files. --purge also wipes the job state and the logs.
#   scripts/slurm_stop.sh [--purge]
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,4p' "$0"; exit 0 ;; ""|--purge) ;; *) echo "usage: $0 [--purge]" >&2; exit 2 ;; esac

. "$(dirname "$0")/slurm_alive.sh"

if alive slurmctld /run/slurmctld.pid; then scancel --user=root 2>/dev/null || true; fi
for spec in slurmd:/run/slurmd.pid slurmctld:/run/slurmctld.pid munged:/run/munge/munged.pid; do
  name=${spec%%:*} pidfile=${spec#*:}
  if alive "$name" "$pidfile"; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 40); do alive "$name" "$pidfile" || break; sleep 0.25; done
    if alive "$name" "$pidfile"; then kill -9 "$(cat "$pidfile")"; fi
  fi
  rm -f "$pidfile"
done
if [ "${1:-}" = --purge ]; then
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* /var/log/slurm/*
fi
echo "slurm_stop.sh: stopped"
