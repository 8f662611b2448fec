#!/usr/bin/env bash
# pipe f32 and bf16 beside PyTorch f32 eager (torch_reference.py) and PyTorch bf16 autocast
# (torch_fast.py ... bf16) in one run, same thread count, same model (the seed configuration on
# random tokens): train, decode1, decode20 (both with the KV cache) and beam10 (pipe only).
# Each round runs every measurement back to back (pipe and PyTorch alternate, so both see the
# same machine state); the table gives the median over the rounds, the ratios the issue-19
# targets name, pipe's achieved GFLOP/s against the peak for its precision, and the load
# average at the start and end of each round. Prints numbers; asserts nothing.
#
# usage: benches/vs_torch.sh [rounds]        (default 3)
#   PIPE=path/to/pipe        default target/release/pipe (cargo build --release)
#   PYTHON=path/to/python    default ~/.torchref/bin/python; create it with
#                            python3 -m venv ~/.torchref && ~/.torchref/bin/pip install torch numpy
#   TORCH_BENCH=dir          the folder of torch_reference.py / torch_fast.py
#                            (default: ../shared/bench beside the project, or beside its parent)
#   THREADS=n                threads for pipe and PyTorch (default 2)
#   TASKS="train decode1 decode20 beam10"   a subset to measure
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ROUNDS="${1:-3}"
PIPE="${PIPE:-$here/target/release/pipe}"
PYTHON="${PYTHON:-$HOME/.torchref/bin/python}"
THREADS="${THREADS:-2}"
TASKS="${TASKS:-train decode1 decode20 beam10}"
if [ -z "${TORCH_BENCH:-}" ]; then
  for d in "$here/../shared/bench" "$here/../../shared/bench"; do
    [ -f "$d/torch_reference.py" ] && TORCH_BENCH="$(cd "$d" && pwd)" && break
  done
fi
[ -x "$PIPE" ] || { echo "no pipe binary at $PIPE: cargo build --release" >&2; exit 2; }
[ -x "$PYTHON" ] || {
  echo "no PyTorch python at $PYTHON: python3 -m venv ~/.torchref && ~/.torchref/bin/pip install torch numpy (or set PYTHON)" >&2
  exit 2
}
[ -f "${TORCH_BENCH:-}/torch_fast.py" ] || { echo "torch_reference.py / torch_fast.py not found: set TORCH_BENCH" >&2; exit 2; }
export TORCH_THREADS="$THREADS"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

load() { cut -d' ' -f1 /proc/loadavg; }
# rec ROUND SYSTEM TASK TOKENS_PER_S [GFLOPS PEAK]
rec() { echo "$*" >> "$out"; echo "  round $1: $2 $3 $4 tok/s"; }
pipe_json() { # pipe_json ROUND TASK PRECISION
  local j
  j="$("$PIPE" bench "$2" --threads "$THREADS" --precision "$3" --json)"
  rec "$1" "pipe-$3" "$2" "$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); p=j.get("peak") or {}; print(j["tokens_per_s"], j["gflops"], p.get("gflops", 0), p.get("unit", "?"))' "$j")"
}
torch_val() { # torch_val ROUND SYSTEM TASK CMD...: the tok_per_s of the RESULT line
  local r s t
  r="$1"; s="$2"; t="$3"; shift 3
  local v
  v="$("$@" 2>/dev/null | sed -n 's/^RESULT.* tok_per_s\(_median\)\{0,1\}=\([0-9.]*\).*/\2/p' | head -1)"
  rec "$r" "$s" "$t" "${v:-nan}"
}

echo "pipe vs PyTorch, $THREADS threads, $ROUNDS rounds; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $("$PYTHON" -c 'import torch; print("torch", torch.__version__)')"
echo "pipe: $PIPE ($(cd "$here" && git rev-parse --short HEAD 2>/dev/null || echo '?')); kernels: $(grep -o -w -E 'amx_bf16|avx512_bf16|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')"
for r in $(seq "$ROUNDS"); do
  l0="$(load)"
  for t in $TASKS; do
    case "$t" in
      train)
        pipe_json "$r" train f32
        torch_val "$r" torch-f32 train "$PYTHON" "$TORCH_BENCH/torch_reference.py" train 5
        pipe_json "$r" train bf16
        torch_val "$r" torch-bf16 train "$PYTHON" "$TORCH_BENCH/torch_fast.py" train bf16 5
        ;;
      decode1|decode20)
        pipe_json "$r" "$t" f32
        torch_val "$r" torch-f32 "$t" "$PYTHON" "$TORCH_BENCH/torch_reference.py" "$t" cache 3
        pipe_json "$r" "$t" bf16
        torch_val "$r" torch-bf16 "$t" "$PYTHON" "$TORCH_BENCH/torch_fast.py" "$t" bf16
        ;;
      beam10)
        pipe_json "$r" beam10 f32
        pipe_json "$r" beam10 bf16
        ;;
      *) echo "unknown task $t" >&2; exit 2 ;;
    esac
  done
  echo "round $r: load average $l0 at the start, $(load) at the end"
done

python3 - "$out" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
val, gf, peak = {}, {}, {}
for r in rows:
    sysname, task = r[1], r[2]
    val.setdefault((sysname, task), []).append(float(r[3]))
    if len(r) > 4:
        gf.setdefault((sysname, task), []).append(float(r[4]))
        peak[(sysname, task)] = (float(r[5]), r[6])
med = lambda k: st.median(val[k]) if k in val and val[k] else float("nan")
systems = ["pipe-f32", "pipe-bf16", "torch-f32", "torch-bf16"]
tasks = [t for t in ["train", "decode1", "decode20", "beam10"] if any((s, t) in val for s in systems)]
f = lambda x: "—" if x != x else f"{x:,.0f}"
print()
print("| tokens/s (median) | " + " | ".join(systems) + " | pipe GFLOP/s f32 / bf16 (peak) |")
print("|---" * (len(systems) + 2) + "|")
for t in tasks:
    g = []
    for s in ["pipe-f32", "pipe-bf16"]:
        if (s, t) in gf:
            p, unit = peak[(s, t)]
            g.append(f"{st.median(gf[(s, t)]):.0f} ({p:.0f} {unit})")
    print(f"| {t} | " + " | ".join(f(med((s, t))) for s in systems) + " | " + " / ".join(g) + " |")
def ratio(a, b):
    x = a / b if b == b and b > 0 else float("nan")
    return "—" if x != x else f"{x:.2f}"
best = lambda t: max([v for v in (med(("torch-f32", t)), med(("torch-bf16", t))) if v == v] or [float("nan")])
print()
print("ratios (targets of issue 19):")
print(f"  train bf16 / torch bf16 autocast: {ratio(med(('pipe-bf16','train')), med(('torch-bf16','train')))} (target ≥ 2.0)")
print(f"  train f32  / torch f32:           {ratio(med(('pipe-f32','train')), med(('torch-f32','train')))} (target ≥ 1.3)")
print(f"  train bf16 / pipe f32:            {ratio(med(('pipe-bf16','train')), med(('pipe-f32','train')))}")
for t, target in [("decode1", "4"), ("decode20", "3")]:
    for p in ["f32", "bf16"]:
        print(f"  {t} pipe {p} / torch best: {' ' * (5 - len(p))}{ratio(med((f'pipe-{p}', t)), best(t))} (target ≥ {target})")
for p in ["f32", "bf16"]:
    print(f"  beam10 / decode1, pipe {p}: {' ' * (5 - len(p))}{ratio(med((f'pipe-{p}', 'beam10')), med((f'pipe-{p}', 'decode1')))} (target ≥ 0.60)")
print()
print("every round (tokens/s):")
for k in sorted(val):
    print(f"  {k[0]:<10} {k[1]:<9} " + "  ".join(f"{v:,.0f}" for v in val[k]))
PY
