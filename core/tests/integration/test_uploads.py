"""In-progress multipart uploads: ListMultipartUploads with prefix, delimiter and its
pagination markers (boto3, its paginator, the aws CLI), DeleteBucket refused while uploads are
open, and the reaping of abandoned uploads after `engine.upload_age_max_s`."""

import glob
import json
import os
import time

import botocore.exceptions
import pytest

from conftest import Gateway


@pytest.fixture(scope="module")
def gw():
    g = Gateway(extra_args=["--cores", "2"])
    yield g
    g.cleanup()


def code_of(e):
    return e.value.response["Error"]["Code"]


def start_uploads(s3, bucket, keys):
    """Creates one upload per key (in order) and returns [(key, upload id)]."""
    return [(k, s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"]) for k in keys]


def test_list_pages_with_markers(gw):
    """Uploads spread over both cores are listed in (key, initiation) order; paging by
    max-uploads with NextKeyMarker/NextUploadIdMarker visits each exactly once, including
    several uploads of one key split across pages."""
    s3 = gw.client()
    s3.create_bucket(Bucket="lmu")
    keys = ["k%02d" % i for i in range(13)] + ["k05", "k05", "k07"]
    created = start_uploads(s3, "lmu", keys)
    expected = sorted(created, key=lambda kv: kv[0])  # stable: same-key uploads stay in creation order
    seen = []
    params = {"Bucket": "lmu", "MaxUploads": 4}
    pages = 0
    while True:
        page = s3.list_multipart_uploads(**params)
        pages += 1
        assert page["MaxUploads"] == 4
        got = [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        assert len(got) <= 4
        seen += got
        if not page["IsTruncated"]:
            break
        params["KeyMarker"] = page["NextKeyMarker"]
        params["UploadIdMarker"] = page["NextUploadIdMarker"]
        assert (page["NextKeyMarker"], page["NextUploadIdMarker"]) == got[-1]
    assert seen == expected
    assert pages == 4
    # A key marker alone skips every upload of that key.
    page = s3.list_multipart_uploads(Bucket="lmu", KeyMarker="k05")
    assert [u["Key"] for u in page["Uploads"]][:2] == ["k06", "k07"]
    assert all(u["Initiator"]["ID"] and u["Owner"]["ID"] for u in page["Uploads"])
    # The paginator gets them all too.
    paginator = s3.get_paginator("list_multipart_uploads")
    listed = [(u["Key"], u["UploadId"]) for p in paginator.paginate(Bucket="lmu", PaginationConfig={"PageSize": 3})
              for u in p.get("Uploads", [])]
    assert listed == expected
    for key, uid in created:
        s3.abort_multipart_upload(Bucket="lmu", Key=key, UploadId=uid)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="lmu")


def test_prefix_delimiter_and_encoding(gw):
    """Prefix filters; a delimiter rolls keys into CommonPrefixes that count against
    max-uploads; a marker equal to a common prefix continues after it; encoding-type=url."""
    s3 = gw.client()
    s3.create_bucket(Bucket="lmd")
    created = start_uploads(s3, "lmd", ["a/1", "a/2", "b", "c/x/1", "c/y", "d e+f", "z"])
    page = s3.list_multipart_uploads(Bucket="lmd", Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "c/"]
    assert [u["Key"] for u in page["Uploads"]] == ["b", "d e+f", "z"]
    page = s3.list_multipart_uploads(Bucket="lmd", Delimiter="/", MaxUploads=2)
    assert page["IsTruncated"] and page["NextKeyMarker"] == "b"
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/"]
    page = s3.list_multipart_uploads(Bucket="lmd", Delimiter="/", KeyMarker="a/")
    assert [u["Key"] for u in page["Uploads"]] == ["b", "d e+f", "z"]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["c/"]
    page = s3.list_multipart_uploads(Bucket="lmd", Prefix="c/", Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["c/x/"]
    assert [u["Key"] for u in page["Uploads"]] == ["c/y"]
    # Asked for explicitly, the encoding reaches the caller as S3 sends it.
    page = s3.list_multipart_uploads(Bucket="lmd", Prefix="d", EncodingType="url")
    assert [u["Key"] for u in page["Uploads"]] == ["d%20e%2Bf"]
    assert page["EncodingType"] == "url"
    for key, uid in created:
        s3.abort_multipart_upload(Bucket="lmd", Key=key, UploadId=uid)


def test_aws_cli_list_multipart_uploads(gw):
    """`aws s3api list-multipart-uploads` (which pages on its own) shows every open upload."""
    s3 = gw.client()
    s3.create_bucket(Bucket="lmcli")
    created = start_uploads(s3, "lmcli", ["cli-%d" % i for i in range(5)])
    out = gw.aws("s3api", "list-multipart-uploads", "--bucket", "lmcli", "--page-size", "2").stdout
    listed = [(u["Key"], u["UploadId"]) for u in json.loads(out)["Uploads"]]
    assert listed == created
    for key, uid in created:
        s3.abort_multipart_upload(Bucket="lmcli", Key=key, UploadId=uid)


def test_delete_bucket_refused_while_uploads_open(gw):
    """DeleteBucket is BucketNotEmpty while an upload is open on any core, and succeeds once
    it is aborted."""
    s3 = gw.client()
    s3.create_bucket(Bucket="busy")
    uid = s3.create_multipart_upload(Bucket="busy", Key="pending")["UploadId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket="busy")
    assert code_of(e) == "BucketNotEmpty"
    s3.abort_multipart_upload(Bucket="busy", Key="pending", UploadId=uid)
    s3.delete_bucket(Bucket="busy")


def test_abandoned_uploads_are_reaped():
    """With engine.upload_age_max_s = 2, an upload left alone is aborted by the background
    reaper: it leaves the listing, its part's shards leave the sites, and UploadPart answers
    NoSuchUpload; a fresh upload is still listed."""
    g = Gateway(config_text="[engine]\nupload_age_max_s = 2\n")
    try:
        s3 = g.client()
        s3.create_bucket(Bucket="reap")
        sites = os.path.join(g.data_dir, "sites")

        def files():
            return {p for p in glob.glob(os.path.join(sites, "*", "*", "*")) if os.path.isfile(p)}

        before = files()
        uid = s3.create_multipart_upload(Bucket="reap", Key="old")["UploadId"]
        s3.upload_part(Bucket="reap", Key="old", UploadId=uid, PartNumber=1, Body=os.urandom(50_000))
        added = files() - before
        assert len(added) == 3
        assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="reap")["Uploads"]] == [uid]
        deadline = time.time() + 30  # age 2 s + step interval 1 s + purge grace 5 s
        while time.time() < deadline and ("Uploads" in s3.list_multipart_uploads(Bucket="reap")
                                           or added & files()):
            time.sleep(0.25)
        assert "Uploads" not in s3.list_multipart_uploads(Bucket="reap")
        assert not (added & files()), "the reaped upload's parts were not purged"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.upload_part(Bucket="reap", Key="old", UploadId=uid, PartNumber=2, Body=b"late")
        assert code_of(e) == "NoSuchUpload"
        fresh = s3.create_multipart_upload(Bucket="reap", Key="fresh")["UploadId"]
        assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="reap")["Uploads"]] == [fresh]
    finally:
        g.cleanup()


def test_listing_survives_restart():
    """Open uploads are still listed (same ids, same order) after a gateway restart, and
    DeleteBucket still refuses the bucket."""
    g = Gateway()
    try:
        s3 = g.client()
        s3.create_bucket(Bucket="restart")
        created = start_uploads(s3, "restart", ["r/1", "r/2", "s"])
        assert g.stop() == 0
        again = Gateway(data_dir=g.data_dir)
        try:
            s3 = again.client()
            listed = [(u["Key"], u["UploadId"]) for u in s3.list_multipart_uploads(Bucket="restart")["Uploads"]]
            assert listed == created
            with pytest.raises(botocore.exceptions.ClientError) as e:
                s3.delete_bucket(Bucket="restart")
            assert code_of(e) == "BucketNotEmpty"
        finally:
            again.cleanup()
    finally:
        g.cleanup()
