#!/usr/bin/env bash
# Profiles the gateway (or any server bench-cluster.sh starts) during a PUT run and a GET run
# with `perf record` (sampling, DWARF call graphs) and draws a flame graph of each with
# bench-flame.py: where the gateway's CPU goes per operation, to explain a missed target.
#
#   perf-scripts/bench-profile.sh [--target gateway|baseline|noop] [--policy ec:2+1]
#       [--cores 2] [--size 64MiB] [--concurrency 4] [--duration 10s] [--freq 499]
#       [--mode unsigned] [--fsync always|never] [--etag md5|fast] [--out DIR (default /tmp/tessera-bench-profile)] [--no-build]
#
# Writes OUT/{put,get}.svg (flame graphs), .folded (stacks) and .top.txt (top functions by
# self and inclusive time), next to the tessera-bench JSON of each run. The sites live under
# $BENCH_STATE (default OUT/state; put it on a journaled filesystem, see journaled-fs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=gateway
POLICY=ec:2+1
CORES=2
SIZE=64MiB
CONCURRENCY=4
DURATION=10s
FREQ=499
MODE=unsigned
FSYNC=always
OUT=/tmp/tessera-bench-profile
ETAG=md5
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
    --target) TARGET=$2; shift 2 ;;
    --policy) POLICY=$2; shift 2 ;;
    --cores) CORES=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --fsync) FSYNC=$2; shift 2 ;;
    --etag) ETAG=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --freq) FREQ=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bench-profile: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v perf >/dev/null || { echo "bench-profile: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }

export BENCH_STATE="${BENCH_STATE:-$OUT/state}"
CLUSTER="perf-scripts/bench-cluster.sh"
BENCH="${TESSERA_BENCH_BIN:-target/release/tessera-bench}"
export TESSERA_BIN="${TESSERA_BIN:-target/release/tessera}"
if [ "$BUILD" = 1 ]; then
    cargo build --release -p tessera-bench
    [ "$TARGET" = gateway ] && cargo build --release -p tessera-core --bin tessera
fi

rm -rf "$OUT"
mkdir -p "$OUT"
trap 'bash "$CLUSTER" stop all >/dev/null 2>&1 || true' EXIT
case "$TARGET" in
gateway) bash "$CLUSTER" gateway --policy "$POLICY" --cores "$CORES" --fsync "$FSYNC" --etag "$ETAG" ;;
baseline) bash "$CLUSTER" baseline ;;
noop) bash "$CLUSTER" noop --object-size "$SIZE" ;;
*) echo "bench-profile: unknown target $TARGET" >&2; exit 2 ;;
esac
eval "$(bash "$CLUSTER" env)"
upper=$(echo "$TARGET" | tr '[:lower:]' '[:upper:]')
url_var="BENCH_${upper}_URL" pid_var="BENCH_${upper}_PID"
URL=${!url_var} PID=${!pid_var}
export AWS_ACCESS_KEY_ID=$BENCH_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$BENCH_SECRET_KEY
"$BENCH" put --endpoint "$URL" --setup --objects 1 --size 1 --quiet >/dev/null
"$BENCH" put --endpoint "$URL" --objects 16 --size "$SIZE" -c 4 --prefix prof- --quiet >/dev/null

for op in put get; do
    seconds=${DURATION%s}
    if [ "$op" = get ]; then
        # The PUTs left the shards out of the page cache (O_DIRECT): read each object once,
        # unprofiled, so the profile shows reads from a warm cache (see bench-ab.sh).
        "$BENCH" get --endpoint "$URL" --no-prepare --objects 16 --size "$SIZE" -c 4 \
            --prefix prof- --quiet >/dev/null || true
    fi
    perf record -F "$FREQ" --call-graph dwarf,16384 -p "$PID" -o "$OUT/$op.perf.data" \
        -- sleep "$seconds" >"$OUT/$op.perf.log" 2>&1 &
    perf_pid=$!
    sleep 0.3
    "$BENCH" "$op" --endpoint "$URL" --no-prepare --objects 16 --size "$SIZE" -c "$CONCURRENCY" \
        --duration "$DURATION" --prefix prof- --mode "$MODE" --json --quiet >"$OUT/$op.json" || true
    wait "$perf_pid" || true
    perf script -i "$OUT/$op.perf.data" 2>/dev/null |
        python3 perf-scripts/bench-flame.py --title "$TARGET $POLICY ${op^^} $SIZE c=$CONCURRENCY" "$OUT/$op"
    rm -f "$OUT/$op.perf.data"
    echo "== $op: top functions"
    head -20 "$OUT/$op.top.txt"
done
echo "flame graphs: $OUT/put.svg $OUT/get.svg"
