"""Reading shard files of `dir` sites from tests: manifest footers (layout:
core/src/engine/manifest.rs), data shards and footer-only part-index copies."""

import os
import time


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
