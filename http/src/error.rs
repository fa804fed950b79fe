//! S3 error codes: the one place where every failure becomes an HTTP status and an S3 XML body.
//!
//! Every crate maps its own error enum to an [`S3ErrorCode`]; this module owns the code → status
//! table (as data) and the XML serializer, so the wire form of an error is defined exactly once.

use std::fmt::Write as _;

/// Generates [`S3ErrorCode`], its wire name and its HTTP status from one table.
macro_rules! s3_error_codes {
    ($( $(#[doc = $doc:literal])* $name:ident => $status:literal, )*) => {
        /// An S3 error code as sent in `<Code>`; each variant's doc says when it is used.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum S3ErrorCode {
            $( $(#[doc = $doc])* $name, )*
        }

        impl S3ErrorCode {
            /// Every code, in table order (used by tests and docs).
            pub const ALL: &'static [S3ErrorCode] = &[$(S3ErrorCode::$name,)*];

            /// The code's wire name, e.g. `NoSuchBucket`.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $(S3ErrorCode::$name => stringify!($name),)* }
            }

            /// The HTTP status S3 answers with for this code.
            #[must_use]
            pub fn status(self) -> u16 {
                match self { $(S3ErrorCode::$name => $status,)* }
            }
        }
    };
}

s3_error_codes! {
    /// Access denied: anonymous request, expired presigned URL, or a policy refusal.
    AccessDenied => 403,
    /// The Authorization header (or credential scope) is malformed.
    AuthorizationHeaderMalformed => 400,
    /// The query-string authentication parameters are malformed.
    AuthorizationQueryParametersError => 400,
    /// A checksum or Content-MD5 did not match the body received.
    BadDigest => 400,
    /// The bucket exists and is owned by someone else.
    BucketAlreadyExists => 409,
    /// The bucket exists and is owned by the caller (us-east-1 semantics differ; we answer this).
    BucketAlreadyOwnedByYou => 409,
    /// DeleteBucket on a bucket that still holds objects or uploads.
    BucketNotEmpty => 409,
    /// A part other than the last is below the 5 MiB minimum.
    EntityTooSmall => 400,
    /// The body exceeds the maximum allowed size.
    EntityTooLarge => 400,
    /// The request body ended before the declared length.
    IncompleteBody => 400,
    /// An internal error; the request may be retried.
    InternalError => 500,
    /// The access key id is unknown.
    InvalidAccessKeyId => 403,
    /// A request argument is invalid.
    InvalidArgument => 400,
    /// The bucket name does not follow S3 naming rules.
    InvalidBucketName => 400,
    /// Content-MD5 or a checksum header is not well formed.
    InvalidDigest => 400,
    /// A GET/HEAD `partNumber` names a part the object does not have.
    InvalidPartNumber => 416,
    /// User metadata (`x-amz-meta-*`) exceeds 2 KiB.
    MetadataTooLarge => 400,
    /// A `versionId` names a version that does not exist (Tessera keeps only the current one).
    NoSuchVersion => 404,
    /// A part named in CompleteMultipartUpload is missing or its ETag differs.
    InvalidPart => 400,
    /// Parts in CompleteMultipartUpload are not in ascending order.
    InvalidPartOrder => 400,
    /// The Range header cannot be satisfied.
    InvalidRange => 416,
    /// The request is invalid for a reason given in the message.
    InvalidRequest => 400,
    /// `x-amz-storage-class` names no S3 storage class.
    InvalidStorageClass => 400,
    /// The URI is not valid (bad percent-encoding, too long, not UTF-8).
    InvalidURI => 400,
    /// CreateBucket named a region other than the gateway's.
    InvalidLocationConstraint => 400,
    /// The key is longer than 1024 bytes.
    KeyTooLongError => 400,
    /// The XML body is not well formed or does not match the schema.
    MalformedXML => 400,
    /// The method is not allowed on this resource.
    MethodNotAllowed => 405,
    /// A PUT without Content-Length (and not chunked).
    MissingContentLength => 411,
    /// A required header (e.g. x-amz-content-sha256, x-amz-decoded-content-length) is missing.
    MissingSecurityHeader => 400,
    /// The bucket does not exist.
    NoSuchBucket => 404,
    /// The key does not exist.
    NoSuchKey => 404,
    /// The multipart upload does not exist (aborted or completed).
    NoSuchUpload => 404,
    /// The operation is not implemented by this gateway (yet).
    NotImplemented => 501,
    /// A conditional request's precondition failed.
    PreconditionFailed => 412,
    /// The request head is larger than allowed.
    RequestHeaderSectionTooLarge => 400,
    /// The client did not send the body within the timeout.
    RequestTimeout => 400,
    /// The request's time differs from the server's by more than 15 minutes.
    RequestTimeTooSkewed => 403,
    /// The gateway cannot serve the request now (not enough sites, overload).
    ServiceUnavailable => 503,
    /// The computed signature differs from the one sent.
    SignatureDoesNotMatch => 403,
    /// The client should slow down.
    SlowDown => 503,
    /// `x-amz-content-sha256` does not match the body.
    XAmzContentSHA256Mismatch => 400,
    /// Not modified (conditional GET); sent without a body.
    NotModified => 304,
    /// A header the gateway does not implement was sent (e.g. an unsupported transfer coding).
    NotImplementedHeader => 501,
    /// Length required (HTTP-level: body without framing).
    LengthRequired => 411,
    /// HTTP-level: the request line or headers are malformed.
    BadRequest => 400,
    /// HTTP-level: the URI is longer than allowed.
    UriTooLong => 414,
    /// HTTP-level: the expectation in `Expect` cannot be met.
    ExpectationFailed => 417,
}

/// One S3 error ready to serialize: a code, a human message and the resource it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Error {
    /// The S3 code (decides the status).
    pub code: S3ErrorCode,
    /// A human-readable message.
    pub message: String,
    /// The resource (`/bucket/key`), when known.
    pub resource: String,
}

impl S3Error {
    /// An error with `code` and `message` and no resource yet.
    #[must_use]
    pub fn new(code: S3ErrorCode, message: impl Into<String>) -> Self {
        S3Error {
            code,
            message: message.into(),
            resource: String::new(),
        }
    }

    /// The same error naming `resource`.
    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = resource.into();
        self
    }

    /// The HTTP status for this error.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The wire name of the code. HTTP-level pseudo codes map to the closest S3 name.
    #[must_use]
    pub fn code_name(&self) -> &'static str {
        match self.code {
            S3ErrorCode::NotImplementedHeader => "NotImplemented",
            S3ErrorCode::BadRequest => "BadRequest",
            S3ErrorCode::UriTooLong => "InvalidURI",
            S3ErrorCode::LengthRequired => "MissingContentLength",
            code => code.as_str(),
        }
    }

    /// Serializes the error as the S3 XML document, including the request id.
    #[must_use]
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>");
        out.push_str(self.code_name());
        out.push_str("</Code><Message>");
        escape_xml_into(&mut out, &self.message);
        out.push_str("</Message><Resource>");
        escape_xml_into(&mut out, &self.resource);
        out.push_str("</Resource><RequestId>");
        escape_xml_into(&mut out, request_id);
        out.push_str("</RequestId></Error>");
        out
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code_name(), self.message)
    }
}

impl std::error::Error for S3Error {}

/// Appends `text` to `out` with the five XML special characters escaped, and control characters
/// written as numeric references (S3 does the same for keys): those XML 1.0 cannot carry, and
/// carriage returns and line feeds, which a parser would otherwise normalize (`\r` and `\r\n`
/// both read back as `\n`, changing the key).
pub fn escape_xml_into(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code goes through the serializer: the XML names the code, escapes the message and
    /// carries the request id; the status is a valid HTTP error status.
    #[test]
    fn every_code_serializes() {
        for &code in S3ErrorCode::ALL {
            let err = S3Error::new(code, "a <b> & 'c'").with_resource("/bucket/k&y");
            let xml = err.to_xml("REQ1");
            assert!(
                xml.contains(&format!("<Code>{}</Code>", err.code_name())),
                "{xml}"
            );
            assert!(xml.contains("<Message>a &lt;b&gt; &amp; &apos;c&apos;</Message>"));
            assert!(xml.contains("<Resource>/bucket/k&amp;y</Resource>"));
            assert!(xml.contains("<RequestId>REQ1</RequestId>"));
            assert!((300..600).contains(&code.status()), "{code:?}");
        }
    }

    /// Control bytes in keys become numeric character references, as S3 writes them.
    #[test]
    fn control_bytes_escaped() {
        let mut out = String::new();
        escape_xml_into(&mut out, "a\u{1}b");
        assert_eq!(out, "a&#x1;b");
    }

    /// Line ends survive a parser's normalization only as references; a tab is kept as is.
    #[test]
    fn line_ends_escaped_tab_kept() {
        let mut out = String::new();
        escape_xml_into(&mut out, "a\rb\nc\r\nd\te");
        assert_eq!(out, "a&#xD;b&#xA;c&#xD;&#xA;d\te");
    }
}
