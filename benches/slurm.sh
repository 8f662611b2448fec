#!/usr/bin/env bash
# Slurm benchmarks on the project's one-node cluster (scripts/slurm_up.sh; started here and
# stopped again when it was not running): wall time of `pipe run pipelines/ci.yaml` locally and
# with `--executor slurm` in fresh copies of the tracked files; then a chain of N `command`
# steps (each waits for the previous one; no sleeps) under pipe local, pipe on Slurm, and the
# same workflow (benches/snakemake/Snakefile) under Snakemake 9 with its Slurm executor plugin,
# with the plugin's default settings and with its fastest reasonable ones. Per-job overhead:
# every step records when its command started and ended; "gap" is the mean time from one
# step's end to the next one's start (all of it scheduling), split for pipe into finish ->
# noticed and submit -> start from the driver's `PIPE_TRACE=1` lines, for Snakemake from the
# jobcomp file's SubmitTime (whole seconds). Prints a Markdown table with the machine load
# (`uptime`) beside each figure. Then a SWEEP-wide matrix of `command` steps (`sleep 2` each, one
# CPU each) on Slurm, with `squeue` counted by a wrapper first on PATH: wall time, squeue calls
# (in all, and the most in one second) and the most jobs in flight at once (jobcomp times), once
# with the default `-j` and once with `-j SWEEP`. Asserts nothing.
#
# Snakemake's plugin removes every SLURM_* variable (SLURM_CONF too) inside its jobs, whose
# `srun` then reads /etc/slurm/slurm.conf: the smk part needs the cluster that file names.
#
# Snakemake and the plugin are installed by this script into a venv outside the repository
# ($PIPE_BENCH_VENV, default ~/.cache/pipe-bench/snakemake). Needs ../shared/data (the download
# mirror) for the ci.yaml part, which is skipped without it.
#
# usage: benches/slurm.sh [path/to/pipe] [chain lengths, default "5 10"] [sweep width, default 16]
#   default binary: target/release/pipe (build it with `cargo build --release`)
#   SLURM_BASE: the cluster (default /tmp/pipe-slurm; started and stopped here when not running;
#   give it SLURM_CPUS=16 for a node where a 16-wide sweep fits). BENCH_PARTS ("ci chain smk
#   sweep") picks parts: ci.yaml, pipe's chains, Snakemake's chains, the sweep; SMK_MODES
#   ("defaults squeue fast") the Snakemake settings.
#   SNAKEMAKE_TIMEOUT (300 s): a Snakemake run still going after this is stopped (SIGTERM, then
#   SIGKILL 20 s later: it ignores SIGTERM while a job is "running") and shown as such (its
#   default sacct status checks wait forever on a cluster without accounting).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
PIPE="$(realpath "${1:-$here/target/release/pipe}")"
LENGTHS="${2:-5 10}"
SWEEP="${3:-16}"
PARTS="${BENCH_PARTS:-ci chain smk sweep}"
SMK_MODES="${SMK_MODES:-defaults squeue fast}"
VENV="${PIPE_BENCH_VENV:-$HOME/.cache/pipe-bench/snakemake}"
SMK_TIMEOUT="${SNAKEMAKE_TIMEOUT:-300}"
export SLURM_BASE="${SLURM_BASE:-/tmp/pipe-slurm}"
# the clients reach that cluster, whatever /etc/slurm/slurm.conf says
export SLURM_CONF="$SLURM_BASE/slurm.conf"
JOBCOMP="$SLURM_BASE/log/jobcomp.log"
. "$here/scripts/lib.sh"

work="$(mktemp -d)"
started_slurm=0
cleanup() {
  rm -rf "$work"
  if [ "$started_slurm" = 1 ]; then "$here/scripts/slurm_down.sh" >/dev/null || true; fi
}
trap cleanup EXIT
if ! pid_alive "$SLURM_BASE/run/slurmctld.pid" slurmctld; then
  started_slurm=1
  "$here/scripts/slurm_up.sh" >&2
fi

has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# Snakemake 9 and the Slurm executor plugin, once.
if has smk && [ ! -x "$VENV/bin/snakemake" ]; then
  echo "installing snakemake 9 + snakemake-executor-plugin-slurm into $VENV" >&2
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  nice -n 19 "$VENV/bin/pip" install -q --disable-pip-version-check \
    'snakemake>=9,<10' snakemake-executor-plugin-slurm >&2
fi
SMK_VERSION="$("$VENV/bin/snakemake" --version 2>/dev/null || echo -)"
PLUGIN_VERSION="$("$VENV/bin/pip" show snakemake-executor-plugin-slurm 2>/dev/null | awk '/^Version/ {print $2}')"

now() { date +%s.%N; }
load() { uptime | sed 's/.*load average: //; s/,.*//'; }
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$@"; }
# mean of the numbers on stdin, 2 decimals ("-" for none)
mean() { awk '{s += $1; n++} END {if (n) printf "%.2f", s / n; else printf "-"}'; }

# copy_tracked DIR: the repository's tracked files, as .ci/run copies them
copy_tracked() {
  mkdir -p "$1"
  (cd "$here" && git ls-files -z | xargs -0 cp --parents -t "$1")
}

# gaps DIR N: for steps 2..N, start of step i minus end of step i-1 (seconds, one a line);
# DIR/i.start and DIR/i.end hold `date +%s.%N`
gaps() {
  local d=$1 n=$2 i
  for i in $(seq 2 "$n"); do
    echo "$(cat "$d/$i.start") $(cat "$d/$((i - 1)).end")"
  done | awk '{printf "%.3f\n", $1 - $2}'
}

echo "| what | wall s | per-job gap s (end -> next start) | finish -> noticed s | submit -> start s | load (1 min) |"
echo "|---|---:|---:|---:|---:|---:|"

# --- 1. pipelines/ci.yaml, local and on Slurm ---
MIRROR="$here/../shared/data"
if ! has ci; then
  :
elif [ -d "$MIRROR" ]; then
  export PIPE_MIRROR
  PIPE_MIRROR="$(cd "$MIRROR" && pwd)"
  for mode in local slurm; do
    d="$work/ci-$mode"
    copy_tracked "$d"
    args=(run pipelines/ci.yaml)
    [ "$mode" = slurm ] && args+=(--executor slurm)
    l=$(load)
    t0=$(now)
    (cd "$d" && PIPE_TRACE=1 "$PIPE" "${args[@]}") >"$work/ci-$mode.log" 2>&1 \
      || { echo "ci.yaml ($mode) failed:" >&2; tail -20 "$work/ci-$mode.log" >&2; exit 1; }
    t1=$(now)
    jobs=$(grep -c ' as Slurm job ' "$work/ci-$mode.log" || true)
    [ "$jobs" = 0 ] && jobs="" || jobs=" ($jobs jobs)"
    row "pipe ci.yaml, $mode$jobs" "$(echo "$t1 - $t0" | bc -l | xargs printf '%.1f')" "-" "-" "-" "$l"
  done
  unset PIPE_MIRROR
else
  echo "skipped ci.yaml: no $MIRROR" >&2
fi

# --- 2. a chain of N command steps ---
# pipe_chain N MODE: the chain as a pipe pipeline, run fresh; prints one table row
pipe_chain() {
  local n=$1 mode=$2 d="$work/pipe-$1-$2" i args l t0 t1 log
  mkdir -p "$d/pipelines"
  {
    echo "name: chain"
    echo "seed: 1"
    echo "stages:"
    for i in $(seq 1 "$n"); do
      local needs="" input="/dev/null"
      if [ "$i" -gt 1 ]; then needs=", needs: [s$((i - 1))]"; input="results/chain/s$((i - 1))/out.txt"; fi
      echo "  s$i: { kind: command$needs, params: { cmd: \"date +%s.%N > t/$i.start; { cat $input; echo $i; } > \$PIPE_OUT/out.txt; date +%s.%N > t/$i.end\" } }"
    done
  } >"$d/pipelines/chain.yaml"
  mkdir -p "$d/t"
  args=(run pipelines/chain.yaml)
  [ "$mode" = slurm ] && args+=(--executor slurm)
  log="$d.log"
  l=$(load)
  t0=$(now)
  (cd "$d" && PIPE_TRACE=1 "$PIPE" "${args[@]}") >"$log" 2>&1 \
    || { echo "pipe chain $n ($mode) failed:" >&2; tail -20 "$log" >&2; exit 1; }
  t1=$(now)
  local gap fin sub="-" notice="-"
  gap=$(gaps "$d/t" "$n" | mean)
  if [ "$mode" = slurm ]; then
    # trace slurm sK job ID submitted T noticed T
    notice=$(awk '/^trace slurm/ {print $3, $9}' "$log" | while read -r s t; do
      echo "$t $(cat "$d/t/${s#s}.end")"; done | awk '{printf "%.3f\n", $1 - $2}' | mean)
    sub=$(awk '/^trace slurm/ {print $3, $7}' "$log" | while read -r s t; do
      echo "$(cat "$d/t/${s#s}.start") $t"; done | awk '{printf "%.3f\n", $1 - $2}' | mean)
  fi
  fin=$(echo "$t1 - $t0" | bc -l | xargs printf '%.1f')
  row "pipe chain of $n, $mode" "$fin" "$gap" "$notice" "$sub" "$l"
}

# smk_chain N LABEL FLAGS...: the Snakefile on Slurm, run fresh; prints one table row
smk_chain() {
  local n=$1 label=$2 d="$work/smk-$1-$2" l t0 t1 rc=0 log
  shift 2
  mkdir -p "$d/out"
  cp "$here/benches/snakemake/Snakefile" "$d/"
  log="$d.log"
  l=$(load)
  t0=$(now)
  (cd "$d" && timeout -k 20 "$SMK_TIMEOUT" "$VENV/bin/snakemake" --executor slurm --jobs 1 \
    --config steps="$n" "$@") >"$log" 2>&1 || rc=$?
  t1=$(now)
  if [ "$rc" != 0 ]; then
    # whatever it left queued or running
    for id in $(grep -oE 'SLURM jobid [0-9]+' "$log" | grep -oE '[0-9]+$'); do scancel "$id" 2>/dev/null || true; done
    local why="exit $rc"
    case "$rc" in 124 | 137) why="stopped after ${SMK_TIMEOUT} s" ;; esac
    row "Snakemake chain of $n, $label" "$why ($(ls "$d/out" | grep -c '\.end$' || true) of $n steps done)" "-" "-" "-" "$l"
    echo "snakemake ($label, $n) $why; last lines:" >&2; tail -5 "$log" >&2
    return 0
  fi
  # the steps' times, named i.start/i.end like pipe's
  mkdir -p "$d/t"
  for i in $(seq 1 "$n"); do
    cp "$d/out/step$i.start" "$d/t/$i.start"; cp "$d/out/step$i.end" "$d/t/$i.end"
  done
  local gap notice sub ids
  gap=$(gaps "$d/t" "$n" | mean)
  # submit -> start: a step's command start minus its job's SubmitTime in the jobcomp file
  # (whole seconds), jobs in submission order = chain order
  ids=$(grep -oE 'SLURM jobid [0-9]+' "$log" | grep -oE '[0-9]+$' | tr '\n' ' ')
  sub=$(i=0; for id in $ids; do
      i=$((i + 1))
      su=$(grep -E "^JobId=$id " "$JOBCOMP" | tail -n1 | sed -E 's/.*SubmitTime=([^ ]*).*/\1/')
      echo "$(cat "$d/t/$i.start") $(date -d "$su" +%s)"
    done | awk '{printf "%.3f\n", $1 - $2}' | mean)
  # finish -> noticed: the time stamp Snakemake prints before "Finished jobid" (whole
  # seconds; the k-th such line is step k) minus the step's command end
  notice=$(awk '/^\[.*[0-9][0-9][0-9][0-9]\]$/ {ts = substr($0, 2, length($0) - 2)} /^Finished jobid/ {print ts}' "$log" \
    | head -n "$n" | { i=0; while read -r ts; do
      i=$((i + 1)); echo "$(date -d "$ts" +%s) $(cat "$d/t/$i.end")"; done; } \
    | awk '{printf "%.3f\n", $1 - $2}' | mean)
  row "Snakemake chain of $n, $label" "$(echo "$t1 - $t0" | bc -l | xargs printf '%.1f')" "$gap" "$notice (1 s res.)" "$sub (1 s res.)" "$l"
}

# Snakemake's fastest reasonable settings on this cluster: the first status check after 1 s
# instead of 40, status checks as often as it allows, no waiting for a shared filesystem's
# latency (the node is this machine), squeue for status and no account (no accounting here).
SMK_FAST=(--slurm-init-seconds-before-status-checks 1 --seconds-between-status-checks 1
  --max-status-checks-per-second 10 --latency-wait 0)
smk_help="$( (has smk && "$VENV/bin/snakemake" --help) 2>/dev/null || true)"
for f in "--slurm-status-command squeue" --slurm-no-account; do
  if grep -q -- "${f%% *}" <<<"$smk_help"; then SMK_FAST+=($f); fi
done

# Snakemake's defaults (and the defaults with the one change this cluster needs, squeue for
# status) on the first chain length only: each takes minutes.
first=1
has chain || has smk || LENGTHS=""
for n in $LENGTHS; do
  if has chain; then
    pipe_chain "$n" local
    pipe_chain "$n" slurm
  fi
  has smk || continue
  if [ "$first" = 1 ]; then
    case " $SMK_MODES " in *" defaults "*) smk_chain "$n" "plugin defaults" ;; esac
    case " $SMK_MODES " in *" squeue "*)
      smk_chain "$n" "defaults + squeue status" --slurm-status-command squeue ;; esac
    first=0
  fi
  case " $SMK_MODES " in *" fast "*) smk_chain "$n" "fast settings" "${SMK_FAST[@]}" ;; esac
done
# --- 3. a SWEEP-wide matrix, squeue counted ---
# sweep LABEL [pipe flags...]: one fresh run; prints one row of the sweep table
sweep() {
  local label=$1 d="$work/sweep-$RANDOM" l t0 t1 log calls peak most ids real
  shift
  mkdir -p "$d/pipelines" "$d/wrap"
  cat >"$d/pipelines/sweep.yaml" <<YAML
name: sweep
seed: 1
stages:
  w:
    kind: command
    matrix: { i: [$(seq -s ', ' 1 "$SWEEP")] }
    params: { cmd: "sleep 2; echo \${i} > \$PIPE_OUT/x.txt" }
    resources: { cpus: 1, mem_mb: 100, time_min: 5 }
YAML
  real=$(command -v squeue)
  printf '#!/bin/sh\necho "$(date +%%s.%%N) $*" >> %s/calls\nexec %s "$@"\n' "$d/wrap" "$real" >"$d/wrap/squeue"
  chmod +x "$d/wrap/squeue"
  log="$d.log"
  l=$(load)
  t0=$(now)
  (cd "$d" && PATH="$d/wrap:$PATH" "$PIPE" run pipelines/sweep.yaml --executor slurm "$@") >"$log" 2>&1 \
    || { echo "sweep ($label) failed:" >&2; tail -20 "$log" >&2; exit 1; }
  t1=$(now)
  calls=$(wc -l <"$d/wrap/calls")
  peak=$(awk '{c[int($1)]++} END {m = 0; for (s in c) if (c[s] > m) m = c[s]; print m}' "$d/wrap/calls")
  # the most jobs running at once, from this run's jobs in the jobcomp file (whole seconds)
  ids=$(grep -oE 'as Slurm job [0-9]+' "$log" | grep -oE '[0-9]+$' | tr '\n' '|')
  most=$(grep -E "^JobId=(${ids%|}) " "$JOBCOMP" | sed -E 's/.*StartTime=([^ ]*) EndTime=([^ ]*).*/\1 1\n\2 -1/' \
    | sort | awk '{n += $2; if (n > m) m = n} END {print m + 0}')
  printf '| %s | %s | %s | %s | %s | %s |\n' "pipe $SWEEP-wide sweep, $label" \
    "$(echo "$t1 - $t0" | bc -l | xargs printf '%.1f')" "$calls" "$peak" "$most" "$l"
}
if has sweep; then
  echo
  echo "| what | wall s | squeue calls | most squeue calls in one second | most jobs at once | load (1 min) |"
  echo "|---|---:|---:|---:|---:|---:|"
  sweep "default -j"
  sweep "-j $SWEEP" -j "$SWEEP"
fi

echo
echo "pipe $("$PIPE" --version 2>/dev/null | awk '{print $2}'), snakemake $SMK_VERSION, its Slurm plugin $PLUGIN_VERSION, $(sinfo -h -o '%c' | head -n1) CPUs on the node, $(date -u +%FT%RZ)"
echo "fast Snakemake flags: ${SMK_FAST[*]}"
