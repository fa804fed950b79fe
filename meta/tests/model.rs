//! Model-based crash test: random concurrent operations and crashes against a `BTreeMap` model.
//!
//! Each round opens the store from the previous crash image, checks it against the model, runs
//! concurrent tasks that submit random puts, deletes and queue changes (group commit batches
//! them), takes a crash image at a random moment and opens it. The recovered state must equal
//! the model after every acknowledged op plus possibly some later ones, in sequence order, and
//! never a partial op: recovered lsn >= every acknowledged lsn, and the state is exactly the
//! prefix up to the recovered lsn.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use common::{run, yield_once};
use tessera_meta::storage::SplitMix64;
use tessera_meta::{
    testkit, MemStorage, MetaStore, Object, Op, QueueEntry, QueueKind, StoreConfig, Tombstone,
};

const KEYS: u64 = 12;

/// Every submitted commit: its sequence number and ops.
type Issued = Vec<(u64, Vec<Op>)>;

#[derive(Default, Clone, PartialEq, Debug)]
struct Model {
    objects: BTreeMap<String, Object>,
    queue: BTreeMap<u64, QueueEntry>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::PutObject(o) => {
                self.objects.insert(o.key.clone(), o.clone());
            }
            Op::DeleteObject(t) => {
                self.objects.remove(&t.key);
            }
            Op::PutQueue(e) => {
                self.queue.insert(e.id, e.clone());
            }
            Op::DeleteQueue { id, .. } => {
                self.queue.remove(id);
            }
            other => panic!("model does not generate {other:?}"),
        }
    }
}

fn random_op(rng: &mut SplitMix64, queue_id: u64) -> Op {
    let key = format!("k{}", rng.below(KEYS));
    match rng.below(10) {
        0..=5 => Op::PutObject(testkit::typical_object("b", &key, rng.next_u64() >> 16)),
        6 | 7 => Op::DeleteObject(Tombstone {
            bucket: "b".to_owned(),
            key,
            version_id: 0,
            mtime_ms: 1,
        }),
        8 => Op::PutQueue(QueueEntry {
            kind: QueueKind::Purge,
            id: queue_id,
            site: 1,
            backend_id: [7; 16],
            bucket: "b".to_owned(),
            key,
            version_id: 3,
            shard_index: 1,
            enqueued_ms: 9,
            attempts: 0,
        }),
        _ => Op::DeleteQueue {
            kind: QueueKind::Purge,
            id: 1 + rng.below(queue_id.max(1)),
        },
    }
}

fn assert_matches_model(store: &MetaStore<MemStorage>, model: &Model, context: &str) {
    for k in 0..KEYS {
        let key = format!("k{k}");
        assert_eq!(
            store.object("b", &key).as_ref(),
            model.objects.get(&key),
            "{context} key {key}"
        );
    }
    let queue: Vec<QueueEntry> = store.queue_page(QueueKind::Purge, 0, usize::MAX);
    assert_eq!(
        queue,
        model.queue.values().cloned().collect::<Vec<_>>(),
        "{context} queue"
    );
    let stats = store.stats("b");
    assert_eq!(stats.objects, model.objects.len() as u64, "{context}");
    assert_eq!(
        stats.bytes,
        model.objects.values().map(|o| o.size).sum::<u64>(),
        "{context}"
    );
}

#[test]
fn crashes_keep_every_acknowledged_op_and_no_torn_one() {
    let config = StoreConfig {
        // Small, so crashes also land during and between snapshot writes.
        compact_log_bytes: 6 * 1024,
        ..StoreConfig::default()
    };
    let mut rounds_with_lost_tail = 0;
    let mut total_acked = 0;
    let mut snapshot_loads = 0;
    for seed in 0..40u64 {
        let mut rng = SplitMix64(seed);
        let mut storage = MemStorage::new();
        let mut model = Model::default();
        for round in 0..6 {
            let context = format!("seed {seed} round {round}");
            let tasks = 1 + rng.below(8);
            let ops_per_task = 1 + rng.below(30);
            let crash_after = rng.below(120);
            let task_seed = rng.next_u64();
            let image_seed = rng.next_u64();
            let (image, issued, acked_max) = run(async {
                let (store, _) = MetaStore::open(storage.clone(), config)
                    .await
                    .expect(&context);
                assert_matches_model(&store, &model, &context);
                let issued: Rc<RefCell<Issued>> = Rc::default();
                let acked_max = Rc::new(RefCell::new(0u64));
                for t in 0..tasks {
                    let store = store.clone();
                    let issued = issued.clone();
                    let acked_max = acked_max.clone();
                    let mut rng = SplitMix64(task_seed ^ t);
                    monoio::spawn(async move {
                        for _ in 0..ops_per_task {
                            // One to three ops per commit: a frame applies all or none.
                            let ops: Vec<Op> = (0..=rng.below(3) * rng.below(2))
                                .map(|_| random_op(&mut rng, store.allocate_queue_id()))
                                .collect();
                            let commit = store.submit(ops.clone()).expect("submit");
                            issued.borrow_mut().push((commit.lsn(), ops));
                            let lsn = commit.await.expect("commit");
                            let mut max = acked_max.borrow_mut();
                            *max = (*max).max(lsn);
                        }
                    });
                }
                for _ in 0..crash_after {
                    yield_once().await;
                }
                let image = storage.crash_image(image_seed);
                let acked = *acked_max.borrow();
                let issued = issued.borrow().clone();
                (image, issued, acked)
            });
            let (store, report) = run(MetaStore::open(image.clone(), config)).expect(&context);
            let issued_max = issued.iter().map(|(l, _)| *l).max().unwrap_or(0);
            let base = report.last_lsn.min(issued_max);
            assert!(
                report.last_lsn >= acked_max,
                "{context}: lost acknowledged lsn {acked_max} (recovered to {})",
                report.last_lsn
            );
            let mut sorted = issued;
            sorted.sort_by_key(|(l, _)| *l);
            assert!(
                sorted.is_empty() || report.last_lsn <= issued_max,
                "{context}: recovered an lsn never issued"
            );
            for (lsn, ops) in &sorted {
                if *lsn <= base {
                    for op in ops {
                        model.apply(op);
                    }
                }
            }
            snapshot_loads += u32::from(report.snapshot.is_some());
            assert_matches_model(&store, &model, &context);
            if issued_max > report.last_lsn {
                rounds_with_lost_tail += 1;
            }
            total_acked += acked_max;
            storage = image;
        }
    }
    // The test must exercise both outcomes: crashes that lose unacknowledged commits, and
    // rounds with acknowledged work.
    assert!(rounds_with_lost_tail > 10, "{rounds_with_lost_tail}");
    assert!(total_acked > 100, "{total_acked}");
    assert!(snapshot_loads > 10, "{snapshot_loads}");
}
