"""Multipart uploads through boto3 and the aws CLI: parts erasure-coded at upload time,
completion checks, ETag format, ranged reads across part boundaries, abort, restart."""

import hashlib
import os

import botocore.exceptions
import pytest

from conftest import Gateway

MIB = 1 << 20


@pytest.fixture(scope="module")
def gw():
    g = Gateway()
    g.client().create_bucket(Bucket="mpart")
    yield g
    g.cleanup()


def multipart_etag(parts):
    return '"%s-%d"' % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts))


def test_complete_and_read_back(gw):
    """Three parts complete into one object with the S3 multipart ETag; whole, ranged (across
    part boundaries) and partNumber reads return the right bytes."""
    s3 = gw.client()
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB + 123), os.urandom(777)]
    upload = s3.create_multipart_upload(Bucket="mpart", Key="three", ContentType="text/x-test", Metadata={"m": "1"})
    uid = upload["UploadId"]
    etags = []
    for number, data in enumerate(parts, start=1):
        etags.append(s3.upload_part(Bucket="mpart", Key="three", UploadId=uid, PartNumber=number, Body=data)["ETag"])
    listed = s3.list_parts(Bucket="mpart", Key="three", UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]
    done = s3.complete_multipart_upload(Bucket="mpart", Key="three", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    assert done["ETag"] == multipart_etag(parts)
    whole = b"".join(parts)
    got = s3.get_object(Bucket="mpart", Key="three")
    assert got["Body"].read() == whole
    assert got["ContentType"] == "text/x-test" and got["Metadata"] == {"m": "1"}
    assert got["ETag"] == multipart_etag(parts)
    start = 5 * MIB - 10
    ranged = s3.get_object(Bucket="mpart", Key="three", Range=f"bytes={start}-{start + 5 * MIB + 200}")
    assert ranged["Body"].read() == whole[start:start + 5 * MIB + 201]
    second = s3.get_object(Bucket="mpart", Key="three", PartNumber=2)
    assert second["Body"].read() == parts[1]
    assert second["PartsCount"] == 3
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_parts(Bucket="mpart", Key="three", UploadId=uid)
    assert e.value.response["Error"]["Code"] == "NoSuchUpload"


def test_completion_errors(gw):
    """InvalidPart (unknown part or wrong ETag), InvalidPartOrder, EntityTooSmall."""
    s3 = gw.client()
    uid = s3.create_multipart_upload(Bucket="mpart", Key="bad")["UploadId"]
    e1 = s3.upload_part(Bucket="mpart", Key="bad", UploadId=uid, PartNumber=1, Body=b"small")["ETag"]
    e2 = s3.upload_part(Bucket="mpart", Key="bad", UploadId=uid, PartNumber=2, Body=b"tiny")["ETag"]
    cases = [
        ([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}], "InvalidPart"),
        ([{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}], "InvalidPart"),
        ([{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}], "InvalidPartOrder"),
        ([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}], "EntityTooSmall"),
    ]
    for parts, code in cases:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.complete_multipart_upload(Bucket="mpart", Key="bad", UploadId=uid, MultipartUpload={"Parts": parts})
        assert e.value.response["Error"]["Code"] == code, parts
    # A single small part is allowed (it is the last part).
    s3.complete_multipart_upload(Bucket="mpart", Key="bad", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert s3.get_object(Bucket="mpart", Key="bad")["Body"].read() == b"small"


def test_abort_purges_parts(gw):
    """Aborting removes the upload and its parts' shards from the sites."""
    import glob
    import time
    s3 = gw.client()
    sites = os.path.join(gw.data_dir, "sites")
    def files():
        return {p for p in glob.glob(os.path.join(sites, "*", "*", "*")) if os.path.isfile(p)}
    before = files()
    uid = s3.create_multipart_upload(Bucket="mpart", Key="aborted")["UploadId"]
    s3.upload_part(Bucket="mpart", Key="aborted", UploadId=uid, PartNumber=1, Body=os.urandom(100_000))
    added = files() - before
    assert len(added) == 3
    s3.abort_multipart_upload(Bucket="mpart", Key="aborted", UploadId=uid)
    deadline = time.time() + 10
    while added & files() and time.time() < deadline:
        time.sleep(0.2)
    assert not (added & files())
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket="mpart", Key="aborted", UploadId=uid, PartNumber=2, Body=b"x")
    assert e.value.response["Error"]["Code"] == "NoSuchUpload"


def test_aws_cli_large_file_multipart_both_ways(gw, tmp_path):
    """`aws s3 cp` of a 40 MiB file uploads in 8 MiB parts (6 parts) and downloads with parallel ranged
    GETs; the bytes match."""
    src = tmp_path / "large.bin"
    src.write_bytes(os.urandom(40 * MIB + 5))
    gw.aws("s3", "cp", str(src), "s3://mpart/large.bin")
    head = gw.client().head_object(Bucket="mpart", Key="large.bin")
    assert head["ETag"].endswith('-6"'), head["ETag"]  # 5 full 8 MiB parts + 5 bytes
    dst = tmp_path / "back.bin"
    gw.aws("s3", "cp", "s3://mpart/large.bin", str(dst))
    assert hashlib.md5(dst.read_bytes()).digest() == hashlib.md5(src.read_bytes()).digest()


def test_upload_survives_restart():
    """An upload's parts are in the metadata log: after a restart the upload completes."""
    g = Gateway()
    try:
        s3 = g.client()
        s3.create_bucket(Bucket="mpr")
        uid = s3.create_multipart_upload(Bucket="mpr", Key="k")["UploadId"]
        data = os.urandom(5 * MIB)
        e1 = s3.upload_part(Bucket="mpr", Key="k", UploadId=uid, PartNumber=1, Body=data)["ETag"]
        assert g.stop() == 0
        again = Gateway(data_dir=g.data_dir)
        try:
            s3 = again.client()
            e2 = s3.upload_part(Bucket="mpr", Key="k", UploadId=uid, PartNumber=2, Body=b"tail")["ETag"]
            s3.complete_multipart_upload(Bucket="mpr", Key="k", UploadId=uid, MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
            assert s3.get_object(Bucket="mpr", Key="k")["Body"].read() == data + b"tail"
        finally:
            again.cleanup()
    finally:
        g.cleanup()
