#!/usr/bin/env bash
# A/B of gateway binaries: runs the same tessera-bench step against each binary in turn,
# alternating A B A B … so that drift on a noisy machine hits both alike, and prints one line
# per run (progress) and a table of medians (min–max): MiB/s, the gateway's CPU seconds per
# GiB (utime + stime of the gateway process from /proc), the kernel threads' CPU seconds per
# GiB (work the gateway causes outside its own threads), its peak RSS and the requests' p50
# and p99 latency.
#
#   perf-scripts/bench-ab.sh [--op put|get] [--size 64MiB] [--concurrency 16] [--duration 8s]
#       [--reps 5] [--cores 2] [--sites 3] [--policy ec:2+1] [--etag fast|md5]
#       [--fsync always|never] [--mode unsigned|signed|chunked-crc32|chunked-signed]
#       [--objects 16] [--state DIR] [--cold] BINARY...
#
# GET runs read every object once, unmeasured, before the measured run, so that they measure
# reads from a warm page cache; --cold skips that. The shards are written with O_DIRECT and
# are not in the page cache after the PUTs, and on a VM whose free memory goes back to the
# host (virtio-balloon free page reporting) the first touch of each page-cache page costs a
# host page fault: a first read of 2 GiB here cost 4.8 CPU-s in the kernel's copy against
# 0.07 s per GiB for the next ones.
#
# Build each binary first, e.g. `git stash; cargo build --release --bin tessera;
# cp target/release/tessera /tmp/tessera-a`. The sites live under --state (default
# /tmp/tessera-bench-ab; use a journaled filesystem, see journaled-fs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

OP=put SIZE=64MiB CONC=16 DURATION=8s REPS=5 CORES=2 SITES=3 POLICY=ec:2+1 ETAG=fast
FSYNC=always MODE=unsigned OBJECTS=16 STATE=/tmp/tessera-bench-ab WARM=1
while [ $# -gt 0 ]; do
    case "$1" in
    --op) OP=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --cores) CORES=$2; shift 2 ;;
    --sites) SITES=$2; shift 2 ;;
    --policy) POLICY=$2; shift 2 ;;
    --etag) ETAG=$2; shift 2 ;;
    --fsync) FSYNC=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --objects) OBJECTS=$2; shift 2 ;;
    --state) STATE=$2; shift 2 ;;
    --cold) WARM=0; shift ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) echo "bench-ab: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "bench-ab: name at least one gateway binary" >&2; exit 2; }
for bin in "$@"; do [ -x "$bin" ] || { echo "bench-ab: $bin is not an executable" >&2; exit 2; }; done
command -v jq >/dev/null || { echo "bench-ab: needs jq" >&2; exit 1; }

BENCH="${TESSERA_BENCH_BIN:-target/release/tessera-bench}"
[ -x "$BENCH" ] || cargo build --release -p tessera-bench
CLUSTER=perf-scripts/bench-cluster.sh
export BENCH_STATE="$STATE"
results=$(mktemp)
trap 'bash "$CLUSTER" stop all >/dev/null 2>&1 || true; rm -f "$results"' EXIT

cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# CPU ticks of all kernel threads (children of kthreadd: kworkers, jbd2, the loop device's
# workers, ksoftirqd): work the gateway causes but that is not counted as its own, such as
# ext4 converting unwritten extents after direct writes or journal commits. A lower bound:
# a kernel worker that exits during the run takes its ticks with it.
kthread_ticks() {
    cat /proc/[0-9]*/stat 2>/dev/null | sed 's/^.*) //' | awk '$2 == 2 { t += $12 + $13 } END { print t + 0 }'
}
# Uploads per MD5 batch so far (how full the lanes ran), from the admin listener (the URL's
# port + 1, see bench-cluster.sh); "-" for binaries without the counters or without MD5 work.
md5_jobs_per_batch() {
    local admin="${1%:*}:$((${1##*:} + 1))"
    curl -s "$admin/metrics" 2>/dev/null | awk '/^tessera_md5_batches_total/ { b += $2 }
        /^tessera_md5_jobs_total/ { j += $2 }
        END { if (b > 0) printf "%.2f", j / b; else printf "-" }'
}
clk_tck=$(getconf CLK_TCK)

echo "bench-ab: $OP $SIZE c=$CONC $DURATION × $REPS, --cores $CORES, $SITES dir sites $POLICY, etag $ETAG, fsync $FSYNC, $MODE$([ "$OP" = get ] && [ "$WARM" = 0 ] && echo ", cold")"
for ((rep = 1; rep <= REPS; rep++)); do
    for bin in "$@"; do
        bash "$CLUSTER" stop all >/dev/null 2>&1 || true
        TESSERA_BIN="$bin" bash "$CLUSTER" gateway --policy "$POLICY" --cores "$CORES" \
            --sites "$SITES" --fsync "$FSYNC" --etag "$ETAG" >/dev/null
        eval "$(bash "$CLUSTER" env)"
        export AWS_ACCESS_KEY_ID=$BENCH_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$BENCH_SECRET_KEY
        url=$BENCH_GATEWAY_URL pid=$BENCH_GATEWAY_PID
        "$BENCH" put --endpoint "$url" --setup --objects 1 --size 1 --quiet >/dev/null
        if [ "$OP" = get ]; then
            "$BENCH" put --endpoint "$url" --objects "$OBJECTS" --size "$SIZE" -c 4 --prefix ab- \
                --quiet >/dev/null
            if [ "$WARM" = 1 ]; then
                "$BENCH" get --endpoint "$url" --no-prepare --objects "$OBJECTS" --size "$SIZE" \
                    -c 4 --prefix ab- --quiet >/dev/null
            fi
        fi
        echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
        t0=$(cpu_ticks "$pid") k0=$(kthread_ticks)
        json=$("$BENCH" "$OP" --endpoint "$url" --no-prepare --objects "$OBJECTS" --size "$SIZE" \
            -c "$CONC" --duration "$DURATION" --prefix ab- --mode "$MODE" --json --quiet || true)
        t1=$(cpu_ticks "$pid") k1=$(kthread_ticks)
        rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
        md5=$(md5_jobs_per_batch "$url")
        line=$(jq -r --argjson ticks "$((t1 - t0))" --argjson kticks "$((k1 > k0 ? k1 - k0 : 0))" \
            --argjson hz "$clk_tck" --argjson rss "$rss" \
            --arg bin "$bin" '[.results[] | select(.phase != "prepare")][0] |
            (.bytes / 1073741824) as $gib |
            "\($bin) \(.mib_s) \(if .bytes > 0 then ($ticks / $hz) / $gib else 0 end) \($rss / 1024) \(.errors) \(.latency_us.p50 / 1000) \(.latency_us.p99 / 1000) \(if .bytes > 0 then ($kticks / $hz) / $gib else 0 end)"' \
            <<<"$json")
        echo "$line" >>"$results"
        read -r b mibs cpu rss_mib errors p50 p99 kcpu <<<"$line"
        printf 'run %d/%d %-28s %8.1f MiB/s %6.3f CPU-s/GiB (kthreads %.3f) %5.0f MiB RSS p50 %.1f ms p99 %.1f ms errors %s MD5 jobs/batch %s\n' \
            "$rep" "$REPS" "$b" "$mibs" "$cpu" "$kcpu" "$rss_mib" "$p50" "$p99" "$errors" "$md5"
    done
done

echo
echo "| binary | MiB/s | gateway CPU-s/GiB | kernel threads CPU-s/GiB | peak RSS MiB | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|---|"
for bin in "$@"; do
    awk -v bin="$bin" '
        function median(a, n) { return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }
        $1 == bin { n++; m[n] = $2; c[n] = $3; r[n] = $4; e += $5; p[n] = $6; q[n] = $7; k[n] = $8 }
        END {
            sort(m, n); sort(c, n); sort(r, n); sort(p, n); sort(q, n); sort(k, n)
            printf "| %s | %.0f (%.0f–%.0f) | %.3f (%.3f–%.3f) | %.3f (%.3f–%.3f) | %.0f (%.0f–%.0f) | %.1f | %.1f | %d |\n",
                bin, median(m, n), m[1], m[n], median(c, n), c[1], c[n], median(k, n), k[1], k[n],
                median(r, n), r[1], r[n], median(p, n), median(q, n), e
        }' "$results"
done
