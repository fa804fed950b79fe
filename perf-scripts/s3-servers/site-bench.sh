#!/usr/bin/env bash
# Measures one core moving data to one S3 backend (radosgw on loopback): PUT and GET MiB/s,
# the site client's CPU seconds per GiB (CPU time of the one thread running the site, so the
# backend's cost is excluded) and the keep-alive reuse rate, over plain HTTP with unsigned and
# signed (aws-chunked) payloads and over TLS; GETs in the engine's 4 MiB ranges and in 1 MiB ones.
# First it prints the machine's floors for the same bytes: loopback TCP send and receive with no
# client logic, and AES-256-GCM sealing alone. Builds the test in release once.
#
#   site-bench.sh [MiB per mode, default 512]
# Starts radosgw with radosgw.sh unless TESSERA_RGW_ENDPOINT is already set, and stops it after.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mib="${1:-512}"
started=0
if [ -z "${TESSERA_RGW_ENDPOINT:-}" ]; then
    eval "$("$here/radosgw.sh" start)"
    started=1
fi
cd "$here/../.."
TESSERA_SITE_BENCH_MIB="$mib" cargo test --release -p tessera-core --test site_bench -- --nocapture \
    2>&1 | grep -E "site-bench|test result|panicked"
if [ "$started" = 1 ]; then "$here/radosgw.sh" stop; fi
