//! Server-side copies: CopyObject and UploadPartCopy.
//!
//! A copy reads the source through the verified GET pipeline and writes a new object (or
//! part) through the PUT pipeline, so the copy is erasure-coded under the destination
//! bucket's policy with fresh shards and manifests; no byte passes through the client.
//!
//! ```text
//!  x-amz-copy-source ─► source record (owning core) ─► x-amz-copy-source-if-* ─► 412?
//!      ─► ObjectReader(range) ─► ReaderSource ─► Engine::put_from (stripes, parity, shards)
//!      ─► CopyObject: Object record on the destination's core, old version purged
//!      ─► UploadPartCopy: UploadPart record (as UploadPart does)
//! ```
//!
//! Copying an object onto itself with `x-amz-metadata-directive: REPLACE` rewrites its data
//! too: every shard carries the headers and metadata in its manifest, and metadata must stay
//! rebuildable from the shards alone.

use std::ops::Range;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use tessera_http::checksum::{ChecksumAlgorithm as HttpAlgorithm, ChecksumValue};
use tessera_http::codec::RequestHead;
use tessera_http::s3::router::{CopyRange, CopySource};
use tessera_http::xml::{Checksums, CopyObjectResult, CopyPartResult, Timestamp, XmlBody as _};
use tessera_http::{S3Error, S3ErrorCode};
use tessera_meta::Object;

use super::object::{
    commit_under, content_headers, etag_matches, etag_text, http_algorithm, lookup, object_record,
    queue_purge_object, queue_repair, user_metadata, Compare, WriteConditions,
};
use super::{bucket, multipart};
use crate::engine::put::{checksum_code, PutRequest, ReaderSource, Stored};
use crate::engine::read::ObjectReader;
use crate::server::response::Response;
use crate::server::CoreCtx;

/// Largest source (or source range) one copy may read, as S3 documents: bigger objects are
/// copied with UploadPartCopy in ranges. Bounds the work one request can start, not memory:
/// the copy streams through a few stripes.
pub const COPY_SOURCE_BYTES_MAX: u64 = 5 << 30;

/// `x-amz-metadata-directive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataDirective {
    /// Keep the source's content headers and user metadata (the default).
    Copy,
    /// Take them from the copy request.
    Replace,
}

/// Parses `x-amz-metadata-directive` (absent means COPY).
pub fn metadata_directive(value: Option<&str>) -> Result<MetadataDirective, S3Error> {
    match value.map(str::trim) {
        None => Ok(MetadataDirective::Copy),
        Some(v) if v.eq_ignore_ascii_case("COPY") => Ok(MetadataDirective::Copy),
        Some(v) if v.eq_ignore_ascii_case("REPLACE") => Ok(MetadataDirective::Replace),
        Some(_) => Err(S3Error::new(
            S3ErrorCode::InvalidArgument,
            "Unknown metadata directive.",
        )),
    }
}

/// The four `x-amz-copy-source-if-*` headers of a copy request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyConditions<'a> {
    /// `x-amz-copy-source-if-match`: a list of ETags, or `*`.
    pub if_match: Option<&'a str>,
    /// `x-amz-copy-source-if-none-match`: a list of ETags, or `*`.
    pub if_none_match: Option<&'a str>,
    /// `x-amz-copy-source-if-modified-since`: an HTTP date.
    pub if_modified_since: Option<&'a str>,
    /// `x-amz-copy-source-if-unmodified-since`: an HTTP date.
    pub if_unmodified_since: Option<&'a str>,
}

impl<'a> CopyConditions<'a> {
    /// The conditions a request carries.
    #[must_use]
    pub fn from_head(head: &'a RequestHead) -> Self {
        CopyConditions {
            if_match: head.header("x-amz-copy-source-if-match"),
            if_none_match: head.header("x-amz-copy-source-if-none-match"),
            if_modified_since: head.header("x-amz-copy-source-if-modified-since"),
            if_unmodified_since: head.header("x-amz-copy-source-if-unmodified-since"),
        }
    }

    /// Evaluates the conditions against a source with ETag `etag` (quoted) last modified at
    /// `modified_s`, at time `now_s`, as S3 documents for CopyObject: every failure is 412
    /// (never 304); a matching if-match overrides a failing if-unmodified-since, and a failing
    /// if-none-match is not rescued by if-modified-since. Malformed dates are ignored, and so
    /// is an if-modified-since in the future.
    pub fn check(&self, etag: &str, modified_s: u64, now_s: u64) -> Result<(), S3Error> {
        let failed = || {
            S3Error::new(
                S3ErrorCode::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            )
        };
        if let Some(list) = self.if_match {
            if !etag_matches(list, etag, Compare::Strong) {
                return Err(failed());
            }
        } else if let Some(since) = self.if_unmodified_since.and_then(http_date) {
            if modified_s > since {
                return Err(failed());
            }
        }
        if let Some(list) = self.if_none_match {
            if etag_matches(list, etag, Compare::Weak) {
                return Err(failed());
            }
        } else if let Some(since) = self.if_modified_since.and_then(http_date) {
            if since <= now_s && modified_s <= since {
                return Err(failed());
            }
        }
        Ok(())
    }
}

/// Seconds since the epoch of an HTTP date; `None` when malformed.
fn http_date(value: &str) -> Option<u64> {
    httpdate::parse_http_date(value.trim())
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The checksums of a copy result, base64 as S3 sends them.
#[must_use]
pub fn xml_checksums(checksum: Option<&ChecksumValue>) -> Checksums {
    let mut out = Checksums::default();
    if let Some(value) = checksum {
        let text = Some(value.to_base64());
        match value.algorithm() {
            HttpAlgorithm::Crc32 => out.crc32 = text,
            HttpAlgorithm::Crc32c => out.crc32c = text,
            HttpAlgorithm::Crc64Nvme => out.crc64nvme = text,
            HttpAlgorithm::Sha1 => out.sha1 = text,
            HttpAlgorithm::Sha256 => out.sha256 = text,
        }
    }
    out
}

fn timestamp(mtime_ms: u64) -> Timestamp {
    Timestamp::from_unix_ms(i64::try_from(mtime_ms).unwrap_or(i64::MAX))
}

/// The source record named by `x-amz-copy-source`, after its bucket, version and the
/// `x-amz-copy-source-if-*` conditions were checked.
async fn open_source(
    ctx: &CoreCtx,
    head: &RequestHead,
    source: &CopySource,
) -> Result<Object, S3Error> {
    bucket::require(ctx, &source.bucket)?;
    if source.version_id.as_deref().is_some_and(|v| v != "null") {
        return Err(S3Error::new(
            S3ErrorCode::NoSuchVersion,
            "The specified version does not exist.",
        ));
    }
    let object = lookup(&ctx.meta, &source.bucket, &source.key)
        .await?
        .ok_or_else(|| {
            S3Error::new(S3ErrorCode::NoSuchKey, "The specified key does not exist.")
                .with_resource(format!("/{}/{}", source.bucket, source.key))
        })?;
    CopyConditions::from_head(head).check(
        &etag_text(&object.etag),
        object.mtime_ms / 1000,
        crate::engine::now_ms() / 1000,
    )?;
    Ok(object)
}

/// Streams `range` of `object` into new shards written for `request`. The MD5 is reused
/// when the whole of a single-PUT object is copied (its ETag is that MD5); otherwise it is
/// computed as the bytes pass.
async fn copy_bytes(
    ctx: &CoreCtx,
    object: Object,
    range: Range<u64>,
    request: &PutRequest<'_>,
    checksum: Option<ChecksumValue>,
    compute: Option<tessera_http::checksum::ChecksumAlgorithm>,
) -> Result<Stored, S3Error> {
    assert_eq!(request.size, range.end - range.start);
    let whole_single = object.parts.is_empty() && range == (0..object.size);
    let known_md5 = whole_single.then_some(object.etag.md5);
    let reader = ObjectReader::new(Rc::clone(&ctx.engine), object, range)?;
    let mut source = ReaderSource::new(reader, request.size, known_md5, checksum);
    if let Some(algorithm) = compute {
        source = source.computing_checksum(algorithm);
    }
    ctx.engine.put_from(request, source).await
}

/// `PUT /bucket/key` with `x-amz-copy-source`.
pub async fn copy_object(
    ctx: &CoreCtx,
    head: &RequestHead,
    bucket_name: &str,
    key: &str,
    source: &CopySource,
) -> Result<Response, S3Error> {
    let destination = bucket::require(ctx, bucket_name)?;
    super::unsupported::check(head.headers())?;
    let conditions = WriteConditions::of(head)?;
    // The destination's conditions: checked before copying, to fail early; again with the
    // commit.
    conditions.expect(ctx, bucket_name, key).await?;
    let directive = metadata_directive(head.header("x-amz-metadata-directive"))?;
    let object = open_source(ctx, head, source).await?;
    if source.bucket == bucket_name && source.key == key && directive == MetadataDirective::Copy {
        return Err(S3Error::new(
            S3ErrorCode::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    if object.size > COPY_SOURCE_BYTES_MAX {
        return Err(S3Error::new(
            S3ErrorCode::InvalidRequest,
            format!("The specified copy source is larger than the maximum allowable size for a copy source: {COPY_SOURCE_BYTES_MAX}"),
        ));
    }
    let (headers, metadata) = match directive {
        MetadataDirective::Copy => (object.headers.clone(), object.user_metadata.clone()),
        MetadataDirective::Replace => (content_headers(head), user_metadata(head)?),
    };
    // A stored checksum covers exactly the bytes being copied: it stays valid for the copy.
    let checksum = object
        .checksums
        .first()
        .and_then(|c| ChecksumValue::from_bytes(http_algorithm(c.algorithm), &c.value));
    let size = object.size;
    let request = PutRequest {
        bucket: bucket_name,
        key,
        policy: &destination.policy,
        size,
        headers: &headers,
        user_metadata: &metadata,
        part_number: 0,
        checksum_algorithm: checksum.map(|c| checksum_code(c.algorithm())),
    };
    let stored = copy_bytes(ctx, object, 0..size, &request, checksum, None).await?;
    let checksum = stored.digest.checksum;
    let copy = object_record(stored, bucket_name, key, size, headers, metadata);
    let etag = etag_text(&copy.etag);
    let mtime_ms = copy.mtime_ms;
    // Re-checked after the copy streamed: the destination bucket may have been deleted (then
    // the copy's shards belong to no object), and another writer may have replaced the key.
    if let Err(e) = bucket::require(ctx, bucket_name) {
        queue_purge_object(&ctx.meta, &copy, ctx.engine.sites.len()).await;
        return Err(e);
    }
    let repair_view = copy.clone();
    // The record replaced is answered by the commit itself: a PUT racing this copy is either
    // replaced (and purged) or replaces it, never left behind unpurged.
    let replaced = commit_under(ctx, bucket_name, key, &copy, conditions).await?;
    if let Some(previous) = replaced {
        queue_purge_object(&ctx.meta, &previous, ctx.engine.sites.len()).await;
    }
    queue_repair(&ctx.meta, &repair_view).await;
    let checksums = xml_checksums(checksum.as_ref());
    let result = CopyObjectResult {
        etag: &etag,
        last_modified: timestamp(mtime_ms),
        checksums: &checksums,
    };
    Ok(Response::xml(200, result.to_xml()))
}

/// The bytes of a source of `size` bytes that `x-amz-copy-source-range` selects.
pub fn source_range(range: Option<CopyRange>, size: u64) -> Result<Range<u64>, S3Error> {
    let Some(range) = range else {
        return Ok(0..size);
    };
    if range.last >= size || range.first > range.last {
        return Err(S3Error::new(
            S3ErrorCode::InvalidArgument,
            format!("Range specified is not valid for source object of size: {size}"),
        ));
    }
    Ok(range.first..range.last + 1)
}

/// `PUT /bucket/key?partNumber=N&uploadId=U` with `x-amz-copy-source`.
#[allow(clippy::too_many_arguments)] // The router's typed parameters, passed through as they are.
pub async fn upload_part_copy(
    ctx: &CoreCtx,
    head: &RequestHead,
    bucket_name: &str,
    key: &str,
    upload_id: &str,
    part_number: u16,
    source: &CopySource,
    range: Option<CopyRange>,
) -> Result<Response, S3Error> {
    bucket::require(ctx, bucket_name)?;
    let state = multipart::upload_state(ctx, bucket_name, key, upload_id).await?;
    let object = open_source(ctx, head, source).await?;
    let bytes = source_range(range, object.size)?;
    let size = bytes.end - bytes.start;
    if size > multipart::PART_SIZE_MAX {
        return Err(S3Error::new(
            S3ErrorCode::InvalidRequest,
            format!("The specified copy source is larger than the maximum allowable size for a copy source: {}", multipart::PART_SIZE_MAX),
        ));
    }
    let known = if bytes == (0..object.size) {
        object
            .checksums
            .first()
            .and_then(|c| ChecksumValue::from_bytes(http_algorithm(c.algorithm), &c.value))
    } else {
        None
    };
    // A part of an upload created with a checksum algorithm carries that algorithm's checksum
    // (computed from the copied bytes unless the source's whole-object value already is one).
    let wanted = multipart::checksum::of_upload(&state.upload).map(|c| c.algorithm);
    let (checksum, compute) = match wanted {
        Some(algorithm) if known.is_some_and(|k| k.algorithm() == algorithm) => (known, None),
        Some(algorithm) => (None, Some(algorithm)),
        None => (known, None),
    };
    let request = PutRequest {
        bucket: bucket_name,
        key,
        policy: &state.upload.policy,
        size,
        headers: &state.upload.headers,
        user_metadata: &[],
        part_number,
        checksum_algorithm: checksum
            .map(|c| c.algorithm())
            .or(compute)
            .map(checksum_code),
    };
    let stored = copy_bytes(ctx, object, bytes, &request, checksum, compute).await?;
    let part =
        multipart::record_part(ctx, bucket_name, key, upload_id, part_number, size, stored).await?;
    let etag = format!("\"{}\"", hex::encode(part.etag));
    let checksum = part
        .checksum
        .as_ref()
        .and_then(|c| ChecksumValue::from_bytes(http_algorithm(c.algorithm), &c.value));
    let checksums = xml_checksums(checksum.as_ref());
    let result = CopyPartResult {
        etag: &etag,
        last_modified: timestamp(part.mtime_ms),
        checksums: &checksums,
    };
    Ok(Response::xml(200, result.to_xml()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &str = "\"0123456789abcdef0123456789abcdef\"";
    // Sun, 06 Nov 1994 08:49:37 GMT
    const T: u64 = 784_111_777;
    const NOW: u64 = T + 86_400 * 365 * 30;

    fn conditions<'a>(
        if_match: Option<&'a str>,
        if_none_match: Option<&'a str>,
        if_modified_since: Option<&'a str>,
        if_unmodified_since: Option<&'a str>,
    ) -> CopyConditions<'a> {
        CopyConditions {
            if_match,
            if_none_match,
            if_modified_since,
            if_unmodified_since,
        }
    }

    fn assert_failed(result: &Result<(), S3Error>) {
        assert!(
            matches!(result, Err(e) if e.code == S3ErrorCode::PreconditionFailed),
            "{result:?}"
        );
    }

    /// Each of the four copy-source conditions passes and fails on its own as S3 documents,
    /// always with 412 rather than 304.
    #[test]
    fn each_condition_alone() {
        let before = "Sat, 05 Nov 1994 08:49:37 GMT";
        let after = "Mon, 07 Nov 1994 08:49:37 GMT";
        let check = |c: CopyConditions<'_>| c.check(ETAG, T, NOW);
        assert!(check(conditions(Some(ETAG), None, None, None)).is_ok());
        assert!(check(conditions(
            Some("0123456789abcdef0123456789abcdef"),
            None,
            None,
            None
        ))
        .is_ok());
        assert_failed(&check(conditions(Some("\"other\""), None, None, None)));
        assert!(check(conditions(None, Some("\"other\""), None, None)).is_ok());
        assert_failed(&check(conditions(None, Some(ETAG), None, None)));
        assert_failed(&check(conditions(None, Some("*"), None, None)));
        assert!(check(conditions(None, None, Some(before), None)).is_ok());
        assert_failed(&check(conditions(None, None, Some(after), None)));
        assert!(check(conditions(None, None, None, Some(after))).is_ok());
        assert_failed(&check(conditions(None, None, None, Some(before))));
        assert!(check(conditions(None, None, Some("not a date"), None)).is_ok());
    }

    /// The documented pairings: a matching if-match wins over a failing if-unmodified-since;
    /// a failing if-none-match fails even when if-modified-since holds.
    #[test]
    fn documented_pairs() {
        let before = "Sat, 05 Nov 1994 08:49:37 GMT";
        assert!(conditions(Some(ETAG), None, None, Some(before))
            .check(ETAG, T, NOW)
            .is_ok());
        assert_failed(&conditions(None, Some(ETAG), Some(before), None).check(ETAG, T, NOW));
    }

    /// An if-modified-since in the future is ignored, as S3 does.
    #[test]
    fn future_modified_since_is_ignored() {
        let future = "Mon, 07 Nov 1994 08:49:37 GMT";
        assert!(conditions(None, None, Some(future), None)
            .check(ETAG, T, T)
            .is_ok());
    }

    /// COPY is the default, REPLACE is recognised in any case, anything else is refused.
    #[test]
    fn directives() {
        assert_eq!(metadata_directive(None).ok(), Some(MetadataDirective::Copy));
        assert_eq!(
            metadata_directive(Some("replace")).ok(),
            Some(MetadataDirective::Replace)
        );
        assert!(matches!(
            metadata_directive(Some("MOVE")),
            Err(e) if e.code == S3ErrorCode::InvalidArgument
        ));
    }

    /// Copy ranges must lie inside the source; absent means the whole source.
    #[test]
    fn ranges_inside_the_source() {
        assert_eq!(source_range(None, 10).ok(), Some(0..10));
        assert_eq!(
            source_range(Some(CopyRange { first: 2, last: 9 }), 10).ok(),
            Some(2..10)
        );
        assert!(matches!(
            source_range(Some(CopyRange { first: 2, last: 10 }), 10),
            Err(e) if e.code == S3ErrorCode::InvalidArgument
        ));
        assert!(source_range(Some(CopyRange { first: 0, last: 0 }), 0).is_err());
    }

    /// A copy result names the stored checksum under its own element only.
    #[test]
    fn checksums_by_algorithm() {
        let value = ChecksumValue::from_bytes(HttpAlgorithm::Crc32, &[0, 0, 0, 1]);
        let checksums = xml_checksums(value.as_ref());
        assert_eq!(checksums.crc32.as_deref(), Some("AAAAAQ=="));
        assert!(checksums.sha256.is_none());
        assert_eq!(xml_checksums(None), Checksums::default());
    }
}
