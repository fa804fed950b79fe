"""Deletes through a gateway on real S3 sites (two radosgw buckets and one rclone bucket): a
DELETE answers once its metadata commits, without waiting on the sites, and the purge worker
then removes the shards at the backends in batches.

The backends are listed with their own S3 API, so "purged" means the S3 servers no longer hold
the shards, not that the gateway believes so.
"""

import statistics
import time

from conftest import SitesGateway

OBJECTS = 50
# A DELETE is two metadata commits; ~2 ms here. 200 ms is far above that and far below the
# 1–2 s per key once reported for `aws s3 rm --recursive`.
DELETE_MEDIAN_MS_MAX = 200
PURGE_WAIT_S = 60


def _wait_until_purged(gw, deadline_s=PURGE_WAIT_S):
    """Polls the backends until they hold no shard; returns the counts last seen."""
    deadline = time.time() + deadline_s
    while True:
        counts = gw.site_shard_counts()
        if sum(counts.values()) == 0 or time.time() > deadline:
            return counts
        time.sleep(0.25)


def test_deletes_answer_fast_and_the_shards_leave_the_s3_sites():
    """50 objects deleted one by one with boto3: the median DELETE is under 200 ms, every key
    is gone from listings at once, and every shard leaves every S3 backend soon after. Then
    DeleteObjects of 400 keys and `aws s3 rm --recursive` of 100 keys do the same."""
    gw = SitesGateway("s3")
    try:
        s3 = gw.client()
        s3.create_bucket(Bucket="deletes")
        for i in range(OBJECTS):
            s3.put_object(Bucket="deletes", Key=f"one/{i}", Body=bytes([i]) * (1000 + i))
        counts = gw.site_shard_counts()
        assert counts == {"rgw-a": OBJECTS, "rgw-b": OBJECTS, "rclone-c": OBJECTS}, counts

        latencies = []
        for i in range(OBJECTS):
            start = time.perf_counter()
            s3.delete_object(Bucket="deletes", Key=f"one/{i}")
            latencies.append(time.perf_counter() - start)
        median_ms = statistics.median(latencies) * 1000
        assert median_ms < DELETE_MEDIAN_MS_MAX, f"median DELETE {median_ms:.1f} ms: {latencies}"
        assert s3.list_objects_v2(Bucket="deletes")["KeyCount"] == 0
        left = _wait_until_purged(gw)
        assert sum(left.values()) == 0, f"shards left at the S3 sites: {left}"

        for i in range(400):
            s3.put_object(Bucket="deletes", Key=f"batch/{i}", Body=b"b" * 100)
        start = time.perf_counter()
        result = s3.delete_objects(Bucket="deletes", Delete={
            "Objects": [{"Key": f"batch/{i}"} for i in range(400)], "Quiet": True})
        elapsed = time.perf_counter() - start
        assert not result.get("Errors"), result.get("Errors")
        assert elapsed < 10, f"DeleteObjects of 400 keys took {elapsed:.1f} s"
        assert s3.list_objects_v2(Bucket="deletes")["KeyCount"] == 0
        left = _wait_until_purged(gw)
        assert sum(left.values()) == 0, f"shards left at the S3 sites: {left}"

        for i in range(100):
            s3.put_object(Bucket="deletes", Key=f"cli/{i}", Body=b"c" * 10)
        start = time.perf_counter()
        gw.aws("s3", "rm", "--recursive", "--only-show-errors", "s3://deletes/cli/")
        elapsed = time.perf_counter() - start
        # The CLI's own start-up is ~1 s; 100 keys at 1–2 s each would take minutes.
        assert elapsed < 30, f"aws s3 rm --recursive of 100 keys took {elapsed:.1f} s"
        assert s3.list_objects_v2(Bucket="deletes")["KeyCount"] == 0
        left = _wait_until_purged(gw)
        assert sum(left.values()) == 0, f"shards left at the S3 sites: {left}"
    finally:
        code = gw.cleanup()
    assert code == 0
