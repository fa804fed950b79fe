//! ListObjects (v1) and ListObjectsV2: every core's page of the bucket merged into one S3 page.
//!
//! Each core lists its own partition (a local call or a mesh message), the pages are merged in
//! UTF-8 byte order with common prefixes de-duplicated, and the next page starts strictly after
//! the last item returned — so a continuation always progresses and never repeats.

use base64::Engine as _;
use tessera_http::s3::router::{ListObjectsParams, ListObjectsV2Params};
use tessera_http::xml::{
    ListObjectsResult, ListObjectsV2Result, ObjectInfo, Owner, Timestamp, XmlBody as _,
};
use tessera_http::{S3Error, S3ErrorCode};
use tessera_meta::{merge_pages, ListItem, ListPage, ListQuery, MetaRequest, MetaResponse};

use super::{answer, bucket, unexpected};
use crate::server::response::Response;
use crate::server::CoreCtx;

/// Lists one merged page of `bucket`.
async fn merged_page(ctx: &CoreCtx, bucket: &str, query: ListQuery) -> Result<ListPage, S3Error> {
    let max_keys = query.max_keys;
    let request = MetaRequest::List {
        bucket: bucket.to_owned(),
        query,
    };
    let mut pages = Vec::with_capacity(ctx.meta.cores());
    for result in ctx.meta.broadcast(&request).await {
        match answer(result)? {
            MetaResponse::Page(page) => pages.push(page),
            other => return Err(unexpected(&other)),
        }
    }
    Ok(merge_pages(pages, max_keys))
}

fn split(page: &ListPage, owner: Option<&Owner>) -> (Vec<ObjectInfo>, Vec<String>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for item in &page.items {
        match item {
            ListItem::Object(entry) => contents.push(ObjectInfo {
                key: entry.key.clone(),
                last_modified: Timestamp::from_unix_ms(
                    i64::try_from(entry.mtime_ms).unwrap_or(i64::MAX),
                ),
                etag: super::object::etag_text(&entry.etag)
                    .trim_matches('"')
                    .to_owned(),
                size: entry.size,
                owner: owner.cloned(),
                checksum_algorithm: None,
            }),
            ListItem::Prefix(prefix) => prefixes.push(prefix.clone()),
        }
    }
    (contents, prefixes)
}

/// The opaque continuation token for a page ending at `marker`.
fn token_for(marker: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(marker.as_bytes())
}

fn marker_from(token: &str) -> Result<String, S3Error> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            S3Error::new(
                S3ErrorCode::InvalidArgument,
                "The continuation token provided is incorrect",
            )
        })
}

/// `GET /bucket?list-type=2`.
pub async fn list_v2(
    ctx: &CoreCtx,
    name: &str,
    params: &ListObjectsV2Params,
) -> Result<Response, S3Error> {
    let record = bucket::require(ctx, name)?;
    let from_token = params
        .continuation_token
        .as_deref()
        .map(marker_from)
        .transpose()?;
    let start_after = match (from_token, params.start_after.clone()) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let query = ListQuery {
        prefix: params.prefix.clone(),
        delimiter: params.delimiter.clone(),
        start_after,
        max_keys: params.max_keys as usize,
    };
    let page = if params.max_keys == 0 {
        ListPage::default()
    } else {
        merged_page(ctx, name, query).await?
    };
    let owner = params.fetch_owner.then(|| bucket::owner(&record.owner));
    let (contents, common_prefixes) = split(&page, owner.as_ref());
    let next = page.next_marker().map(token_for);
    let result = ListObjectsV2Result {
        bucket: name,
        prefix: &params.prefix,
        delimiter: params.delimiter.as_deref(),
        max_keys: params.max_keys,
        encoding_url: params.encoding_url,
        continuation_token: params.continuation_token.as_deref(),
        start_after: params.start_after.as_deref(),
        fetch_owner: params.fetch_owner,
        is_truncated: page.is_truncated,
        next_continuation_token: next.as_deref(),
        contents: &contents,
        common_prefixes: &common_prefixes,
    };
    Ok(Response::xml(200, result.to_xml()))
}

/// `GET /bucket` (v1).
pub async fn list_v1(
    ctx: &CoreCtx,
    name: &str,
    params: &ListObjectsParams,
) -> Result<Response, S3Error> {
    let record = bucket::require(ctx, name)?;
    let query = ListQuery {
        prefix: params.prefix.clone(),
        delimiter: params.delimiter.clone(),
        start_after: params.marker.clone(),
        max_keys: params.max_keys as usize,
    };
    let page = if params.max_keys == 0 {
        ListPage::default()
    } else {
        merged_page(ctx, name, query).await?
    };
    let owner = bucket::owner(&record.owner);
    let (contents, common_prefixes) = split(&page, Some(&owner));
    // S3 sends NextMarker only with a delimiter; without one, clients continue from the last key.
    let next_marker = if params.delimiter.is_some() {
        page.next_marker()
    } else {
        None
    };
    let result = ListObjectsResult {
        bucket: name,
        prefix: &params.prefix,
        marker: params.marker.as_deref().unwrap_or(""),
        delimiter: params.delimiter.as_deref(),
        max_keys: params.max_keys,
        encoding_url: params.encoding_url,
        is_truncated: page.is_truncated,
        next_marker,
        contents: &contents,
        common_prefixes: &common_prefixes,
    };
    Ok(Response::xml(200, result.to_xml()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Continuation tokens round-trip any key, and garbage is InvalidArgument.
    #[test]
    fn tokens() {
        for key in ["a", "photos/2026/ü +%", "\u{1}x"] {
            assert_eq!(marker_from(&token_for(key)).unwrap(), key);
        }
        assert_eq!(
            marker_from("!!!").unwrap_err().code,
            S3ErrorCode::InvalidArgument
        );
    }
}
