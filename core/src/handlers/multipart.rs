//! Multipart uploads: each part is erasure-coded into its own shards when it is uploaded;
//! completion only writes metadata (no re-read, no re-encode). Upload state lives in the
//! owning core's metadata log, so it survives restarts.
//!
//! ```text
//!  CreateMultipartUpload ─► Upload record (owner core)
//!  UploadPart n ─► engine.put (shards of the part) ─► UploadPart record (latest wins; the
//!                  replaced part's shards are purged)
//!  CompleteMultipartUpload ─► check parts (InvalidPart / InvalidPartOrder / EntityTooSmall)
//!                  and checksums (checksum.rs) ─► Object{parts} + delete Upload in one frame,
//!                  IF the upload and the checked parts are unchanged ─► purge unlisted parts
//!  AbortMultipartUpload ─► delete Upload IF in progress ─► purge the parts it had
//!  ListMultipartUploads ─► every core's page (tessera_meta::upload_page) ─► merge
//!  reaper (per core, background) ─► uploads older than engine.upload_age_max_s ─► abort
//! ```
//!
//! Every commit on an upload is conditional on the owning core (`MetaRequest::CommitIfUpload`):
//! of a completion and an abort (or two completions, or a part and an abort) exactly one
//! commits, the other gets `NoSuchUpload`, and the parts purged are exactly those of the
//! upload as the winning commit removed it. An object never lists purged parts.
//!
//! Upload ids start with the initiation time (hex milliseconds, then random bytes), so the
//! (key, upload id) order of listings is also S3's (key, initiation) order.

pub mod checksum;

pub use checksum::read_headers as checksum_read_headers;

use md5::{Digest as _, Md5};
use tessera_http::checksum::{ChecksumAlgorithm as HttpAlgorithm, IntegrityHeaders};
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
    merge_upload_pages, multipart_checksum, partition_of, ETag, MetaRequest, MetaResponse, Object,
    ObjectExpect, ObjectPart, Op, Upload, UploadCommit, UploadCondition, UploadItem,
    UploadMismatch, UploadPart, UploadQuery, UploadState,
};

use super::object::{
    commit_owned, content_headers, etag_text, object_body, queue_purge, queue_purge_object,
    queue_purge_part_index, queue_repair, user_metadata, WriteConditions, COMMIT_ATTEMPTS_MAX,
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

/// Commits `ops` on the owning core only if `condition` holds there (see
/// `MetaStore::commit_if_upload`); answers the upload as it was just before (and, for a
/// condition on the object, the record replaced), or the reason the condition failed.
async fn commit_if_upload(
    ctx: &CoreCtx,
    condition: UploadCondition,
    ops: Vec<Op>,
) -> Result<Result<UploadCommit, UploadMismatch>, S3Error> {
    let owner = partition_of(&condition.bucket, &condition.key, ctx.meta.cores());
    let request = MetaRequest::CommitIfUpload { condition, ops };
    match answer(ctx.meta.call(owner, request).await)? {
        MetaResponse::UploadCommitted(commit) => Ok(Ok(*commit)),
        MetaResponse::UploadMismatch(mismatch) => Ok(Err(mismatch)),
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
    super::unsupported::check(head.headers())?;
    let requested = checksum::requested(head)?;
    let upload_id = new_upload_id(crate::engine::now_ms(), &crate::engine::random_id()?);
    let mut pairs = user_metadata(head)?;
    if let Some(requested) = requested {
        multipart_checksum::set_upload_checksum_type(&mut pairs, requested.kind.name());
    }
    let upload = Upload {
        bucket: bucket_name.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.clone(),
        initiated_ms: crate::engine::now_ms(),
        headers: content_headers(head),
        user_metadata: pairs,
        checksum_algorithm: requested.map(|r| super::object::meta_algorithm(r.algorithm)),
        policy: record.policy,
        owner: verified.access_key.clone(),
    };
    commit_owned(&ctx.meta, bucket_name, key, vec![Op::PutUpload(upload)]).await?;
    let result = InitiateMultipartUploadResult {
        bucket: bucket_name,
        key,
        upload_id: &upload_id,
    };
    let mut response = Response::xml(200, result.to_xml());
    if let Some(requested) = requested {
        response = response
            .with_header("x-amz-checksum-algorithm", requested.algorithm.name())
            .with_header("x-amz-checksum-type", requested.kind.name());
    }
    Ok(response)
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
    checksum::check_part(
        &state.upload,
        integrity
            .checksum
            .map(|c| c.algorithm())
            .or(integrity.trailer),
    )?;
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

/// Records a part whose shards are `stored` (UploadPart and UploadPartCopy): commits the part
/// if the upload is still in progress (it may have been completed or aborted while the part
/// streamed; then the new shards are purged and the answer is `NoSuchUpload`), and purges the
/// part it replaced.
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
    let condition = UploadCondition::exists(bucket_name, key, upload_id);
    if let Ok(UploadCommit { state, .. }) =
        commit_if_upload(ctx, condition, vec![Op::PutPart(part.clone())]).await?
    {
        if let Some(replaced) = state.parts.get(&u32::from(part_number)).cloned() {
            queue_purge(&ctx.meta, &parts_as_object(&state.upload, vec![replaced])).await;
        }
        Ok(part)
    } else {
        queue_purge(&ctx.meta, &parts_as_object_unowned(part)).await;
        Err(no_such_upload())
    }
}

/// An object record holding one part of an upload that no longer exists, to purge it.
fn parts_as_object_unowned(part: UploadPart) -> Object {
    let policy = tessera_meta::Policy::Replica { n: 1 };
    let upload = Upload {
        bucket: part.bucket.clone(),
        key: part.key.clone(),
        upload_id: part.upload_id.clone(),
        initiated_ms: 0,
        headers: tessera_meta::ContentHeaders::default(),
        user_metadata: Vec::new(),
        checksum_algorithm: None,
        policy,
        owner: String::new(),
    };
    parts_as_object(&upload, vec![part])
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
    let mut listed = Vec::with_capacity(request.parts.len());
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
        listed.push((wanted, part));
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
    let claimed = head.headers().find_map(|(name, value)| {
        HttpAlgorithm::from_header_name(name).map(|algorithm| (algorithm, value))
    });
    let object_checksum = checksum::complete(
        &state.upload,
        &listed,
        claimed,
        head.header("x-amz-checksum-type"),
    )?;
    let mut condition = UploadCondition {
        parts: listed
            .iter()
            .map(|(_, part)| UploadCondition::part_identity(part))
            .collect(),
        ..UploadCondition::exists(bucket_name, key, upload_id)
    };
    drop(listed);
    let conditions = WriteConditions::of(head)?;
    // What the key must hold for the commit: checked here to fail before the part index is
    // written, and again on the owning core with the commit itself.
    let expect = async || -> Result<ObjectExpect, S3Error> {
        Ok(match conditions.expect(ctx, bucket_name, key).await? {
            None => ObjectExpect::Any,
            Some(version) => ObjectExpect::At(version),
        })
    };
    condition.object = Some(expect().await?);
    let etag = ETag {
        md5: md5s.finalize().into(),
        parts: parts.len() as u16,
    };
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
        user_metadata: multipart_checksum::client_metadata(&state.upload.user_metadata),
        checksums: object_checksum
            .as_ref()
            .map(checksum::ObjectChecksum::records)
            .unwrap_or_default(),
        mtime_ms: crate::engine::now_ms(),
        policy: state.upload.policy,
        chunk_size: 0,
        shards: Vec::new(),
        parts,
    };
    // The part index lets `tessera recover` rebuild this object from the sites alone.
    if let Err(e) = crate::recover::write_part_index(&ctx.engine, &object).await {
        // Copies written before the failure would describe an object that does not exist.
        queue_purge_part_index(&ctx.meta, &object, ctx.engine.sites.len()).await;
        return Err(e);
    }
    // Kept to queue the repair of part shards that UploadPart wrote below full redundancy
    // (recorded `Pending` in the part; nothing repairs them while the upload is open).
    let repair_view = object.clone();
    let delete = Op::DeleteUpload {
        bucket: bucket_name.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
    };
    let listed: std::collections::HashSet<u32> = object.parts.iter().map(|p| p.number).collect();
    let ops = vec![Op::PutObject(object), delete];
    // Committed only if the upload is still in progress with the very parts checked above
    // and the key still as the conditions found it: an abort, another completion or a
    // re-uploaded part in between makes this one fail instead; a write to the key in between
    // is what it replaces (and purges), or, under a condition, makes it check again.
    let mut attempts = 0;
    let commit = loop {
        let refused = match commit_if_upload(ctx, condition.clone(), ops.clone()).await? {
            Ok(commit) => break commit,
            Err(UploadMismatch::NoSuchUpload) => no_such_upload(),
            Err(UploadMismatch::PartChanged(number)) => S3Error::new(
                S3ErrorCode::InvalidPart,
                format!("Part {number} was uploaded again while the upload was being completed."),
            ),
            Err(UploadMismatch::ObjectChanged(_)) if attempts < COMMIT_ATTEMPTS_MAX => {
                attempts += 1;
                match expect().await {
                    Ok(expect) => {
                        condition.object = Some(expect);
                        continue;
                    }
                    Err(e) => e,
                }
            }
            Err(UploadMismatch::ObjectChanged(_)) => S3Error::new(
                S3ErrorCode::SlowDown,
                "The key kept changing under this conditional write; retry",
            ),
        };
        // Nothing was committed: the part index written above describes no object, and left
        // in place `tessera recover` could bring this completion back. The parts stay with
        // the upload.
        queue_purge_part_index(&ctx.meta, &repair_view, ctx.engine.sites.len()).await;
        return Err(refused);
    };
    if let Some(previous) = &commit.previous {
        queue_purge_object(&ctx.meta, previous, ctx.engine.sites.len()).await;
    }
    let removed = commit.state;
    let unlisted: Vec<UploadPart> = removed
        .parts
        .values()
        .filter(|p| !listed.contains(&p.number))
        .cloned()
        .collect();
    queue_purge(&ctx.meta, &parts_as_object(&removed.upload, unlisted)).await;
    queue_repair(&ctx.meta, &repair_view).await;
    let etag_value = etag_text(&etag);
    let location = format!("/{bucket_name}/{key}");
    let result = CompleteMultipartUploadResult {
        location: &location,
        bucket: bucket_name,
        key,
        etag: etag_value.trim_matches('"'),
        checksums: &object_checksum
            .as_ref()
            .map_or_else(Checksums::default, |c| {
                checksum::xml_checksums(c.value.algorithm(), c.text())
            }),
        checksum_type: object_checksum.as_ref().map(|c| c.kind.name()),
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
    let delete = Op::DeleteUpload {
        bucket: bucket_name.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
    };
    let condition = UploadCondition::exists(bucket_name, key, upload_id);
    // The parts the upload had when the abort removed it: no completion can list them any
    // more (it would need the upload), so all of them go.
    let removed = commit_if_upload(ctx, condition, vec![delete])
        .await?
        .map_err(|_| no_such_upload())?
        .state;
    let parts: Vec<UploadPart> = removed.parts.into_values().collect();
    queue_purge(&ctx.meta, &parts_as_object(&removed.upload, parts)).await;
    Ok(Response::empty(204))
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
            checksums: checksum::part_value(p).map_or_else(Checksums::default, |v| {
                checksum::xml_checksums(v.algorithm(), v.to_base64())
            }),
        })
        .collect();
    let declared = checksum::of_upload(&state.upload);
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
        checksum_algorithm: declared.map(|d| d.algorithm.name()),
        checksum_type: declared.map(|d| d.kind.name()),
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
/// initiated at or before `now_ms - age_ms` and purges their parts; returns how many uploads
/// it aborted. Each abort is conditional like a client's: a completion that commits first
/// wins, and one that comes later fails with `NoSuchUpload`, so no object lists a purged part.
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
    let mut aborted = 0;
    for state in expired {
        let upload = &state.upload;
        let delete = Op::DeleteUpload {
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            upload_id: upload.upload_id.clone(),
        };
        let condition = UploadCondition::exists(&upload.bucket, &upload.key, &upload.upload_id);
        // Uploads live on the core that owns their key: this core.
        match meta.local.commit_if_upload(&condition, vec![delete]).await {
            Ok(Ok(UploadCommit { state: removed, .. })) => {
                aborted += 1;
                let parts: Vec<UploadPart> = removed.parts.into_values().collect();
                queue_purge(meta, &parts_as_object(&removed.upload, parts)).await;
            }
            // Completed or aborted meanwhile: nothing to reap.
            Ok(Err(_)) => {}
            Err(e) => crate::runtime::log(format_args!("reaper: {e}")),
        }
    }
    aborted
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

    /// The reaper pause is a quarter of the age, clamped to 1 s ..= 60 s.
    #[test]
    fn reap_interval_bounds() {
        assert_eq!(reap_interval(2), std::time::Duration::from_secs(1));
        assert_eq!(reap_interval(40), std::time::Duration::from_secs(10));
        assert_eq!(reap_interval(7 * 86_400), REAP_INTERVAL_MAX);
    }
}
