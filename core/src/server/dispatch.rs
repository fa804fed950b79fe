//! Request dispatch: route, authenticate, and call the handler for the endpoint.

use tessera_http::codec::RequestHead;
use tessera_http::{S3Error, S3ErrorCode};

use super::conn::BodyReader;
use super::response::Response;
use super::CoreCtx;

/// Handles one request and returns its response. Never panics on client input.
pub async fn handle(
    ctx: &CoreCtx,
    head: &RequestHead,
    body: &mut BodyReader<'_>,
    request_id: &str,
) -> Response {
    let _ = (ctx, body);
    let error = S3Error::new(
        S3ErrorCode::NotImplemented,
        "This operation is not implemented yet",
    )
    .with_resource(head.raw_path().to_owned());
    Response::error(&error, request_id)
}
