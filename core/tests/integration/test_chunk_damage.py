"""Damage is written off chunk by chunk, not shard by shard: an object whose every shard holds
a corrupt chunk, each in a different stripe, is still whole (every stripe has k good chunks),
so GET returns its bytes and the repair worker rewrites every shard; and a GET the client
abandons early still queues the repair of what it found."""

import os
import socket

import pytest

from conftest import Gateway
from shards import dir_sites_config, read, shard_files, wait_for
from test_http import admin_get, metric_sum

CHUNK = 65536


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))


def object_shards(root, key):
    """The shard files of `key`, ordered by shard index."""
    found = [(fields["shard"], path) for path, fields in shard_files(root)
             if fields["key"] == key and not fields["footer_only"]]
    return [path for _, path in sorted(found)]


@pytest.mark.parametrize("policy, copies", [(f"ec:2+1:{CHUNK}", 3), ("replica:3", 3)])
def test_a_corrupt_chunk_in_every_shard_is_survived_and_repaired(tmp_path, policy, copies):
    """Every shard (or copy) holds one corrupt chunk, each in another stripe: GET and a ranged
    GET return the right bytes, and all of them are rewritten to verify again."""
    root = str(tmp_path / "disks")
    gw = Gateway(config_text=dir_sites_config(root, f'default_policy = "{policy}"\n'))
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="rot")
        # ec 2+1 with 64 KiB chunks: 16 stripes; replica 3 (1 MiB chunks): 8.
        data = os.urandom(2 << 20 if policy.startswith("ec") else 8 << 20)
        s3.put_object(Bucket="rot", Key="obj", Body=data)
        shards = object_shards(root, "obj")
        assert len(shards) == copies
        chunk = [fields for path, fields in shard_files(root) if path == shards[0]][0]["chunk_size"]
        stored = chunk + 8  # the chunk, then its 8-byte checksum (tessera-ec CHECKSUM_LEN)
        originals = [read(path) for path in shards]
        # Shard i loses a byte of its chunk in stripe 1 + 3 i: no stripe loses two chunks.
        stripes = len(originals[0]) // stored
        assert stripes >= 7, f"too few stripes ({stripes}) for the test"
        for i, path in enumerate(shards):
            flip(path, (1 + 3 * i) * stored + 100)
        assert s3.get_object(Bucket="rot", Key="obj")["Body"].read() == data
        part = s3.get_object(Bucket="rot", Key="obj", Range=f"bytes={stored}-{5 * stored}")
        assert part["Body"].read() == data[stored:5 * stored + 1]
        wait_for(lambda: [read(p) for p in shards] == originals,
                 "every damaged shard to be rewritten")
        assert s3.get_object(Bucket="rot", Key="obj")["Body"].read() == data
        # The admin endpoint counts the repairs, and the queue drains to empty.
        def metrics():
            status, text = admin_get(gw, "/metrics")
            assert status == 200, text
            return text
        wait_for(lambda: metric_sum(metrics(), "tessera_repair_queue_entries") == 0,
                 "the repair queue gauge to drop to 0")
        assert metric_sum(metrics(), "tessera_shards_repaired_total") == copies
        assert metric_sum(metrics(), "tessera_repair_failures_total") == 0
    finally:
        gw.cleanup()


def test_an_abandoned_get_still_queues_the_repair(tmp_path):
    """The client reads the response head and closes: the damage the first batch found is
    queued for repair all the same."""
    root = str(tmp_path / "disks")
    gw = Gateway(config_text=dir_sites_config(root, f'default_policy = "ec:2+1:{CHUNK}"\n'))
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="rot")
        # 64 MiB: many read batches, so closing after the head leaves most of it unread.
        data = os.urandom(64 << 20)
        s3.put_object(Bucket="rot", Key="big", Body=data)
        victim = object_shards(root, "big")[0]
        original = read(victim)
        flip(victim, 100)
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "rot", "Key": "big"},
                                        ExpiresIn=60)
        path = url.split(str(gw.port), 1)[1]
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n\r\n".encode())
            head = sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
        wait_for(lambda: read(victim) == original, "the shard of the abandoned GET to be rewritten")
    finally:
        gw.cleanup()
