//! Request dispatch: authenticate, route, read the body as the operation needs it, and call
//! the handler for the endpoint.
//!
//! Authentication comes first: an unsigned or badly signed request learns nothing about which
//! buckets or keys exist.

use tessera_http::checksum::{ChecksumAlgorithm, IntegrityHeaders};
use tessera_http::codec::RequestHead;
use tessera_http::s3::router::{self, BodyKind, Endpoint};
use tessera_http::sigv4::{self, AuthInput, Verified};
use tessera_http::xml::{self, AccessControlPolicy, VersioningConfiguration, XmlBody as _};
use tessera_http::{S3Error, S3ErrorCode};

use super::body::RequestBody;
use super::conn::BodyReader;
use super::response::Response;
use super::CoreCtx;
use crate::handlers::{bucket, copy, list, multipart, object};

/// Handles one request and returns its response. Never panics on client input.
pub async fn handle(
    ctx: &CoreCtx,
    head: &RequestHead,
    body: &mut BodyReader<'_>,
    request_id: &str,
) -> Response {
    match handle_inner(ctx, head, body).await {
        Ok(response) => response,
        Err(error) => {
            let error = if error.resource.is_empty() {
                error.with_resource(head.raw_path().to_owned())
            } else {
                error
            };
            Response::error(&error, request_id)
        }
    }
}

/// The bucket named by a virtual-host style Host header (`bucket.<domain>`), if any.
fn virtual_host_bucket<'h>(host: Option<&'h str>, domain: &str) -> Option<&'h str> {
    if domain.is_empty() {
        return None;
    }
    let host = host?;
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let bucket = host.strip_suffix(domain)?.strip_suffix('.')?;
    (!bucket.is_empty()).then_some(bucket)
}

async fn handle_inner(
    ctx: &CoreCtx,
    head: &RequestHead,
    reader: &mut BodyReader<'_>,
) -> Result<Response, S3Error> {
    let headers: Vec<(&str, &str)> = head.headers().collect();
    let host = head.header("host");
    let domain = ctx.shared.config.server.domain.as_str();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let input = AuthInput {
        method: head.method(),
        raw_path: head.raw_path(),
        raw_query: head.raw_query(),
        headers: &headers,
        virtual_host_bucket: virtual_host_bucket(host, domain),
    };
    let verified = sigv4::verify(&input, now, &ctx.credentials).map_err(|e| e.s3_error())?;
    let route_head = router::RequestHead {
        method: head.method(),
        path: head.raw_path(),
        query: head.raw_query(),
        host,
    };
    let endpoint = Endpoint::from_request(
        &route_head,
        (!domain.is_empty()).then_some(domain),
        headers.as_slice(),
    )?;
    // CompleteMultipartUpload's `x-amz-checksum-<alg>` is the checksum of the whole object
    // (checked by the handler), not of its XML body.
    let integrity = if matches!(endpoint, Endpoint::CompleteMultipartUpload { .. }) {
        let body_headers: Vec<(&str, &str)> = headers
            .iter()
            .copied()
            .filter(|(name, _)| ChecksumAlgorithm::from_header_name(name).is_none())
            .collect();
        IntegrityHeaders::parse(&body_headers)
    } else {
        IntegrityHeaders::parse(&headers)
    }
    .map_err(|e| e.s3_error())?;

    // Small XML bodies are read and verified before the handler runs; streamed bodies are
    // handed to it.
    let xml_body = match endpoint.body() {
        BodyKind::Xml => {
            let mut body = RequestBody::new(reader, &verified.payload, &integrity, false)?;
            let bytes = body.read_to_vec(xml::XML_BODY_BYTES_MAX).await?;
            body.finish(None).await?;
            bytes
        }
        BodyKind::None | BodyKind::Stream => Vec::new(),
    };
    route(
        ctx, head, reader, endpoint, &verified, &integrity, &xml_body,
    )
    .await
}

async fn route(
    ctx: &CoreCtx,
    head: &RequestHead,
    reader: &mut BodyReader<'_>,
    endpoint: Endpoint,
    verified: &Verified,
    integrity: &IntegrityHeaders,
    xml_body: &[u8],
) -> Result<Response, S3Error> {
    let access_key = verified.access_key.as_str();
    match endpoint {
        Endpoint::PutObject { bucket: name, key } => {
            object::put(ctx, head, reader, verified, integrity, &name, &key).await
        }
        Endpoint::GetObject {
            bucket: name,
            key,
            params,
        } => object::get(ctx, head, &name, &key, &params, false).await,
        Endpoint::HeadObject {
            bucket: name,
            key,
            params,
        } => object::get(ctx, head, &name, &key, &params, true).await,
        Endpoint::DeleteObject {
            bucket: name, key, ..
        } => object::delete(ctx, &name, &key, head.header("if-match")).await,
        Endpoint::ListObjectsV2 {
            bucket: name,
            params,
        } => list::list_v2(ctx, &name, &params).await,
        Endpoint::ListObjects {
            bucket: name,
            params,
        } => list::list_v1(ctx, &name, &params).await,
        Endpoint::DeleteObjects { bucket: name } => {
            object::delete_many(ctx, &name, integrity, xml_body).await
        }
        Endpoint::CreateMultipartUpload { bucket: name, key } => {
            multipart::create(ctx, head, verified, &name, &key).await
        }
        Endpoint::UploadPart {
            bucket: name,
            key,
            upload_id,
            part_number,
        } => {
            multipart::upload_part(
                ctx,
                reader,
                verified,
                integrity,
                &name,
                &key,
                &upload_id,
                part_number,
            )
            .await
        }
        Endpoint::CompleteMultipartUpload {
            bucket: name,
            key,
            upload_id,
        } => multipart::complete(ctx, head, &name, &key, &upload_id, xml_body).await,
        Endpoint::AbortMultipartUpload {
            bucket: name,
            key,
            upload_id,
        } => multipart::abort(ctx, &name, &key, &upload_id).await,
        Endpoint::ListParts {
            bucket: name,
            key,
            upload_id,
            params,
        } => multipart::list_parts(ctx, &name, &key, &upload_id, &params).await,
        Endpoint::CopyObject {
            bucket: name,
            key,
            source,
        } => {
            // Boxed: a copy holds a read and a write pipeline at once, and its future would
            // otherwise make every request's future that large.
            Box::pin(copy::copy_object(ctx, head, &name, &key, &source)).await
        }
        Endpoint::UploadPartCopy {
            bucket: name,
            key,
            upload_id,
            part_number,
            source,
            range,
        } => {
            Box::pin(copy::upload_part_copy(
                ctx,
                head,
                &name,
                &key,
                &upload_id,
                part_number,
                &source,
                range,
            ))
            .await
        }
        Endpoint::ListMultipartUploads {
            bucket: name,
            params,
        } => multipart::list_uploads(ctx, &name, &params).await,
        Endpoint::ListBuckets { params } => Ok(bucket::list(ctx, access_key, &params)),
        Endpoint::CreateBucket { bucket: name } => {
            bucket::create(ctx, &name, access_key, xml_body).await
        }
        Endpoint::HeadBucket { bucket: name } => bucket::head(ctx, &name),
        Endpoint::DeleteBucket { bucket: name } => bucket::delete(ctx, &name).await,
        Endpoint::GetBucketLocation { bucket: name } => bucket::location(ctx, &name),
        Endpoint::GetBucketVersioning { bucket: name } => {
            bucket::require(ctx, &name)?;
            Ok(Response::xml(200, VersioningConfiguration.to_xml()))
        }
        Endpoint::GetBucketAcl { bucket: name } => {
            let record = bucket::require(ctx, &name)?;
            Ok(Response::xml(
                200,
                AccessControlPolicy {
                    owner: &bucket::owner(&record.owner),
                }
                .to_xml(),
            ))
        }
        other => {
            if let Some(name) = other.bucket() {
                bucket::require(ctx, name)?;
            }
            Err(S3Error::new(
                S3ErrorCode::NotImplemented,
                format!("{} is not implemented by this gateway yet", other.name()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Virtual-host buckets are found only under the configured domain, with or without a port.
    #[test]
    fn virtual_host_bucket_from_host() {
        assert_eq!(
            virtual_host_bucket(Some("photos.s3.local:9000"), "s3.local"),
            Some("photos")
        );
        assert_eq!(
            virtual_host_bucket(Some("a.b.s3.local"), "s3.local"),
            Some("a.b")
        );
        assert_eq!(virtual_host_bucket(Some("s3.local:9000"), "s3.local"), None);
        assert_eq!(virtual_host_bucket(Some("photos.other"), "s3.local"), None);
        assert_eq!(virtual_host_bucket(Some("photos.s3.local"), ""), None);
        assert_eq!(virtual_host_bucket(Some("xs3.local"), "s3.local"), None);
    }
}
