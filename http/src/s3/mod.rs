//! S3 request routing: which operation a request head names, with its decoded parameters.
//!
//! ```text
//!  RequestHead { method, path, query, host } + headers
//!        │
//!        ▼  percent (path: %XX only; query: form decoding)
//!  router::Endpoint::from_request ──► Endpoint::PutObject { bucket, key } / S3Error
//! ```

// S3 operation names (CreateBucket, UploadPartCopy) are prose in these docs, not code
// identifiers; backticking every one would make the docs harder to read.
#![allow(clippy::doc_markdown)]

pub mod percent;
pub mod router;

pub use router::{BodyKind, Endpoint, HeaderLookup, NoHeaders, RequestHead};
