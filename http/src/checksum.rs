//! Body integrity: S3 checksums (`x-amz-checksum-*` headers and trailers), `Content-MD5`, the
//! literal `x-amz-content-sha256`, and the MD5 that becomes the `ETag`, all in one pass.
//!
//! ```text
//!  request headers ──► IntegrityHeaders::parse ─┐
//!  sigv4::Verified.payload ─────────────────────┼─► BodyVerifier::new (picks the hashers
//!                                               │    actually needed, shares SHA-256)
//!  decoded body bytes (each exactly once) ──────┴─► BodyVerifier::update
//!  trailer checksum (aws_chunked) ─────────────────► BodyVerifier::finish
//!                                                    ├─► BodyDigest { md5 (`ETag`), checksum }
//!                                                    └─► BadDigest / XAmzContentSHA256Mismatch
//! ```
//!
//! Multipart checksums (composite, and full-object CRCs combined from the parts without
//! reading the data again) are in the `multipart` submodule, re-exported here.
//!
//! The CRCs use `crc-fast` (carry-less multiply kernels); SHA-1 and SHA-256 the `RustCrypto`
//! crates; MD5 `md5-many`. A caller that hashes many bodies at once (multi-buffer MD5) can take
//! over the MD5 with [`BodyVerifier::defer_md5`] and hand it back at the end. Nothing here reads the body itself: the server feeds it.

use base64::Engine as _;
use md5_many::Md5State;
use sha1::Sha1;
use sha2::Digest as _;
use sha2::Sha256;

use crate::sigv4::{AuthError, PayloadMode};

mod multipart;

pub use multipart::{composite_checksum, crc_combine, full_object_checksum, ChecksumType};

/// The longest checksum digest, in bytes (SHA-256). Sizes the inline storage of a value.
pub const CHECKSUM_BYTES_MAX: usize = 32;

/// A checksum algorithm S3 supports in `x-amz-checksum-<alg>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    /// CRC-32 (ISO-HDLC, the zlib CRC), 4 bytes big-endian.
    Crc32,
    /// CRC-32C (Castagnoli / iSCSI), 4 bytes big-endian.
    Crc32c,
    /// CRC-64/NVME, 8 bytes big-endian.
    Crc64Nvme,
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm.
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// The header (and trailer) name carrying the value, e.g. `x-amz-checksum-crc32`.
    #[must_use]
    pub fn header_name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The name used by `x-amz-sdk-checksum-algorithm` and in XML, e.g. `CRC32`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// The algorithm of a header name like `x-amz-checksum-crc32c` (any case); `None` for
    /// other headers, including `x-amz-checksum-type` and `x-amz-checksum-algorithm`.
    #[must_use]
    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.header_name().eq_ignore_ascii_case(name.trim()))
    }

    /// The algorithm of an `x-amz-sdk-checksum-algorithm` value like `CRC32` (any case).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The digest length in bytes.
    #[must_use]
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }
}

/// One checksum value: the algorithm and its digest bytes, stored inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChecksumValue {
    algorithm: ChecksumAlgorithm,
    bytes: [u8; CHECKSUM_BYTES_MAX],
}

impl ChecksumValue {
    /// A value from raw digest bytes; `None` if the length is not the algorithm's.
    #[must_use]
    pub fn from_bytes(algorithm: ChecksumAlgorithm, digest: &[u8]) -> Option<Self> {
        if digest.len() != algorithm.digest_len() {
            return None;
        }
        let mut bytes = [0u8; CHECKSUM_BYTES_MAX];
        bytes[..digest.len()].copy_from_slice(digest);
        Some(ChecksumValue { algorithm, bytes })
    }

    /// Parses the base64 form S3 sends; the decoded length must be the algorithm's.
    pub fn parse_base64(algorithm: ChecksumAlgorithm, text: &str) -> Result<Self, AuthError> {
        let invalid = AuthError::InvalidChecksum("Value for x-amz-checksum header is invalid.");
        let text = text.trim();
        // Base64 of 32 bytes is 44 characters; anything longer cannot be valid.
        if text.len() > 44 {
            return Err(invalid);
        }
        let mut buf = [0u8; 33];
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(text, &mut buf)
            .map_err(|_| invalid.clone())?;
        Self::from_bytes(algorithm, &buf[..n]).ok_or(invalid)
    }

    /// The algorithm.
    #[must_use]
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    /// The digest bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.algorithm.digest_len()]
    }

    /// The base64 form S3 returns.
    #[must_use]
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.as_bytes())
    }
}

enum HasherState {
    /// CRC-32C, through `crc-fast`.
    Crc32c(crc_fast::Digest),
    /// CRC-32 and CRC-64/NVME as finished values so far, through `tessera-ec`'s kernels
    /// (ISA-L's 256-bit ones where the CPU has them: twice `crc-fast`'s speed below AVX-512).
    Crc32(u32),
    Crc64(u64),
    Sha1(Sha1),
    Sha256(Sha256),
}

/// A streaming hasher for one [`ChecksumAlgorithm`].
pub struct ChecksumHasher {
    algorithm: ChecksumAlgorithm,
    state: HasherState,
}

impl std::fmt::Debug for ChecksumHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChecksumHasher")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl ChecksumHasher {
    /// A fresh hasher.
    #[must_use]
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        use crc_fast::CrcAlgorithm as Crc;
        let state = match algorithm {
            ChecksumAlgorithm::Crc32 => HasherState::Crc32(0),
            ChecksumAlgorithm::Crc32c => {
                HasherState::Crc32c(crc_fast::Digest::new(Crc::Crc32Iscsi))
            }
            ChecksumAlgorithm::Crc64Nvme => HasherState::Crc64(0),
            ChecksumAlgorithm::Sha1 => HasherState::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => HasherState::Sha256(Sha256::new()),
        };
        ChecksumHasher { algorithm, state }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            HasherState::Crc32c(d) => d.update(data),
            HasherState::Crc32(crc) => *crc = tessera_ec::extend_crc32(*crc, data),
            HasherState::Crc64(crc) => *crc = tessera_ec::extend_checksum(*crc, data),
            HasherState::Sha1(d) => d.update(data),
            HasherState::Sha256(d) => d.update(data),
        }
    }

    /// The value of everything fed.
    #[must_use]
    pub fn finalize(self) -> ChecksumValue {
        let mut bytes = [0u8; CHECKSUM_BYTES_MAX];
        match self.state {
            // A CRC-32C fits the low 32 bits of crc-fast's result.
            HasherState::Crc32c(d) => {
                bytes[..4].copy_from_slice(&(d.finalize() as u32).to_be_bytes());
            }
            HasherState::Crc32(crc) => bytes[..4].copy_from_slice(&crc.to_be_bytes()),
            HasherState::Crc64(crc) => bytes[..8].copy_from_slice(&crc.to_be_bytes()),
            HasherState::Sha1(d) => bytes[..20].copy_from_slice(&d.finalize()),
            HasherState::Sha256(d) => bytes.copy_from_slice(&d.finalize()),
        }
        ChecksumValue {
            algorithm: self.algorithm,
            bytes,
        }
    }

    /// The checksum of `data` in one call.
    #[must_use]
    pub fn digest(algorithm: ChecksumAlgorithm, data: &[u8]) -> ChecksumValue {
        let mut hasher = ChecksumHasher::new(algorithm);
        hasher.update(data);
        hasher.finalize()
    }
}

/// The integrity headers of a request, parsed and validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntegrityHeaders {
    /// `Content-MD5`, decoded.
    pub content_md5: Option<[u8; 16]>,
    /// The one `x-amz-checksum-<alg>` header value.
    pub checksum: Option<ChecksumValue>,
    /// The checksum announced in `x-amz-trailer`, to arrive as an aws-chunked trailer.
    pub trailer: Option<ChecksumAlgorithm>,
    /// `x-amz-sdk-checksum-algorithm`.
    pub sdk_algorithm: Option<ChecksumAlgorithm>,
}

impl IntegrityHeaders {
    /// Parses `Content-MD5`, `x-amz-checksum-*`, `x-amz-sdk-checksum-algorithm` and
    /// `x-amz-trailer` from the request headers.
    pub fn parse(headers: &[(&str, &str)]) -> Result<Self, AuthError> {
        let mut out = IntegrityHeaders::default();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("content-md5") {
                if out.content_md5.is_some() {
                    return Err(AuthError::InvalidContentMd5);
                }
                let mut buf = [0u8; 17];
                let value = value.trim();
                let n = if value.len() == 24 {
                    base64::engine::general_purpose::STANDARD
                        .decode_slice(value, &mut buf)
                        .map_err(|_| AuthError::InvalidContentMd5)?
                } else {
                    return Err(AuthError::InvalidContentMd5);
                };
                let md5: [u8; 16] = buf[..n]
                    .try_into()
                    .map_err(|_| AuthError::InvalidContentMd5)?;
                out.content_md5 = Some(md5);
            } else if let Some(algorithm) = ChecksumAlgorithm::from_header_name(name) {
                if out.checksum.is_some() {
                    return Err(AuthError::InvalidChecksum(
                        "Expecting a single x-amz-checksum- header. Multiple checksum Types are \
                         not allowed.",
                    ));
                }
                out.checksum = Some(ChecksumValue::parse_base64(algorithm, value)?);
            } else if name.eq_ignore_ascii_case("x-amz-sdk-checksum-algorithm") {
                out.sdk_algorithm = Some(ChecksumAlgorithm::from_name(value).ok_or(
                    AuthError::InvalidChecksum(
                        "Value for x-amz-sdk-checksum-algorithm is invalid.",
                    ),
                )?);
            } else if name.eq_ignore_ascii_case("x-amz-trailer") {
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let is_checksum = item.len() >= 15
                        && item.as_bytes()[..15].eq_ignore_ascii_case(b"x-amz-checksum-");
                    if !is_checksum {
                        continue;
                    }
                    let algorithm = ChecksumAlgorithm::from_header_name(item).ok_or(
                        AuthError::InvalidChecksum("The x-amz-trailer checksum is not supported."),
                    )?;
                    if out.trailer.is_some() {
                        return Err(AuthError::InvalidChecksum(
                            "Expecting a single x-amz-checksum- trailer.",
                        ));
                    }
                    out.trailer = Some(algorithm);
                }
            }
        }
        if out.checksum.is_some() && out.trailer.is_some() {
            return Err(AuthError::InvalidChecksum(
                "Expecting a single x-amz-checksum- header or trailer, not both.",
            ));
        }
        let announced = out.checksum.map(|c| c.algorithm()).or(out.trailer);
        if let (Some(sdk), Some(announced)) = (out.sdk_algorithm, announced) {
            if sdk != announced {
                return Err(AuthError::InvalidChecksum(
                    "x-amz-sdk-checksum-algorithm does not match the checksum sent.",
                ));
            }
        }
        Ok(out)
    }
}

/// What a verified body produced: the MD5 (`ETag`) and the verified checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyDigest {
    /// MD5 of the body, when asked for (the object's or part's `ETag`).
    pub md5: Option<[u8; 16]>,
    /// The checksum the client sent (header or trailer), verified against the body.
    pub checksum: Option<ChecksumValue>,
    /// Bytes fed.
    pub length: u64,
}

/// Hashes a body once, with only the hashers needed, and checks every claim at the end.
///
/// Feed every decoded body byte exactly once with [`BodyVerifier::update`], then call
/// [`BodyVerifier::finish`] with the trailer checksum, if the body had one.
pub struct BodyVerifier {
    md5: Option<Md5State>,
    /// The caller computes the MD5 and passes it to [`BodyVerifier::finish_with_md5`].
    md5_deferred: bool,
    /// SHA-256 of the whole body: for a literal `x-amz-content-sha256`, a SHA-256 checksum,
    /// or both (hashed once, compared twice).
    sha256: Option<Sha256>,
    content_sha256: Option<[u8; 32]>,
    content_md5: Option<[u8; 16]>,
    /// A checksum other than SHA-256 to compute.
    checksum: Option<ChecksumHasher>,
    /// The algorithm the client claims a value for (header or trailer).
    checksum_algorithm: Option<ChecksumAlgorithm>,
    checksum_header: Option<ChecksumValue>,
    length: u64,
}

impl std::fmt::Debug for BodyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyVerifier")
            .field("md5", &self.md5.is_some())
            .field("sha256", &self.sha256.is_some())
            .field("checksum_algorithm", &self.checksum_algorithm)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl BodyVerifier {
    /// A verifier for a body authenticated with `payload`, carrying `integrity` headers.
    /// `compute_md5` asks for the MD5 (needed for the `ETag` of objects and parts).
    pub fn new(
        payload: &PayloadMode,
        integrity: &IntegrityHeaders,
        compute_md5: bool,
    ) -> Result<Self, AuthError> {
        if integrity.trailer.is_some() && !payload.has_trailer() {
            return Err(AuthError::InvalidChecksum(
                "x-amz-trailer requires a STREAMING-*-TRAILER x-amz-content-sha256.",
            ));
        }
        let content_sha256 = match payload {
            PayloadMode::Sha256(hash) => Some(*hash),
            _ => None,
        };
        let checksum_algorithm = integrity
            .checksum
            .map(|c| c.algorithm())
            .or(integrity.trailer);
        let needs_sha256 =
            content_sha256.is_some() || checksum_algorithm == Some(ChecksumAlgorithm::Sha256);
        let checksum = checksum_algorithm
            .filter(|a| *a != ChecksumAlgorithm::Sha256)
            .map(ChecksumHasher::new);
        Ok(BodyVerifier {
            md5: (compute_md5 || integrity.content_md5.is_some()).then(Md5State::new),
            md5_deferred: false,
            sha256: needs_sha256.then(Sha256::new),
            content_sha256,
            content_md5: integrity.content_md5,
            checksum,
            checksum_algorithm,
            checksum_header: integrity.checksum,
            length: 0,
        })
    }

    /// Feeds body bytes (decoded payload, each byte exactly once).
    pub fn update(&mut self, data: &[u8]) {
        self.length += data.len() as u64;
        if let Some(md5) = &mut self.md5 {
            md5.update(data);
        }
        if let Some(sha) = &mut self.sha256 {
            sha.update(data);
        }
        if let Some(checksum) = &mut self.checksum {
            checksum.update(data);
        }
    }

    /// Hands the MD5 to the caller, which must then feed the same bytes to its own hasher and
    /// pass the result to [`BodyVerifier::finish_with_md5`]. True when the verifier needed an
    /// MD5 and had not been fed yet; false otherwise (nothing changes).
    pub fn defer_md5(&mut self) -> bool {
        if self.md5.is_none() || self.length != 0 {
            return false;
        }
        self.md5 = None;
        self.md5_deferred = true;
        true
    }

    /// Checks every claim and returns the digests. `trailer` is the checksum trailer the
    /// aws-chunked decoder read, if any.
    pub fn finish(self, trailer: Option<&ChecksumValue>) -> Result<BodyDigest, AuthError> {
        self.finish_with_md5(trailer, None)
    }

    /// [`BodyVerifier::finish`] with the MD5 the caller computed after [`BodyVerifier::defer_md5`]
    /// (ignored if the MD5 was not deferred; a deferred MD5 that is not given is treated as not
    /// computed).
    pub fn finish_with_md5(
        self,
        trailer: Option<&ChecksumValue>,
        deferred_md5: Option<[u8; 16]>,
    ) -> Result<BodyDigest, AuthError> {
        let sha256: Option<[u8; 32]> = self.sha256.map(|s| s.finalize().into());
        if let (Some(claimed), Some(computed)) = (self.content_sha256, sha256) {
            if claimed != computed {
                return Err(AuthError::ContentSha256Mismatch);
            }
        }
        let md5: Option<[u8; 16]> = if self.md5_deferred {
            deferred_md5
        } else {
            self.md5.map(|m| m.finalize())
        };
        if let (Some(claimed), Some(computed)) = (self.content_md5, md5) {
            if claimed != computed {
                return Err(AuthError::ContentMd5Mismatch);
            }
        }
        let checksum = match self.checksum_algorithm {
            None if trailer.is_some() => {
                return Err(AuthError::InvalidChecksum(
                    "A checksum trailer was sent without being announced in x-amz-trailer.",
                ))
            }
            None => None,
            Some(algorithm) => {
                let claimed = match (self.checksum_header, trailer) {
                    (Some(header), _) => header,
                    (None, Some(trailer)) => *trailer,
                    (None, None) => {
                        return Err(AuthError::InvalidChecksum(
                            "The x-amz-trailer checksum was announced but not sent.",
                        ))
                    }
                };
                if claimed.algorithm() != algorithm {
                    return Err(AuthError::InvalidChecksum(
                        "The checksum trailer does not match the x-amz-trailer header.",
                    ));
                }
                let computed = match (self.checksum, sha256) {
                    (Some(hasher), _) => hasher.finalize(),
                    (None, Some(sha)) => ChecksumValue {
                        algorithm,
                        bytes: sha,
                    },
                    (None, None) => unreachable!("a hasher exists for every announced checksum"),
                };
                if computed != claimed {
                    return Err(AuthError::ChecksumMismatch);
                }
                Some(computed)
            }
        };
        Ok(BodyDigest {
            md5,
            checksum,
            length: self.length,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::S3ErrorCode;

    fn hex(bytes: &[u8]) -> String {
        hex::encode(bytes)
    }

    /// Each algorithm gives its published check value for `123456789` (CRCs, from the CRC
    /// catalogue) or `abc` (SHA, FIPS 180), and streaming in pieces equals one call.
    #[test]
    fn published_check_values() {
        let cases = [
            (ChecksumAlgorithm::Crc32, &b"123456789"[..], "cbf43926"),
            (ChecksumAlgorithm::Crc32c, b"123456789", "e3069283"),
            (
                ChecksumAlgorithm::Crc64Nvme,
                b"123456789",
                "ae8b14860a799888",
            ),
            (
                ChecksumAlgorithm::Sha1,
                b"abc",
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                ChecksumAlgorithm::Sha256,
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ];
        for (algorithm, input, expected) in cases {
            let value = ChecksumHasher::digest(algorithm, input);
            assert_eq!(hex(value.as_bytes()), expected, "{algorithm:?}");
            let mut streamed = ChecksumHasher::new(algorithm);
            for byte in input {
                streamed.update(&[*byte]);
            }
            assert_eq!(streamed.finalize(), value);
            let round = ChecksumValue::parse_base64(algorithm, &value.to_base64()).unwrap();
            assert_eq!(round, value);
        }
    }

    /// Base64 values of the wrong length or not base64 at all are refused as
    /// `InvalidRequest`.
    #[test]
    fn malformed_values_refused() {
        for bad in ["", "AAAA", "AAAAAAAAAAA=", "!!!!!!==", &"A".repeat(100)] {
            let err = ChecksumValue::parse_base64(ChecksumAlgorithm::Crc32, bad).unwrap_err();
            assert_eq!(err.s3_error().code, S3ErrorCode::InvalidRequest, "{bad}");
        }
    }

    /// Header parsing: names in any case, one checksum at most, `x-amz-checksum-type` is not
    /// a value, `Content-MD5` must be base64 of 16 bytes, the SDK algorithm must agree.
    #[test]
    fn integrity_headers_parse() {
        let crc = ChecksumHasher::digest(ChecksumAlgorithm::Crc32, b"x").to_base64();
        let parsed = IntegrityHeaders::parse(&[
            ("X-Amz-Checksum-CRC32", crc.as_str()),
            ("x-amz-checksum-type", "FULL_OBJECT"),
            ("x-amz-sdk-checksum-algorithm", "crc32"),
            ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
        ])
        .unwrap();
        assert_eq!(
            parsed.checksum.unwrap().algorithm(),
            ChecksumAlgorithm::Crc32
        );
        assert_eq!(
            hex(&parsed.content_md5.unwrap()),
            "d41d8cd98f00b204e9800998ecf8427e"
        );

        let two = IntegrityHeaders::parse(&[
            ("x-amz-checksum-crc32", crc.as_str()),
            ("x-amz-checksum-crc32c", crc.as_str()),
        ]);
        assert!(matches!(two, Err(AuthError::InvalidChecksum(_))));
        let disagree = IntegrityHeaders::parse(&[
            ("x-amz-checksum-crc32", crc.as_str()),
            ("x-amz-sdk-checksum-algorithm", "SHA256"),
        ]);
        assert!(matches!(disagree, Err(AuthError::InvalidChecksum(_))));
        for bad_md5 in [
            "nope",
            "1B2M2Y8AsgTpgAmY7PhCfg",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let err = IntegrityHeaders::parse(&[("content-md5", bad_md5)]).unwrap_err();
            assert_eq!(err.s3_error().code, S3ErrorCode::InvalidDigest, "{bad_md5}");
        }
        let trailer = IntegrityHeaders::parse(&[("x-amz-trailer", "x-amz-checksum-sha1")]);
        assert_eq!(trailer.unwrap().trailer, Some(ChecksumAlgorithm::Sha1));
        let unknown = IntegrityHeaders::parse(&[("x-amz-trailer", "x-amz-checksum-md4")]);
        assert!(matches!(unknown, Err(AuthError::InvalidChecksum(_))));
    }

    /// `Content-MD5` is checked against the MD5 the verifier returns as the `ETag`: a match
    /// returns it, a mismatch is `BadDigest`.
    #[test]
    fn content_md5_checked_and_returned() {
        let md5_of_abc = "kAFQmDzST7DWlj99KOF/cg==";
        let integrity = IntegrityHeaders::parse(&[("Content-MD5", md5_of_abc)]).unwrap();
        let mut ok = BodyVerifier::new(&PayloadMode::Unsigned, &integrity, false).unwrap();
        ok.update(b"ab");
        ok.update(b"c");
        let digest = ok.finish(None).unwrap();
        assert_eq!(
            hex(&digest.md5.unwrap()),
            "900150983cd24fb0d6963f7d28e17f72"
        );

        let mut bad = BodyVerifier::new(&PayloadMode::Unsigned, &integrity, false).unwrap();
        bad.update(b"abd");
        let err = bad.finish(None).unwrap_err();
        assert_eq!(err, AuthError::ContentMd5Mismatch);
        assert_eq!(err.s3_error().code, S3ErrorCode::BadDigest);
    }

    /// A deferred MD5 is the caller's: the verifier checks the one it is given against
    /// `Content-MD5` and returns it; it refuses to defer once bytes were fed.
    #[test]
    fn deferred_md5_is_checked_at_finish() {
        let md5_of_abc: [u8; 16] = hex::decode("900150983cd24fb0d6963f7d28e17f72")
            .unwrap()
            .try_into()
            .unwrap();
        let integrity =
            IntegrityHeaders::parse(&[("Content-MD5", "kAFQmDzST7DWlj99KOF/cg==")]).unwrap();
        let mut ok = BodyVerifier::new(&PayloadMode::Unsigned, &integrity, true).unwrap();
        assert!(ok.defer_md5());
        ok.update(b"abc");
        assert_eq!(
            ok.finish_with_md5(None, Some(md5_of_abc)).unwrap().md5,
            Some(md5_of_abc)
        );

        let mut bad = BodyVerifier::new(&PayloadMode::Unsigned, &integrity, true).unwrap();
        assert!(bad.defer_md5());
        bad.update(b"abc");
        let mut wrong = md5_of_abc;
        wrong[0] ^= 1;
        assert_eq!(
            bad.finish_with_md5(None, Some(wrong)).unwrap_err(),
            AuthError::ContentMd5Mismatch
        );

        let mut late =
            BodyVerifier::new(&PayloadMode::Unsigned, &IntegrityHeaders::default(), true).unwrap();
        late.update(b"a");
        assert!(!late.defer_md5());
        let mut unneeded =
            BodyVerifier::new(&PayloadMode::Unsigned, &IntegrityHeaders::default(), false).unwrap();
        assert!(!unneeded.defer_md5());
    }

    /// Only what is needed is computed: no MD5 unless asked or checked, and one SHA-256
    /// serves both a literal `x-amz-content-sha256` and a SHA-256 checksum; each claim is still
    /// compared on its own.
    #[test]
    fn hashes_only_what_is_needed() {
        let none =
            BodyVerifier::new(&PayloadMode::Unsigned, &IntegrityHeaders::default(), false).unwrap();
        assert!(none.md5.is_none() && none.sha256.is_none() && none.checksum.is_none());
        assert_eq!(none.finish(None).unwrap().md5, None);

        let body = b"payload";
        let sha: [u8; 32] = Sha256::digest(body).into();
        let sha_b64 = ChecksumHasher::digest(ChecksumAlgorithm::Sha256, body).to_base64();
        let integrity =
            IntegrityHeaders::parse(&[("x-amz-checksum-sha256", sha_b64.as_str())]).unwrap();
        let both = BodyVerifier::new(&PayloadMode::Sha256(sha), &integrity, true).unwrap();
        assert!(both.sha256.is_some() && both.checksum.is_none());
        let mut both = both;
        both.update(body);
        let digest = both.finish(None).unwrap();
        assert_eq!(digest.checksum.unwrap().to_base64(), sha_b64);

        let mut wrong_literal =
            BodyVerifier::new(&PayloadMode::Sha256([0; 32]), &integrity, true).unwrap();
        wrong_literal.update(body);
        assert_eq!(
            wrong_literal.finish(None).unwrap_err(),
            AuthError::ContentSha256Mismatch
        );

        let other = ChecksumHasher::digest(ChecksumAlgorithm::Sha256, b"other").to_base64();
        let integrity =
            IntegrityHeaders::parse(&[("x-amz-checksum-sha256", other.as_str())]).unwrap();
        let mut wrong_checksum =
            BodyVerifier::new(&PayloadMode::Sha256(sha), &integrity, true).unwrap();
        wrong_checksum.update(body);
        assert_eq!(
            wrong_checksum.finish(None).unwrap_err(),
            AuthError::ChecksumMismatch
        );
    }

    /// A trailer needs a trailer payload mode; an announced trailer must arrive; an
    /// unannounced one is refused.
    #[test]
    fn trailer_consistency() {
        let integrity =
            IntegrityHeaders::parse(&[("x-amz-trailer", "x-amz-checksum-crc32")]).unwrap();
        let err = BodyVerifier::new(&PayloadMode::Unsigned, &integrity, true).unwrap_err();
        assert!(matches!(err, AuthError::InvalidChecksum(_)));

        let mode = PayloadMode::StreamingUnsignedTrailer {
            decoded_content_length: 0,
        };
        let verifier = BodyVerifier::new(&mode, &integrity, true).unwrap();
        assert!(matches!(
            verifier.finish(None),
            Err(AuthError::InvalidChecksum(_))
        ));

        let crc = ChecksumHasher::digest(ChecksumAlgorithm::Crc32, b"");
        let plain = BodyVerifier::new(&mode, &IntegrityHeaders::default(), true).unwrap();
        assert!(matches!(
            plain.finish(Some(&crc)),
            Err(AuthError::InvalidChecksum(_))
        ));
    }
}
