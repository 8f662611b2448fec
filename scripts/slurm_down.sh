#!/usr/bin/env bash
# slurm_down.sh - stops what slurm_up.sh started, by its pid files only. Cancels this user's jobs
# first (KEEP_JOBS=1 skips that): a running job's slurmstepd outlives slurmd otherwise.
# Env: SLURM_BASE (/tmp/pipe-slurm).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
BASE=${SLURM_BASE:-/tmp/pipe-slurm}
if [ "${KEEP_JOBS:-0}" != 1 ] && pid_alive "$BASE/run/slurmctld.pid" slurmctld \
   && [ -n "$(squeue -h -t PD,R,CG -o %i 2>/dev/null)" ]; then
  echo "slurm: cancelling this user's jobs"
  scancel --full -u "$(id -un)" 2>/dev/null || true
  for _ in $(seq 100); do [ -z "$(squeue -h -t R,CG -o %i 2>/dev/null)" ] && break; sleep 0.1; done
fi
stop_pidfile "$BASE/run/slurmd.pid" slurmd
stop_pidfile "$BASE/run/slurmctld.pid" slurmctld
# munged only when this script's slurm_up.sh started it
if [ -s "$BASE/run/munged.pid" ]; then
  if [ "$(cat "$BASE/run/munged.pid")" = "$(cat /run/munge/munged.pid 2>/dev/null)" ]; then
    stop_pidfile /run/munge/munged.pid munged
  fi
  rm -f "$BASE/run/munged.pid"
fi
exit 0
