//! Group durability for small shards: one `syncfs(2)` of a filesystem makes a whole batch of
//! newly written and linked shard files durable, instead of an fsync of each file and of each
//! file's folder.
//!
//! ```text
//!  commit(shard A) ─┐                       ┌─ batch 1: syncfs ─► wakes A, B
//!  commit(shard B) ─┼─► pending waiters ────┤
//!  commit(shard C) ─┘   (arriving during    └─ batch 2: syncfs ─► wakes C
//!                        batch 1 wait for batch 2)
//! ```
//!
//! A 4 KiB object over three shards cost six fsyncs, each punted by `io_uring` to a kernel
//! worker thread: `perf` of 4 KiB PUTs put a third of the gateway's samples in those workers'
//! thread switches. `syncfs` writes back every dirty page and inode of the filesystem and
//! commits its journal, so it covers the data, the inode and the directory entry of every
//! shard linked before it began. A waiter joins the batch that starts after it registered,
//! never one already running, so no shard is acknowledged on a sync that began before its
//! link.
//!
//! `io_uring` has no `syncfs`: each [`FsSync`] owns one OS thread that runs it on request.
//! The thread keeps one descriptor of the filesystem open for its whole life, so that a
//! writeback error anywhere on the filesystem since the descriptor was opened (which Linux
//! reports to each open descriptor once) fails the batch that sees it.
//!
//! One [`FsSync`] serves all dir sites of a core that live on the same filesystem (the embedded
//! default's three directories share one), found through a per-thread registry by device
//! number. It does not decide which shards use it; the site does (`dir/mod.rs`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// One waiter's place in a batch: its result, once the batch's sync returned.
#[derive(Default)]
struct Waiter {
    result: Cell<Option<Result<(), io::ErrorKind>>>,
    waker: RefCell<Option<Waker>>,
}

#[derive(Default)]
struct State {
    /// Waiters for the next sync (none of them may be served by one already running).
    pending: Vec<Rc<Waiter>>,
    /// A driver task is running batches.
    running: bool,
    /// Syncs run so far.
    syncs: u64,
    /// Waiters served so far.
    served: u64,
}

/// Batches durability requests for one filesystem on one core.
pub struct FsSync {
    state: RefCell<State>,
    requests: flume::Sender<()>,
    replies: flume::Receiver<Result<(), io::ErrorKind>>,
}

/// How many syncs served how many waiters (read by the tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsSyncStats {
    pub syncs: u64,
    pub served: u64,
}

thread_local! {
    static REGISTRY: RefCell<HashMap<u64, Rc<FsSync>>> = RefCell::new(HashMap::new());
}

impl FsSync {
    /// The core's batcher for the filesystem holding `dir`, made (with its thread) on first use.
    pub fn for_dir(dir: &Path) -> io::Result<Rc<FsSync>> {
        let device = std::fs::metadata(dir)?.dev();
        if let Some(found) = REGISTRY.with(|r| r.borrow().get(&device).cloned()) {
            return Ok(found);
        }
        let sync = Rc::new(FsSync::start(dir)?);
        REGISTRY.with(|r| r.borrow_mut().insert(device, Rc::clone(&sync)));
        Ok(sync)
    }

    fn start(dir: &Path) -> io::Result<FsSync> {
        let handle = std::fs::File::open(dir)?;
        let (requests, inbox) = flume::bounded::<()>(1);
        let (outbox, replies) = flume::bounded(1);
        std::thread::Builder::new()
            .name("tessera-syncfs".into())
            .spawn(move || {
                // Ends when the batcher (and with it the request sender) is dropped.
                while inbox.recv().is_ok() {
                    // SAFETY: `handle` is an open descriptor owned by this thread.
                    let rc = unsafe { libc::syncfs(handle.as_raw_fd()) };
                    let result = if rc == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::last_os_error().kind())
                    };
                    if outbox.send(result).is_err() {
                        break;
                    }
                }
            })?;
        Ok(FsSync {
            state: RefCell::new(State::default()),
            requests,
            replies,
        })
    }

    /// Waits until everything written on the filesystem before this call is durable.
    pub async fn sync(self: &Rc<Self>) -> io::Result<()> {
        let waiter = Rc::new(Waiter::default());
        let start_driver = {
            let mut st = self.state.borrow_mut();
            st.pending.push(Rc::clone(&waiter));
            !std::mem::replace(&mut st.running, true)
        };
        if start_driver {
            monoio::spawn(Rc::clone(self).drive());
        }
        WaitBatch(waiter).await.map_err(io::Error::from)
    }

    /// Figures so far.
    pub fn stats(&self) -> FsSyncStats {
        let st = self.state.borrow();
        FsSyncStats {
            syncs: st.syncs,
            served: st.served,
        }
    }

    /// Runs syncs while waiters are pending, each for the waiters that came before it.
    async fn drive(self: Rc<Self>) {
        loop {
            let batch = {
                let mut st = self.state.borrow_mut();
                if st.pending.is_empty() {
                    st.running = false;
                    return;
                }
                std::mem::take(&mut st.pending)
            };
            let result = self.run_one().await;
            {
                let mut st = self.state.borrow_mut();
                st.syncs += 1;
                st.served += batch.len() as u64;
            }
            for waiter in batch {
                waiter.result.set(Some(result));
                if let Some(waker) = waiter.waker.borrow_mut().take() {
                    waker.wake();
                }
            }
        }
    }

    async fn run_one(&self) -> Result<(), io::ErrorKind> {
        // The thread is gone only if it could not be kept running: report that as an error
        // rather than acknowledge shards nobody synced.
        if self.requests.send_async(()).await.is_err() {
            return Err(io::ErrorKind::BrokenPipe);
        }
        self.replies
            .recv_async()
            .await
            .unwrap_or(Err(io::ErrorKind::BrokenPipe))
    }
}

struct WaitBatch(Rc<Waiter>);

impl Future for WaitBatch {
    type Output = Result<(), io::ErrorKind>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(result) = self.0.result.get() {
            return Poll::Ready(result);
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_waiters_share_syncs_and_later_ones_get_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::test_support::run(async {
            let sync = FsSync::for_dir(dir.path()).expect("batcher");
            // The first waiter starts a sync at once; the nine that arrive while it runs
            // share the second.
            let waits: Vec<_> = (0..10)
                .map(|_| {
                    let sync = Rc::clone(&sync);
                    monoio::spawn(async move { sync.sync().await })
                })
                .collect();
            for wait in waits {
                wait.await.expect("synced");
            }
            let stats = sync.stats();
            assert_eq!(stats.served, 10);
            assert!(
                (1..=2).contains(&stats.syncs),
                "ten concurrent waiters took {} syncs",
                stats.syncs
            );
            // A waiter after the batches finished runs a sync of its own.
            sync.sync().await.expect("synced");
            assert_eq!(sync.stats().syncs, stats.syncs + 1);
        });
    }

    #[test]
    fn one_batcher_per_filesystem_per_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir(&a).expect("mkdir");
        std::fs::create_dir(&b).expect("mkdir");
        let first = FsSync::for_dir(&a).expect("batcher");
        let second = FsSync::for_dir(&b).expect("batcher");
        assert!(Rc::ptr_eq(&first, &second));
        let other_thread = {
            let a = a.clone();
            std::thread::spawn(move || {
                let mine = FsSync::for_dir(&a).expect("batcher");
                Rc::as_ptr(&mine) as usize
            })
            .join()
            .expect("thread")
        };
        assert_ne!(other_thread, Rc::as_ptr(&first) as usize);
    }
}
