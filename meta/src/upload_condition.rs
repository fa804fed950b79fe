//! The condition a multipart commit depends on: that its upload is still in progress (and, for
//! a completion, that the parts it validated are still the current ones).
//!
//! ```text
//!  CompleteMultipartUpload: read upload ─► check parts, write part index ─► commit IF
//!      upload in progress AND each listed part still has the shards that were checked
//!      AND (with If-Match / If-None-Match) the key is still at the version checked
//!  AbortMultipartUpload / reaper: commit delete IF upload in progress
//!  UploadPart: commit part IF upload in progress
//! ```
//!
//! The store evaluates a condition on its owning core, after every earlier commit touching the
//! same upload is durable, and encodes the frame in the same step (no await in between), so two
//! racing commits cannot both see the upload (see `MetaStore::commit_if_upload`). This module
//! is only the pure check against an [`Index`]; it writes nothing, and a failed condition
//! writes no frame (no record type is involved: the log format is unchanged).

use crate::index::{Index, UploadState};
use crate::record::BackendId;

/// The upload a conditional commit requires, and the parts it must still have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadCondition {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    /// `(part number, backend id of its first shard)` of each part that must be unchanged
    /// (`None` for a part stored without shards). Every stored part gets fresh backend ids, so
    /// a re-uploaded part never matches the one it replaced.
    pub parts: Vec<(u32, Option<BackendId>)>,
    /// For a commit that writes the key's object record (a completion): what the key must
    /// hold. The store then also answers the record the commit replaces, so that the caller
    /// purges exactly that one. `None` for commits that leave the object alone.
    pub object: Option<ObjectExpect>,
}

/// What a completion requires of the object record it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectExpect {
    /// Whatever the key holds.
    Any,
    /// The key is at this version (`None`: it holds no object).
    At(Option<u64>),
}

/// Why a condition does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMismatch {
    /// The upload is not in progress (never was, completed, or aborted).
    NoSuchUpload,
    /// The upload is in progress but this part number is missing or was re-uploaded.
    PartChanged(u32),
    /// The key is no longer at the version [`ObjectExpect::At`] names; this is the current
    /// one (`None`: no object).
    ObjectChanged(Option<u64>),
}

impl UploadCondition {
    /// A condition on the upload alone (abort, UploadPart).
    #[must_use]
    pub fn exists(bucket: &str, key: &str, upload_id: &str) -> Self {
        UploadCondition {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            parts: Vec::new(),
            object: None,
        }
    }

    /// The identity of a part as the condition compares it.
    #[must_use]
    pub fn part_identity(part: &crate::record::UploadPart) -> (u32, Option<BackendId>) {
        (part.number, part.shards.first().map(|s| s.backend_id))
    }

    /// Checks the condition against `index`; on success, the upload's current state.
    pub fn check<'i>(&self, index: &'i Index) -> Result<&'i UploadState, UploadMismatch> {
        let state = index
            .upload(&self.bucket, &self.key, &self.upload_id)
            .ok_or(UploadMismatch::NoSuchUpload)?;
        for &(number, first) in &self.parts {
            let current = state.parts.get(&number).map(Self::part_identity);
            if current != Some((number, first)) {
                return Err(UploadMismatch::PartChanged(number));
            }
        }
        if let Some(ObjectExpect::At(expected)) = self.object {
            let current = index
                .object(&self.bucket, &self.key)
                .map(|object| object.version_id);
            if current != expected {
                return Err(UploadMismatch::ObjectChanged(current));
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ContentHeaders, Op, Policy, Shard, ShardState, Upload, UploadPart};
    use crate::testkit;

    fn upload() -> Upload {
        Upload {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            upload_id: "u1".to_owned(),
            initiated_ms: 1,
            headers: ContentHeaders::default(),
            user_metadata: Vec::new(),
            checksum_algorithm: None,
            policy: Policy::Replica { n: 1 },
            owner: "o".to_owned(),
        }
    }

    fn part(number: u32, id: u8) -> UploadPart {
        UploadPart {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            upload_id: "u1".to_owned(),
            number,
            size: 5,
            etag: [id; 16],
            checksum: None,
            mtime_ms: 1,
            chunk_size: 5,
            shards: vec![Shard {
                site: 0,
                backend_id: [id; 16],
                state: ShardState::Durable,
            }],
        }
    }

    /// The condition holds while the upload exists with the named parts; it fails with
    /// `NoSuchUpload` once the upload is deleted (or for another upload id), and with
    /// `PartChanged` when a named part was re-uploaded or never uploaded.
    #[test]
    fn condition_follows_the_index() {
        let mut index = Index::new();
        index.apply(Op::PutBucket(testkit::bucket("b")));
        let exists = UploadCondition::exists("b", "k", "u1");
        assert_eq!(
            exists.check(&index).unwrap_err(),
            UploadMismatch::NoSuchUpload
        );
        index.apply(Op::PutUpload(upload()));
        index.apply(Op::PutPart(part(1, 7)));
        index.apply(Op::PutPart(part(2, 8)));
        assert_eq!(exists.check(&index).unwrap().parts.len(), 2);
        let other = UploadCondition::exists("b", "k", "u2");
        assert_eq!(
            other.check(&index).unwrap_err(),
            UploadMismatch::NoSuchUpload
        );

        let complete = UploadCondition {
            parts: vec![
                UploadCondition::part_identity(&part(1, 7)),
                UploadCondition::part_identity(&part(2, 8)),
            ],
            ..exists.clone()
        };
        assert!(complete.check(&index).is_ok());
        index.apply(Op::PutPart(part(2, 9)));
        assert_eq!(
            complete.check(&index).unwrap_err(),
            UploadMismatch::PartChanged(2)
        );
        let missing = UploadCondition {
            parts: vec![(3, Some([3; 16]))],
            ..exists.clone()
        };
        assert_eq!(
            missing.check(&index).unwrap_err(),
            UploadMismatch::PartChanged(3)
        );

        let fresh = UploadCondition {
            object: Some(ObjectExpect::At(None)),
            ..exists.clone()
        };
        assert!(fresh.check(&index).is_ok());
        index.apply(Op::PutObject(testkit::typical_object("b", "k", 41)));
        assert_eq!(
            fresh.check(&index).unwrap_err(),
            UploadMismatch::ObjectChanged(Some(41))
        );
        let over_41 = UploadCondition {
            object: Some(ObjectExpect::At(Some(41))),
            ..exists.clone()
        };
        assert!(over_41.check(&index).is_ok());
        let any = UploadCondition {
            object: Some(ObjectExpect::Any),
            ..exists.clone()
        };
        assert!(any.check(&index).is_ok());

        index.apply(Op::DeleteUpload {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            upload_id: "u1".to_owned(),
        });
        assert_eq!(
            exists.check(&index).unwrap_err(),
            UploadMismatch::NoSuchUpload
        );
    }
}
