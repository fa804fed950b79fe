//! tessera-http: the sans-I/O S3 protocol layer.
//!
//! Everything here takes bytes or structs and returns values; nothing touches a socket, a file
//! or the runtime, so every parser and signer is testable in microseconds and fuzzable.
//!
//! ```text
//!  bytes from socket ──► codec (request head, body framing) ──► s3::router ──► Endpoint
//!                               │                                   │
//!                               ▼                                   ▼
//!                       aws_chunked decoder ◄── sigv4 (verify) ── auth context
//!                               │
//!                               ▼
//!                       checksum (crc32/crc32c/crc64nvme/sha1/sha256/md5)
//!  errors of every layer ──► error::S3Error ──► XML body + status
//! ```
//!
//! It does not store anything, choose sites or run tasks: that is `tessera-core`.

pub mod aws_chunked;
pub mod checksum;
pub mod codec;
pub mod error;
pub mod rfc2047;
pub mod s3;
pub mod sigv4;
pub mod xml;

pub use error::{S3Error, S3ErrorCode};
