//! Recovery against each corruption shape, poisoning after an I/O failure, and compaction.

mod common;

use common::{frame_starts, keys_present, log_bytes, run, store_with, LOG1};
use tessera_meta::{
    testkit, MemStorage, MetaError, MetaStore, Op, RecoveryMode, Storage, StoreConfig,
};

const TRUNCATE: StoreConfig = StoreConfig {
    sync: tessera_meta::SyncMode::Durable,
    recovery: RecoveryMode::TruncateCorruption,
    compact_log_bytes: tessera_meta::COMPACT_LOG_BYTES_DEFAULT,
};

/// Five committed objects, then `damage` applied to the log bytes (given the frame starts).
fn damaged(damage: impl FnOnce(&mut Vec<u8>, &[usize])) -> MemStorage {
    let storage = MemStorage::new();
    run(store_with(storage.clone(), 5));
    let starts = frame_starts(&log_bytes(&storage));
    assert_eq!(starts.len(), 5);
    storage.with_file(LOG1, |d| damage(d, &starts)).unwrap();
    storage
}

/// Opens strictly (expecting `MetaError::Corrupt` at `offset`) then with truncation, and
/// returns the keys present after the truncating open.
fn expect_corrupt_at(storage: &MemStorage, offset: usize) -> Vec<u64> {
    let strict = run(MetaStore::open(storage.clone(), StoreConfig::default()));
    assert!(
        matches!(&strict, Err(MetaError::Corrupt { offset: o, .. }) if *o == offset as u64),
        "{:?}",
        strict.map(|(_, r)| r)
    );
    let (store, report) = run(MetaStore::open(storage.clone(), TRUNCATE)).unwrap();
    assert_eq!(report.truncations.len(), 1);
    assert!(report.truncations[0].corrupt);
    assert_eq!(report.truncations[0].offset, offset as u64);
    assert_eq!(
        log_bytes(storage).len(),
        offset,
        "file cut at the bad frame"
    );
    keys_present(&store, 5)
}

#[test]
fn torn_tail_is_truncated_and_reported() {
    // Cuts the last frame in half: the store opens without being told to, drops only that
    // frame, reports the cut, and accepts new commits after it.
    let mut cut = 0;
    let storage = damaged(|d, starts| {
        let keep = starts[4] + (d.len() - starts[4]) / 2;
        cut = d.len() - keep;
        d.truncate(keep);
    });
    let (store, report) = run(MetaStore::open(storage.clone(), StoreConfig::default())).unwrap();
    assert_eq!(keys_present(&store, 5), [0, 1, 2, 3]);
    assert_eq!(report.truncated_bytes, cut as u64);
    assert!(!report.truncations[0].corrupt);
    assert_eq!(report.frames, 4);
    assert_eq!(report.last_lsn, 4);
    run(async {
        store
            .put_object(testkit::typical_object("b", "k9", 9))
            .await
            .unwrap();
    });
    let (again, report) = run(MetaStore::open(storage, StoreConfig::default())).unwrap();
    assert!(report.truncations.is_empty());
    assert_eq!(report.last_lsn, 5);
    assert!(again.object("b", "k9").is_some());
}

#[test]
fn flipped_payload_byte_in_the_middle_is_corruption() {
    // Flips one payload byte of the third frame: valid frames follow, so a strict open refuses
    // and a truncating open keeps the first two objects.
    let mut at = 0;
    let storage = damaged(|d, starts| {
        at = starts[2];
        d[starts[2] + 100] ^= 0x01;
    });
    assert_eq!(expect_corrupt_at(&storage, at), [0, 1]);
}

#[test]
fn flipped_byte_in_the_last_payload_is_a_torn_tail() {
    // Damage in the last frame has nothing valid after it and is indistinguishable from a
    // torn write: truncated without being told to.
    let storage = damaged(|d, starts| d[starts[4] + 64] ^= 0x80);
    let (store, report) = run(MetaStore::open(storage, StoreConfig::default())).unwrap();
    assert_eq!(keys_present(&store, 5), [0, 1, 2, 3]);
    assert!(!report.truncations[0].corrupt);
}

#[test]
fn flipped_length_byte_is_corruption() {
    // Flips a bit of the second frame's length: the header CRC catches it before the length is
    // trusted, and the valid frames after it make it corruption.
    let mut at = 0;
    let storage = damaged(|d, starts| {
        at = starts[1];
        d[starts[1] + 5] ^= 0x04;
    });
    assert_eq!(expect_corrupt_at(&storage, at), [0]);
}

#[test]
fn bad_magic_is_corruption() {
    // Overwrites the magic of the fourth frame.
    let mut at = 0;
    let storage = damaged(|d, starts| {
        at = starts[3];
        d[starts[3]..starts[3] + 4].copy_from_slice(b"XXXX");
    });
    assert_eq!(expect_corrupt_at(&storage, at), [0, 1, 2]);
}

#[test]
fn repeated_frame_is_corruption() {
    // Appends a second copy of the last frame (a replayed write) and, separately, duplicates the
    // second frame in place of the third: both pass their CRCs but are out of sequence.
    let mut end = 0;
    let at_end = damaged(|d, starts| {
        end = d.len();
        let last = d[starts[4]..].to_vec();
        d.extend_from_slice(&last);
    });
    assert_eq!(expect_corrupt_at(&at_end, end), [0, 1, 2, 3, 4]);
    let mut at = 0;
    let in_middle = damaged(|d, starts| {
        at = starts[2];
        let second = d[starts[1]..starts[2]].to_vec();
        let third = d[starts[2]..starts[3]].to_vec();
        assert_eq!(second.len(), third.len(), "fixture frames have equal sizes");
        d[starts[2]..starts[3]].copy_from_slice(&second);
    });
    assert_eq!(expect_corrupt_at(&in_middle, at), [0, 1]);
}

#[test]
fn zero_filled_tail_is_truncated() {
    // Appends 4 KiB of zeroes (preallocated space after a crash): truncated, nothing lost.
    let storage = damaged(|d, _| d.extend_from_slice(&[0u8; 4096]));
    let (store, report) = run(MetaStore::open(storage.clone(), StoreConfig::default())).unwrap();
    assert_eq!(keys_present(&store, 5), [0, 1, 2, 3, 4]);
    assert_eq!(report.truncated_bytes, 4096);
    assert_eq!(report.truncations[0].reason, "zero-filled tail");
}

#[test]
fn io_failure_poisons_the_store() {
    // Makes the next write fail: the waiting commit gets the I/O error, later commits get
    // Poisoned, and a reopen recovers the commits made before the failure.
    let storage = MemStorage::new();
    let store = run(store_with(storage.clone(), 2));
    storage.fail_after(1);
    run(async {
        let first = store
            .put_object(testkit::typical_object("b", "k2", 2))
            .await;
        assert!(
            matches!(first, Err(MetaError::Io { op: "write", .. })),
            "{first:?}"
        );
        let second = store
            .put_object(testkit::typical_object("b", "k3", 3))
            .await;
        assert!(matches!(second, Err(MetaError::Poisoned)), "{second:?}");
    });
    let (store, _) = run(MetaStore::open(storage, StoreConfig::default())).unwrap();
    assert_eq!(keys_present(&store, 5), [0, 1]);
}

#[test]
fn compaction_snapshots_and_reopens_identically() {
    // Commits 300 objects from 16 concurrent tasks with a 4 KiB compaction threshold, waits for
    // the background snapshot, checks old generations are gone and that reopening from the
    // snapshot plus the new log gives the same index.
    let storage = MemStorage::new();
    let config = StoreConfig {
        compact_log_bytes: 4096,
        ..StoreConfig::default()
    };
    let store = run(async {
        let (store, _) = MetaStore::open(storage.clone(), config).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let store = store.clone();
            tasks.push(monoio::spawn(async move {
                for i in 0..=(300 / 16) {
                    let n = i * 16 + t;
                    if n < 300 {
                        let key = format!("k{n}");
                        store
                            .commit(vec![Op::PutObject(testkit::typical_object("b", &key, n))])
                            .await
                            .unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        while store.compacting() {
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        store
    });
    let stats = store.store_stats();
    assert!(stats.snapshots >= 1, "{stats:?}");
    assert!(
        stats.fsyncs < stats.commits,
        "group commit shared fsyncs: {stats:?}"
    );
    let files = run(storage.list()).unwrap();
    assert_eq!(files.len(), 2, "one snapshot and one log remain: {files:?}");
    let (reopened, report) = run(MetaStore::open(storage, config)).unwrap();
    assert!(report.snapshot.is_some());
    assert_eq!(keys_present(&reopened, 300).len(), 300);
    assert!(store.with_index(|a| reopened.with_index(|b| a == b)));
}

/// Polls `fut` exactly once (registering its waker) and returns whether it finished.
async fn poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> bool {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx).is_ready())
    })
    .await
}

#[test]
fn commits_awaited_out_of_order_complete_promptly() {
    // Registers a later commit's waiter before an earlier one's while the earlier batch's fsync
    // is in flight, then checks the earlier commit resolves on its own fsync (only one fsync
    // done), not after the next batch's.
    let storage = MemStorage::new();
    run(async {
        let (store, _) = MetaStore::open(storage.clone(), StoreConfig::default())
            .await
            .unwrap();
        let mut first = store
            .submit(vec![Op::PutBucket(testkit::bucket("a"))])
            .unwrap();
        // The flusher takes the first batch and starts its fsync.
        common::yield_once().await;
        assert_eq!(store.store_stats().fsyncs, 0);
        let mut second = store
            .submit(vec![Op::PutBucket(testkit::bucket("b"))])
            .unwrap();
        assert!(!poll_once(&mut second).await);
        assert!(!poll_once(&mut first).await);
        assert_eq!(first.await.unwrap(), 1);
        assert_eq!(
            store.store_stats().fsyncs,
            1,
            "woken by its own fsync, not the next"
        );
        assert!(store.bucket("a").is_some());
        assert_eq!(second.await.unwrap(), 2);
        assert_eq!(store.store_stats().fsyncs, 2);
    });
}
