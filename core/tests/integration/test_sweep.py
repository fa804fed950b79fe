"""Pending shards that no repair-queue entry names, with the real binary on `dir` sites.

A PUT (or CompleteMultipartUpload) commits the object record first, with the shards a down
site missed recorded pending, and the repair-queue entries in a second commit. The gateway is
killed between the two: `TESSERA_TEST_CRASH_POINT=before-repair-queue` makes it abort at the
moment the repair entries are about to be committed (meta/src/crash_point.rs), which is the
state a SIGKILL or power cut there leaves. After a restart the sweep must find the pending
shards and queue them, and the repair worker must re-create them."""

import os
import shutil
import signal

import botocore.exceptions
import pytest

from conftest import Gateway
from shards import data_shards, dir_sites_config, get, sha, wait_for

CORES = 2
CRASH_ENV = {"TESSERA_TEST_CRASH_POINT": "before-repair-queue"}


def config_text(root):
    # Priority placement: shard i of every object and part is at disk-i. A write quorum of 2
    # lets writes succeed with one site down (the default for 2+1 is all three).
    return dir_sites_config(
        root, 'default_policy = "ec:2+1"\nplacement = "priority"\nwrite_quorum = 2\n')


def start(data_dir, text, env=None):
    return Gateway(data_dir=data_dir, config_text=text, env=env,
                   extra_args=["--cores", str(CORES)])


def expect_crash(gw, request):
    """Runs `request`, which must kill the gateway at the crash point before it answers."""
    with pytest.raises(botocore.exceptions.BotoCoreError):
        request()
    gw.proc.wait(timeout=15)
    assert gw.proc.returncode == -signal.SIGABRT, (gw.proc.returncode, gw.logs())
    assert "aborting before the repair-queue commit" in gw.logs()


def test_put_killed_before_its_repair_entry_is_repaired_after_restart(tmp_path):
    """disk-2 is down during a PUT: its shard is recorded pending, then the gateway dies
    before queueing the repair (the client gets no answer). Restarted with disk-2 back, the
    object is there (its record was durable), the sweep queues the pending shard, and the
    repair worker writes it at disk-2. With disk-0's shard then deleted, the object still
    reads, from the repaired shard and disk-1's."""
    root = str(tmp_path / "disks")
    text = config_text(root)
    data_dir = str(tmp_path / "data")
    down = os.path.join(root, "disk-2")
    body = os.urandom((3 << 20) + 777)

    gw = start(data_dir, text, CRASH_ENV)
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="swp")
        shutil.rmtree(down)
        expect_crash(gw, lambda: s3.put_object(Bucket="swp", Key="obj", Body=body))
    finally:
        gw.stop()
        gw.tmp.cleanup()
    written = data_shards(root, "swp", "obj")
    assert sorted(written) == [0, 1], written

    os.makedirs(down)
    gw = start(data_dir, text)
    try:
        s3 = gw.client()
        assert sha(get(s3, "swp", "obj")) == sha(body)
        wait_for(lambda: 2 in data_shards(down, "swp", "obj"), "the pending shard at disk-2")
        assert "sweep: shard 2 of swp/obj was pending with no repair queued" in gw.logs()
        os.remove(written[0])
        assert sha(get(s3, "swp", "obj")) == sha(body)
    finally:
        gw.cleanup()


def test_complete_killed_before_its_repair_entries_is_repaired_after_restart(tmp_path):
    """Two parts are uploaded while disk-2 is down (each part's shard 2 is recorded pending;
    nothing repairs parts of an open upload) and the gateway dies when the completion, its
    record committed, is about to queue their repair. Restarted with disk-2 back, the object
    reads, and both part shards are re-created at disk-2 with the bytes the part needs: the
    object reads with disk-0's part shards deleted."""
    root = str(tmp_path / "disks")
    text = config_text(root)
    data_dir = str(tmp_path / "data")
    down = os.path.join(root, "disk-2")
    parts = [os.urandom(5 << 20), os.urandom(1 << 20)]

    gw = start(data_dir, text, CRASH_ENV)
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="swp")
        shutil.rmtree(down)
        uid = s3.create_multipart_upload(Bucket="swp", Key="mp")["UploadId"]
        etags = [s3.upload_part(Bucket="swp", Key="mp", UploadId=uid, PartNumber=n + 1,
                                Body=p)["ETag"] for n, p in enumerate(parts)]
        expect_crash(gw, lambda: s3.complete_multipart_upload(
            Bucket="swp", Key="mp", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e}
                                       for n, e in enumerate(etags)]}))
    finally:
        gw.stop()
        gw.tmp.cleanup()

    os.makedirs(down)
    gw = start(data_dir, text)
    try:
        s3 = gw.client()
        data = b"".join(parts)
        assert sha(get(s3, "swp", "mp")) == sha(data)
        wait_for(lambda: all(2 in data_shards(down, "swp", "mp", part) for part in (1, 2)),
                 "both part shards at disk-2")
        for part in (1, 2):
            assert f"sweep: shard {2 + 3 * (part - 1)} of swp/mp was pending" in gw.logs()
            os.remove(data_shards(root, "swp", "mp", part)[0])
        assert sha(get(s3, "swp", "mp")) == sha(data)
    finally:
        gw.cleanup()
