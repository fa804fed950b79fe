//! The scrub: collects orphaned shards — shards at a site that no metadata references, left
//! by a gateway killed between writing shards and committing the record, by a failed
//! CompleteMultipartUpload, or by `tessera recover` skipping older versions.
//!
//! ```text
//!  every pass (each core): every site: list "" page by page
//!     └─ batch of keys ─► read manifest footers ─► owned by this core? (partition_of)
//!          └─ verdict against this core's index (no await between lookup and verdict):
//!               referenced by the object, one of its parts, an upload's part,
//!               or (part index) the object's current version  ─► keep, forget
//!               bucket unknown to the metadata, and not deleted
//!               here after the shard was written (deleted_buckets) ─► keep, warn once
//!               else written < grace ago                       ─► keep
//!               else first seen unreferenced ≥ grace ago       ─► delete at the site
//!               else                                           ─► remember when first seen
//! ```
//!
//! A shard of a bucket the metadata does not know is never deleted: that is how every shard
//! looks to a gateway started on an empty data directory before `tessera recover` ran, and
//! deleting them would turn a lost disk into lost data. The exception is a bucket this data
//! directory deleted after the shard was written ([`super::deleted_buckets`]): its leftovers
//! are judged like any unreferenced shard.
//!
//! Two conditions guard a young write: the manifest's write time and the first sighting must
//! both be a grace period old. The second covers a PUT whose body streamed for longer than the
//! grace period: its shards become visible only at `finish`, just before the record commits.
//! Each core decides only for the keys it owns, against its own index, so a verdict never
//! crosses cores; the price is that every core reads every manifest (cheap: two small reads
//! per shard per pass, at a low rate).
//!
//! The same pass restores missing *part-index copies* (the footer-only shards
//! CompleteMultipartUpload writes to every site so that `tessera recover` can rebuild a
//! multipart object). No metadata records which sites hold one (the record format is frozen,
//! and a copy lost later would not be recorded anyway), so they are found by looking:
//!
//! ```text
//!  one site listed to its end, every manifest read (else: no conclusion for it this pass)
//!     └─ version ids of the part-index copies seen there for this core's current objects
//!  this core's multipart objects (Index::objects_after pages) without a copy at that site
//!     └─ also missing at the previous complete listing? ─► write a copy, built from the
//!        record (recover::part_index_footer: the bytes Complete wrote but for the site byte)
//!        else ─► remember: a Complete may have written it after the listing passed its key
//! ```
//!
//! A failed write stops the writes to that site for the pass. Time to full redundancy: two
//! complete listings of the site after it returns (two pass intervals at most, see
//! [`pass_interval`]).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::join_all;
use tessera_meta::{partition_of, BackendId, Index, SiteId};

use super::manifest::Manifest;
use super::Engine;
use crate::mesh::MetaClient;
use crate::metrics::{CoreMetrics, Slot};
use crate::recover::{backend_id_of, read_manifest};

/// Default grace period (config `engine.orphan_grace_ms`): one hour, far longer than any
/// single PUT or part upload takes to commit after its shards finish.
pub const ORPHAN_GRACE_MS_DEFAULT: u64 = 3_600_000;
/// Manifests read per step; a step is followed by [`SCRUB_STEP_PAUSE`], which bounds the
/// scrub to a small share of a core and of each site's request rate.
pub const SCRUB_BATCH_MAX: usize = 16;
/// Pause after each step.
pub const SCRUB_STEP_PAUSE: Duration = Duration::from_millis(20);
/// Longest pause between passes.
pub const SCRUB_PASS_INTERVAL_MAX: Duration = Duration::from_secs(600);
/// Shortest pause between passes.
pub const SCRUB_PASS_INTERVAL_MIN: Duration = Duration::from_millis(200);
/// Unreferenced shards remembered between passes (~40 bytes each, so ~2.6 MiB per core at
/// most). Beyond it new sightings are not remembered; they are collected in later passes.
pub const SCRUB_SUSPECTS_MAX: usize = 65_536;
/// Part-index copies a site listing may record for one core (8 bytes each). A core with more
/// multipart objects than this skips the part-index check of that site, and says so.
pub const PART_INDEX_SEEN_MAX: usize = 1 << 20;
/// Multipart objects examined per page when looking for missing part-index copies.
pub const PART_INDEX_PAGE_OBJECTS: usize = 1024;

/// What the scrub does with one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Metadata references it: keep.
    Referenced,
    /// Unreferenced, but written less than the grace period ago: keep for now.
    Young,
    /// Unreferenced and old enough: a candidate for deletion.
    Orphan,
    /// Its bucket is unknown to the metadata (and was not deleted here after the shard was
    /// written): kept, because this is what every shard looks like to a gateway started on
    /// an empty data directory before `tessera recover` ran.
    UnknownBucket,
}

/// Whether shard `backend_id` (with `manifest`) is referenced by this core's `index`;
/// `bucket_deleted_ms` is when this data directory last deleted the shard's bucket, if ever.
#[must_use]
pub fn verdict(
    index: &Index,
    manifest: &Manifest,
    backend_id: &BackendId,
    now_ms: u64,
    grace_ms: u64,
    bucket_deleted_ms: Option<u64>,
) -> Verdict {
    let (bucket, key) = (manifest.bucket.as_str(), manifest.key.as_str());
    let holds = |shards: &[tessera_meta::Shard]| shards.iter().any(|s| s.backend_id == *backend_id);
    let by_object = index.object(bucket, key).is_some_and(|object| {
        if manifest.index.is_some() {
            object.version_id == manifest.version_id && !object.parts.is_empty()
        } else {
            holds(&object.shards) || object.parts.iter().any(|p| holds(&p.shards))
        }
    });
    let by_upload = || {
        index
            .uploads(bucket, Some((key, "")))
            .take_while(|u| u.upload.key == key)
            .any(|u| u.parts.values().any(|p| holds(&p.shards)))
    };
    let left_by_a_deletion = bucket_deleted_ms.is_some_and(|deleted| manifest.mtime_ms <= deleted);
    if index.bucket(bucket).is_none() && !left_by_a_deletion {
        Verdict::UnknownBucket
    } else if by_object || (manifest.part_number > 0 && by_upload()) {
        Verdict::Referenced
    } else if now_ms.saturating_sub(manifest.mtime_ms) < grace_ms {
        Verdict::Young
    } else {
        Verdict::Orphan
    }
}

/// The pause between passes for a grace period: a quarter of it, within bounds.
#[must_use]
pub fn pass_interval(grace_ms: u64) -> Duration {
    Duration::from_millis(grace_ms / 4).clamp(SCRUB_PASS_INTERVAL_MIN, SCRUB_PASS_INTERVAL_MAX)
}

/// One core's scrub state across passes.
#[derive(Debug, Default)]
pub struct Scrub {
    /// (site, id) → (first seen unreferenced, pass last seen).
    suspects: HashMap<(SiteId, BackendId), (u64, u64)>,
    pass: u64,
    /// Orphans deleted since start.
    pub deleted: u64,
    warned_unknown_bucket: bool,
    /// (site, object version) found without a part-index copy at the last complete listing of
    /// that site.
    index_suspects: HashSet<(SiteId, u64)>,
    /// Part-index copies written since start.
    pub index_copies_written: u64,
    /// Shards whose manifest footer did not read, over every site, in the last pass.
    pub unreadable_footers: u64,
    /// Where the record of deleted buckets is (`None`: no bucket counts as deleted).
    pub data_dir: Option<PathBuf>,
    /// The deleted buckets and when, as loaded at the start of this pass.
    deleted_buckets: HashMap<String, u64>,
}

/// What one listing of one site saw of this core's part-index copies.
#[derive(Debug, Default)]
pub struct Census {
    /// Version ids of the current objects that have a copy at the site.
    pub seen: HashSet<u64>,
    /// False when the listing or a manifest read failed, or `seen` overflowed: nothing may
    /// be concluded from what was not seen.
    pub complete: bool,
}

impl Census {
    fn new() -> Self {
        Census {
            seen: HashSet::new(),
            complete: true,
        }
    }

    /// Records a manifest the scrub judged: a part-index copy that the index references.
    pub fn note(&mut self, manifest: &Manifest, verdict: Verdict) {
        if manifest.index.is_some() && verdict == Verdict::Referenced {
            if self.seen.len() < PART_INDEX_SEEN_MAX {
                self.seen.insert(manifest.version_id);
            } else {
                self.complete = false;
            }
        }
    }
}

/// Whether a failed manifest read leaves the site's census complete: the key is simply not a
/// readable shard (damaged or foreign footer, deleted since the listing), as opposed to a
/// site that failed to answer.
#[must_use]
pub fn read_failure_is_conclusive(error: &crate::site::SiteError) -> bool {
    use crate::site::SiteError;
    matches!(
        error,
        SiteError::Protocol(_) | SiteError::NotFound | SiteError::InvalidRange
    )
}

/// Appends to `out` the (key, version) of up to `objects_max` multipart objects after
/// `after` whose version has no part-index copy in `seen`; returns the cursor of the last
/// object examined (`None` at the end).
pub fn missing_part_indexes<S: std::hash::BuildHasher>(
    index: &Index,
    after: Option<(&str, &str)>,
    objects_max: usize,
    seen: &HashSet<u64, S>,
    out: &mut Vec<(String, String, u64)>,
) -> Option<(String, String)> {
    let mut last = None;
    for object in index.objects_after(after).take(objects_max) {
        if !object.parts.is_empty() && !seen.contains(&object.version_id) {
            out.push((object.bucket.clone(), object.key.clone(), object.version_id));
        }
        last = Some((object.bucket.clone(), object.key.clone()));
    }
    let more = index
        .objects_after(last.as_ref().map(|(b, k)| (b.as_str(), k.as_str())))
        .next()
        .is_some();
    if last.is_some() && more {
        last
    } else {
        None
    }
}

/// Runs forever on this core (stopped with the runtime).
/// `data_dir` holds the record of deleted buckets ([`super::deleted_buckets`]); the pass's
/// counts go to `metrics` after each pass.
pub async fn run(
    engine: Rc<Engine>,
    meta: MetaClient,
    grace_ms: u64,
    data_dir: PathBuf,
    metrics: Slot,
) {
    let mut scrub = Scrub {
        data_dir: Some(data_dir),
        ..Scrub::default()
    };
    loop {
        monoio::time::sleep(pass_interval(grace_ms)).await;
        scrub.pass(&engine, &meta, grace_ms).await;
        CoreMetrics::set(&metrics.orphans_deleted, scrub.deleted);
        CoreMetrics::set(
            &metrics.part_index_copies_written,
            scrub.index_copies_written,
        );
        CoreMetrics::set(&metrics.unreadable_footers, scrub.unreadable_footers);
    }
}

impl Scrub {
    /// One pass over every site.
    pub async fn pass(&mut self, engine: &Engine, meta: &MetaClient, grace_ms: u64) {
        self.pass += 1;
        self.unreadable_footers = 0;
        // Blocking, like the dir sites' listing: one small file per pass.
        self.deleted_buckets = self
            .data_dir
            .as_deref()
            .map(|dir| super::deleted_buckets::load(dir, super::now_ms()))
            .unwrap_or_default();
        for (site_index, site) in engine.sites.iter().enumerate() {
            let Ok(site_id) = SiteId::try_from(site_index) else {
                break;
            };
            if let crate::site::Site::Dir(dir) = site {
                // Temporaries of writers killed mid-shard never become visible shards; the
                // same grace applies (a live writer keeps its temporary far shorter).
                // Blocking, like the dir site's listing: one directory read per pass.
                if let Ok(removed @ 1..) = dir.sweep_temporaries(Duration::from_millis(grace_ms)) {
                    crate::runtime::log(format_args!(
                        "scrub: removed {removed} stale temporaries at site {}",
                        dir.name()
                    ));
                }
            }
            let mut census = Census::new();
            // Shard-named keys whose footer does not read: kept (nothing says whose they
            // are), and reported.
            let mut unreadable = 0_u64;
            let mut continuation: Option<String> = None;
            loop {
                // A failing site is skipped for this pass; its suspects wait for the next.
                let Ok(page) = site.list("", continuation.as_deref()).await else {
                    census.complete = false;
                    break;
                };
                for batch in page.entries.chunks(SCRUB_BATCH_MAX) {
                    let read = join_all(batch.iter().map(|entry| async move {
                        let id = backend_id_of(&entry.key)?;
                        let manifest = read_manifest(site, &entry.key, entry.len).await;
                        Some((entry.key.as_str(), id, manifest))
                    }))
                    .await;
                    for (key, id, manifest) in read.into_iter().flatten() {
                        let manifest = match manifest {
                            Ok(manifest) => manifest,
                            Err(e) => {
                                census.complete &= read_failure_is_conclusive(&e);
                                if matches!(
                                    e,
                                    crate::site::SiteError::Protocol(_)
                                        | crate::site::SiteError::InvalidRange
                                ) {
                                    unreadable += 1;
                                }
                                continue;
                            }
                        };
                        if partition_of(&manifest.bucket, &manifest.key, meta.cores()) != meta.core
                        {
                            continue;
                        }
                        let found = self
                            .judge(site, site_id, key, id, &manifest, meta, grace_ms)
                            .await;
                        census.note(&manifest, found);
                    }
                    monoio::time::sleep(SCRUB_STEP_PAUSE).await;
                }
                match page.continuation {
                    Some(next) => continuation = Some(next),
                    None => break,
                }
            }
            self.unreadable_footers += unreadable;
            // Every core lists every site: one of them says so.
            if unreadable > 0 && meta.core.0 == 0 {
                crate::runtime::log(format_args!(
                    "scrub: {unreadable} shard(s) at site {} have no readable manifest footer; \
                     kept (they cannot be attributed to an object)",
                    site.name()
                ));
            }
            if census.complete {
                self.restore_part_indexes(engine, meta, site_id, &census.seen)
                    .await;
            } else if census.seen.len() >= PART_INDEX_SEEN_MAX {
                crate::runtime::log(format_args!(
                    "scrub: more than {PART_INDEX_SEEN_MAX} part indexes at site {}: \
                     missing copies there are not looked for",
                    site.name()
                ));
            }
        }
        // Forget shards not seen this pass (deleted by the purge worker, or a site that
        // failed): they are judged afresh when seen again.
        let pass = self.pass;
        self.suspects.retain(|_, (_, seen)| *seen == pass);
    }

    /// Writes the part-index copies site `site_id` lacks (see the module docs), given the
    /// versions `seen` there by a complete listing.
    async fn restore_part_indexes(
        &mut self,
        engine: &Engine,
        meta: &MetaClient,
        site_id: SiteId,
        seen: &HashSet<u64>,
    ) {
        let mut missing = Vec::new();
        let mut cursor: Option<(String, String)> = None;
        loop {
            let next = meta.local.with_index(|index| {
                let after = cursor.as_ref().map(|(b, k)| (b.as_str(), k.as_str()));
                missing_part_indexes(index, after, PART_INDEX_PAGE_OBJECTS, seen, &mut missing)
            });
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
            monoio::time::sleep(SCRUB_STEP_PAUSE).await;
        }
        let before = std::mem::take(&mut self.index_suspects);
        let (confirmed, fresh): (Vec<_>, Vec<_>) = missing
            .into_iter()
            .partition(|(_, _, version)| before.contains(&(site_id, *version)));
        // Other sites' suspects stay; this site's are replaced by what this listing found.
        self.index_suspects = before
            .into_iter()
            .filter(|(site, _)| *site != site_id)
            .chain(fresh.iter().map(|(_, _, version)| (site_id, *version)))
            .take(SCRUB_SUSPECTS_MAX)
            .collect();
        let site = &engine.sites[usize::from(site_id)];
        for (written, (bucket, key, version_id)) in confirmed.into_iter().enumerate() {
            // The record again, now: it may have been replaced or deleted since the walk.
            let Some(object) = meta
                .local
                .object(&bucket, &key)
                .filter(|o| o.version_id == version_id && !o.parts.is_empty())
            else {
                continue;
            };
            let footer = match crate::recover::part_index(&object) {
                Ok(index) => crate::recover::part_index_footer(
                    &object,
                    &index,
                    usize::from(site_id),
                    engine.sites.len(),
                ),
                Err(e) => {
                    crate::runtime::log(format_args!("scrub: part index of {bucket}/{key}: {e}"));
                    continue;
                }
            };
            let outcome = crate::recover::write_part_index_copy(
                engine,
                usize::from(site_id),
                version_id,
                footer,
            )
            .await;
            match outcome {
                Ok(()) => {
                    self.index_copies_written += 1;
                    crate::runtime::log(format_args!(
                        "scrub: wrote the missing part index of {bucket}/{key} at site {}",
                        site.name()
                    ));
                }
                Err(e) => {
                    // Remembered, so the next complete listing retries it at once.
                    if self.index_suspects.len() < SCRUB_SUSPECTS_MAX {
                        self.index_suspects.insert((site_id, version_id));
                    }
                    crate::runtime::log(format_args!(
                        "scrub: writing the part index of {bucket}/{key}: {e}; retried next pass"
                    ));
                    break;
                }
            }
            if (written + 1) % SCRUB_BATCH_MAX == 0 {
                monoio::time::sleep(SCRUB_STEP_PAUSE).await;
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // One shard's identity and context, all needed.
    async fn judge(
        &mut self,
        site: &crate::site::Site,
        site_id: SiteId,
        key: &str,
        id: BackendId,
        manifest: &Manifest,
        meta: &MetaClient,
        grace_ms: u64,
    ) -> Verdict {
        let now = super::now_ms();
        let deleted = self.deleted_buckets.get(&manifest.bucket).copied();
        // The verdict is computed synchronously from the index: no other task runs between
        // the lookup and the decision.
        let found = meta
            .local
            .with_index(|index| verdict(index, manifest, &id, now, grace_ms, deleted));
        if found == Verdict::UnknownBucket && !self.warned_unknown_bucket {
            self.warned_unknown_bucket = true;
            crate::runtime::log(format_args!(
                "scrub: site {} holds shards of bucket `{}`, which the metadata does not know; \
                 they are kept (run `tessera recover` if this data directory lost its metadata)",
                site.name(),
                manifest.bucket
            ));
        }
        if found != Verdict::Orphan {
            self.suspects.remove(&(site_id, id));
            return found;
        }
        let pass = self.pass;
        let Some((first_seen, seen)) = self.suspects.get_mut(&(site_id, id)) else {
            if self.suspects.len() < SCRUB_SUSPECTS_MAX {
                self.suspects.insert((site_id, id), (now, pass));
            }
            return found;
        };
        *seen = pass;
        let first_seen = *first_seen;
        if now.saturating_sub(first_seen) < grace_ms {
            return found;
        }
        // Re-check after the awaits above: a commit may have landed since the verdict.
        let still = meta
            .local
            .with_index(|index| verdict(index, manifest, &id, now, grace_ms, deleted));
        if still != Verdict::Orphan {
            self.suspects.remove(&(site_id, id));
            return still;
        }
        match site.delete(key).await {
            Ok(()) => {
                self.deleted += 1;
                self.suspects.remove(&(site_id, id));
                crate::runtime::log(format_args!(
                    "scrub: deleted orphan shard {key} at site {} ({}/{} version {})",
                    site.name(),
                    manifest.bucket,
                    manifest.key,
                    manifest.version_id
                ));
            }
            Err(e) => crate::runtime::log(format_args!(
                "scrub: deleting orphan shard {key} at site {}: {e}",
                site.name()
            )),
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::SiteError;
    use tessera_meta::{
        Bucket, ContentHeaders, ETag, Object, ObjectPart, Op, Policy, Shard, ShardState, Upload,
        UploadPart,
    };

    fn manifest(key: &str, version_id: u64, part_number: u16) -> Manifest {
        Manifest {
            shard: 0,
            k: 2,
            n: 3,
            replica: false,
            chunk_size: 4096,
            size: 10,
            version_id,
            mtime_ms: 1_000,
            md5: [0; 16],
            etag_parts: 0,
            part_number,
            checksum: None,
            bucket: "b".into(),
            key: key.into(),
            headers: ContentHeaders::default(),
            user_metadata: Vec::new(),
            index: None,
        }
    }

    fn shard(id: u8) -> Shard {
        Shard {
            site: 0,
            backend_id: [id; 16],
            state: ShardState::Durable,
        }
    }

    fn object(key: &str, version_id: u64, shards: Vec<Shard>, parts: Vec<ObjectPart>) -> Object {
        Object {
            bucket: "b".into(),
            key: key.into(),
            version_id,
            size: 10,
            etag: ETag {
                md5: [0; 16],
                parts: 0,
            },
            headers: ContentHeaders::default(),
            user_metadata: Vec::new(),
            checksums: Vec::new(),
            mtime_ms: 1_000,
            policy: Policy::Replica { n: 3 },
            chunk_size: 4096,
            shards,
            parts,
        }
    }

    /// Referenced shards (by the object, by one of its parts, by an in-progress upload's part,
    /// or a part index of the current version) are kept at any age; unreferenced ones are
    /// young within the grace period and orphans after it.
    #[test]
    fn verdicts() {
        let mut index = Index::new();
        // Nothing is deleted while the bucket is unknown (an empty data directory).
        assert_eq!(
            verdict(&index, &manifest("k", 5, 0), &[1; 16], u64::MAX, 1, None),
            Verdict::UnknownBucket
        );
        // Unless this data directory deleted the bucket after the shard was written (the
        // manifest's write time is 1 000): then it is an orphan like any other.
        let deleted_at = |ms| {
            verdict(
                &index,
                &manifest("k", 5, 0),
                &[1; 16],
                u64::MAX,
                1,
                Some(ms),
            )
        };
        assert_eq!(deleted_at(999), Verdict::UnknownBucket);
        assert_eq!(deleted_at(1_000), Verdict::Orphan);
        assert_eq!(
            verdict(
                &index,
                &manifest("k", 5, 0),
                &[1; 16],
                1_000,
                60_000,
                Some(5_000)
            ),
            Verdict::Young
        );
        index.apply(Op::PutBucket(Bucket {
            name: "b".into(),
            created_ms: 0,
            policy: Policy::Replica { n: 3 },
            owner: "o".into(),
        }));
        let part = ObjectPart {
            number: 1,
            size: 10,
            etag: [0; 16],
            shards: vec![shard(2)],
        };
        index.apply(Op::PutObject(object("k", 5, vec![shard(1)], Vec::new())));
        index.apply(Op::PutObject(object("mp", 6, Vec::new(), vec![part])));
        index.apply(Op::PutUpload(Upload {
            bucket: "b".into(),
            key: "up".into(),
            upload_id: "u1".into(),
            initiated_ms: 0,
            headers: ContentHeaders::default(),
            user_metadata: Vec::new(),
            checksum_algorithm: None,
            policy: Policy::Replica { n: 3 },
            owner: "o".into(),
        }));
        index.apply(Op::PutPart(UploadPart {
            bucket: "b".into(),
            key: "up".into(),
            upload_id: "u1".into(),
            number: 1,
            size: 10,
            etag: [0; 16],
            checksum: None,
            mtime_ms: 0,
            chunk_size: 4096,
            shards: vec![shard(3)],
        }));
        let late = 1_000 + 60_000;
        let judge =
            |m: &Manifest, id: u8, now: u64| verdict(&index, m, &[id; 16], now, 60_000, None);
        assert_eq!(judge(&manifest("k", 5, 0), 1, late), Verdict::Referenced);
        assert_eq!(judge(&manifest("mp", 4, 1), 2, late), Verdict::Referenced);
        assert_eq!(judge(&manifest("up", 4, 1), 3, late), Verdict::Referenced);
        // Unreferenced: an overwritten version's shard, a stray part, an unknown key.
        assert_eq!(judge(&manifest("k", 4, 0), 9, late), Verdict::Orphan);
        assert_eq!(judge(&manifest("k", 4, 0), 9, late - 1), Verdict::Young);
        assert_eq!(judge(&manifest("up", 4, 2), 8, late), Verdict::Orphan);
        assert_eq!(judge(&manifest("nokey", 4, 0), 7, late), Verdict::Orphan);
        // A part index names its object by version.
        let mut index_manifest = manifest("mp", 6, 0);
        index_manifest.index = Some(super::super::manifest::PartIndex {
            policy: Policy::Replica { n: 3 },
            parts: Vec::new(),
        });
        assert_eq!(judge(&index_manifest, 50, late), Verdict::Referenced);
        index_manifest.version_id = 7;
        assert_eq!(judge(&index_manifest, 50, late), Verdict::Orphan);
        // A clock behind the manifest's write time never makes an orphan.
        assert_eq!(judge(&manifest("nokey", 4, 0), 7, 0), Verdict::Young);
    }

    /// A listing's census counts only part-index copies the index references; the walk then
    /// names exactly the current multipart objects whose version it did not see, page by page.
    #[test]
    fn missing_part_index_copies() {
        let mut index = Index::new();
        index.apply(Op::PutBucket(Bucket {
            name: "b".into(),
            created_ms: 0,
            policy: Policy::Replica { n: 3 },
            owner: "o".into(),
        }));
        let part = |id| ObjectPart {
            number: 1,
            size: 10,
            etag: [0; 16],
            shards: vec![shard(id)],
        };
        index.apply(Op::PutObject(object("k", 5, vec![shard(1)], Vec::new())));
        index.apply(Op::PutObject(object("m1", 6, Vec::new(), vec![part(2)])));
        index.apply(Op::PutObject(object("m2", 8, Vec::new(), vec![part(3)])));
        index.apply(Op::PutObject(object("m3", 9, Vec::new(), vec![part(4)])));
        let mut census = Census::new();
        let mut copy = manifest("m1", 6, 0);
        copy.index = Some(super::super::manifest::PartIndex {
            policy: Policy::Replica { n: 3 },
            parts: Vec::new(),
        });
        census.note(&copy, Verdict::Referenced);
        // A copy of an older version (an orphan) and a data shard are not copies of the
        // current objects.
        let mut stale = copy.clone();
        stale.version_id = 7;
        census.note(&stale, Verdict::Orphan);
        census.note(&manifest("m2", 8, 1), Verdict::Referenced);
        assert!(census.complete);
        assert_eq!(census.seen, HashSet::from([6]));
        for page in [1, 2, 10] {
            let mut missing = Vec::new();
            let mut cursor: Option<(String, String)> = None;
            loop {
                let after = cursor.as_ref().map(|(b, k)| (b.as_str(), k.as_str()));
                match missing_part_indexes(&index, after, page, &census.seen, &mut missing) {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let names: Vec<(&str, u64)> =
                missing.iter().map(|(_, k, v)| (k.as_str(), *v)).collect();
            assert_eq!(names, [("m2", 8), ("m3", 9)], "page of {page}");
        }
        // Only failures that say "no shard here" leave the census complete.
        assert!(read_failure_is_conclusive(&SiteError::NotFound));
        assert!(read_failure_is_conclusive(&SiteError::Protocol(
            "bad footer"
        )));
        assert!(!read_failure_is_conclusive(&SiteError::Io(
            std::io::ErrorKind::Other
        )));
        assert!(!read_failure_is_conclusive(&SiteError::RootMissing));
    }

    /// The pass interval follows the grace period within its bounds.
    #[test]
    fn pass_interval_bounds() {
        assert_eq!(pass_interval(0), SCRUB_PASS_INTERVAL_MIN);
        assert_eq!(pass_interval(4_000), Duration::from_secs(1));
        assert_eq!(
            pass_interval(ORPHAN_GRACE_MS_DEFAULT),
            SCRUB_PASS_INTERVAL_MAX
        );
    }
}
