//! `dir` sites: shards as files under a directory on a local disk, written and read with
//! `io_uring` through monoio's file API.
//!
//! ```text
//!  put_shard(k, n) ─► unnamed file in ROOT/<dir of k> (O_TMPFILE; O_DIRECT if n ≥ 256 KiB)
//!                     or, where unsupported, ROOT/.tmp/<k with '/'→'+'>.<core tag>.<seq>
//!  write(buf)      ─► buffered: write_all_at(buf, offset)
//!                     direct:   copy into an aligned staging buffer, write whole blocks
//!  write_chunk(cb) ─► direct:   staged tail into cb's head room, write cb's whole blocks
//!                               from cb itself, stage the rest (under one block)
//!  finish()        ─► len == n? ─► last unaligned bytes (buffered) ─► fsync file
//!                     ─► link (or rename) to ROOT/k ─► fsync ROOT/<dir of k>
//!                                                  (fsync steps only with fsync = "always")
//!                     small shards with group_sync: no fsyncs, one syncfs per batch after
//!                     the link (`group_sync.rs`)
//!  abort()/drop    ─► close (an unnamed file vanishes) / unlink the .tmp name
//! ```
//!
//! A shard is visible under its key only after the link or rename, and both are atomic: a
//! crash at any point leaves either no file under the key or the whole shard (see
//! `create.rs`). Leftover temporaries live under `.tmp`, which no key can name (key segments
//! never start with `.`), and are removed by [`DirSite::sweep_temporaries`]. Why large shards
//! skip the page cache: `staging.rs`.
//!
//! Directory listing and the temporary sweep use blocking `std::fs` calls: `io_uring` has no
//! `getdents`, and both run only in background work (recovery, scrub), never on the data path.

use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf as _, IoBufMut as _};
use monoio::fs::File;

use self::create::{clear_direct, link_unnamed, write_all_at_now, Pending, Support};
use self::staging::{AlignedBuf, ALIGN};
use super::config::{DirSiteConfig, FsyncPolicy};
use super::health::{Admission, Health, HealthSnapshot};
use super::{
    check_key, ByteRange, ChunkBuf, ListEntry, ListPage, ShardBytes, ShardInfo, SiteError,
    LIST_PAGE_MAX,
};

/// Name of the folder under the root that holds shards being written.
pub const TMP_DIR_NAME: &str = ".tmp";
/// Faults in a row that take a dir site down. Disks rarely fail transiently, so a few
/// consecutive I/O errors mean the disk is going.
pub const DIR_DOWN_AFTER_ERRORS: u32 = 3;
/// First wait before probing a down dir site (doubles up to the health module's cap).
pub const DIR_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Shards at least this long are written with `O_DIRECT` (where the site allows it); smaller
/// ones cost more in metadata than in copying and go through the page cache.
pub const DIRECT_MIN_BYTES: u64 = staging::STAGING_BYTES as u64;
/// Shards up to this long are written with plain `pwrite` on the core's thread (see
/// `create::write_all_at_now`): a page-cache copy of at most this much is a few microseconds.
pub const SYNC_WRITE_MAX_BYTES: u64 = 64 * 1024;
/// With `group_sync`, shards shorter than this are made durable in batches by one `syncfs` of
/// the filesystem (see `group_sync.rs`): the shards of objects up to about 16 MiB at ec 2+1.
/// Longer ones keep their own fsyncs, which cost little next to their bytes.
pub const GROUP_SYNC_BELOW_BYTES: u64 = 8 << 20;

mod create;
mod group_sync;
mod staging;

use self::group_sync::FsSync;
pub use self::group_sync::FsSyncStats;

struct Inner {
    name: String,
    root: PathBuf,
    tmp: PathBuf,
    fsync: FsyncPolicy,
    health: RefCell<Health>,
    /// Distinguishes this process and core's temporaries from every other writer's.
    tag: String,
    seq: Cell<u64>,
    support: Support,
    /// `group_sync` in the config.
    group_sync: bool,
    /// The core's batcher for this site's filesystem, found on the first grouped commit.
    batcher: RefCell<Option<Rc<FsSync>>>,
}

/// A dir site on one core. Cheap to clone (shared within the core).
#[derive(Clone)]
pub struct DirSite(Rc<Inner>);

/// Checks that a key is a safe relative path: segments of `[0-9A-Za-z._-]`, none empty and
/// none starting with `.` (so no `..`, and no way to name the `.tmp` folder).
fn check_dir_key(key: &str) -> Result<(), SiteError> {
    check_key(key)?;
    for segment in key.split('/') {
        let ok = !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(SiteError::InvalidKey);
        }
    }
    Ok(())
}

impl DirSite {
    /// Opens the site: the root must exist and be a directory; `.tmp` is created in it.
    pub fn open(config: &DirSiteConfig) -> Result<DirSite, SiteError> {
        match std::fs::metadata(&config.path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(SiteError::RootMissing),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(SiteError::RootMissing)
            }
            Err(err) => return Err(SiteError::from_fs(&err)),
        }
        let tmp = config.path.join(TMP_DIR_NAME);
        if let Err(err) = std::fs::create_dir(&tmp) {
            if err.kind() != io::ErrorKind::AlreadyExists {
                return Err(SiteError::from_fs(&err));
            }
        }
        let mut random = [0u8; 8];
        getrandom::getrandom(&mut random).map_err(|_| SiteError::Io(io::ErrorKind::Other))?;
        Ok(DirSite(Rc::new(Inner {
            name: config.name.clone(),
            root: config.path.clone(),
            tmp,
            fsync: config.fsync,
            health: RefCell::new(Health::new(DIR_DOWN_AFTER_ERRORS, DIR_PROBE_INTERVAL)),
            tag: format!("{}-{}", std::process::id(), hex::encode(random)),
            seq: Cell::new(0),
            support: Support::new(config.direct_io, config.unnamed_files),
            group_sync: config.group_sync,
            batcher: RefCell::new(None),
        })))
    }

    /// How many `syncfs` calls have served how many shard commits on this core's batcher for
    /// the site's filesystem (zero before the first grouped commit).
    #[must_use]
    pub fn group_sync_stats(&self) -> FsSyncStats {
        self.0
            .batcher
            .borrow()
            .as_ref()
            .map(|b| b.stats())
            .unwrap_or_default()
    }

    fn batcher(&self) -> io::Result<Rc<FsSync>> {
        if let Some(found) = self.0.batcher.borrow().as_ref() {
            return Ok(Rc::clone(found));
        }
        let found = FsSync::for_dir(&self.0.root)?;
        *self.0.batcher.borrow_mut() = Some(Rc::clone(&found));
        Ok(found)
    }

    /// The site's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Health figures.
    #[must_use]
    pub fn health(&self) -> HealthSnapshot {
        self.0.health.borrow().snapshot()
    }

    fn admit(&self) -> Result<Instant, SiteError> {
        let now = Instant::now();
        match self.0.health.borrow_mut().admit(now) {
            Admission::Go | Admission::Probe => Ok(now),
            Admission::Reject => Err(SiteError::Down),
        }
    }

    /// Records the outcome of an operation begun at `started`; turns "not found" under a
    /// vanished root into `RootMissing`.
    fn record<T>(&self, started: Instant, result: Result<T, SiteError>) -> Result<T, SiteError> {
        let result = match result {
            Err(SiteError::NotFound) if !self.0.root.is_dir() => Err(SiteError::RootMissing),
            other => other,
        };
        let mut health = self.0.health.borrow_mut();
        match &result {
            Ok(_) => health.record_success(started.elapsed()),
            Err(err) => health.record_failure(err.health_effect(), Instant::now()),
        }
        result
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.0.root.join(key)
    }

    /// A fresh name under `.tmp` for a shard of `key`.
    fn tmp_path_for(&self, key: &str) -> PathBuf {
        let seq = self.0.seq.get();
        self.0.seq.set(seq + 1);
        let name = format!("{}.{}.{seq}", key.replace('/', "+"), self.0.tag);
        self.0.tmp.join(name)
    }

    /// Starts a shard; see [`super::Site::put_shard`].
    pub async fn put_shard(&self, key: &str, total_len: u64) -> Result<DirShardWriter, SiteError> {
        check_dir_key(key)?;
        let started = self.admit()?;
        let final_path = self.path_of(key);
        let direct = total_len >= DIRECT_MIN_BYTES;
        let named = || self.tmp_path_for(key);
        let mut created = self
            .0
            .support
            .create(&self.0.root, &final_path, named, direct)
            .await;
        if created
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        {
            // The temporary folder vanished (a disk replaced or wiped under a running gateway):
            // recreate it if the root is there, so the site heals without a restart.
            created = if self.0.root.is_dir() && std::fs::create_dir_all(&self.0.tmp).is_ok() {
                let named = || self.tmp_path_for(key);
                self.0
                    .support
                    .create(&self.0.root, &final_path, named, direct)
                    .await
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "site root is missing",
                ))
            };
        }
        let created = created.map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SiteError::RootMissing
            } else {
                SiteError::from_fs(&e)
            }
        });
        let created = self.record(started, created)?;
        Ok(DirShardWriter {
            site: self.clone(),
            file: Some(created.file),
            pending: created.pending,
            created_dirs: created.made_folders,
            staging: created.direct.then(AlignedBuf::take),
            final_path,
            total_len,
            written: 0,
            on_disk: 0,
        })
    }

    /// Reads a range; see [`super::Site::get_range`].
    pub async fn get_range(
        &self,
        key: &str,
        range: ByteRange,
        mut buf: Vec<u8>,
    ) -> (Result<usize, SiteError>, Vec<u8>) {
        buf.clear();
        if let Err(err) = check_dir_key(key) {
            return (Err(err), buf);
        }
        if range.len == 0 || range.len > buf.capacity() as u64 {
            return (Err(SiteError::InvalidRange), buf);
        }
        let started = match self.admit() {
            Ok(started) => started,
            Err(err) => return (Err(err), buf),
        };
        let (result, buf) = self.read_range(key, range, buf).await;
        (self.record(started, result), buf)
    }

    async fn read_range(
        &self,
        key: &str,
        range: ByteRange,
        mut buf: Vec<u8>,
    ) -> (Result<usize, SiteError>, Vec<u8>) {
        let file = match File::open(self.path_of(key)).await {
            Ok(file) => file,
            Err(err) => return (Err(SiteError::from_fs(&err)), buf),
        };
        let want = range.len as usize;
        while buf.len() < want {
            let filled = buf.len();
            let slice = buf.slice_mut(filled..want);
            let (result, slice) = file.read_at(slice, range.start + filled as u64).await;
            buf = slice.into_inner();
            match result {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) => {
                    let _ = file.close().await;
                    return (Err(SiteError::from_fs(&err)), buf);
                }
            }
        }
        let _ = file.close().await;
        if buf.is_empty() {
            // Nothing at `start`: the range begins at or past the end of the shard.
            return (Err(SiteError::InvalidRange), buf);
        }
        (Ok(buf.len()), buf)
    }

    /// The length of a shard.
    pub async fn head(&self, key: &str) -> Result<ShardInfo, SiteError> {
        check_dir_key(key)?;
        let started = self.admit()?;
        let result = monoio::fs::metadata(self.path_of(key))
            .await
            .map(|meta| ShardInfo { len: meta.len() })
            .map_err(|e| SiteError::from_fs(&e));
        self.record(started, result)
    }

    /// Deletes a shard; a missing shard is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), SiteError> {
        check_dir_key(key)?;
        let started = self.admit()?;
        let result = match monoio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound && self.0.root.is_dir() => Ok(()),
            Err(err) => Err(SiteError::from_fs(&err)),
        };
        self.record(started, result)
    }

    /// Deletes many shards one by one; see [`super::Site::delete_many`].
    pub async fn delete_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, SiteError)>, SiteError> {
        if keys.len() > super::DELETE_BATCH_MAX {
            return Err(SiteError::BatchTooLarge);
        }
        let mut failed = Vec::new();
        for key in keys {
            match self.delete(key).await {
                Ok(()) => {}
                // A down site fails the whole batch rather than each key.
                Err(SiteError::Down) => return Err(SiteError::Down),
                Err(err) => failed.push((key.clone(), err)),
            }
        }
        Ok(failed)
    }

    /// One page of keys under `prefix` after `continuation`, in byte order.
    #[allow(clippy::unused_async)] // Same signature as the S3 site's; the walk is blocking std::fs.
    pub async fn list(
        &self,
        prefix: &str,
        continuation: Option<&str>,
    ) -> Result<ListPage, SiteError> {
        let started = self.admit()?;
        let mut entries = Vec::new();
        let result = walk(
            &self.0.root,
            "",
            prefix,
            continuation,
            LIST_PAGE_MAX + 1,
            &mut entries,
        )
        .map_err(|e| SiteError::from_fs(&e));
        self.record(started, result)?;
        let more = entries.len() > LIST_PAGE_MAX;
        entries.truncate(LIST_PAGE_MAX);
        let continuation = if more {
            entries.last().map(|e| e.key.clone())
        } else {
            None
        };
        Ok(ListPage {
            entries,
            continuation,
        })
    }

    /// Checks that the root is still a directory; updates health.
    pub async fn probe(&self) -> Result<(), SiteError> {
        let started = Instant::now();
        let result = match monoio::fs::metadata(&self.0.root).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(SiteError::RootMissing),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(SiteError::RootMissing),
            Err(err) => Err(SiteError::from_fs(&err)),
        };
        self.record(started, result)
    }

    /// Removes temporaries older than `age_min` (left by crashed or dropped writers) and
    /// returns how many went. Blocking; for the background collector.
    pub fn sweep_temporaries(&self, age_min: Duration) -> Result<usize, SiteError> {
        let mut removed = 0;
        let dir = std::fs::read_dir(&self.0.tmp).map_err(|e| SiteError::from_fs(&e))?;
        for entry in dir {
            let entry = entry.map_err(|e| SiteError::from_fs(&e))?;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= age_min);
            if old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Collects, in key order, up to `limit` files under `dir` (whose key prefix is `base`) that
/// match `prefix` and sort after `after`. Skips `.tmp` and anything whose name is not a valid
/// key segment.
///
/// Siblings are visited in the order of their keys' bytes: a folder `a` as `a/` (every key
/// under it sorts in one block right after `a/`), so a file `a-b` comes before the folder's
/// keys and a file `a0` after them. Folders whose keys all sort at or before `after`, or that
/// cannot hold `prefix`, are not opened, and the walk stops at `limit`: a page costs its own
/// entries plus one folder listing per level, not a walk of the whole site.
fn walk(
    dir: &Path,
    base: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    out: &mut Vec<ListEntry>,
) -> io::Result<()> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let file_type = entry.file_type()?;
        let key = if base.is_empty() {
            name
        } else {
            format!("{base}/{name}")
        };
        if file_type.is_dir() {
            children.push((format!("{key}/"), true, entry));
        } else if file_type.is_file() {
            children.push((key, false, entry));
        }
    }
    children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (key, is_dir, entry) in children {
        if out.len() >= limit {
            break;
        }
        if is_dir {
            // `key` is the folder's prefix, ending in '/'.
            let holds_prefix = key.starts_with(prefix) || prefix.starts_with(&key);
            let all_before =
                after.is_some_and(|after| key.as_str() < after && !after.starts_with(&key));
            if holds_prefix && !all_before {
                let base = &key[..key.len() - 1];
                walk(&entry.path(), base, prefix, after, limit, out)?;
            }
        } else if key.starts_with(prefix) && after.is_none_or(|after| key.as_str() > after) {
            let len = entry.metadata()?.len();
            out.push(ListEntry { key, len });
        }
    }
    Ok(())
}

/// A shard being written to a dir site.
pub struct DirShardWriter {
    site: DirSite,
    file: Option<File>,
    pending: Pending,
    created_dirs: bool,
    /// Present for `O_DIRECT` files: bytes not yet written, less than one aligned write.
    staging: Option<AlignedBuf>,
    final_path: PathBuf,
    total_len: u64,
    /// Bytes accepted from the caller.
    written: u64,
    /// Direct writers: bytes in the file (behind `written` by what `staging` holds).
    on_disk: u64,
}

impl DirShardWriter {
    /// Appends the payload of `buf`; see [`super::ShardWriter::write`].
    pub async fn write<B: ShardBytes>(&mut self, buf: B) -> (Result<(), SiteError>, B) {
        let len = buf.payload().len() as u64;
        if let Err(err) = self.check_room(len) {
            return (Err(err), buf);
        }
        let Some(file) = self.file.as_ref() else {
            return (Err(SiteError::Io(io::ErrorKind::BrokenPipe)), buf);
        };
        let started = Instant::now();
        let (result, buf) = if self.staging.is_some() {
            let result = self.stage(buf.payload()).await;
            (result, buf)
        } else if self.total_len <= SYNC_WRITE_MAX_BYTES {
            let result = write_all_at_now(file, buf.payload(), self.written);
            (result.map_err(|e| SiteError::from_fs(&e)), buf)
        } else {
            let range = buf.payload_range();
            let (result, slice) = file.write_all_at(buf.slice(range), self.written).await;
            (
                result.map_err(|e| SiteError::from_fs(&e)),
                slice.into_inner(),
            )
        };
        if result.is_ok() {
            self.written += len;
        }
        (self.site.record(started, result), buf)
    }

    /// The head room a [`DirShardWriter::write_chunk`] buffer should leave: the staged bytes
    /// of a direct writer when they are under one aligned block, else 0.
    #[must_use]
    pub fn head_room(&self) -> usize {
        match &self.staging {
            Some(staging) if staging.len() < ALIGN => staging.len(),
            _ => 0,
        }
    }

    /// Appends the payload of `buf`. A direct writer whose staged bytes fit `buf`'s head room
    /// exactly copies them in front and writes the aligned part from `buf` itself, keeping
    /// only the unaligned rest; anything else goes through [`DirShardWriter::write`].
    pub async fn write_chunk(&mut self, mut buf: ChunkBuf) -> (Result<(), SiteError>, ChunkBuf) {
        let head = buf.head();
        let fits = match &self.staging {
            Some(staging) => staging.len() == head && head + buf.payload().len() >= ALIGN,
            None => false,
        };
        if !fits {
            return self.write(buf).await;
        }
        let len = buf.payload().len() as u64;
        if let Err(err) = self.check_room(len) {
            return (Err(err), buf);
        }
        let (Some(file), Some(mut staging)) = (self.file.as_ref(), self.staging.take()) else {
            return (Err(SiteError::Io(io::ErrorKind::BrokenPipe)), buf);
        };
        let started = Instant::now();
        buf.head_mut().copy_from_slice(staging.held());
        let aligned = buf.all().len() / ALIGN * ALIGN;
        let (result, slice) = file.write_all_at(buf.slice(..aligned), self.on_disk).await;
        let buf = slice.into_inner();
        let result = match result {
            Ok(()) => {
                self.on_disk += aligned as u64;
                self.written += len;
                staging.consume_front(head);
                staging.push(&buf.all()[aligned..]);
                Ok(())
            }
            Err(err) => Err(SiteError::from_fs(&err)),
        };
        self.staging = Some(staging);
        (self.site.record(started, result), buf)
    }

    fn check_room(&self, len: u64) -> Result<(), SiteError> {
        if self.written + len > self.total_len {
            return Err(SiteError::LengthMismatch {
                expected: self.total_len,
                actual: self.written + len,
            });
        }
        Ok(())
    }

    /// Copies `data` into the staging buffer, writing it out each time it fills.
    async fn stage(&mut self, mut data: &[u8]) -> Result<(), SiteError> {
        while !data.is_empty() {
            let staging = self
                .staging
                .as_mut()
                .ok_or(SiteError::Io(io::ErrorKind::BrokenPipe))?;
            let taken = staging.push(data);
            data = &data[taken..];
            if staging.is_full() {
                self.write_staged(false).await?;
            }
        }
        Ok(())
    }

    /// Writes the staged whole blocks with `O_DIRECT`; with `all`, then the unaligned rest
    /// through the page cache (the shard's last bytes).
    async fn write_staged(&mut self, all: bool) -> Result<(), SiteError> {
        let fs = |e: io::Error| SiteError::from_fs(&e);
        let file = self
            .file
            .as_ref()
            .ok_or(SiteError::Io(io::ErrorKind::BrokenPipe))?;
        let Some(staging) = self.staging.take() else {
            return Ok(());
        };
        let mut staging = staging;
        let aligned = staging.aligned_len();
        if aligned > 0 {
            let (result, slice) = file
                .write_all_at(staging.slice(..aligned), self.on_disk)
                .await;
            staging = slice.into_inner();
            if let Err(err) = result {
                self.staging = Some(staging);
                return Err(fs(err));
            }
            staging.consume_front(aligned);
            self.on_disk += aligned as u64;
        }
        if all && !staging.is_empty() {
            // Under one block, through the page cache: a plain `pwrite` on this thread, since
            // `io_uring` would hand a buffered ext4 write to a worker (a thread switch each).
            clear_direct(file).map_err(fs)?;
            let rest = staging.len();
            write_all_at_now(file, staging.held(), self.on_disk).map_err(fs)?;
            staging.consume_front(rest);
            self.on_disk += rest as u64;
        }
        self.staging = Some(staging);
        Ok(())
    }

    /// Makes the shard durable and visible; see [`super::ShardWriter::finish`].
    pub async fn finish(mut self) -> Result<(), SiteError> {
        if self.written != self.total_len {
            let err = SiteError::LengthMismatch {
                expected: self.total_len,
                actual: self.written,
            };
            self.discard().await;
            return Err(err);
        }
        let started = Instant::now();
        let result = self.commit().await;
        if result.is_err() {
            self.discard().await;
        }
        self.site.record(started, result)
    }

    async fn commit(&mut self) -> Result<(), SiteError> {
        let fs = |e: io::Error| SiteError::from_fs(&e);
        let always = self.site.0.fsync == FsyncPolicy::Always;
        let grouped = always && self.site.0.group_sync && self.total_len < GROUP_SYNC_BELOW_BYTES;
        self.write_staged(true).await?;
        // `file` is `Some` until commit or discard, and both consume the writer.
        let file = self
            .file
            .take()
            .ok_or(SiteError::Io(io::ErrorKind::BrokenPipe))?;
        if always && !grouped {
            file.sync_all().await.map_err(fs)?;
        }
        let parent = self
            .final_path
            .parent()
            .unwrap_or(&self.site.0.root)
            .to_path_buf();
        match self.pending.clone() {
            Pending::Unnamed => {
                let linked = self.link(&file, &parent).await;
                file.close().await.map_err(fs)?;
                linked?;
            }
            Pending::Named(tmp_path) => {
                file.close().await.map_err(fs)?;
                if !parent.is_dir() {
                    if !self.site.0.root.is_dir() {
                        return Err(SiteError::RootMissing);
                    }
                    monoio::fs::create_dir_all(&parent).await.map_err(fs)?;
                    self.created_dirs = true;
                }
                monoio::fs::rename(&tmp_path, &self.final_path)
                    .await
                    .map_err(fs)?;
            }
        }
        if grouped {
            // Data, inode, name and any new folders: all written back by the next syncfs.
            let batcher = self.site.batcher().map_err(fs)?;
            batcher.sync().await.map_err(fs)?;
        } else if always {
            // The new name is durable once the folder holding it is; folders created for this
            // shard must also be recorded in their parents, up to the root.
            let mut dir = parent.as_path();
            loop {
                sync_dir(dir).await.map_err(fs)?;
                if !self.created_dirs || dir == self.site.0.root {
                    break;
                }
                match dir.parent() {
                    Some(up) if up.starts_with(&self.site.0.root) => dir = up,
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// Names the unnamed file under the key. A key that already has a file (a repair
    /// re-creating a damaged shard) is replaced atomically through a `.tmp` name.
    async fn link(&mut self, file: &File, parent: &Path) -> Result<(), SiteError> {
        let fs = |e: io::Error| SiteError::from_fs(&e);
        match link_unnamed(file, &self.final_path) {
            Ok(()) => Ok(()),
            Err(err)
                if err.kind() == io::ErrorKind::NotFound
                    && !parent.is_dir()
                    && self.site.0.root.is_dir() =>
            {
                // The key's folder went away since the open (an operator's cleanup).
                monoio::fs::create_dir_all(parent).await.map_err(fs)?;
                self.created_dirs = true;
                link_unnamed(file, &self.final_path).map_err(fs)
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let key = self
                    .final_path
                    .strip_prefix(&self.site.0.root)
                    .ok()
                    .and_then(Path::to_str)
                    .unwrap_or("shard");
                let tmp_path = self.site.tmp_path_for(key);
                link_unnamed(file, &tmp_path).map_err(fs)?;
                self.pending = Pending::Named(tmp_path.clone());
                monoio::fs::rename(&tmp_path, &self.final_path)
                    .await
                    .map_err(fs)?;
                self.pending = Pending::Unnamed;
                Ok(())
            }
            Err(err) => Err(fs(err)),
        }
    }

    async fn discard(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = file.close().await;
        }
        if let Pending::Named(tmp_path) = &self.pending {
            let _ = monoio::fs::remove_file(tmp_path).await;
        }
    }

    /// Abandons the shard: nothing becomes visible, the partial file is removed.
    pub async fn abort(mut self) {
        self.discard().await;
    }
}

impl Drop for DirShardWriter {
    fn drop(&mut self) {
        // Dropped without finish or abort (the task was cancelled): remove a named temporary
        // now with a quick blocking unlink rather than leave it to the sweep (an unnamed file
        // goes with its descriptor).
        if self.file.take().is_some() {
            if let Pending::Named(tmp_path) = &self.pending {
                let _ = std::fs::remove_file(tmp_path);
            }
        }
    }
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let handle = std::fs::File::open(dir)?;
    let file = File::from_std(handle)?;
    file.sync_all().await?;
    file.close().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_safe_relative_paths() {
        // Engine ids pass; anything that could escape the root or name `.tmp` is refused.
        for good in ["a", "0f/3a/0f3a9c", "x-1_y.z"] {
            assert!(check_dir_key(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "../a", "a/../b", ".tmp/x", "a b", "a\0b",
        ] {
            assert!(
                matches!(check_dir_key(bad), Err(SiteError::InvalidKey)),
                "{bad:?}"
            );
        }
        assert!(matches!(
            check_dir_key(&"a".repeat(super::super::KEY_BYTES_MAX + 1)),
            Err(SiteError::InvalidKey)
        ));
    }
}
