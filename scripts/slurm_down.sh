#!/usr/bin/env bash
# slurm_down.sh - stops the cluster slurm_up.sh started under $SLURM_BASE, by its pid files
# only. First cancels that cluster's jobs, by id (KEEP_JOBS=1 skips it): a running job's
# slurmstepd outlives slurmd otherwise. Talks only to that cluster (SLURM_CONF=its slurm.conf);
# never cancels by user, never touches another cluster's jobs or daemons.
# Env: SLURM_BASE (/tmp/pipe-slurm); SLURM_WIPE=1 also deletes its state, spool and logs.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
BASE=${SLURM_BASE:-/tmp/pipe-slurm}
[ -d "$BASE" ] || { echo "slurm: no $BASE"; exit 0; }
BASE=$(cd "$BASE" && pwd)
export SLURM_CONF=$BASE/slurm.conf
if [ "${KEEP_JOBS:-0}" != 1 ] && [ -f "$SLURM_CONF" ] && pid_alive "$BASE/run/slurmctld.pid" slurmctld; then
  ids=$(squeue -h -t PD,CF,R,S,CG -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${ids// /}" ]; then
    echo "slurm ($BASE): cancelling jobs $ids"
    # shellcheck disable=SC2086
    scancel $ids 2>/dev/null || true
    for _ in $(seq 100); do [ -z "$(squeue -h -t R,CG -o %i 2>/dev/null)" ] && break; sleep 0.1; done
  fi
fi
stop_pidfile "$BASE/run/slurmd.pid" slurmd
stop_pidfile "$BASE/run/slurmctld.pid" slurmctld
stop_pidfile "$BASE/munge/munged.pid" munged
# a cluster started by the earlier script used the machine's munged and recorded here whether it
# had started it
if [ -s "$BASE/run/munged.pid" ]; then
  if [ "$(cat "$BASE/run/munged.pid")" = "$(cat /run/munge/munged.pid 2>/dev/null)" ]; then
    stop_pidfile /run/munge/munged.pid munged
  fi
  rm -f "$BASE/run/munged.pid"
fi
rm -f "$BASE/env"
[ "${SLURM_WIPE:-0}" = 1 ] && rm -rf "$BASE/state" "$BASE/spool" "$BASE/log" "$BASE/munge"
exit 0
