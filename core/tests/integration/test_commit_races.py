"""Writers racing on one key through every path that commits an object record (PutObject,
CopyObject, CompleteMultipartUpload): whoever commits last wins, and the record it replaced
is the one purged, so no version's shards outlive it; CompleteMultipartUpload's If-None-Match
and If-Match are checked with its commit."""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import botocore.exceptions
import pytest

from conftest import Gateway
from shards import shard_files
from test_http import admin_get, metric_sum


@pytest.fixture(scope="module")
def gw():
    g = Gateway()
    g.client().create_bucket(Bucket="races")
    yield g
    g.cleanup()


def status(call):
    try:
        call()
        return 200
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]


def data_shards_of(gw, key):
    """Shard files (not footer-only part indexes) whose footer names `key`."""
    return sorted(path for path, fields in shard_files(os.path.join(gw.data_dir, "sites"))
                  if fields["key"] == key and not fields["footer_only"])


def open_upload(s3, key, body):
    uid = s3.create_multipart_upload(Bucket="races", Key=key)["UploadId"]
    etag = s3.upload_part(Bucket="races", Key=key, UploadId=uid, PartNumber=1, Body=body)["ETag"]
    return uid, {"Parts": [{"PartNumber": 1, "ETag": etag}]}


def test_put_copy_and_complete_racing_leave_one_version(gw):
    """Eight rounds of a PUT, a copy and a completion to one key at once: afterwards the key
    holds the bytes of one of them, and once the purge ran only that version's three shards
    (ec 2+1) are left of the key."""
    s3 = gw.client()
    s3.put_object(Bucket="races", Key="source", Body=b"c" * 300_000)
    for round in range(8):
        key = f"k{round}"
        s3.put_object(Bucket="races", Key=key, Body=b"old" * 1000)
        uid, parts = open_upload(s3, key, b"m" * 200_000)
        writers = [
            lambda: s3.put_object(Bucket="races", Key=key, Body=b"p" * 250_000),
            lambda: s3.copy_object(Bucket="races", Key=key,
                                   CopySource={"Bucket": "races", "Key": "source"}),
            lambda: s3.complete_multipart_upload(Bucket="races", Key=key, UploadId=uid,
                                                 MultipartUpload=parts),
        ]
        with ThreadPoolExecutor(3) as pool:
            codes = list(pool.map(status, writers))
        assert codes == [200, 200, 200], codes
        body = s3.get_object(Bucket="races", Key=key)["Body"].read()
        assert body in (b"p" * 250_000, b"c" * 300_000, b"m" * 200_000)
        deadline = time.time() + 15
        while len(data_shards_of(gw, key)) != 3 and time.time() < deadline:
            time.sleep(0.2)
        assert len(data_shards_of(gw, key)) == 3, (round, data_shards_of(gw, key))


def test_complete_conditions(gw):
    """If-None-Match: * refuses to complete over an existing key (the upload stays open);
    If-Match completes only over the named ETag, and the object it replaced is purged."""
    s3 = gw.client()
    s3.put_object(Bucket="races", Key="cond", Body=b"first")
    uid, parts = open_upload(s3, "cond", b"second" * 1000)

    def complete(**conditions):
        return status(lambda: s3.complete_multipart_upload(
            Bucket="races", Key="cond", UploadId=uid, MultipartUpload=parts, **conditions))
    assert complete(IfNoneMatch="*") == 412
    assert complete(IfMatch='"0123456789abcdef0123456789abcdef"') == 412
    assert s3.get_object(Bucket="races", Key="cond")["Body"].read() == b"first"
    first = s3.head_object(Bucket="races", Key="cond")["ETag"]
    assert complete(IfMatch=first) == 200
    assert s3.get_object(Bucket="races", Key="cond")["Body"].read() == b"second" * 1000
    deadline = time.time() + 15
    while len(data_shards_of(gw, "cond")) != 3 and time.time() < deadline:
        time.sleep(0.2)
    assert len(data_shards_of(gw, "cond")) == 3
    # The purge of the replaced object is counted: its three shards at least.
    code, text = admin_get(gw, "/metrics")
    assert code == 200 and metric_sum(text, "tessera_shards_purged_total") >= 3, text

    uid, parts = open_upload(s3, "cond-new", b"third")
    assert status(lambda: s3.complete_multipart_upload(
        Bucket="races", Key="cond-new", UploadId=uid, MultipartUpload=parts,
        IfMatch='"0123456789abcdef0123456789abcdef"')) == 404
    assert status(lambda: s3.complete_multipart_upload(
        Bucket="races", Key="cond-new", UploadId=uid, MultipartUpload=parts,
        IfNoneMatch="*")) == 200


def test_copy_conditions(gw):
    """CopyObject's If-None-Match: * and If-Match apply to the destination key, as on
    PutObject: a refused copy leaves the destination as it was, and its shards are purged."""
    s3 = gw.client()
    s3.put_object(Bucket="races", Key="copy-src", Body=b"source" * 1000)
    s3.put_object(Bucket="races", Key="copy-dst", Body=b"destination")
    source = {"Bucket": "races", "Key": "copy-src"}

    def copy(key, **conditions):
        return status(lambda: s3.copy_object(Bucket="races", Key=key, CopySource=source,
                                             **conditions))
    assert copy("copy-dst", IfNoneMatch="*") == 412
    assert copy("copy-dst", IfMatch='"0123456789abcdef0123456789abcdef"') == 412
    assert copy("copy-missing", IfMatch='"0123456789abcdef0123456789abcdef"') == 404
    assert s3.get_object(Bucket="races", Key="copy-dst")["Body"].read() == b"destination"
    current = s3.head_object(Bucket="races", Key="copy-dst")["ETag"]
    assert copy("copy-dst", IfMatch=current) == 200
    assert copy("copy-new", IfNoneMatch="*") == 200
    for key in ("copy-dst", "copy-new"):
        assert s3.get_object(Bucket="races", Key=key)["Body"].read() == b"source" * 1000
    # Only the surviving versions' shards are left of the destination keys.
    deadline = time.time() + 15
    while len(data_shards_of(gw, "copy-dst")) != 3 and time.time() < deadline:
        time.sleep(0.2)
    assert len(data_shards_of(gw, "copy-dst")) == 3
    assert len(data_shards_of(gw, "copy-missing")) == 0


def test_refused_completion_leaves_no_part_index(gw):
    """A completion with If-None-Match: * racing a PUT of its key: when it loses (412), the
    part-index copies it may already have written are purged, so `tessera recover` cannot
    bring back an object the client was told was not created; the upload stays open."""
    s3 = gw.client()
    for round in range(8):
        key = f"exclusive{round}"
        uid, parts = open_upload(s3, key, b"u" * 100_000)
        writers = [
            lambda: s3.complete_multipart_upload(Bucket="races", Key=key, UploadId=uid,
                                                 MultipartUpload=parts, IfNoneMatch="*"),
            lambda: s3.put_object(Bucket="races", Key=key, Body=b"p" * 1000),
        ]
        with ThreadPoolExecutor(2) as pool:
            completed, put = pool.map(status, writers)
        assert put == 200
        def index_copies():
            return [path for path, fields in shard_files(os.path.join(gw.data_dir, "sites"))
                    if fields["key"] == key and fields["footer_only"]]
        if completed == 412:
            deadline = time.time() + 15
            while index_copies() and time.time() < deadline:
                time.sleep(0.2)
            assert index_copies() == [], round
            listed = s3.list_parts(Bucket="races", Key=key, UploadId=uid)["Parts"]
            assert [p["PartNumber"] for p in listed] == [1]
            s3.abort_multipart_upload(Bucket="races", Key=key, UploadId=uid)
        else:
            assert completed == 200, completed
