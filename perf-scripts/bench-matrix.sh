#!/usr/bin/env bash
# Measures Tessera's throughput (MiB/s, ops/s), latency (p50/p99), the gateway's own CPU
# seconds per GiB moved (utime+stime from /proc/PID/stat) and its peak RSS (VmHWM from
# /proc/PID/status, reset before each run through /proc/PID/clear_refs) over a matrix of
# object sizes × PUT/GET × concurrency × policies × gateway cores, and in the same run the
# same client talking straight to one site (the baseline, `rclone serve s3`) and to the
# no-op server (the client's ceiling). Every cell is repeated; bench-report.py reports
# medians with min–max and writes the tables and plots.
#
# On a 2-core machine shared by client, gateway and sites, MiB/s is bounded by whoever gets
# the CPU; CPU-s per GiB of the measured process is the steady figure to compare.
#
#   perf-scripts/bench-matrix.sh [--quick] [--publish] [options]
#     --sizes "4KiB 1MiB 16MiB 64MiB"   --ops "put get"   --concurrency "1 4 16 64"
#     --policies "ec:2+1 ec:4+2 replica:3"   --cores "1 2"   --repeat 3   --duration 5s
#     --targets "gateway baseline noop"   --site-kind dir|rclone|radosgw   --sites 6
#     --baseline-kind rclone|radosgw
#     --fsync always|never   --mode unsigned|signed|chunked-crc32|chunked-signed
#     --etag md5|fast   the gateway's ETag mode (`[engine] etag`; default md5)
#     --out DIR (default /tmp/tessera-bench-matrix)   --no-build
#     --state DIR  where the gateway's metadata and every site's data live (default OUT/state)
#     --journaled-fs  put the state on a journaled ext4 in a loop-mounted image (OUT-fs.img,
#                  mounted at OUT-fs, removed at the end; needs root): for machines whose own
#                  filesystem is an ext4 without a journal, where small-object figures depend
#                  on how much was deleted in the last seconds (see perf-scripts/journaled-fs.sh)
#     --quick     sizes "4KiB 1MiB 64MiB", concurrency "1 16", repeat 1, duration 3s
#     --publish   copy the report to bench/RESULTS.md and the plots to bench/plots/
#
# Results: OUT/runs/NNNN.json (tessera-bench --json) + NNNN.meta (what ran, CPU ticks, RSS),
# then OUT/RESULTS.md and OUT/*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SIZES="4KiB 1MiB 16MiB 64MiB"
OPS="put get"
CONCURRENCY="1 4 16 64"
POLICIES="ec:2+1 ec:4+2 replica:3"
CORES="1 2"
REPEAT=3
DURATION=5s
TARGETS="gateway baseline noop"
SITE_KIND=dir
BASELINE_KIND=rclone
SITES=6
FSYNC=always
MODE=unsigned
ETAG=md5
OUT=/tmp/tessera-bench-matrix
STATE=
JOURNALED=0
BUILD=1
PUBLISH=0
while [ $# -gt 0 ]; do
    case "$1" in
    --sizes) SIZES=$2; shift 2 ;;
    --ops) OPS=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --policies) POLICIES=$2; shift 2 ;;
    --cores) CORES=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --site-kind) SITE_KIND=$2; shift 2 ;;
    --baseline-kind) BASELINE_KIND=$2; shift 2 ;;
    --sites) SITES=$2; shift 2 ;;
    --fsync) FSYNC=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --etag) ETAG=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --state) STATE=$2; shift 2 ;;
    --journaled-fs) JOURNALED=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --publish) PUBLISH=1; shift ;;
    --quick) SIZES="4KiB 1MiB 64MiB"; CONCURRENCY="1 16"; REPEAT=1; DURATION=3s; shift ;;
    -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "bench-matrix: unknown option $1" >&2; exit 2 ;;
    esac
done

export BENCH_STATE="${STATE:-$OUT/state}"
CLUSTER="perf-scripts/bench-cluster.sh"
BENCH="${TESSERA_BENCH_BIN:-target/release/tessera-bench}"
export TESSERA_BIN="${TESSERA_BIN:-target/release/tessera}"
CLK_TCK=$(getconf CLK_TCK)

if [ "$BUILD" = 1 ]; then
    cargo build --release -p tessera-bench
    case " $TARGETS " in *" gateway "*) cargo build --release -p tessera-core --bin tessera ;; esac
fi

rm -rf "$OUT"
mkdir -p "$OUT/runs"
cleanup() {
    bash "$CLUSTER" stop all >/dev/null 2>&1 || true
    if [ "$JOURNALED" = 1 ]; then bash perf-scripts/journaled-fs.sh umount "$OUT-fs" >/dev/null || true; fi
}
trap cleanup EXIT
if [ "$JOURNALED" = 1 ]; then
    mountpoint -q "$OUT-fs" && bash perf-scripts/journaled-fs.sh umount "$OUT-fs" >/dev/null
    bash perf-scripts/journaled-fs.sh mount "$OUT-fs"
    export BENCH_STATE="$OUT-fs/state"
fi
eval "$(bash "$CLUSTER" env)"
export AWS_ACCESS_KEY_ID=$BENCH_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$BENCH_SECRET_KEY

# CPU ticks (user + system, all threads) of a process: fields 14 and 15 of /proc/PID/stat,
# counted after the ")" that ends the command name (which may contain spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# Peak resident set since the last reset, KiB.
rss_peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# Resets the peak so each run reports its own (Linux ≥ 4.0; needs to own the process).
rss_reset() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || echo "warning: cannot reset VmHWM of $1; peak RSS is since start" >&2; }

bytes_of() { # size text -> bytes (binary units as tessera-bench parses them)
    local n=${1%%[!0-9]*} unit=${1##*[0-9]}
    case "$unit" in
    "" | B) echo "$n" ;;
    K | KiB) echo $((n << 10)) ;;
    M | MiB) echo $((n << 20)) ;;
    G | GiB) echo $((n << 30)) ;;
    *) echo "bench-matrix: size unit of $1" >&2; exit 2 ;;
    esac
}

# Objects per size: about 1 GiB of data, at least 16 and at most 1000 keys.
objects_for() {
    local bytes n
    bytes=$(bytes_of "$1")
    n=$(((1 << 30) / bytes))
    [ "$n" -lt 16 ] && n=16
    [ "$n" -gt 1000 ] && n=1000
    echo "$n"
}

RUN=0
declare -A PREPARED=()

# run_cell TARGET URL PID POLICY CORES OP SIZE CONCURRENCY REPEAT
run_cell() {
    local target=$1 url=$2 pid=$3 policy=$4 cores=$5 op=$6 size=$7 conc=$8 rep=$9
    local objects prefix
    objects=$(objects_for "$size")
    prefix="$op-$size-"
    if [ "$op" = get ] && [ "$target" != noop ] && [ -z "${PREPARED[$target-$size]:-}" ]; then
        "$BENCH" put --endpoint "$url" --objects "$objects" --size "$size" -c 4 \
            --prefix "$prefix" --quiet >/dev/null || echo "warning: prepare of $size on $target had errors" >&2
        # One unmeasured read of every object: the cells measure reads from a warm page cache
        # (see the header of bench-ab.sh for why a first read costs far more on a VM).
        "$BENCH" get --endpoint "$url" --no-prepare --objects "$objects" --size "$size" -c 4 \
            --prefix "$prefix" --quiet >/dev/null || echo "warning: warm-up of $size on $target had errors" >&2
        PREPARED[$target-$size]=1
    fi
    RUN=$((RUN + 1))
    local id
    id=$(printf '%04d' "$RUN")
    rss_reset "$pid"
    local t0 t1 rc=0
    t0=$(cpu_ticks "$pid")
    "$BENCH" "$op" --endpoint "$url" --no-prepare --objects "$objects" --size "$size" \
        -c "$conc" --duration "$DURATION" --prefix "$prefix" --mode "$MODE" --json --quiet \
        >"$OUT/runs/$id.json" || rc=$?
    t1=$(cpu_ticks "$pid")
    cat >"$OUT/runs/$id.meta" <<EOT
target=$target
policy=$policy
cores=$cores
op=$op
size=$size
size_bytes=$(bytes_of "$size")
concurrency=$conc
repeat=$rep
mode=$MODE
duration=$DURATION
cpu_ticks=$((t1 - t0))
clk_tck=$CLK_TCK
rss_peak_kib=$(rss_peak_kib "$pid")
exit_code=$rc
EOT
    printf '%s %-8s %-9s cores=%-2s %-4s %-6s c=%-3s #%s  %s\n' "$id" "$target" "$policy" "$cores" \
        "$op" "$size" "$conc" "$rep" \
        "$(jq -r '[.results[] | select(.phase != "prepare")][0] | "\(.mib_s) MiB/s \(.ops_s) ops/s p99 \(.latency_us.p99)us errors \(.errors)"' "$OUT/runs/$id.json" 2>/dev/null || echo "no result (exit $rc)")"
}

# matrix TARGET URL PID POLICY CORES: every op × size × concurrency × repeat.
matrix() {
    local op size conc rep
    for op in $OPS; do
        for size in $SIZES; do
            for conc in $CONCURRENCY; do
                for ((rep = 1; rep <= REPEAT; rep++)); do
                    run_cell "$@" "$op" "$size" "$conc" "$rep"
                done
            done
        done
    done
}

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "cores=$(nproc)"
    echo "kernel=$(uname -r)"
    echo "gateway_bin=$TESSERA_BIN"
    echo "memory_gib=$(awk '/^MemTotal:/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    mkdir -p "$BENCH_STATE"
    echo "state_fs=$(findmnt -no FSTYPE,SOURCE -T "$BENCH_STATE" | tr -s ' ' ' ') journal=$(
        dev=$(findmnt -no SOURCE -T "$BENCH_STATE")
        dumpe2fs -h "$dev" 2>/dev/null | grep -q '^Filesystem features:.*has_journal' && echo yes || echo no)"
    echo "site_kind=$SITE_KIND baseline=$BASELINE_KIND sites=$SITES fsync=$FSYNC etag=$ETAG mode=$MODE duration=$DURATION repeat=$REPEAT"
} >"$OUT/machine.txt"

for target in $TARGETS; do
    case "$target" in
    gateway)
        for policy in $POLICIES; do
            for cores in $CORES; do
                bash "$CLUSTER" gateway --policy "$policy" --cores "$cores" --sites "$SITES" \
                    --site-kind "$SITE_KIND" --fsync "$FSYNC" --etag "$ETAG"
                eval "$(bash "$CLUSTER" env)"
                "$BENCH" put --endpoint "$BENCH_GATEWAY_URL" --setup --objects 1 --size 1 --quiet >/dev/null
                for key in "${!PREPARED[@]}"; do [[ $key == gateway-* ]] && unset "PREPARED[$key]"; done
                matrix gateway "$BENCH_GATEWAY_URL" "$BENCH_GATEWAY_PID" "$policy" "$cores"
                bash "$CLUSTER" stop gateway
            done
        done
        ;;
    baseline)
        bash "$CLUSTER" baseline --kind "$BASELINE_KIND"
        eval "$(bash "$CLUSTER" env)"
        "$BENCH" put --endpoint "$BENCH_BASELINE_URL" --setup --objects 1 --size 1 --quiet >/dev/null
        matrix baseline "$BENCH_BASELINE_URL" "$BENCH_BASELINE_PID" "-" "-"
        bash "$CLUSTER" stop baseline
        ;;
    noop)
        # The no-op server answers every GET with one fixed size: restart it per size.
        for size in $SIZES; do
            bash "$CLUSTER" noop --object-size "$size"
            eval "$(bash "$CLUSTER" env)"
            SIZES_SAVED=$SIZES
            SIZES=$size
            matrix noop "$BENCH_NOOP_URL" "$BENCH_NOOP_PID" "-" "-"
            SIZES=$SIZES_SAVED
            bash "$CLUSTER" stop noop
        done
        ;;
    *) echo "bench-matrix: unknown target $target" >&2; exit 2 ;;
    esac
done
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

python3 perf-scripts/bench-report.py "$OUT"
if [ "$PUBLISH" = 1 ]; then
    mkdir -p bench/plots
    cp "$OUT/RESULTS.md" bench/RESULTS.md
    cp "$OUT"/*.png bench/plots/ 2>/dev/null || true
    echo "published bench/RESULTS.md and bench/plots/"
fi
echo "results in $OUT (runs/, RESULTS.md)"
cd "$ROOT"
