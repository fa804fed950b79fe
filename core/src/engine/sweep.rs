//! The sweep: finds `Pending` shards that no repair-queue entry names, and queues them.
//!
//! A PUT, CopyObject or CompleteMultipartUpload commits the object record (shards that did
//! not become durable in time recorded `Pending`) on the key's owning core, then commits the
//! repair-queue entries on the core that served the request: two commits on two cores, which
//! no single frame can join. A crash between them, or a failed queue commit, leaves `Pending`
//! shards that nothing would ever repair. Each core's repair worker runs this sweep over the
//! objects its own index holds: at start and every [`SWEEP_INTERVAL`].
//!
//! ```text
//!  every core's repair queue (MetaRequest::Queue pages) ─► backend ids queued anywhere
//!  this core's index, page by page (Index::objects_after) ─► Pending shards not among them
//!     └─ queue now if  record older than this process, on the first sweep (a crash left it)
//!                  or  found unqueued by the previous sweep too (SWEEP_INTERVAL ago)
//!        else remember it for the next sweep (its request may be committing the entry now)
//!  ─► PutQueue entries on this core's queue (its repair worker takes them)
//! ```
//!
//! A duplicate entry costs at most one redundant rebuild: the repair of a shard already durable
//! only drops its entry. What the sweep does not do: look at uploads still in progress (their
//! parts' `Pending` shards are queued when the upload completes, and swept from then on), or
//! check that a `Durable` shard really is at its site (reads and the scrub find those).

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use tessera_meta::{
    BackendId, CoreId, Index, MetaRequest, MetaResponse, Op, QueueEntry, QueueKind, ShardState,
    SiteId,
};

use super::repair::{flat_shards, queued_index};
use crate::mesh::MetaClient;

/// Pause between two sweeps of one core.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(300);
/// Objects examined per page of the walk; the walk yields between pages.
pub const SWEEP_PAGE_OBJECTS: usize = 1024;
/// Pause between pages, so a large index is walked without starving requests.
pub const SWEEP_PAGE_PAUSE: Duration = Duration::from_millis(1);
/// Queue entries asked of a core per request.
pub const SWEEP_QUEUE_PAGE: usize = 1024;
/// Most queued backend ids a sweep gathers (16 bytes each, ~32 MiB with the set's overhead).
/// Beyond it the sweep is skipped: the repair workers have a large backlog to work off first.
pub const SWEEP_QUEUED_MAX: usize = 1 << 20;
/// Unqueued shards remembered from one sweep to the next; beyond it they wait a sweep longer.
pub const SWEEP_SUSPECTS_MAX: usize = 65_536;
/// Entries per queue commit.
pub const SWEEP_COMMIT_ENTRIES_MAX: usize = 256;

/// A `Pending` shard that no repair-queue entry names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unqueued {
    /// Bucket of its object.
    pub bucket: String,
    /// Key of its object.
    pub key: String,
    /// Version of its object.
    pub version_id: u64,
    /// Last-modified time of its object.
    pub mtime_ms: u64,
    /// Flattened shard index (`repair::flat_index`).
    pub flat: usize,
    /// Its site.
    pub site: SiteId,
    /// Its backend id.
    pub backend_id: BackendId,
}

/// Appends to `out` the unqueued `Pending` shards of at most `objects_max` objects after
/// `after` in `index`; returns the cursor of the last object examined, `None` at the end.
pub fn unqueued_page<S: std::hash::BuildHasher>(
    index: &Index,
    after: Option<(&str, &str)>,
    objects_max: usize,
    queued: &HashSet<BackendId, S>,
    out: &mut Vec<Unqueued>,
) -> Option<(String, String)> {
    assert!(objects_max > 0, "a page examines at least one object");
    let mut last = None;
    for object in index.objects_after(after).take(objects_max) {
        for (flat, shard) in flat_shards(object) {
            if shard.state == ShardState::Pending && !queued.contains(&shard.backend_id) {
                out.push(Unqueued {
                    bucket: object.bucket.clone(),
                    key: object.key.clone(),
                    version_id: object.version_id,
                    mtime_ms: object.mtime_ms,
                    flat,
                    site: shard.site,
                    backend_id: shard.backend_id,
                });
            }
        }
        last = Some((object.bucket.clone(), object.key.clone()));
    }
    // A short page means the walk reached the end.
    let examined_all = last.is_some()
        && index
            .objects_after(last.as_ref().map(|(b, k)| (b.as_str(), k.as_str())))
            .next()
            .is_none();
    if examined_all {
        None
    } else {
        last
    }
}

/// The time this process began sweeping (the first call, on whichever core): records older
/// than it were written by an earlier process.
#[must_use]
pub fn process_start_ms() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(super::now_ms)
}

/// One core's sweep state across sweeps.
#[derive(Debug)]
pub struct Sweep {
    started_ms: u64,
    completed: u64,
    /// Backend ids found unqueued by the previous sweep.
    suspects: HashSet<BackendId>,
    /// Entries queued since start.
    pub queued: u64,
}

impl Sweep {
    /// A sweep for a process that started at `started_ms`.
    #[must_use]
    pub fn new(started_ms: u64) -> Self {
        Sweep {
            started_ms,
            completed: 0,
            suspects: HashSet::new(),
            queued: 0,
        }
    }

    /// Which of one complete sweep's findings to queue now (see the module docs); the rest are
    /// remembered for the next sweep, and what was remembered before is forgotten.
    pub fn decide(&mut self, found: Vec<Unqueued>) -> Vec<Unqueued> {
        let first = self.completed == 0;
        self.completed += 1;
        let mut next = HashSet::new();
        let mut now = Vec::new();
        for shard in found {
            if (first && shard.mtime_ms < self.started_ms)
                || self.suspects.contains(&shard.backend_id)
            {
                now.push(shard);
            } else if next.len() < SWEEP_SUSPECTS_MAX {
                next.insert(shard.backend_id);
            }
        }
        self.suspects = next;
        now
    }

    /// One sweep of this core's index; returns the entries it queued. A core that does not
    /// answer, or a queue larger than [`SWEEP_QUEUED_MAX`], skips the sweep (it does not count
    /// as one).
    pub async fn sweep(&mut self, meta: &MetaClient) -> usize {
        let Some(queued) = queued_anywhere(meta).await else {
            return 0;
        };
        let mut found = Vec::new();
        let mut cursor: Option<(String, String)> = None;
        loop {
            let next = meta.local.with_index(|index| {
                let after = cursor.as_ref().map(|(b, k)| (b.as_str(), k.as_str()));
                unqueued_page(index, after, SWEEP_PAGE_OBJECTS, &queued, &mut found)
            });
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
            monoio::time::sleep(SWEEP_PAGE_PAUSE).await;
        }
        drop(queued);
        let now = self.decide(found);
        let mut queued_count = 0;
        for batch in now.chunks(SWEEP_COMMIT_ENTRIES_MAX) {
            let ops: Vec<Op> = batch.iter().map(|u| Op::PutQueue(entry(meta, u))).collect();
            match meta.local.commit(ops).await {
                Ok(_) => queued_count += batch.len(),
                Err(e) => {
                    crate::runtime::log(format_args!("sweep: queueing repairs: {e}"));
                    break;
                }
            }
        }
        for shard in &now[..queued_count] {
            crate::runtime::log(format_args!(
                "sweep: shard {} of {}/{} was pending with no repair queued: queued",
                shard.flat, shard.bucket, shard.key
            ));
        }
        self.queued += queued_count as u64;
        queued_count
    }
}

/// The repair-queue entry for `shard`, on this core's queue.
fn entry(meta: &MetaClient, shard: &Unqueued) -> QueueEntry {
    QueueEntry {
        kind: QueueKind::Repair,
        id: meta.local.allocate_queue_id(),
        site: shard.site,
        backend_id: shard.backend_id,
        bucket: shard.bucket.clone(),
        key: shard.key.clone(),
        version_id: shard.version_id,
        shard_index: queued_index(shard.flat),
        enqueued_ms: super::now_ms(),
        attempts: 0,
    }
}

/// The backend ids of every core's repair queue; `None` if a core does not answer or the
/// queues hold more than [`SWEEP_QUEUED_MAX`] entries.
async fn queued_anywhere(meta: &MetaClient) -> Option<HashSet<BackendId>> {
    let mut queued = HashSet::new();
    for core in 0..meta.cores() {
        let core = CoreId(u16::try_from(core).ok()?);
        let mut after_id = 0;
        loop {
            let request = MetaRequest::Queue {
                kind: QueueKind::Repair,
                after_id,
                max: SWEEP_QUEUE_PAGE,
            };
            let Ok(MetaResponse::Queue(entries)) = meta.call(core, request).await else {
                return None;
            };
            queued.extend(entries.iter().map(|e| e.backend_id));
            if queued.len() > SWEEP_QUEUED_MAX {
                crate::runtime::log(format_args!(
                    "sweep: more than {SWEEP_QUEUED_MAX} repairs queued; sweeping later"
                ));
                return None;
            }
            match entries.last() {
                Some(last) if entries.len() >= SWEEP_QUEUE_PAGE => after_id = last.id,
                _ => break,
            }
        }
    }
    Some(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_meta::{Bucket, ContentHeaders, ETag, Object, ObjectPart, Policy, Shard};

    fn shard(id: u8, state: ShardState) -> Shard {
        Shard {
            site: u16::from(id % 3),
            backend_id: [id; 16],
            state,
        }
    }

    fn object(key: &str, mtime_ms: u64, shards: Vec<Shard>, parts: Vec<Vec<Shard>>) -> Object {
        Object {
            bucket: "b".into(),
            key: key.into(),
            version_id: 9,
            size: 10,
            etag: ETag {
                md5: [0; 16],
                parts: 0,
            },
            headers: ContentHeaders::default(),
            user_metadata: Vec::new(),
            checksums: Vec::new(),
            mtime_ms,
            policy: Policy::Ec {
                k: 2,
                m: 1,
                chunk_size: 1 << 20,
            },
            chunk_size: 1 << 20,
            shards,
            parts: parts
                .into_iter()
                .enumerate()
                .map(|(i, shards)| ObjectPart {
                    number: i as u32 + 1,
                    size: 5 << 20,
                    etag: [0; 16],
                    shards,
                })
                .collect(),
        }
    }

    fn index() -> Index {
        use ShardState::{Durable, Pending};
        let mut index = Index::new();
        index.apply(Op::PutBucket(Bucket {
            name: "b".into(),
            created_ms: 0,
            policy: Policy::Replica { n: 3 },
            owner: "o".into(),
        }));
        let whole = vec![shard(1, Durable), shard(2, Pending), shard(3, Durable)];
        index.apply(Op::PutObject(object("a-whole", 100, whole, Vec::new())));
        let parts = vec![
            vec![shard(10, Durable), shard(11, Durable), shard(12, Pending)],
            vec![shard(20, Pending), shard(21, Durable), shard(22, Pending)],
        ];
        index.apply(Op::PutObject(object("b-multi", 100, Vec::new(), parts)));
        let clean = vec![shard(30, Durable), shard(31, Durable), shard(32, Durable)];
        index.apply(Op::PutObject(object("c-clean", 100, clean, Vec::new())));
        index
    }

    /// Pending shards of whole and multipart objects are found by flattened index, minus
    /// those queued anywhere; pages of any size give the same result and end with `None`.
    #[test]
    fn finds_pending_shards_not_queued() {
        let index = index();
        let queued: HashSet<BackendId> = [[22; 16]].into_iter().collect();
        let found_with = |page: usize| {
            let mut out = Vec::new();
            let mut cursor: Option<(String, String)> = None;
            let mut pages = 0;
            loop {
                pages += 1;
                let after = cursor.as_ref().map(|(b, k)| (b.as_str(), k.as_str()));
                match unqueued_page(&index, after, page, &queued, &mut out) {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            (out, pages)
        };
        let (all, one_page) = found_with(SWEEP_PAGE_OBJECTS);
        assert_eq!(one_page, 1);
        let named: Vec<(&str, usize, u8)> = all
            .iter()
            .map(|u| (u.key.as_str(), u.flat, u.backend_id[0]))
            .collect();
        assert_eq!(
            named,
            [("a-whole", 1, 2), ("b-multi", 2, 12), ("b-multi", 3, 20)]
        );
        for page in 1..=3 {
            let (paged, page_count) = found_with(page);
            assert_eq!(paged, all, "page of {page}");
            assert_eq!(page_count, 3_usize.div_ceil(page));
        }
        let empty = Index::new();
        assert_eq!(
            unqueued_page(&empty, None, 4, &queued, &mut Vec::new()),
            None
        );
    }

    /// The first sweep queues at once what an earlier process left; anything else is queued
    /// only when the next sweep still finds it unqueued, and forgotten when it does not.
    #[test]
    fn queues_old_records_at_once_and_new_ones_when_seen_twice() {
        let started = 1_000;
        let unqueued = |id: u8, mtime_ms: u64| Unqueued {
            bucket: "b".into(),
            key: format!("k{id}"),
            version_id: 1,
            mtime_ms,
            flat: 0,
            site: 0,
            backend_id: [id; 16],
        };
        let mut sweep = Sweep::new(started);
        let ids = |v: Vec<Unqueued>| v.iter().map(|u| u.backend_id[0]).collect::<Vec<_>>();
        // Sweep 1: the crash leftover (older than the process) goes now; a record of this
        // process may still be committing its entry: remembered.
        let first = sweep.decide(vec![unqueued(1, started - 1), unqueued(2, started + 5)]);
        assert_eq!(ids(first), [1]);
        // Sweep 2: 2 is still unqueued: now. 3 is new: remembered. An old record found now
        // for the first time (after the first sweep) waits like any other.
        let second = sweep.decide(vec![
            unqueued(2, started + 5),
            unqueued(3, started + 9),
            unqueued(4, started - 5),
        ]);
        assert_eq!(ids(second), [2]);
        // Sweep 3: 3's entry was committed meanwhile (not found): forgotten; 4 goes now.
        let third = sweep.decide(vec![unqueued(4, started - 5)]);
        assert_eq!(ids(third), [4]);
        let fourth = sweep.decide(vec![unqueued(3, started + 9)]);
        assert!(fourth.is_empty(), "3 was forgotten, so it waits again");
    }
}
