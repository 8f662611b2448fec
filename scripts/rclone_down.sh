#!/usr/bin/env bash
# rclone_down.sh - stops the `rclone serve s3` that rclone_up.sh started (by its pid file only).
# Env: RCLONE_BASE (/tmp/pipe-rclone); RCLONE_WIPE=1 also deletes the served folder.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
BASE=${RCLONE_BASE:-/tmp/pipe-rclone}
stop_pidfile "$BASE/rclone.pid" rclone rclone
[ "${RCLONE_WIPE:-0}" = 1 ] && rm -rf "$BASE/root"
exit 0
