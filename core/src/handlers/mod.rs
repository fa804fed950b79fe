//! S3 operation handlers, one file per feature. Each takes the core context and typed
//! parameters from the router and returns a response or an S3 error.

pub mod bucket;
pub mod copy;
pub mod list;
pub mod multipart;
pub mod object;
pub mod unsupported;

use tessera_http::{S3Error, S3ErrorCode};
use tessera_meta::{MetaError, MetaResponse};

use crate::mesh::Unreachable;

/// Maps a metadata failure to the S3 error a client sees (one place for every handler).
#[must_use]
pub fn meta_error(error: &MetaError) -> S3Error {
    match error {
        MetaError::Busy => S3Error::new(
            S3ErrorCode::SlowDown,
            "Metadata commit queue is full; retry",
        ),
        other => S3Error::new(
            S3ErrorCode::InternalError,
            format!("Metadata error: {other}"),
        ),
    }
}

/// Unwraps a cross-core answer, turning transport and store errors into S3 errors.
pub fn answer(result: Result<MetaResponse, Unreachable>) -> Result<MetaResponse, S3Error> {
    match result {
        Ok(MetaResponse::Error(error)) => Err(meta_error(&error)),
        Ok(response) => Ok(response),
        Err(Unreachable(core)) => Err(S3Error::new(
            S3ErrorCode::ServiceUnavailable,
            format!("Core {} is not answering (shutting down?)", core.0),
        )),
    }
}

/// An answer of an unexpected kind: a bug in the store's request handling.
#[must_use]
pub fn unexpected(response: &MetaResponse) -> S3Error {
    S3Error::new(
        S3ErrorCode::InternalError,
        format!("Unexpected metadata answer: {response:?}"),
    )
}
