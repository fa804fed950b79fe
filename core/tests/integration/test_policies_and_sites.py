"""Policies and site kinds end to end: replica and hybrid buckets on local directories, and an
erasure-coded bucket whose shards live on real S3 servers that check signatures (Ceph radosgw
and rclone serve s3, started by perf-scripts/test-all.sh)."""

import os
import uuid

import pytest

from conftest import Gateway


def dir_sites(tmp, count):
    lines = []
    for i in range(count):
        path = os.path.join(tmp, f"disk-{i}")
        os.makedirs(path, exist_ok=True)
        lines.append(f'[[sites]]\nkind = "dir"\nname = "disk-{i}"\npath = "{path}"\nfsync = "always"\n')
    return "\n".join(lines)


def shard_count(root):
    return sum(len(files) for path, _, files in os.walk(root) if "/.tmp" not in path)


@pytest.mark.parametrize("policy, sites, expected_shards", [
    ("replica:3", 4, 3),
    ("ec:4+2:65536", 6, 6),
    ("hybrid:100000:2:3+1", 4, None),
])
def test_policies_on_dir_sites(tmp_path, policy, sites, expected_shards):
    """Each policy stores and returns objects; replicas and ec write the expected shard count
    (hybrid: 2 copies below the threshold, 3+1 shards above it)."""
    root = tmp_path / "disks"
    config = f'[engine]\ndefault_policy = "{policy}"\n\n' + dir_sites(str(root), sites)
    gw = Gateway(config_text=config)
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="pol")
        small, large = os.urandom(5000), os.urandom(700_001)
        before = shard_count(root)
        s3.put_object(Bucket="pol", Key="small", Body=small)
        after_small = shard_count(root)
        s3.put_object(Bucket="pol", Key="large", Body=large)
        after_large = shard_count(root)
        if expected_shards is not None:
            assert after_small - before == expected_shards
            assert after_large - after_small == expected_shards
        else:
            assert after_small - before == 2
            assert after_large - after_small == 4
        assert s3.get_object(Bucket="pol", Key="small")["Body"].read() == small
        assert s3.get_object(Bucket="pol", Key="large")["Body"].read() == large
        assert s3.get_object(Bucket="pol", Key="large", Range="bytes=65530-65545")["Body"].read() == large[65530:65546]
    finally:
        gw.cleanup()


def test_policy_needing_more_sites_is_refused(tmp_path):
    """A default policy that needs more sites than configured stops the start with a message."""
    import subprocess
    from conftest import binary
    cfg = tmp_path / "t.toml"
    cfg.write_text('[engine]\ndefault_policy = "ec:4+2"\n')
    r = subprocess.run([binary(), "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "engine.default_policy" in r.stderr and "needs 6 sites" in r.stderr


def remote_env():
    names = ["TESSERA_RGW_ENDPOINT", "TESSERA_RGW_ACCESS_KEY", "TESSERA_RGW_SECRET_KEY",
             "TESSERA_RCLONE_ENDPOINT", "TESSERA_RCLONE_ACCESS_KEY", "TESSERA_RCLONE_SECRET_KEY"]
    env = {n: os.environ.get(n) for n in names}
    if not all(env.values()):
        message = "radosgw/rclone are not running (perf-scripts/test-all.sh starts them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return env


def s3_site(name, endpoint, key, secret, bucket):
    return (f'[[sites]]\nkind = "s3"\nname = "{name}"\nendpoint = "{endpoint}"\nregion = "us-east-1"\n'
            f'bucket = "{bucket}"\naccess_key = "{key}"\nsecret_key = "{secret}"\n')


def test_ec_over_real_s3_servers():
    """ec 2+1 over three S3 sites (two buckets on radosgw, one on rclone): objects round-trip,
    ranges work, and the object survives losing a whole site (its bucket emptied)."""
    import boto3
    env = remote_env()
    run = uuid.uuid4().hex[:8]
    buckets = [f"ts-a-{run}", f"ts-b-{run}", f"ts-c-{run}"]
    config = "\n".join([
        s3_site("rgw-a", env["TESSERA_RGW_ENDPOINT"], env["TESSERA_RGW_ACCESS_KEY"], env["TESSERA_RGW_SECRET_KEY"], buckets[0]),
        s3_site("rgw-b", env["TESSERA_RGW_ENDPOINT"], env["TESSERA_RGW_ACCESS_KEY"], env["TESSERA_RGW_SECRET_KEY"], buckets[1]),
        s3_site("rclone-c", env["TESSERA_RCLONE_ENDPOINT"], env["TESSERA_RCLONE_ACCESS_KEY"], env["TESSERA_RCLONE_SECRET_KEY"], buckets[2]),
    ]) + '\n[engine]\nplacement = "priority"\n'
    gw = Gateway(config_text=config)
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="remote")
        data = os.urandom(3 * (1 << 20) + 11)
        s3.put_object(Bucket="remote", Key="dir/obj", Body=data)
        assert s3.get_object(Bucket="remote", Key="dir/obj")["Body"].read() == data
        assert s3.get_object(Bucket="remote", Key="dir/obj", Range="bytes=-100")["Body"].read() == data[-100:]
        rgw = boto3.client("s3", endpoint_url=env["TESSERA_RGW_ENDPOINT"], region_name="us-east-1",
                           aws_access_key_id=env["TESSERA_RGW_ACCESS_KEY"],
                           aws_secret_access_key=env["TESSERA_RGW_SECRET_KEY"])
        stored = rgw.list_objects_v2(Bucket=buckets[0]).get("Contents", [])
        assert len(stored) == 1, stored  # one opaque shard, no client key visible at the site
        assert "obj" not in stored[0]["Key"]
        rgw.delete_object(Bucket=buckets[0], Key=stored[0]["Key"])
        assert s3.get_object(Bucket="remote", Key="dir/obj")["Body"].read() == data
    finally:
        gw.cleanup()


def test_write_quorum_and_repair(tmp_path):
    """With write_quorum = 2 an ec 2+1 PUT succeeds while one site is missing; once the site is
    back the repair worker re-creates its shard, so the object then survives losing another site."""
    import shutil
    import time
    root = tmp_path / "disks"
    config = '[engine]\ndefault_policy = "ec:2+1"\nwrite_quorum = 2\nplacement = "priority"\n\n' + dir_sites(str(root), 3)
    gw = Gateway(config_text=config)
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="rep")
        shutil.rmtree(root / "disk-2")
        data = os.urandom(2 * (1 << 20) + 5)
        s3.put_object(Bucket="rep", Key="obj", Body=data)
        assert shard_count(root / "disk-0") == 1 and shard_count(root / "disk-1") == 1
        os.makedirs(root / "disk-2")
        deadline = time.time() + 30
        while shard_count(root / "disk-2") == 0 and time.time() < deadline:
            time.sleep(0.3)
        assert shard_count(root / "disk-2") == 1, "the repair worker did not re-create the shard"
        shutil.rmtree(root / "disk-0")
        os.makedirs(root / "disk-0")
        assert s3.get_object(Bucket="rep", Key="obj")["Body"].read() == data
    finally:
        gw.cleanup()


def crc64_nvme(data):
    """CRC-64/NVME, bit by bit from its catalogue parameters (reflected polynomial
    0x9A6C9329AC4BC9B5, init and xorout all ones): an oracle independent of the gateway's."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x9A6C9329AC4BC9B5 if crc & 1 else crc >> 1
        table.append(crc)
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def test_fast_etag_mode(tmp_path):
    """With `etag = "fast"` the ETag is CRC-64/NVME + length (not the MD5), the CRC of exactly
    the object's bytes whether they fill whole stripes, end in a short one, or fit in one;
    a request with Content-MD5 still gets the MD5 ETag, and bytes round-trip."""
    import base64
    import hashlib
    assert crc64_nvme(b"123456789") == 0xAE8B14860A799888  # the catalogue check value
    gw = Gateway(config_text='[engine]\netag = "fast"\n')
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="fast")
        for size in [1, 70_000, 4 << 20, 3_000_001]:
            sized = os.urandom(size)
            etag = s3.put_object(Bucket="fast", Key=f"s{size}", Body=sized)["ETag"].strip('"')
            raw = bytes.fromhex(etag)
            assert int.from_bytes(raw[:8], "little") == crc64_nvme(sized), size
            assert int.from_bytes(raw[8:], "little") == size
        data = sized
        etag = s3.put_object(Bucket="fast", Key="a", Body=data)["ETag"].strip('"')
        assert etag != hashlib.md5(data).hexdigest()
        assert s3.put_object(Bucket="fast", Key="b", Body=data)["ETag"].strip('"') == etag
        assert s3.get_object(Bucket="fast", Key="a")["Body"].read() == data
        md5 = hashlib.md5(data)
        with_md5 = s3.put_object(Bucket="fast", Key="c", Body=data, ContentMD5=base64.b64encode(md5.digest()).decode())
        assert with_md5["ETag"].strip('"') == md5.hexdigest()
    finally:
        gw.cleanup()


class SlowPutResponses:
    """A TCP proxy in front of an S3 server that forwards everything at once, except that the
    answer to each PUT request is held for `delay` seconds: a site slow to confirm writes."""

    def __init__(self, target_host, target_port, delay):
        import asyncio
        import threading
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handle(client_reader, client_writer):
            try:
                server_reader, server_writer = await asyncio.open_connection(*self.target)
            except OSError:
                client_writer.close()
                return
            puts = asyncio.Queue()  # one entry per PUT request whose answer is not sent yet

            async def requests():
                try:
                    while data := await client_reader.read(65536):
                        if data.startswith(b"PUT "):
                            puts.put_nowait(True)
                        server_writer.write(data)
                        await server_writer.drain()
                except (ConnectionError, OSError):
                    pass
                finally:
                    server_writer.close()

            async def responses():
                try:
                    while data := await server_reader.read(65536):
                        if data.startswith(b"HTTP/") and not puts.empty():
                            puts.get_nowait()
                            await asyncio.sleep(delay)
                        client_writer.write(data)
                        await client_writer.drain()
                except (ConnectionError, OSError):
                    pass
                finally:
                    client_writer.close()

            await asyncio.gather(requests(), responses())

        async def start():
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(start()),
                                                       self.loop.run_forever()), daemon=True)
        self.thread.start()
        ready.wait(10)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_put_answers_at_quorum_while_a_slow_site_finishes(tmp_path):
    """ec 2+1 with write_quorum = 2 over two dir sites and one S3 site whose responses lag by
    3 s: the PUT is answered once the two dir shards are durable, the S3 shard finishes in the
    background and is then recorded durable (the object reads back after losing a dir shard,
    which needs the S3 shard)."""
    import time
    from urllib.parse import urlparse
    env = remote_env()
    rclone = urlparse(env["TESSERA_RCLONE_ENDPOINT"])
    delay = 3.0
    proxy = SlowPutResponses(rclone.hostname, rclone.port, delay)
    root = tmp_path / "disks"
    run = uuid.uuid4().hex[:8]
    config = ('[engine]\ndefault_policy = "ec:2+1"\nwrite_quorum = 2\nplacement = "priority"\n\n'
              + dir_sites(str(root), 2) + "\n"
              + s3_site("slow", f"http://127.0.0.1:{proxy.port}", env["TESSERA_RCLONE_ACCESS_KEY"],
                        env["TESSERA_RCLONE_SECRET_KEY"], f"ts-slow-{run}"))
    gw = Gateway(config_text=config)
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="bgw")
        s3.put_object(Bucket="bgw", Key="warm-up", Body=b"creates the backend bucket")
        data = os.urandom((1 << 20) + 7)
        started = time.monotonic()
        s3.put_object(Bucket="bgw", Key="obj", Body=data)
        elapsed = time.monotonic() - started
        assert elapsed < delay - 0.5, f"the PUT waited for the slow site ({elapsed:.2f} s)"
        # Data shard 0 lives on disk-0 (priority placement). Without it the object needs the
        # slow site's parity shard, which reads use only once it is recorded durable.
        time.sleep(delay + 2.5)
        for path, _, files in os.walk(root / "disk-0"):
            for name in files:
                if "/.tmp" not in path and not name.startswith("."):
                    os.remove(os.path.join(path, name))
        assert s3.get_object(Bucket="bgw", Key="obj")["Body"].read() == data
        assert "repair of shard" not in gw.logs()
    finally:
        gw.cleanup()
        proxy.close()
