//! Bucket operations: CreateBucket, HeadBucket, DeleteBucket, ListBuckets, GetBucketLocation.
//!
//! Bucket records are global: every core keeps them, so a bucket lookup is always local. A
//! create or delete is committed on every core (a broadcast through the mesh) before it is
//! acknowledged.
//!
//! Creates and deletes hold the process-wide bucket lock (`MetaClient::lock_buckets`) from
//! their first check to the end of their broadcast, so:
//! - a bucket one core shows has reached every core: `BucketAlreadyOwnedByYou` is never
//!   answered while another create's broadcast is still on its way (the client's next request
//!   could otherwise land on a core that answers `NoSuchBucket`);
//! - two creates of one name give one `200` and one `409`, and a create and a delete of one
//!   name never interleave core by core.
//!
//! A gateway stopped in the middle of a broadcast can leave a bucket on some cores only (its
//! client got no answer). A repeated create finishes it (the record is committed on the cores
//! that lack it before the `409`), and so does a delete (it looks on every core).

use tessera_http::s3::router::ListBucketsParams;
use tessera_http::xml::{
    self, BucketInfo, ListAllMyBucketsResult, LocationConstraint, Owner, Timestamp, XmlBody as _,
};
use tessera_http::{S3Error, S3ErrorCode};
use tessera_meta::{Bucket, MetaRequest, MetaResponse, Op, Policy};

use super::{answer, unexpected};
use crate::server::response::Response;
use crate::server::CoreCtx;

/// The fallback policy of new buckets (the configured `engine.default_policy` is used): 2 data + 1 parity
/// shards in 1 MiB chunks, matching the embedded default of three local directories.
pub const DEFAULT_POLICY: Policy = Policy::Ec {
    k: 2,
    m: 1,
    chunk_size: 1 << 20,
};

/// The owner shown in listings for a given access key.
#[must_use]
pub fn owner(access_key: &str) -> Owner {
    Owner {
        id: access_key.to_owned(),
        display_name: access_key.to_owned(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The bucket record, or `NoSuchBucket`.
pub fn require(ctx: &CoreCtx, name: &str) -> Result<Bucket, S3Error> {
    ctx.meta.local.bucket(name).ok_or_else(|| {
        S3Error::new(
            S3ErrorCode::NoSuchBucket,
            "The specified bucket does not exist",
        )
        .with_resource(format!("/{name}"))
    })
}

/// `PUT /bucket`.
pub async fn create(
    ctx: &CoreCtx,
    name: &str,
    access_key: &str,
    body: &[u8],
) -> Result<Response, S3Error> {
    let configuration = xml::parse_create_bucket_configuration(body)?;
    let region = &ctx.shared.config.server.region;
    if let Some(location) = &configuration.location_constraint {
        if location != region {
            return Err(S3Error::new(
                S3ErrorCode::InvalidLocationConstraint,
                format!("The specified location-constraint is not valid: this gateway serves region {region}"),
            ));
        }
    }
    let _lock = ctx.meta.lock_buckets().await;
    if let Some(existing) = ctx.meta.local.bucket(name) {
        // Created before: make sure every core has it (a create interrupted by a stop may have
        // reached only some of them), then answer as S3 does.
        commit_where_missing(ctx, &existing).await?;
        return Err(S3Error::new(
            S3ErrorCode::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it.",
        ));
    }
    let bucket = Bucket {
        name: name.to_owned(),
        created_ms: now_ms(),
        policy: ctx.default_policy,
        owner: access_key.to_owned(),
    };
    broadcast_commit(ctx, Op::PutBucket(bucket)).await?;
    Ok(Response::empty(200).with_header("Location", format!("/{name}")))
}

/// Commits `op` on every core and waits until each has it durable (and applied).
async fn broadcast_commit(ctx: &CoreCtx, op: Op) -> Result<(), S3Error> {
    for result in ctx.meta.broadcast(&MetaRequest::Commit(vec![op])).await {
        match answer(result)? {
            MetaResponse::Committed(_) => {}
            other => return Err(unexpected(&other)),
        }
    }
    Ok(())
}

/// The bucket record `name` as every core holds it (core order; `None` where it is missing).
async fn bucket_on_every_core(ctx: &CoreCtx, name: &str) -> Result<Vec<Option<Bucket>>, S3Error> {
    let request = MetaRequest::Bucket {
        name: name.to_owned(),
    };
    let mut records = Vec::with_capacity(ctx.meta.cores());
    for result in ctx.meta.broadcast(&request).await {
        match answer(result)? {
            MetaResponse::Bucket(record) => records.push(record),
            other => return Err(unexpected(&other)),
        }
    }
    Ok(records)
}

/// Commits `bucket` on the cores that lack it. Runs under the bucket lock.
async fn commit_where_missing(ctx: &CoreCtx, bucket: &Bucket) -> Result<(), S3Error> {
    let records = bucket_on_every_core(ctx, &bucket.name).await?;
    for (core, record) in records.iter().enumerate() {
        if record.is_some() {
            continue;
        }
        let commit = MetaRequest::Commit(vec![Op::PutBucket(bucket.clone())]);
        let core = tessera_meta::CoreId(u16::try_from(core).expect("core count fits u16"));
        match answer(ctx.meta.call(core, commit).await)? {
            MetaResponse::Committed(_) => {}
            other => return Err(unexpected(&other)),
        }
    }
    Ok(())
}

/// `HEAD /bucket`.
pub fn head(ctx: &CoreCtx, name: &str) -> Result<Response, S3Error> {
    require(ctx, name)?;
    Ok(Response::empty(200).with_header(
        "x-amz-bucket-region",
        ctx.shared.config.server.region.clone(),
    ))
}

/// `GET /bucket?location`.
pub fn location(ctx: &CoreCtx, name: &str) -> Result<Response, S3Error> {
    require(ctx, name)?;
    Ok(Response::xml(
        200,
        LocationConstraint {
            region: &ctx.shared.config.server.region,
        }
        .to_xml(),
    ))
}

/// `GET /`: buckets in name order, filtered by `prefix` and `bucket-region`, paginated by
/// `max-buckets` with the last name returned as the continuation token.
pub fn list(ctx: &CoreCtx, access_key: &str, params: &ListBucketsParams) -> Response {
    let region = &ctx.shared.config.server.region;
    let prefix = params.prefix.as_deref().unwrap_or("");
    let after = params.continuation_token.as_deref().unwrap_or("");
    let max = params.max_buckets.map_or(usize::MAX, |m| m as usize);
    let region_matches = params.bucket_region.as_ref().is_none_or(|r| r == region);
    let mut buckets: Vec<BucketInfo> = ctx.meta.local.with_index(|index| {
        index
            .buckets()
            .filter(|b| region_matches && b.name.starts_with(prefix) && b.name.as_str() > after)
            .take(max.saturating_add(1))
            .map(|b| BucketInfo {
                name: b.name.clone(),
                creation_date: Timestamp::from_unix_ms(
                    i64::try_from(b.created_ms).unwrap_or(i64::MAX),
                ),
            })
            .collect()
    });
    let truncated = buckets.len() > max;
    buckets.truncate(max);
    let next = if truncated {
        buckets.last().map(|b| b.name.clone())
    } else {
        None
    };
    let result = ListAllMyBucketsResult {
        owner: &owner(access_key),
        buckets: &buckets,
        continuation_token: next.as_deref(),
        prefix: params.prefix.as_deref(),
    };
    Response::xml(200, result.to_xml())
}

/// `DELETE /bucket`: refused while any core holds an object or an upload of the bucket.
pub async fn delete(ctx: &CoreCtx, name: &str) -> Result<Response, S3Error> {
    let _lock = ctx.meta.lock_buckets().await;
    if ctx.meta.local.bucket(name).is_none() {
        // Normally no core has it. A create interrupted by a stop may have left it on other
        // cores, though: then this delete removes it from them.
        let records = bucket_on_every_core(ctx, name).await?;
        if records.iter().all(Option::is_none) {
            require(ctx, name)?;
        }
    }
    let stats = MetaRequest::Stats {
        bucket: name.to_owned(),
    };
    for result in ctx.meta.broadcast(&stats).await {
        match answer(result)? {
            MetaResponse::Stats(stats) if stats.objects == 0 => {}
            MetaResponse::Stats(_) => {
                return Err(S3Error::new(
                    S3ErrorCode::BucketNotEmpty,
                    "The bucket you tried to delete is not empty",
                ));
            }
            other => return Err(unexpected(&other)),
        }
    }
    if super::multipart::any_upload(&ctx.meta, name).await? {
        return Err(S3Error::new(
            S3ErrorCode::BucketNotEmpty,
            "The bucket you tried to delete is not empty: it has multipart uploads in progress",
        ));
    }
    broadcast_commit(
        ctx,
        Op::DeleteBucket {
            name: name.to_owned(),
        },
    )
    .await?;
    // Lets the scrub collect the shards nobody references that the bucket leaves behind.
    // Blocking: one small append per DeleteBucket. A failure only leaves them in place.
    let data_dir = &ctx.shared.config.server.data_dir;
    let now = crate::engine::now_ms();
    if let Err(e) = crate::engine::deleted_buckets::record(data_dir, name, now) {
        crate::runtime::log(format_args!(
            "recording the deletion of bucket {name}: {e}; its orphaned shards stay"
        ));
    }
    Ok(Response::empty(204))
}
