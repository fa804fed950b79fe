"""Buckets and authentication through real clients (aws CLI, boto3) against the real binary."""

import datetime
import socket
import urllib.request
import urllib.error

import botocore.exceptions
import pytest

from conftest import ACCESS_KEY, SECRET_KEY, Gateway


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_aws_cli_mb_ls_rb(shared_gateway):
    """`aws s3 mb`, `ls`, `s3api head-bucket`, `get-bucket-location` and `rb` work end to end."""
    gw = shared_gateway
    gw.aws("s3", "mb", "s3://cli-bucket")
    assert "cli-bucket" in gw.aws("s3", "ls").stdout
    gw.aws("s3api", "head-bucket", "--bucket", "cli-bucket")
    location = gw.aws("s3api", "get-bucket-location", "--bucket", "cli-bucket").stdout
    assert "LocationConstraint" in location
    gw.aws("s3", "rb", "s3://cli-bucket")
    assert "cli-bucket" not in gw.aws("s3", "ls").stdout
    missing = gw.aws("s3api", "head-bucket", "--bucket", "cli-bucket", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr


def test_boto3_bucket_lifecycle_path_style(shared_gateway):
    """boto3 (default checksum behaviour) creates, lists, heads and deletes a bucket."""
    s3 = shared_gateway.client()
    s3.create_bucket(Bucket="boto-bucket")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "boto-bucket" in names
    assert s3.head_bucket(Bucket="boto-bucket")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_location(Bucket="boto-bucket").get("LocationConstraint") in (None, "")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket="boto-bucket")
    assert error_code(e) == "BucketAlreadyOwnedByYou"
    s3.delete_bucket(Bucket="boto-bucket")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket="boto-bucket")
    assert error_code(e) == "NoSuchBucket"


def test_bucket_name_rules(shared_gateway):
    """Names that break S3 rules are refused with InvalidBucketName."""
    s3 = shared_gateway.client()
    for bad in ["ab", "UPPER", "has_underscore", "192.168.1.1", "a..b", "-leading", "x" * 64]:
        with pytest.raises((botocore.exceptions.ClientError, botocore.exceptions.ParamValidationError)) as e:
            s3.create_bucket(Bucket=bad)
        if isinstance(e.value, botocore.exceptions.ClientError):
            assert error_code(e) == "InvalidBucketName", bad


def test_location_constraint(shared_gateway):
    """A LocationConstraint naming another region is refused; the gateway's own is accepted."""
    s3 = shared_gateway.client()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert error_code(e) == "InvalidLocationConstraint"


def test_buckets_survive_restart():
    """Buckets are stored in the metadata log: they are there after a restart."""
    gw = Gateway()
    try:
        gw.client().create_bucket(Bucket="durable-bucket")
        assert gw.stop() == 0
        again = Gateway(data_dir=gw.data_dir)
        try:
            names = [b["Name"] for b in again.client().list_buckets()["Buckets"]]
            assert names == ["durable-bucket"]
        finally:
            again.cleanup()
    finally:
        gw.cleanup()


def test_virtual_host_style():
    """With --domain, `bucket.domain` addresses the bucket (boto3 virtual style through an
    absolute-form request, as a forward proxy would send it)."""
    gw = Gateway(extra_args=["--domain", "s3.tessera.test"])
    try:
        path_client = gw.client()
        path_client.create_bucket(Bucket="vhost-bucket")
        vhost = gw.client(addressing_style="virtual", proxies={"http": gw.endpoint})
        vhost._endpoint.host = f"http://s3.tessera.test:{gw.port}"
        assert vhost.head_bucket(Bucket="vhost-bucket")["ResponseMetadata"]["HTTPStatusCode"] == 200
        with pytest.raises(botocore.exceptions.ClientError) as e:
            vhost.head_bucket(Bucket="no-such-vhost-bucket")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    finally:
        gw.cleanup()


def test_wrong_secret_is_signature_mismatch(shared_gateway):
    s3 = shared_gateway.client(secret_key="not-the-secret-at-all")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_buckets()
    assert error_code(e) == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_key_is_invalid_access_key(shared_gateway):
    s3 = shared_gateway.client(access_key="NOSUCHKEY0000000000")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_buckets()
    assert error_code(e) == "InvalidAccessKeyId"


def test_aws_cli_wrong_secret(shared_gateway):
    r = shared_gateway.aws("s3", "ls", check=False, secret_key="wrong-secret-0000")
    assert r.returncode != 0 and "SignatureDoesNotMatch" in r.stderr


def test_anonymous_request_is_access_denied_xml(shared_gateway):
    """An unsigned request gets 403 AccessDenied as S3 XML with a request id."""
    try:
        urllib.request.urlopen(shared_gateway.endpoint + "/")
        raise AssertionError("anonymous request succeeded")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        assert e.code == 403
        assert "<Code>AccessDenied</Code>" in body and "<RequestId>" in body
        assert e.headers["x-amz-request-id"]


@pytest.mark.parametrize("signature_version", ["s3", "s3v4"])
def test_presigned_url(shared_gateway, signature_version):
    """Presigned URLs (SigV2 query auth, botocore's default, and SigV4) work; a tampered one is
    refused; SigV4 refuses X-Amz-Expires beyond 7 days."""
    s3 = shared_gateway.client(signature_version=signature_version)
    try:
        s3.create_bucket(Bucket="presign-bucket")
    except botocore.exceptions.ClientError:
        pass
    url = s3.generate_presigned_url("head_bucket", Params={"Bucket": "presign-bucket"}, ExpiresIn=60)
    assert urllib.request.urlopen(urllib.request.Request(url, method="HEAD")).status == 200
    url = s3.generate_presigned_url("get_bucket_location", Params={"Bucket": "presign-bucket"}, ExpiresIn=60)
    assert b"LocationConstraint" in urllib.request.urlopen(url).read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url.replace("presign-bucket", "presign-bucket2"))
    assert e.value.code == 403 and b"SignatureDoesNotMatch" in e.value.read()
    if signature_version == "s3v4":
        too_long = s3.generate_presigned_url("list_buckets", ExpiresIn=8 * 24 * 3600)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(too_long)
        assert e.value.code in (400, 403)


def test_expired_presigned_url(shared_gateway):
    """A presigned URL used after its expiry is AccessDenied."""
    import time
    s3 = shared_gateway.client(signature_version="s3v4")
    url = s3.generate_presigned_url("list_buckets", ExpiresIn=1)
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url)
    assert e.value.code == 403 and b"AccessDenied" in e.value.read()


def test_skewed_clock_is_refused(shared_gateway):
    """A request signed 20 minutes in the past is RequestTimeTooSkewed."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    creds = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)
    request = botocore.awsrequest.AWSRequest(method="GET", url=shared_gateway.endpoint + "/")
    signer = botocore.auth.S3SigV4Auth(creds, "s3", "us-east-1")
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    request.context["timestamp"] = past.strftime("%Y%m%dT%H%M%SZ")
    signer._timestamp = request.context["timestamp"]
    orig = datetime.datetime
    class Frozen(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return past.replace(tzinfo=None)
        @classmethod
        def now(cls, tz=None):
            return past if tz else past.replace(tzinfo=None)
    botocore.auth.datetime.datetime = Frozen
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.datetime.datetime = orig
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, headers=dict(prepared.headers), method="GET")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 403
    assert "RequestTimeTooSkewed" in e.value.read().decode()


def test_unimplemented_operation_is_501_xml(shared_gateway):
    """An operation not built yet answers 501 NotImplemented as S3 XML."""
    s3 = shared_gateway.client()
    s3.create_bucket(Bucket="nyi-bucket")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_bucket_policy(Bucket="nyi-bucket")
    assert error_code(e) == "NotImplemented"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_list_buckets_prefix_and_pages():
    """ListBuckets filters by prefix and pages with MaxBuckets / ContinuationToken in name order."""
    gw = Gateway()
    try:
        s3 = gw.client()
        names = [f"page-{i:02d}" for i in range(5)] + ["other-bucket"]
        for name in names:
            s3.create_bucket(Bucket=name)
        seen, token = [], None
        while True:
            kwargs = {"Prefix": "page-", "MaxBuckets": 2}
            if token:
                kwargs["ContinuationToken"] = token
            page = s3.list_buckets(**kwargs)
            seen += [b["Name"] for b in page["Buckets"]]
            token = page.get("ContinuationToken")
            if not token:
                break
        assert seen == sorted(n for n in names if n.startswith("page-"))
    finally:
        gw.cleanup()
