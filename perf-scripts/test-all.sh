#!/usr/bin/env bash
# Sets up and runs every test: unit and property tests of all crates, then the integration
# suite that drives the real binary with real clients (aws CLI, boto3). Progress is printed
# per stage; the exit code is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
stage() { printf '\n=== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

stage "setup: system packages"
bash perf-scripts/setup.sh
stage "setup: Python clients"
python3 -m pip install -q --disable-pip-version-check pytest boto3 awscli 2>&1 | grep -v "Running pip as the 'root'" || true

stage "build"
cargo build --workspace --all-targets
stage "unit tests"
cargo test --workspace
stage "integration tests (real binary, real clients)"
python3 -m pytest -q core/tests/integration
