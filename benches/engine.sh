#!/usr/bin/env bash
# Engine benchmarks: median wall time of a no-op `pipe run`, `pipe status`, a run right after
# `touch` of every result file (each output re-hashed) and a one-value change, on an 11-stage
# and a 208-stage `command` pipeline, plus the engine's bookkeeping per executed stage. Prints
# numbers; asserts nothing.
#
# usage: benches/engine.sh [path/to/pipe] [repetitions]
#   default binary: target/release/pipe (build it with `cargo build --release`)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
PIPE="$(realpath "${1:-$here/target/release/pipe}")"
N="${2:-15}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

now_ms() { date +%s%N; }
# median_ms CMD...: runs CMD N times, prints the median wall time in ms
median_ms() {
  local ts=() t0 t1
  for _ in $(seq "$N"); do
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

# --- 208 stages: prep -> sweep over 2 x 103 points -> aggregate ---
p208="$work/p208"; mkdir -p "$p208/pipelines"; echo data > "$p208/data.txt"
{
  echo "name: sweep"
  echo "seed: 1"
  echo "stages:"
  echo "  prep: { kind: command, params: { cmd: \"cat data.txt > \$PIPE_OUT/d.txt\", deps: [data.txt] } }"
  echo "  point:"
  echo "    kind: command"
  echo "    needs: [prep]"
  echo "    matrix: { mode: [a, b], lr: [$(seq -s, 1 103)] }"
  echo "    params: { cmd: \"echo \${mode} \${lr} > \$PIPE_OUT/r.txt\" }"
  echo "  aggregate: { kind: command, needs: [point], params: { cmd: \"echo done > \$PIPE_OUT/a.txt\" } }"
} > "$p208/pipelines/sweep.yaml"

run_in() { (cd "$1" && shift && "$PIPE" "$@"); }
bench() {
  local dir="$1" file="$2" stages="$3" change_stage="$4"
  run_in "$dir" run "$file" >/dev/null 2>&1
  local noop status change bare
  noop=$(median_ms run_in "$dir" run "$file")
  status=$(median_ms run_in "$dir" status "$file")
  # Right after `touch` of every result file: the stat cache misses, every output is re-hashed.
  local tts=() t0 t1
  for _ in $(seq "$N"); do
    find "$dir/results" "$dir/checkpoints" -type f -exec touch {} + 2>/dev/null || true
    t0=$(now_ms); run_in "$dir" run "$file" >/dev/null 2>&1; t1=$(now_ms)
    tts+=($(( (t1 - t0) / 1000 )))
  done
  local touched
  touched=$(printf '%s\n' "${tts[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}')
  # A one-value change: a new value each time, so the stage and its dependents really run.
  local k=0 ts=()
  for _ in $(seq "$N"); do
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
  local dir="$p208" file=pipelines/sweep.yaml t0 t1 total noop ran sh_ms
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

echo "pipe: $PIPE, median of $N, $(nproc) cores"
bench "$p11" pipelines/study.yaml 11 tokenize
bench "$p208" pipelines/sweep.yaml 208 aggregate
bookkeeping
