//! Request authentication: verification of every AWS auth form, and the signing side.
//!
//! ```text
//!  AuthInput (method, wire path, wire query, headers) + now + Credentials
//!        │
//!        ▼  verify(): which form?
//!  ┌─────────────┬──────────────┬──────────────┬──────────────┐
//!  │ header.rs   │ presigned.rs │ v2_header.rs │ v2_query.rs  │
//!  │ AWS4-HMAC-  │ X-Amz-* query│ "AWS ak:sig" │ AWSAccessKey │
//!  │ SHA256 hdr  │ (expiry)     │ (HMAC-SHA1)  │ Id/Signature │
//!  └──────┬──────┴──────┬───────┴──────┬───────┴──────┬───────┘
//!         └─────────────┴── canonical.rs (encoding, canonical request, keys, dates)
//!         ▼
//!  Verified { access_key, PayloadMode }
//!         │  Sha256 / Unsigned ─────────────► checksum::BodyVerifier (whole body)
//!         │  Streaming* { SignatureChain } ─► aws_chunked::ChunkedDecoder (each chunk,
//!         ▼                                   trailer signature) ─► BodyVerifier
//!  sign.rs / streaming.rs: the same canonicalisation used to sign backend requests,
//!  presign URLs and sign aws-chunked streams.
//! ```
//!
//! Everything is sans-I/O: the caller passes the request head exactly as received (path and
//! query still percent-encoded) and the current time, and gets a value back. Nothing here
//! reads a clock, a socket or a file. It does not authorise (bucket policies, ACLs): it only
//! says who signed the request and what the body must satisfy.

mod canonical;
mod error;
mod header;
mod presigned;
mod sign;
mod streaming;
mod v2;
mod v2_header;
mod v2_query;

pub use canonical::{
    canonical_query, canonical_request, canonical_uri, format_amz_date, hex32_string,
    parse_amz_date, parse_http_date, percent_decode, signing_key, string_to_sign, uri_encode_into,
    ALGORITHM_V4, EMPTY_SHA256_HEX, REQUEST_SKEW_MAX_S,
};
pub use error::AuthError;
pub use presigned::{PRESIGNED_EXPIRES_MAX_S, PRESIGNED_EXPIRES_MIN_S};
pub use sign::{SignedRequest, Signer};
pub use streaming::{canonical_trailer_line, SignatureChain};

use canonical::{header, query_pairs};

/// The value of one hex digit (either case).
#[must_use]
pub(crate) fn hex_digit(digit: u8) -> Option<u8> {
    canonical::hex_value(digit)
}

/// Parses a signature written as exactly 64 hex digits.
#[must_use]
pub(crate) fn parse_signature_hex(text: &[u8]) -> Option<[u8; 32]> {
    canonical::parse_hex32(text)
}

/// Compares two signatures in constant time.
#[must_use]
pub(crate) fn signatures_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    canonical::constant_time_eq(a, b)
}

/// The request head as the verifier needs it, exactly as received on the wire.
#[derive(Clone, Copy, Debug)]
pub struct AuthInput<'a> {
    /// The method, e.g. `PUT`.
    pub method: &'a str,
    /// The path as on the wire, still percent-encoded, without the query (`/bucket/a%20b`).
    pub raw_path: &'a str,
    /// The query as on the wire, still percent-encoded, without the `?` (may be empty).
    pub raw_query: &'a str,
    /// Every header as received, in order; names are compared case-insensitively.
    pub headers: &'a [(&'a str, &'a str)],
    /// The bucket named by the Host header in virtual-host style requests. Only `SigV2` needs
    /// it (its canonical resource starts with `/bucket` whatever the addressing style).
    pub virtual_host_bucket: Option<&'a str>,
}

/// The secret keys the gateway knows.
pub trait Credentials {
    /// The secret access key of `access_key`, if it exists.
    fn secret(&self, access_key: &str) -> Option<&str>;

    /// The `SigV4` signing key of `access_key` for a scope, if the key exists. The default
    /// derives it from the secret (four HMACs, about a third of a verification);
    /// [`SigningKeyCache`] remembers derived keys instead.
    fn signing_key(
        &self,
        access_key: &str,
        date8: &str,
        region: &str,
        service: &str,
    ) -> Option<[u8; 32]> {
        self.secret(access_key)
            .map(|secret| signing_key(secret, date8, region, service))
    }
}

/// How many derived signing keys a [`SigningKeyCache`] holds. A key is valid for one
/// (access key, day, region) and a gateway serves few of those at a time; the cache is
/// emptied when full, so it costs at most this many entries of ~100 bytes per core.
pub const SIGNING_KEY_CACHE_ENTRIES_MAX: usize = 64;

/// A per-core cache of derived `SigV4` signing keys in front of a credential store.
///
/// Not `Sync` on purpose: each core owns one. Call [`SigningKeyCache::clear`] when a secret
/// changes or a key is revoked, or a cached key keeps verifying for the rest of its day.
pub struct SigningKeyCache<C> {
    inner: C,
    entries: std::cell::RefCell<Vec<(String, [u8; 32])>>,
}

impl<C> std::fmt::Debug for SigningKeyCache<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("entries", &self.entries.borrow().len())
            .finish_non_exhaustive()
    }
}

impl<C: Credentials> SigningKeyCache<C> {
    /// A cache in front of `inner`.
    pub fn new(inner: C) -> Self {
        SigningKeyCache {
            inner,
            entries: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Forgets every derived key.
    pub fn clear(&self) {
        self.entries.borrow_mut().clear();
    }
}

impl<C: Credentials> Credentials for SigningKeyCache<C> {
    fn secret(&self, access_key: &str) -> Option<&str> {
        self.inner.secret(access_key)
    }

    fn signing_key(
        &self,
        access_key: &str,
        date8: &str,
        region: &str,
        service: &str,
    ) -> Option<[u8; 32]> {
        // The scope parts contain no `/` (the credential parser splits on it), so joining
        // with `/` is unambiguous.
        let id_len = access_key.len() + date8.len() + region.len() + service.len() + 3;
        let matches = |id: &str| {
            id.len() == id_len && {
                let mut parts = id.split('/');
                parts.next() == Some(access_key)
                    && parts.next() == Some(date8)
                    && parts.next() == Some(region)
                    && parts.next() == Some(service)
            }
        };
        if let Some((_, key)) = self.entries.borrow().iter().find(|(id, _)| matches(id)) {
            return Some(*key);
        }
        let key = self.inner.signing_key(access_key, date8, region, service)?;
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= SIGNING_KEY_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.push((format!("{access_key}/{date8}/{region}/{service}"), key));
        Some(key)
    }
}

impl<S: std::hash::BuildHasher> Credentials for std::collections::HashMap<String, String, S> {
    fn secret(&self, access_key: &str) -> Option<&str> {
        self.get(access_key).map(String::as_str)
    }
}

impl<C: Credentials + ?Sized> Credentials for &C {
    fn secret(&self, access_key: &str) -> Option<&str> {
        (**self).secret(access_key)
    }

    fn signing_key(
        &self,
        access_key: &str,
        date8: &str,
        region: &str,
        service: &str,
    ) -> Option<[u8; 32]> {
        (**self).signing_key(access_key, date8, region, service)
    }
}

impl Credentials for [(&str, &str)] {
    fn secret(&self, access_key: &str) -> Option<&str> {
        self.iter()
            .find(|(ak, _)| *ak == access_key)
            .map(|(_, sk)| *sk)
    }
}

/// Which auth form a request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthForm {
    /// `SigV4` in the Authorization header.
    HeaderV4,
    /// `SigV4` in the query string (presigned URL).
    PresignedV4,
    /// `SigV2` in the Authorization header (`AWS ak:sig`).
    HeaderV2,
    /// `SigV2` in the query string (`AWSAccessKeyId`, `Signature`, `Expires`).
    QueryV2,
}

/// What the body of an authenticated request must satisfy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadMode {
    /// `x-amz-content-sha256` is a literal SHA-256: the whole body must hash to it.
    Sha256([u8; 32]),
    /// `UNSIGNED-PAYLOAD`, `SigV2`, or a presigned URL: the signature does not cover the body.
    Unsigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: an aws-chunked body, every chunk signed.
    StreamingSigned {
        /// Checks each chunk signature, starting from the seed (the request signature).
        chain: SignatureChain,
        /// `x-amz-decoded-content-length`: the length of the payload once decoded.
        decoded_content_length: u64,
    },
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: every chunk signed, then signed trailers.
    StreamingSignedTrailer {
        /// Checks each chunk signature and then the trailer signature.
        chain: SignatureChain,
        /// `x-amz-decoded-content-length`.
        decoded_content_length: u64,
    },
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: unsigned chunks, then trailers (a checksum).
    StreamingUnsignedTrailer {
        /// `x-amz-decoded-content-length`.
        decoded_content_length: u64,
    },
}

impl PayloadMode {
    /// Whether the body is aws-chunked (one of the streaming modes).
    #[must_use]
    pub fn is_streaming(&self) -> bool {
        !matches!(self, PayloadMode::Sha256(_) | PayloadMode::Unsigned)
    }

    /// Whether the aws-chunked body ends with trailers.
    #[must_use]
    pub fn has_trailer(&self) -> bool {
        matches!(
            self,
            PayloadMode::StreamingSignedTrailer { .. }
                | PayloadMode::StreamingUnsignedTrailer { .. }
        )
    }

    /// `x-amz-decoded-content-length` for the streaming modes.
    #[must_use]
    pub fn decoded_content_length(&self) -> Option<u64> {
        match self {
            PayloadMode::StreamingSigned {
                decoded_content_length,
                ..
            }
            | PayloadMode::StreamingSignedTrailer {
                decoded_content_length,
                ..
            }
            | PayloadMode::StreamingUnsignedTrailer {
                decoded_content_length,
            } => Some(*decoded_content_length),
            PayloadMode::Sha256(_) | PayloadMode::Unsigned => None,
        }
    }
}

/// A successfully authenticated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The access key that signed the request.
    pub access_key: String,
    /// The region of the `SigV4` credential scope (`None` for `SigV2`).
    pub region: Option<String>,
    /// The auth form used.
    pub form: AuthForm,
    /// What the body must satisfy.
    pub payload: PayloadMode,
}

/// Authenticates a request: finds its auth form, checks the signature and the time, and says
/// what its body must satisfy. `now_unix_s` is the server's clock in Unix seconds.
pub fn verify<C: Credentials + ?Sized>(
    input: &AuthInput<'_>,
    now_unix_s: i64,
    credentials: &C,
) -> Result<Verified, AuthError> {
    let authorization = header(input.headers, "authorization");
    let mut query_v4 = false;
    let mut query_v2 = false;
    for (name, _) in query_pairs(input.raw_query) {
        // Auth parameter names contain no characters that need escaping, so comparing the
        // wire names is exact for every client that sends them correctly.
        query_v4 |= name == "X-Amz-Algorithm" || name == "X-Amz-Signature";
        query_v2 |= name == "AWSAccessKeyId" || name == "Signature";
    }
    match (authorization, query_v4, query_v2) {
        (Some(_), true, _) | (Some(_), _, true) => Err(AuthError::InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified",
        )),
        (Some(value), false, false) => {
            let value = value.trim_start();
            if let Some(rest) = value.strip_prefix(ALGORITHM_V4) {
                header::verify(input, rest, now_unix_s, credentials)
            } else if let Some(rest) = value.strip_prefix("AWS ") {
                v2_header::verify(input, rest, now_unix_s, credentials)
            } else {
                Err(AuthError::AuthorizationHeaderMalformed(
                    "Unsupported Authorization Type",
                ))
            }
        }
        (None, true, _) => presigned::verify(input, now_unix_s, credentials),
        (None, false, true) => v2_query::verify(input, now_unix_s, credentials),
        (None, false, false) => Err(AuthError::Anonymous),
    }
}
