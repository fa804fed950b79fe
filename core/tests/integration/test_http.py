"""HTTP/1.1 behaviour of the front door, driven over raw sockets against the real binary."""

import os
import re
import signal
import socket
import stat
import subprocess
import time

from conftest import Gateway, binary


def send_raw(gw, data, read_timeout=5.0):
    """Sends raw bytes and reads until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=read_timeout) as s:
        s.sendall(data)
        chunks = []
        s.settimeout(1.0)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            pass
        return b"".join(chunks)


def statuses(raw):
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def test_pipelined_requests_answered_in_order(gateway):
    """Three pipelined requests in one write get three responses, in order, with distinct ids."""
    raw = send_raw(gateway, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert len(statuses(raw)) == 3, raw
    resources = re.findall(rb"<Resource>([^<]*)</Resource>", raw)
    assert resources == [b"/a", b"/c"], raw  # HEAD carries no body
    ids = re.findall(rb"x-amz-request-id: (\w+)", raw)
    assert len(set(ids)) == 3


def test_malformed_request_gets_400_xml_and_close(gateway):
    """A request line that is not HTTP gets 400 with an S3 XML body, then the connection closes."""
    raw = send_raw(gateway, b"NOT HTTP AT ALL\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    assert statuses(raw) == [400], raw
    assert b"<Error><Code>" in raw and b"Connection: close" in raw


def test_oversized_head_gets_431(gateway):
    """A head larger than header_bytes_max is refused with 431 and the connection closes."""
    raw = send_raw(gateway, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert statuses(raw) == [431], raw[:200]


def test_conflicting_framing_gets_400(gateway):
    """Content-Length together with Transfer-Encoding is a request-smuggling vector: 400."""
    raw = send_raw(gateway, b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert statuses(raw) == [400], raw


def test_uri_too_long_gets_414(gateway):
    raw = send_raw(gateway, b"GET /" + b"k" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(raw) == [414], raw[:200]


def test_garbage_never_kills_the_server(gateway):
    """Random bytes on many connections never crash the process; it still answers after."""
    import random
    rng = random.Random(7)
    for _ in range(50):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        try:
            send_raw(gateway, junk, read_timeout=0.5)
        except OSError:
            pass
    assert gateway.proc.poll() is None
    assert statuses(send_raw(gateway, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) != []


def test_sigterm_drains_and_exits_zero():
    """SIGTERM stops accepting, lets the open connection finish, and exits 0."""
    gw = Gateway()
    try:
        s = socket.create_connection(("127.0.0.1", gw.port))
        s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"HTTP/1.1" in s.recv(4096)
        gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        try:
            new = socket.create_connection(("127.0.0.1", gw.port), timeout=1)
            new.sendall(b"GET / HTTP/1.1\r\n\r\n")
            refused = new.recv(100) == b""
        except OSError:
            refused = True
        assert refused, "a new connection was served after SIGTERM"
        s.close()
        assert gw.proc.wait(timeout=15) == 0, gw.logs()
    finally:
        gw.cleanup()


def test_generated_credentials_are_private_and_stable(tmp_path):
    """With no credentials anywhere, a pair is generated, printed once, stored 0600, and reused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    data = tmp_path / "data"
    def start():
        p = subprocess.Popen([binary(), "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0",
                              "--admin-listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=env)
        time.sleep(1.0)
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=15)
        assert p.returncode == 0, out
        return out.decode()
    first = start()
    keys = re.findall(r"access key: (\S+)", first)
    assert len(keys) == 1, first
    mode = stat.S_IMODE((data / "credentials.toml").stat().st_mode)
    assert mode == 0o600
    assert keys[0] in (data / "credentials.toml").read_text()
    second = start()
    assert "access key:" not in second and "credentials stored in" in second


def test_bad_flag_and_bad_config_exit_nonzero(tmp_path):
    """A bad flag or config key is named in the error and the process exits non-zero."""
    r = subprocess.run([binary(), "serve", "--bogus"], capture_output=True, text=True)
    assert r.returncode != 0 and "--bogus" in r.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server]\nlisten = \"127.0.0.1:1\"\nfrobnicate = 3\n")
    r = subprocess.run([binary(), "serve", "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0 and "frobnicate" in r.stderr


def signed_raw(gw, method, path, body=b"", headers=None, payload_hash=None):
    """The raw bytes of a SigV4-signed request (payload hash over `body`, or `payload_hash`,
    such as `STREAMING-UNSIGNED-PAYLOAD-TRAILER`)."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    from conftest import ACCESS_KEY, SECRET_KEY

    class Auth(botocore.auth.S3SigV4Auth):
        def payload(self, request):
            return payload_hash or super().payload(request)

    request = botocore.awsrequest.AWSRequest(method=method, url=gw.endpoint + path, data=body,
                                             headers=headers or {})
    Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), "s3",
         "us-east-1").add_auth(request)
    prepared = request.prepare()
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
    for name, value in prepared.headers.items():
        if name.lower() != "host":
            head += f"{name}: {value}\r\n"
    if method == "PUT":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def read_responses(sock, count, timeout=30.0):
    """Reads `count` Content-Length-framed responses; returns (status, headers, body) each."""
    sock.settimeout(timeout)
    buf = b""
    out = []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(1 << 20)
            assert chunk, f"connection closed after {len(out)} responses: {buf[:300]!r}"
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v for k, v in (l.split(": ", 1) for l in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(buf) < length:
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed inside a response body"
            buf += chunk
        out.append((int(lines[0].split()[1]), headers, buf[:length]))
        buf = buf[length:]
    return out


def test_pipelined_large_put_then_get_reads_the_body_to_its_end_only(gateway):
    """A multi-MiB PUT body (read from the socket straight into stripe buffers) followed in
    the same write by a GET of the same key: the PUT takes exactly its Content-Length bytes,
    the pipelined GET is answered next on the same connection with the stored bytes."""
    gateway.client().create_bucket(Bucket="pipe")
    body = os.urandom(3 * (1 << 20) + 12345)
    put = signed_raw(gateway, "PUT", "/pipe/big", body)
    get = signed_raw(gateway, "GET", "/pipe/big")
    with socket.create_connection(("127.0.0.1", gateway.port)) as s:
        s.sendall(put + get)
        (put_status, _, put_body), (get_status, get_headers, got) = read_responses(s, 2)
    assert put_status == 200, put_body
    assert get_status == 200 and int(get_headers["content-length"]) == len(body)
    assert got == body


def test_put_body_in_slow_pieces_is_stored_whole(gateway):
    """A body that trickles in (pieces with pauses, so most of it arrives after the head was
    read) is stored byte for byte."""
    gateway.client().create_bucket(Bucket="slow")
    body = os.urandom(2 * (1 << 20) + 7)
    put = signed_raw(gateway, "PUT", "/slow/k", body)
    split = len(put) - len(body)
    with socket.create_connection(("127.0.0.1", gateway.port)) as s:
        s.sendall(put[:split + 1000])
        for at in range(split + 1000, len(put), 300_001):
            time.sleep(0.05)
            s.sendall(put[at:at + 300_001])
        [(status, _, answer)] = read_responses(s, 1)
    assert status == 200, answer
    got = gateway.client().get_object(Bucket="slow", Key="k")["Body"].read()
    assert got == body


def test_a_put_body_that_stalls_times_out_and_stores_nothing():
    """A client that sends half a multi-MiB body and stops gets IncompleteBody (or a closed
    connection) after body_read_timeout_ms; nothing is stored and the gateway keeps serving."""
    gw = Gateway(config_text="[limits]\nbody_read_timeout_ms = 1000\n")
    try:
        gw.client().create_bucket(Bucket="stall")
        body = os.urandom(4 << 20)
        put = signed_raw(gw, "PUT", "/stall/k", body)
        with socket.create_connection(("127.0.0.1", gw.port)) as s:
            s.sendall(put[:len(put) - len(body) // 2])
            s.settimeout(15)
            started = time.time()
            raw = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    raw += chunk
            except (socket.timeout, ConnectionResetError):
                pass
            assert time.time() - started < 10
        assert raw == b"" or statuses(raw)[0] == 400, raw[:300]
        listed = gw.client().list_objects_v2(Bucket="stall").get("Contents", [])
        assert listed == []
    finally:
        assert gw.stop() == 0, gw.logs()
        gw.tmp.cleanup()


def test_a_slow_reader_gets_every_byte_of_a_large_object(gateway):
    """A GET body goes out as vectored writes over the chunks of several shards; a client that
    reads slowly through a small receive buffer makes the kernel take them in small partial
    writes, and every byte still arrives in order."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="slowread")
    body = os.urandom(9 * (1 << 20) + 4321)
    s3.put_object(Bucket="slowread", Key="k", Body=body)
    get = signed_raw(gateway, "GET", "/slowread/k")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", gateway.port))
        s.sendall(get)
        s.settimeout(30)
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += s.recv(4096)
        head, got = raw.split(b"\r\n\r\n", 1)
        assert b" 200 " in head.split(b"\r\n")[0], head
        reads = 0
        while len(got) < len(body):
            chunk = s.recv(7000)
            assert chunk, f"closed after {len(got)} of {len(body)} bytes"
            got += chunk
            reads += 1
            if reads % 200 == 0:
                time.sleep(0.01)
    assert got == body


def aws_chunked(pieces, trailer_crc=None):
    """An aws-chunked body of `pieces` with an `x-amz-checksum-crc32` trailer (the CRC of
    their bytes unless `trailer_crc` is given)."""
    import base64
    import zlib
    data = b"".join(pieces)
    crc = zlib.crc32(data) if trailer_crc is None else trailer_crc
    body = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in pieces)
    body += b"0\r\nx-amz-checksum-crc32:" + base64.b64encode(crc.to_bytes(4, "big")) + b"\r\n\r\n"
    return data, body


def put_aws_chunked(gateway, path, data, body, split_every=None):
    """PUTs an aws-chunked `body` (decoding to `data`) over a raw socket, optionally in
    segments of `split_every` bytes with pauses, so that chunk headers arrive cut in two."""
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Trailer": "x-amz-checksum-crc32",
    }
    raw = signed_raw(gateway, "PUT", path, body, headers,
                     payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if split_every is None:
            s.sendall(raw)
        else:
            for at in range(0, len(raw), split_every):
                s.sendall(raw[at:at + split_every])
                time.sleep(0.002)
        return read_responses(s, 1)[0]


def test_aws_chunked_bodies_of_many_chunks_store_exact_bytes(gateway):
    """Between aws-chunked chunks the gateway reads only a little past the framing and takes
    the next chunk's data straight into its stripe buffers: chunks of every size, headers cut
    across reads, and a wrong trailer CRC (rejected, nothing stored) all behave."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="awschunked")
    rnd = os.urandom((3 << 20) + 4096)
    sizes = [1, 100, 255, 256, 257, 65536, 65536, 200_000, 7] + [65536] * 40 + [12_345]
    pieces, at = [], 0
    for size in sizes:
        pieces.append(rnd[at:at + size])
        at += size
    data, body = aws_chunked(pieces)
    status, _, reply = put_aws_chunked(gateway, "/awschunked/whole", data, body)
    assert status == 200, reply
    assert s3.get_object(Bucket="awschunked", Key="whole")["Body"].read() == data
    small = [rnd[:300], rnd[300:301], rnd[301:70_000], rnd[70_000:70_090]]
    data, body = aws_chunked(small)
    status, _, reply = put_aws_chunked(gateway, "/awschunked/cut", data, body, split_every=61)
    assert status == 200, reply
    assert s3.get_object(Bucket="awschunked", Key="cut")["Body"].read() == data
    data, body = aws_chunked(pieces[:20], trailer_crc=12345)
    status, _, reply = put_aws_chunked(gateway, "/awschunked/bad", data, body)
    assert status == 400 and b"BadDigest" in reply, (status, reply)
    names = [o["Key"] for o in s3.list_objects_v2(Bucket="awschunked").get("Contents", [])]
    assert names == ["cut", "whole"]


def admin_get(gw, path):
    with socket.create_connection(("127.0.0.1", gw.admin_port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        [(status, _, body)] = read_responses(s, 1)
    return status, body.decode()


def metric_sum(text, name):
    values = re.findall(rf"^{name}\{{core=\"\d+\"\}} (\d+)$", text, re.M)
    assert values, f"{name} missing from:\n{text}"
    return sum(int(v) for v in values)


def test_admin_health_and_metrics_count_requests_bytes_and_md5_lanes(gateway):
    """The admin listener answers /health, and /metrics counts the requests, body bytes and
    the MD5 ETag work of uploads (every stripe of an MD5-ETag upload is one job of a batch)."""
    status, body = admin_get(gateway, "/health")
    assert status == 200, body
    client = gateway.client()
    client.create_bucket(Bucket="metered")
    sizes = [3 * (1 << 20) + 1, 5 * (1 << 20), 1]
    for i, size in enumerate(sizes):
        client.put_object(Bucket="metered", Key=f"k{i}", Body=os.urandom(size))
    status, text = admin_get(gateway, "/metrics")
    assert status == 200, text
    assert metric_sum(text, "tessera_requests_total") >= 1 + len(sizes)
    assert metric_sum(text, "tessera_body_bytes_in_total") >= sum(sizes)
    batches = metric_sum(text, "tessera_md5_batches_total")
    jobs = metric_sum(text, "tessera_md5_jobs_total")
    # One job per stripe (2 MiB of data at ec 2+1 with 1 MiB chunks): 2 + 3 + 1 stripes.
    assert jobs == 6, text
    assert 1 <= batches <= jobs, text
    metric_sum(text, "tessera_md5_chunks_in_lanes_total")


def misaligned_memmove_slowdown():
    """How many times slower glibc's memmove (the one the gateway's memcpy is) copies 16 KiB
    with the destination 5 bytes past a page-aligned source (modulo the page size) than with
    both page-aligned, measured from this process through ctypes: an independent check of the
    gateway's own measurement."""
    import ctypes
    size = 16384
    src = ctypes.create_string_buffer(size + 4096)
    dst = ctypes.create_string_buffer(size + 4096 + 64)

    def aligned(buf):
        address = ctypes.addressof(buf)
        return address + (-address % 4096)

    s, d = aligned(src), aligned(dst)

    def best(offset):
        times = []
        for _ in range(30):
            start = time.perf_counter_ns()
            for _ in range(32):
                ctypes.memmove(d + offset, s, size)
            times.append(time.perf_counter_ns() - start)
        return min(times)

    return best(5) / best(0)


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [entry.split(b"=", 1) for entry in f.read().split(b"\0") if b"=" in entry]
    return {k.decode(): v.decode() for k, v in pairs}


def test_memcpy_leaves_rep_movsb_where_this_cpu_copies_misaligned_slowly():
    """Where glibc's memmove is much slower for misaligned copies (AMD Zen: `rep movsb`), the
    gateway re-executes itself with the tunable that keeps memcpy off it, under the same PID;
    where it is not, it runs as started. An operator's own setting of the tunable is kept."""
    slowdown = misaligned_memmove_slowdown()
    ours = "glibc.cpu.x86_rep_movsb_threshold=4294967295"
    gw = Gateway(env={"GLIBC_TUNABLES": ""})
    try:
        tunables = environ_of(gw.proc.pid).get("GLIBC_TUNABLES")
        restarted = "restarting with GLIBC_TUNABLES" in gw.logs()
        if slowdown > 5:
            assert tunables == ours and restarted, (slowdown, tunables, gw.logs())
        elif slowdown < 2:
            assert tunables == "" and not restarted, (slowdown, tunables, gw.logs())
        # In between, the two measurements may disagree; only the cases above are asserted.
        assert gw.client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        gw.cleanup()
    operator = "glibc.cpu.x86_rep_movsb_threshold=8192"
    gw = Gateway(env={"GLIBC_TUNABLES": operator})
    try:
        assert environ_of(gw.proc.pid).get("GLIBC_TUNABLES") == operator
        assert "restarting with GLIBC_TUNABLES" not in gw.logs()
    finally:
        gw.cleanup()
