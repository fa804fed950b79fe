//! `dir` sites: shards as files under a directory on a local disk, written and read with
//! `io_uring` through monoio's file API.
//!
//! ```text
//!  put_shard(k, n) ─► ROOT/.tmp/<k with '/'→'+'>.<core tag>.<seq>  (created new, O_EXCL)
//!  write(buf)      ─► write_all_at(buf, offset) ─► buf back
//!  finish()        ─► len == n? ─► fsync file ─► mkdir -p ROOT/<dirs of k> ─► rename(tmp, ROOT/k)
//!                     ─► fsync ROOT/<dir of k>          (fsync steps only with fsync = "always")
//!  abort()/drop    ─► unlink tmp
//! ```
//!
//! A shard is visible under its key only after the rename, and rename is atomic: a crash at
//! any point leaves either no file under the key or the whole shard. Leftover temporaries
//! live under `.tmp`, which no key can name (key segments never start with `.`), and are
//! removed by [`DirSite::sweep_temporaries`].
//!
//! Directory listing and the temporary sweep use blocking `std::fs` calls: `io_uring` has no
//! `getdents`, and both run only in background work (recovery, scrub), never on the data path.

use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut as _;
use monoio::fs::{File, OpenOptions};

use super::config::{DirSiteConfig, FsyncPolicy};
use super::health::{Admission, Health, HealthSnapshot};
use super::{check_key, ByteRange, ListEntry, ListPage, ShardInfo, SiteError, LIST_PAGE_MAX};

/// Name of the folder under the root that holds shards being written.
pub const TMP_DIR_NAME: &str = ".tmp";
/// Faults in a row that take a dir site down. Disks rarely fail transiently, so a few
/// consecutive I/O errors mean the disk is going.
pub const DIR_DOWN_AFTER_ERRORS: u32 = 3;
/// First wait before probing a down dir site (doubles up to the health module's cap).
pub const DIR_PROBE_INTERVAL: Duration = Duration::from_secs(1);

struct Inner {
    name: String,
    root: PathBuf,
    tmp: PathBuf,
    fsync: FsyncPolicy,
    health: RefCell<Health>,
    /// Distinguishes this process and core's temporaries from every other writer's.
    tag: String,
    seq: Cell<u64>,
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
        })))
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

    /// Starts a shard; see [`super::Site::put_shard`].
    pub async fn put_shard(&self, key: &str, total_len: u64) -> Result<DirShardWriter, SiteError> {
        check_dir_key(key)?;
        let started = self.admit()?;
        let seq = self.0.seq.get();
        self.0.seq.set(seq + 1);
        let tmp_name = format!("{}.{}.{seq}", key.replace('/', "+"), self.0.tag);
        let tmp_path = self.0.tmp.join(tmp_name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let mut opened = options.open(&tmp_path).await;
        if opened
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        {
            // The temporary folder vanished (a disk replaced or wiped under a running gateway):
            // recreate it if the root is there, so the site heals without a restart.
            opened = if self.0.tmp.parent().is_some_and(Path::is_dir)
                && std::fs::create_dir_all(&self.0.tmp).is_ok()
            {
                options.open(&tmp_path).await
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "site root is missing",
                ))
            };
        }
        let opened = opened.map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SiteError::RootMissing
            } else {
                SiteError::from_fs(&e)
            }
        });
        let file = self.record(started, opened)?;
        Ok(DirShardWriter {
            site: self.clone(),
            file: Some(file),
            tmp_path,
            final_path: self.path_of(key),
            total_len,
            written: 0,
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
        let result = walk(&self.0.root, "", prefix, continuation, &mut entries)
            .map_err(|e| SiteError::from_fs(&e));
        self.record(started, result)?;
        entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
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

/// Collects the files under `dir` (whose key prefix is `base`) that match `prefix` and sort
/// after `after`. Skips `.tmp` and anything whose name is not a valid key segment.
fn walk(
    dir: &Path,
    base: &str,
    prefix: &str,
    after: Option<&str>,
    out: &mut Vec<ListEntry>,
) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let key = if base.is_empty() {
            name
        } else {
            format!("{base}/{name}")
        };
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            // Descend only where keys under this folder can match the prefix.
            let folder = format!("{key}/");
            if folder.starts_with(prefix) || prefix.starts_with(&folder) {
                walk(&entry.path(), &key, prefix, after, out)?;
            }
        } else if file_type.is_file()
            && key.starts_with(prefix)
            && after.is_none_or(|after| key.as_str() > after)
        {
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
    tmp_path: PathBuf,
    final_path: PathBuf,
    total_len: u64,
    written: u64,
}

impl DirShardWriter {
    /// Appends `buf`; see [`super::ShardWriter::write`].
    pub async fn write(&mut self, buf: Vec<u8>) -> (Result<(), SiteError>, Vec<u8>) {
        let len = buf.len() as u64;
        if self.written + len > self.total_len {
            return (
                Err(SiteError::LengthMismatch {
                    expected: self.total_len,
                    actual: self.written + len,
                }),
                buf,
            );
        }
        let Some(file) = self.file.as_ref() else {
            return (Err(SiteError::Io(io::ErrorKind::BrokenPipe)), buf);
        };
        let started = Instant::now();
        let (result, buf) = file.write_all_at(buf, self.written).await;
        let result = result.map_err(|e| SiteError::from_fs(&e));
        if result.is_ok() {
            self.written += len;
        }
        (self.site.record(started, result), buf)
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
        // `file` is `Some` until commit or discard, and both consume the writer.
        let file = self
            .file
            .take()
            .ok_or(SiteError::Io(io::ErrorKind::BrokenPipe))?;
        if always {
            file.sync_all().await.map_err(fs)?;
        }
        file.close().await.map_err(fs)?;
        let parent = self
            .final_path
            .parent()
            .unwrap_or(&self.site.0.root)
            .to_path_buf();
        let mut created = false;
        if !parent.is_dir() {
            monoio::fs::create_dir_all(&parent).await.map_err(fs)?;
            created = true;
        }
        monoio::fs::rename(&self.tmp_path, &self.final_path)
            .await
            .map_err(fs)?;
        if always {
            // The rename is durable once the folder holding the new name is; folders created
            // for this shard must also be recorded in their parents, up to the root.
            let mut dir = parent.as_path();
            loop {
                sync_dir(dir).await.map_err(fs)?;
                if !created || dir == self.site.0.root {
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

    async fn discard(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = file.close().await;
        }
        let _ = monoio::fs::remove_file(&self.tmp_path).await;
    }

    /// Abandons the shard: the temporary is removed, nothing becomes visible.
    pub async fn abort(mut self) {
        self.discard().await;
    }
}

impl Drop for DirShardWriter {
    fn drop(&mut self) {
        // Dropped without finish or abort (the task was cancelled): remove the temporary now
        // with a quick blocking unlink rather than leave it to the sweep.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
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
