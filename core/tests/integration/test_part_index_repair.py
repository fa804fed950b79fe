"""Part-index copies back to full redundancy, with the real binary on `dir` sites.

CompleteMultipartUpload writes a footer-only *part index* to every site; `tessera recover`
needs one to rebuild a multipart object from the sites alone. A site that was down at the
completion, or that lost its copy later, gets a copy again from the scrub (it lists every site
and finds multipart objects without a copy there)."""

import os
import shutil
import subprocess
import time

from conftest import Gateway, binary
from shards import (data_shards, dir_sites_config, footer, get, part_index_copies, read, sha,
                    shard_files, upload_parts, wait_for)

CORES = 2
# Short grace: scrub passes every ~0.4 s.
GRACE_MS = 1500


def config_text(root, policy, sites, extra=""):
    engine = (f'default_policy = "{policy}"\nplacement = "priority"\n'
              f'orphan_grace_ms = {GRACE_MS}\n{extra}')
    return dir_sites_config(root, engine, sites)


def same_but_site(a, b):
    """Two part-index copies hold the same footer but for the site byte (the shard field)."""
    body_a, fields_a = footer(a)
    body_b, fields_b = footer(b)
    return body_a[:1] + body_a[2:] == body_b[:1] + body_b[2:] and fields_a["shard"] != fields_b["shard"]


def test_copy_missed_at_complete_is_written_and_recover_uses_it(tmp_path):
    """Two sites, replica 2 with a write quorum of 1: with disk-1 down, a two-part upload is
    completed, so the only part index is at disk-0. When disk-1 returns, the repair worker
    re-creates the part shards there and the scrub writes the missing part index (the same
    footer but for the site byte), once. Then, with the gateway stopped, the metadata deleted
    and disk-0 wiped, `tessera recover` rebuilds the multipart object from disk-1 alone."""
    root = str(tmp_path / "disks")
    text = config_text(root, "replica:2", 2, "write_quorum = 1\n")
    config_path = str(tmp_path / "tessera.toml")
    with open(config_path, "w") as f:
        f.write(text)
    data_dir = str(tmp_path / "data")
    disk0, disk1 = (os.path.join(root, f"disk-{i}") for i in range(2))
    gw = Gateway(data_dir=data_dir, config_text=text, extra_args=["--cores", str(CORES)])
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="pix")
        shutil.rmtree(disk1)
        data = upload_parts(s3, "pix", "mp", [5 << 20, 1 << 20])
        assert len(part_index_copies(disk0, "pix", "mp")) == 1
        # Several scrub passes with the site still missing write nothing and break nothing.
        time.sleep(1.5)
        assert not os.path.exists(disk1)
        os.makedirs(disk1)
        wait_for(lambda: len(part_index_copies(disk1, "pix", "mp")) == 1,
                 "the part index at the returned site")
        wait_for(lambda: all(1 in data_shards(disk1, "pix", "mp", p) for p in (1, 2)),
                 "the part shards at the returned site")
        assert "scrub: wrote the missing part index of pix/mp at site disk-1" in gw.logs()
        [copy0] = part_index_copies(disk0, "pix", "mp")
        [copy1] = part_index_copies(disk1, "pix", "mp")
        assert same_but_site(copy0, copy1)
        # More passes: the copy is seen, so no second one is written.
        time.sleep(2)
        assert part_index_copies(disk1, "pix", "mp") == [copy1]
        assert part_index_copies(disk0, "pix", "mp") == [copy0]
        assert sha(get(s3, "pix", "mp")) == sha(data)
        assert gw.stop() == 0
    finally:
        gw.stop()
        gw.tmp.cleanup()

    shutil.rmtree(os.path.join(data_dir, "meta"))
    shutil.rmtree(disk0)
    os.makedirs(disk0)
    result = subprocess.run([binary(), "recover", "--config", config_path, "--data-dir", data_dir,
                             "--cores", str(CORES)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "(1 multipart)" in result.stdout, result.stdout
    gw = Gateway(data_dir=data_dir, config_text=text, extra_args=["--cores", str(CORES)])
    try:
        s3 = gw.client()
        assert sha(get(s3, "pix", "mp")) == sha(data)
        # And back to full redundancy again: disk-0 gets its part index back.
        wait_for(lambda: len(part_index_copies(disk0, "pix", "mp")) == 1,
                 "the part index at the wiped site")
    finally:
        gw.cleanup()


def test_lost_copy_is_written_again(tmp_path):
    """ec 2+1 on three sites, every site up: each holds one part index. The copy at disk-1 is
    deleted (a lost file); the scrub writes a new one there, and the other sites' copies stay
    as they were, with no duplicates."""
    root = str(tmp_path / "disks")
    text = config_text(root, "ec:2+1", 3)
    gw = Gateway(config_text=text, extra_args=["--cores", str(CORES)])
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="pix")
        data = upload_parts(s3, "pix", "mp", [5 << 20, 5 << 20, 100_000])
        disks = [os.path.join(root, f"disk-{i}") for i in range(3)]
        copies = [part_index_copies(d, "pix", "mp") for d in disks]
        assert [len(c) for c in copies] == [1, 1, 1], copies
        original = read(copies[1][0])
        os.remove(copies[1][0])
        wait_for(lambda: len(part_index_copies(disks[1], "pix", "mp")) == 1,
                 "a new part index at disk-1")
        [again] = part_index_copies(disks[1], "pix", "mp")
        assert read(again) == original, "the new copy differs from the one Complete wrote"
        time.sleep(1.5)
        assert [part_index_copies(d, "pix", "mp") for d in disks] == [copies[0], [again], copies[2]]
        assert sha(get(s3, "pix", "mp")) == sha(data)
    finally:
        gw.cleanup()


def test_delete_and_overwrite_purge_the_part_index_copies(tmp_path):
    """Deleting a multipart object, or replacing it, removes its part-index copies at every
    site through the purge queue, like its part shards, without waiting for the scrub (whose
    orphan grace is an hour here): nothing of either object stays on any disk."""
    root = str(tmp_path / "disks")
    text = dir_sites_config(root, 'default_policy = "ec:2+1"\norphan_grace_ms = 3600000\n', 3)
    gw = Gateway(config_text=text, extra_args=["--cores", str(CORES)])
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="pur")
        upload_parts(s3, "pur", "deleted", [5 << 20, 1 << 20])
        upload_parts(s3, "pur", "replaced", [5 << 20, 3])
        for key in ["deleted", "replaced"]:
            assert len(part_index_copies(root, "pur", key)) == 3, key
        s3.delete_object(Bucket="pur", Key="deleted")
        s3.put_object(Bucket="pur", Key="replaced", Body=b"now a single PUT")

        def leftovers():
            return [(path, fields["key"], fields["part"]) for path, fields in shard_files(root)
                    if fields["key"] == "deleted"
                    or (fields["key"] == "replaced" and fields["etag_parts"] > 0)
                    or (fields["key"] == "replaced" and fields["part"] > 0)]
        wait_for(lambda: not leftovers(), "the purge of both multipart objects", timeout=20)
        assert get(s3, "pur", "replaced") == b"now a single PUT"
        assert len(data_shards(root, "pur", "replaced")) == 3
    finally:
        gw.cleanup()
