"""Server-side copies through boto3 and the aws CLI: CopyObject within and across buckets,
metadata directives, the four copy-source conditions, URL-encoded source keys, copies onto
themselves, copies of multipart objects, and UploadPartCopy with ranges."""

import email.utils
import hashlib
import os
import time

import botocore.exceptions
import pytest

from conftest import Gateway

MIB = 1 << 20


@pytest.fixture(scope="module")
def gw():
    g = Gateway()
    s3 = g.client()
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="dst")
    yield g
    g.cleanup()


def code_of(e):
    return e.value.response["Error"]["Code"]


def md5_etag(data):
    return '"%s"' % hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("size", [0, 1, 3 * MIB + 17])
def test_copy_across_and_within_buckets(gw, size):
    """A copy into another bucket and into the same bucket has the source's bytes, ETag,
    content headers and metadata (directive COPY is the default)."""
    s3 = gw.client()
    data = os.urandom(size)
    s3.put_object(Bucket="src", Key=f"obj-{size}", Body=data, ContentType="text/x-copy",
                  CacheControl="max-age=5", Metadata={"colour": "blue"})
    for bucket, key in [("dst", f"copied-{size}"), ("src", f"sibling-{size}")]:
        result = s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": "src", "Key": f"obj-{size}"})
        assert result["CopyObjectResult"]["ETag"] == md5_etag(data)
        assert result["CopyObjectResult"]["LastModified"] is not None
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == data
        assert got["ETag"] == md5_etag(data)
        assert got["ContentType"] == "text/x-copy"
        assert got["CacheControl"] == "max-age=5"
        assert got["Metadata"] == {"colour": "blue"}


def test_replace_directive_and_bad_directive(gw):
    """REPLACE takes content headers and metadata from the request, COPY ignores them, and an
    unknown directive is InvalidArgument."""
    s3 = gw.client()
    s3.put_object(Bucket="src", Key="meta", Body=b"payload", ContentType="text/old", Metadata={"a": "1"})
    s3.copy_object(Bucket="dst", Key="meta-copy", CopySource="src/meta", ContentType="text/ignored",
                   Metadata={"b": "2"})
    head = s3.head_object(Bucket="dst", Key="meta-copy")
    assert head["ContentType"] == "text/old" and head["Metadata"] == {"a": "1"}
    s3.copy_object(Bucket="dst", Key="meta-replace", CopySource="src/meta", MetadataDirective="REPLACE",
                   ContentType="text/new", Metadata={"b": "2"})
    head = s3.head_object(Bucket="dst", Key="meta-replace")
    assert head["ContentType"] == "text/new" and head["Metadata"] == {"b": "2"}
    assert s3.get_object(Bucket="dst", Key="meta-replace")["Body"].read() == b"payload"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket="dst", Key="x", CopySource="src/meta", MetadataDirective="MOVE")
    assert code_of(e) == "InvalidArgument"


def test_copy_onto_itself(gw):
    """Copying onto itself without REPLACE is InvalidRequest; with REPLACE it updates the
    metadata and keeps the bytes and ETag."""
    s3 = gw.client()
    data = os.urandom(70_000)
    s3.put_object(Bucket="src", Key="self", Body=data, Metadata={"v": "1"})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket="src", Key="self", CopySource="src/self")
    assert code_of(e) == "InvalidRequest"
    s3.copy_object(Bucket="src", Key="self", CopySource="src/self", MetadataDirective="REPLACE",
                   Metadata={"v": "2"}, ContentType="application/x-two")
    got = s3.get_object(Bucket="src", Key="self")
    assert got["Metadata"] == {"v": "2"} and got["ContentType"] == "application/x-two"
    assert got["Body"].read() == data and got["ETag"] == md5_etag(data)


def test_copy_source_conditions(gw):
    """Each x-amz-copy-source-if-* header passes and fails (412) as S3 documents, including
    the if-match + if-unmodified-since pairing that proceeds."""
    s3 = gw.client()
    s3.put_object(Bucket="src", Key="cond", Body=b"conditional")
    etag = s3.head_object(Bucket="src", Key="cond")["ETag"]
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    future = email.utils.formatdate(time.time() + 3600, usegmt=True)
    ok = [
        {"CopySourceIfMatch": etag},
        {"CopySourceIfNoneMatch": '"0000"'},
        {"CopySourceIfModifiedSince": past},
        {"CopySourceIfUnmodifiedSince": future},
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": past},
    ]
    failing = [
        {"CopySourceIfMatch": '"0000"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfUnmodifiedSince": past},
        {"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": past},
    ]
    for conditions in ok:
        s3.copy_object(Bucket="dst", Key="cond", CopySource="src/cond", **conditions)
    for conditions in failing:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.copy_object(Bucket="dst", Key="cond-fail", CopySource="src/cond", **conditions)
        assert code_of(e) == "PreconditionFailed", conditions
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket="dst", Key="cond-fail")


@pytest.mark.parametrize("key", ["with space+plus%percent", "ünïcødé/κλειδί", "a//b?c=d&e#f", "~tilde/=eq"])
def test_source_keys_needing_url_encoding(gw, key):
    """Source keys with spaces, `+`, `%`, unicode, `?`, `&`, `#` are URL-decoded from
    x-amz-copy-source (boto3 encodes them)."""
    s3 = gw.client()
    data = key.encode() * 10
    s3.put_object(Bucket="src", Key=key, Body=data)
    s3.copy_object(Bucket="dst", Key=key, CopySource={"Bucket": "src", "Key": key})
    assert s3.get_object(Bucket="dst", Key=key)["Body"].read() == data


def test_copy_errors(gw):
    """Missing source key, bucket and version; missing destination bucket."""
    s3 = gw.client()
    cases = [
        ({"Bucket": "dst", "Key": "k", "CopySource": "src/does-not-exist"}, "NoSuchKey"),
        ({"Bucket": "dst", "Key": "k", "CopySource": "nosuchbucket/k"}, "NoSuchBucket"),
        ({"Bucket": "nosuchbucket", "Key": "k", "CopySource": "src/meta"}, "NoSuchBucket"),
        ({"Bucket": "dst", "Key": "k", "CopySource": {"Bucket": "src", "Key": "meta", "VersionId": "v7"}}, "NoSuchVersion"),
    ]
    s3.put_object(Bucket="src", Key="meta", Body=b"x")
    for args, code in cases:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.copy_object(**args)
        assert code_of(e) == code, args


def test_copy_of_multipart_object_and_overwrite(gw):
    """A copy of a multipart object has its bytes and a plain MD5 ETag; copying over an
    existing key replaces it."""
    s3 = gw.client()
    parts = [os.urandom(5 * MIB), os.urandom(1234)]
    uid = s3.create_multipart_upload(Bucket="src", Key="mp")["UploadId"]
    etags = [s3.upload_part(Bucket="src", Key="mp", UploadId=uid, PartNumber=i + 1, Body=p)["ETag"]
             for i, p in enumerate(parts)]
    s3.complete_multipart_upload(Bucket="src", Key="mp", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    s3.put_object(Bucket="dst", Key="mp-copy", Body=b"to be replaced")
    result = s3.copy_object(Bucket="dst", Key="mp-copy", CopySource="src/mp")
    whole = b"".join(parts)
    assert result["CopyObjectResult"]["ETag"] == md5_etag(whole)
    assert s3.get_object(Bucket="dst", Key="mp-copy")["Body"].read() == whole
    # A part copied from a range that spans the source's part boundary.
    uid = s3.create_multipart_upload(Bucket="dst", Key="span")["UploadId"]
    first, last = 5 * MIB - 10, 5 * MIB + 99
    r = s3.upload_part_copy(Bucket="dst", Key="span", UploadId=uid, PartNumber=1, CopySource="src/mp",
                            CopySourceRange=f"bytes={first}-{last}")
    assert r["CopyPartResult"]["ETag"] == md5_etag(whole[first:last + 1])
    s3.complete_multipart_upload(Bucket="dst", Key="span", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket="dst", Key="span")["Body"].read() == whole[first:last + 1]


def test_copy_from_a_degraded_source():
    """With one of three sites emptied, a copy reconstructs the source from parity and the
    copy reads back byte for byte; with two gone the copy fails with 503 and stores nothing."""
    import glob
    import shutil
    g = Gateway()
    try:
        s3 = g.client()
        s3.create_bucket(Bucket="deg")
        sites = sorted(glob.glob(os.path.join(g.data_dir, "sites", "local-*")))
        data = os.urandom(4 * MIB + 5)
        s3.put_object(Bucket="deg", Key="src", Body=data)
        shutil.rmtree(sites[0])
        os.mkdir(sites[0])
        s3.copy_object(Bucket="deg", Key="copy", CopySource="deg/src")
        assert s3.get_object(Bucket="deg", Key="copy")["Body"].read() == data
        shutil.rmtree(sites[1])
        os.mkdir(sites[1])
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.copy_object(Bucket="deg", Key="copy2", CopySource="deg/src")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.head_object(Bucket="deg", Key="copy2")
        assert e.value.response["Error"]["Code"] == "404"
    finally:
        g.cleanup()


def test_checksum_travels_with_the_copy(gw):
    """A stored CRC32 of the source is stored with the copy and returned in the result."""
    s3 = gw.client()
    s3.put_object(Bucket="src", Key="crc", Body=b"checksummed", ChecksumAlgorithm="CRC32")
    want = s3.head_object(Bucket="src", Key="crc", ChecksumMode="ENABLED")["ChecksumCRC32"]
    result = s3.copy_object(Bucket="dst", Key="crc", CopySource="src/crc")
    assert result["CopyObjectResult"].get("ChecksumCRC32") == want
    assert s3.head_object(Bucket="dst", Key="crc", ChecksumMode="ENABLED")["ChecksumCRC32"] == want


def test_upload_part_copy_with_ranges(gw):
    """UploadPartCopy assembles a new object from ranges of two sources (and a whole source);
    an out-of-range request is InvalidArgument; the result reads back byte for byte."""
    s3 = gw.client()
    a = os.urandom(7 * MIB)
    b = os.urandom(5 * MIB + 7)
    s3.put_object(Bucket="src", Key="part-a", Body=a)
    s3.put_object(Bucket="src", Key="part-b", Body=b)
    uid = s3.create_multipart_upload(Bucket="dst", Key="assembled")["UploadId"]
    r1 = s3.upload_part_copy(Bucket="dst", Key="assembled", UploadId=uid, PartNumber=1,
                             CopySource="src/part-a", CopySourceRange=f"bytes=0-{5 * MIB}")
    r2 = s3.upload_part_copy(Bucket="dst", Key="assembled", UploadId=uid, PartNumber=2,
                             CopySource="src/part-b")
    r3 = s3.upload_part_copy(Bucket="dst", Key="assembled", UploadId=uid, PartNumber=3,
                             CopySource="src/part-a", CopySourceRange="bytes=100-199")
    expected = [a[:5 * MIB + 1], b, a[100:200]]
    etags = [r["CopyPartResult"]["ETag"] for r in (r1, r2, r3)]
    assert etags == [md5_etag(p) for p in expected]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part_copy(Bucket="dst", Key="assembled", UploadId=uid, PartNumber=4,
                            CopySource="src/part-b", CopySourceRange=f"bytes=0-{len(b)}")
    assert code_of(e) == "InvalidArgument"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part_copy(Bucket="dst", Key="assembled", UploadId=uid, PartNumber=4,
                            CopySource="src/part-b", CopySourceIfMatch='"0000"')
    assert code_of(e) == "PreconditionFailed"
    listed = s3.list_parts(Bucket="dst", Key="assembled", UploadId=uid)["Parts"]
    assert [p["Size"] for p in listed] == [len(p) for p in expected]
    s3.complete_multipart_upload(Bucket="dst", Key="assembled", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    assert s3.get_object(Bucket="dst", Key="assembled")["Body"].read() == b"".join(expected)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part_copy(Bucket="dst", Key="assembled", UploadId=uid, PartNumber=1, CopySource="src/part-b")
    assert code_of(e) == "NoSuchUpload"


def test_aws_cli_copies(gw, tmp_path):
    """`aws s3 cp s3://… s3://…` of a small file (CopyObject) and of a 20 MiB file (multipart
    with UploadPartCopy), and `aws s3api copy-object`; the bytes match."""
    small = os.urandom(1000)
    big = os.urandom(20 * MIB + 3)
    (tmp_path / "small").write_bytes(small)
    (tmp_path / "big").write_bytes(big)
    gw.aws("s3", "cp", str(tmp_path / "small"), "s3://src/cli-small")
    gw.aws("s3", "cp", str(tmp_path / "big"), "s3://src/cli-big")
    gw.aws("s3", "cp", "s3://src/cli-small", "s3://dst/cli-small")
    gw.aws("s3", "cp", "s3://src/cli-big", "s3://dst/cli-big")
    gw.aws("s3api", "copy-object", "--bucket", "dst", "--key", "cli-api", "--copy-source", "src/cli-small")
    s3 = gw.client()
    assert s3.get_object(Bucket="dst", Key="cli-small")["Body"].read() == small
    assert s3.get_object(Bucket="dst", Key="cli-api")["Body"].read() == small
    got = s3.get_object(Bucket="dst", Key="cli-big")
    assert hashlib.md5(got["Body"].read()).digest() == hashlib.md5(big).digest()
    assert got["ETag"].endswith('-3"'), got["ETag"]  # copied as 8 MiB UploadPartCopy ranges
    back = tmp_path / "back"
    gw.aws("s3", "cp", "s3://dst/cli-big", str(back))
    assert back.read_bytes() == big
    out = gw.aws("s3api", "upload-part-copy", "--bucket", "dst", "--key", "cli-upc",
                 "--upload-id", s3.create_multipart_upload(Bucket="dst", Key="cli-upc")["UploadId"],
                 "--part-number", "1", "--copy-source", "src/cli-small",
                 "--copy-source-range", "bytes=0-99").stdout
    assert hashlib.md5(small[:100]).hexdigest() in out


def rclone(gw, *args):
    """Runs rclone against the gateway as remote `ts:` (configured through the environment)."""
    import subprocess
    from conftest import ACCESS_KEY, SECRET_KEY, REGION
    env = dict(os.environ)
    env.update({
        "RCLONE_CONFIG_TS_TYPE": "s3", "RCLONE_CONFIG_TS_PROVIDER": "Other",
        "RCLONE_CONFIG_TS_ENDPOINT": gw.endpoint, "RCLONE_CONFIG_TS_ACCESS_KEY_ID": ACCESS_KEY,
        "RCLONE_CONFIG_TS_SECRET_ACCESS_KEY": SECRET_KEY, "RCLONE_CONFIG_TS_REGION": REGION,
        "RCLONE_CONFIG_TS_FORCE_PATH_STYLE": "true", "RCLONE_CONFIG": "/dev/null",
    })
    result = subprocess.run(["rclone", *args], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, f"rclone {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def test_rclone_server_side_copies(gw, tmp_path):
    """rclone's server-side copies: a small object (CopyObject) and a 12 MiB one forced into
    5 MiB UploadPartCopy ranges (`--s3-copy-cutoff`); both read back byte for byte and
    `rclone check` finds the copies identical to the sources."""
    small = os.urandom(2000)
    big = os.urandom(12 * MIB + 1)
    (tmp_path / "small").write_bytes(small)
    (tmp_path / "big").write_bytes(big)
    rclone(gw, "copyto", str(tmp_path / "small"), "ts:src/rc/small")
    rclone(gw, "copyto", str(tmp_path / "big"), "ts:src/rc/big")
    rclone(gw, "copy", "ts:src/rc", "ts:dst/rc", "--s3-copy-cutoff", "5M")
    s3 = gw.client()
    assert s3.get_object(Bucket="dst", Key="rc/small")["Body"].read() == small
    got = s3.get_object(Bucket="dst", Key="rc/big")
    assert got["Body"].read() == big
    assert got["ETag"].endswith('-3"'), got["ETag"]  # three UploadPartCopy ranges
    rclone(gw, "check", "ts:src/rc", "ts:dst/rc", "--download")
