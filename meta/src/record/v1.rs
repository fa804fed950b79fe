//! Record format version 1. FROZEN: once released, nothing in this module may change shape.
//!
//! A frame whose header says `version = 1` carries an rkyv archive of [`Txn`]: a list of [`Op`]s
//! applied atomically. To change a record, add a `v2` module with its own `Txn`, give frames a new
//! version number, and convert `v1` values upward when they are read. Adding a variant to [`Op`]
//! here would change the archived size of the enum and break every existing log, so don't.

use rkyv::{Archive, Deserialize, Serialize};

/// The opaque identifier of a shard at a site: the backend object name is derived from it, never
/// from the client's key (see DESIGN.md, "Backend keys are opaque ids").
pub type BackendId = [u8; 16];

/// A site number as configured (index into the configured site list).
pub type SiteId = u16;

/// How a bucket stores its objects.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Reed-Solomon: `k` data shards plus `m` parity shards, chunks of `chunk_size` bytes.
    Ec { k: u8, m: u8, chunk_size: u32 },
    /// `n` full copies.
    Replica { n: u8 },
    /// Objects smaller than `threshold` bytes are replicated `n` times, larger ones use `ec`.
    Hybrid {
        threshold: u64,
        n: u8,
        k: u8,
        m: u8,
        chunk_size: u32,
    },
}

/// A bucket. Bucket records are global: the engine writes them to every core's log.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub policy: Policy,
    pub owner: String,
}

/// Whether a shard is known durable at its site.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardState {
    /// The site acknowledged the shard.
    Durable,
    /// The shard was still in flight (or failed) when the record was written; repair finishes it.
    Pending,
}

/// Where one shard of an object (or of one multipart part) lives. The shard index is the
/// position in the enclosing list: data shards first, then parity.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub site: SiteId,
    pub backend_id: BackendId,
    pub state: ShardState,
}

/// A checksum algorithm a client can ask for (`x-amz-checksum-*`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

/// A full-object (or composite) checksum as the client will get it back.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    /// Raw digest bytes (not base64).
    pub value: Vec<u8>,
}

/// An S3 `ETag`: the MD5 of the object, or for multipart objects the MD5 of the concatenated part
/// MD5s followed by `-parts`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ETag {
    pub md5: [u8; 16],
    /// 0 for a single-request object; the part count for a multipart object.
    pub parts: u16,
}

/// The stored `Content-*`, `Cache-Control` and `Expires` headers, verbatim.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
}

/// One `x-amz-meta-*` pair (name without the prefix, lower case).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MetaPair {
    pub name: String,
    pub value: String,
}

/// One part of a completed multipart object.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ObjectPart {
    pub number: u32,
    pub size: u64,
    pub etag: [u8; 16],
    pub shards: Vec<Shard>,
}

/// The current version of an object.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub bucket: String,
    pub key: String,
    pub version_id: u64,
    pub size: u64,
    pub etag: ETag,
    pub headers: ContentHeaders,
    /// Sorted by name.
    pub user_metadata: Vec<MetaPair>,
    pub checksums: Vec<Checksum>,
    /// Last-modified time, milliseconds since the Unix epoch.
    pub mtime_ms: u64,
    /// The resolved policy used for this object (never `Hybrid`).
    pub policy: Policy,
    pub chunk_size: u32,
    /// Shards of a single-request object; empty for a multipart object.
    pub shards: Vec<Shard>,
    /// Parts of a multipart object in part-number order; empty otherwise.
    pub parts: Vec<ObjectPart>,
}

/// The deletion of an object's current version.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub bucket: String,
    pub key: String,
    /// The version that was deleted (0 when unknown).
    pub version_id: u64,
    pub mtime_ms: u64,
}

/// A multipart upload in progress.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    pub headers: ContentHeaders,
    pub user_metadata: Vec<MetaPair>,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    pub policy: Policy,
    pub owner: String,
}

/// One uploaded part of a multipart upload (the latest upload of that part number wins).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UploadPart {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub number: u32,
    pub size: u64,
    pub etag: [u8; 16],
    pub checksum: Option<Checksum>,
    pub mtime_ms: u64,
    pub chunk_size: u32,
    pub shards: Vec<Shard>,
}

/// Which background queue an entry belongs to.
#[derive(
    Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum QueueKind {
    /// A shard to delete at its site (overwritten, deleted or aborted data).
    Purge,
    /// A shard to re-create (pending or lost).
    Repair,
}

/// One pending background job on one shard.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub kind: QueueKind,
    /// Unique per core and kind; allocated by the store.
    pub id: u64,
    pub site: SiteId,
    pub backend_id: BackendId,
    pub bucket: String,
    pub key: String,
    pub version_id: u64,
    pub shard_index: u16,
    pub enqueued_ms: u64,
    pub attempts: u32,
}

/// One change to the metadata state.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    PutBucket(Bucket),
    DeleteBucket {
        name: String,
    },
    PutObject(Object),
    DeleteObject(Tombstone),
    PutUpload(Upload),
    PutPart(UploadPart),
    /// Completion or abort: removes the upload and all of its parts.
    DeleteUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    PutQueue(QueueEntry),
    DeleteQueue {
        kind: QueueKind,
        id: u64,
    },
    /// Last frame of a snapshot file: how many frames precede it, the log sequence number the
    /// snapshot covers and the largest queue id ever allocated. Never appears in a log file.
    SnapshotEnd {
        frames: u64,
        lsn: u64,
        queue_id_max: u64,
    },
}

/// The payload of one version-1 frame: operations that are applied together or not at all.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub ops: Vec<Op>,
}
