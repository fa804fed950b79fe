//! The runtime shell (the only module that touches monoio): the file storage on `io_uring`, the
//! group-commit driver, compaction, and the per-core [`MetaStore`] the engine calls.
//!
//! ```text
//!  task A ─commit(ops)─┐ encode frame into `pending` (lsn n), wait until durable_lsn >= n
//!  task B ─commit(ops)─┤
//!                      ▼
//!  flusher task: take pending ─► write_at(log.G, tail) ─► fsync ─► apply ops to Index
//!       ▲  (appends arriving during the fsync fill the next `pending`: they share the next fsync)
//!       └─ wake every waiter with lsn <= durable_lsn; if log.G >= compact_log_bytes:
//!            snapshot bytes = encode(Index) (the only pause), create log.G+1, then in the
//!            background write snap.G+1, fsync, remove log.G / snap.G
//! ```
//! A commit's future resolves only after its frame is durable (or with an error); the index
//! reflects exactly the durable frames, so a read never sees what a crash could lose.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::frame::encode_frame;
use crate::index::{BucketStats, Index, UploadState};
use crate::listing::{ListPage, ListQuery};
use crate::record::{
    BackendId, Bucket, Object, Op, QueueEntry, QueueKind, ShardState, Tombstone, Txn, Upload,
    UploadPart,
};
use crate::recover::{encode_snapshot, load_snapshot, replay_log, RecoveryMode, RecoveryReport};
use crate::storage::Storage;
use crate::upload_condition::{UploadCondition, UploadMismatch};
use crate::upload_listing::{upload_page, UploadPage, UploadQuery};
use crate::MetaError;

/// Most commits that may wait for one core's next fsync: bounds the pending buffer and waiter
/// list (about 0.5 KiB each for object records, so ~8 MiB at worst). More fail with `Busy`.
pub const APPENDS_PENDING_MAX: usize = 16_384;

/// Default log size that triggers a snapshot and a new log generation (or the size of the last
/// snapshot, when larger): 64 MiB replays in well under a second, and disk use stays below
/// about three times the state plus this.
pub const COMPACT_LOG_BYTES_DEFAULT: u64 = 64 << 20;

/// Whether commits wait for fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// Group commit: a commit returns once its frame is fsynced. The default.
    #[default]
    Durable,
    /// No fsync at all: for benchmarks only; a crash can lose acknowledged commits.
    NoSyncForBenchmarks,
}

/// How a store opens and behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    pub sync: SyncMode,
    pub recovery: RecoveryMode,
    pub compact_log_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            sync: SyncMode::Durable,
            recovery: RecoveryMode::Strict,
            compact_log_bytes: COMPACT_LOG_BYTES_DEFAULT,
        }
    }
}

/// Counters of one store, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub commits: u64,
    pub writes: u64,
    pub fsyncs: u64,
    pub snapshots: u64,
    pub log_generation: u64,
    pub log_bytes: u64,
}

/// File contents at a 16-byte-aligned address, so that every frame payload is aligned for rkyv
/// without a copy per frame. Copies only when the allocator returned a less aligned buffer.
fn aligned(bytes: Vec<u8>) -> AlignedBytes {
    if bytes.as_ptr().align_offset(16) == 0 {
        return AlignedBytes::Plain(bytes);
    }
    let mut out = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    out.extend_from_slice(&bytes);
    AlignedBytes::Copied(out)
}

enum AlignedBytes {
    Plain(Vec<u8>),
    Copied(rkyv::util::AlignedVec<16>),
}

impl std::ops::Deref for AlignedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            AlignedBytes::Plain(v) => v,
            AlignedBytes::Copied(v) => v,
        }
    }
}

fn log_name(generation: u64) -> String {
    format!("log.{generation:020}")
}

fn snap_name(generation: u64) -> String {
    format!("snap.{generation:020}")
}

fn parse_name(name: &str) -> Option<(bool, u64)> {
    let (kind, generation) = name.split_once('.')?;
    let generation: u64 = generation.parse().ok()?;
    match kind {
        "log" => Some((true, generation)),
        "snap" => Some((false, generation)),
        _ => None,
    }
}

struct State {
    config: StoreConfig,
    index: Index,
    generation: u64,
    log_name: String,
    /// Bytes written or being written to the active log.
    tail: u64,
    next_lsn: u64,
    durable_lsn: u64,
    /// Encoded frames not yet handed to a write.
    pending: Vec<u8>,
    pending_txns: Vec<Txn>,
    /// The buffer of the last completed write, kept to avoid reallocating.
    spare: Vec<u8>,
    waiters: VecDeque<(u64, Waker)>,
    flushing: bool,
    compacting: bool,
    /// Size of the last snapshot written (or loaded).
    snapshot_bytes: u64,
    poison: Option<MetaError>,
    /// The last background snapshot failure, if any (reported, not fatal).
    compaction_error: Option<MetaError>,
    queue_id_next: u64,
    /// `(bucket, key, upload id)` → the last submitted lsn of an op on that upload, while it is
    /// not durable: a conditional commit waits for it before checking (see
    /// [`MetaStore::commit_if_upload`]). Entries leave as their frames become durable.
    upload_lsns: HashMap<(String, String, String), u64>,
    /// The same for object records ((bucket, key) of PutObject / DeleteObject ops).
    object_lsns: HashMap<(String, String), u64>,
    stats: StoreStats,
}

/// One core's metadata store. Cheap to clone (a handle); not `Send`: it lives on its core, and
/// other cores reach it with [`MetaRequest`] messages handled by [`MetaStore::handle`].
pub struct MetaStore<S: Storage + 'static> {
    storage: Rc<S>,
    state: Rc<RefCell<State>>,
}

impl<S: Storage + 'static> Clone for MetaStore<S> {
    fn clone(&self) -> Self {
        MetaStore {
            storage: self.storage.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S: Storage + 'static> MetaStore<S> {
    /// Recovers the store from `storage` (latest valid snapshot, then the logs) and opens the
    /// last log generation for appends. Torn tails are truncated and reported; damage fails
    /// with [`MetaError::Corrupt`] unless `config.recovery` says to truncate.
    pub async fn open(
        storage: S,
        config: StoreConfig,
    ) -> Result<(Self, RecoveryReport), MetaError> {
        let started = std::time::Instant::now();
        let mut report = RecoveryReport::default();
        let mut logs = Vec::new();
        let mut snaps = Vec::new();
        for name in storage.list().await? {
            match parse_name(&name) {
                Some((true, g)) => logs.push(g),
                Some((false, g)) => snaps.push(g),
                None => {}
            }
        }
        logs.sort_unstable();
        snaps.sort_unstable();
        let mut index = Index::new();
        let mut last_lsn = 0;
        let mut snapshot_generation = None;
        let mut snapshot_bytes = 0;
        for &g in snaps.iter().rev() {
            let Some(bytes) = storage.read(&snap_name(g)).await? else {
                continue;
            };
            let bytes = aligned(bytes);
            if let Some(loaded) = load_snapshot(&bytes) {
                snapshot_bytes = bytes.len() as u64;
                index = loaded.index;
                last_lsn = loaded.lsn;
                report.snapshot = Some(snap_name(g));
                report.snapshot_ops = loaded.ops;
                snapshot_generation = Some(g);
                break;
            }
        }
        let first_log = snapshot_generation.unwrap_or(0);
        let mut generation = snapshot_generation.unwrap_or(1).max(1);
        let mut tail = 0;
        let mut have_log = false;
        for &g in logs.iter().filter(|&&g| g >= first_log) {
            let name = log_name(g);
            let bytes = storage.read(&name).await?.unwrap_or_default();
            let bytes = aligned(bytes);
            let replay = replay_log(&mut index, &name, &bytes, &mut last_lsn, config.recovery)?;
            report.frames += replay.frames;
            report.ops += replay.ops;
            if let Some(cut) = replay.truncation {
                storage.truncate(&name, cut.offset).await?;
                report.truncated_bytes += cut.bytes;
                report.truncations.push(cut);
            }
            generation = g;
            tail = replay.valid_len as u64;
            have_log = true;
        }
        if !have_log {
            storage.create(&log_name(generation)).await?;
        }
        // Leftovers of an interrupted compaction: older generations, or newer snapshots that
        // never completed.
        for &g in &snaps {
            if Some(g) != snapshot_generation {
                storage.remove(&snap_name(g)).await?;
            }
        }
        for &g in logs.iter().filter(|&&g| g < first_log) {
            storage.remove(&log_name(g)).await?;
        }
        report.last_lsn = last_lsn;
        report.elapsed = started.elapsed();
        let queue_id_next = index.queue_id_max() + 1;
        let state = State {
            config,
            index,
            generation,
            log_name: log_name(generation),
            tail,
            next_lsn: last_lsn + 1,
            durable_lsn: last_lsn,
            pending: Vec::new(),
            pending_txns: Vec::new(),
            spare: Vec::new(),
            waiters: VecDeque::new(),
            flushing: false,
            compacting: false,
            snapshot_bytes,
            poison: None,
            compaction_error: None,
            queue_id_next,
            upload_lsns: HashMap::new(),
            object_lsns: HashMap::new(),
            stats: StoreStats {
                log_generation: generation,
                log_bytes: tail,
                ..StoreStats::default()
            },
        };
        Ok((
            MetaStore {
                storage: Rc::new(storage),
                state: Rc::new(RefCell::new(state)),
            },
            report,
        ))
    }

    /// Appends `ops` as one atomic frame and resolves when it is durable and applied, with its
    /// log sequence number. Must run inside a monoio runtime (it spawns the flusher).
    pub async fn commit(&self, ops: Vec<Op>) -> Result<u64, MetaError> {
        self.submit(ops)?.await
    }

    /// Encodes `ops` as the next frame now (its sequence number is fixed on return) and gives
    /// the future that resolves once that frame is durable. Dropping the future does not cancel
    /// the commit: the frame is written anyway.
    pub fn submit(&self, ops: Vec<Op>) -> Result<Commit, MetaError> {
        assert!(!ops.is_empty(), "a commit carries at least one op");
        assert!(
            !ops.iter().any(|op| matches!(op, Op::SnapshotEnd { .. })),
            "SnapshotEnd only appears in snapshot files"
        );
        let mut st = self.state.borrow_mut();
        if st.poison.is_some() {
            return Err(MetaError::Poisoned);
        }
        if st.pending_txns.len() >= APPENDS_PENDING_MAX {
            return Err(MetaError::Busy);
        }
        crate::crash_point::check(&ops);
        let lsn = st.next_lsn;
        let txn = Txn { ops };
        encode_frame(&mut st.pending, lsn, &txn)?;
        st.next_lsn += 1;
        for op in &txn.ops {
            let object = match op {
                Op::PutObject(o) => Some((&o.bucket, &o.key)),
                Op::DeleteObject(t) => Some((&t.bucket, &t.key)),
                _ => None,
            };
            if let Some((bucket, key)) = object {
                st.object_lsns.insert((bucket.clone(), key.clone()), lsn);
                continue;
            }
            let upload = match op {
                Op::PutUpload(u) => (&u.bucket, &u.key, &u.upload_id),
                Op::PutPart(p) => (&p.bucket, &p.key, &p.upload_id),
                Op::DeleteUpload {
                    bucket,
                    key,
                    upload_id,
                } => (bucket, key, upload_id),
                _ => continue,
            };
            let id = (upload.0.clone(), upload.1.clone(), upload.2.clone());
            st.upload_lsns.insert(id, lsn);
        }
        st.pending_txns.push(txn);
        st.stats.commits += 1;
        if !st.flushing {
            st.flushing = true;
            monoio::spawn(flush_loop(self.clone()));
        }
        Ok(Commit {
            state: self.state.clone(),
            lsn,
            registered: false,
        })
    }

    /// Commits `ops` only if `condition` holds on this core when the frame is encoded; the
    /// answer is the lsn, the upload's state just before `ops` apply and, for a condition on
    /// the object ([`UploadCondition::object`]), the object record they replace; or why the
    /// condition failed (then nothing is written).
    ///
    /// Atomic against every other commit on the upload (and, with an object condition, on the
    /// key): it first waits until the last op already submitted for them is durable (the index
    /// shows only durable frames), then checks the index and encodes the frame in one step
    /// with no await in between. Of a completion and an abort racing on one upload, exactly
    /// one commits; the other sees `NoSuchUpload`.
    pub async fn commit_if_upload(
        &self,
        condition: &UploadCondition,
        ops: Vec<Op>,
    ) -> Result<Result<UploadCommit, UploadMismatch>, MetaError> {
        let id = (
            condition.bucket.clone(),
            condition.key.clone(),
            condition.upload_id.clone(),
        );
        let object_id = (condition.bucket.clone(), condition.key.clone());
        let writes_object = condition.object.is_some();
        self.wait_durable(|st| {
            let upload = st.upload_lsns.get(&id).copied();
            let object = writes_object
                .then(|| st.object_lsns.get(&object_id).copied())
                .flatten();
            upload.max(object)
        })
        .await?;
        // From here to `submit` nothing awaits: no other commit can slip in between.
        let checked = self.with_index(|i| {
            condition.check(i).cloned().map(|state| {
                let previous = writes_object
                    .then(|| i.object(&condition.bucket, &condition.key).cloned())
                    .flatten();
                (state, previous)
            })
        });
        let (state, previous) = match checked {
            Ok(found) => found,
            Err(mismatch) => return Ok(Err(mismatch)),
        };
        let lsn = self.submit(ops)?.await?;
        Ok(Ok(UploadCommit {
            lsn,
            state,
            previous,
        }))
    }

    /// Commits `ops`, which write the object record of `(bucket, key)` (a put or a tombstone),
    /// and answers the record they replace, so that the caller purges exactly that one. With
    /// `expect`, only if the key's current version is still `expect` (`None`: no object);
    /// otherwise nothing is written and the answer is the current version.
    ///
    /// Atomic against every other commit on the key, like [`MetaStore::set_shard_state`]: it
    /// waits until the commits already submitted for the key are durable, then reads the
    /// record and submits with no await in between. Of two writers racing on one key, each
    /// sees the other's record as the one it replaced, and a conditional one sees it changed.
    pub async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        expect: Option<Option<u64>>,
        ops: Vec<Op>,
    ) -> Result<Result<(u64, Option<Object>), Option<u64>>, MetaError> {
        let id = (bucket.to_owned(), key.to_owned());
        self.wait_durable(|st| st.object_lsns.get(&id).copied())
            .await?;
        // From here to `submit` nothing awaits.
        let current = self.object(bucket, key);
        let version = current.as_ref().map(|o| o.version_id);
        if expect.is_some_and(|expected| expected != version) {
            return Ok(Err(version));
        }
        let lsn = self.submit(ops)?.await?;
        Ok(Ok((lsn, current)))
    }

    /// Waits until the commit `latest` names (the last one submitted for some key, looked up
    /// again after every wait) is durable, so that the index shows it.
    async fn wait_durable(&self, latest: impl Fn(&State) -> Option<u64>) -> Result<(), MetaError> {
        loop {
            let wait = {
                let st = self.state.borrow();
                if let Some(e) = &st.poison {
                    return Err(e.clone());
                }
                latest(&st).filter(|&lsn| lsn > st.durable_lsn)
            };
            let Some(lsn) = wait else { return Ok(()) };
            Commit {
                state: self.state.clone(),
                lsn,
                registered: false,
            }
            .await?;
        }
    }

    /// Sets the state of shard `backend_id` (of the object or of one of its parts) in the
    /// record of `(bucket, key)`, if that record is still version `version_id` and holds the
    /// shard. Atomic against every other commit on the key: it waits until the commits already
    /// submitted for the key are durable, then reads and submits with no await in between, so
    /// two cores changing different shards of one record (a repair and a read reporting damage)
    /// never undo each other. `Ok(true)` when the record changed (and is durable).
    pub async fn set_shard_state(
        &self,
        bucket: &str,
        key: &str,
        version_id: u64,
        backend_id: &BackendId,
        state: ShardState,
    ) -> Result<bool, MetaError> {
        let id = (bucket.to_owned(), key.to_owned());
        self.wait_durable(|st| st.object_lsns.get(&id).copied())
            .await?;
        // From here to `submit` nothing awaits.
        let Some(mut object) = self.object(bucket, key) else {
            return Ok(false);
        };
        if object.version_id != version_id {
            return Ok(false);
        }
        let Some(shard) = object
            .shards
            .iter_mut()
            .chain(object.parts.iter_mut().flat_map(|p| p.shards.iter_mut()))
            .find(|s| s.backend_id == *backend_id)
        else {
            return Ok(false);
        };
        if shard.state == state {
            return Ok(false);
        }
        shard.state = state;
        self.submit(vec![Op::PutObject(object)])?.await?;
        Ok(true)
    }

    /// Stores a bucket record (the engine sends it to every core).
    pub async fn put_bucket(&self, bucket: Bucket) -> Result<u64, MetaError> {
        self.commit(vec![Op::PutBucket(bucket)]).await
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<u64, MetaError> {
        self.commit(vec![Op::DeleteBucket {
            name: name.to_owned(),
        }])
        .await
    }

    pub async fn put_object(&self, object: Object) -> Result<u64, MetaError> {
        self.commit(vec![Op::PutObject(object)]).await
    }

    pub async fn delete_object(&self, tombstone: Tombstone) -> Result<u64, MetaError> {
        self.commit(vec![Op::DeleteObject(tombstone)]).await
    }

    pub async fn put_upload(&self, upload: Upload) -> Result<u64, MetaError> {
        self.commit(vec![Op::PutUpload(upload)]).await
    }

    pub async fn put_part(&self, part: UploadPart) -> Result<u64, MetaError> {
        self.commit(vec![Op::PutPart(part)]).await
    }

    /// Writes the completed object and removes its upload in one frame.
    pub async fn complete_upload(&self, object: Object, upload_id: &str) -> Result<u64, MetaError> {
        let delete = Op::DeleteUpload {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            upload_id: upload_id.to_owned(),
        };
        self.commit(vec![Op::PutObject(object), delete]).await
    }

    pub async fn delete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<u64, MetaError> {
        self.commit(vec![Op::DeleteUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
        }])
        .await
    }

    /// A fresh queue id, unique on this core for its lifetime (never reused after recovery).
    #[must_use]
    pub fn allocate_queue_id(&self) -> u64 {
        let mut st = self.state.borrow_mut();
        let id = st.queue_id_next;
        st.queue_id_next += 1;
        id
    }

    pub async fn enqueue(&self, entry: QueueEntry) -> Result<u64, MetaError> {
        self.commit(vec![Op::PutQueue(entry)]).await
    }

    pub async fn dequeue(&self, kind: QueueKind, id: u64) -> Result<u64, MetaError> {
        self.commit(vec![Op::DeleteQueue { kind, id }]).await
    }

    /// Runs `f` on the index (zero-copy reads on the owning core).
    pub fn with_index<R>(&self, f: impl FnOnce(&Index) -> R) -> R {
        f(&self.state.borrow().index)
    }

    #[must_use]
    pub fn object(&self, bucket: &str, key: &str) -> Option<Object> {
        self.with_index(|i| i.object(bucket, key).cloned())
    }

    #[must_use]
    pub fn bucket(&self, name: &str) -> Option<Bucket> {
        self.with_index(|i| i.bucket(name).cloned())
    }

    #[must_use]
    pub fn list(&self, bucket: &str, query: &ListQuery) -> ListPage {
        self.with_index(|i| i.list(bucket, query))
    }

    #[must_use]
    pub fn stats(&self, bucket: &str) -> BucketStats {
        self.with_index(|i| i.stats(bucket))
    }

    #[must_use]
    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Option<UploadState> {
        self.with_index(|i| i.upload(bucket, key, upload_id).cloned())
    }

    /// Up to `max` queue entries of `kind` with ids above `after_id`.
    #[must_use]
    pub fn queue_page(&self, kind: QueueKind, after_id: u64, max: usize) -> Vec<QueueEntry> {
        self.with_index(|i| i.queue(kind, after_id).take(max).cloned().collect())
    }

    #[must_use]
    pub fn store_stats(&self) -> StoreStats {
        self.state.borrow().stats
    }

    /// The last background snapshot failure since open, if any.
    #[must_use]
    pub fn compaction_error(&self) -> Option<MetaError> {
        self.state.borrow().compaction_error.clone()
    }

    /// True while a snapshot is being written in the background.
    #[must_use]
    pub fn compacting(&self) -> bool {
        self.state.borrow().compacting
    }

    /// Serves a request sent by another core (or by this one): the cross-core entry point.
    pub async fn handle(&self, request: MetaRequest) -> MetaResponse {
        let res = match request {
            MetaRequest::Commit(ops) => self.commit(ops).await.map(MetaResponse::Committed),
            MetaRequest::CommitIfUpload { condition, ops } => self
                .commit_if_upload(&condition, ops)
                .await
                .map(|answer| match answer {
                    Ok(commit) => MetaResponse::UploadCommitted(Box::new(commit)),
                    Err(mismatch) => MetaResponse::UploadMismatch(mismatch),
                }),
            MetaRequest::CommitObject {
                bucket,
                key,
                expect,
                ops,
            } => self
                .commit_object(&bucket, &key, expect, ops)
                .await
                .map(|answer| match answer {
                    Ok((lsn, previous)) => MetaResponse::ObjectCommitted { lsn, previous },
                    Err(current) => MetaResponse::ObjectChanged(current),
                }),
            MetaRequest::Object { bucket, key } => {
                Ok(MetaResponse::Object(self.object(&bucket, &key)))
            }
            MetaRequest::Bucket { name } => Ok(MetaResponse::Bucket(self.bucket(&name))),
            MetaRequest::Buckets => Ok(MetaResponse::Buckets(
                self.with_index(|i| i.buckets().cloned().collect()),
            )),
            MetaRequest::List { bucket, query } => {
                Ok(MetaResponse::Page(self.list(&bucket, &query)))
            }
            MetaRequest::Stats { bucket } => Ok(MetaResponse::Stats(self.stats(&bucket))),
            MetaRequest::Upload {
                bucket,
                key,
                upload_id,
            } => Ok(MetaResponse::Upload(self.upload(&bucket, &key, &upload_id))),
            MetaRequest::SetShardState {
                bucket,
                key,
                version_id,
                backend_id,
                state,
            } => self
                .set_shard_state(&bucket, &key, version_id, &backend_id, state)
                .await
                .map(MetaResponse::ShardStateSet),
            MetaRequest::Uploads { bucket, query } => Ok(MetaResponse::Uploads(
                self.with_index(|i| upload_page(i, &bucket, &query)),
            )),
            MetaRequest::Queue {
                kind,
                after_id,
                max,
            } => Ok(MetaResponse::Queue(self.queue_page(kind, after_id, max))),
        };
        res.unwrap_or_else(MetaResponse::Error)
    }
}

/// A request to the core that owns a key (plain owned data: `Send`, for the cross-core mesh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaRequest {
    Commit(Vec<Op>),
    /// Commits the ops only if the upload condition holds ([`MetaStore::commit_if_upload`]).
    CommitIfUpload {
        condition: UploadCondition,
        ops: Vec<Op>,
    },
    /// Commits ops writing one object record, answering the record replaced, optionally only
    /// if the key is still at an expected version ([`MetaStore::commit_object`]).
    CommitObject {
        bucket: String,
        key: String,
        expect: Option<Option<u64>>,
        ops: Vec<Op>,
    },
    Object {
        bucket: String,
        key: String,
    },
    Bucket {
        name: String,
    },
    Buckets,
    List {
        bucket: String,
        query: ListQuery,
    },
    Stats {
        bucket: String,
    },
    Upload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    Queue {
        kind: QueueKind,
        after_id: u64,
        max: usize,
    },
    /// One page of this core's in-progress uploads of a bucket (ListMultipartUploads, and
    /// DeleteBucket's emptiness check).
    Uploads {
        bucket: String,
        query: UploadQuery,
    },
    /// Sets one shard's state in an object record ([`MetaStore::set_shard_state`]).
    SetShardState {
        bucket: String,
        key: String,
        version_id: u64,
        backend_id: BackendId,
        state: ShardState,
    },
}

/// What a [`MetaStore::commit_if_upload`] that held committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadCommit {
    pub lsn: u64,
    /// The upload as it was just before the commit.
    pub state: UploadState,
    /// The object record the commit replaced, for a condition on the object (a completion).
    pub previous: Option<Object>,
}

/// The answer to a [`MetaRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaResponse {
    Committed(u64),
    /// A conditional commit is durable.
    UploadCommitted(Box<UploadCommit>),
    /// A conditional commit's condition did not hold; nothing was written.
    UploadMismatch(UploadMismatch),
    /// A [`MetaRequest::CommitObject`] is durable; `previous` is the record it replaced.
    ObjectCommitted {
        lsn: u64,
        previous: Option<Object>,
    },
    /// A [`MetaRequest::CommitObject`]'s key was no longer at the expected version (this is the
    /// current one); nothing was written.
    ObjectChanged(Option<u64>),
    Object(Option<Object>),
    Bucket(Option<Bucket>),
    Buckets(Vec<Bucket>),
    Page(ListPage),
    Stats(BucketStats),
    Upload(Option<UploadState>),
    Queue(Vec<QueueEntry>),
    Uploads(UploadPage),
    /// Whether a [`MetaRequest::SetShardState`] changed the record.
    ShardStateSet(bool),
    Error(MetaError),
}

const _: () = {
    const fn assert_send<T: Send + 'static>() {}
    assert_send::<MetaRequest>();
    assert_send::<MetaResponse>();
};

/// One submitted commit: resolves with its sequence number once durable, or with the error
/// that poisoned the log.
pub struct Commit {
    state: Rc<RefCell<State>>,
    lsn: u64,
    registered: bool,
}

impl Commit {
    /// The frame's log sequence number.
    #[must_use]
    pub fn lsn(&self) -> u64 {
        self.lsn
    }
}

impl Future for Commit {
    type Output = Result<u64, MetaError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.state.borrow_mut();
        if st.durable_lsn >= self.lsn {
            return Poll::Ready(Ok(self.lsn));
        }
        if let Some(e) = &st.poison {
            return Poll::Ready(Err(e.clone()));
        }
        if !self.registered {
            // Registered once: a monoio task's waker stays the same across polls.
            st.waiters.push_back((self.lsn, cx.waker().clone()));
            drop(st);
            self.registered = true;
        }
        Poll::Pending
    }
}

fn wake_durable(st: &mut State) {
    // Futures may be first polled in any order (a caller can hold a `Commit` and await it
    // later), so waiters are not sorted by lsn: scan them all. The list holds at most the
    // commits of the batches in flight, bounded by APPENDS_PENDING_MAX.
    let durable = st.durable_lsn;
    st.waiters.retain(|(lsn, waker)| {
        if *lsn <= durable {
            waker.wake_by_ref();
            false
        } else {
            true
        }
    });
}

fn poison(st: &mut State, error: MetaError) {
    st.poison = Some(error);
    st.flushing = false;
    for (_, waker) in st.waiters.drain(..) {
        waker.wake();
    }
}

/// The group-commit driver: one per store while commits are pending.
async fn flush_loop<S: Storage + 'static>(store: MetaStore<S>) {
    loop {
        let (buf, name, offset, txns, last_lsn, sync) = {
            let mut st = store.state.borrow_mut();
            if st.pending.is_empty() {
                st.flushing = false;
                return;
            }
            let spare = std::mem::take(&mut st.spare);
            let buf = std::mem::replace(&mut st.pending, spare);
            let txns = std::mem::take(&mut st.pending_txns);
            let offset = st.tail;
            st.tail += buf.len() as u64;
            (
                buf,
                st.log_name.clone(),
                offset,
                txns,
                st.next_lsn - 1,
                st.config.sync == SyncMode::Durable,
            )
        };
        let (mut res, mut buf) = store.storage.write_at(&name, offset, buf).await;
        if res.is_ok() && sync {
            res = store.storage.sync(&name).await;
        }
        let compact = {
            let mut st = store.state.borrow_mut();
            if let Err(e) = res {
                poison(&mut st, e);
                return;
            }
            st.stats.writes += 1;
            st.stats.fsyncs += u64::from(sync);
            st.stats.log_bytes = st.tail;
            for txn in txns {
                for op in txn.ops {
                    st.index.apply(op);
                }
            }
            assert!(last_lsn > st.durable_lsn, "durable lsn only moves forward");
            st.durable_lsn = last_lsn;
            st.upload_lsns.retain(|_, lsn| *lsn > last_lsn);
            st.object_lsns.retain(|_, lsn| *lsn > last_lsn);
            buf.clear();
            st.spare = buf;
            wake_durable(&mut st);
            // The threshold grows with the state: a log is compacted once it is as large as the
            // last snapshot, so snapshot writing costs at most one byte per byte committed.
            st.tail >= st.config.compact_log_bytes.max(st.snapshot_bytes) && !st.compacting
        };
        if compact {
            if let Err(e) = start_compaction(&store).await {
                poison(&mut store.state.borrow_mut(), e);
                return;
            }
        }
    }
}

/// Switches appends to a new log generation and writes the snapshot of everything before it in
/// the background. Appends pause only for encoding the snapshot and creating the new log.
async fn start_compaction<S: Storage + 'static>(store: &MetaStore<S>) -> Result<(), MetaError> {
    let (snapshot, old_generation) = {
        let mut st = store.state.borrow_mut();
        st.compacting = true;
        // Every written frame is durable and applied here: the flusher is between batches.
        let hint = (st.snapshot_bytes + st.tail + st.tail / 8) as usize;
        let snapshot = encode_snapshot(&st.index, st.durable_lsn, hint)?;
        st.snapshot_bytes = snapshot.len() as u64;
        (snapshot, st.generation)
    };
    let new_generation = old_generation + 1;
    store.storage.create(&log_name(new_generation)).await?;
    {
        let mut st = store.state.borrow_mut();
        st.generation = new_generation;
        st.log_name = log_name(new_generation);
        st.tail = 0;
        st.stats.log_generation = new_generation;
    }
    let background = store.clone();
    monoio::spawn(async move {
        let name = snap_name(new_generation);
        let result = async {
            background.storage.create(&name).await?;
            let (res, _) = background.storage.write_at(&name, 0, snapshot).await;
            res?;
            background.storage.sync(&name).await?;
            // Only now is the old generation redundant.
            background.storage.remove(&log_name(old_generation)).await?;
            background.storage.remove(&snap_name(old_generation)).await
        }
        .await;
        let mut st = background.state.borrow_mut();
        st.compacting = false;
        match result {
            Ok(()) => st.stats.snapshots += 1,
            // The old generation is intact, so recovery stays correct; the next threshold
            // crossing retries.
            Err(e) => st.compaction_error = Some(e),
        }
    });
    Ok(())
}

/// Log files on a local disk, written with monoio's `io_uring` file API.
pub struct FileStorage {
    dir: PathBuf,
    files: RefCell<HashMap<String, Rc<monoio::fs::File>>>,
}

impl FileStorage {
    /// Uses (and creates) `dir`. Directory operations (create, list, remove) are synchronous
    /// `std::fs` calls: they happen at startup and once per compaction, never per commit.
    pub fn new(dir: impl Into<PathBuf>) -> Result<FileStorage, MetaError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| MetaError::io("create_dir", &dir.display().to_string(), &e))?;
        Ok(FileStorage {
            dir,
            files: RefCell::new(HashMap::new()),
        })
    }

    fn sync_dir(&self) -> Result<(), MetaError> {
        let name = self.dir.display().to_string();
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| MetaError::io("sync_dir", &name, &e))
    }

    async fn handle(&self, name: &str) -> Result<Rc<monoio::fs::File>, MetaError> {
        if let Some(f) = self.files.borrow().get(name) {
            return Ok(f.clone());
        }
        let file = monoio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(name))
            .await
            .map_err(|e| MetaError::io("open", name, &e))?;
        let file = Rc::new(file);
        self.files
            .borrow_mut()
            .insert(name.to_owned(), file.clone());
        Ok(file)
    }
}

impl Storage for FileStorage {
    async fn list(&self) -> Result<Vec<String>, MetaError> {
        let name = self.dir.display().to_string();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| MetaError::io("list", &name, &e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| MetaError::io("list", &name, &e))?;
            if let Some(n) = entry.file_name().to_str() {
                names.push(n.to_owned());
            }
        }
        Ok(names)
    }

    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        match monoio::fs::read(self.dir.join(name)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(MetaError::io("read", name, &e)),
        }
    }

    async fn create(&self, name: &str) -> Result<(), MetaError> {
        let file = monoio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(name))
            .await
            .map_err(|e| MetaError::io("create", name, &e))?;
        self.files
            .borrow_mut()
            .insert(name.to_owned(), Rc::new(file));
        self.sync_dir()
    }

    async fn write_at(
        &self,
        name: &str,
        offset: u64,
        buf: Vec<u8>,
    ) -> (Result<(), MetaError>, Vec<u8>) {
        let file = match self.handle(name).await {
            Ok(f) => f,
            Err(e) => return (Err(e), buf),
        };
        let (res, buf) = file.write_all_at(buf, offset).await;
        (res.map_err(|e| MetaError::io("write", name, &e)), buf)
    }

    async fn sync(&self, name: &str) -> Result<(), MetaError> {
        let file = self.handle(name).await?;
        // fdatasync: the appended length is metadata needed to read the data, so it is synced.
        file.sync_data()
            .await
            .map_err(|e| MetaError::io("fsync", name, &e))
    }

    async fn truncate(&self, name: &str, len: u64) -> Result<(), MetaError> {
        let path = self.dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| {
                f.set_len(len)?;
                f.sync_all()
            })
            .map_err(|e| MetaError::io("truncate", name, &e))
    }

    async fn remove(&self, name: &str) -> Result<(), MetaError> {
        self.files.borrow_mut().remove(name);
        match std::fs::remove_file(self.dir.join(name)) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(MetaError::io("remove", name, &e)),
        }
    }
}
