#!/usr/bin/env bash
# Starts, stops and describes a real Ceph radosgw (16.2, Debian packages) on loopback, for the
# `s3` site tests and benchmarks: one monitor, one in-memory (memstore) OSD and radosgw with a
# plain HTTP endpoint and a TLS endpoint whose certificate is signed by a throw-away CA that this
# script creates. radosgw checks SigV4 strictly, so it proves that the site client signs right.
#
#   radosgw.sh start   fetch the packages once (no system install), start the cluster, create
#                      the test user; prints the `env` lines when ready (~20 s)
#   radosgw.sh env     prints `export TESSERA_RGW_*=...` lines for the tests (eval "$(... env)")
#   radosgw.sh stop    stops what `start` started, by PID, and deletes the state folder
#
# Everything listens on 127.0.0.1. Ports and folders can be moved with the variables below so
# that several copies (one per engineer or CI job) can run side by side.
set -euo pipefail

ROOT="${TESSERA_RGW_PKG_ROOT:-$HOME/.cache/tessera/radosgw-root}"   # unpacked .debs
STATE="${TESSERA_RGW_STATE:-/tmp/tessera-radosgw}"                  # config, keys, logs, pids
HTTP_PORT="${TESSERA_RGW_HTTP_PORT:-17480}"
TLS_PORT="${TESSERA_RGW_TLS_PORT:-17443}"
MON_PORT="${TESSERA_RGW_MON_PORT:-17789}"
MS_PORT_MIN="${TESSERA_RGW_MS_PORT_MIN:-17800}"
MS_PORT_MAX="${TESSERA_RGW_MS_PORT_MAX:-17830}"
ACCESS_KEY="${TESSERA_RGW_ACCESS_KEY:-TESSERAACCESSKEY0001}"
SECRET_KEY="${TESSERA_RGW_SECRET_KEY:-tesserasecretkey0000000000000000000000001}"
MEMSTORE_BYTES="${TESSERA_RGW_MEMSTORE_BYTES:-4294967296}"

env_lines() {
    cat <<EOF
export TESSERA_RGW_ENDPOINT=http://127.0.0.1:$HTTP_PORT
export TESSERA_RGW_TLS_ENDPOINT=https://127.0.0.1:$TLS_PORT
export TESSERA_RGW_CA_FILE=$STATE/tls/ca.pem
export TESSERA_RGW_ACCESS_KEY=$ACCESS_KEY
export TESSERA_RGW_SECRET_KEY=$SECRET_KEY
export TESSERA_RGW_REGION=us-east-1
EOF
}

fetch() {
    if [ -x "$ROOT/usr/bin/radosgw" ]; then return; fi
    local debs="$ROOT.debs"
    mkdir -p "$debs/partial" "$ROOT"
    apt-get install -y --download-only --no-install-recommends \
        -o Dir::Cache::archives="$debs" radosgw ceph-mon ceph-osd ceph-common >/dev/null
    (cd "$debs" && apt-get download libfuse2 >/dev/null)
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$ROOT"; done
}

wait_port() { # port seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 did not open within $2 s" >&2
    return 1
}

make_tls() {
    local dir="$STATE/tls"
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tessera test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
        >"$dir/ext.cnf"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
}

start() {
    fetch
    if [ -f "$STATE/pids" ]; then
        echo "already running (state in $STATE); run stop first" >&2
        exit 1
    fi
    rm -rf "$STATE"
    mkdir -p "$STATE"/{run,log,mon,osd}
    make_tls
    export LD_LIBRARY_PATH="$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/usr/lib/x86_64-linux-gnu/ceph:$ROOT/lib/x86_64-linux-gnu"
    export PYTHONPATH="$ROOT/usr/lib/python3/dist-packages"
    export PATH="$ROOT/usr/bin:$ROOT/usr/sbin:$PATH"
    local fsid conf="$STATE/ceph.conf" osd_uuid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
ms bind port min = $MS_PORT_MIN
ms bind port max = $MS_PORT_MAX
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms mon service mode = crc secure
ms service mode = crc secure
ms cluster mode = crc secure
run dir = $STATE/run
admin socket = $STATE/run/\$name.asok
log file = $STATE/log/\$name.log
pid file = $STATE/run/\$name.pid
plugin dir = $ROOT/usr/lib/x86_64-linux-gnu/ceph
erasure code dir = $ROOT/usr/lib/x86_64-linux-gnu/ceph/erasure-code
osd class dir = $ROOT/usr/lib/x86_64-linux-gnu/rados-classes
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
keyring = $STATE/keyring
[mon]
mon data = $STATE/mon/\$cluster-\$id
[osd]
osd data = $STATE/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd max object size = 134217728
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$HTTP_PORT tcp_nodelay=1 ssl_endpoint=127.0.0.1:$TLS_PORT ssl_certificate=$STATE/tls/server.pem ssl_private_key=$STATE/tls/server.key
rgw dns name = localhost
EOF
    local k="$STATE/keyring"
    ceph-authtool --create-keyring "$k" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool "$k" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
        --cap mgr 'allow *' >/dev/null
    monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$fsid" "$STATE/monmap" >/dev/null
    mkdir -p "$STATE/mon/ceph-a" "$STATE/osd/ceph-0"
    ceph-mon -c "$conf" --mkfs -i a --monmap "$STATE/monmap" --keyring "$k"
    ceph-mon -c "$conf" -i a
    ceph -c "$conf" osd new "$osd_uuid" >/dev/null
    ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>/dev/null
    ceph-osd -c "$conf" -i 0 2>/dev/null
    local i
    for ((i = 0; i < 300; i++)); do
        if ceph -c "$conf" osd stat 2>/dev/null | grep -q '1 up'; then break; fi
        sleep 0.2
    done
    radosgw -c "$conf" -n client.rgw
    wait_port "$HTTP_PORT" 60
    wait_port "$TLS_PORT" 10
    radosgw-admin -c "$conf" user create --uid=test --display-name=test \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
    cat "$STATE"/run/*.pid >"$STATE/pids"
    env_lines
}

stop() {
    if [ ! -f "$STATE/pids" ]; then
        # A start that failed half-way leaves pid files but no list.
        cat "$STATE"/run/*.pid >"$STATE/pids" 2>/dev/null || true
    fi
    local pid
    # Stop radosgw first, then the OSD, then the monitor; each by the PID it recorded.
    for name in client.rgw osd.0 mon.a; do
        if [ -f "$STATE/run/$name.pid" ]; then
            pid=$(cat "$STATE/run/$name.pid")
            kill "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$STATE"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env) env_lines ;;
*)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
