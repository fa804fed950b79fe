//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, with S3 semantics for
//! content headers, user metadata, checksums, ranges and conditional requests.
//!
//! The metadata of `(bucket, key)` lives on its owning core (`partition_of`); the shards were
//! written by this core's engine. Order: shards durable → metadata fsynced → 200.

use std::time::{Duration, UNIX_EPOCH};

use tessera_ec::ByteRange;
use tessera_http::checksum::{ChecksumAlgorithm as HttpAlgorithm, IntegrityHeaders};
use tessera_http::codec::RequestHead;
use tessera_http::s3::router::ObjectReadParams;
use tessera_http::sigv4::Verified;
use tessera_http::{S3Error, S3ErrorCode};
use tessera_meta::{
    partition_of, Checksum, ChecksumAlgorithm, ContentHeaders, ETag, MetaPair, MetaRequest,
    MetaResponse, Object, Op, QueueEntry, QueueKind, Shard, ShardState, Tombstone,
};

use super::{answer, bucket, unexpected};
use crate::engine::put::{checksum_code, PutRequest};
use crate::engine::read::ObjectReader;
use crate::engine::repair;
use crate::mesh::MetaClient;
use crate::server::body::RequestBody;
use crate::server::conn::BodyReader;
use crate::server::response::Response;
use crate::server::CoreCtx;

/// Bytes of user metadata (names and values) S3 allows per object.
pub const USER_METADATA_BYTES_MAX: usize = 2048;

/// The `"…"`-quoted ETag of an object.
#[must_use]
pub fn etag_text(etag: &ETag) -> String {
    if etag.parts == 0 {
        format!("\"{}\"", hex::encode(etag.md5))
    } else {
        format!("\"{}-{}\"", hex::encode(etag.md5), etag.parts)
    }
}

fn no_such_key(bucket: &str, key: &str) -> S3Error {
    S3Error::new(S3ErrorCode::NoSuchKey, "The specified key does not exist.")
        .with_resource(format!("/{bucket}/{key}"))
}

/// The current record of `(bucket, key)` from its owning core.
pub async fn lookup(meta: &MetaClient, bucket: &str, key: &str) -> Result<Option<Object>, S3Error> {
    let owner = partition_of(bucket, key, meta.cores());
    let request = MetaRequest::Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    };
    match answer(meta.call(owner, request).await)? {
        MetaResponse::Object(object) => Ok(object),
        other => Err(unexpected(&other)),
    }
}

/// Commits `ops` on the core owning `(bucket, key)` and waits until they are durable.
pub async fn commit_owned(
    meta: &MetaClient,
    bucket: &str,
    key: &str,
    ops: Vec<Op>,
) -> Result<(), S3Error> {
    let owner = partition_of(bucket, key, meta.cores());
    match answer(meta.call(owner, MetaRequest::Commit(ops)).await)? {
        MetaResponse::Committed(_) => Ok(()),
        other => Err(unexpected(&other)),
    }
}

/// Times a conditional write re-checks its conditions because the key changed in between.
pub(crate) const COMMIT_ATTEMPTS_MAX: u32 = 16;

/// Commits `ops` writing the record of `(bucket, key)` on its owning core, optionally only if
/// the key is still at version `expect` (see `MetaStore::commit_object`): `Ok` with the record
/// replaced (the one to purge), `Err` with the current version when the key had changed.
pub async fn commit_object_owned(
    meta: &MetaClient,
    bucket: &str,
    key: &str,
    expect: Option<Option<u64>>,
    ops: Vec<Op>,
) -> Result<Result<Option<Object>, Option<u64>>, S3Error> {
    let owner = partition_of(bucket, key, meta.cores());
    let request = MetaRequest::CommitObject {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        expect,
        ops,
    };
    match answer(meta.call(owner, request).await)? {
        MetaResponse::ObjectCommitted { previous, .. } => Ok(Ok(previous)),
        MetaResponse::ObjectChanged(current) => Ok(Err(current)),
        other => Err(unexpected(&other)),
    }
}

/// Sets one shard's state in the record of `(bucket, key)` on its owning core, atomically
/// (see `MetaStore::set_shard_state`); `Ok(true)` when the record changed.
pub async fn set_shard_state(
    meta: &MetaClient,
    bucket: &str,
    key: &str,
    version_id: u64,
    backend_id: &tessera_meta::BackendId,
    state: ShardState,
) -> Result<bool, S3Error> {
    let owner = partition_of(bucket, key, meta.cores());
    let request = MetaRequest::SetShardState {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id,
        backend_id: *backend_id,
        state,
    };
    match answer(meta.call(owner, request).await)? {
        MetaResponse::ShardStateSet(changed) => Ok(changed),
        other => Err(unexpected(&other)),
    }
}

/// Queues everything a replaced or deleted object stored for deletion: its shards (and its
/// parts'), and for a completed multipart object the part-index copy at each of `sites`
/// sites (at derived ids, `recover::part_index_id`; a copy that was never written is a
/// delete of nothing).
pub async fn queue_purge_object(meta: &MetaClient, old: &Object, sites: usize) {
    queue_purge(meta, old).await;
    queue_purge_part_index(meta, old, sites).await;
}

/// Queues for deletion only the part-index copies of multipart object `old` at each of
/// `sites` sites (nothing for a single-PUT object): a completion that failed after writing
/// them leaves its parts to the upload, which is still open.
pub async fn queue_purge_part_index(meta: &MetaClient, old: &Object, sites: usize) {
    if old.etag.parts == 0 || old.parts.is_empty() {
        return;
    }
    let copies: Vec<Shard> = (0..sites)
        .filter_map(|site| {
            Some(Shard {
                site: tessera_meta::SiteId::try_from(site).ok()?,
                backend_id: crate::recover::part_index_id(old.version_id, site),
                state: ShardState::Durable,
            })
        })
        .collect();
    let entries: Vec<(usize, &Shard)> = copies.iter().map(|s| (usize::MAX, s)).collect();
    queue(meta, QueueKind::Purge, old, &entries).await;
}

/// Queues the shards of a replaced or deleted object for deletion at their sites (this core's
/// purge queue; the purge worker drains it). Upload parts use this directly; whole objects go
/// through [`queue_purge_object`].
pub async fn queue_purge(meta: &MetaClient, old: &Object) {
    let shards: Vec<(usize, &Shard)> = old
        .shards
        .iter()
        .chain(old.parts.iter().flat_map(|p| p.shards.iter()))
        .enumerate()
        .collect();
    // A failure here leaves orphaned shards, never missing data: the object record is already
    // durable.
    queue(meta, QueueKind::Purge, old, &shards).await;
}

/// Queues the shards of `object` that are not durable for the repair worker: its own, and
/// those of its parts (a multipart object's parts may have been uploaded below full
/// redundancy), named by flattened index (`engine::repair::flat_index`).
pub async fn queue_repair(meta: &MetaClient, object: &Object) {
    let pending: Vec<(usize, &Shard)> = repair::flat_shards(object)
        .filter(|(_, s)| s.state == ShardState::Pending)
        .collect();
    queue(meta, QueueKind::Repair, object, &pending).await;
}

async fn queue(meta: &MetaClient, kind: QueueKind, object: &Object, shards: &[(usize, &Shard)]) {
    if shards.is_empty() {
        return;
    }
    let ops: Vec<Op> = shards
        .iter()
        .map(|&(index, shard)| {
            Op::PutQueue(QueueEntry {
                kind,
                id: meta.local.allocate_queue_id(),
                site: shard.site,
                backend_id: shard.backend_id,
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                version_id: object.version_id,
                shard_index: repair::queued_index(index),
                enqueued_ms: crate::engine::now_ms(),
                attempts: 0,
            })
        })
        .collect();
    if let Err(e) = meta.local.commit(ops).await {
        crate::runtime::log(format_args!("{kind:?} queue: {e}"));
    }
}

#[must_use]
pub fn content_headers(head: &RequestHead) -> ContentHeaders {
    let get = |name: &str| head.header(name).map(str::to_owned);
    ContentHeaders {
        content_type: get("content-type"),
        content_encoding: get("content-encoding")
            .filter(|v| !v.eq_ignore_ascii_case("aws-chunked"))
            .map(|v| {
                // aws-chunked is a transfer detail of the request, not part of the stored encoding.
                v.split(',')
                    .map(str::trim)
                    .filter(|c| !c.eq_ignore_ascii_case("aws-chunked"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|v| !v.is_empty()),
        content_disposition: get("content-disposition"),
        content_language: get("content-language"),
        cache_control: get("cache-control"),
        expires: get("expires"),
    }
}

pub fn user_metadata(head: &RequestHead) -> Result<Vec<MetaPair>, S3Error> {
    let mut pairs: Vec<MetaPair> = head
        .headers()
        .filter_map(|(name, value)| {
            let suffix = name
                .get(..11)
                .filter(|p| p.eq_ignore_ascii_case("x-amz-meta-"))
                .map(|_| &name[11..])?;
            // Stored decoded: a value sent as RFC 2047 encoded words is the text they encode.
            Some(MetaPair {
                name: suffix.to_ascii_lowercase(),
                value: tessera_http::rfc2047::decode(value).into_owned(),
            })
        })
        .collect();
    pairs.sort_by(|a, b| a.name.cmp(&b.name));
    let bytes: usize = pairs.iter().map(|p| p.name.len() + p.value.len()).sum();
    if bytes > USER_METADATA_BYTES_MAX {
        return Err(S3Error::new(
            S3ErrorCode::MetadataTooLarge,
            format!("Your metadata headers exceed the maximum allowed metadata size of {USER_METADATA_BYTES_MAX} bytes"),
        ));
    }
    Ok(pairs)
}

#[must_use]
pub fn meta_algorithm(algorithm: HttpAlgorithm) -> ChecksumAlgorithm {
    match algorithm {
        HttpAlgorithm::Crc32 => ChecksumAlgorithm::Crc32,
        HttpAlgorithm::Crc32c => ChecksumAlgorithm::Crc32c,
        HttpAlgorithm::Crc64Nvme => ChecksumAlgorithm::Crc64Nvme,
        HttpAlgorithm::Sha1 => ChecksumAlgorithm::Sha1,
        HttpAlgorithm::Sha256 => ChecksumAlgorithm::Sha256,
    }
}

#[must_use]
pub fn http_algorithm(algorithm: ChecksumAlgorithm) -> HttpAlgorithm {
    match algorithm {
        ChecksumAlgorithm::Crc32 => HttpAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c => HttpAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme => HttpAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1 => HttpAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256 => HttpAlgorithm::Sha256,
    }
}

/// Marks shards that a read found missing or corrupt as pending in their object's record (so
/// reads stop trying them) and queues them for repair. Shards are named by flattened index
/// (`engine::repair::flat_index`: a whole object's shard, or a part's). Best effort: a failure
/// only delays the repair until a read finds the damage again.
pub async fn report_damage(meta: &MetaClient, damaged: &[(String, String, u64, usize)]) {
    for (bucket, key, version_id, index) in damaged {
        let Ok(Some(view)) = lookup(meta, bucket, key).await else {
            continue;
        };
        if view.version_id != *version_id {
            continue;
        }
        let Some(target) = repair::locate(&view, *index) else {
            continue;
        };
        let shard = *repair::shard(&view, target);
        if shard.state != ShardState::Durable {
            continue;
        }
        // Changed atomically on the owning core: a repair of another shard committing at the
        // same moment is not undone, and only one reporter queues the repair.
        if set_shard_state(
            meta,
            bucket,
            key,
            *version_id,
            &shard.backend_id,
            ShardState::Pending,
        )
        .await
            == Ok(true)
        {
            let what = match target {
                repair::ShardRef::Whole(i) => format!("shard {i}"),
                repair::ShardRef::Part { part, shard } => {
                    format!("shard {shard} of part {}", view.parts[part].number)
                }
            };
            crate::runtime::log(format_args!(
                "{what} of {bucket}/{key} is damaged: queued for repair"
            ));
            let only: Vec<(usize, &Shard)> = vec![(*index, repair::shard(&view, target))];
            queue(meta, QueueKind::Repair, &view, &only).await;
        }
    }
}

/// The verified body of an object upload (PutObject, UploadPart), its declared size (S3
/// requires one: `MissingContentLength` otherwise) and the manifest code of the checksum the
/// client sent, if any. The MD5 is computed only when it will be the ETag.
pub fn object_body<'r, 'c>(
    ctx: &CoreCtx,
    reader: &'r mut BodyReader<'c>,
    verified: &Verified,
    integrity: &IntegrityHeaders,
) -> Result<(RequestBody<'r, 'c>, u64, Option<u8>), S3Error> {
    let body = RequestBody::new(
        reader,
        &verified.payload,
        integrity,
        ctx.engine.etag_mode == crate::engine::EtagMode::Md5,
    )?;
    let size = body.length().ok_or_else(|| {
        S3Error::new(
            S3ErrorCode::MissingContentLength,
            "You must provide the Content-Length HTTP header.",
        )
    })?;
    let algorithm = integrity
        .checksum
        .map(|c| c.algorithm())
        .or(integrity.trailer);
    Ok((body, size, algorithm.map(checksum_code)))
}

/// The metadata record of an object the engine just stored whole (PutObject, CopyObject).
#[must_use]
pub fn object_record(
    stored: crate::engine::put::Stored,
    bucket: &str,
    key: &str,
    size: u64,
    headers: ContentHeaders,
    user_metadata: Vec<MetaPair>,
) -> Object {
    Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id: stored.version_id,
        size,
        etag: ETag {
            md5: stored.etag,
            parts: 0,
        },
        headers,
        user_metadata,
        checksums: stored
            .digest
            .checksum
            .iter()
            .map(|c| Checksum {
                algorithm: meta_algorithm(c.algorithm()),
                value: c.as_bytes().to_vec(),
            })
            .collect(),
        mtime_ms: stored.mtime_ms,
        policy: stored.policy,
        chunk_size: stored.chunk_size,
        shards: stored.shards,
        parts: Vec::new(),
    }
}

/// `PUT /bucket/key`.
pub async fn put(
    ctx: &CoreCtx,
    head: &RequestHead,
    reader: &mut BodyReader<'_>,
    verified: &Verified,
    integrity: &IntegrityHeaders,
    bucket_name: &str,
    key: &str,
) -> Result<Response, S3Error> {
    let bucket = bucket::require(ctx, bucket_name)?;
    super::unsupported::check(head.headers())?;
    let headers = content_headers(head);
    let user_metadata = user_metadata(head)?;
    let conditions = WriteConditions::of(head)?;
    // Checked before the body is stored, to fail early; again with the commit.
    conditions.expect(ctx, bucket_name, key).await?;
    let (body, size, checksum_algorithm) = object_body(ctx, reader, verified, integrity)?;
    let request = PutRequest {
        bucket: bucket_name,
        key,
        policy: &bucket.policy,
        size,
        headers: &headers,
        user_metadata: &user_metadata,
        part_number: 0,
        checksum_algorithm,
    };
    let stored = ctx.engine.put(&request, body).await?;
    let checksum = stored.digest.checksum;
    let object = object_record(stored, bucket_name, key, size, headers, user_metadata);
    let etag = etag_text(&object.etag);
    let previous = commit_under(ctx, bucket_name, key, &object, conditions).await?;
    // Kept to queue the repair of shards that did not become durable.
    let repair_view = object;
    if let Some(previous) = previous {
        queue_purge_object(&ctx.meta, &previous, ctx.engine.sites.len()).await;
    }
    queue_repair(&ctx.meta, &repair_view).await;
    let mut response = Response::empty(200).with_header("ETag", etag);
    if let Some(checksum) = checksum {
        response = response.with_header(checksum.algorithm().header_name(), checksum.to_base64());
    }
    Ok(response)
}

/// The write conditions of a request that replaces a key's object (PutObject, CopyObject,
/// CompleteMultipartUpload): `If-None-Match: *` (the key holds no object) and `If-Match` (it
/// holds one with that ETag).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteConditions<'h> {
    pub if_none_match: bool,
    pub if_match: Option<&'h str>,
}

impl<'h> WriteConditions<'h> {
    /// The conditions `head` names; `If-None-Match` other than `*` is NotImplemented.
    pub fn of(head: &'h RequestHead) -> Result<Self, S3Error> {
        let if_none_match = head.header("if-none-match");
        if if_none_match.is_some_and(|v| v.trim() != "*") {
            return Err(S3Error::new(
                S3ErrorCode::NotImplemented,
                "If-None-Match on a write supports only *",
            ));
        }
        Ok(WriteConditions {
            if_none_match: if_none_match.is_some(),
            if_match: head.header("if-match"),
        })
    }

    /// Checks the conditions against the key's current record: `None` when there are none (any
    /// version may be replaced), else the version the commit must find (`Some(None)`: no
    /// object), or the error a failed condition answers.
    pub async fn expect(
        &self,
        ctx: &CoreCtx,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Option<u64>>, S3Error> {
        if !self.if_none_match && self.if_match.is_none() {
            return Ok(None);
        }
        let current = lookup(&ctx.meta, bucket, key).await?;
        check_write_conditions(
            current.as_ref(),
            self.if_none_match,
            self.if_match,
            bucket,
            key,
        )?;
        Ok(Some(current.map(|o| o.version_id)))
    }
}

/// Commits `object` (its shards stored) as the record of its key if `conditions` hold at the
/// commit on the key's owning core; answers the record it replaced, the one to purge. When a
/// condition fails, or the key keeps changing under it, the object's own shards are queued for
/// purge (they belong to no object) and the error is returned.
pub(crate) async fn commit_under(
    ctx: &CoreCtx,
    bucket: &str,
    key: &str,
    object: &Object,
    conditions: WriteConditions<'_>,
) -> Result<Option<Object>, S3Error> {
    let mut attempts = 0;
    loop {
        // Another writer may have won while the body streamed: checked again, and the commit
        // lands only if the key is still at the version checked.
        let expect = match conditions.expect(ctx, bucket, key).await {
            Ok(expect) => expect,
            Err(err) => {
                queue_purge_object(&ctx.meta, object, ctx.engine.sites.len()).await;
                return Err(err);
            }
        };
        let ops = vec![Op::PutObject(object.clone())];
        match commit_object_owned(&ctx.meta, bucket, key, expect, ops).await? {
            Ok(previous) => return Ok(previous),
            Err(_) if attempts < COMMIT_ATTEMPTS_MAX => attempts += 1,
            Err(_) => {
                queue_purge_object(&ctx.meta, object, ctx.engine.sites.len()).await;
                return Err(S3Error::new(
                    S3ErrorCode::SlowDown,
                    "The key kept changing under this conditional write; retry",
                ));
            }
        }
    }
}

fn check_write_conditions(
    current: Option<&Object>,
    if_none_match_star: bool,
    if_match: Option<&str>,
    bucket: &str,
    key: &str,
) -> Result<(), S3Error> {
    if if_none_match_star && current.is_some() {
        return Err(S3Error::new(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        ));
    }
    if let Some(expected) = if_match {
        let Some(current) = current else {
            return Err(no_such_key(bucket, key));
        };
        if !etag_matches(expected, &etag_text(&current.etag), Compare::Strong) {
            return Err(S3Error::new(
                S3ErrorCode::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            ));
        }
    }
    Ok(())
}

/// How an ETag list is compared (RFC 9110 §8.8.3.2): `If-Match` compares strongly, so a weak
/// tag (`W/"…"`) never matches; `If-None-Match` compares weakly, ignoring the `W/`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Compare {
    Strong,
    Weak,
}

/// True when an `If-Match` / `If-None-Match` list names `etag` (quoted or not) or is `*`.
pub(super) fn etag_matches(list: &str, etag: &str, compare: Compare) -> bool {
    let bare = etag.trim_matches('"');
    list.split(',').map(str::trim).any(|candidate| {
        if candidate == "*" {
            return true;
        }
        let candidate = match candidate.strip_prefix("W/") {
            Some(_) if compare == Compare::Strong => return false,
            Some(weak) => weak,
            None => candidate,
        };
        candidate.trim_matches('"') == bare
    })
}

/// Parses an HTTP date; `None` when malformed (the condition is then ignored, as RFC 9110 says).
fn http_date(value: &str) -> Option<u64> {
    httpdate::parse_http_date(value)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// RFC 9110 §13.2.2 evaluation order for GET/HEAD: 412 or 304, or `None` to proceed.
fn read_conditions(head: &RequestHead, object: &Object) -> Option<S3ErrorCode> {
    let etag = etag_text(&object.etag);
    let modified_s = object.mtime_ms / 1000;
    if let Some(list) = head.header("if-match") {
        if !etag_matches(list, &etag, Compare::Strong) {
            return Some(S3ErrorCode::PreconditionFailed);
        }
    } else if let Some(since) = head.header("if-unmodified-since").and_then(http_date) {
        if modified_s > since {
            return Some(S3ErrorCode::PreconditionFailed);
        }
    }
    if let Some(list) = head.header("if-none-match") {
        if etag_matches(list, &etag, Compare::Weak) {
            return Some(S3ErrorCode::NotModified);
        }
    } else if let Some(since) = head.header("if-modified-since").and_then(http_date) {
        if modified_s <= since {
            return Some(S3ErrorCode::NotModified);
        }
    }
    None
}

/// Parses a single `Range: bytes=…`; `None` for absent, multiple or malformed ranges (S3 then
/// serves the whole object).
fn parse_range(value: Option<&str>) -> Option<ByteRange> {
    let spec = value?.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => Some(ByteRange::Suffix {
            len: number(suffix)?,
        }),
        (first, "") => Some(ByteRange::From {
            first: number(first)?,
        }),
        (first, last) => {
            let (first, last) = (number(first)?, number(last)?);
            (first <= last).then_some(ByteRange::Inclusive { first, last })
        }
    }
}

/// Adds the headers describing `object` (shared by GET and HEAD).
fn describe(
    mut response: Response,
    object: &Object,
    params: &ObjectReadParams,
    head: &RequestHead,
) -> Response {
    let h = &object.headers;
    let overrides = params.overrides.as_deref();
    let pick = |own: &Option<String>, over: Option<&Option<String>>| {
        over.and_then(Option::clone).or_else(|| own.clone())
    };
    let content_type = pick(&h.content_type, overrides.map(|o| &o.content_type))
        .unwrap_or_else(|| "binary/octet-stream".to_owned());
    response.head.header("Content-Type", content_type);
    for (name, value) in [
        (
            "Content-Encoding",
            pick(&h.content_encoding, overrides.map(|o| &o.content_encoding)),
        ),
        (
            "Content-Disposition",
            pick(
                &h.content_disposition,
                overrides.map(|o| &o.content_disposition),
            ),
        ),
        (
            "Content-Language",
            pick(&h.content_language, overrides.map(|o| &o.content_language)),
        ),
        (
            "Cache-Control",
            pick(&h.cache_control, overrides.map(|o| &o.cache_control)),
        ),
        ("Expires", pick(&h.expires, overrides.map(|o| &o.expires))),
    ] {
        if let Some(value) = value {
            response.head.header(name, value);
        }
    }
    response.head.header("ETag", etag_text(&object.etag));
    response.head.header(
        "Last-Modified",
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(object.mtime_ms)),
    );
    response.head.header("Accept-Ranges", "bytes");
    for pair in &object.user_metadata {
        // Field values are ASCII: others go out as an RFC 2047 encoded word, as S3 does.
        let value = tessera_http::rfc2047::encode(&pair.value).into_owned();
        response
            .head
            .header(format!("x-amz-meta-{}", pair.name), value);
    }
    // A stored checksum covers the whole object (or, with `partNumber`, one part of a
    // multipart object): S3 returns none for other ranges.
    let part = params
        .part_number
        .filter(|_| !object.parts.is_empty())
        .map(u32::from);
    let whole = response.head.status == 200 || part.is_some();
    if whole
        && head
            .header("x-amz-checksum-mode")
            .is_some_and(|m| m.eq_ignore_ascii_case("enabled"))
    {
        for (name, value) in super::multipart::checksum_read_headers(object, part) {
            response.head.header(name, value);
        }
    }
    response
}

/// `GET /bucket/key` and `HEAD /bucket/key`.
pub async fn get(
    ctx: &CoreCtx,
    head: &RequestHead,
    bucket_name: &str,
    key: &str,
    params: &ObjectReadParams,
    is_head: bool,
) -> Result<Response, S3Error> {
    bucket::require(ctx, bucket_name)?;
    let object = lookup(&ctx.meta, bucket_name, key)
        .await?
        .ok_or_else(|| no_such_key(bucket_name, key))?;
    if params.version_id.as_deref().is_some_and(|v| v != "null") {
        return Err(S3Error::new(
            S3ErrorCode::NoSuchVersion,
            "The specified version does not exist.",
        ));
    }
    if params.part_number.is_some() && head.header("range").is_some() {
        return Err(S3Error::new(
            S3ErrorCode::InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter",
        ));
    }
    // `partNumber`: the byte range of that part (a single-PUT object has exactly part 1).
    let part_range = match params.part_number {
        None => None,
        Some(1) if object.parts.is_empty() => None,
        Some(number) => {
            let mut offset = 0_u64;
            let mut found = None;
            for part in &object.parts {
                if part.number == u32::from(number) {
                    found = Some(offset..offset + part.size);
                }
                offset += part.size;
            }
            Some(found.ok_or_else(|| {
                S3Error::new(
                    S3ErrorCode::InvalidPartNumber,
                    "The requested partnumber is not satisfiable",
                )
            })?)
        }
    };
    if let Some(code) = read_conditions(head, &object) {
        if code == S3ErrorCode::NotModified {
            return Ok(Response::empty(304)
                .with_header("ETag", etag_text(&object.etag))
                .with_header(
                    "Last-Modified",
                    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(object.mtime_ms)),
                ));
        }
        return Err(S3Error::new(
            code,
            "At least one of the pre-conditions you specified did not hold",
        ));
    }
    let range = match parse_range(head.header("range")) {
        // S3 answers a suffix range of an empty object with the whole (empty) object: 200.
        Some(ByteRange::Suffix { .. }) if object.size == 0 => None,
        other => other,
    };
    let resolved = match range {
        Some(range) => {
            if let Ok(resolved) = range.resolve(object.size) {
                Some(resolved)
            } else {
                let error = S3Error::new(
                    S3ErrorCode::InvalidRange,
                    "The requested range is not satisfiable",
                )
                .with_resource(format!("/{bucket_name}/{key}"));
                return Ok(Response::s3_error(error)
                    .with_header("Content-Range", format!("bytes */{}", object.size)));
            }
        }
        None => None,
    };
    let (status, bytes) = match (&part_range, &resolved) {
        (Some(r), _) | (None, Some(r)) => (206, r.clone()),
        (None, None) => (200, 0..object.size),
    };
    let mut response = Response::empty(status);
    response.head_only_length = Some(bytes.end - bytes.start);
    if status == 206 {
        response.head.header(
            "Content-Range",
            format!(
                "bytes {}-{}/{}",
                bytes.start,
                bytes.end.saturating_sub(1),
                object.size
            ),
        );
    }
    response = describe(response, &object, params, head);
    if !object.parts.is_empty() {
        response
            .head
            .header("x-amz-mp-parts-count", object.parts.len().to_string());
    }
    if !is_head && bytes.end > bytes.start {
        let mut reader = ObjectReader::new(std::rc::Rc::clone(&ctx.engine), object, bytes)?;
        if let Err(e) = reader.prefetch().await {
            // Too little was readable: what the read found missing or corrupt still goes to
            // the repair queue.
            let damaged = reader.damaged();
            if !damaged.is_empty() {
                report_damage(&ctx.meta, &damaged).await;
            }
            return Err(e);
        }
        response.stream = Some(reader);
    }
    Ok(response)
}

/// `DELETE /bucket/key`: commits a tombstone on the owning core, then queues the shards for
/// purging. Deleting a missing key succeeds (204), as in S3.
/// `DELETE /bucket/key`; with `If-Match` (an ETag list or `*`) only if the current object
/// matches: 412 when it does not, 404 when there is no object (as S3's conditional deletes).
pub async fn delete(
    ctx: &CoreCtx,
    bucket_name: &str,
    key: &str,
    if_match: Option<&str>,
) -> Result<Response, S3Error> {
    bucket::require(ctx, bucket_name)?;
    delete_one(ctx, bucket_name, key, if_match).await?;
    Ok(Response::empty(204))
}

async fn delete_one(
    ctx: &CoreCtx,
    bucket_name: &str,
    key: &str,
    if_match: Option<&str>,
) -> Result<(), S3Error> {
    // The tombstone lands only if the key is still at the version checked, and the record it
    // replaced is the one purged: a PUT racing the delete neither slips under it unpurged nor
    // gets its shards purged while it stays listed.
    for _ in 0..=COMMIT_ATTEMPTS_MAX {
        let current = lookup(&ctx.meta, bucket_name, key).await?;
        check_write_conditions(current.as_ref(), false, if_match, bucket_name, key)?;
        let Some(object) = current else {
            return Ok(());
        };
        let tombstone = Tombstone {
            bucket: bucket_name.to_owned(),
            key: key.to_owned(),
            version_id: object.version_id,
            mtime_ms: crate::engine::now_ms(),
        };
        let ops = vec![Op::DeleteObject(tombstone)];
        let expect = Some(Some(object.version_id));
        if let Ok(Some(replaced)) =
            commit_object_owned(&ctx.meta, bucket_name, key, expect, ops).await?
        {
            queue_purge_object(&ctx.meta, &replaced, ctx.engine.sites.len()).await;
            return Ok(());
        }
    }
    Err(S3Error::new(
        S3ErrorCode::SlowDown,
        "The key kept changing under this delete; retry",
    ))
}

/// Keys of one `DeleteObjects` request deleted concurrently (its 1000 keys in 16 waves).
pub const DELETE_MANY_INFLIGHT: usize = 64;

/// One key of a `DeleteObjects` request: checked, then deleted like a `DeleteObject`.
async fn delete_listed(
    ctx: &CoreCtx,
    bucket_name: &str,
    object: &tessera_http::xml::ObjectIdentifier,
) -> Result<(), S3Error> {
    if object.version_id.as_deref().is_some_and(|v| v != "null") {
        Err(S3Error::new(
            S3ErrorCode::NoSuchVersion,
            "The specified version does not exist.",
        ))
    } else if object.key.is_empty() || object.key.len() > 1024 {
        Err(S3Error::new(
            S3ErrorCode::KeyTooLongError,
            "The key is empty or longer than 1024 bytes",
        ))
    } else {
        delete_one(ctx, bucket_name, &object.key, object.etag.as_deref()).await
    }
}

/// `POST /bucket?delete`: up to 1000 keys; per-key errors in the result. The body must carry
/// Content-MD5 or an `x-amz-checksum-*` (verified before this runs), as S3 requires.
pub async fn delete_many(
    ctx: &CoreCtx,
    bucket_name: &str,
    integrity: &IntegrityHeaders,
    xml_body: &[u8],
) -> Result<Response, S3Error> {
    use tessera_http::xml::{DeleteError, DeleteResult, DeletedObject, XmlBody as _};
    bucket::require(ctx, bucket_name)?;
    if integrity.content_md5.is_none()
        && integrity.checksum.is_none()
        && integrity.trailer.is_none()
    {
        return Err(S3Error::new(
            S3ErrorCode::InvalidRequest,
            "Missing required header for this request: Content-MD5 or x-amz-checksum-*",
        ));
    }
    let request = tessera_http::xml::parse_delete(xml_body)?;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    // Keys are deleted DELETE_MANY_INFLIGHT at a time: each costs two metadata commits, and
    // concurrent commits share their log writes and fsyncs (group commit), where one key after
    // the other would pay two fsync round trips per key.
    let mut objects = request.objects.into_iter().peekable();
    while objects.peek().is_some() {
        let wave: Vec<_> = objects.by_ref().take(DELETE_MANY_INFLIGHT).collect();
        let results = futures_util::future::join_all(
            wave.iter()
                .map(|object| delete_listed(ctx, bucket_name, object)),
        )
        .await;
        for (object, result) in wave.into_iter().zip(results) {
            match result {
                Ok(()) => deleted.push(DeletedObject {
                    key: object.key,
                    version_id: object.version_id,
                }),
                Err(e) => errors.push(DeleteError {
                    key: object.key,
                    version_id: object.version_id,
                    code: e.code,
                    message: e.message,
                }),
            }
        }
    }
    let result = DeleteResult {
        quiet: request.quiet,
        deleted: &deleted,
        errors: &errors,
    };
    Ok(Response::xml(200, result.to_xml()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Range headers parse per RFC 9110; malformed and multi-ranges are ignored.
    #[test]
    fn ranges() {
        assert_eq!(
            parse_range(Some("bytes=0-9")),
            Some(ByteRange::Inclusive { first: 0, last: 9 })
        );
        assert_eq!(
            parse_range(Some("bytes=5-")),
            Some(ByteRange::From { first: 5 })
        );
        assert_eq!(
            parse_range(Some("bytes=-3")),
            Some(ByteRange::Suffix { len: 3 })
        );
        for ignored in [
            "bytes=9-5",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes= -",
        ] {
            assert_eq!(parse_range(Some(ignored)), None, "{ignored}");
        }
    }

    /// ETag lists match quoted, unquoted and wildcard forms; weak tags only when comparing
    /// weakly (If-None-Match), never for If-Match.
    #[test]
    fn etag_lists() {
        let etag = "\"abc\"";
        for compare in [Compare::Strong, Compare::Weak] {
            assert!(etag_matches("\"abc\"", etag, compare));
            assert!(etag_matches("abc", etag, compare));
            assert!(etag_matches("*", etag, compare));
            assert!(etag_matches("\"x\", \"abc\"", etag, compare));
            assert!(!etag_matches("\"abd\"", etag, compare));
        }
        assert!(etag_matches("\"x\", W/\"abc\"", etag, Compare::Weak));
        assert!(!etag_matches("\"x\", W/\"abc\"", etag, Compare::Strong));
        assert!(!etag_matches("W/\"abc\"", etag, Compare::Strong));
    }
}
