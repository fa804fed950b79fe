//! The in-memory state of one core: buckets, objects, uploads and queues, ordered for listing.
//!
//! ```text
//!  replayed or committed Op ──apply──► Index ──► object() / list() / stats() / snapshot ops
//! ```
//! `apply` is total and deterministic: replaying the same ops always yields the same state, and
//! an op that refers to something missing (a part of an unknown upload) is ignored. Pure.

use std::collections::{BTreeMap, HashMap};

use crate::listing::{list_page, ListPage, ListQuery, Listed};
use crate::record::{Bucket, Object, Op, QueueEntry, QueueKind, Upload, UploadPart};

/// A multipart upload and the parts uploaded so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    pub upload: Upload,
    pub parts: BTreeMap<u32, UploadPart>,
}

/// Object count and total bytes of one bucket on one core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketStats {
    pub objects: u64,
    pub bytes: u64,
}

impl std::ops::Add for BucketStats {
    type Output = BucketStats;
    fn add(self, other: BucketStats) -> BucketStats {
        BucketStats {
            objects: self.objects + other.objects,
            bytes: self.bytes + other.bytes,
        }
    }
}

/// Objects are held twice over: a hash map with the full records for point lookups (one probe
/// instead of ~20 key comparisons that each chase a heap pointer through a 1M-entry B-tree),
/// and an ordered map with just what a listing shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct BucketState {
    bucket: Option<Bucket>,
    /// `foldhash` with a random per-process seed: several times faster than `SipHash` on 40-byte
    /// keys, and keys chosen by clients cannot be precomputed to collide.
    objects: HashMap<Box<[u8]>, Object, foldhash::fast::RandomState>,
    ordered: BTreeMap<Box<[u8]>, Listed>,
    uploads: BTreeMap<(Box<[u8]>, String), UploadState>,
    bytes: u64,
}

impl BucketState {
    fn is_empty(&self) -> bool {
        self.bucket.is_none() && self.objects.is_empty() && self.uploads.is_empty()
    }
}

/// One core's metadata state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Index {
    buckets: BTreeMap<String, BucketState>,
    queues: BTreeMap<(QueueKind, u64), QueueEntry>,
    queue_id_max: u64,
    /// Entries in `queues` per kind ([`QueueKind`] as index).
    queue_lens: [usize; 2],
}

impl Index {
    #[must_use]
    pub fn new() -> Index {
        Index::default()
    }

    /// The state of `name`, created if missing; allocates the name only when creating.
    fn bucket_state(&mut self, name: &str) -> &mut BucketState {
        if !self.buckets.contains_key(name) {
            self.buckets.insert(name.to_owned(), BucketState::default());
        }
        // Present: inserted just above if it was missing.
        self.buckets.get_mut(name).expect("bucket state exists")
    }

    /// Applies one op. Never fails: see the module docs.
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::PutBucket(bucket) => {
                let state = self.buckets.entry(bucket.name.clone()).or_default();
                state.bucket = Some(bucket);
            }
            Op::DeleteBucket { name } => {
                if let Some(state) = self.buckets.get_mut(&name) {
                    state.bucket = None;
                    if state.is_empty() {
                        self.buckets.remove(&name);
                    }
                }
            }
            Op::PutObject(object) => {
                let state = self.bucket_state(&object.bucket);
                state.bytes += object.size;
                let key: Box<[u8]> = object.key.as_bytes().into();
                state.ordered.insert(key.clone(), Listed::of(&object));
                if let Some(old) = state.objects.insert(key, object) {
                    state.bytes -= old.size;
                }
                debug_assert_eq!(state.objects.len(), state.ordered.len());
            }
            Op::DeleteObject(tomb) => {
                // Version 0 deletes whatever is current; a named version only deletes itself,
                // so a delete racing an overwrite cannot remove the newer version.
                let Some(state) = self.buckets.get_mut(&tomb.bucket) else {
                    return;
                };
                let key = tomb.key.as_bytes();
                let matches = state
                    .objects
                    .get(key)
                    .is_some_and(|o| tomb.version_id == 0 || o.version_id == tomb.version_id);
                if matches {
                    if let Some(old) = state.objects.remove(key) {
                        state.bytes -= old.size;
                    }
                    state.ordered.remove(key);
                    if state.is_empty() {
                        self.buckets.remove(&tomb.bucket);
                    }
                }
            }
            Op::PutUpload(upload) => {
                let state = self.bucket_state(&upload.bucket);
                let id = (upload.key.as_bytes().into(), upload.upload_id.clone());
                state.uploads.insert(
                    id,
                    UploadState {
                        upload,
                        parts: BTreeMap::new(),
                    },
                );
            }
            Op::PutPart(part) => {
                let Some(state) = self.buckets.get_mut(&part.bucket) else {
                    return;
                };
                let id = (part.key.as_bytes().into(), part.upload_id.clone());
                if let Some(upload) = state.uploads.get_mut(&id) {
                    upload.parts.insert(part.number, part);
                }
            }
            Op::DeleteUpload {
                bucket,
                key,
                upload_id,
            } => {
                if let Some(state) = self.buckets.get_mut(&bucket) {
                    state.uploads.remove(&(key.as_bytes().into(), upload_id));
                    if state.is_empty() {
                        self.buckets.remove(&bucket);
                    }
                }
            }
            Op::PutQueue(entry) => {
                self.queue_id_max = self.queue_id_max.max(entry.id);
                let kind = entry.kind;
                if self.queues.insert((kind, entry.id), entry).is_none() {
                    self.queue_lens[kind as usize] += 1;
                }
            }
            Op::DeleteQueue { kind, id } => {
                if self.queues.remove(&(kind, id)).is_some() {
                    self.queue_lens[kind as usize] -= 1;
                }
            }
            Op::SnapshotEnd { queue_id_max, .. } => {
                self.queue_id_max = self.queue_id_max.max(queue_id_max);
            }
        }
    }

    /// The bucket record, if this core has it.
    #[must_use]
    pub fn bucket(&self, name: &str) -> Option<&Bucket> {
        self.buckets.get(name).and_then(|s| s.bucket.as_ref())
    }

    /// All bucket records in name order.
    pub fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.buckets.values().filter_map(|s| s.bucket.as_ref())
    }

    /// The current version of an object.
    #[must_use]
    pub fn object(&self, bucket: &str, key: &str) -> Option<&Object> {
        self.buckets.get(bucket)?.objects.get(key.as_bytes())
    }

    /// A multipart upload and its parts.
    #[must_use]
    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Option<&UploadState> {
        // The map key owns its parts; building it costs two small allocations per lookup,
        // which is fine for the rate of multipart calls.
        let id = (Box::<[u8]>::from(key.as_bytes()), upload_id.to_owned());
        self.buckets.get(bucket)?.uploads.get(&id)
    }

    /// Uploads of a bucket in (key, upload id) order, starting strictly after `after`.
    pub fn uploads<'a>(
        &'a self,
        bucket: &str,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = &'a UploadState> + 'a {
        let after = after.map(|(k, u)| (Box::<[u8]>::from(k.as_bytes()), u.to_owned()));
        self.buckets
            .get(bucket)
            .into_iter()
            .flat_map(move |s| {
                let lower = match after.clone() {
                    Some(a) => std::ops::Bound::Excluded(a),
                    None => std::ops::Bound::Unbounded,
                };
                s.uploads.range((lower, std::ops::Bound::Unbounded))
            })
            .map(|(_, u)| u)
    }

    /// One page of this core's listing (see [`crate::merge_pages`] for combining cores).
    #[must_use]
    pub fn list(&self, bucket: &str, query: &ListQuery) -> ListPage {
        match self.buckets.get(bucket) {
            Some(state) => list_page(&state.ordered, query),
            None => ListPage::default(),
        }
    }

    /// Object count and bytes of a bucket on this core.
    #[must_use]
    pub fn stats(&self, bucket: &str) -> BucketStats {
        self.buckets
            .get(bucket)
            .map(|s| BucketStats {
                objects: s.objects.len() as u64,
                bytes: s.bytes,
            })
            .unwrap_or_default()
    }

    /// Objects in (bucket, key) order, starting strictly after `after` (from the first object
    /// when `None`): lets a background walk over every object proceed in bounded pages that
    /// resume where the previous one stopped, whatever was committed in between.
    pub fn objects_after<'a>(
        &'a self,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = &'a Object> + 'a {
        let (first_bucket, after_key): (String, Option<Box<[u8]>>) = match after {
            Some((bucket, key)) => (bucket.to_owned(), Some(key.as_bytes().into())),
            None => (String::new(), None),
        };
        self.buckets
            .range(first_bucket.clone()..)
            .flat_map(move |(name, state)| {
                let lower = match &after_key {
                    Some(key) if *name == first_bucket => std::ops::Bound::Excluded(key.clone()),
                    _ => std::ops::Bound::Unbounded,
                };
                state
                    .ordered
                    .range((lower, std::ops::Bound::Unbounded))
                    .filter_map(move |(key, _)| state.objects.get(key))
            })
    }

    /// Queue entries of one kind in id order, strictly after `after_id`.
    pub fn queue(&self, kind: QueueKind, after_id: u64) -> impl Iterator<Item = &QueueEntry> {
        self.queues
            .range((kind, after_id.saturating_add(1))..=(kind, u64::MAX))
            .map(|(_, e)| e)
    }

    /// Entries queued of one kind.
    #[must_use]
    pub fn queue_len(&self, kind: QueueKind) -> usize {
        self.queue_lens[kind as usize]
    }

    /// The largest queue id ever applied (ids are never reused).
    #[must_use]
    pub fn queue_id_max(&self) -> u64 {
        self.queue_id_max
    }

    /// Number of objects on this core across buckets.
    #[must_use]
    pub fn object_count(&self) -> u64 {
        self.buckets.values().map(|s| s.objects.len() as u64).sum()
    }

    /// The ops that rebuild this state from nothing, in a deterministic order: what a snapshot
    /// holds. Calls `emit` once per op.
    pub fn for_each_op(&self, mut emit: impl FnMut(Op)) {
        for state in self.buckets.values() {
            if let Some(bucket) = &state.bucket {
                emit(Op::PutBucket(bucket.clone()));
            }
            // In key order, so snapshots of equal states are equal bytes.
            for key in state.ordered.keys() {
                if let Some(object) = state.objects.get(key) {
                    emit(Op::PutObject(object.clone()));
                }
            }
            for upload in state.uploads.values() {
                emit(Op::PutUpload(upload.upload.clone()));
                for part in upload.parts.values() {
                    emit(Op::PutPart(part.clone()));
                }
            }
        }
        for entry in self.queues.values() {
            emit(Op::PutQueue(entry.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{QueueEntry, Tombstone, Upload, UploadPart};
    use crate::testkit::{bucket, typical_object};

    fn tomb(key: &str, version_id: u64) -> Op {
        Op::DeleteObject(Tombstone {
            bucket: "b".to_owned(),
            key: key.to_owned(),
            version_id,
            mtime_ms: 5,
        })
    }

    #[test]
    fn objects_counts_and_versioned_deletes() {
        // Puts, overwrites and deletes objects and checks lookups and per-bucket counts, and
        // that a delete naming an old version leaves the newer one alone.
        let mut index = Index::new();
        index.apply(Op::PutBucket(bucket("b")));
        index.apply(Op::PutObject(typical_object("b", "k1", 1)));
        index.apply(Op::PutObject(typical_object("b", "k2", 2)));
        index.apply(Op::PutObject(typical_object("b", "k1", 3)));
        let stats = index.stats("b");
        assert_eq!(stats.objects, 2);
        assert_eq!(stats.bytes, 1_000_003 + 1_000_002);
        assert_eq!(index.object("b", "k1").map(|o| o.version_id), Some(3));
        index.apply(tomb("k1", 1));
        assert!(
            index.object("b", "k1").is_some(),
            "stale version delete is ignored"
        );
        index.apply(tomb("k1", 3));
        assert!(index.object("b", "k1").is_none());
        index.apply(tomb("k2", 0));
        assert_eq!(index.stats("b"), BucketStats::default());
        assert!(index.bucket("b").is_some());
        index.apply(Op::DeleteBucket {
            name: "b".to_owned(),
        });
        assert!(index.bucket("b").is_none());
        assert_eq!(index, Index::new(), "an emptied index equals a new one");
    }

    #[test]
    fn objects_walk_in_order_and_resume() {
        // Walks objects of two buckets in (bucket, key) order, resumes strictly after a cursor
        // (also one naming a key deleted since, or a bucket that sorts between), and ends.
        let mut index = Index::new();
        for (bucket_name, key) in [("b", "k2"), ("a", "z"), ("b", "k1"), ("a", "a"), ("c", "x")] {
            index.apply(Op::PutObject(typical_object(bucket_name, key, 1)));
        }
        let walk = |after: Option<(&str, &str)>| -> Vec<(String, String)> {
            index
                .objects_after(after)
                .map(|o| (o.bucket.clone(), o.key.clone()))
                .collect()
        };
        let all = walk(None);
        let names: Vec<(&str, &str)> = all.iter().map(|(b, k)| (b.as_str(), k.as_str())).collect();
        assert_eq!(
            names,
            [("a", "a"), ("a", "z"), ("b", "k1"), ("b", "k2"), ("c", "x")]
        );
        assert_eq!(walk(Some(("a", "z"))), all[2..]);
        assert_eq!(
            walk(Some(("b", "k0"))),
            all[2..],
            "a cursor on a missing key"
        );
        assert_eq!(walk(Some(("bb", ""))), all[4..], "a cursor between buckets");
        assert!(walk(Some(("c", "x"))).is_empty());
    }

    #[test]
    fn uploads_parts_and_queues() {
        // Records an upload with two parts (one re-uploaded), ignores a part of an unknown
        // upload, removes the upload, and keeps queue ids ordered and never reused.
        let mut index = Index::new();
        let upload = Upload {
            bucket: "b".to_owned(),
            key: "big".to_owned(),
            upload_id: "u1".to_owned(),
            initiated_ms: 1,
            headers: crate::record::ContentHeaders::default(),
            user_metadata: Vec::new(),
            checksum_algorithm: None,
            policy: crate::record::Policy::Replica { n: 2 },
            owner: "o".to_owned(),
        };
        index.apply(Op::PutUpload(upload));
        let part = |number, size, upload_id: &str| {
            Op::PutPart(UploadPart {
                bucket: "b".to_owned(),
                key: "big".to_owned(),
                upload_id: upload_id.to_owned(),
                number,
                size,
                etag: [number as u8; 16],
                checksum: None,
                mtime_ms: 2,
                chunk_size: 1024,
                shards: Vec::new(),
            })
        };
        index.apply(part(1, 10, "u1"));
        index.apply(part(2, 20, "u1"));
        index.apply(part(1, 11, "u1"));
        index.apply(part(1, 99, "nope"));
        let state = index.upload("b", "big", "u1").unwrap();
        assert_eq!(state.parts.len(), 2);
        assert_eq!(state.parts[&1].size, 11);
        assert_eq!(index.uploads("b", None).count(), 1);
        index.apply(Op::DeleteUpload {
            bucket: "b".to_owned(),
            key: "big".to_owned(),
            upload_id: "u1".to_owned(),
        });
        assert!(index.upload("b", "big", "u1").is_none());

        for id in [5, 3, 9] {
            index.apply(Op::PutQueue(QueueEntry {
                kind: QueueKind::Purge,
                id,
                site: 1,
                backend_id: [0; 16],
                bucket: "b".to_owned(),
                key: "k".to_owned(),
                version_id: 1,
                shard_index: 0,
                enqueued_ms: 0,
                attempts: 0,
            }));
        }
        index.apply(Op::DeleteQueue {
            kind: QueueKind::Purge,
            id: 9,
        });
        let ids: Vec<u64> = index.queue(QueueKind::Purge, 3).map(|e| e.id).collect();
        assert_eq!(ids, [5]);
        assert_eq!(index.queue(QueueKind::Repair, 0).count(), 0);
        assert_eq!(index.queue_id_max(), 9);
        // Counted per kind; a replayed put or delete of the same id counts once.
        assert_eq!(index.queue_len(QueueKind::Purge), 2);
        assert_eq!(index.queue_len(QueueKind::Repair), 0);
        index.apply(Op::DeleteQueue {
            kind: QueueKind::Purge,
            id: 9,
        });
        let again = index.queue(QueueKind::Purge, 0).next().cloned().unwrap();
        index.apply(Op::PutQueue(again));
        assert_eq!(index.queue_len(QueueKind::Purge), 2);
    }
}
