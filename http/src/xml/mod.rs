//! S3 XML bodies: writers for every response document the routed operations answer with, and
//! bounded parsers for the three request documents they read.
//!
//! ```text
//!  metadata layer fills plain structs          client body (≤ XML_BODY_BYTES_MAX)
//!        │ ListObjectsV2Result { .. }                 │
//!        ▼                                            ▼
//!  write.rs: XmlBody::to_xml() ──► String     parse.rs: tokenizer ─► small tree ─► typed request
//!  (escaping, encoding-type=url, ISO dates)   (DeleteRequest, CompleteMultipartUpload, ...)
//!                                              any malformed input ─► MalformedXML, never a panic
//! ```
//!
//! Writers produce the documents in the element order of the S3 API reference, with the
//! `http://s3.amazonaws.com/doc/2006-03-01/` namespace on the root element. Parsers accept the
//! documents with or without that namespace (SDKs differ) and ignore elements they do not know.

// S3 element and operation names (ListBucketResult, ETag) are prose in these docs, not code
// identifiers; backticking every one would make the docs harder to read.
#![allow(clippy::doc_markdown)]

mod parse;
mod time;
mod write;

pub use parse::{
    parse_complete_multipart_upload, parse_create_bucket_configuration, parse_delete,
    CompleteMultipartUpload, CompletedPart, CreateBucketConfiguration, DeleteRequest,
    ObjectIdentifier,
};
pub use time::Timestamp;
pub use write::{
    AccessControlPolicy, BucketInfo, Checksums, CompleteMultipartUploadResult, CopyObjectResult,
    CopyPartResult, DeleteError, DeleteResult, DeletedObject, InitiateMultipartUploadResult,
    ListAllMyBucketsResult, ListMultipartUploadsResult, ListObjectsResult, ListObjectsV2Result,
    ListPartsResult, LocationConstraint, ObjectInfo, Owner, PartInfo, UploadInfo,
    VersioningConfiguration, XmlBody,
};

/// The S3 XML namespace written on every response's root element.
pub const S3_XML_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Largest request XML body the parsers accept, in bytes; the server buffers at most this much
/// per request before parsing. A CompleteMultipartUpload of 10 000 parts with a checksum each is
/// about 2 MiB, and a Delete of 1000 maximal 1024-byte keys about 1.1 MiB unescaped, so 4 MiB
/// fits every real document with room for escaping.
pub const XML_BODY_BYTES_MAX: usize = 4 << 20;

/// Most objects one Delete document may name (S3's limit); more is `MalformedXML`.
pub const DELETE_OBJECTS_MAX: usize = 1000;

/// Deepest element nesting the parser follows. The deepest document read is three levels
/// (`Delete/Object/Key`); the limit stops a hostile body from building a deep stack.
pub const XML_DEPTH_MAX: usize = 16;

/// Most elements one request document may hold. The parser builds a small tree (about 64 bytes
/// per element), so without this bound a 4 MiB body of `<a/>` would cost ~64 MiB. The largest
/// real document, a CompleteMultipartUpload of 10 000 parts with every checksum, has ~80 000.
pub const XML_ELEMENTS_MAX: usize = 100_000;

// A Delete naming the most objects with the longest keys (plus ~64 bytes of markup each) fits,
// and so does a CompleteMultipartUpload of every part with ~256 bytes per part (number, ETag,
// one checksum and markup).
const _: () =
    assert!(XML_BODY_BYTES_MAX >= DELETE_OBJECTS_MAX * (crate::s3::router::KEY_BYTES_MAX + 64));
const _: () = assert!(XML_BODY_BYTES_MAX >= crate::s3::router::PART_NUMBER_MAX as usize * 256);
const _: () = assert!(XML_ELEMENTS_MAX > crate::s3::router::PART_NUMBER_MAX as usize * 8);
