"""Multipart checksums (`x-amz-checksum-type` COMPOSITE / FULL_OBJECT) through boto3 and the aws
CLI, checked against checksums computed here independently (zlib, hashlib and a table CRC), and
CompleteMultipartUpload racing AbortMultipartUpload (and another Complete) on the real binary."""

import base64
import hashlib
import os
import threading
import time
import zlib

import botocore.exceptions
import pytest

from conftest import Gateway

MIB = 1 << 20
BUCKET = "mpck"


def _table(poly):
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        out.append(c)
    return out


_CRC32C = _table(0x82F63B78)
_CRC64NVME = _table(0x9A6C9329AC4BC9B5)


def _crc(data, table, width):
    mask = (1 << width) - 1
    c = mask
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return (c ^ mask).to_bytes(width // 8, "big")


def digest(algorithm, data):
    """Raw checksum bytes of `data`, computed without the gateway."""
    if algorithm == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "CRC32C":
        return _crc(data, _CRC32C, 32)
    if algorithm == "CRC64NVME":
        return _crc(data, _CRC64NVME, 64)
    return hashlib.new(algorithm.lower(), data).digest()


def b64(raw):
    return base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def gw():
    g = Gateway()
    g.client().create_bucket(Bucket=BUCKET)
    yield g
    g.cleanup()


@pytest.fixture(scope="module")
def parts():
    return [os.urandom(5 * MIB), os.urandom(1000)]


def upload(s3, key, algorithm, parts, checksum_type=None, send_part_checksums=True):
    """Creates an upload with `algorithm`, uploads `parts` with their checksums (computed here)
    and returns (upload id, part list for the Complete XML)."""
    args = {"ChecksumAlgorithm": algorithm}
    if checksum_type:
        args["ChecksumType"] = checksum_type
    created = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **args)
    assert created["ChecksumAlgorithm"] == algorithm
    expected_type = checksum_type or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")
    assert created["ChecksumType"] == expected_type
    uid = created["UploadId"]
    listed = []
    for number, data in enumerate(parts, start=1):
        value = b64(digest(algorithm, data))
        answer = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=number, Body=data,
                                **{f"Checksum{algorithm}": value})
        assert answer[f"Checksum{algorithm}"] == value
        entry = {"PartNumber": number, "ETag": answer["ETag"]}
        if send_part_checksums:
            entry[f"Checksum{algorithm}"] = value
        listed.append(entry)
    return uid, listed


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
def test_full_object_checksum_is_the_crc_of_the_object(gw, parts, algorithm):
    """A FULL_OBJECT upload's checksum (combined from the part CRCs, no re-read) equals the CRC
    of the whole object computed here; the Complete request's own checksum header is checked;
    HEAD/GET return it with the type, ListParts the part checksums and the upload's type."""
    s3 = gw.client()
    key = f"full-{algorithm}"
    uid, listed = upload(s3, key, algorithm, parts, "FULL_OBJECT")
    shown = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid)
    assert shown["ChecksumAlgorithm"] == algorithm and shown["ChecksumType"] == "FULL_OBJECT"
    assert [p[f"Checksum{algorithm}"] for p in shown["Parts"]] == [b64(digest(algorithm, p)) for p in parts]
    whole = b"".join(parts)
    expected = b64(digest(algorithm, whole))
    wrong = b64(digest(algorithm, whole + b"x"))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": listed},
                                     **{f"Checksum{algorithm}": wrong})
    assert e.value.response["Error"]["Code"] == "BadDigest"
    done = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": listed},
                                        **{f"Checksum{algorithm}": expected})
    assert done[f"Checksum{algorithm}"] == expected
    assert done["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected and head["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == whole
    assert got["ResponseMetadata"]["HTTPHeaders"][f"x-amz-checksum-{algorithm.lower()}"] == expected
    second = s3.head_object(Bucket=BUCKET, Key=key, PartNumber=2, ChecksumMode="ENABLED")
    assert second[f"Checksum{algorithm}"] == b64(digest(algorithm, parts[1]))
    assert "x-amz-meta-:checksum-type" not in str(head["ResponseMetadata"]["HTTPHeaders"])
    assert head["Metadata"] == {}


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_composite_checksum_is_the_checksum_of_part_checksums(gw, parts, algorithm):
    """A COMPOSITE upload's checksum is the checksum of the concatenated raw part checksums,
    shown as `base64-N`; GET/HEAD with partNumber return that part's checksum."""
    s3 = gw.client()
    key = f"composite-{algorithm}"
    uid, listed = upload(s3, key, algorithm, parts)
    expected = b64(digest(algorithm, b"".join(digest(algorithm, p) for p in parts))) + f"-{len(parts)}"
    done = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": listed})
    assert done[f"Checksum{algorithm}"] == expected
    assert done["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected and head["ChecksumType"] == "COMPOSITE"
    first = s3.get_object(Bucket=BUCKET, Key=key, PartNumber=1, ChecksumMode="ENABLED")
    assert first["Body"].read() == parts[0]
    assert first[f"Checksum{algorithm}"] == b64(digest(algorithm, parts[0]))
    # Without checksum mode nothing is returned.
    assert f"Checksum{algorithm}" not in s3.head_object(Bucket=BUCKET, Key=key)


@pytest.mark.parametrize("algorithm, checksum_type", [("CRC32C", "FULL_OBJECT"), ("SHA256", "COMPOSITE")])
def test_copied_parts_carry_the_upload_checksum(gw, parts, algorithm, checksum_type):
    """UploadPartCopy of a range into an upload created with a checksum algorithm: the part's
    checksum is computed from the copied bytes (shown in the CopyPartResult and ListParts), and
    the object's checksum covers copied and uploaded parts alike."""
    s3 = gw.client()
    source = os.urandom(7 * MIB)
    s3.put_object(Bucket=BUCKET, Key=f"copy-source-{algorithm}", Body=source)
    key = f"copied-{algorithm}"
    created = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm=algorithm,
                                         ChecksumType=checksum_type)
    uid = created["UploadId"]
    first = source[MIB:6 * MIB + 3]
    copied = s3.upload_part_copy(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=1,
                                 CopySource={"Bucket": BUCKET, "Key": f"copy-source-{algorithm}"},
                                 CopySourceRange=f"bytes={MIB}-{6 * MIB + 2}")
    assert copied["CopyPartResult"][f"Checksum{algorithm}"] == b64(digest(algorithm, first))
    second = parts[1]
    uploaded = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=2, Body=second,
                              **{f"Checksum{algorithm}": b64(digest(algorithm, second))})
    shown = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid)
    assert [p[f"Checksum{algorithm}"] for p in shown["Parts"]] == [b64(digest(algorithm, first)),
                                                                   b64(digest(algorithm, second))]
    listed = [
        {"PartNumber": 1, "ETag": copied["CopyPartResult"]["ETag"], f"Checksum{algorithm}": b64(digest(algorithm, first))},
        {"PartNumber": 2, "ETag": uploaded["ETag"], f"Checksum{algorithm}": b64(digest(algorithm, second))},
    ]
    done = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": listed})
    if checksum_type == "FULL_OBJECT":
        expected = b64(digest(algorithm, first + second))
    else:
        expected = b64(digest(algorithm, digest(algorithm, first) + digest(algorithm, second))) + "-2"
    assert done[f"Checksum{algorithm}"] == expected
    got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == first + second


def test_checksum_rules_and_mismatches(gw, parts):
    """S3's rules: CRC64NVME is FULL_OBJECT only, SHAs COMPOSITE only, a type needs an
    algorithm; a wrong part checksum in the Complete XML is InvalidPart; a composite Complete
    must list each part's checksum; a part's checksum must use the upload's algorithm."""
    s3 = gw.client()
    for algorithm, kind in [("CRC64NVME", "COMPOSITE"), ("SHA1", "FULL_OBJECT"), ("SHA256", "FULL_OBJECT")]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.create_multipart_upload(Bucket=BUCKET, Key="rules", ChecksumAlgorithm=algorithm, ChecksumType=kind)
        assert e.value.response["Error"]["Code"] == "InvalidRequest", (algorithm, kind)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_multipart_upload(Bucket=BUCKET, Key="rules", ChecksumType="FULL_OBJECT")
    assert e.value.response["Error"]["Code"] == "InvalidRequest"

    uid, listed = upload(s3, "mismatch", "CRC32", parts)
    bad = [dict(p) for p in listed]
    bad[1]["ChecksumCRC32"] = b64(digest("CRC32", b"other"))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=BUCKET, Key="mismatch", UploadId=uid, MultipartUpload={"Parts": bad})
    assert e.value.response["Error"]["Code"] == "InvalidPart"
    bare = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=BUCKET, Key="mismatch", UploadId=uid, MultipartUpload={"Parts": bare})
    assert e.value.response["Error"]["Code"] == "InvalidRequest"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket=BUCKET, Key="mismatch", UploadId=uid, PartNumber=3, Body=b"abc",
                       ChecksumSHA256=b64(digest("SHA256", b"abc")))
    assert e.value.response["Error"]["Code"] == "InvalidRequest"
    # The failed attempts changed nothing: the right document still completes.
    s3.complete_multipart_upload(Bucket=BUCKET, Key="mismatch", UploadId=uid, MultipartUpload={"Parts": listed})
    assert s3.get_object(Bucket=BUCKET, Key="mismatch")["Body"].read() == b"".join(parts)


def test_boto3_upload_file_and_aws_cli_defaults(gw, tmp_path):
    """boto3's `upload_file` and the aws CLI, unchanged (their default CRC32 per part): the
    object gets the composite CRC32 of the part CRCs; `download_file`, `aws s3 cp` down and a
    full GET with checksum validation all pass."""
    s3 = gw.client()
    data = os.urandom(18 * MIB)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    s3.upload_file(str(src), BUCKET, "boto3-file")
    head = s3.head_object(Bucket=BUCKET, Key="boto3-file", ChecksumMode="ENABLED")
    chunk = 8 * MIB  # s3transfer's default part size
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    composite = b64(digest("CRC32", b"".join(digest("CRC32", p) for p in pieces))) + f"-{len(pieces)}"
    assert head["ChecksumCRC32"] == composite and head["ChecksumType"] == "COMPOSITE"
    s3.download_file(BUCKET, "boto3-file", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    assert s3.get_object(Bucket=BUCKET, Key="boto3-file", ChecksumMode="ENABLED")["Body"].read() == data

    gw.aws("s3", "cp", str(src), f"s3://{BUCKET}/cli-file")
    head = s3.head_object(Bucket=BUCKET, Key="cli-file", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == composite
    gw.aws("s3", "cp", f"s3://{BUCKET}/cli-file", str(tmp_path / "cli-back.bin"))
    assert (tmp_path / "cli-back.bin").read_bytes() == data


def test_parts_without_declared_algorithm_give_a_full_object_crc(gw, parts):
    """An upload created without an algorithm whose parts all carry CRC32 gets the full-object
    CRC32 of the data (combined, not re-read); parts without checksums give none."""
    s3 = gw.client()
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key="undeclared")["UploadId"]
    listed = []
    for number, data in enumerate(parts, start=1):
        etag = s3.upload_part(Bucket=BUCKET, Key="undeclared", UploadId=uid, PartNumber=number, Body=data,
                              ChecksumCRC32=b64(digest("CRC32", data)))["ETag"]
        listed.append({"PartNumber": number, "ETag": etag})
    done = s3.complete_multipart_upload(Bucket=BUCKET, Key="undeclared", UploadId=uid,
                                        MultipartUpload={"Parts": listed})
    assert done["ChecksumCRC32"] == b64(digest("CRC32", b"".join(parts)))
    assert done["ChecksumType"] == "FULL_OBJECT"


def _race_round(gw, clients, index, mode):
    """One upload raced by `mode` ("abort" or "complete") against a Complete; returns the
    outcomes (None on success, else the error code) and the object's bytes."""
    s3 = clients[0]
    key = f"race/{mode}/{index}"
    data = os.urandom(64 * 1024 + index)
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=1, Body=data)["ETag"]
    barrier = threading.Barrier(2)
    outcome = {}

    def complete(name, client):
        barrier.wait()
        try:
            client.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid,
                                             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
            outcome[name] = None
        except botocore.exceptions.ClientError as e:
            outcome[name] = e.response["Error"]["Code"]

    def abort(name, client):
        barrier.wait()
        # A Complete does more work before it commits than an Abort: stagger the abort from
        # 0 to 19 ms so that either can reach the owning core first.
        time.sleep((index % 20) * 0.001)
        try:
            client.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid)
            outcome[name] = None
        except botocore.exceptions.ClientError as e:
            outcome[name] = e.response["Error"]["Code"]

    other = abort if mode == "abort" else complete
    threads = [threading.Thread(target=complete, args=("complete", clients[1])),
               threading.Thread(target=other, args=("other", clients[2]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return key, data, outcome


@pytest.mark.parametrize("mode", ["abort", "complete"])
def test_complete_racing_abort_or_complete(gw, mode):
    """Threads race CompleteMultipartUpload against AbortMultipartUpload (or a second Complete)
    on 60 uploads, the abort staggered so both orders occur: exactly one wins each time; the loser gets NoSuchUpload; a completed object
    reads back exactly (also after the purge worker has run), and an aborted one does not
    exist. Never an object that cannot be read."""
    clients = [gw.client() for _ in range(3)]
    s3 = clients[0]
    completed = []
    wins = {"complete": 0, "other": 0}
    for index in range(60):
        key, data, outcome = _race_round(gw, clients, index, mode)
        winners = [name for name, code in outcome.items() if code is None]
        assert len(winners) == 1, f"round {index}: {outcome}"
        loser = "other" if winners == ["complete"] else "complete"
        assert outcome[loser] == "NoSuchUpload", f"round {index}: {outcome}"
        wins[winners[0]] += 1
        object_exists = mode == "complete" or winners == ["complete"]
        if object_exists:
            assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
            completed.append((key, data))
        else:
            with pytest.raises(botocore.exceptions.ClientError) as e:
                s3.head_object(Bucket=BUCKET, Key=key)
            assert e.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    # The purge worker runs about every second: give it time to act on whatever the losers
    # queued, then read every completed object again.
    time.sleep(3)
    for key, data in completed:
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    print(f"race {mode}: {wins}")
    # Both outcomes happened, so both branches above were exercised.
    assert wins["complete"] > 0 and wins["other"] > 0, wins
