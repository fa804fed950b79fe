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
//! ```

use md5::{Digest as _, Md5};
use tessera_http::checksum::IntegrityHeaders;
use tessera_http::codec::RequestHead;
use tessera_http::s3::router::ListPartsParams;
use tessera_http::sigv4::Verified;
use tessera_http::xml::{
    self, Checksums, CompleteMultipartUploadResult, InitiateMultipartUploadResult, ListPartsResult,
    PartInfo, Timestamp, XmlBody as _,
};
use tessera_http::{S3Error, S3ErrorCode};
use tessera_meta::{
    partition_of, ETag, MetaRequest, MetaResponse, Object, ObjectPart, Op, Upload, UploadPart,
    UploadState,
};

use super::object::{commit_owned, content_headers, etag_text, lookup, queue_purge, user_metadata};
use super::{answer, bucket, unexpected};
use crate::engine::put::PutRequest;
use crate::server::body::RequestBody;
use crate::server::conn::BodyReader;
use crate::server::response::Response;
use crate::server::CoreCtx;

/// Smallest part other than the last, as S3 requires.
pub const PART_SIZE_MIN: u64 = 5 << 20;

fn no_such_upload() -> S3Error {
    S3Error::new(
        S3ErrorCode::NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
}

async fn upload_state(
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
    let upload_id = hex::encode(crate::engine::random_id()?);
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
    let body = RequestBody::new(reader, &verified.payload, integrity, true)?;
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
    let request = PutRequest {
        bucket: bucket_name,
        key,
        policy: &state.upload.policy,
        size,
        headers: &state.upload.headers,
        user_metadata: &[],
        part_number,
        checksum_algorithm: algorithm.map(crate::engine::put::checksum_code),
    };
    let stored = ctx.engine.put(&request, body).await?;
    let md5 = stored
        .digest
        .md5
        .ok_or_else(|| crate::engine::internal("no MD5"))?;
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
    // The upload may have been completed or aborted while the part streamed.
    let state = upload_state(ctx, bucket_name, key, upload_id).await?;
    let replaced = state.parts.get(&u32::from(part_number)).cloned();
    commit_owned(&ctx.meta, bucket_name, key, vec![Op::PutPart(part)]).await?;
    if let Some(replaced) = replaced {
        queue_purge(&ctx.meta, &parts_as_object(&state.upload, vec![replaced])).await;
    }
    let mut response =
        Response::empty(200).with_header("ETag", format!("\"{}\"", hex::encode(md5)));
    if let Some(checksum) = stored.digest.checksum {
        response = response.with_header(checksum.algorithm().header_name(), checksum.to_base64());
    }
    Ok(response)
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
    queue_purge(
        &ctx.meta,
        &parts_as_object(&state.upload, state.parts.into_values().collect()),
    )
    .await;
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
