//! How multipart checksums are kept in the frozen `v1` records without changing their shape.
//!
//! ```text
//!  Upload.user_metadata  + reserved pair (":checksum-type", "COMPOSITE" | "FULL_OBJECT")
//!                          (':' cannot occur in a header name, so no client can send it)
//!  Object.checksums[i].value =  digest                      full-object checksum (as for PUT)
//!                            |  digest ‖ 'C' ‖ u32 BE N      composite of N parts
//!                            |  digest ‖ 'P' ‖ u32 BE n      checksum of part n
//! ```
//!
//! A reader that predates this convention sees a value whose length is not the algorithm's
//! digest length and skips it (the gateway's GET path drops such values), so old binaries
//! stay correct on new logs: they just do not show composite or part checksums. This module
//! only encodes and decodes; the type rules and the checksum math live in `tessera-http`.

use crate::record::{Checksum, ChecksumAlgorithm, MetaPair, Upload};

/// The reserved user-metadata name that carries an upload's `x-amz-checksum-type`.
pub const CHECKSUM_TYPE_PAIR: &str = ":checksum-type";

const COMPOSITE_TAG: u8 = b'C';
const PART_TAG: u8 = b'P';
const SUFFIX_BYTES: usize = 5;

/// What a stored checksum value covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumScope {
    /// The whole object's bytes.
    FullObject,
    /// The checksum of the part checksums of a `parts`-part object.
    Composite { parts: u32 },
    /// One part of a multipart object.
    Part { number: u32 },
}

/// Digest length in bytes of `algorithm`.
#[must_use]
pub fn digest_len(algorithm: ChecksumAlgorithm) -> usize {
    match algorithm {
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
        ChecksumAlgorithm::Crc64Nvme => 8,
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    }
}

/// A stored checksum of `scope` with the raw `digest`.
#[must_use]
pub fn encode(algorithm: ChecksumAlgorithm, digest: &[u8], scope: ChecksumScope) -> Checksum {
    assert_eq!(
        digest.len(),
        digest_len(algorithm),
        "digest of the algorithm's length"
    );
    let mut value = digest.to_vec();
    match scope {
        ChecksumScope::FullObject => {}
        ChecksumScope::Composite { parts } => {
            value.push(COMPOSITE_TAG);
            value.extend_from_slice(&parts.to_be_bytes());
        }
        ChecksumScope::Part { number } => {
            value.push(PART_TAG);
            value.extend_from_slice(&number.to_be_bytes());
        }
    }
    Checksum { algorithm, value }
}

/// The raw digest and scope of a stored checksum; `None` for a value of no known shape.
#[must_use]
pub fn decode(checksum: &Checksum) -> Option<(&[u8], ChecksumScope)> {
    let len = digest_len(checksum.algorithm);
    let value = checksum.value.as_slice();
    if value.len() == len {
        return Some((value, ChecksumScope::FullObject));
    }
    if value.len() != len + SUFFIX_BYTES {
        return None;
    }
    let (digest, suffix) = value.split_at(len);
    let n = u32::from_be_bytes(suffix[1..].try_into().ok()?);
    match suffix[0] {
        COMPOSITE_TAG => Some((digest, ChecksumScope::Composite { parts: n })),
        PART_TAG => Some((digest, ChecksumScope::Part { number: n })),
        _ => None,
    }
}

/// The checksum type name recorded on an upload (`COMPOSITE`, `FULL_OBJECT`), if any.
#[must_use]
pub fn upload_checksum_type(upload: &Upload) -> Option<&str> {
    upload
        .user_metadata
        .iter()
        .find(|p| p.name == CHECKSUM_TYPE_PAIR)
        .map(|p| p.value.as_str())
}

/// Records the checksum type `name` on an upload's metadata (kept sorted by name).
pub fn set_upload_checksum_type(pairs: &mut Vec<MetaPair>, name: &str) {
    pairs.retain(|p| p.name != CHECKSUM_TYPE_PAIR);
    pairs.push(MetaPair {
        name: CHECKSUM_TYPE_PAIR.to_owned(),
        value: name.to_owned(),
    });
    pairs.sort_by(|a, b| a.name.cmp(&b.name));
}

/// The user metadata a client sent: `pairs` without the reserved ones.
#[must_use]
pub fn client_metadata(pairs: &[MetaPair]) -> Vec<MetaPair> {
    pairs
        .iter()
        .filter(|p| p.name != CHECKSUM_TYPE_PAIR)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scope round-trips for every algorithm; a plain digest is full-object (as every
    /// single-request object already stores it); values of other lengths or tags are unknown.
    #[test]
    fn scopes_round_trip() {
        use ChecksumAlgorithm as A;
        for algorithm in [A::Crc32, A::Crc32c, A::Crc64Nvme, A::Sha1, A::Sha256] {
            let digest: Vec<u8> = (0..digest_len(algorithm) as u8).collect();
            for scope in [
                ChecksumScope::FullObject,
                ChecksumScope::Composite { parts: 10_000 },
                ChecksumScope::Part { number: 7 },
            ] {
                let stored = encode(algorithm, &digest, scope);
                assert_eq!(decode(&stored), Some((digest.as_slice(), scope)));
            }
            let mut odd = encode(algorithm, &digest, ChecksumScope::Part { number: 1 });
            odd.value[digest.len()] = b'X';
            assert_eq!(decode(&odd), None);
            odd.value.push(0);
            assert_eq!(decode(&odd), None);
        }
    }

    /// The type pair is found, replaced rather than repeated, kept sorted, and never part of
    /// what the client gets back.
    #[test]
    fn upload_type_pair() {
        let mut pairs = vec![MetaPair {
            name: "color".to_owned(),
            value: "blue".to_owned(),
        }];
        set_upload_checksum_type(&mut pairs, "COMPOSITE");
        set_upload_checksum_type(&mut pairs, "FULL_OBJECT");
        assert_eq!(pairs.len(), 2);
        assert!(pairs.windows(2).all(|w| w[0].name <= w[1].name));
        let upload = Upload {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            upload_id: "u".to_owned(),
            initiated_ms: 0,
            headers: crate::record::ContentHeaders::default(),
            user_metadata: pairs.clone(),
            checksum_algorithm: Some(ChecksumAlgorithm::Crc32),
            policy: crate::record::Policy::Replica { n: 1 },
            owner: "o".to_owned(),
        };
        assert_eq!(upload_checksum_type(&upload), Some("FULL_OBJECT"));
        let client = client_metadata(&pairs);
        assert_eq!(client.len(), 1);
        assert_eq!(client[0].name, "color");
    }
}
