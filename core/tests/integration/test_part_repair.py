"""Repair of multipart part shards, with the real binary on `dir` sites and boto3: a part shard
that a read finds missing or corrupt is re-created byte for byte, part shards that UploadPart
wrote while a site was down are re-created once the upload is completed and the site is back,
and `tessera recover` rebuilds the object from the repaired shards."""

import os
import shutil
import subprocess
import time

from conftest import Gateway, binary
from shards import (dir_sites_config, footer, get, read, sha, shard_files, upload_parts,
                    wait_for)

CORES = 2
PART_SIZES = (5 << 20, 5 << 20, 1 << 20)


def config_text(root, extra=""):
    return dir_sites_config(root, f'default_policy = "ec:2+1"\nplacement = "priority"\n{extra}')


def part_shards(root, bucket, key):
    """(part number, shard index) -> path of every part shard of `bucket/key` at every site."""
    found = {}
    for path, fields in shard_files(root):
        if fields["bucket"] == bucket and fields["key"] == key and fields["part"] > 0:
            assert (fields["part"], fields["shard"]) not in found, "two copies of one shard"
            found[(fields["part"], fields["shard"])] = path
    return found


def upload(s3, bucket, key):
    """A 3-part upload (5 MiB + 5 MiB + 1 MiB), completed; returns the object's bytes."""
    return upload_parts(s3, bucket, key, PART_SIZES)


def test_missing_part_shard_is_recreated(tmp_path):
    """A data shard of part 2 is deleted from its site directory: the GET still returns the
    right bytes (reconstructed from parity), reports the damage, and the repair worker writes
    the shard again at the same place with exactly the bytes it had (chunks, checksums and the
    manifest footer UploadPart wrote). The object then survives losing a different shard of
    that part."""
    root = str(tmp_path / "disks")
    gw = Gateway(config_text=config_text(root))
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="mpr")
        data = upload(s3, "mpr", "obj")
        shards = part_shards(root, "mpr", "obj")
        assert len(shards) == 9, sorted(shards)
        victim = shards[(2, 0)]
        original = read(victim)
        os.remove(victim)
        assert sha(get(s3, "mpr", "obj")) == sha(data)
        wait_for(lambda: os.path.exists(victim), "the deleted part shard to be re-created")
        assert read(victim) == original, "the repaired shard differs from what UploadPart wrote"
        assert "shard 0 of part 2 of mpr/obj is damaged" in gw.logs()
        # The record has the shard durable again: with shard 1 of part 2 gone too, the read
        # needs the repaired shard 0 and the parity.
        os.remove(shards[(2, 1)])
        assert sha(get(s3, "mpr", "obj")) == sha(data)
    finally:
        gw.cleanup()


def test_corrupt_part_shard_is_recreated(tmp_path):
    """One byte flipped in a data shard of part 3 (the 1 MiB part) fails that chunk's checksum:
    the GET returns the right bytes, and the shard is rewritten with its original bytes. A
    ranged GET inside part 1 is unaffected."""
    root = str(tmp_path / "disks")
    gw = Gateway(config_text=config_text(root))
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="mpr")
        data = upload(s3, "mpr", "obj")
        victim = part_shards(root, "mpr", "obj")[(3, 1)]
        original = read(victim)
        flipped = bytearray(original)
        flipped[100] ^= 0x40
        with open(victim, "wb") as f:
            f.write(flipped)
        ranged = s3.get_object(Bucket="mpr", Key="obj", Range="bytes=10-1000")["Body"].read()
        assert ranged == data[10:1001]
        assert read(victim) == bytes(flipped), "a read that did not touch part 3 changed it"
        assert sha(get(s3, "mpr", "obj")) == sha(data)
        wait_for(lambda: read(victim) == original, "the corrupt part shard to be rewritten")
        assert sha(get(s3, "mpr", "obj")) == sha(data)
    finally:
        gw.cleanup()


def run_recover(config_path, data_dir):
    return subprocess.run([binary(), "recover", "--config", config_path, "--data-dir", data_dir,
                           "--cores", str(CORES)], capture_output=True, text=True, timeout=120)


def test_parts_uploaded_with_a_site_down_are_repaired_and_recoverable(tmp_path):
    """With write_quorum = 2, every part is uploaded while site 2 is missing (its shard of each
    part is recorded pending) and the upload is completed; nothing can be written there yet.
    Once the site returns, the repair worker re-creates the three part shards there, each with
    the footer of its siblings but for the shard index. Then, with the gateway stopped, the
    metadata deleted and site 0 wiped, `tessera recover` rebuilds the object from sites 1 and
    2 (the repaired shards are real) and queues site 0's part shards, which the restarted
    gateway returns byte for byte and re-creates as they were."""
    root = str(tmp_path / "disks")
    text = config_text(root, "write_quorum = 2\n")
    config_path = str(tmp_path / "tessera.toml")
    with open(config_path, "w") as f:
        f.write(text)
    data_dir = str(tmp_path / "data")
    down = os.path.join(root, "disk-2")
    gw = Gateway(data_dir=data_dir, config_text=text, extra_args=["--cores", str(CORES)])
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="mpr")
        shutil.rmtree(down)
        data = upload(s3, "mpr", "obj")
        assert sha(get(s3, "mpr", "obj")) == sha(data)
        before = part_shards(root, "mpr", "obj")
        assert sorted(before) == [(p, s) for p in (1, 2, 3) for s in (0, 1)], sorted(before)
        # The repair worker keeps failing while the site is missing (and retries).
        time.sleep(2)
        assert not os.path.exists(down)
        os.makedirs(down)
        wait_for(lambda: len(part_shards(down, "mpr", "obj")) == 3,
                 "the three part shards at the returned site")
        repaired = part_shards(down, "mpr", "obj")
        assert sorted(repaired) == [(1, 2), (2, 2), (3, 2)]
        for (part, shard), path in repaired.items():
            body, fields = footer(path)
            sibling_body, sibling = footer(before[(part, 0)])
            assert fields["version_id"] == sibling["version_id"] and fields["part"] == part
            assert body[:1] + body[2:] == sibling_body[:1] + sibling_body[2:], "footer differs"
            assert os.path.getsize(path) == os.path.getsize(before[(part, 0)])
        assert sha(get(s3, "mpr", "obj")) == sha(data)
        assert gw.stop() == 0
    finally:
        gw.stop()
        gw.tmp.cleanup()

    lost = os.path.join(root, "disk-0")
    originals = {path: read(path) for path in part_shards(lost, "mpr", "obj").values()}
    assert len(originals) == 3
    shutil.rmtree(os.path.join(data_dir, "meta"))
    shutil.rmtree(lost)
    os.makedirs(lost)
    result = run_recover(config_path, data_dir)
    assert result.returncode == 0, result.stderr
    assert "(1 multipart); 3 missing shard(s) queued for repair" in result.stdout, result.stdout
    gw = Gateway(data_dir=data_dir, config_text=text, extra_args=["--cores", str(CORES)])
    try:
        s3 = gw.client()
        assert sha(get(s3, "mpr", "obj")) == sha(data)
        # The part shards of the wiped site were queued by recover and come back as they were.
        wait_for(lambda: all(os.path.exists(p) and read(p) == b for p, b in originals.items()),
                 "the wiped site's part shards to be re-created")
        assert sha(get(s3, "mpr", "obj")) == sha(data)
    finally:
        gw.cleanup()
