//! The crate's one error enum.

use core::fmt;

/// Everything that can go wrong in `tessera-ec`. Operating errors only: a misuse that the type
/// system cannot rule out but that no input from a client or a site can cause is an assertion.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `k` or `m` is outside `1 ≤ k`, `0 ≤ m`, `k + m ≤ SHARDS_MAX`.
    Geometry { k: usize, m: usize },
    /// A chunk size is zero, not a multiple of `CHUNK_ALIGN`, or above `CHUNK_SIZE_MAX`.
    ChunkSize { chunk_size: u64 },
    /// An object is larger than `OBJECT_SIZE_MAX`.
    ObjectSize { object_size: u64 },
    /// The caller passed the wrong number of shard buffers for the codec's `k` and `m`.
    ShardCount { expected: usize, actual: usize },
    /// Shard buffers of one stripe differ in length (`shard` is the first one that differs).
    ShardLength {
        shard: usize,
        expected: usize,
        actual: usize,
    },
    /// A packed slab (`encode_packed`, `reconstruct_packed`) is not exactly the number of
    /// chunks times the chunk length.
    SlabLength { expected: usize, actual: usize },
    /// A shard set names a shard index ≥ k + m, or asks to rebuild a shard marked present.
    ShardSet { present: u32, rebuild: u32 },
    /// Fewer than `k` shards are present: the stripe cannot be reconstructed.
    TooManyMissing { present: usize, needed: usize },
    /// The byte range does not overlap the object (HTTP 416).
    RangeNotSatisfiable { object_size: u64 },
    /// A stored chunk's checksum does not match its bytes: bitrot, a torn write or a wrong chunk.
    ChecksumMismatch { expected: u64, actual: u64 },
    /// A stored chunk is shorter than its checksum trailer.
    StoredChunkTruncated { len: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Geometry { k, m } => write!(
                f,
                "erasure geometry k={k} m={m} is outside 1 <= k, k + m <= {}",
                crate::SHARDS_MAX
            ),
            Error::ChunkSize { chunk_size } => write!(
                f,
                "chunk size {chunk_size} is not a non-zero multiple of {} at most {}",
                crate::CHUNK_ALIGN,
                crate::CHUNK_SIZE_MAX
            ),
            Error::ObjectSize { object_size } => write!(
                f,
                "object size {object_size} exceeds {}",
                crate::OBJECT_SIZE_MAX
            ),
            Error::ShardCount { expected, actual } => {
                write!(f, "expected {expected} shard buffers, got {actual}")
            }
            Error::ShardLength {
                shard,
                expected,
                actual,
            } => write!(
                f,
                "shard {shard} buffer is {actual} bytes, the stripe's chunks are {expected}"
            ),
            Error::SlabLength { expected, actual } => {
                write!(f, "packed slab is {actual} bytes, expected {expected}")
            }
            Error::ShardSet { present, rebuild } => write!(
                f,
                "invalid shard sets: present {present:#x}, rebuild {rebuild:#x}"
            ),
            Error::TooManyMissing { present, needed } => write!(
                f,
                "only {present} shards present, {needed} needed to reconstruct"
            ),
            Error::RangeNotSatisfiable { object_size } => {
                write!(
                    f,
                    "range not satisfiable for an object of {object_size} bytes"
                )
            }
            Error::ChecksumMismatch { expected, actual } => write!(
                f,
                "chunk checksum mismatch: stored {expected:#018x}, computed {actual:#018x}"
            ),
            Error::StoredChunkTruncated { len } => {
                write!(
                    f,
                    "stored chunk of {len} bytes is shorter than its checksum"
                )
            }
        }
    }
}

impl std::error::Error for Error {}
