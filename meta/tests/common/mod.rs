//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;

use tessera_meta::{testkit, MemStorage, MetaStore, Storage, StoreConfig};

/// Runs `f` on a fresh single-threaded monoio runtime (epoll driver: in-memory storage needs no
/// `io_uring`).
pub fn run<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Like [`run`] but on `io_uring`, for the file storage.
pub fn run_uring<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .expect("io_uring runtime")
        .block_on(f)
}

pub const LOG1: &str = "log.00000000000000000001";

/// A store on `storage` holding objects `k0..kn` in bucket `b`, one commit each.
pub async fn store_with<S: Storage + 'static>(storage: S, n: u64) -> MetaStore<S> {
    let (store, _) = MetaStore::open(storage, StoreConfig::default())
        .await
        .expect("open");
    for i in 0..n {
        store
            .put_object(testkit::typical_object("b", &format!("k{i}"), i))
            .await
            .expect("commit");
    }
    store
}

/// Offsets where each frame of `bytes` starts.
pub fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut off = 0;
    while let Ok(f) = tessera_meta::frame::check_frame(bytes, off) {
        starts.push(off);
        off = f.end;
    }
    starts
}

pub fn keys_present<S: Storage + 'static>(store: &MetaStore<S>, n: u64) -> Vec<u64> {
    (0..n)
        .filter(|i| store.object("b", &format!("k{i}")).is_some())
        .collect()
}

pub fn log_bytes(storage: &MemStorage) -> Vec<u8> {
    storage.with_file(LOG1, |d| d.clone()).expect("log file")
}

/// Gives other tasks a turn once.
pub async fn yield_once() {
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
            // monoio polls a task that wakes itself again at once, starving the others; a
            // spawned task that wakes it puts it behind everything already queued instead.
            let waker = cx.waker().clone();
            monoio::spawn(async move { waker.wake() });
            std::task::Poll::Pending
        }
    }
    YieldOnce(false).await;
}
