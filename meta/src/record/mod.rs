//! Versioned records: what one log frame carries.
//!
//! The frame header names the record format version; each version has its own frozen module
//! (`v1`, later `v2`, ...). The rest of the crate works with the current version's types, which
//! are re-exported here; older versions are converted upward by [`Record::into_current`].

pub mod v1;

pub use v1::{
    BackendId, Bucket, Checksum, ChecksumAlgorithm, ContentHeaders, ETag, MetaPair, Object,
    ObjectPart, Op, Policy, QueueEntry, QueueKind, Shard, ShardState, SiteId, Tombstone, Txn,
    Upload, UploadPart,
};

use crate::MetaError;

/// The record version this build writes.
pub const RECORD_VERSION_CURRENT: u16 = 1;

/// A decoded frame payload of any known version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    V1(v1::Txn),
}

impl Record {
    /// The version number written in the frame header for this record.
    #[must_use]
    pub fn version(&self) -> u16 {
        match self {
            Record::V1(_) => 1,
        }
    }

    /// Converts to the current version's transaction.
    #[must_use]
    pub fn into_current(self) -> Txn {
        match self {
            Record::V1(txn) => txn,
        }
    }

    /// Decodes a payload whose checksums were already verified. The payload must start at a
    /// 16-byte-aligned address (frames guarantee it) and be exactly the archive's length.
    pub fn decode(version: u16, payload: &[u8]) -> Result<Record, MetaError> {
        if payload.as_ptr().align_offset(16) != 0 {
            // A caller's buffer that is not 16-byte aligned (a plain `Vec<u8>` read from
            // storage) costs one copy; frames inside an aligned buffer never take this path.
            let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
            aligned.extend_from_slice(payload);
            return Record::decode(version, &aligned);
        }
        match version {
            1 => {
                let archived = rkyv::access::<v1::ArchivedTxn, rkyv::rancor::Error>(payload)
                    .map_err(|e| MetaError::Decode {
                        version,
                        message: e.to_string(),
                    })?;
                let txn =
                    rkyv::deserialize::<v1::Txn, rkyv::rancor::Error>(archived).map_err(|e| {
                        MetaError::Decode {
                            version,
                            message: e.to_string(),
                        }
                    })?;
                Ok(Record::V1(txn))
            }
            _ => Err(MetaError::Decode {
                version,
                message: "unknown record version".to_owned(),
            }),
        }
    }
}

/// Serializes `txn` (current version) by appending its archive to `out`. The archive's position
/// inside `out` must be 16-byte aligned for the alignment padding rkyv computes to hold when the
/// payload is read back from a 16-byte-aligned buffer. On error `out` may hold a partial archive
/// after its original length; the caller truncates.
pub(crate) fn encode_current(txn: &Txn, out: &mut Vec<u8>) -> Result<(), MetaError> {
    assert!(out.len() % 16 == 0, "payload must start 16-byte aligned");
    rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(txn, out)
        .map(|_| ())
        .map_err(|e| MetaError::Encode(e.to_string()))
}
