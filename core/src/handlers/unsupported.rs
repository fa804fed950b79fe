//! Refuses, before anything is stored, the object write headers that ask for a feature
//! Tessera does not have, so that a client asking for encryption, a retention lock or tags
//! learns that it did not get them instead of finding out later.
//!
//! | headers | answer |
//! |---|---|
//! | `x-amz-server-side-encryption*` (SSE-S3, SSE-KMS, SSE-C), `x-amz-copy-source-server-side-encryption-customer-*` | 501 NotImplemented |
//! | `x-amz-object-lock-*` | 400 InvalidRequest (no bucket has an Object Lock configuration) |
//! | `x-amz-tagging` | 501 NotImplemented |
//! | `x-amz-storage-class` not an S3 storage class | 400 InvalidStorageClass |
//!
//! A valid storage class is accepted: every object is stored by its bucket's policy, and
//! listings report `STANDARD`.

use tessera_http::{S3Error, S3ErrorCode};

/// The storage classes S3 defines (`x-amz-storage-class`).
pub const STORAGE_CLASSES: [&str; 11] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
];

/// Checks the headers of a PutObject, CopyObject or CreateMultipartUpload (name, value).
pub fn check<'h>(headers: impl Iterator<Item = (&'h str, &'h str)>) -> Result<(), S3Error> {
    // Every write passes here: the names are compared in place, without lowercased copies.
    let starts = |name: &str, prefix: &str| {
        name.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    for (name, value) in headers {
        if !starts(name, "x-amz-") {
            continue;
        }
        if starts(name, "x-amz-server-side-encryption")
            || starts(name, "x-amz-copy-source-server-side-encryption")
        {
            return Err(S3Error::new(
                S3ErrorCode::NotImplemented,
                format!("Server-side encryption is not supported by this gateway ({name})"),
            ));
        }
        if starts(name, "x-amz-object-lock-") {
            return Err(S3Error::new(
                S3ErrorCode::InvalidRequest,
                "Bucket is missing Object Lock Configuration",
            ));
        }
        if name.eq_ignore_ascii_case("x-amz-tagging") {
            return Err(S3Error::new(
                S3ErrorCode::NotImplemented,
                "Object tagging is not supported by this gateway",
            ));
        }
        if name.eq_ignore_ascii_case("x-amz-storage-class")
            && !STORAGE_CLASSES.contains(&value.trim())
        {
            return Err(S3Error::new(
                S3ErrorCode::InvalidStorageClass,
                "The storage class you specified is not valid",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(headers: &[(&str, &str)]) -> Option<S3ErrorCode> {
        check(headers.iter().copied()).err().map(|e| e.code)
    }

    #[test]
    fn plain_writes_pass() {
        assert_eq!(code(&[]), None);
        assert_eq!(
            code(&[("Content-Type", "text/plain"), ("x-amz-meta-a", "b")]),
            None
        );
        assert_eq!(code(&[("x-amz-storage-class", "STANDARD")]), None);
        assert_eq!(code(&[("X-Amz-Storage-Class", "GLACIER_IR")]), None);
    }

    #[test]
    fn unsupported_features_are_refused() {
        use S3ErrorCode::*;
        let cases: [(&str, &str, S3ErrorCode); 8] = [
            ("x-amz-server-side-encryption", "AES256", NotImplemented),
            ("x-amz-server-side-encryption", "aws:kms", NotImplemented),
            (
                "X-Amz-Server-Side-Encryption-Customer-Algorithm",
                "AES256",
                NotImplemented,
            ),
            (
                "x-amz-copy-source-server-side-encryption-customer-key",
                "k",
                NotImplemented,
            ),
            ("x-amz-object-lock-mode", "GOVERNANCE", InvalidRequest),
            ("x-amz-object-lock-legal-hold", "ON", InvalidRequest),
            ("x-amz-tagging", "a=b", NotImplemented),
            ("x-amz-storage-class", "FAST", InvalidStorageClass),
        ];
        for (name, value, expected) in cases {
            assert_eq!(code(&[(name, value)]), Some(expected), "{name}: {value}");
        }
        assert_eq!(
            code(&[("x-amz-storage-class", "standard")]),
            Some(InvalidStorageClass)
        );
    }
}
