"""Objects end to end: erasure-coded PUT/GET/HEAD/DELETE through boto3 (default checksum
behaviour: CRC32 trailers in aws-chunked bodies) and the aws CLI, against the real binary with
its embedded default of three local directories (ec 2+1)."""

import glob
import hashlib
import os
import shutil
import time
import urllib.request

import botocore.exceptions
import pytest

from conftest import Gateway


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def gw():
    g = Gateway()
    g.client().create_bucket(Bucket="objects")
    yield g
    g.cleanup()


SIZES = [0, 1, 4096, 65535, 1 << 20, (2 << 20) + 12345, 9_000_001]


@pytest.mark.parametrize("size", SIZES)
def test_put_get_round_trip(gw, size):
    """Bytes come back exactly, with the MD5 ETag, for sizes around chunk and stripe edges."""
    s3 = gw.client()
    data = os.urandom(size)
    put = s3.put_object(Bucket="objects", Key=f"rt/{size}", Body=data)
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket="objects", Key=f"rt/{size}")
    assert got["Body"].read() == data
    assert got["ContentLength"] == size


def test_checksums_stored_and_returned(gw):
    """A CRC32 checksum sent by boto3 is verified, stored and returned with ChecksumMode."""
    s3 = gw.client()
    s3.put_object(Bucket="objects", Key="ck", Body=b"checksummed", ChecksumAlgorithm="CRC32")
    head = s3.head_object(Bucket="objects", Key="ck", ChecksumMode="ENABLED")
    assert head.get("ChecksumCRC32"), head
    s3.put_object(Bucket="objects", Key="ck256", Body=b"x" * 1000, ChecksumAlgorithm="SHA256")
    head = s3.head_object(Bucket="objects", Key="ck256", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == __import__("base64").b64encode(hashlib.sha256(b"x" * 1000).digest()).decode()


def test_wrong_checksum_is_rejected_and_nothing_stored(gw):
    """A body whose x-amz-checksum-crc32 header is wrong gets BadDigest and is not stored."""
    s3 = gw.client()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="objects", Key="bad-crc", Body=b"payload", ChecksumCRC32="AAAAAA==")
    assert code_of(e) in ("BadDigest", "InvalidRequest")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket="objects", Key="bad-crc")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_content_md5_mismatch_is_bad_digest(gw):
    s3 = gw.client()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="objects", Key="bad-md5", Body=b"payload", ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")
    assert code_of(e) == "BadDigest"


def test_headers_and_metadata(gw):
    """Content headers and user metadata are stored and returned; response-* overrides apply."""
    s3 = gw.client()
    s3.put_object(Bucket="objects", Key="meta", Body=b"{}", ContentType="application/json",
                  CacheControl="max-age=60", ContentDisposition="attachment", Metadata={"Owner": "me", "x": "1"})
    head = s3.head_object(Bucket="objects", Key="meta")
    assert head["ContentType"] == "application/json"
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == "attachment"
    assert head["Metadata"] == {"owner": "me", "x": "1"}
    got = s3.get_object(Bucket="objects", Key="meta", ResponseContentType="text/plain")
    assert got["ContentType"] == "text/plain"


def test_ranges(gw):
    """Single ranges incl. suffix and open-ended are served as 206; past-the-end is 416."""
    s3 = gw.client()
    data = os.urandom(3 * (1 << 20) + 7)
    s3.put_object(Bucket="objects", Key="ranged", Body=data)
    for spec, expected in [("bytes=0-0", data[:1]), ("bytes=100-199", data[100:200]),
                           ("bytes=-10", data[-10:]), ("bytes=3145700-", data[3145700:]),
                           ("bytes=1048570-2097160", data[1048570:2097161]),
                           ("bytes=0-99999999", data)]:
        got = s3.get_object(Bucket="objects", Key="ranged", Range=spec)
        assert got["Body"].read() == expected, spec
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="objects", Key="ranged", Range=f"bytes={len(data)}-")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == f"bytes */{len(data)}"


def test_conditional_requests(gw):
    """If-Match / If-None-Match / If-Modified-Since on GET, If-None-Match: * on PUT."""
    s3 = gw.client()
    etag = s3.put_object(Bucket="objects", Key="cond", Body=b"v1")["ETag"]
    assert s3.get_object(Bucket="objects", Key="cond", IfMatch=etag)["Body"].read() == b"v1"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="objects", Key="cond", IfMatch='"0000"')
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="objects", Key="cond", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    future = __import__("datetime").datetime(2100, 1, 1)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="objects", Key="cond", IfModifiedSince=future)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="objects", Key="cond", Body=b"v2", IfNoneMatch="*")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    s3.put_object(Bucket="objects", Key="cond-new", Body=b"v1", IfNoneMatch="*")


def test_strong_comparison_and_empty_objects(gw):
    """If-Match compares strongly (a weak tag never matches), a suffix range of an empty
    object is the whole empty object (200), and partNumber with a Range is refused."""
    s3 = gw.client()
    etag = s3.put_object(Bucket="objects", Key="weak", Body=b"v1")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="objects", Key="weak", IfMatch=f"W/{etag}")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="objects", Key="weak", IfNoneMatch=f"W/{etag}")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    s3.put_object(Bucket="objects", Key="empty", Body=b"")
    got = s3.get_object(Bucket="objects", Key="empty", Range="bytes=-5")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == b""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="objects", Key="empty", Range="bytes=0-0")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="objects", Key="weak", PartNumber=1, Range="bytes=0-0")
    assert code_of(e) == "InvalidRequest"


def test_conditional_deletes(gw):
    """DELETE with If-Match deletes only the object it names: 412 on another ETag (the object
    stays), 404 when there is no object; DeleteObjects checks each key's ETag the same way."""
    s3 = gw.client()
    etag = s3.put_object(Bucket="objects", Key="cdel", Body=b"keep me")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_object(Bucket="objects", Key="cdel", IfMatch='"00000000000000000000000000000000"')
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket="objects", Key="cdel")["Body"].read() == b"keep me"
    s3.delete_object(Bucket="objects", Key="cdel", IfMatch=etag)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket="objects", Key="cdel")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_object(Bucket="objects", Key="cdel", IfMatch="*")
    assert code_of(e) == "NoSuchKey"

    good = s3.put_object(Bucket="objects", Key="cdel-a", Body=b"a")["ETag"]
    s3.put_object(Bucket="objects", Key="cdel-b", Body=b"b")
    result = s3.delete_objects(Bucket="objects", Delete={"Objects": [
        {"Key": "cdel-a", "ETag": good},
        {"Key": "cdel-b", "ETag": '"00000000000000000000000000000000"'},
    ]})
    assert [d["Key"] for d in result.get("Deleted", [])] == ["cdel-a"]
    assert [(x["Key"], x["Code"]) for x in result.get("Errors", [])] == [("cdel-b", "PreconditionFailed")]
    assert s3.get_object(Bucket="objects", Key="cdel-b")["Body"].read() == b"b"


def test_racing_writers_on_one_key(gw):
    """Of concurrent PUTs with If-None-Match: * to a new key exactly one wins; concurrent
    overwrites leave only the last version's shards once the purge has run."""
    from concurrent.futures import ThreadPoolExecutor
    s3 = gw.client()

    def exclusive(i):
        try:
            s3.put_object(Bucket="objects", Key="race-new", Body=b"v%d" % i * 50000, IfNoneMatch="*")
            return 200
        except botocore.exceptions.ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"]
    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(exclusive, range(8)))
    assert codes == [200] + [412] * 7, codes

    sites = os.path.join(gw.data_dir, "sites")
    def shard_files():
        return {p for p in glob.glob(os.path.join(sites, "*", "*", "*")) if os.path.isfile(p)}
    s3.put_object(Bucket="objects", Key="race-ow", Body=b"first")
    before = shard_files()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket="objects", Key="race-ow", Body=b"%d" % i * 70000),
                      range(8)))
    s3.delete_object(Bucket="objects", Key="race-ow")
    deadline = time.time() + 15
    while shard_files() - before and time.time() < deadline:
        time.sleep(0.2)
    assert not (shard_files() - before), "racing overwrites left shards behind"


def test_line_ends_in_keys_survive_an_unencoded_listing(gw):
    """A key with a carriage return and a line feed reads back unchanged from a listing without
    encoding-type=url: the XML carries them as character references, which parsers keep."""
    import botocore.handlers
    s3 = gw.client()
    key = "lines/cr\rlf\ncrlf\r\nend"
    s3.put_object(Bucket="objects", Key=key, Body=b"x")
    # botocore asks for encoding-type=url on every listing unless this handler is removed.
    s3.meta.events.unregister("before-parameter-build.s3.ListObjectsV2",
                              botocore.handlers.set_list_objects_encoding_type_url)
    url = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": "objects", "Prefix": "lines/"})
    assert "encoding-type" not in url
    body = urllib.request.urlopen(url).read()
    assert b"&#xD;" in body and b"\r" not in body, body
    listed = s3.list_objects_v2(Bucket="objects", Prefix="lines/")
    assert [o["Key"] for o in listed["Contents"]] == [key]


def test_overwrite_delete_and_purge(gw):
    """Overwriting replaces the content; DELETE removes it (and deleting again is 204); the old
    shards are purged from the sites."""
    s3 = gw.client()
    sites = os.path.join(gw.data_dir, "sites")
    def shard_files():
        return {p for p in glob.glob(os.path.join(sites, "*", "*", "*")) if os.path.isfile(p)}
    before = shard_files()
    s3.put_object(Bucket="objects", Key="ow", Body=b"first" * 1000)
    first = shard_files() - before
    assert len(first) == 3
    s3.put_object(Bucket="objects", Key="ow", Body=b"second")
    assert s3.get_object(Bucket="objects", Key="ow")["Body"].read() == b"second"
    deadline = time.time() + 10
    while first & shard_files() and time.time() < deadline:
        time.sleep(0.2)
    assert not (first & shard_files()), "overwritten shards were not purged"
    s3.delete_object(Bucket="objects", Key="ow")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="objects", Key="ow")
    assert code_of(e) == "NoSuchKey"
    s3.delete_object(Bucket="objects", Key="ow")


def test_bucket_not_empty(gw):
    s3 = gw.client()
    s3.create_bucket(Bucket="notempty")
    s3.put_object(Bucket="notempty", Key="k", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket="notempty")
    assert code_of(e) == "BucketNotEmpty"
    s3.delete_object(Bucket="notempty", Key="k")
    s3.delete_bucket(Bucket="notempty")


HOSTILE_KEYS = ["a+b", "with space", "100%", "k=v", "tilde~", "ünïcødé/日本", "dir//double", "trailing/",
                "ctl\x01byte", "q?mark&amp", "x" * 1024]


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys(gw, key):
    """Keys needing encoding round-trip through PUT, HEAD, GET and DELETE."""
    s3 = gw.client()
    s3.put_object(Bucket="objects", Key=key, Body=key.encode())
    assert s3.get_object(Bucket="objects", Key=key)["Body"].read() == key.encode()
    s3.delete_object(Bucket="objects", Key=key)


def test_aws_cli_cp_round_trip(gw, tmp_path):
    """`aws s3 cp` up and down (single PUT below the multipart threshold)."""
    src = tmp_path / "file.bin"
    src.write_bytes(os.urandom(3_000_000))
    gw.aws("s3", "cp", str(src), "s3://objects/cli/file.bin")
    dst = tmp_path / "back.bin"
    gw.aws("s3", "cp", "s3://objects/cli/file.bin", str(dst))
    assert dst.read_bytes() == src.read_bytes()


def test_presigned_put_and_get(gw):
    """A presigned PUT (unsigned payload) and GET work with a plain HTTP client."""
    s3 = gw.client(signature_version="s3v4")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "objects", "Key": "pre"}, ExpiresIn=60)
    request = urllib.request.Request(url, data=b"presigned body", method="PUT")
    assert urllib.request.urlopen(request).status == 200
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "objects", "Key": "pre"}, ExpiresIn=60)
    assert urllib.request.urlopen(url).read() == b"presigned body"


def test_degraded_read_and_too_many_failures():
    """With one of three sites gone, GET reconstructs from parity; with two gone it answers
    503 instead of wrong bytes; a corrupted chunk is detected and reconstructed around."""
    g = Gateway()
    try:
        s3 = g.client()
        s3.create_bucket(Bucket="degraded")
        sites = sorted(glob.glob(os.path.join(g.data_dir, "sites", "local-*")))
        corrupt = os.urandom(3 * (1 << 20))
        s3.put_object(Bucket="degraded", Key="corrupt", Body=corrupt)
        # Corrupt one byte of a data shard: the chunk checksum catches it and parity rebuilds it.
        victim = data_shard_files(g.data_dir)[0]
        with open(victim, "r+b") as f:
            f.seek(1000)
            byte = f.read(1)
            f.seek(1000)
            f.write(bytes([byte[0] ^ 0xFF]))
        assert s3.get_object(Bucket="degraded", Key="corrupt")["Body"].read() == corrupt
        data = os.urandom(5 * (1 << 20) + 3)
        s3.put_object(Bucket="degraded", Key="obj", Body=data)
        shutil.rmtree(sites[1])
        os.mkdir(sites[1])
        assert s3.get_object(Bucket="degraded", Key="obj")["Body"].read() == data
        assert s3.get_object(Bucket="degraded", Key="obj", Range="bytes=2000000-2000999")["Body"].read() == data[2000000:2001000]
        shutil.rmtree(sites[2])
        os.mkdir(sites[2])
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.get_object(Bucket="degraded", Key="obj")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    finally:
        g.cleanup()


def test_objects_survive_restart():
    """Acknowledged objects are readable after a restart (metadata log + shards on disk)."""
    g = Gateway()
    try:
        s3 = g.client()
        s3.create_bucket(Bucket="restart")
        blobs = {f"k{i}": os.urandom(1000 * i + 1) for i in range(20)}
        for key, blob in blobs.items():
            s3.put_object(Bucket="restart", Key=key, Body=blob)
        assert g.stop() == 0
        again = Gateway(data_dir=g.data_dir)
        try:
            s3 = again.client()
            for key, blob in blobs.items():
                assert s3.get_object(Bucket="restart", Key=key)["Body"].read() == blob
        finally:
            again.cleanup()
    finally:
        g.cleanup()


def data_shard_files(data_dir):
    """Shard files holding data (not parity) chunks, read from each shard's manifest footer:
    the trailer's first 4 bytes give the footer body length; the body's second byte is the
    shard index, and data shards come first (index < k = 2 for the default ec 2+1)."""
    found = []
    for path in glob.glob(os.path.join(data_dir, "sites", "local-*", "*", "*")):
        with open(path, "rb") as f:
            blob = f.read()
        body_len = int.from_bytes(blob[-16:-12], "little")
        if blob[len(blob) - 16 - body_len + 1] < 2:
            found.append(path)
    return sorted(found)


def test_corrupt_shard_is_repaired_after_a_read():
    """A flipped byte in a stored shard: the GET is still correct, the read reports the damage,
    and the repair worker rewrites that shard so that it verifies again."""
    g = Gateway()
    try:
        s3 = g.client()
        s3.create_bucket(Bucket="heal")
        data = os.urandom(3 * (1 << 20) + 1)
        s3.put_object(Bucket="heal", Key="obj", Body=data)
        sites = sorted(glob.glob(os.path.join(g.data_dir, "sites", "local-*")))
        # A data shard: a healthy GET reads it (parity damage is found by scrub, not reads).
        victim = data_shard_files(g.data_dir)[0]
        with open(victim, "rb") as f:
            original = f.read()
        damaged = bytearray(original)
        damaged[1000] ^= 0xFF
        with open(victim, "wb") as f:
            f.write(damaged)
        assert s3.get_object(Bucket="heal", Key="obj")["Body"].read() == data
        deadline = time.time() + 20
        while time.time() < deadline:
            with open(victim, "rb") as f:
                if f.read() == original:
                    break
            time.sleep(0.3)
        with open(victim, "rb") as f:
            assert f.read() == original, "the damaged shard was not rewritten"
        # Fully redundant again: any single other site may now be lost.
        other = next(site for site in sites if not victim.startswith(site + os.sep))
        shutil.rmtree(other)
        os.mkdir(other)
        assert s3.get_object(Bucket="heal", Key="obj")["Body"].read() == data
    finally:
        g.cleanup()


def test_unsupported_write_features_are_refused(gw):
    """A PUT, copy or multipart upload asking for encryption, an Object Lock retention or tags
    is refused before anything is stored (Tessera has none of them); an invalid storage class
    is InvalidStorageClass, a valid one is accepted."""
    import datetime
    s3 = gw.client()
    s3.put_object(Bucket="objects", Key="plain-source", Body=b"x")
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    refused = [
        (dict(ServerSideEncryption="AES256"), 501, "NotImplemented"),
        (dict(ServerSideEncryption="aws:kms"), 501, "NotImplemented"),
        (dict(SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32), 501, "NotImplemented"),
        (dict(ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later), 400, "InvalidRequest"),
        (dict(ObjectLockLegalHoldStatus="ON"), 400, "InvalidRequest"),
        (dict(Tagging="team=storage"), 501, "NotImplemented"),
        (dict(StorageClass="FAST"), 400, "InvalidStorageClass"),
    ]
    for extra, status, code in refused:
        calls = [
            lambda: s3.put_object(Bucket="objects", Key="refused", Body=b"body", **extra),
            lambda: s3.create_multipart_upload(Bucket="objects", Key="refused", **extra),
        ]
        if "SSECustomerKey" not in extra:
            calls.append(lambda: s3.copy_object(
                Bucket="objects", Key="refused", CopySource={"Bucket": "objects", "Key": "plain-source"},
                **extra))
        for call in calls:
            with pytest.raises(botocore.exceptions.ClientError) as e:
                call()
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == status, extra
            assert code_of(e) == code, extra
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket="objects", Key="refused")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert s3.list_multipart_uploads(Bucket="objects", Prefix="refused").get("Uploads", []) == []
    s3.put_object(Bucket="objects", Key="infrequent", Body=b"ia", StorageClass="STANDARD_IA")
    assert s3.get_object(Bucket="objects", Key="infrequent")["Body"].read() == b"ia"


def test_metadata_in_rfc_2047_words(gw):
    """A metadata value sent as RFC 2047 encoded words is stored as the text they encode and
    returned, like every value with characters outside ASCII, as one UTF-8 base64 word; ASCII
    values are returned as sent."""
    import email.header
    s3 = gw.client()
    s3.put_object(Bucket="objects", Key="words", Body=b"x",
                  Metadata={"q": "=?UTF-8?Q?Mini=C3=B6_caf=C3=A9?=", "plain": "a=?b",
                            "two": "=?ISO-8859-1?Q?J=F8rn?= =?UTF-8?B?8J+Zgg==?="})
    meta = s3.head_object(Bucket="objects", Key="words")["Metadata"]
    assert meta["plain"] == "a=?b"
    assert meta["q"] == "=?UTF-8?B?TWluacO2IGNhZsOp?=", meta
    for name, text in [("q", "Miniö café"), ("two", "Jørn🙂")]:
        ((raw, charset),) = email.header.decode_header(meta[name])
        assert raw.decode(charset) == text
