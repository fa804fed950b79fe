//! The storage trait the log writes through, and an in-memory implementation that can produce
//! the image a crash would leave.
//!
//! ```text
//!  MetaStore ──create / write_at / sync / truncate / remove / read / list──► Storage
//!                                                   ├─ FileStorage (io_uring, crate::store)
//!                                                   └─ MemStorage (tests, crash images)
//! ```
//! Contract: `write_at` data may be lost or torn until `sync` of that file returns; `create`,
//! `truncate` and `remove` are durable when they return.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use crate::MetaError;

/// A flat directory of files, as the metadata log needs it. All futures run on one core.
pub trait Storage {
    /// Names of all files.
    fn list(&self) -> impl Future<Output = Result<Vec<String>, MetaError>>;
    /// The whole file, or `None` when it does not exist.
    fn read(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>, MetaError>>;
    /// Creates an empty file (emptying an existing one); durable on return.
    fn create(&self, name: &str) -> impl Future<Output = Result<(), MetaError>>;
    /// Writes all of `buf` at `offset` and hands the buffer back for reuse.
    fn write_at(
        &self,
        name: &str,
        offset: u64,
        buf: Vec<u8>,
    ) -> impl Future<Output = (Result<(), MetaError>, Vec<u8>)>;
    /// Makes every completed write to the file durable.
    fn sync(&self, name: &str) -> impl Future<Output = Result<(), MetaError>>;
    /// Cuts the file to `len` bytes; durable on return.
    fn truncate(&self, name: &str, len: u64) -> impl Future<Output = Result<(), MetaError>>;
    /// Removes the file if it exists; durable on return.
    fn remove(&self, name: &str) -> impl Future<Output = Result<(), MetaError>>;
}

#[derive(Debug, Clone, Default)]
struct MemFile {
    data: Vec<u8>,
    /// Bytes known durable: the length at the last sync, cut by truncation.
    durable: usize,
}

/// In-memory storage. Clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    files: Rc<RefCell<BTreeMap<String, MemFile>>>,
    /// When set, the write or sync numbered by this countdown fails (tests of poisoning).
    fail_in: Rc<RefCell<Option<u64>>>,
}

/// A small deterministic generator (`SplitMix64`) so crash images are reproducible from a seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }
}

impl MemStorage {
    #[must_use]
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Makes the `n`-th next write or sync (1-based) fail with an I/O error.
    pub fn fail_after(&self, n: u64) {
        *self.fail_in.borrow_mut() = Some(n);
    }

    fn injected_failure(&self, op: &'static str, name: &str) -> Result<(), MetaError> {
        let mut fail = self.fail_in.borrow_mut();
        if let Some(n) = fail.as_mut() {
            *n -= 1;
            if *n == 0 {
                *fail = None;
                return Err(MetaError::io(
                    op,
                    name,
                    &std::io::Error::other("injected failure"),
                ));
            }
        }
        Ok(())
    }

    /// The storage a crash at this instant could leave: every file keeps its durable bytes and
    /// a random prefix of its unsynced tail, whose last bytes may be torn (zero-filled or
    /// garbage). Never touches durable bytes.
    #[must_use]
    pub fn crash_image(&self, seed: u64) -> MemStorage {
        let mut rng = SplitMix64(seed);
        let mut files = BTreeMap::new();
        for (name, file) in self.files.borrow().iter() {
            let unsynced = file.data.len() - file.durable;
            let keep = file.durable + rng.below(unsynced as u64 + 1) as usize;
            let mut data = file.data[..keep].to_vec();
            let torn_room = keep - file.durable;
            match rng.below(4) {
                // A torn sector: the last few kept bytes never made it and read as garbage.
                0 if torn_room > 0 => {
                    let n = 1 + rng.below(torn_room.min(64) as u64) as usize;
                    for b in &mut data[keep - n..] {
                        *b = rng.next_u64() as u8;
                    }
                }
                // Space the file system allocated but whose data never arrived.
                1 => data.resize(keep + rng.below(200) as usize, 0),
                _ => {}
            }
            let durable = data.len();
            files.insert(name.clone(), MemFile { data, durable });
        }
        MemStorage {
            files: Rc::new(RefCell::new(files)),
            fail_in: Rc::default(),
        }
    }

    /// Mutable access to a file's bytes (tests that damage files on purpose).
    pub fn with_file<R>(&self, name: &str, f: impl FnOnce(&mut Vec<u8>) -> R) -> Option<R> {
        let mut files = self.files.borrow_mut();
        let file = files.get_mut(name)?;
        let r = f(&mut file.data);
        file.durable = file.durable.min(file.data.len());
        Some(r)
    }

    /// Total bytes held by all files.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.files.borrow().values().map(|f| f.data.len()).sum()
    }
}

/// Returns `Pending` once (waking itself), then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        // monoio polls a task that wakes itself again at once, starving the others; a spawned
        // task that wakes it puts it behind everything already queued instead.
        let waker = cx.waker().clone();
        monoio::spawn(async move { waker.wake() });
        std::task::Poll::Pending
    }
}

fn missing(op: &'static str, name: &str) -> MetaError {
    MetaError::io(
        op,
        name,
        &std::io::Error::from(std::io::ErrorKind::NotFound),
    )
}

impl Storage for MemStorage {
    async fn list(&self) -> Result<Vec<String>, MetaError> {
        Ok(self.files.borrow().keys().cloned().collect())
    }

    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        Ok(self.files.borrow().get(name).map(|f| f.data.clone()))
    }

    async fn create(&self, name: &str) -> Result<(), MetaError> {
        self.files
            .borrow_mut()
            .insert(name.to_owned(), MemFile::default());
        Ok(())
    }

    async fn write_at(
        &self,
        name: &str,
        offset: u64,
        buf: Vec<u8>,
    ) -> (Result<(), MetaError>, Vec<u8>) {
        if let Err(e) = self.injected_failure("write", name) {
            return (Err(e), buf);
        }
        let mut files = self.files.borrow_mut();
        let Some(file) = files.get_mut(name) else {
            return (Err(missing("write", name)), buf);
        };
        let offset = offset as usize;
        let end = offset + buf.len();
        if file.data.len() < end {
            file.data.resize(end, 0);
        }
        file.data[offset..end].copy_from_slice(&buf);
        file.durable = file.durable.min(offset);
        (Ok(()), buf)
    }

    async fn sync(&self, name: &str) -> Result<(), MetaError> {
        // An fsync takes time: yielding once lets other tasks append meanwhile (exercising group
        // commit) and lets tests take crash images while written data is not yet durable.
        YieldOnce(false).await;
        self.injected_failure("sync", name)?;
        let mut files = self.files.borrow_mut();
        let file = files.get_mut(name).ok_or_else(|| missing("sync", name))?;
        file.durable = file.data.len();
        Ok(())
    }

    async fn truncate(&self, name: &str, len: u64) -> Result<(), MetaError> {
        let mut files = self.files.borrow_mut();
        let file = files
            .get_mut(name)
            .ok_or_else(|| missing("truncate", name))?;
        file.data.truncate(len as usize);
        file.durable = file.data.len();
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<(), MetaError> {
        self.files.borrow_mut().remove(name);
        Ok(())
    }
}
