"""Other real clients against the real binary, unchanged: rclone (copy, sync, check — which
compares MD5s — and lsf over more than 1000 keys), s3cmd (put, get, ls, del, multipart),
minio-py (put, get, list, multipart) and boto3's managed transfers (upload_file /
download_file in parts)."""

import hashlib
import os
import subprocess

import pytest

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Gateway

MIB = 1 << 20


@pytest.fixture(scope="module")
def gw():
    g = Gateway()
    yield g
    g.cleanup()


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
    gw.aws("s3", "cp", str(src), "s3://hundred/100m.bin")
    dst = tmp_path / "back.bin"
    gw.aws("s3", "cp", "s3://hundred/100m.bin", str(dst))
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
