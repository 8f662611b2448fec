#!/usr/bin/env bash
# test.sh - the project's test command: starts the real servers the tests use (SeaweedFS S3,
# rclone S3, one-node Slurm), exports where they are, runs `cargo test --release "$@"`, and
# stops on exit (trap) every server that this run started, by pid. Exits with cargo's status.
# `cargo test --release` builds the lib and bin unit tests and one integration binary,
# `integration` (tests/integration/main.rs, one module per area). Arguments go to cargo, e.g.
#   scripts/test.sh --test integration -- slurm     # the Slurm areas only
#   scripts/test.sh --test integration -- remote::  # the remote-store area only
# Tests that need a server read the PIPE_TEST_* variables below and skip when they are unset.
# PIPE_TEST_NO_SLURM=1 skips the Slurm clusters (e.g. on a machine without apt). Besides the
# shared cluster ($SLURM_BASE, reached through SLURM_CONF) every run starts a private one of its own
# (PIPE_TEST_SLURM2_BASE, 16 CPUs on the node) for the tests that stop its controller or fill its
# node, and stops it at the end.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$here/.."

export S3_BASE=${S3_BASE:-/tmp/pipe-s3} S3_PORT=${S3_PORT:-8333}
export S3_AK=${S3_AK:-pipetestkey} S3_SK=${S3_SK:-pipetestsecret} S3_BUCKET=${S3_BUCKET:-pipe-test}
export RCLONE_BASE=${RCLONE_BASE:-/tmp/pipe-rclone} RCLONE_PORT=${RCLONE_PORT:-8334}
export RCLONE_AK=${RCLONE_AK:-rclonetestkey} RCLONE_SK=${RCLONE_SK:-rclonetestsecret}
export RCLONE_BUCKET=${RCLONE_BUCKET:-pipe-test}
export SLURM_BASE=${SLURM_BASE:-/tmp/pipe-slurm}

# servers already running before this script are left running; the ones it starts, it stops
started=()
pid_alive "$S3_BASE/weed.pid" weed || started+=(s3)
pid_alive "$RCLONE_BASE/rclone.pid" rclone || started+=(rclone)
if [ "${PIPE_TEST_NO_SLURM:-0}" != 1 ]; then
  pid_alive "$SLURM_BASE/run/slurmctld.pid" slurmctld || started+=(slurm)
fi
cleanup() {
  local s
  for s in "${started[@]}"; do "$here/${s}_down.sh" || true; done
  if [ -n "${PIPE_TEST_SLURM2_BASE:-}" ]; then
    SLURM_BASE=$PIPE_TEST_SLURM2_BASE "$here/slurm_down.sh" >/dev/null || true
    rm -rf "$PIPE_TEST_SLURM2_BASE"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s%N)
"$here/s3_up.sh" || exit 1
"$here/rclone_up.sh" || exit 1
if [ "${PIPE_TEST_NO_SLURM:-0}" != 1 ]; then
  "$here/slurm_up.sh" || exit 1
  export SLURM_CONF=$SLURM_BASE/slurm.conf PIPE_TEST_SLURM=1 PIPE_TEST_SLURM_BASE=$SLURM_BASE
  PIPE_TEST_SLURM2_BASE=$(mktemp -d /tmp/pipe-slurm2.XXXXXX)
  export PIPE_TEST_SLURM2_BASE
  SLURM_BASE=$PIPE_TEST_SLURM2_BASE SLURM_CLUSTER=pipetest2 SLURM_CPUS=16 "$here/slurm_up.sh" || exit 1
fi
echo "servers ready in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

export PIPE_TEST_S3=http://127.0.0.1:$S3_PORT PIPE_TEST_S3_BUCKET=$S3_BUCKET
export PIPE_TEST_S3_KEY=$S3_AK PIPE_TEST_S3_SECRET=$S3_SK
export PIPE_TEST_RCLONE=http://127.0.0.1:$RCLONE_PORT PIPE_TEST_RCLONE_BUCKET=$RCLONE_BUCKET
export PIPE_TEST_RCLONE_KEY=$RCLONE_AK PIPE_TEST_RCLONE_SECRET=$RCLONE_SK

cargo test --release "$@"
status=$?
exit $status
