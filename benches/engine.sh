#!/usr/bin/env bash
# Engine benchmarks: median wall time of a no-op `pipe run`, `pipe status`, a run right after
# `touch` of every result file (each output re-hashed) and a one-value change, on `command`
# pipelines of 11, 208, 1,000 and 10,000 stages; the first run (empty store) of 1,000 and 10,000
# stages with its cost per stage (it must not grow with size); and the engine's bookkeeping per
# executed stage at 208 stages. Prints numbers; asserts nothing.
#
# usage: benches/engine.sh [path/to/pipe] [repetitions] [sizes]
#   default binary: target/release/pipe (build it with `cargo build --release`)
#   sizes: a quoted list out of "11 208 1000 10000" (default: all four); the 1,000- and
#   10,000-stage figures use min(repetitions, 5) repetitions, the first runs one each.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
PIPE="$(realpath "${1:-$here/target/release/pipe}")"
N="${2:-15}"
SIZES="${3:-11 208 1000 10000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

now_ms() { date +%s%N; }
# median_ms CMD...: runs CMD $REPS times, prints the median wall time in ms
median_ms() {
  local ts=() t0 t1
  for _ in $(seq "$REPS"); do
    t0=$(now_ms); "$@" >/dev/null 2>&1; t1=$(now_ms)
    ts+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${ts[@]}" | sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.1f", m/1000}'
}

# --- 11 stages: tokenize -> embed -> 3 epochs -> plot, infer, kv-eval, beam-eval x3 ---
p11="$work/p11"; mkdir -p "$p11/pipelines"; head -c 100000 /dev/urandom > "$p11/data.bin"
cat > "$p11/pipelines/study.yaml" <<'YAML'
name: study
seed: 100
stages:
  tokenize: { kind: command, params: { cmd: "wc -c data.bin > $PIPE_OUT/stats.txt", deps: [data.bin] } }
  embed:    { kind: command, needs: [tokenize], params: { cmd: "echo embed > $PIPE_OUT/e.txt" } }
  epoch1:   { kind: command, needs: [tokenize, embed], params: { cmd: "echo 1 > $PIPE_OUT/ck.txt" } }
  epoch2:   { kind: command, needs: [epoch1], params: { cmd: "echo 2 > $PIPE_OUT/ck.txt" } }
  epoch3:   { kind: command, needs: [epoch2], params: { cmd: "echo 3 > $PIPE_OUT/ck.txt" } }
  plot:     { kind: command, needs: [epoch3], params: { cmd: "echo plot > $PIPE_OUT/p.txt" } }
  infer:    { kind: command, needs: [epoch3, tokenize], params: { cmd: "echo '{\"ppl\": 9.4}' > $PIPE_OUT/metrics.json" } }
  kv-eval:  { kind: command, needs: [epoch3], params: { cmd: "echo kv > $PIPE_OUT/kv.txt" } }
  beam-eval:
    kind: command
    needs: [epoch3, tokenize]
    matrix: { beam_width: [1, 5, 10] }
    params: { cmd: "echo ${beam_width} > $PIPE_OUT/b.txt" }
YAML

# --- a sweep of S stages: prep -> 2 x (S-2)/2 points -> aggregate ---
sweep() {
  local dir="$1" stages="$2"
  mkdir -p "$dir/pipelines"; echo data > "$dir/data.txt"
  {
    echo "name: sweep"
    echo "seed: 1"
    echo "stages:"
    echo "  prep: { kind: command, params: { cmd: \"cat data.txt > \$PIPE_OUT/d.txt\", deps: [data.txt] } }"
    echo "  point:"
    echo "    kind: command"
    echo "    needs: [prep]"
    echo "    matrix: { mode: [a, b], lr: [$(seq -s, 1 $(( (stages - 2) / 2 )))] }"
    echo "    params: { cmd: \"echo \${mode} \${lr} > \$PIPE_OUT/r.txt\" }"
    echo "  aggregate: { kind: command, needs: [point], params: { cmd: \"echo done > \$PIPE_OUT/a.txt\" } }"
  } > "$dir/pipelines/sweep.yaml"
}

run_in() { (cd "$1" && shift && "$PIPE" "$@"); }
# first_run DIR FILE STAGES: one run from an empty store, and its cost per stage
first_run() {
  local dir="$1" file="$2" stages="$3" t0 t1
  t0=$(now_ms); run_in "$dir" run "$file" >/dev/null 2>&1; t1=$(now_ms)
  awk -v t="$(( (t1 - t0) / 1000 ))" -v s="$stages" 'BEGIN {
    printf "%d stages: first run %.0f ms = %.2f ms per stage\n", s, t/1000, t/1000/s }'
}
bench() {
  local dir="$1" file="$2" stages="$3" change_stage="$4"
  local noop status change
  noop=$(median_ms run_in "$dir" run "$file")
  status=$(median_ms run_in "$dir" status "$file")
  # Right after `touch` of every result file: the stat cache misses, every output is re-hashed.
  local tts=() t0 t1
  for _ in $(seq "$REPS"); do
    find "$dir/results" "$dir/checkpoints" -type f -exec touch {} + 2>/dev/null || true
    t0=$(now_ms); run_in "$dir" run "$file" >/dev/null 2>&1; t1=$(now_ms)
    tts+=($(( (t1 - t0) / 1000 )))
  done
  local touched
  touched=$(printf '%s\n' "${tts[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}')
  # A one-value change: a new value each time, so the stage and its dependents really run.
  local k=0 ts=()
  for _ in $(seq "$REPS"); do
    k=$((k + 1))
    t0=$(now_ms)
    run_in "$dir" run "$file" --set "$change_stage.cmd=echo v$k\$RANDOM$k > \$PIPE_OUT/v.txt" >/dev/null 2>&1
    t1=$(now_ms); ts+=($(( (t1 - t0) / 1000 )))
  done
  change=$(printf '%s\n' "${ts[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}')
  echo "$stages stages: no-op run ${noop} ms | status ${status} ms | run after touching every result ${touched} ms | one-value change (--set ${change_stage}.cmd=...) ${change} ms"
}

# Bookkeeping per executed stage: change prep's output so all 206 sweep points rerun with -j 1,
# subtract the no-op time and the cost of spawning their `sh -c` commands, divide by 206.
bookkeeping() {
  local dir="$1" file=pipelines/sweep.yaml t0 t1 total noop ran sh_ms
  noop=$(median_ms run_in "$dir" run "$file")
  t0=$(now_ms)
  ran=$(run_in "$dir" run "$file" -j 1 --set "prep.cmd=echo \$RANDOM\$RANDOM > \$PIPE_OUT/d.txt" 2>/dev/null | sed -n 's/.*: \([0-9]*\) ran.*/\1/p')
  t1=$(now_ms); total=$(( (t1 - t0) / 1000 ))
  t0=$(now_ms)
  for _ in $(seq 200); do sh -c 'echo x > /dev/null'; done
  t1=$(now_ms); sh_ms=$(( (t1 - t0) / 1000 / 200 ))
  awk -v t="$total" -v n="$noop" -v r="$ran" -v s="$sh_ms" 'BEGIN {
    printf "bookkeeping: %d stages ran in %.0f ms (-j 1); minus no-op %.1f ms and %d x sh -c (%.2f ms each): %.2f ms per executed stage\n",
      r, t/1000, n, r, s/1000, (t/1000 - n - r*s/1000)/r }'
}

echo "pipe: $PIPE, median of $N (5 at 1,000 and more stages), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $SIZES; do
  REPS="$N"
  if [ "$s" -ge 1000 ]; then REPS=$(( N < 5 ? N : 5 )); fi
  if [ "$s" = 11 ]; then
    run_in "$p11" run pipelines/study.yaml >/dev/null 2>&1
    bench "$p11" pipelines/study.yaml 11 tokenize
  else
    sweep "$work/p$s" "$s"
    if [ "$s" -ge 1000 ]; then first_run "$work/p$s" pipelines/sweep.yaml "$s"
    else run_in "$work/p$s" run pipelines/sweep.yaml >/dev/null 2>&1; fi
    bench "$work/p$s" pipelines/sweep.yaml "$s" aggregate
    if [ "$s" = 208 ]; then bookkeeping "$work/p$s"; fi
    rm -rf "$work/p$s"
  fi
done
