//! Fixtures shared by tests, benches and the crash-test child: realistic records built from a
//! few numbers. Not used by the store itself.

use crate::record::{
    Bucket, Checksum, ChecksumAlgorithm, ContentHeaders, ETag, MetaPair, Object, Policy, Shard,
    ShardState,
};

/// A bucket with a 2+1 erasure-coding policy.
#[must_use]
pub fn bucket(name: &str) -> Bucket {
    Bucket {
        name: name.to_owned(),
        created_ms: 1_700_000_000_000,
        policy: Policy::Ec {
            k: 2,
            m: 1,
            chunk_size: 1 << 20,
        },
        owner: "tessera".to_owned(),
    }
}

/// A 40-byte key derived from `n`, like `photos/2026/11/22/img-000000000042.jpg-x`.
#[must_use]
pub fn key40(n: u64) -> String {
    let key = format!("photos/2026/11/22/img-{n:012}.jpg-x");
    assert_eq!(key.len(), 40, "n must have at most 12 digits");
    key
}

/// The typical object record the byte budget is stated for: a 2+1 erasure-coded single-request
/// object with a content type, one user metadata pair and a CRC32C checksum.
#[must_use]
pub fn typical_object(bucket: &str, key: &str, seed: u64) -> Object {
    let id = |i: u64| {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&seed.to_le_bytes());
        b[8..].copy_from_slice(&i.to_le_bytes());
        b
    };
    Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id: seed,
        size: 1_000_000 + seed % 1000,
        etag: ETag {
            md5: id(99),
            parts: 0,
        },
        headers: ContentHeaders {
            content_type: Some("image/jpeg".to_owned()),
            ..ContentHeaders::default()
        },
        user_metadata: vec![MetaPair {
            name: "camera".to_owned(),
            value: "x100v".to_owned(),
        }],
        checksums: vec![Checksum {
            algorithm: ChecksumAlgorithm::Crc32c,
            value: (seed as u32).to_be_bytes().to_vec(),
        }],
        mtime_ms: 1_700_000_000_000 + seed,
        policy: Policy::Ec {
            k: 2,
            m: 1,
            chunk_size: 1 << 20,
        },
        chunk_size: 512 << 10,
        shards: (0..3)
            .map(|i| Shard {
                site: i as u16,
                backend_id: id(i),
                state: if i == 2 && seed % 7 == 0 {
                    ShardState::Pending
                } else {
                    ShardState::Durable
                },
            })
            .collect(),
        parts: Vec::new(),
    }
}
