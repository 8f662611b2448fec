"""Compare two runs of a pipeline: every checkpoint, token file and embedding byte for byte, and
every metrics file (JSON, CSV) with its wall-clock fields (throughput, speed-up, seconds) left
out, since those measure the machine rather than the model. Prints each mismatch; exit 1 on any.

usage: python3 .ci/compare.py RUN_A RUN_B PIPELINE_NAME
"""
import csv
import io
import json
import os
import sys

TIMING = ("tokens_per_s", "speedup", "speed_vs_sampling", "wall_s", "seconds", "duration")


def is_timing(key):
    return any(t in key for t in TIMING)


def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if not is_timing(k)}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def csv_rows(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return rows
    keep = [i for i, name in enumerate(rows[0]) if not is_timing(name)]
    return [[r[i] for i in keep if i < len(r)] for r in rows]


def main():
    a, b, name = sys.argv[1], sys.argv[2], sys.argv[3]
    compared = mismatched = 0
    for top in ("checkpoints", "results"):
        base = os.path.join(a, top, name)
        for dirpath, _, files in os.walk(base):
            if os.sep + "logs" in dirpath or os.sep + "report" in dirpath:
                continue
            for fn in sorted(files):
                pa = os.path.join(dirpath, fn)
                rel = os.path.relpath(pa, a)
                pb = os.path.join(b, rel)
                ext = os.path.splitext(fn)[1]
                if ext not in (".safetensors", ".ids", ".offsets", ".json", ".csv"):
                    continue
                compared += 1
                if not os.path.exists(pb):
                    print(f"MISMATCH: {rel} is missing in the second run")
                    mismatched += 1
                    continue
                if ext == ".json":
                    same = strip(json.load(open(pa))) == strip(json.load(open(pb)))
                elif ext == ".csv":
                    same = csv_rows(pa) == csv_rows(pb)
                else:
                    same = open(pa, "rb").read() == open(pb, "rb").read()
                if not same:
                    print(f"MISMATCH: {rel} differs between the two runs")
                    mismatched += 1
    n_ckpt = sum(
        fn.endswith(".safetensors")
        for _, _, fs in os.walk(os.path.join(a, "checkpoints", name))
        for fn in fs
    )
    if n_ckpt == 0:
        print("MISMATCH: the first run produced no checkpoints")
        mismatched += 1
    print(f"compared {compared} files ({n_ckpt} checkpoint files): {mismatched} mismatched")
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
