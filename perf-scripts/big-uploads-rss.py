#!/usr/bin/env python3
"""Peak RSS of a gateway under many concurrent large uploads.

Each of N workers uploads objects of SIZE bytes (a plain PUT, UNSIGNED-PAYLOAD, the body
streamed from one reused buffer), checks the 200, deletes the object and starts again, ROUNDS
times. Worker i first uploads one shorter object of SIZE × i / N, so that the workers' full-size
uploads are out of phase: all N full-size uploads are in flight at once for most of the run,
while the bytes held by unfinished uploads stay near N × SIZE / 2 (deleted objects' shards are
purged by the gateway), so 64 × 1 GiB uploads fit a disk with ~60 GiB free. Every second it
prints progress: full-size uploads in flight, finished, MiB/s, the gateway's RSS and peak RSS
(VmRSS / VmHWM of --pid). Exits non-zero if any request failed.

    big-uploads-rss.py --endpoint http://127.0.0.1:9700 --pid PID [--uploads 64]
        [--size-mib 1024] [--rounds 3] [--bucket tessera-bench]

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

import argparse
import os
import socket
import sys
import threading
import time
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials

BLOCK = memoryview(bytes(range(256)) * 4096)  # 1 MiB


def signed_head(endpoint, method, path, extra):
    """A SigV4-signed request head (UNSIGNED-PAYLOAD) as bytes."""
    url = urllib.parse.urlsplit(endpoint)
    request = botocore.awsrequest.AWSRequest(method=method, url=endpoint + path, headers=extra)
    request.context["payload_signing_enabled"] = False
    credentials = botocore.credentials.Credentials(os.environ["AWS_ACCESS_KEY_ID"],
                                                   os.environ["AWS_SECRET_ACCESS_KEY"])

    class Auth(botocore.auth.S3SigV4Auth):
        def payload(self, request):
            return "UNSIGNED-PAYLOAD"

    Auth(credentials, "s3", os.environ.get("AWS_REGION", "us-east-1")).add_auth(request)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {url.netloc}"]
    for name, value in request.prepare().headers.items():
        if name.lower() != "host":
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock):
    """(status, body) of one Content-Length-framed response."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("connection closed before the response head")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("connection closed inside the response body")
        body += more
    return status, body


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = 0
        self.in_flight_max = 0
        self.finished = 0
        self.bytes = 0
        self.errors = []


def worker(args, index, state):
    url = urllib.parse.urlsplit(args.endpoint)
    full = args.size_mib << 20
    sizes = [full * index // args.uploads] + [full] * args.rounds
    for round_, size in enumerate(sizes):
        if size == 0:
            continue
        counted = size == full
        path = f"/{args.bucket}/rss/{index}-{round_}"
        try:
            with socket.create_connection((url.hostname, url.port), timeout=600) as sock:
                head = signed_head(args.endpoint, "PUT", path,
                                   {"Content-Length": str(size)})
                if counted:
                    with state.lock:
                        state.in_flight += 1
                        state.in_flight_max = max(state.in_flight_max, state.in_flight)
                try:
                    sock.sendall(head)
                    left = size
                    while left:
                        step = min(left, len(BLOCK))
                        sock.sendall(BLOCK[:step])
                        left -= step
                        with state.lock:
                            state.bytes += step
                    status, body = read_response(sock)
                finally:
                    if counted:
                        with state.lock:
                            state.in_flight -= 1
                if status != 200:
                    raise RuntimeError(f"PUT {path}: {status} {body[:200]!r}")
                sock.sendall(signed_head(args.endpoint, "DELETE", path, {}))
                status, body = read_response(sock)
                if status != 204:
                    raise RuntimeError(f"DELETE {path}: {status} {body[:200]!r}")
            if counted:
                with state.lock:
                    state.finished += 1
        except Exception as err:  # reported at the end; the run goes on
            with state.lock:
                state.errors.append(f"worker {index}: {err}")
            return


def ensure_bucket(args):
    """Creates the bucket unless it exists (200, or 409 BucketAlreadyOwnedByYou)."""
    url = urllib.parse.urlsplit(args.endpoint)
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(signed_head(args.endpoint, "PUT", f"/{args.bucket}", {"Content-Length": "0"}))
        status, body = read_response(sock)
    if status not in (200, 409):
        raise SystemExit(f"creating bucket {args.bucket}: {status} {body[:200]!r}")


def memory_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--uploads", type=int, default=64)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bucket", default="tessera-bench")
    args = parser.parse_args()

    ensure_bucket(args)
    state = State()
    threads = [threading.Thread(target=worker, args=(args, i, state), daemon=True)
               for i in range(args.uploads)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    rss_max = 0
    with_all_in_flight = 0.0
    last_bytes, last_t = 0, started
    while any(thread.is_alive() for thread in threads):
        time.sleep(1)
        now = time.monotonic()
        rss = memory_kib(args.pid, "VmRSS")
        hwm = memory_kib(args.pid, "VmHWM")
        rss_max = max(rss_max, rss)
        with state.lock:
            in_flight, finished, moved = state.in_flight, state.finished, state.bytes
        if in_flight == args.uploads:
            with_all_in_flight += now - last_t
        rate = (moved - last_bytes) / (now - last_t) / 2**20
        last_bytes, last_t = moved, now
        print(f"[{now - started:6.0f} s] in flight {in_flight:3d}  finished "
              f"{finished:4d}/{args.uploads * args.rounds}  {rate:7.0f} MiB/s  "
              f"RSS {rss / 1024:6.0f} MiB  peak {hwm / 1024:6.0f} MiB", file=sys.stderr, flush=True)
    hwm = memory_kib(args.pid, "VmHWM")
    print(f"uploads {args.uploads} × {args.size_mib} MiB × {args.rounds} rounds: "
          f"finished {state.finished} full-size, most in flight at once {state.in_flight_max}, "
          f"{with_all_in_flight:.0f} s with all {args.uploads} in flight, "
          f"{state.bytes / 2**30:.1f} GiB sent in {time.monotonic() - started:.0f} s; "
          f"gateway peak RSS (VmHWM) {hwm / 1024:.0f} MiB, largest sampled RSS {rss_max / 1024:.0f} MiB")
    for err in state.errors:
        print(err, file=sys.stderr)
    return 1 if state.errors else 0


if __name__ == "__main__":
    sys.exit(main())
