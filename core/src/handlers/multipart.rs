//! Multipart uploads: each part is erasure-coded into its own shards when it is uploaded;
//! completion only writes metadata (no re-read, no re-encode). Upload state lives in the
//! owning core's metadata log, so it survives restarts.
//!
//! ```text
//!  CreateMultipartUpload ─► Upload record (owner core)
//!  UploadPart n ─► engine.put (shards of the part) ─► UploadPart record (latest wins; the
//!                  replaced part's shards are purged)
//!  CompleteMultipartUpload ─► check parts (InvalidPart / InvalidPartOrder / EntityTooSmall)
//!                  ─► Object{parts} + delete Upload in one frame ─► purge unlisted parts
//!  AbortMultipartUpload ─► delete Upload ─► purge every part
//!  ListMultipartUploads ─► every core's page (tessera_meta::upload_page) ─► merge
//!  reaper (per core, background) ─► uploads older than engine.upload_age_max_s ─► abort
//! ```
//!
//! Upload ids start with the initiation time (hex milliseconds, then random bytes), so the
//! (key, upload id) order of listings is also S3's (key, initiation) order.

use md5::{Digest as _, Md5};
use tessera_http::checksum::IntegrityHeaders;
use tessera_http::codec::RequestHead;
use tessera_http::s3::router::ListPartsParams;
use tessera_http::s3::router::ListUploadsParams;
use tessera_http::sigv4::Verified;
use tessera_http::xml::{
    self, Checksums, CompleteMultipartUploadResult, InitiateMultipartUploadResult, ListPartsResult,
    PartInfo, Timestamp, XmlBody as _,
};
use tessera_http::{S3Error, S3ErrorCode};
use tessera_meta::{
    merge_upload_pages, partition_of, ETag, MetaRequest, MetaResponse, Object, ObjectPart, Op,
    Upload, UploadItem, UploadPart, UploadQuery, UploadState,
};

use super::object::{
    commit_owned, content_headers, etag_text, lookup, object_body, queue_purge, queue_repair,
    user_metadata,
};
use super::{answer, bucket, unexpected};
use crate::engine::put::{PutRequest, Stored};
use crate::mesh::MetaClient;
use crate::server::conn::BodyReader;
use crate::server::response::Response;
use crate::server::CoreCtx;

/// Smallest part other than the last, as S3 requires.
pub const PART_SIZE_MIN: u64 = 5 << 20;

/// Largest part, as S3 documents (UploadPartCopy ranges are held to it too).
pub const PART_SIZE_MAX: u64 = 5 << 30;

/// Uploads one reaper step aborts at most, so that a backlog is worked off in short steps
/// between foreground requests.
pub const REAP_BATCH_MAX: usize = 64;

/// Longest pause between reaper steps; shorter when the configured age is short.
pub const REAP_INTERVAL_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// How long the reaper waits between aborting uploads and purging their parts (see
/// [`reap_step`]).
pub const REAP_PURGE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

const _: () = assert!(PART_SIZE_MIN < PART_SIZE_MAX);

fn no_such_upload() -> S3Error {
    S3Error::new(
        S3ErrorCode::NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
}

/// The upload and its parts, from the core that owns `(bucket, key)`; `NoSuchUpload` if it is
/// not in progress.
pub async fn upload_state(
    ctx: &CoreCtx,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<UploadState, S3Error> {
    let owner = partition_of(bucket, key, ctx.meta.cores());
    let request = MetaRequest::Upload {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
    };
    match answer(ctx.meta.call(owner, request).await)? {
        MetaResponse::Upload(Some(state)) => Ok(state),
        MetaResponse::Upload(None) => Err(no_such_upload()),
        other => Err(unexpected(&other)),
    }
}

/// `POST /bucket/key?uploads`.
pub async fn create(
    ctx: &CoreCtx,
    head: &RequestHead,
    verified: &Verified,
    bucket_name: &str,
    key: &str,
) -> Result<Response, S3Error> {
    let record = bucket::require(ctx, bucket_name)?;
    let integrity =
        IntegrityHeaders::parse(&head.headers().collect::<Vec<_>>()).map_err(|e| e.s3_error())?;
    let upload_id = new_upload_id(crate::engine::now_ms(), &crate::engine::random_id()?);
    let upload = Upload {
        bucket: bucket_name.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.clone(),
        initiated_ms: crate::engine::now_ms(),
        headers: content_headers(head),
        user_metadata: user_metadata(head)?,
        checksum_algorithm: integrity.sdk_algorithm.map(super::object::meta_algorithm),
        policy: record.policy,
        owner: verified.access_key.clone(),
    };
    commit_owned(&ctx.meta, bucket_name, key, vec![Op::PutUpload(upload)]).await?;
    let result = InitiateMultipartUploadResult {
        bucket: bucket_name,
        key,
        upload_id: &upload_id,
    };
    Ok(Response::xml(200, result.to_xml()))
}

/// A 32-hex-digit upload id that sorts by initiation time: 12 digits of milliseconds since
/// the epoch (enough until the year 10889), then 20 random digits.
#[must_use]
pub fn new_upload_id(now_ms: u64, random: &[u8; 16]) -> String {
    format!(
        "{:012x}{}",
        now_ms & 0xFFFF_FFFF_FFFF,
        hex::encode(&random[..10])
    )
}

/// `PUT /bucket/key?partNumber=N&uploadId=U`.
#[allow(clippy::too_many_arguments)] // The router's typed parameters, passed through as they are.
pub async fn upload_part(
    ctx: &CoreCtx,
    reader: &mut BodyReader<'_>,
    verified: &Verified,
    integrity: &IntegrityHeaders,
    bucket_name: &str,
    key: &str,
    upload_id: &str,
    part_number: u16,
) -> Result<Response, S3Error> {
    bucket::require(ctx, bucket_name)?;
    let state = upload_state(ctx, bucket_name, key, upload_id).await?;
    let (body, size, checksum_algorithm) = object_body(ctx, reader, verified, integrity)?;
    let request = PutRequest {
        bucket: bucket_name,
        key,
        policy: &state.upload.policy,
        size,
        headers: &state.upload.headers,
        user_metadata: &[],
        part_number,
        checksum_algorithm,
    };
    let stored = ctx.engine.put(&request, body).await?;
    let part = record_part(ctx, bucket_name, key, upload_id, part_number, size, stored).await?;
    let mut response =
        Response::empty(200).with_header("ETag", format!("\"{}\"", hex::encode(part.etag)));
    if let Some(checksum) = part.checksum.as_ref().and_then(|c| {
        tessera_http::checksum::ChecksumValue::from_bytes(
            super::object::http_algorithm(c.algorithm),
            &c.value,
        )
    }) {
        response = response.with_header(checksum.algorithm().header_name(), checksum.to_base64());
    }
    Ok(response)
}

/// Records a part whose shards are `stored` (UploadPart and UploadPartCopy): checks that the
/// upload is still in progress (it may have been completed or aborted while the part
/// streamed), commits the part, and purges the part it replaced.
pub async fn record_part(
    ctx: &CoreCtx,
    bucket_name: &str,
    key: &str,
    upload_id: &str,
    part_number: u16,
    size: u64,
    stored: Stored,
) -> Result<UploadPart, S3Error> {
    let md5 = stored.etag;
    let part = UploadPart {
        bucket: bucket_name.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
        number: u32::from(part_number),
        size,
        etag: md5,
        checksum: stored.digest.checksum.map(|c| tessera_meta::Checksum {
            algorithm: super::object::meta_algorithm(c.algorithm()),
            value: c.as_bytes().to_vec(),
        }),
        mtime_ms: stored.mtime_ms,
        chunk_size: stored.chunk_size,
        shards: stored.shards,
    };
    let state = upload_state(ctx, bucket_name, key, upload_id).await?;
    let replaced = state.parts.get(&u32::from(part_number)).cloned();
    commit_owned(&ctx.meta, bucket_name, key, vec![Op::PutPart(part.clone())]).await?;
    if let Some(replaced) = replaced {
        queue_purge(&ctx.meta, &parts_as_object(&state.upload, vec![replaced])).await;
    }
    Ok(part)
}

/// An object record holding `parts`, used to queue their shards for purging.
fn parts_as_object(upload: &Upload, parts: Vec<UploadPart>) -> Object {
    Object {
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        version_id: 0,
        size: 0,
        etag: ETag {
            md5: [0; 16],
            parts: 0,
        },
        headers: tessera_meta::ContentHeaders::default(),
        user_metadata: Vec::new(),
        checksums: Vec::new(),
        mtime_ms: 0,
        policy: upload.policy,
        chunk_size: 0,
        shards: Vec::new(),
        parts: parts
            .into_iter()
            .map(|p| ObjectPart {
                number: p.number,
                size: p.size,
                etag: p.etag,
                shards: p.shards,
            })
            .collect(),
    }
}

/// `POST /bucket/key?uploadId=U`.
pub async fn complete(
    ctx: &CoreCtx,
    head: &RequestHead,
    bucket_name: &str,
    key: &str,
    upload_id: &str,
    xml_body: &[u8],
) -> Result<Response, S3Error> {
    bucket::require(ctx, bucket_name)?;
    let request = xml::parse_complete_multipart_upload(xml_body)?;
    let state = upload_state(ctx, bucket_name, key, upload_id).await?;
    let last = request.parts.len() - 1;
    let mut parts = Vec::with_capacity(request.parts.len());
    let mut md5s = Md5::new();
    let mut size = 0_u64;
    for wanted in &request.parts {
        let invalid = || {
            S3Error::new(
                S3ErrorCode::InvalidPart,
                format!(
                    "One or more of the specified parts could not be found (part {}).",
                    wanted.part_number
                ),
            )
        };
        let part = state
            .parts
            .get(&u32::from(wanted.part_number))
            .ok_or_else(invalid)?;
        if !wanted
            .etag
            .trim_matches('"')
            .eq_ignore_ascii_case(&hex::encode(part.etag))
        {
            return Err(invalid());
        }
        md5s.update(part.etag);
        size += part.size;
        parts.push(ObjectPart {
            number: part.number,
            size: part.size,
            etag: part.etag,
            shards: part.shards.clone(),
        });
    }
    // Sizes are checked once every part is known to exist, as S3 reports InvalidPart first.
    if parts[..last].iter().any(|p| p.size < PART_SIZE_MIN) {
        return Err(S3Error::new(
            S3ErrorCode::EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed size",
        ));
    }
    let previous = lookup(&ctx.meta, bucket_name, key).await?;
    if head
        .header("if-none-match")
        .is_some_and(|v| v.trim() == "*")
        && previous.is_some()
    {
        return Err(S3Error::new(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        ));
    }
    let etag = ETag {
        md5: md5s.finalize().into(),
        parts: parts.len() as u16,
    };
    let listed: std::collections::HashSet<u32> = parts.iter().map(|p| p.number).collect();
    let unlisted: Vec<UploadPart> = state
        .parts
        .values()
        .filter(|p| !listed.contains(&p.number))
        .cloned()
        .collect();
    let version_id = u64::from_le_bytes(
        crate::engine::random_id()?[..8]
            .try_into()
            .map_err(|_| crate::engine::internal("id"))?,
    );
    let object = Object {
        bucket: bucket_name.to_owned(),
        key: key.to_owned(),
        version_id,
        size,
        etag,
        headers: state.upload.headers.clone(),
        user_metadata: state.upload.user_metadata.clone(),
        checksums: Vec::new(),
        mtime_ms: crate::engine::now_ms(),
        policy: state.upload.policy,
        chunk_size: 0,
        shards: Vec::new(),
        parts,
    };
    // The part index lets `tessera recover` rebuild this object from the sites alone.
    crate::recover::write_part_index(&ctx.engine, &object).await?;
    // Kept to queue the repair of part shards that UploadPart wrote below full redundancy
    // (recorded `Pending` in the part; nothing repairs them while the upload is open).
    let repair_view = object.clone();
    let delete = Op::DeleteUpload {
        bucket: bucket_name.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
    };
    commit_owned(
        &ctx.meta,
        bucket_name,
        key,
        vec![Op::PutObject(object), delete],
    )
    .await?;
    if let Some(previous) = previous {
        queue_purge(&ctx.meta, &previous).await;
    }
    queue_purge(&ctx.meta, &parts_as_object(&state.upload, unlisted)).await;
    queue_repair(&ctx.meta, &repair_view).await;
    let etag_value = etag_text(&etag);
    let location = format!("/{bucket_name}/{key}");
    let result = CompleteMultipartUploadResult {
        location: &location,
        bucket: bucket_name,
        key,
        etag: etag_value.trim_matches('"'),
        checksums: &Checksums::default(),
        checksum_type: None,
    };
    Ok(Response::xml(200, result.to_xml()))
}

/// `DELETE /bucket/key?uploadId=U`.
pub async fn abort(
    ctx: &CoreCtx,
    bucket_name: &str,
    key: &str,
    upload_id: &str,
) -> Result<Response, S3Error> {
    bucket::require(ctx, bucket_name)?;
    let state = upload_state(ctx, bucket_name, key, upload_id).await?;
    let delete = Op::DeleteUpload {
        bucket: bucket_name.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
    };
    commit_owned(&ctx.meta, bucket_name, key, vec![delete]).await?;
    // A completion may have committed between our read and our abort: its object then owns
    // the parts it listed (both frames are on the owning core's log, so it is visible now).
    let current = lookup(&ctx.meta, bucket_name, key).await?;
    let parts = unowned_parts(current.as_ref(), state.parts.into_values());
    queue_purge(&ctx.meta, &parts_as_object(&state.upload, parts)).await;
    Ok(Response::empty(204))
}

/// The parts among `parts` whose shards `current` (the key's object now) does not use: what
/// an abort may purge without taking data from an object completed concurrently.
fn unowned_parts(
    current: Option<&Object>,
    parts: impl IntoIterator<Item = UploadPart>,
) -> Vec<UploadPart> {
    let owned: std::collections::HashSet<tessera_meta::BackendId> = current
        .iter()
        .flat_map(|o| o.parts.iter().flat_map(|p| p.shards.iter()))
        .map(|s| s.backend_id)
        .collect();
    parts
        .into_iter()
        .filter(|p| !p.shards.iter().any(|s| owned.contains(&s.backend_id)))
        .collect()
}

/// `GET /bucket/key?uploadId=U`.
pub async fn list_parts(
    ctx: &CoreCtx,
    bucket_name: &str,
    key: &str,
    upload_id: &str,
    params: &ListPartsParams,
) -> Result<Response, S3Error> {
    bucket::require(ctx, bucket_name)?;
    let state = upload_state(ctx, bucket_name, key, upload_id).await?;
    let max = params.max_parts as usize;
    let mut selected: Vec<&UploadPart> = state
        .parts
        .values()
        .filter(|p| p.number > u32::from(params.part_number_marker))
        .take(max + 1)
        .collect();
    let is_truncated = selected.len() > max;
    selected.truncate(max);
    let parts: Vec<PartInfo> = selected
        .iter()
        .map(|p| PartInfo {
            part_number: p.number as u16,
            last_modified: Timestamp::from_unix_ms(i64::try_from(p.mtime_ms).unwrap_or(i64::MAX)),
            etag: hex::encode(p.etag),
            size: p.size,
            checksums: Checksums::default(),
        })
        .collect();
    let owner = bucket::owner(&state.upload.owner);
    let result = ListPartsResult {
        bucket: bucket_name,
        key,
        upload_id,
        owner: &owner,
        part_number_marker: params.part_number_marker,
        next_part_number_marker: parts.last().map_or(0, |p| p.part_number),
        max_parts: params.max_parts,
        is_truncated,
        checksum_algorithm: None,
        parts: &parts,
    };
    Ok(Response::xml(200, result.to_xml()))
}

/// `GET /bucket?uploads`: every core's page of in-progress uploads, merged.
pub async fn list_uploads(
    ctx: &CoreCtx,
    bucket_name: &str,
    params: &ListUploadsParams,
) -> Result<Response, S3Error> {
    bucket::require(ctx, bucket_name)?;
    let query = UploadQuery {
        prefix: params.prefix.clone(),
        delimiter: params.delimiter.clone(),
        key_marker: params.key_marker.clone(),
        upload_id_marker: params.upload_id_marker.clone(),
        max_uploads: params.max_uploads as usize,
    };
    let request = MetaRequest::Uploads {
        bucket: bucket_name.to_owned(),
        query,
    };
    let mut pages = Vec::with_capacity(ctx.meta.cores());
    for result in ctx.meta.broadcast(&request).await {
        match answer(result)? {
            MetaResponse::Uploads(page) => pages.push(page),
            other => return Err(unexpected(&other)),
        }
    }
    let page = merge_upload_pages(pages, params.max_uploads as usize);
    let mut uploads = Vec::new();
    let mut common_prefixes = Vec::new();
    for item in &page.items {
        match item {
            UploadItem::Upload(u) => uploads.push(xml::UploadInfo {
                key: u.key.clone(),
                upload_id: u.upload_id.clone(),
                initiated: Timestamp::from_unix_ms(
                    i64::try_from(u.initiated_ms).unwrap_or(i64::MAX),
                ),
                owner: bucket::owner(&u.owner),
            }),
            UploadItem::Prefix(p) => common_prefixes.push(p.clone()),
        }
    }
    let next = page.next_markers();
    let result = xml::ListMultipartUploadsResult {
        bucket: bucket_name,
        key_marker: params.key_marker.as_deref().unwrap_or(""),
        upload_id_marker: params.upload_id_marker.as_deref().unwrap_or(""),
        next_key_marker: next.map(|(k, _)| k),
        next_upload_id_marker: next.and_then(|(_, u)| u),
        prefix: &params.prefix,
        delimiter: params.delimiter.as_deref(),
        max_uploads: params.max_uploads,
        encoding_url: params.encoding_url,
        is_truncated: page.is_truncated,
        uploads: &uploads,
        common_prefixes: &common_prefixes,
    };
    Ok(Response::xml(200, result.to_xml()))
}

/// True when some core holds an in-progress upload of `bucket` (DeleteBucket refuses then).
pub async fn any_upload(meta: &MetaClient, bucket: &str) -> Result<bool, S3Error> {
    let request = MetaRequest::Uploads {
        bucket: bucket.to_owned(),
        query: UploadQuery {
            max_uploads: 1,
            ..UploadQuery::default()
        },
    };
    let mut any = false;
    for result in meta.broadcast(&request).await {
        match answer(result)? {
            MetaResponse::Uploads(page) => any |= !page.items.is_empty(),
            other => return Err(unexpected(&other)),
        }
    }
    Ok(any)
}

/// The pause between reaper steps for uploads abandoned after `age_s`: a quarter of the age
/// (an upload is reaped at most 25 % late), between 1 s and [`REAP_INTERVAL_MAX`].
#[must_use]
pub fn reap_interval(age_s: u64) -> std::time::Duration {
    std::time::Duration::from_millis(age_s.saturating_mul(250))
        .clamp(std::time::Duration::from_secs(1), REAP_INTERVAL_MAX)
}

/// Runs this core's reaper forever (stopped with the runtime): aborts the uploads it owns
/// that were initiated more than `age_s` seconds ago, and purges their parts.
pub async fn run_reaper(meta: MetaClient, age_s: u64) {
    loop {
        let reaped = reap_step(&meta, age_s.saturating_mul(1000), crate::engine::now_ms()).await;
        if reaped < REAP_BATCH_MAX {
            monoio::time::sleep(reap_interval(age_s)).await;
        }
    }
}

/// One reaper step over this core's partition: aborts up to [`REAP_BATCH_MAX`] uploads
/// initiated at or before `now_ms - age_ms`, then, after [`REAP_PURGE_GRACE`], purges the parts
/// no object took; returns how many uploads it aborted.
///
/// The grace covers a completion that read the upload just before the abort and commits just
/// after it (its object would list parts the abort had purged): such a request finishes in
/// well under the grace, and its object is seen by the check that follows.
pub async fn reap_step(meta: &MetaClient, age_ms: u64, now_ms: u64) -> usize {
    let Some(cutoff) = now_ms.checked_sub(age_ms) else {
        return 0;
    };
    let expired: Vec<UploadState> = meta.local.with_index(|index| {
        index
            .buckets()
            .flat_map(|b| index.uploads(&b.name, None))
            .filter(|u| u.upload.initiated_ms <= cutoff)
            .take(REAP_BATCH_MAX)
            .cloned()
            .collect()
    });
    let mut aborted = Vec::with_capacity(expired.len());
    for state in expired {
        let upload = &state.upload;
        let delete = Op::DeleteUpload {
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            upload_id: upload.upload_id.clone(),
        };
        match meta.local.commit(vec![delete]).await {
            Ok(_) => aborted.push(state),
            Err(e) => crate::runtime::log(format_args!("reaper: {e}")),
        }
    }
    if aborted.is_empty() {
        return 0;
    }
    monoio::time::sleep(REAP_PURGE_GRACE).await;
    for state in &aborted {
        let upload = &state.upload;
        // Uploads live on the core that owns their key, so the object is local too.
        let current = meta.local.object(&upload.bucket, &upload.key);
        let parts = unowned_parts(current.as_ref(), state.parts.values().cloned());
        queue_purge(meta, &parts_as_object(upload, parts)).await;
    }
    aborted.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upload ids are 32 hex digits and sort by initiation time whatever their random part.
    #[test]
    fn upload_ids_sort_by_time() {
        let early = new_upload_id(1_700_000_000_000, &[0xFF; 16]);
        let late = new_upload_id(1_700_000_000_001, &[0; 16]);
        assert_eq!(early.len(), 32);
        assert!(early.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(early < late);
    }

    fn part(number: u32, id: u8) -> UploadPart {
        UploadPart {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            upload_id: "u".to_owned(),
            number,
            size: 1,
            etag: [0; 16],
            checksum: None,
            mtime_ms: 0,
            chunk_size: 1,
            shards: vec![tessera_meta::Shard {
                site: 0,
                backend_id: [id; 16],
                state: tessera_meta::ShardState::Durable,
            }],
        }
    }

    /// Parts that a concurrently completed object lists are kept from the purge; the others,
    /// and all of them when no object exists, are purged.
    #[test]
    fn parts_owned_by_a_completed_object_are_not_purged() {
        let upload = Upload {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            upload_id: "u".to_owned(),
            initiated_ms: 0,
            headers: tessera_meta::ContentHeaders::default(),
            user_metadata: Vec::new(),
            checksum_algorithm: None,
            policy: tessera_meta::Policy::Replica { n: 1 },
            owner: "o".to_owned(),
        };
        let completed = parts_as_object(&upload, vec![part(1, 7)]);
        let kept = unowned_parts(Some(&completed), [part(1, 7), part(2, 8)]);
        assert_eq!(kept.iter().map(|p| p.number).collect::<Vec<_>>(), [2]);
        assert_eq!(unowned_parts(None, [part(1, 7), part(2, 8)]).len(), 2);
    }

    /// The reaper pause is a quarter of the age, clamped to 1 s ..= 60 s.
    #[test]
    fn reap_interval_bounds() {
        assert_eq!(reap_interval(2), std::time::Duration::from_secs(1));
        assert_eq!(reap_interval(40), std::time::Duration::from_secs(10));
        assert_eq!(reap_interval(7 * 86_400), REAP_INTERVAL_MAX);
    }
}
