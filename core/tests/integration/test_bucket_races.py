"""Bucket creates seen from every core at once, and a second gateway on a busy port.

Bucket records are copied on every core; a create is answered once every core has it. These
tests race many clients' CreateBucket of one name against each other and follow each answer,
200 or 409, with PUTs on fresh connections (spread over the cores by SO_REUSEPORT): none may
answer NoSuchBucket. They also check that a gateway started on the port of a running one
refuses to start instead of silently sharing the port (the kernel would split connections
between two processes with different metadata).
"""

import concurrent.futures
import subprocess
import threading
import time

import botocore.exceptions
import pytest

from conftest import Gateway, binary

CREATORS = 8
ROUNDS = 30


def _create_then_put(gw, bucket, barrier, index):
    """CreateBucket (200 or 409 are both "it exists"), then PUTs on fresh connections; returns
    the error codes seen."""
    s3 = gw.client()
    barrier.wait()
    # Staggered by up to ~2 ms so that some creates arrive while an earlier one's broadcast is
    # still reaching the cores (the window where a 409 used to come too early).
    time.sleep(index * 0.00025)
    codes = []
    try:
        s3.create_bucket(Bucket=bucket)
        codes.append("200")
    except botocore.exceptions.ClientError as e:
        codes.append(e.response["Error"]["Code"])
    for attempt in range(4):
        # A new client per PUT: a new connection, so the PUTs land on every core.
        try:
            gw.client().put_object(Bucket=bucket, Key=f"k-{index}-{attempt}", Body=b"x")
        except botocore.exceptions.ClientError as e:
            codes.append(e.response["Error"]["Code"])
    return codes


def test_racing_creates_answer_once_and_every_core_sees_the_bucket(tmp_path):
    """ROUNDS times, CREATORS clients create the same new bucket at the same moment: exactly
    one gets 200, the others 409 BucketAlreadyOwnedByYou, and no PUT after either answer gets
    NoSuchBucket."""
    gw = Gateway(extra_args=["--cores", "2"])
    try:
        outcomes = []
        with concurrent.futures.ThreadPoolExecutor(CREATORS) as pool:
            for round_ in range(ROUNDS):
                bucket = f"race-{round_}"
                barrier = threading.Barrier(CREATORS)
                futures = [pool.submit(_create_then_put, gw, bucket, barrier, i)
                           for i in range(CREATORS)]
                outcomes.append((bucket, [f.result() for f in futures]))
        not_found = [(b, c) for b, results in outcomes for c in results if "NoSuchBucket" in c]
        assert not not_found, f"PUTs after CreateBucket answered NoSuchBucket: {not_found[:5]}"
        for bucket, results in outcomes:
            firsts = sorted(codes[0] for codes in results)
            assert firsts.count("200") == 1, (bucket, firsts)
            assert firsts.count("BucketAlreadyOwnedByYou") == CREATORS - 1, (bucket, firsts)
            assert all(len(codes) == 1 for codes in results), (bucket, results)
    finally:
        code = gw.stop()
        gw.tmp.cleanup()
    assert code == 0


def test_create_and_delete_of_one_bucket_never_split_the_cores():
    """Creates and deletes of one bucket race from several clients; afterwards HEAD on many
    fresh connections (both cores) agrees: the bucket exists everywhere or nowhere."""
    gw = Gateway(extra_args=["--cores", "2"])
    try:
        def churn(barrier):
            s3 = gw.client()
            barrier.wait()
            for _ in range(15):
                for op in (s3.create_bucket, s3.delete_bucket):
                    try:
                        op(Bucket="churn")
                    except botocore.exceptions.ClientError:
                        pass

        barrier = threading.Barrier(6)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            for f in [pool.submit(churn, barrier) for _ in range(6)]:
                f.result()
        seen = set()
        for _ in range(40):
            try:
                gw.client().head_bucket(Bucket="churn")
                seen.add("exists")
            except botocore.exceptions.ClientError as e:
                seen.add(e.response["Error"]["Code"])
        assert len(seen) == 1, f"the cores disagree about the bucket: {seen}"
    finally:
        code = gw.stop()
        gw.tmp.cleanup()
    assert code == 0


def test_a_second_gateway_on_a_busy_port_refuses_to_start(tmp_path):
    """A gateway started on the S3 port (or the admin port) of a running one exits non-zero
    naming the address, and the running one keeps serving alone."""
    first = Gateway()
    try:
        first.client().create_bucket(Bucket="mine")
        for args in (["--listen", f"127.0.0.1:{first.port}", "--admin-listen", "127.0.0.1:0"],
                     ["--listen", "127.0.0.1:0", "--admin-listen", f"127.0.0.1:{first.admin_port}"]):
            second = subprocess.Popen(
                [binary(), "serve", "--data-dir", str(tmp_path / "second"), *args],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env={"TESSERA_ACCESS_KEY": "TESSERATESTKEY000002",
                     "TESSERA_SECRET_KEY": "tessera-test-secret-key-0000000000000002"})
            try:
                output, _ = second.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                second.kill()
                output, _ = second.communicate()
                pytest.fail(f"a second gateway started on a busy port ({args}): {output}")
            assert second.returncode != 0, output
            assert "already listens" in output, output
        # Every new connection still reaches the first gateway (which has the bucket).
        for _ in range(20):
            first.client().head_bucket(Bucket="mine")
    finally:
        code = first.stop()
        first.tmp.cleanup()
    assert code == 0
