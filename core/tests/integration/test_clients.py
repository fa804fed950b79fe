"""Real clients against the real binary, unchanged: rclone (copy, sync, check — which compares
MD5s — and lsf over more than 1000 keys), s3cmd (put, get, ls, del, multipart), minio-py (put,
get, list, multipart), boto3's managed transfers (upload_file / download_file in parts) and the
aws CLI (100 MiB multipart cp both ways; sync, ls --recursive and rm --recursive).

Every test runs twice, once per site variant (see conftest.SitesGateway): on the embedded
default (`dir` sites) and on three `s3` sites on real S3 servers (Ceph radosgw and rclone serve
s3). The s3 variant fails when the servers' environment is missing, unless
TESSERA_TEST_S3_SITES=skip. One gateway per variant serves the whole module."""

import hashlib
import os
import subprocess

import pytest

from conftest import ACCESS_KEY, REGION, SECRET_KEY

MIB = 1 << 20


@pytest.fixture(scope="module")
def gw(sites_gateway):
    return sites_gateway


def run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{args[0]} failed: {result.stdout}\n{result.stderr}"
    return result.stdout


def rclone(gw, *args):
    """Runs rclone with a remote `ts:` defined in the environment (no config file)."""
    env = dict(os.environ)
    env.update({"RCLONE_CONFIG_TS_TYPE": "s3", "RCLONE_CONFIG_TS_PROVIDER": "Other",
                "RCLONE_CONFIG_TS_ACCESS_KEY_ID": ACCESS_KEY, "RCLONE_CONFIG_TS_SECRET_ACCESS_KEY": SECRET_KEY,
                "RCLONE_CONFIG_TS_ENDPOINT": gw.endpoint, "RCLONE_CONFIG_TS_REGION": REGION})
    argv = [arg.replace("REMOTE:", "ts:") for arg in args]
    return run(["rclone", "--config", "/dev/null", "--s3-chunk-size", "5M", "--s3-upload-cutoff", "6M", *argv], env=env)


def write_tree(root, files, size_step):
    for i in range(files):
        path = root / f"dir{i % 5}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(i * size_step))


def test_shards_land_on_the_variants_sites(gw):
    """A 2+1 PUT stores one new shard on each of the variant's three sites, as the sites
    themselves list them (directories, or the S3 servers' own listing): the variant really
    runs on the sites it names."""
    s3 = gw.client()
    s3.create_bucket(Bucket="placement")
    before = gw.site_shard_counts()
    assert len(before) == 3, before
    data = os.urandom(MIB + 3)
    s3.put_object(Bucket="placement", Key="obj", Body=data)
    after = gw.site_shard_counts()
    assert {site: after[site] - before[site] for site in before} == {site: 1 for site in before}
    assert s3.get_object(Bucket="placement", Key="obj")["Body"].read() == data


def test_boto3_empty_file_body_then_another_on_one_connection(gw):
    """botocore sends `Expect: 100-continue` with every file-like body, an empty one too, and
    mistakes a final response that arrives instead of a 100 for the status of the next such
    request on the same connection (which then hangs until the gateway's idle timeout). An
    empty and a non-empty upload back to back on one keep-alive connection both succeed well
    inside a 5 s read timeout."""
    import io
    import time
    s3 = gw.client(read_timeout=5, max_pool_connections=1)
    s3.create_bucket(Bucket="expect")
    started = time.monotonic()
    s3.put_object(Bucket="expect", Key="empty", Body=io.BytesIO(b""))
    s3.put_object(Bucket="expect", Key="after", Body=io.BytesIO(b"after the empty one"))
    s3.upload_fileobj(io.BytesIO(b""), "expect", "empty-managed")
    assert time.monotonic() - started < 5
    assert s3.get_object(Bucket="expect", Key="after")["Body"].read() == b"after the empty one"
    assert s3.head_object(Bucket="expect", Key="empty")["ContentLength"] == 0


def test_rclone_copy_sync_check_lsf(gw, tmp_path):
    gw.client().create_bucket(Bucket="rclone")
    src = tmp_path / "src"
    write_tree(src, 60, 997)
    (src / "big.bin").write_bytes(os.urandom(13 * MIB))  # multipart with 5 MiB parts
    rclone(gw, "copy", str(src), "REMOTE:rclone/tree")
    rclone(gw, "check", str(src), "REMOTE:rclone/tree")  # sizes and MD5s
    (src / "dir0" / "f0.bin").unlink()
    (src / "new.txt").write_text("new")
    rclone(gw, "sync", str(src), "REMOTE:rclone/tree")
    rclone(gw, "check", str(src), "REMOTE:rclone/tree")
    back = tmp_path / "back"
    rclone(gw, "copy", "REMOTE:rclone/tree", str(back))
    assert (back / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    many = tmp_path / "many"
    many.mkdir()
    for i in range(1100):
        (many / f"k{i:04d}").write_bytes(b"x")
    rclone(gw, "copy", "--transfers", "16", str(many), "REMOTE:rclone/many")
    listed = rclone(gw, "lsf", "REMOTE:rclone/many").split()
    assert len(listed) == 1100


def test_s3cmd(gw, tmp_path):
    gw.client().create_bucket(Bucket="s3cmd")
    host = gw.endpoint.removeprefix("http://")
    cfg = tmp_path / "s3cfg"
    cfg.write_text(f"[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = {host}\n"
                   f"host_bucket = {host}\nuse_https = False\nbucket_location = {REGION}\nsignature_v2 = False\n")
    s3cmd = ["s3cmd", "-c", str(cfg)]
    small = tmp_path / "small.txt"
    small.write_text("hello s3cmd")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * MIB))
    run([*s3cmd, "put", str(small), "s3://s3cmd/small.txt"])
    run([*s3cmd, "put", "--multipart-chunk-size-mb=5", str(big), "s3://s3cmd/big.bin"])
    listing = run([*s3cmd, "ls", "s3://s3cmd/"])
    assert "small.txt" in listing and "big.bin" in listing
    out = tmp_path / "out.bin"
    run([*s3cmd, "get", "--force", "s3://s3cmd/big.bin", str(out)])
    assert out.read_bytes() == big.read_bytes()
    run([*s3cmd, "del", "s3://s3cmd/small.txt"])
    assert "small.txt" not in run([*s3cmd, "ls", "s3://s3cmd/"])


def test_minio_py(gw, tmp_path):
    from minio import Minio
    client = Minio(gw.endpoint.removeprefix("http://"), access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                   secure=False, region=REGION)
    client.make_bucket("minio-py")
    assert client.bucket_exists("minio-py")
    import io
    data = os.urandom(123_457)
    client.put_object("minio-py", "obj", io.BytesIO(data), len(data))
    assert client.get_object("minio-py", "obj").read() == data
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * MIB))
    client.fput_object("minio-py", "big.bin", str(big), part_size=5 * MIB)
    out = tmp_path / "out.bin"
    client.fget_object("minio-py", "big.bin", str(out))
    assert out.read_bytes() == big.read_bytes()
    assert sorted(o.object_name for o in client.list_objects("minio-py")) == ["big.bin", "obj"]
    client.remove_object("minio-py", "obj")
    assert [o.object_name for o in client.list_objects("minio-py")] == ["big.bin"]


def test_boto3_managed_transfers(gw, tmp_path):
    """upload_file / download_file split into parts and ranged GETs; sha256 compared."""
    from boto3.s3.transfer import TransferConfig
    s3 = gw.client()
    s3.create_bucket(Bucket="transfers")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(30 * MIB + 7))
    config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=4)
    s3.upload_file(str(src), "transfers", "file.bin", Config=config)
    dst = tmp_path / "dst.bin"
    s3.download_file("transfers", "file.bin", str(dst), Config=config)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_aws_cli_100_mib_multipart(gw, tmp_path):
    """`aws s3 cp` of a 100 MiB file: multipart upload, parallel ranged download."""
    gw.client().create_bucket(Bucket="hundred")
    src = tmp_path / "100m.bin"
    src.write_bytes(os.urandom(100 * MIB))
    gw.aws("s3", "cp", str(src), "s3://hundred/100m.bin", timeout=300)
    dst = tmp_path / "back.bin"
    gw.aws("s3", "cp", "s3://hundred/100m.bin", str(dst), timeout=300)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    head = gw.client().head_object(Bucket="hundred", Key="100m.bin")
    assert head["ContentLength"] == 100 * MIB and head["ETag"].endswith('-13"')  # 8 MiB parts


def test_aws_cli_sync_ls_rm_recursive(gw, tmp_path):
    """`aws s3 sync` of a tree of 1050 small files up and back (identical bytes; a second sync
    uploads nothing), `aws s3 ls --recursive` lists all of them (more than one 1000-key page)
    and `aws s3 rm --recursive` empties the prefix."""
    gw.client().create_bucket(Bucket="sync")
    src = tmp_path / "src"
    for i in range(1050):
        path = src / f"d{i % 7}" / f"file-{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(i % 300 * 37))
    gw.aws("s3", "sync", "--only-show-errors", str(src), "s3://sync/tree", timeout=600)
    listed = gw.aws("s3", "ls", "--recursive", "s3://sync/tree/").stdout.strip().splitlines()
    assert len(listed) == 1050
    dst = tmp_path / "dst"
    gw.aws("s3", "sync", "--only-show-errors", "s3://sync/tree", str(dst), timeout=600)
    for path in src.rglob("*"):
        if path.is_file():
            assert (dst / path.relative_to(src)).read_bytes() == path.read_bytes()
    second = gw.aws("s3", "sync", str(src), "s3://sync/tree").stdout
    assert "upload:" not in second  # nothing changed: sync compares listing sizes and times
    gw.aws("s3", "rm", "--recursive", "--only-show-errors", "s3://sync/tree/", timeout=600)
    assert gw.client().list_objects_v2(Bucket="sync")["KeyCount"] == 0
