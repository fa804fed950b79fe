//! The one error enum of authentication and body integrity, mapped to S3 codes in one place.

use crate::error::{S3Error, S3ErrorCode};

/// Why a request failed authentication, or why its body failed an integrity check.
///
/// Shared by [`crate::sigv4`], [`crate::aws_chunked`] and [`crate::checksum`] so that the S3
/// wire form of every auth or integrity failure is decided in [`AuthError::s3_error`] only.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carries no authentication at all (no Authorization header, no query auth).
    Anonymous,
    /// A presigned URL (v4 or v2) is used after its expiry time.
    Expired,
    /// The access key id is not known to the credential store.
    InvalidAccessKeyId,
    /// The signature computed here differs from the one sent. Holds the string to sign so the
    /// client can compare it with its own, as S3 does.
    SignatureDoesNotMatch {
        /// The string to sign the server computed.
        string_to_sign: String,
    },
    /// The request time differs from the server's by more than the allowed skew.
    RequestTimeTooSkewed,
    /// The Authorization header cannot be parsed; the text says which part.
    AuthorizationHeaderMalformed(&'static str),
    /// The query-string authentication parameters are malformed; the text says which.
    AuthorizationQueryParametersError(&'static str),
    /// A header required by the auth form is missing (e.g. `x-amz-content-sha256`).
    MissingSecurityHeader(&'static str),
    /// An `x-amz-*` header is present but not covered by the signature.
    HeadersNotSigned,
    /// A header value is not acceptable (e.g. an unknown `x-amz-content-sha256` value).
    InvalidArgument(&'static str),
    /// A chunk signature of an aws-chunked body does not match its data.
    ChunkSignatureMismatch,
    /// The `x-amz-trailer-signature` of an aws-chunked body does not match its trailers.
    TrailerSignatureMismatch,
    /// The body ended before the declared length (or before the final chunk).
    IncompleteBody,
    /// The aws-chunked framing is malformed or exceeds a limit; the text says how.
    ChunkedMalformed(&'static str),
    /// The decoded body is longer than `x-amz-decoded-content-length`.
    DecodedLengthExceeded,
    /// A checksum (`x-amz-checksum-*`, header or trailer) does not match the body.
    ChecksumMismatch,
    /// `Content-MD5` does not match the body.
    ContentMd5Mismatch,
    /// The literal `x-amz-content-sha256` does not match the body.
    ContentSha256Mismatch,
    /// `Content-MD5` is not the base64 of 16 bytes.
    InvalidContentMd5,
    /// A checksum header or trailer value is malformed, duplicated or inconsistent; the text
    /// says which.
    InvalidChecksum(&'static str),
}

impl AuthError {
    /// The S3 error this failure is answered with: the only place auth and integrity failures
    /// become wire codes.
    #[must_use]
    pub fn s3_error(&self) -> S3Error {
        use S3ErrorCode as C;
        match self {
            AuthError::Anonymous => S3Error::new(C::AccessDenied, "Access Denied"),
            AuthError::Expired => S3Error::new(C::AccessDenied, "Request has expired"),
            AuthError::InvalidAccessKeyId => S3Error::new(
                C::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            ),
            AuthError::SignatureDoesNotMatch { string_to_sign } => S3Error::new(
                C::SignatureDoesNotMatch,
                format!(
                    "The request signature we calculated does not match the signature you \
                     provided. Check your key and signing method. StringToSign: {string_to_sign}"
                ),
            ),
            AuthError::RequestTimeTooSkewed => S3Error::new(
                C::RequestTimeTooSkewed,
                "The difference between the request time and the current time is too large.",
            ),
            AuthError::AuthorizationHeaderMalformed(what) => {
                S3Error::new(C::AuthorizationHeaderMalformed, *what)
            }
            AuthError::AuthorizationQueryParametersError(what) => {
                S3Error::new(C::AuthorizationQueryParametersError, *what)
            }
            AuthError::MissingSecurityHeader(what) => S3Error::new(
                C::MissingSecurityHeader,
                format!("Your request is missing a required header: {what}"),
            ),
            AuthError::HeadersNotSigned => S3Error::new(
                C::AccessDenied,
                "There were headers present in the request which were not signed",
            ),
            AuthError::InvalidArgument(what) => S3Error::new(C::InvalidArgument, *what),
            AuthError::ChunkSignatureMismatch => S3Error::new(
                C::SignatureDoesNotMatch,
                "The chunk signature we calculated does not match the signature you provided.",
            ),
            AuthError::TrailerSignatureMismatch => S3Error::new(
                C::SignatureDoesNotMatch,
                "The trailer signature we calculated does not match the signature you provided.",
            ),
            AuthError::IncompleteBody => S3Error::new(
                C::IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP \
                 header.",
            ),
            AuthError::ChunkedMalformed(what) | AuthError::InvalidChecksum(what) => {
                S3Error::new(C::InvalidRequest, *what)
            }
            AuthError::DecodedLengthExceeded => S3Error::new(
                C::InvalidRequest,
                "The decoded body is longer than x-amz-decoded-content-length.",
            ),
            AuthError::ChecksumMismatch => S3Error::new(
                C::BadDigest,
                "The checksum you specified did not match the calculated checksum.",
            ),
            AuthError::ContentMd5Mismatch => S3Error::new(
                C::BadDigest,
                "The Content-MD5 you specified did not match what we received.",
            ),
            AuthError::ContentSha256Mismatch => S3Error::new(
                C::XAmzContentSHA256Mismatch,
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ),
            AuthError::InvalidContentMd5 => S3Error::new(
                C::InvalidDigest,
                "The Content-MD5 you specified is not valid.",
            ),
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let err = self.s3_error();
        write!(f, "{}: {}", err.code_name(), err.message)
    }
}

impl std::error::Error for AuthError {}
