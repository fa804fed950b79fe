//! The `io_uring` file storage: commits, compaction and reopen on a real directory.

mod common;

use common::run_uring;
use tessera_meta::{testkit, FileStorage, MetaStore, Storage, StoreConfig};

#[test]
fn commits_compact_and_reopen_on_files() {
    // Commits 500 objects from 32 concurrent tasks on real files with a 16 KiB compaction
    // threshold, then reopens the directory and checks every object, the bucket and the stats.
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        compact_log_bytes: 16 * 1024,
        ..StoreConfig::default()
    };
    let before = run_uring(async {
        let (store, report) = MetaStore::open(FileStorage::new(dir.path()).unwrap(), config)
            .await
            .unwrap();
        assert_eq!(report.last_lsn, 0);
        store.put_bucket(testkit::bucket("b")).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..32u64 {
            let store = store.clone();
            tasks.push(monoio::spawn(async move {
                let mut n = t;
                while n < 500 {
                    let o = testkit::typical_object("b", &testkit::key40(n), n);
                    store.put_object(o).await.unwrap();
                    n += 32;
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        while store.compacting() {
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let stats = store.store_stats();
        assert!(stats.snapshots >= 1, "{stats:?}");
        assert!(stats.fsyncs < stats.commits, "{stats:?}");
        assert!(store.compaction_error().is_none());
        store.stats("b")
    });
    assert_eq!(before.objects, 500);
    run_uring(async {
        let storage = FileStorage::new(dir.path()).unwrap();
        let files = storage.list().await.unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        let (store, report) = MetaStore::open(storage, config).await.unwrap();
        assert!(report.snapshot.is_some());
        assert!(report.truncations.is_empty());
        assert_eq!(store.stats("b"), before);
        assert!(store.bucket("b").is_some());
        for n in 0..500 {
            let o = store.object("b", &testkit::key40(n)).unwrap();
            assert_eq!(o, testkit::typical_object("b", &testkit::key40(n), n));
        }
    });
}
