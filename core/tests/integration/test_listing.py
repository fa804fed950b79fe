"""ListObjects v1/v2 and DeleteObjects through boto3 paginators and the aws CLI: pages merged
from every core, continuation that always progresses, delimiters, URL encoding, batch delete."""

import os

import botocore.exceptions
import pytest

from conftest import Gateway


@pytest.fixture(scope="module")
def listing():
    gw = Gateway()
    s3 = gw.client()
    s3.create_bucket(Bucket="listing")
    keys = [f"many/{i:05d}" for i in range(1203)]
    keys += ["photos/2025/a.jpg", "photos/2025/b.jpg", "photos/2026/c.jpg", "photos/top.jpg",
             "docs/readme", "unicode/ü", "unicode/日本", "space key", "plus+key", "a"]
    for key in keys:
        s3.put_object(Bucket="listing", Key=key, Body=key.encode())
    yield gw, sorted(keys, key=lambda k: k.encode())
    gw.cleanup()


def test_v2_paginates_everything_in_byte_order(listing):
    """Small pages over 1213 keys return every key once, in UTF-8 byte order."""
    gw, keys = listing
    s3 = gw.client()
    seen = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="listing", PaginationConfig={"PageSize": 97}):
        seen += [o["Key"] for o in page.get("Contents", [])]
        assert page["KeyCount"] <= 97
    assert seen == keys


def test_v1_paginates_with_markers(listing):
    gw, keys = listing
    s3 = gw.client()
    seen = []
    for page in s3.get_paginator("list_objects").paginate(Bucket="listing", PaginationConfig={"PageSize": 250}):
        seen += [o["Key"] for o in page.get("Contents", [])]
    assert seen == keys


def test_delimiter_and_prefix(listing):
    """Delimiters roll keys into CommonPrefixes, nested under a prefix too."""
    gw, _ = listing
    s3 = gw.client()
    top = s3.list_objects_v2(Bucket="listing", Delimiter="/")
    prefixes = [p["Prefix"] for p in top.get("CommonPrefixes", [])]
    assert prefixes == ["docs/", "many/", "photos/", "unicode/"]
    assert [o["Key"] for o in top["Contents"]] == ["a", "plus+key", "space key"]
    nested = s3.list_objects_v2(Bucket="listing", Prefix="photos/", Delimiter="/")
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["photos/2025/", "photos/2026/"]
    assert [o["Key"] for o in nested["Contents"]] == ["photos/top.jpg"]
    # A page boundary inside a common prefix never repeats it.
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket="listing", Delimiter="/", PaginationConfig={"PageSize": 1}))
    rolled = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
    assert rolled == ["docs/", "many/", "photos/", "unicode/"]


def test_start_after_and_max_keys_zero(listing):
    gw, keys = listing
    s3 = gw.client()
    after = s3.list_objects_v2(Bucket="listing", StartAfter="photos/2026/c.jpg", MaxKeys=2)
    assert [o["Key"] for o in after["Contents"]] == [k for k in keys if k.encode() > b"photos/2026/c.jpg"][:2]
    empty = s3.list_objects_v2(Bucket="listing", MaxKeys=0)
    assert empty["KeyCount"] == 0 and "Contents" not in empty


def test_aws_cli_ls_recursive_over_1000_keys(listing):
    gw, keys = listing
    out = gw.aws("s3", "ls", "--recursive", "s3://listing/many/").stdout
    assert len(out.strip().splitlines()) == 1203


def test_delete_objects_batch_and_quiet():
    """DeleteObjects removes up to 1000 keys, reports missing ones as deleted, and Quiet
    returns only errors; aws s3 rm --recursive empties a prefix."""
    gw = Gateway()
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="batch")
        for i in range(30):
            s3.put_object(Bucket="batch", Key=f"k/{i}", Body=b"x")
        result = s3.delete_objects(Bucket="batch", Delete={"Objects": [{"Key": f"k/{i}"} for i in range(10)] + [{"Key": "missing"}]})
        assert len(result["Deleted"]) == 11 and not result.get("Errors")
        quiet = s3.delete_objects(Bucket="batch", Delete={"Objects": [{"Key": f"k/{i}"} for i in range(10, 20)], "Quiet": True})
        assert not quiet.get("Deleted")
        left = [o["Key"] for o in s3.list_objects_v2(Bucket="batch")["Contents"]]
        assert sorted(left) == sorted(f"k/{i}" for i in range(20, 30))
        gw.aws("s3", "rm", "--recursive", "s3://batch/k/")
        assert s3.list_objects_v2(Bucket="batch")["KeyCount"] == 0
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.delete_objects(Bucket="batch", Delete={"Objects": [{"Key": str(i)} for i in range(1001)]})
        assert e.value.response["Error"]["Code"] == "MalformedXML"
    finally:
        gw.cleanup()


def test_aws_cli_sync_round_trip(tmp_path):
    """`aws s3 sync` uploads a tree of small files and downloads it back identically."""
    gw = Gateway()
    try:
        gw.client().create_bucket(Bucket="sync")
        src = tmp_path / "src"
        for i in range(150):
            path = src / f"d{i % 7}" / f"file-{i}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(i * 37))
        gw.aws("s3", "sync", str(src), "s3://sync/tree")
        dst = tmp_path / "dst"
        gw.aws("s3", "sync", "s3://sync/tree", str(dst))
        for path in src.rglob("*"):
            if path.is_file():
                assert (dst / path.relative_to(src)).read_bytes() == path.read_bytes()
        second = gw.aws("s3", "sync", str(src), "s3://sync/tree").stdout
        assert "upload:" not in second  # nothing changed: sync compares listing sizes and times
    finally:
        gw.cleanup()
