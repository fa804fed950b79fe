"""Tests of gateways on `dir` sites: their configuration, multipart uploads, and reading the
shard files (manifest footers (layout: core/src/engine/manifest.rs), data shards and
footer-only part-index copies)."""

import hashlib
import os
import time


def dir_sites_config(root, engine, sites=3):
    """A config with the `[engine]` lines `engine` and `sites` dir sites disk-0.. under `root`
    (created)."""
    lines = [f"[engine]\n{engine}"]
    for i in range(sites):
        path = os.path.join(root, f"disk-{i}")
        os.makedirs(path, exist_ok=True)
        lines.append(f'[[sites]]\nkind = "dir"\nname = "disk-{i}"\npath = "{path}"\n')
    return "\n".join(lines)


def upload_parts(s3, bucket, key, sizes):
    """A completed multipart upload of random parts of `sizes`; returns the object's bytes."""
    parts = [os.urandom(size) for size in sizes]
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n + 1, Body=p)["ETag"]
             for n, p in enumerate(parts)]
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]})
    return b"".join(parts)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def get(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def footer(path):
    """(body bytes, fields, whole file length) of a shard file's manifest footer, or None if
    the file has none."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 16 or data[-4:] != b"TSM1":
        return None
    body_len = int.from_bytes(data[-16:-12], "little")
    body = data[len(data) - 16 - body_len:len(data) - 16]
    u16 = lambda at: int.from_bytes(body[at:at + 2], "little")
    bucket_len = u16(86)
    key_at = 88 + bucket_len
    fields = {
        "shard": body[1],
        "k": body[2],
        "n": body[3],
        "chunk_size": int.from_bytes(body[5:9], "little"),
        "size": int.from_bytes(body[9:17], "little"),
        "version_id": int.from_bytes(body[17:25], "little"),
        "etag_parts": u16(49),
        "part": u16(51),
        "bucket": body[88:key_at].decode(),
        "key": body[key_at + 2:key_at + 2 + u16(key_at)].decode(),
        # A part index is a footer-only shard: the file is nothing but its footer.
        "footer_only": len(data) == body_len + 16,
    }
    return body, fields


def shard_files(root):
    """Every shard file under `root` (temporaries excluded) with its footer fields."""
    found = []
    for path, _, files in os.walk(root):
        if "/.tmp" in path:
            continue
        for name in files:
            full = os.path.join(path, name)
            parsed = footer(full)
            if parsed is not None:
                found.append((full, parsed[1]))
    return found


def data_shards(root, bucket, key, part=0):
    """shard index -> path of the data shards of `bucket/key` (of part `part`, 0 = a single
    PUT) under `root`."""
    found = {}
    for path, fields in shard_files(root):
        if (fields["bucket"], fields["key"], fields["part"]) == (bucket, key, part) \
                and not fields["footer_only"]:
            assert fields["shard"] not in found, "two copies of one shard"
            found[fields["shard"]] = path
    return found


def part_index_copies(root, bucket, key):
    """Paths of the part-index copies of `bucket/key` under `root`."""
    return sorted(path for path, fields in shard_files(root)
                  if (fields["bucket"], fields["key"]) == (bucket, key) and fields["footer_only"]
                  and fields["etag_parts"] > 0)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def wait_for(predicate, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
