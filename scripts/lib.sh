#!/usr/bin/env bash
# lib.sh - helpers shared by the server scripts (sourced, not run): pid checks and waits.

# pid_alive PIDFILE COMM: true when PIDFILE names a live process whose name is COMM.
pid_alive() {
  local f=$1 comm=$2 pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$comm" ]
}

# stop_pidfile PIDFILE COMM LABEL: SIGTERM the process named in PIDFILE if it is COMM, wait up to
# 10 s, then SIGKILL; removes the pid file. Never touches any other process.
stop_pidfile() {
  local f=$1 comm=$2 label=${3:-$2} pid
  if ! pid_alive "$f" "$comm"; then
    echo "$label: not running"; rm -f "$f"; return 0
  fi
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$f"; echo "$label ($pid) stopped"
}

# wait_for TENTHS CMD...: retries CMD every 0.1 s, at most TENTHS times.
wait_for() {
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# s3_status URL AK SK: HTTP status of a signed ListObjectsV2 request (000 when unreachable).
s3_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$2:$3" "$1?list-type=2&max-keys=1" || true
}

# pip_venv VENV SPEC BIN: a venv at VENV with SPEC installed, BIN present in it.
pip_venv() {
  local venv=$1 spec=$2 bin=$3
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  [ -x "$venv/bin/$bin" ] || nice -n 19 "$venv/bin/pip" install -q --disable-pip-version-check "$spec"
}

# port_free PORT: true when nothing listens on TCP PORT (any address).
port_free() {
  [ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# free_ports N START: N consecutive-free TCP ports (one a line), the first at or after START,
# skipping any port something listens on.
free_ports() {
  local n=$1 p=$2 got=0
  while [ "$got" -lt "$n" ] && [ "$p" -lt 65000 ]; do
    if port_free "$p"; then echo "$p"; got=$((got + 1)); fi
    p=$((p + 1))
  done
  [ "$got" = "$n" ]
}

# conf_value FILE KEY: the value of `KEY=value` in a slurm.conf-style file (empty when absent).
conf_value() {
  sed -n "s/^$2=\([^ ]*\).*/\1/p" "$1" 2>/dev/null | head -n1
}
