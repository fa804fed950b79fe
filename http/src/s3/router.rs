//! The S3 router: a request head in, one [`Endpoint`] (operation + decoded, validated
//! parameters) out. Pure: no I/O, no metadata lookups.
//!
//! ```text
//!  method  "PUT"                         ┌──────────────┐
//!  path    "/bkt/a%20b+c"     ──────────►│ addressing   │ virtual host (bkt.s3.example.com)
//!  query   "partNumber=2&uploadId=U"     │ (bucket,key) │ or path style (/bkt/key)
//!  host    "s3.example.com"              └──────┬───────┘
//!  headers x-amz-copy-source ─┐                 │ one pass over the query: known names only
//!                             │          ┌──────▼───────┐
//!                             └─────────►│ dispatch     │ method × {service, bucket, object}
//!                                        │ + validation │ × sub-resource
//!                                        └──────┬───────┘
//!                                               ▼
//!            Endpoint::UploadPart { bucket: "bkt", key: "a b+c", upload_id: "U", part_number: 2 }
//! ```
//!
//! Rules worth knowing:
//! - The path is decoded with `%XX` only: a literal `+` in a key is a plus. Query values are
//!   form-decoded: `+` is a space and `%2B` a plus, as S3 does.
//! - Unknown query parameters are ignored (SDKs add `x-id=GetObject`, presigned URLs add
//!   `X-Amz-*`); only recognised sub-resources change the operation.
//! - A repeated query parameter: the first occurrence wins.
//! - Bucket names are checked against the S3 naming rules. CreateBucket answers
//!   `InvalidBucketName`; every other operation answers `NoSuchBucket`, because Tessera only
//!   holds buckets it created through CreateBucket, so a name that breaks the rules cannot exist
//!   (and the metadata layer never sees a hostile 10 KiB "bucket name").

use std::borrow::Cow;

use crate::error::{S3Error, S3ErrorCode};
use crate::s3::percent::{decode_path, decode_query};

/// Longest object key in bytes of UTF-8 (S3's limit); longer keys get `KeyTooLongError`.
pub const KEY_BYTES_MAX: usize = 1024;
/// Shortest bucket name S3 allows.
pub const BUCKET_NAME_BYTES_MIN: usize = 3;
/// Longest bucket name S3 allows (one DNS label).
pub const BUCKET_NAME_BYTES_MAX: usize = 63;
/// Highest part number of a multipart upload (S3's limit); part numbers start at 1.
pub const PART_NUMBER_MAX: u16 = 10_000;
/// Most entries one listing page may return; larger `max-keys` / `max-uploads` / `max-parts`
/// values are capped to it, as S3 does. It bounds the memory of one listing response.
pub const LIST_ENTRIES_MAX: u32 = 1000;
/// Most query parameters one request may carry. A presigned GET with every response override
/// and SDK extras uses about 20; the limit bounds the router's work on a hostile query.
pub const QUERY_PARAMS_MAX: usize = 64;

const _: () = assert!(BUCKET_NAME_BYTES_MIN <= BUCKET_NAME_BYTES_MAX);
const _: () = assert!(LIST_ENTRIES_MAX >= 1 && PART_NUMBER_MAX >= 1);
// Every request moves its Endpoint a few times; rare, bulky parameters (listing options, copy
// sources, response overrides) are boxed to keep it within two cache lines.
const _: () = assert!(std::mem::size_of::<Endpoint>() <= 128);

/// Looks request headers up by name, case-insensitively. The router needs only a few
/// (`x-amz-copy-source`, `x-amz-copy-source-range`), so the codec's own storage is used as is.
pub trait HeaderLookup {
    /// The value of the first header named `name` (ASCII case-insensitive), if present and text.
    fn header(&self, name: &str) -> Option<&str>;
}

impl HeaderLookup for [(&str, &str)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    }
}

impl HeaderLookup for [httparse::Header<'_>] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    }
}

impl HeaderLookup for crate::codec::RequestHead {
    fn header(&self, name: &str) -> Option<&str> {
        crate::codec::RequestHead::header(self, name)
    }
}

/// A header set with no headers (requests that cannot copy, tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHeaders;

impl HeaderLookup for NoHeaders {
    fn header(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// The parts of a request head the router reads, exactly as they were on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// The method token, e.g. `GET` (case-sensitive, as HTTP defines it).
    pub method: &'a str,
    /// The raw, percent-encoded path, starting with `/`, without the query.
    pub path: &'a str,
    /// The raw query string without the leading `?` (empty when there is none).
    pub query: &'a str,
    /// The `Host` header, possibly with a port.
    pub host: Option<&'a str>,
}

/// The view of a head parsed by the HTTP codec: `Endpoint::from_request(&(&head).into(),
/// domain, &head)` routes it.
impl<'a> From<&'a crate::codec::RequestHead> for RequestHead<'a> {
    fn from(head: &'a crate::codec::RequestHead) -> Self {
        RequestHead {
            method: head.method(),
            path: head.raw_path(),
            query: head.raw_query(),
            host: head.header("host"),
        }
    }
}

impl<'a> RequestHead<'a> {
    /// Splits an origin-form request target (`/path?query`) into path and query.
    #[must_use]
    pub fn from_target(method: &'a str, target: &'a str, host: Option<&'a str>) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        RequestHead {
            method,
            path,
            query,
            host,
        }
    }
}

/// What kind of body the operation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body is expected (any body sent is ignored).
    None,
    /// A small XML document, buffered whole up to `xml::XML_BODY_BYTES_MAX`.
    Xml,
    /// Object data, streamed (PutObject, UploadPart).
    Stream,
}

/// A byte range `first..=last` from `x-amz-copy-source-range: bytes=first-last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyRange {
    /// First byte offset, inclusive.
    pub first: u64,
    /// Last byte offset, inclusive (`last >= first`).
    pub last: u64,
}

/// The object a copy reads, from `x-amz-copy-source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopySource {
    /// Source bucket (valid S3 name).
    pub bucket: String,
    /// Source key, decoded.
    pub key: String,
    /// `?versionId=` of the source, if given.
    pub version_id: Option<String>,
}

/// Response header overrides of GetObject / HeadObject (`response-content-type=...`), used by
/// presigned URLs. Decoded values; `None` when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseOverrides {
    /// `response-cache-control`.
    pub cache_control: Option<String>,
    /// `response-content-disposition`.
    pub content_disposition: Option<String>,
    /// `response-content-encoding`.
    pub content_encoding: Option<String>,
    /// `response-content-language`.
    pub content_language: Option<String>,
    /// `response-content-type`.
    pub content_type: Option<String>,
    /// `response-expires`.
    pub expires: Option<String>,
}

/// Parameters of GetObject and HeadObject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectReadParams {
    /// `partNumber` (1..=[`PART_NUMBER_MAX`]): read only that part of a multipart object.
    pub part_number: Option<u16>,
    /// `versionId`; Tessera keeps no versions, so only `null` can match.
    pub version_id: Option<String>,
    /// `response-*` header overrides; boxed because presigned downloads are the only users
    /// and the common GET should not carry six empty strings through every move.
    pub overrides: Option<Box<ResponseOverrides>>,
}

/// Most buckets one ListBuckets page may return (S3's `max-buckets` range is 1..=10 000).
pub const LIST_BUCKETS_MAX: u32 = 10_000;

/// Parameters of ListBuckets (the paginated form SDKs use since 2024; all optional).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListBucketsParams {
    /// `prefix`: only buckets whose name starts with it.
    pub prefix: Option<String>,
    /// `continuation-token`, opaque to the router.
    pub continuation_token: Option<String>,
    /// `max-buckets` (1..=[`LIST_BUCKETS_MAX`]); `None` means all buckets.
    pub max_buckets: Option<u32>,
    /// `bucket-region`: only buckets of that region.
    pub bucket_region: Option<String>,
}

/// Parameters of ListObjects (v1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListObjectsParams {
    /// `prefix` (empty when absent).
    pub prefix: String,
    /// `delimiter`; an empty value counts as absent.
    pub delimiter: Option<String>,
    /// `marker`: list keys strictly after it.
    pub marker: Option<String>,
    /// `max-keys`, default and cap [`LIST_ENTRIES_MAX`].
    pub max_keys: u32,
    /// `encoding-type=url` was asked.
    pub encoding_url: bool,
}

/// Parameters of ListObjectsV2 (`list-type=2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListObjectsV2Params {
    /// `prefix` (empty when absent).
    pub prefix: String,
    /// `delimiter`; an empty value counts as absent.
    pub delimiter: Option<String>,
    /// `continuation-token`, opaque to the router.
    pub continuation_token: Option<String>,
    /// `start-after`.
    pub start_after: Option<String>,
    /// `max-keys`, default and cap [`LIST_ENTRIES_MAX`].
    pub max_keys: u32,
    /// `fetch-owner=true`.
    pub fetch_owner: bool,
    /// `encoding-type=url` was asked.
    pub encoding_url: bool,
}

/// Parameters of ListMultipartUploads (`GET /bucket?uploads`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListUploadsParams {
    /// `prefix` (empty when absent).
    pub prefix: String,
    /// `delimiter`; an empty value counts as absent.
    pub delimiter: Option<String>,
    /// `key-marker`.
    pub key_marker: Option<String>,
    /// `upload-id-marker` (meaningful only with `key-marker`).
    pub upload_id_marker: Option<String>,
    /// `max-uploads`, default and cap [`LIST_ENTRIES_MAX`].
    pub max_uploads: u32,
    /// `encoding-type=url` was asked.
    pub encoding_url: bool,
}

/// Parameters of ListParts (`GET /bucket/key?uploadId=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPartsParams {
    /// `max-parts`, default and cap [`LIST_ENTRIES_MAX`].
    pub max_parts: u32,
    /// `part-number-marker`: list parts strictly after it (0 when absent).
    pub part_number_marker: u16,
}

/// Generates [`UnsupportedOp`] and its S3 operation names from one table.
macro_rules! unsupported_ops {
    ($( $name:ident, )*) => {
        /// An S3 operation Tessera recognises but does not implement; the server answers
        /// `NotImplemented` (501). Named after the S3 API operation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum UnsupportedOp {
            $(
                #[doc = concat!("The S3 `", stringify!($name), "` operation.")]
                $name,
            )*
        }

        impl UnsupportedOp {
            /// The S3 API operation name, e.g. `PutBucketPolicy`.
            #[must_use]
            pub fn name(self) -> &'static str {
                match self { $(UnsupportedOp::$name => stringify!($name),)* }
            }
        }
    };
}

unsupported_ops! {
    PutBucketVersioning, PutBucketAcl,
    GetBucketPolicy, PutBucketPolicy, DeleteBucketPolicy, GetBucketPolicyStatus,
    GetBucketTagging, PutBucketTagging, DeleteBucketTagging,
    GetBucketLifecycleConfiguration, PutBucketLifecycleConfiguration, DeleteBucketLifecycle,
    GetBucketCors, PutBucketCors, DeleteBucketCors,
    GetBucketEncryption, PutBucketEncryption, DeleteBucketEncryption,
    GetObjectLockConfiguration, PutObjectLockConfiguration,
    GetBucketWebsite, PutBucketWebsite, DeleteBucketWebsite,
    GetBucketLogging, PutBucketLogging,
    GetBucketNotificationConfiguration, PutBucketNotificationConfiguration,
    GetBucketReplication, PutBucketReplication, DeleteBucketReplication,
    GetBucketRequestPayment, PutBucketRequestPayment,
    GetBucketAccelerateConfiguration, PutBucketAccelerateConfiguration,
    GetBucketOwnershipControls, PutBucketOwnershipControls, DeleteBucketOwnershipControls,
    GetPublicAccessBlock, PutPublicAccessBlock, DeletePublicAccessBlock,
    GetBucketAnalyticsConfiguration, PutBucketAnalyticsConfiguration,
    DeleteBucketAnalyticsConfiguration,
    GetBucketMetricsConfiguration, PutBucketMetricsConfiguration, DeleteBucketMetricsConfiguration,
    GetBucketInventoryConfiguration, PutBucketInventoryConfiguration,
    DeleteBucketInventoryConfiguration,
    GetBucketIntelligentTieringConfiguration, PutBucketIntelligentTieringConfiguration,
    DeleteBucketIntelligentTieringConfiguration,
    ListObjectVersions, PostObject,
    PutObjectAcl, GetObjectTagging, PutObjectTagging, DeleteObjectTagging,
    GetObjectRetention, PutObjectRetention, GetObjectLegalHold, PutObjectLegalHold,
    GetObjectTorrent, GetObjectAttributes, RestoreObject, SelectObjectContent,
    PreflightRequest,
}

/// One S3 operation with its decoded, validated parameters.
///
/// `bucket` is always a valid S3 bucket name; `key` is 1..=[`KEY_BYTES_MAX`] bytes of UTF-8,
/// exactly as the client named it (no normalisation of `//`, `.`, trailing `/`).
///
/// Deliberately not `#[non_exhaustive]`: the server matches it exhaustively, so a new
/// operation added here fails to compile until it has a handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /`.
    ListBuckets { params: Box<ListBucketsParams> },
    /// `PUT /bucket` (optional CreateBucketConfiguration body).
    CreateBucket { bucket: String },
    /// `HEAD /bucket`.
    HeadBucket { bucket: String },
    /// `DELETE /bucket`.
    DeleteBucket { bucket: String },
    /// `GET /bucket?location`.
    GetBucketLocation { bucket: String },
    /// `GET /bucket?versioning` (answerable with a fixed "never enabled" document).
    GetBucketVersioning { bucket: String },
    /// `GET /bucket?acl` (answerable with a fixed owner-full-control document).
    GetBucketAcl { bucket: String },
    /// `GET /bucket` (v1 listing).
    ListObjects {
        bucket: String,
        params: Box<ListObjectsParams>,
    },
    /// `GET /bucket?list-type=2`.
    ListObjectsV2 {
        bucket: String,
        params: Box<ListObjectsV2Params>,
    },
    /// `GET /bucket?uploads`.
    ListMultipartUploads {
        bucket: String,
        params: Box<ListUploadsParams>,
    },
    /// `POST /bucket?delete` with a Delete document.
    DeleteObjects { bucket: String },
    /// `PUT /bucket/key`.
    PutObject { bucket: String, key: String },
    /// `PUT /bucket/key` with `x-amz-copy-source`.
    CopyObject {
        bucket: String,
        key: String,
        source: Box<CopySource>,
    },
    /// `GET /bucket/key`.
    GetObject {
        bucket: String,
        key: String,
        params: ObjectReadParams,
    },
    /// `HEAD /bucket/key`.
    HeadObject {
        bucket: String,
        key: String,
        params: ObjectReadParams,
    },
    /// `DELETE /bucket/key`.
    DeleteObject {
        bucket: String,
        key: String,
        version_id: Option<String>,
    },
    /// `GET /bucket/key?acl` (answerable with a fixed owner-full-control document).
    GetObjectAcl { bucket: String, key: String },
    /// `POST /bucket/key?uploads`.
    CreateMultipartUpload { bucket: String, key: String },
    /// `PUT /bucket/key?partNumber=N&uploadId=U`.
    UploadPart {
        bucket: String,
        key: String,
        upload_id: String,
        part_number: u16,
    },
    /// `PUT /bucket/key?partNumber=N&uploadId=U` with `x-amz-copy-source`.
    UploadPartCopy {
        bucket: String,
        key: String,
        upload_id: String,
        part_number: u16,
        source: Box<CopySource>,
        range: Option<CopyRange>,
    },
    /// `POST /bucket/key?uploadId=U` with a CompleteMultipartUpload document.
    CompleteMultipartUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// `DELETE /bucket/key?uploadId=U`.
    AbortMultipartUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// `GET /bucket/key?uploadId=U`.
    ListParts {
        bucket: String,
        key: String,
        upload_id: String,
        params: ListPartsParams,
    },
    /// A recognised operation Tessera does not implement: answer 501 `NotImplemented`.
    Unsupported {
        bucket: Option<String>,
        key: Option<String>,
        operation: UnsupportedOp,
    },
}

impl Endpoint {
    /// Routes one request. See the module docs for the addressing and decoding rules.
    ///
    /// `vhost_domain` is the configured virtual-host domain (e.g. `s3.example.com`): a `Host`
    /// of `bucket.s3.example.com` names the bucket; any other host means path style.
    ///
    /// ```
    /// use tessera_http::s3::{BodyKind, Endpoint, NoHeaders, RequestHead};
    ///
    /// let target = "/photos/2026/a+b%20c.jpg?partNumber=2&uploadId=VXBsb2Fk";
    /// let head = RequestHead::from_target("PUT", target, Some("s3.example.com"));
    /// let endpoint = Endpoint::from_request(&head, Some("s3.example.com"), &NoHeaders)?;
    /// assert_eq!(endpoint.name(), "UploadPart");
    /// assert_eq!(endpoint.bucket(), Some("photos"));
    /// assert_eq!(endpoint.key(), Some("2026/a+b c.jpg"));
    /// assert_eq!(endpoint.body(), BodyKind::Stream);
    /// # Ok::<(), tessera_http::S3Error>(())
    /// ```
    pub fn from_request<H: HeaderLookup + ?Sized>(
        head: &RequestHead<'_>,
        vhost_domain: Option<&str>,
        headers: &H,
    ) -> Result<Endpoint, S3Error> {
        let routed = route(head, vhost_domain, headers);
        // Pair of the checks made while routing: whatever comes out names a valid bucket and a
        // key within the limit.
        if let Ok(endpoint) = &routed {
            debug_assert!(
                endpoint.bucket().is_none_or(is_valid_bucket_name),
                "{endpoint:?}"
            );
            debug_assert!(endpoint
                .key()
                .is_none_or(|k| (1..=KEY_BYTES_MAX).contains(&k.len())));
        }
        routed.map_err(|e| {
            if e.resource.is_empty() {
                e.with_resource(head.path)
            } else {
                e
            }
        })
    }

    /// The S3 API operation name (`GetObject`, `PutBucketPolicy`, ...), for logs and metrics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::ListBuckets { .. } => "ListBuckets",
            Endpoint::CreateBucket { .. } => "CreateBucket",
            Endpoint::HeadBucket { .. } => "HeadBucket",
            Endpoint::DeleteBucket { .. } => "DeleteBucket",
            Endpoint::GetBucketLocation { .. } => "GetBucketLocation",
            Endpoint::GetBucketVersioning { .. } => "GetBucketVersioning",
            Endpoint::GetBucketAcl { .. } => "GetBucketAcl",
            Endpoint::ListObjects { .. } => "ListObjects",
            Endpoint::ListObjectsV2 { .. } => "ListObjectsV2",
            Endpoint::ListMultipartUploads { .. } => "ListMultipartUploads",
            Endpoint::DeleteObjects { .. } => "DeleteObjects",
            Endpoint::PutObject { .. } => "PutObject",
            Endpoint::CopyObject { .. } => "CopyObject",
            Endpoint::GetObject { .. } => "GetObject",
            Endpoint::HeadObject { .. } => "HeadObject",
            Endpoint::DeleteObject { .. } => "DeleteObject",
            Endpoint::GetObjectAcl { .. } => "GetObjectAcl",
            Endpoint::CreateMultipartUpload { .. } => "CreateMultipartUpload",
            Endpoint::UploadPart { .. } => "UploadPart",
            Endpoint::UploadPartCopy { .. } => "UploadPartCopy",
            Endpoint::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            Endpoint::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            Endpoint::ListParts { .. } => "ListParts",
            Endpoint::Unsupported { operation, .. } => operation.name(),
        }
    }

    /// The bucket the operation addresses (`None` for ListBuckets and OPTIONS on the service).
    #[must_use]
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Endpoint::ListBuckets { .. } => None,
            Endpoint::Unsupported { bucket, .. } => bucket.as_deref(),
            Endpoint::CreateBucket { bucket }
            | Endpoint::HeadBucket { bucket }
            | Endpoint::DeleteBucket { bucket }
            | Endpoint::GetBucketLocation { bucket }
            | Endpoint::GetBucketVersioning { bucket }
            | Endpoint::GetBucketAcl { bucket }
            | Endpoint::ListObjects { bucket, .. }
            | Endpoint::ListObjectsV2 { bucket, .. }
            | Endpoint::ListMultipartUploads { bucket, .. }
            | Endpoint::DeleteObjects { bucket }
            | Endpoint::PutObject { bucket, .. }
            | Endpoint::CopyObject { bucket, .. }
            | Endpoint::GetObject { bucket, .. }
            | Endpoint::HeadObject { bucket, .. }
            | Endpoint::DeleteObject { bucket, .. }
            | Endpoint::GetObjectAcl { bucket, .. }
            | Endpoint::CreateMultipartUpload { bucket, .. }
            | Endpoint::UploadPart { bucket, .. }
            | Endpoint::UploadPartCopy { bucket, .. }
            | Endpoint::CompleteMultipartUpload { bucket, .. }
            | Endpoint::AbortMultipartUpload { bucket, .. }
            | Endpoint::ListParts { bucket, .. } => Some(bucket),
        }
    }

    /// The object key the operation addresses, if it is an object operation.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Endpoint::Unsupported { key, .. } => key.as_deref(),
            Endpoint::PutObject { key, .. }
            | Endpoint::CopyObject { key, .. }
            | Endpoint::GetObject { key, .. }
            | Endpoint::HeadObject { key, .. }
            | Endpoint::DeleteObject { key, .. }
            | Endpoint::GetObjectAcl { key, .. }
            | Endpoint::CreateMultipartUpload { key, .. }
            | Endpoint::UploadPart { key, .. }
            | Endpoint::UploadPartCopy { key, .. }
            | Endpoint::CompleteMultipartUpload { key, .. }
            | Endpoint::AbortMultipartUpload { key, .. }
            | Endpoint::ListParts { key, .. } => Some(key),
            _ => None,
        }
    }

    /// What body the operation reads. Unsupported `PUT`s are marked [`BodyKind::Xml`] so the
    /// server can bound and discard their (configuration document) body before answering 501.
    #[must_use]
    pub fn body(&self) -> BodyKind {
        match self {
            Endpoint::PutObject { .. } | Endpoint::UploadPart { .. } => BodyKind::Stream,
            Endpoint::CreateBucket { .. }
            | Endpoint::DeleteObjects { .. }
            | Endpoint::CompleteMultipartUpload { .. } => BodyKind::Xml,
            Endpoint::Unsupported { operation, .. } => {
                if operation.name().starts_with("Put") {
                    BodyKind::Xml
                } else {
                    BodyKind::None
                }
            }
            _ => BodyKind::None,
        }
    }
}

/// Generates [`Param`], the query parameters the router understands, from their wire names.
macro_rules! params {
    ($( $variant:ident => $wire:literal, )*) => {
        /// A query parameter the router reads; everything else is ignored.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Param { $($variant,)* }

        impl Param {
            const COUNT: usize = [$(Param::$variant,)*].len();

            fn from_wire(name: &str) -> Option<Param> {
                match name { $($wire => Some(Param::$variant),)* _ => None }
            }

            /// The name as sent on the wire, for error messages.
            fn wire(self) -> &'static str {
                match self { $(Param::$variant => $wire,)* }
            }
        }
    };
}

params! {
    ListType => "list-type",
    MaxBuckets => "max-buckets",
    BucketRegion => "bucket-region",
    Prefix => "prefix",
    Delimiter => "delimiter",
    MaxKeys => "max-keys",
    ContinuationToken => "continuation-token",
    StartAfter => "start-after",
    Marker => "marker",
    EncodingType => "encoding-type",
    FetchOwner => "fetch-owner",
    KeyMarker => "key-marker",
    UploadIdMarker => "upload-id-marker",
    MaxUploads => "max-uploads",
    MaxParts => "max-parts",
    PartNumberMarker => "part-number-marker",
    UploadId => "uploadId",
    PartNumber => "partNumber",
    VersionId => "versionId",
    Uploads => "uploads",
    Delete => "delete",
    Location => "location",
    Versioning => "versioning",
    Versions => "versions",
    Acl => "acl",
    Policy => "policy",
    PolicyStatus => "policyStatus",
    Tagging => "tagging",
    Lifecycle => "lifecycle",
    Cors => "cors",
    Encryption => "encryption",
    ObjectLock => "object-lock",
    Website => "website",
    Logging => "logging",
    Notification => "notification",
    Replication => "replication",
    RequestPayment => "requestPayment",
    Accelerate => "accelerate",
    OwnershipControls => "ownershipControls",
    PublicAccessBlock => "publicAccessBlock",
    Analytics => "analytics",
    Metrics => "metrics",
    Inventory => "inventory",
    IntelligentTiering => "intelligent-tiering",
    Retention => "retention",
    LegalHold => "legal-hold",
    Torrent => "torrent",
    Attributes => "attributes",
    Restore => "restore",
    Select => "select",
    ResponseCacheControl => "response-cache-control",
    ResponseContentDisposition => "response-content-disposition",
    ResponseContentEncoding => "response-content-encoding",
    ResponseContentLanguage => "response-content-language",
    ResponseContentType => "response-content-type",
    ResponseExpires => "response-expires",
}

/// The recognised query parameters of one request: raw (still encoded) values by [`Param`].
struct Query<'a> {
    values: [Option<&'a str>; Param::COUNT],
}

impl<'a> Query<'a> {
    /// One pass over `raw`: splits on `&`, decodes each name, keeps the first value of each
    /// recognised name. Values stay encoded until asked for.
    fn parse(raw: &'a str) -> Result<Query<'a>, S3Error> {
        let mut values = [None; Param::COUNT];
        let mut count = 0usize;
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            count += 1;
            if count > QUERY_PARAMS_MAX {
                return Err(S3Error::new(
                    S3ErrorCode::InvalidArgument,
                    format!("more than {QUERY_PARAMS_MAX} query parameters"),
                ));
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode_query(name)?;
            if let Some(param) = Param::from_wire(&name) {
                let slot = &mut values[param as usize];
                if slot.is_none() {
                    *slot = Some(value);
                }
            }
        }
        Ok(Query { values })
    }

    fn has(&self, param: Param) -> bool {
        self.values[param as usize].is_some()
    }

    /// The decoded value of `param`, if present.
    fn get(&self, param: Param) -> Result<Option<Cow<'a, str>>, S3Error> {
        self.values[param as usize].map(decode_query).transpose()
    }

    fn string(&self, param: Param) -> Result<Option<String>, S3Error> {
        Ok(self.get(param)?.map(Cow::into_owned))
    }

    /// `prefix`-like values: absent means empty.
    fn string_or_empty(&self, param: Param) -> Result<String, S3Error> {
        Ok(self.string(param)?.unwrap_or_default())
    }

    /// `delimiter`: an empty value means no delimiter.
    fn delimiter(&self) -> Result<Option<String>, S3Error> {
        Ok(self.string(Param::Delimiter)?.filter(|d| !d.is_empty()))
    }

    /// `max-keys`-like limits: default and cap [`LIST_ENTRIES_MAX`]; negative or non-numeric
    /// values are `InvalidArgument`.
    fn entry_limit(&self, param: Param) -> Result<u32, S3Error> {
        let Some(value) = self.get(param)? else {
            return Ok(LIST_ENTRIES_MAX);
        };
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid_argument(format!(
                "{} must be a non-negative integer",
                param.wire()
            )));
        }
        // All digits: only overflow can fail, and any overflowing value is above the cap.
        Ok(value
            .parse::<u32>()
            .map_or(LIST_ENTRIES_MAX, |n| n.min(LIST_ENTRIES_MAX)))
    }

    fn encoding_url(&self) -> Result<bool, S3Error> {
        match self.get(Param::EncodingType)?.as_deref() {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("url") => Ok(true),
            Some(_) => Err(invalid_argument(
                "Invalid Encoding Method specified in Request",
            )),
        }
    }

    fn part_number(&self) -> Result<Option<u16>, S3Error> {
        self.get(Param::PartNumber)?
            .map(|v| parse_part_number(&v))
            .transpose()
    }

    fn upload_id(&self) -> Result<Option<String>, S3Error> {
        match self.string(Param::UploadId)? {
            Some(id) if id.is_empty() => Err(invalid_argument("uploadId must not be empty")),
            other => Ok(other),
        }
    }
}

fn invalid_argument(message: impl Into<String>) -> S3Error {
    S3Error::new(S3ErrorCode::InvalidArgument, message)
}

fn method_not_allowed() -> S3Error {
    S3Error::new(
        S3ErrorCode::MethodNotAllowed,
        "The specified method is not allowed against this resource.",
    )
}

/// Plain decimal digits only: `str::parse` would also take a leading `+` (sent as `%2B`).
fn parse_decimal_u16(value: &str) -> Option<u16> {
    let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    digits_only.then(|| value.parse::<u16>().ok()).flatten()
}

/// A part number 1..=[`PART_NUMBER_MAX`].
fn parse_part_number(value: &str) -> Result<u16, S3Error> {
    parse_decimal_u16(value)
        .filter(|n| (1..=PART_NUMBER_MAX).contains(n))
        .ok_or_else(|| {
            invalid_argument(format!(
                "Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive"
            ))
        })
}

/// Whether `name` follows the S3 bucket naming rules: 3..=63 bytes of lowercase letters, digits,
/// `.` and `-`; starts and ends with a letter or digit; no `..`; not an IPv4 address; none of the
/// prefixes (`xn--`, `sthree-`, `amzn-s3-demo-`) or suffixes (`-s3alias`, `--ol-s3`, `.mrap`,
/// `--x-s3`, `--table-s3`) S3 reserves.
#[must_use]
pub fn is_valid_bucket_name(name: &str) -> bool {
    const PREFIXES_RESERVED: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES_RESERVED: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    let bytes = name.as_bytes();
    if !(BUCKET_NAME_BYTES_MIN..=BUCKET_NAME_BYTES_MAX).contains(&bytes.len()) {
        return false;
    }
    let charset_ok = bytes
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    // Length >= 3 was checked above, so first and last exist.
    let ends_ok = edge_ok(bytes[0]) && edge_ok(bytes[bytes.len() - 1]);
    let is_ipv4 = name.split('.').count() == 4
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    charset_ok
        && ends_ok
        && !name.contains("..")
        && !is_ipv4
        && !PREFIXES_RESERVED.iter().any(|p| name.starts_with(p))
        && !SUFFIXES_RESERVED.iter().any(|s| name.ends_with(s))
}

/// Checks a decoded key: 1..=[`KEY_BYTES_MAX`] bytes (UTF-8 was checked by the decoder).
fn check_key(key: &str) -> Result<(), S3Error> {
    debug_assert!(!key.is_empty(), "an empty key means a bucket operation");
    if key.len() > KEY_BYTES_MAX {
        return Err(S3Error::new(
            S3ErrorCode::KeyTooLongError,
            format!(
                "Your key is too long ({} bytes, at most {KEY_BYTES_MAX})",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// The HTTP methods S3 uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
    Options,
}

impl Method {
    fn parse(token: &str) -> Result<Method, S3Error> {
        match token {
            "GET" => Ok(Method::Get),
            "HEAD" => Ok(Method::Head),
            "PUT" => Ok(Method::Put),
            "POST" => Ok(Method::Post),
            "DELETE" => Ok(Method::Delete),
            "OPTIONS" => Ok(Method::Options),
            _ => Err(method_not_allowed()),
        }
    }
}

/// `host` without its `:port`; a bracketed IPv6 literal is returned whole (never a virtual host).
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: `[::1]:9000`; never a virtual host.
        return host;
    }
    host.rsplit_once(':').map_or(host, |(name, _port)| name)
}

/// The bucket named by a virtual-host `Host`, if `host` is `<bucket>.<domain>`.
fn virtual_host_bucket<'h>(host: &'h str, domain: &str) -> Option<&'h str> {
    let domain = host_without_port(domain);
    let host = host_without_port(host.trim());
    let host = host.strip_suffix('.').unwrap_or(host); // a fully qualified name's root dot
    let prefix_len = host.len().checked_sub(domain.len() + 1)?;
    let (bucket, rest) = host.split_at_checked(prefix_len)?;
    let suffix = rest.strip_prefix('.')?;
    (suffix.eq_ignore_ascii_case(domain) && !bucket.is_empty()).then_some(bucket)
}

/// Where the request points after addressing: service, bucket or object.
enum Target {
    Service,
    Bucket(String),
    Object(String, String),
}

fn address(head: &RequestHead<'_>, vhost_domain: Option<&str>) -> Result<Target, S3Error> {
    let Some(path) = head.path.strip_prefix('/') else {
        return Err(S3Error::new(
            S3ErrorCode::InvalidURI,
            "the path must start with '/'",
        ));
    };
    let vhost = vhost_domain
        .filter(|d| !d.is_empty())
        .zip(head.host)
        .and_then(|(domain, host)| virtual_host_bucket(host, domain));
    let (bucket, raw_key) = match vhost {
        Some(bucket) => (Cow::Owned(bucket.to_ascii_lowercase()), path),
        None if path.is_empty() => return Ok(Target::Service),
        None => {
            let (raw_bucket, raw_key) = path.split_once('/').unwrap_or((path, ""));
            (decode_path(raw_bucket)?, raw_key)
        }
    };
    let bucket = bucket.into_owned();
    if raw_key.is_empty() {
        return Ok(Target::Bucket(bucket));
    }
    let key = decode_path(raw_key)?.into_owned();
    check_key(&key)?;
    Ok(Target::Object(bucket, key))
}

fn route<H: HeaderLookup + ?Sized>(
    head: &RequestHead<'_>,
    vhost_domain: Option<&str>,
    headers: &H,
) -> Result<Endpoint, S3Error> {
    let method = Method::parse(head.method)?;
    let target = address(head, vhost_domain)?;
    let query = Query::parse(head.query)?;
    match target {
        Target::Service => match method {
            Method::Get => list_buckets(&query),
            Method::Options => Ok(Endpoint::Unsupported {
                bucket: None,
                key: None,
                operation: UnsupportedOp::PreflightRequest,
            }),
            _ => Err(method_not_allowed()),
        },
        Target::Bucket(bucket) => {
            let valid = is_valid_bucket_name(&bucket);
            let endpoint = route_bucket(method, bucket, &query)?;
            if valid {
                Ok(endpoint)
            } else if matches!(endpoint, Endpoint::CreateBucket { .. }) {
                Err(S3Error::new(
                    S3ErrorCode::InvalidBucketName,
                    "The specified bucket is not valid.",
                ))
            } else {
                Err(no_such_bucket())
            }
        }
        Target::Object(bucket, key) => {
            if !is_valid_bucket_name(&bucket) {
                return Err(no_such_bucket());
            }
            route_object(method, bucket, key, &query, headers)
        }
    }
}

fn no_such_bucket() -> S3Error {
    S3Error::new(
        S3ErrorCode::NoSuchBucket,
        "The specified bucket does not exist",
    )
}

/// Bucket sub-resources Tessera does not implement: (parameter, GET, PUT, DELETE operation).
/// A method with no operation for a present sub-resource is `MethodNotAllowed`.
#[rustfmt::skip]
const BUCKET_SUBRESOURCES: &[(Param, [Option<UnsupportedOp>; 3])] = {
    use UnsupportedOp as U;
    &[
        (Param::Versioning, [None, Some(U::PutBucketVersioning), None]),
        (Param::Acl, [None, Some(U::PutBucketAcl), None]),
        (Param::Versions, [Some(U::ListObjectVersions), None, None]),
        (Param::Policy, [Some(U::GetBucketPolicy), Some(U::PutBucketPolicy), Some(U::DeleteBucketPolicy)]),
        (Param::PolicyStatus, [Some(U::GetBucketPolicyStatus), None, None]),
        (Param::Tagging, [Some(U::GetBucketTagging), Some(U::PutBucketTagging), Some(U::DeleteBucketTagging)]),
        (Param::Lifecycle, [Some(U::GetBucketLifecycleConfiguration), Some(U::PutBucketLifecycleConfiguration), Some(U::DeleteBucketLifecycle)]),
        (Param::Cors, [Some(U::GetBucketCors), Some(U::PutBucketCors), Some(U::DeleteBucketCors)]),
        (Param::Encryption, [Some(U::GetBucketEncryption), Some(U::PutBucketEncryption), Some(U::DeleteBucketEncryption)]),
        (Param::ObjectLock, [Some(U::GetObjectLockConfiguration), Some(U::PutObjectLockConfiguration), None]),
        (Param::Website, [Some(U::GetBucketWebsite), Some(U::PutBucketWebsite), Some(U::DeleteBucketWebsite)]),
        (Param::Logging, [Some(U::GetBucketLogging), Some(U::PutBucketLogging), None]),
        (Param::Notification, [Some(U::GetBucketNotificationConfiguration), Some(U::PutBucketNotificationConfiguration), None]),
        (Param::Replication, [Some(U::GetBucketReplication), Some(U::PutBucketReplication), Some(U::DeleteBucketReplication)]),
        (Param::RequestPayment, [Some(U::GetBucketRequestPayment), Some(U::PutBucketRequestPayment), None]),
        (Param::Accelerate, [Some(U::GetBucketAccelerateConfiguration), Some(U::PutBucketAccelerateConfiguration), None]),
        (Param::OwnershipControls, [Some(U::GetBucketOwnershipControls), Some(U::PutBucketOwnershipControls), Some(U::DeleteBucketOwnershipControls)]),
        (Param::PublicAccessBlock, [Some(U::GetPublicAccessBlock), Some(U::PutPublicAccessBlock), Some(U::DeletePublicAccessBlock)]),
        (Param::Analytics, [Some(U::GetBucketAnalyticsConfiguration), Some(U::PutBucketAnalyticsConfiguration), Some(U::DeleteBucketAnalyticsConfiguration)]),
        (Param::Metrics, [Some(U::GetBucketMetricsConfiguration), Some(U::PutBucketMetricsConfiguration), Some(U::DeleteBucketMetricsConfiguration)]),
        (Param::Inventory, [Some(U::GetBucketInventoryConfiguration), Some(U::PutBucketInventoryConfiguration), Some(U::DeleteBucketInventoryConfiguration)]),
        (Param::IntelligentTiering, [Some(U::GetBucketIntelligentTieringConfiguration), Some(U::PutBucketIntelligentTieringConfiguration), Some(U::DeleteBucketIntelligentTieringConfiguration)]),
    ]
};

/// Object sub-resources Tessera does not implement: (parameter, GET, PUT, DELETE, POST).
#[rustfmt::skip]
const OBJECT_SUBRESOURCES: &[(Param, [Option<UnsupportedOp>; 4])] = {
    use UnsupportedOp as U;
    &[
        (Param::Acl, [None, Some(U::PutObjectAcl), None, None]),
        (Param::Tagging, [Some(U::GetObjectTagging), Some(U::PutObjectTagging), Some(U::DeleteObjectTagging), None]),
        (Param::Retention, [Some(U::GetObjectRetention), Some(U::PutObjectRetention), None, None]),
        (Param::LegalHold, [Some(U::GetObjectLegalHold), Some(U::PutObjectLegalHold), None, None]),
        (Param::Torrent, [Some(U::GetObjectTorrent), None, None, None]),
        (Param::Attributes, [Some(U::GetObjectAttributes), None, None, None]),
        (Param::Restore, [None, None, None, Some(U::RestoreObject)]),
        (Param::Select, [None, None, None, Some(U::SelectObjectContent)]),
    ]
};

fn route_bucket(method: Method, bucket: String, query: &Query<'_>) -> Result<Endpoint, S3Error> {
    // Sub-resources that Tessera implements (or answers with a fixed document) come first.
    match method {
        Method::Get if query.has(Param::Location) => {
            return Ok(Endpoint::GetBucketLocation { bucket })
        }
        Method::Get if query.has(Param::Versioning) => {
            return Ok(Endpoint::GetBucketVersioning { bucket })
        }
        Method::Get if query.has(Param::Acl) => return Ok(Endpoint::GetBucketAcl { bucket }),
        Method::Get if query.has(Param::Uploads) => {
            let params = ListUploadsParams {
                prefix: query.string_or_empty(Param::Prefix)?,
                delimiter: query.delimiter()?,
                key_marker: query.string(Param::KeyMarker)?,
                upload_id_marker: query.string(Param::UploadIdMarker)?,
                max_uploads: query.entry_limit(Param::MaxUploads)?,
                encoding_url: query.encoding_url()?,
            };
            return Ok(Endpoint::ListMultipartUploads {
                bucket,
                params: Box::new(params),
            });
        }
        Method::Post if query.has(Param::Delete) => return Ok(Endpoint::DeleteObjects { bucket }),
        _ => {}
    }
    for &(param, [get, put, delete]) in BUCKET_SUBRESOURCES {
        if query.has(param) {
            let operation = match method {
                Method::Get => get,
                Method::Put => put,
                Method::Delete => delete,
                _ => None,
            };
            return operation
                .map(|operation| Endpoint::Unsupported {
                    bucket: Some(bucket),
                    key: None,
                    operation,
                })
                .ok_or_else(method_not_allowed);
        }
    }
    match method {
        Method::Get => list_objects(bucket, query),
        Method::Head => Ok(Endpoint::HeadBucket { bucket }),
        Method::Put => Ok(Endpoint::CreateBucket { bucket }),
        Method::Delete => Ok(Endpoint::DeleteBucket { bucket }),
        Method::Post => Ok(Endpoint::Unsupported {
            bucket: Some(bucket),
            key: None,
            operation: UnsupportedOp::PostObject,
        }),
        Method::Options => Ok(Endpoint::Unsupported {
            bucket: Some(bucket),
            key: None,
            operation: UnsupportedOp::PreflightRequest,
        }),
    }
}

fn list_buckets(query: &Query<'_>) -> Result<Endpoint, S3Error> {
    let max_buckets = match query.get(Param::MaxBuckets)? {
        None => None,
        Some(v) => Some(
            v.parse::<u32>()
                .ok()
                .filter(|n| {
                    v.bytes().all(|b| b.is_ascii_digit()) && (1..=LIST_BUCKETS_MAX).contains(n)
                })
                .ok_or_else(|| {
                    invalid_argument("max-buckets must be an integer between 1 and 10000")
                })?,
        ),
    };
    let params = ListBucketsParams {
        prefix: query.string(Param::Prefix)?,
        continuation_token: query.string(Param::ContinuationToken)?,
        max_buckets,
        bucket_region: query.string(Param::BucketRegion)?,
    };
    Ok(Endpoint::ListBuckets {
        params: Box::new(params),
    })
}

fn list_objects(bucket: String, query: &Query<'_>) -> Result<Endpoint, S3Error> {
    match query.get(Param::ListType)?.as_deref() {
        Some("2") => {
            let fetch_owner = match query.get(Param::FetchOwner)?.as_deref() {
                None => false,
                Some(v) if v.eq_ignore_ascii_case("true") => true,
                Some(v) if v.eq_ignore_ascii_case("false") => false,
                Some(_) => return Err(invalid_argument("fetch-owner must be true or false")),
            };
            let params = ListObjectsV2Params {
                prefix: query.string_or_empty(Param::Prefix)?,
                delimiter: query.delimiter()?,
                continuation_token: query.string(Param::ContinuationToken)?,
                start_after: query.string(Param::StartAfter)?,
                max_keys: query.entry_limit(Param::MaxKeys)?,
                fetch_owner,
                encoding_url: query.encoding_url()?,
            };
            Ok(Endpoint::ListObjectsV2 {
                bucket,
                params: Box::new(params),
            })
        }
        None => {
            let params = ListObjectsParams {
                prefix: query.string_or_empty(Param::Prefix)?,
                delimiter: query.delimiter()?,
                marker: query.string(Param::Marker)?,
                max_keys: query.entry_limit(Param::MaxKeys)?,
                encoding_url: query.encoding_url()?,
            };
            Ok(Endpoint::ListObjects {
                bucket,
                params: Box::new(params),
            })
        }
        Some(_) => Err(invalid_argument("list-type must be 2 when given")),
    }
}

/// The `response-*` overrides, or `None` (no allocation) when the request has none.
fn response_overrides(query: &Query<'_>) -> Result<Option<Box<ResponseOverrides>>, S3Error> {
    const PARAMS: [Param; 6] = [
        Param::ResponseCacheControl,
        Param::ResponseContentDisposition,
        Param::ResponseContentEncoding,
        Param::ResponseContentLanguage,
        Param::ResponseContentType,
        Param::ResponseExpires,
    ];
    if !PARAMS.iter().any(|&p| query.has(p)) {
        return Ok(None);
    }
    Ok(Some(Box::new(ResponseOverrides {
        cache_control: query.string(Param::ResponseCacheControl)?,
        content_disposition: query.string(Param::ResponseContentDisposition)?,
        content_encoding: query.string(Param::ResponseContentEncoding)?,
        content_language: query.string(Param::ResponseContentLanguage)?,
        content_type: query.string(Param::ResponseContentType)?,
        expires: query.string(Param::ResponseExpires)?,
    })))
}

fn route_object<H: HeaderLookup + ?Sized>(
    method: Method,
    bucket: String,
    key: String,
    query: &Query<'_>,
    headers: &H,
) -> Result<Endpoint, S3Error> {
    let upload_id = query.upload_id()?;
    match method {
        Method::Get if upload_id.is_none() && query.has(Param::Acl) => {
            return Ok(Endpoint::GetObjectAcl { bucket, key });
        }
        Method::Get | Method::Put | Method::Delete | Method::Post if upload_id.is_none() => {
            let column = match method {
                Method::Get => 0,
                Method::Put => 1,
                Method::Delete => 2,
                _ => 3,
            };
            for (param, operations) in OBJECT_SUBRESOURCES {
                if query.has(*param) {
                    return operations[column]
                        .map(|operation| Endpoint::Unsupported {
                            bucket: Some(bucket),
                            key: Some(key),
                            operation,
                        })
                        .ok_or_else(method_not_allowed);
                }
            }
        }
        _ => {}
    }
    match method {
        Method::Get | Method::Head => {
            if let Some(upload_id) = upload_id {
                if method == Method::Head {
                    return Err(method_not_allowed());
                }
                let part_number_marker = match query.get(Param::PartNumberMarker)? {
                    None => 0,
                    Some(v) => parse_decimal_u16(&v)
                        .filter(|n| *n <= PART_NUMBER_MAX)
                        .ok_or_else(|| invalid_argument("invalid part-number-marker"))?,
                };
                let params = ListPartsParams {
                    max_parts: query.entry_limit(Param::MaxParts)?,
                    part_number_marker,
                };
                return Ok(Endpoint::ListParts {
                    bucket,
                    key,
                    upload_id,
                    params,
                });
            }
            let params = ObjectReadParams {
                part_number: query.part_number()?,
                version_id: query.string(Param::VersionId)?,
                overrides: response_overrides(query)?,
            };
            if method == Method::Get {
                Ok(Endpoint::GetObject {
                    bucket,
                    key,
                    params,
                })
            } else {
                Ok(Endpoint::HeadObject {
                    bucket,
                    key,
                    params,
                })
            }
        }
        Method::Put => {
            let copy_source = headers
                .header("x-amz-copy-source")
                .map(parse_copy_source)
                .transpose()?
                .map(Box::new);
            let part_number = query.part_number()?;
            match (upload_id, part_number) {
                (Some(upload_id), Some(part_number)) => match copy_source {
                    Some(source) => {
                        let range = headers
                            .header("x-amz-copy-source-range")
                            .map(parse_copy_range)
                            .transpose()?;
                        Ok(Endpoint::UploadPartCopy {
                            bucket,
                            key,
                            upload_id,
                            part_number,
                            source,
                            range,
                        })
                    }
                    None => Ok(Endpoint::UploadPart {
                        bucket,
                        key,
                        upload_id,
                        part_number,
                    }),
                },
                (None, None) => match copy_source {
                    Some(source) => Ok(Endpoint::CopyObject {
                        bucket,
                        key,
                        source,
                    }),
                    None => Ok(Endpoint::PutObject { bucket, key }),
                },
                (Some(_), None) => Err(invalid_argument("uploadId requires partNumber")),
                (None, Some(_)) => Err(invalid_argument("partNumber requires uploadId")),
            }
        }
        Method::Delete => match upload_id {
            Some(upload_id) => Ok(Endpoint::AbortMultipartUpload {
                bucket,
                key,
                upload_id,
            }),
            None => Ok(Endpoint::DeleteObject {
                bucket,
                key,
                version_id: query.string(Param::VersionId)?,
            }),
        },
        Method::Post => match upload_id {
            Some(upload_id) => Ok(Endpoint::CompleteMultipartUpload {
                bucket,
                key,
                upload_id,
            }),
            None if query.has(Param::Uploads) => {
                Ok(Endpoint::CreateMultipartUpload { bucket, key })
            }
            None => Err(method_not_allowed()),
        },
        Method::Options => Ok(Endpoint::Unsupported {
            bucket: Some(bucket),
            key: Some(key),
            operation: UnsupportedOp::PreflightRequest,
        }),
    }
}

/// Parses `x-amz-copy-source`: `[/]bucket/key[?versionId=V]`, URL-encoded.
pub fn parse_copy_source(raw: &str) -> Result<CopySource, S3Error> {
    let bad = |why: &str| invalid_argument(format!("Invalid copy source: {why}"));
    let raw = raw.trim();
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    let (raw_path, raw_query) = raw.split_once('?').unwrap_or((raw, ""));
    let path = decode_path(raw_path).map_err(|_| bad("bad percent-encoding"))?;
    let Some((bucket, key)) = path.split_once('/') else {
        return Err(bad("expected bucket/key"));
    };
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    if !is_valid_bucket_name(bucket) {
        return Err(no_such_bucket().with_resource(bucket));
    }
    check_key(key)?;
    let mut version_id = None;
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "versionId" && version_id.is_none() {
            version_id = Some(
                decode_query(value)
                    .map_err(|_| bad("bad versionId"))?
                    .into_owned(),
            );
        }
    }
    Ok(CopySource {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id,
    })
}

/// Parses `x-amz-copy-source-range: bytes=first-last` (both bounds required, `first <= last`).
pub fn parse_copy_range(raw: &str) -> Result<CopyRange, S3Error> {
    let bad = || {
        invalid_argument("The x-amz-copy-source-range value must be of the form bytes=first-last")
    };
    let spec = raw.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (first, last) = spec.split_once('-').ok_or_else(bad)?;
    let number = |s: &str| -> Result<u64, S3Error> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (first, last) = (number(first)?, number(last)?);
    if first > last {
        return Err(bad());
    }
    Ok(CopyRange { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_path(method: &str, target: &str) -> Result<Endpoint, S3Error> {
        Endpoint::from_request(
            &RequestHead::from_target(method, target, None),
            None,
            &NoHeaders,
        )
    }

    /// The bucket naming rules accept ordinary names and reject each kind of rule breaker.
    #[test]
    fn bucket_names() {
        for good in [
            "abc",
            "my-bucket",
            "my.bucket.1",
            "a1b",
            &"a".repeat(63),
            "192.168.5",
        ] {
            assert!(is_valid_bucket_name(good), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-bucket",
            "my_bucket",
            "-abc",
            "abc-",
            ".abc",
            "abc.",
            "a..b",
            "192.168.5.4",
            "xn--abc",
            "abc-s3alias",
            "abc--ol-s3",
            "sthree-abc",
            "bucket with space",
        ] {
            assert!(!is_valid_bucket_name(bad), "{bad}");
        }
    }

    /// Virtual-host detection strips the port, ignores case and needs a non-empty label.
    #[test]
    fn virtual_host_detection() {
        assert_eq!(
            virtual_host_bucket("b.s3.example.com", "s3.example.com"),
            Some("b")
        );
        assert_eq!(
            virtual_host_bucket("a.b.S3.Example.com:9000", "s3.example.com"),
            Some("a.b")
        );
        assert_eq!(
            virtual_host_bucket("s3.example.com", "s3.example.com"),
            None
        );
        assert_eq!(
            virtual_host_bucket(".s3.example.com", "s3.example.com"),
            None
        );
        assert_eq!(
            virtual_host_bucket("bs3.example.com", "s3.example.com"),
            None
        );
        assert_eq!(virtual_host_bucket("[::1]:9000", "s3.example.com"), None);
        assert_eq!(
            virtual_host_bucket("é.s3.example.com", "s3.example.com"),
            Some("é")
        );
        // A configured domain with a port matches hosts with or without it.
        assert_eq!(
            virtual_host_bucket("b.s3.example.com:80", "s3.example.com:9000"),
            Some("b")
        );
    }

    /// The same key routes to the same endpoint in path and virtual-host style.
    #[test]
    fn both_addressing_styles() {
        let path = route_path("GET", "/bkt/dir/file.txt");
        let head = RequestHead::from_target("GET", "/dir/file.txt", Some("bkt.s3.example.com"));
        let vhost = Endpoint::from_request(&head, Some("s3.example.com"), &NoHeaders);
        assert_eq!(path, vhost);
        assert_eq!(path.as_ref().map(Endpoint::key), Ok(Some("dir/file.txt")));
    }

    /// Query names and values decode with form rules; the first duplicate wins.
    #[test]
    fn query_decoding() {
        let Ok(Endpoint::ListObjectsV2 { params, .. }) = route_path(
            "GET",
            "/bkt?list-type=2&prefix=a+b%2Bc&prefix=zzz&max-keys=5000",
        ) else {
            panic!("not a v2 listing");
        };
        assert_eq!(params.prefix, "a b+c");
        assert_eq!(params.max_keys, LIST_ENTRIES_MAX);
    }

    /// Copy source parsing handles the leading slash, encoding and versionId, and rejects
    /// malformed values.
    #[test]
    fn copy_source() {
        let src = parse_copy_source("/src-bkt/a%20b%2Bc/d?versionId=v%2B1");
        assert_eq!(
            src,
            Ok(CopySource {
                bucket: "src-bkt".into(),
                key: "a b+c/d".into(),
                version_id: Some("v+1".into())
            })
        );
        assert_eq!(
            parse_copy_source("src-bkt/k").map(|s| s.key),
            Ok("k".to_owned())
        );
        for bad in ["", "/", "bkt", "bkt/", "/bkt/%zz"] {
            let err = parse_copy_source(bad).expect_err(bad);
            assert_eq!(err.code, S3ErrorCode::InvalidArgument, "{bad}");
        }
        let err = parse_copy_source("NOT_A_BUCKET/k").expect_err("bad bucket");
        assert_eq!(err.code, S3ErrorCode::NoSuchBucket);
    }

    /// Copy ranges need both bounds in order.
    #[test]
    fn copy_range() {
        assert_eq!(
            parse_copy_range("bytes=0-99"),
            Ok(CopyRange { first: 0, last: 99 })
        );
        for bad in [
            "bytes=5-1",
            "bytes=-5",
            "bytes=5-",
            "0-5",
            "bytes=a-b",
            "bytes=1-2-3",
        ] {
            assert!(parse_copy_range(bad).is_err(), "{bad}");
        }
    }
}
