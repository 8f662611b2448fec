"""Compare the lock files of two clean runs of one pipeline: every stage outside the
measurement kinds must have the same fingerprint and the same output hashes.

Measurement kinds (their outputs show speeds, which differ between two runs by nature):
beam-report and report, the kinds that read measurements (KindInfo::reads_measurements).
Speeds and wall times of every other kind live in measurement files, which no lock lists.

usage: python3 .ci/compare_locks.py A.lock B.lock
"""
import json
import sys

MEASUREMENT_KINDS = {"beam-report", "report"}


def main(a_path, b_path):
    a = json.load(open(a_path))["stages"]
    b = json.load(open(b_path))["stages"]
    bad = 0
    if sorted(a) != sorted(b):
        print(f"different stages: {sorted(set(a) ^ set(b))}")
        bad += 1
    checked = 0
    for sid in sorted(set(a) & set(b)):
        ea, eb = a[sid], b[sid]
        if ea["kind"] in MEASUREMENT_KINDS:
            print(f"  {sid}: measurement kind {ea['kind']}, not compared")
            continue
        checked += 1
        if ea["fingerprint"] != eb["fingerprint"]:
            print(f"DIFFERENT {sid}: fingerprint {ea['fingerprint'][:12]} vs {eb['fingerprint'][:12]}")
            bad += 1
        for path in sorted(set(ea["outputs"]) | set(eb["outputs"])):
            if ea["outputs"].get(path) != eb["outputs"].get(path):
                print(f"DIFFERENT {sid}: {path}")
                bad += 1
    print(f"{checked} stages compared, {bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
