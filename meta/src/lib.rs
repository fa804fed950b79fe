//! tessera-meta: where every bucket, object, multipart upload and pending background job is
//! recorded. Each core owns a partition of the key space, an append-only log of checksummed rkyv
//! frames and an in-memory ordered index built from it.
//!
//! ```text
//!   engine on core c ── partition_of(bucket, key, cores) ──► owning core o
//!        │ (c == o: direct call; else a MetaRequest message, answered by MetaStore::handle)
//!        ▼
//!   MetaStore (store.rs, the only runtime module)
//!     commit(ops) ─► frame.rs encode ─► group commit: write_at + fsync (Storage) ─► Index::apply
//!     object()/list()/stats() ◄── index.rs ◄── listing.rs (per-core page; merge_pages across cores)
//!     open(): recover.rs  snapshot + log replay, torn tail truncated, damage refused
//!     compaction: snapshot of the index + new log generation when the log passes a threshold
//!   Storage trait (storage.rs): FileStorage on io_uring, MemStorage with crash images
//!   upload_condition.rs: the check behind commit_if_upload (complete vs abort, atomically)
//!   multipart_checksum.rs: composite / part checksums kept in v1 fields
//!   crash_point.rs: an env-armed abort before repair-queue commits, for crash tests
//! ```
//!
//! What it does not do: talk to sites, decide placement, or keep object versions other than the
//! current one. Records are versioned (`record::v1` is frozen; see `docs/meta-format.md`).

pub mod crash_point;
mod error;
pub mod frame;
pub mod index;
pub mod listing;
pub mod multipart_checksum;
pub mod record;
pub mod recover;
pub mod storage;
pub mod store;
pub mod testkit;
pub mod upload_condition;
pub mod upload_listing;

pub use error::MetaError;
pub use frame::{FRAME_ALIGN, FRAME_HEADER_BYTES, FRAME_PAYLOAD_MAX};
pub use index::{BucketStats, Index, UploadState};
pub use listing::{merge_pages, ListEntry, ListItem, ListPage, ListQuery, Listed, LIST_KEYS_MAX};
pub use record::{
    BackendId, Bucket, Checksum, ChecksumAlgorithm, ContentHeaders, ETag, MetaPair, Object,
    ObjectPart, Op, Policy, QueueEntry, QueueKind, Record, Shard, ShardState, SiteId, Tombstone,
    Txn, Upload, UploadPart,
};
pub use recover::{RecoveryMode, RecoveryReport, Truncation};
pub use storage::{MemStorage, Storage};
pub use store::{
    Commit, FileStorage, MetaRequest, MetaResponse, MetaStore, StoreConfig, StoreStats, SyncMode,
    UploadCommit, APPENDS_PENDING_MAX, COMPACT_LOG_BYTES_DEFAULT,
};
pub use upload_condition::{ObjectExpect, UploadCondition, UploadMismatch};
pub use upload_listing::{
    merge_upload_pages, upload_page, UploadEntry, UploadItem, UploadPage, UploadQuery,
};

/// The index of one core (executor thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoreId(pub u16);

/// Most cores the partition function supports; a `CoreId` is a `u16`.
pub const CORES_MAX: usize = 1024;

/// The core that owns `(bucket, key)`: a fixed hash (FNV-1a 64 with a final mix, never the
/// randomized std hasher) reduced to `0..cores`, the same on every process and restart. Bucket
/// records themselves are global: every core keeps them.
#[must_use]
pub fn partition_of(bucket: &str, key: &str, cores: usize) -> CoreId {
    assert!(
        cores > 0 && cores <= CORES_MAX,
        "cores within 1..=CORES_MAX"
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    // The bucket's length first, so ("ab", "c") and ("a", "bc") hash apart.
    for &b in (bucket.len() as u64)
        .to_le_bytes()
        .iter()
        .chain(bucket.as_bytes())
        .chain(key.as_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    // Lemire's multiply-shift: uniform over 0..cores without a division; < cores <= u16::MAX.
    CoreId(((u128::from(h) * cores as u128) >> 64) as u16)
}

const _: () = assert!(CORES_MAX <= u16::MAX as usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_fixed_and_spreads_keys() {
        // Checks the partition function against values computed once (so a change of hash,
        // which would strand every existing record on the wrong core, fails here) and that
        // 100,000 keys spread over 4 cores within 2% of even.
        assert_eq!(partition_of("b", "k", 1), CoreId(0));
        let pinned: Vec<u16> = (0..8)
            .map(|i| partition_of("bucket", &format!("key{i}"), 4).0)
            .collect();
        assert_eq!(pinned, PINNED);
        assert_ne!(partition_of("ab", "c", 1024), partition_of("a", "bc", 1024));
        let mut counts = [0u32; 4];
        for i in 0..100_000 {
            counts[partition_of("bucket", &testkit::key40(i), 4).0 as usize] += 1;
        }
        for c in counts {
            assert!((24_500..25_500).contains(&c), "{counts:?}");
        }
    }

    const PINNED: [u16; 8] = [0, 1, 0, 3, 2, 0, 2, 1];

    #[test]
    fn typical_object_record_fits_the_budget() {
        // Encodes the typical 2+1 object with a 40-byte key as a log frame and checks the frame,
        // padding included, is at most 512 bytes (the issue's budget), then decodes it back.
        let object = testkit::typical_object("photos-bucket", &testkit::key40(42), 42);
        let txn = Txn {
            ops: vec![Op::PutObject(object)],
        };
        let mut buf = Vec::new();
        let len = frame::encode_frame(&mut buf, 1, &txn).unwrap();
        println!("typical 2+1 object frame: {len} bytes");
        assert!(len <= 512, "{len} bytes");
        let view = frame::check_frame(&buf, 0).unwrap();
        let decoded =
            Record::decode(view.version, &buf[view.payload_start..view.payload_end]).unwrap();
        assert_eq!(decoded.into_current(), txn);
    }
}
