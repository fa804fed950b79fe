//! The cross-core mesh: bounded message channels that carry metadata requests to the core that
//! owns a key and bring the answer back.
//!
//! ```text
//!  core a ── Envelope{MetaRequest, reply} ──► inbox of core b ──► MetaStore::handle (core b)
//!        ◄──────────── MetaResponse (one-shot reply) ──────────────┘
//! ```
//!
//! Local requests skip the channel. Every inbox is bounded: a sender waits (backpressure)
//! instead of growing a queue.
//!
//! The mesh also carries the one piece of process-wide coordination: the [`BucketLock`], which
//! serializes bucket creates and deletes across cores (see `handlers::bucket`).

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use tessera_meta::{CoreId, FileStorage, MetaRequest, MetaResponse, MetaStore};

/// Messages queued per core inbox. A request is ~100 bytes plus its strings; 1024 in flight
/// per core covers every concurrent connection's metadata call at default limits, and a full
/// inbox makes senders wait instead of buffering without bound.
pub const INBOX_MESSAGES_MAX: usize = 1024;

/// One request on its way to another core.
pub struct Envelope {
    /// The request.
    pub request: MetaRequest,
    /// Where the answer goes.
    pub reply: flume::Sender<MetaResponse>,
}

/// The senders to every core's inbox; shared by all cores.
#[derive(Clone)]
pub struct Mesh {
    inboxes: Vec<flume::Sender<Envelope>>,
    bucket_lock: BucketLock,
}

/// A process-wide async lock, held by one bucket create or delete at a time while it checks
/// the bucket and broadcasts its change to every core.
///
/// Bucket records are copied on every core, and a change reaches the cores one by one. Without
/// the lock a second `CreateBucket` could see the bucket on its core while the first one's
/// broadcast had not reached the others yet, answer `BucketAlreadyOwnedByYou`, and the client's
/// next request could land on a core that still answers `NoSuchBucket`; two creates could both
/// answer 200, and a create and a delete could interleave core by core and leave the bucket on
/// some cores only. Under the lock, a bucket seen on one core has finished reaching every core.
///
/// A flag and the wakers of the waiting tasks behind a `std::sync::Mutex` that is only held for
/// a few instructions, never across an await. A release wakes every waiter and each tries
/// again: a waiter whose request was dropped meanwhile can then never strand the others, and
/// bucket changes are too rare for the extra polls to matter.
#[derive(Clone, Default)]
pub struct BucketLock(Arc<Mutex<LockState>>);

#[derive(Default)]
struct LockState {
    held: bool,
    waiters: Vec<Waker>,
}

/// Holds the [`BucketLock`] until dropped.
pub struct BucketGuard(Arc<Mutex<LockState>>);

/// Waiters remembered at most; more are woken at once to poll again (bounded memory whatever
/// the number of concurrent bucket requests).
const BUCKET_LOCK_WAITERS_MAX: usize = 4096;

impl BucketLock {
    /// Waits until the lock is free and takes it.
    pub async fn acquire(&self) -> BucketGuard {
        std::future::poll_fn(|cx| {
            let mut state = lock_state(&self.0);
            if !state.held {
                state.held = true;
                return Poll::Ready(BucketGuard(Arc::clone(&self.0)));
            }
            if state.waiters.len() < BUCKET_LOCK_WAITERS_MAX {
                state.waiters.push(cx.waker().clone());
            } else {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }
}

impl Drop for BucketGuard {
    fn drop(&mut self) {
        let waiters = {
            let mut state = lock_state(&self.0);
            assert!(
                state.held,
                "a bucket lock guard exists only while the lock is held"
            );
            state.held = false;
            std::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }
}

/// The lock's state; a panic while it was held cannot leave it inconsistent (every update is
/// one field write), so a poisoned mutex is used as is.
fn lock_state(state: &Mutex<LockState>) -> std::sync::MutexGuard<'_, LockState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Mesh {
    /// A mesh for `cores` cores and the inbox receiver of each.
    #[must_use]
    pub fn new(cores: usize) -> (Mesh, Vec<flume::Receiver<Envelope>>) {
        let (senders, receivers) = (0..cores)
            .map(|_| flume::bounded(INBOX_MESSAGES_MAX))
            .unzip();
        (
            Mesh {
                inboxes: senders,
                bucket_lock: BucketLock::default(),
            },
            receivers,
        )
    }

    /// Number of cores.
    #[must_use]
    pub fn cores(&self) -> usize {
        self.inboxes.len()
    }
}

/// A core's inbox is closed: it has stopped (shutdown) or died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable(pub CoreId);

/// One core's view of the metadata of all cores.
#[derive(Clone)]
pub struct MetaClient {
    /// This core.
    pub core: CoreId,
    /// This core's store.
    pub local: MetaStore<FileStorage>,
    mesh: Mesh,
}

impl std::fmt::Debug for MetaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaClient")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl MetaClient {
    /// A client for `core` with its local store.
    #[must_use]
    pub fn new(core: CoreId, local: MetaStore<FileStorage>, mesh: Mesh) -> Self {
        MetaClient { core, local, mesh }
    }

    /// Number of cores.
    #[must_use]
    pub fn cores(&self) -> usize {
        self.mesh.cores()
    }

    /// Takes the process-wide bucket lock ([`BucketLock`]).
    pub async fn lock_buckets(&self) -> BucketGuard {
        self.mesh.bucket_lock.acquire().await
    }

    /// Sends `request` to `core` (directly when it is this core) and waits for the answer.
    pub async fn call(
        &self,
        core: CoreId,
        request: MetaRequest,
    ) -> Result<MetaResponse, Unreachable> {
        if core == self.core {
            return Ok(self.local.handle(request).await);
        }
        let (reply, answer) = flume::bounded(1);
        self.mesh.inboxes[usize::from(core.0)]
            .send_async(Envelope { request, reply })
            .await
            .map_err(|_| Unreachable(core))?;
        answer.recv_async().await.map_err(|_| Unreachable(core))
    }

    /// Sends `request` to every core concurrently and returns the answers in core order.
    pub async fn broadcast(&self, request: &MetaRequest) -> Vec<Result<MetaResponse, Unreachable>> {
        let mut pending = Vec::with_capacity(self.cores());
        for core in 0..self.cores() {
            let client = self.clone();
            let request = request.clone();
            pending.push(monoio::spawn(async move {
                client.call(CoreId(core as u16), request).await
            }));
        }
        let mut answers = Vec::with_capacity(pending.len());
        for handle in pending {
            answers.push(handle.await);
        }
        answers
    }
}

/// Serves other cores' requests to this core's store until every sender is gone.
pub async fn serve_inbox(store: MetaStore<FileStorage>, inbox: flume::Receiver<Envelope>) {
    let store = Rc::new(store);
    while let Ok(envelope) = inbox.recv_async().await {
        let store = Rc::clone(&store);
        monoio::spawn(async move {
            let answer = store.handle(envelope.request).await;
            // The caller may have given up (its connection closed); nothing to do then.
            let _ = envelope.reply.send(answer);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::run;

    /// The bucket lock admits one holder at a time across threads: a second core waiting for
    /// it gets it only after the first drops its guard, and is woken across threads.
    #[test]
    fn bucket_lock_excludes_across_cores() {
        let lock = BucketLock::default();
        let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (first_has_it, wait_for_first) = std::sync::mpsc::channel();
        let first = {
            let (lock, held) = (lock.clone(), held.clone());
            std::thread::spawn(move || {
                run(async move {
                    let guard = lock.acquire().await;
                    held.store(true, std::sync::atomic::Ordering::SeqCst);
                    first_has_it.send(()).expect("test thread");
                    monoio::time::sleep(std::time::Duration::from_millis(100)).await;
                    held.store(false, std::sync::atomic::Ordering::SeqCst);
                    drop(guard);
                });
            })
        };
        wait_for_first.recv().expect("first thread");
        let second = {
            let (lock, held) = (lock.clone(), held.clone());
            std::thread::spawn(move || {
                run(async move {
                    let _guard = lock.acquire().await;
                    // The first holder cleared the flag before releasing.
                    !held.load(std::sync::atomic::Ordering::SeqCst)
                })
            })
        };
        first.join().expect("first thread");
        assert!(second.join().expect("second thread"));
        // The token is back: a third acquire succeeds at once.
        run(async move {
            drop(lock.acquire().await);
        });
    }
}
