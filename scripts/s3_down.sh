#!/usr/bin/env bash
# s3_down.sh - stops the SeaweedFS server that s3_up.sh started (by its pid file only).
# Env: S3_BASE (/tmp/pipe-s3); S3_WIPE=1 also deletes its data.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
BASE=${S3_BASE:-/tmp/pipe-s3}
stop_pidfile "$BASE/weed.pid" weed s3
[ "${S3_WIPE:-0}" = 1 ] && rm -rf "$BASE/data"
exit 0
