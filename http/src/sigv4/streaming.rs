//! Chunk and trailer signatures of aws-chunked bodies (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`
//! and its `-TRAILER` variant), for both the verifier and the signer.
//!
//! ```text
//!  seed = request signature
//!  sig(chunk n) = HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n" scope "\n"
//!                            sig(chunk n-1) "\n" sha256("") "\n" sha256(chunk n data))
//!  sig(trailer) = HMAC(key, "AWS4-HMAC-SHA256-TRAILER\n" date "\n" scope "\n"
//!                            sig(final 0-byte chunk) "\n" sha256(canonical trailers))
//! ```

use hmac::Mac;
use sha2::{Digest, Sha256};

use super::canonical::{hex32, HmacSha256, EMPTY_SHA256_HEX};

/// The chain of chunk signatures of one aws-chunked body.
///
/// Holds the pre-keyed HMAC state (the signing key is absorbed once, cloned per chunk) and the
/// previous signature. Its `Debug` form does not show the key.
#[derive(Clone)]
pub struct SignatureChain {
    mac: HmacSha256,
    signing_key: [u8; 32],
    /// `date "\n" scope "\n"`, the part of every string to sign after the algorithm line.
    date_scope: String,
    previous: [u8; 32],
}

impl PartialEq for SignatureChain {
    fn eq(&self, other: &Self) -> bool {
        self.signing_key == other.signing_key
            && self.date_scope == other.date_scope
            && self.previous == other.previous
    }
}

impl Eq for SignatureChain {}

impl std::fmt::Debug for SignatureChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureChain")
            .field("date_scope", &self.date_scope)
            .field("previous", &super::canonical::hex32_string(&self.previous))
            .finish_non_exhaustive()
    }
}

/// Feeds one canonical trailer line (`name:value\n`, name lower-cased, value trimmed) to
/// `sink`, which hashes the bytes the trailer signature covers. Allocates nothing.
pub fn canonical_trailer_line(sink: &mut dyn FnMut(&[u8]), name: &str, value: &str) {
    for piece in name.trim().as_bytes().chunks(64) {
        let mut lower = [0u8; 64];
        let lower = &mut lower[..piece.len()];
        lower.copy_from_slice(piece);
        lower.make_ascii_lowercase();
        sink(lower);
    }
    sink(b":");
    sink(value.trim().as_bytes());
    sink(b"\n");
}

impl SignatureChain {
    /// A chain starting at `seed` (the signature of the request head).
    #[must_use]
    pub fn new(signing_key: [u8; 32], amz_date: &str, scope: &str, seed: [u8; 32]) -> Self {
        // HMAC accepts keys of any length.
        let mac = HmacSha256::new_from_slice(&signing_key).expect("HMAC takes any key length");
        let mut date_scope = String::with_capacity(amz_date.len() + scope.len() + 2);
        date_scope.push_str(amz_date);
        date_scope.push('\n');
        date_scope.push_str(scope);
        date_scope.push('\n');
        SignatureChain {
            mac,
            signing_key,
            date_scope,
            previous: seed,
        }
    }

    /// The last signature of the chain (the seed before any chunk).
    #[must_use]
    pub fn previous(&self) -> [u8; 32] {
        self.previous
    }

    /// The signature the next chunk must carry, given the SHA-256 of its data. Does not advance.
    #[must_use]
    pub fn expected_chunk_signature(&self, chunk_sha256: &[u8; 32]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(b"AWS4-HMAC-SHA256-PAYLOAD\n");
        mac.update(self.date_scope.as_bytes());
        mac.update(&hex32(&self.previous));
        mac.update(b"\n");
        mac.update(EMPTY_SHA256_HEX.as_bytes());
        mac.update(b"\n");
        mac.update(&hex32(chunk_sha256));
        mac.finalize().into_bytes().into()
    }

    /// Checks a chunk's claimed signature; on success the chain advances to it.
    #[must_use]
    pub fn verify_chunk(&mut self, chunk_sha256: &[u8; 32], claimed: &[u8; 32]) -> bool {
        let expected = self.expected_chunk_signature(chunk_sha256);
        let ok = super::canonical::constant_time_eq(&expected, claimed);
        if ok {
            self.previous = expected;
        }
        ok
    }

    /// The trailer signature, given the SHA-256 of the canonical trailers.
    #[must_use]
    pub fn trailer_signature(&self, canonical_trailers_sha256: &[u8; 32]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(b"AWS4-HMAC-SHA256-TRAILER\n");
        mac.update(self.date_scope.as_bytes());
        mac.update(&hex32(&self.previous));
        mac.update(b"\n");
        mac.update(&hex32(canonical_trailers_sha256));
        mac.finalize().into_bytes().into()
    }

    /// Signing side: signs `data` as the next chunk, advances, and returns the chunk header
    /// line (`{len:x};chunk-signature={sig}\r\n`). Send the data and `\r\n` after it; finish
    /// with an empty `data` for the final chunk.
    pub fn sign_chunk(&mut self, data: &[u8]) -> String {
        let hash: [u8; 32] = Sha256::digest(data).into();
        let signature = self.expected_chunk_signature(&hash);
        self.previous = signature;
        format!(
            "{:x};chunk-signature={}\r\n",
            data.len(),
            super::canonical::hex32_string(&signature)
        )
    }

    /// Signing side: the trailer block after the final chunk: each `name:value\r\n`, then
    /// `x-amz-trailer-signature:{sig}\r\n\r\n`.
    #[must_use]
    pub fn sign_trailers(&self, trailers: &[(&str, &str)]) -> String {
        let mut canonical = Sha256::new();
        let mut block = String::new();
        for (name, value) in trailers {
            canonical_trailer_line(&mut |bytes| canonical.update(bytes), name, value);
            block.push_str(name);
            block.push(':');
            block.push_str(value);
            block.push_str("\r\n");
        }
        let hash: [u8; 32] = canonical.finalize().into();
        let signature = self.trailer_signature(&hash);
        block.push_str("x-amz-trailer-signature:");
        block.push_str(&super::canonical::hex32_string(&signature));
        block.push_str("\r\n\r\n");
        block
    }
}
