//! Conditional upload commits (`MetaStore::commit_if_upload`): a completion and an abort of the
//! same upload, started together in every order and interleaving, never both commit; a
//! completion never publishes parts that were re-uploaded after it checked them; and what the
//! log replays after a reopen is what the live store answered.

mod common;

use common::run;
use tessera_meta::{
    testkit, ContentHeaders, ETag, MemStorage, MetaStore, Object, ObjectExpect, ObjectPart, Op,
    Policy, Shard, ShardState, StoreConfig, Tombstone, Upload, UploadCommit, UploadCondition,
    UploadMismatch, UploadPart,
};

fn upload(id: &str) -> Upload {
    Upload {
        bucket: "b".to_owned(),
        key: "k".to_owned(),
        upload_id: id.to_owned(),
        initiated_ms: 1,
        headers: ContentHeaders::default(),
        user_metadata: Vec::new(),
        checksum_algorithm: None,
        policy: Policy::Replica { n: 1 },
        owner: "o".to_owned(),
    }
}

fn part(upload_id: &str, number: u32, id: u8) -> UploadPart {
    UploadPart {
        bucket: "b".to_owned(),
        key: "k".to_owned(),
        upload_id: upload_id.to_owned(),
        number,
        size: 5,
        etag: [id; 16],
        checksum: None,
        mtime_ms: 1,
        chunk_size: 5,
        shards: vec![Shard {
            site: 0,
            backend_id: [id; 16],
            state: ShardState::Durable,
        }],
    }
}

fn object_of(parts: &[UploadPart], version_id: u64) -> Object {
    Object {
        bucket: "b".to_owned(),
        key: "k".to_owned(),
        version_id,
        size: parts.iter().map(|p| p.size).sum(),
        etag: ETag {
            md5: [1; 16],
            parts: parts.len() as u16,
        },
        headers: ContentHeaders::default(),
        user_metadata: Vec::new(),
        checksums: Vec::new(),
        mtime_ms: 1,
        policy: Policy::Replica { n: 1 },
        chunk_size: 0,
        shards: Vec::new(),
        parts: parts
            .iter()
            .map(|p| ObjectPart {
                number: p.number,
                size: p.size,
                etag: p.etag,
                shards: p.shards.clone(),
            })
            .collect(),
    }
}

fn delete_upload(id: &str) -> Op {
    Op::DeleteUpload {
        bucket: "b".to_owned(),
        key: "k".to_owned(),
        upload_id: id.to_owned(),
    }
}

/// 200 rounds, each with a fresh upload of two parts: a completion and an abort are spawned in
/// a round-dependent order, sometimes behind a pending re-upload of part 2 or with extra
/// yields, so they reach the store in every interleaving, including both inside one group
/// commit. Exactly one of them commits each round; the completion that wins lists exactly the
/// parts the store had; after a reopen the replayed log agrees with every answer.
#[test]
fn completion_and_abort_never_both_commit() {
    run(async {
        let storage = MemStorage::new();
        let (store, _) = MetaStore::open(storage.clone(), StoreConfig::default())
            .await
            .unwrap();
        store.put_bucket(testkit::bucket("b")).await.unwrap();
        let mut completed_versions = Vec::new();
        for round in 0..200_u64 {
            let id = format!("u{round}");
            let parts = [part(&id, 1, 1), part(&id, 2, 2)];
            store.put_upload(upload(&id)).await.unwrap();
            for p in &parts {
                store.put_part(p.clone()).await.unwrap();
            }
            let reupload = round % 5 == 0;
            let reupload_task = reupload.then(|| {
                let store = store.clone();
                let newer = part(&id, 2, 3);
                monoio::spawn(async move { store.put_part(newer).await.unwrap() })
            });
            let complete = {
                let store = store.clone();
                let condition = UploadCondition {
                    parts: parts.iter().map(UploadCondition::part_identity).collect(),
                    ..UploadCondition::exists("b", "k", &id)
                };
                let ops = vec![
                    Op::PutObject(object_of(&parts, round + 1)),
                    delete_upload(&id),
                ];
                let yields = round % 3;
                monoio::spawn(async move {
                    for _ in 0..yields {
                        common::yield_once().await;
                    }
                    store.commit_if_upload(&condition, ops).await.unwrap()
                })
            };
            let abort = {
                let store = store.clone();
                let condition = UploadCondition::exists("b", "k", &id);
                let yields = (round / 3) % 3;
                let ops = vec![delete_upload(&id)];
                monoio::spawn(async move {
                    for _ in 0..yields {
                        common::yield_once().await;
                    }
                    store.commit_if_upload(&condition, ops).await.unwrap()
                })
            };
            if let Some(task) = reupload_task {
                task.await;
            }
            let completed = complete.await;
            let aborted = abort.await;
            match (&completed, &aborted) {
                (Ok(UploadCommit { state, .. }), Err(UploadMismatch::NoSuchUpload)) => {
                    assert_eq!(state.parts.len(), 2);
                    let object = store.object("b", "k").expect("completed object");
                    assert_eq!(object.version_id, round + 1);
                    completed_versions.push(round + 1);
                }
                (Err(_), Ok(UploadCommit { state, .. })) => {
                    // The abort answers with exactly the parts it removed (to purge).
                    assert_eq!(state.upload.upload_id, id);
                    assert_eq!(state.parts.len(), 2);
                }
                other => panic!("round {round}: both or neither committed: {other:?}"),
            }
            if let Err(mismatch) = &completed {
                // Lost to the abort, or (behind a re-upload) found part 2 changed.
                assert!(
                    *mismatch == UploadMismatch::NoSuchUpload
                        || (reupload && *mismatch == UploadMismatch::PartChanged(2)),
                    "round {round}: {mismatch:?}"
                );
            }
            assert!(
                !(reupload && completed.is_ok()),
                "round {round}: a completion published a part that was re-uploaded"
            );
            assert!(store.upload("b", "k", &id).is_none());
        }
        assert!(!completed_versions.is_empty(), "some completion won");
        let last = store.object("b", "k").map(|o| o.version_id);
        drop(store);
        let (reopened, _) = MetaStore::open(storage, StoreConfig::default())
            .await
            .unwrap();
        assert_eq!(reopened.object("b", "k").map(|o| o.version_id), last);
        assert_eq!(last, completed_versions.last().copied());
        for round in 0..200 {
            assert!(reopened.upload("b", "k", &format!("u{round}")).is_none());
        }
    });
}

/// A conditional commit on an upload that never existed writes nothing.
#[test]
fn failed_condition_writes_no_frame() {
    run(async {
        let storage = MemStorage::new();
        let (store, _) = MetaStore::open(storage.clone(), StoreConfig::default())
            .await
            .unwrap();
        store.put_bucket(testkit::bucket("b")).await.unwrap();
        let before = store.store_stats().commits;
        let answer = store
            .commit_if_upload(
                &UploadCondition::exists("b", "k", "nope"),
                vec![delete_upload("nope")],
            )
            .await
            .unwrap();
        assert_eq!(answer.unwrap_err(), UploadMismatch::NoSuchUpload);
        assert_eq!(store.store_stats().commits, before);
    });
}

/// Two shards of one record changed at the same moment (a repair marking one durable, a read
/// marking another pending), also right behind a pending overwrite of the record: both
/// changes stick — neither commit is built from a stale copy of the record — and a change for
/// a replaced version or an unknown shard writes nothing.
#[test]
fn shard_state_changes_never_undo_each_other() {
    run(async {
        let storage = MemStorage::new();
        let (store, _) = MetaStore::open(storage.clone(), StoreConfig::default())
            .await
            .unwrap();
        store.put_bucket(testkit::bucket("b")).await.unwrap();
        for round in 0..100_u64 {
            let version = round + 1;
            let mut object = object_of(&[part("x", 1, 1), part("x", 2, 2)], version);
            object.shards = vec![
                Shard {
                    site: 0,
                    backend_id: [9; 16],
                    state: ShardState::Pending,
                },
                Shard {
                    site: 1,
                    backend_id: [8; 16],
                    state: ShardState::Durable,
                },
            ];
            // Round-dependent: sometimes the record's own commit is still pending.
            let put = store.submit(vec![Op::PutObject(object)]).unwrap();
            if round % 2 == 0 {
                put.await.unwrap();
            }
            let set = |backend_id: [u8; 16], state: ShardState, yields: u64| {
                let store = store.clone();
                monoio::spawn(async move {
                    for _ in 0..yields {
                        common::yield_once().await;
                    }
                    store
                        .set_shard_state("b", "k", version, &backend_id, state)
                        .await
                        .unwrap()
                })
            };
            let repaired = set([9; 16], ShardState::Durable, round % 3);
            let damaged = set([8; 16], ShardState::Pending, (round / 3) % 3);
            let part_damaged = set([2; 16], ShardState::Pending, round % 2);
            assert!(repaired.await && damaged.await && part_damaged.await);
            let now = store.object("b", "k").unwrap();
            assert_eq!(now.shards[0].state, ShardState::Durable, "round {round}");
            assert_eq!(now.shards[1].state, ShardState::Pending, "round {round}");
            assert_eq!(now.parts[1].shards[0].state, ShardState::Pending);
            assert_eq!(now.parts[0].shards[0].state, ShardState::Durable);
            // Stale version, unknown shard, unchanged state: nothing to do.
            let stale = store
                .set_shard_state("b", "k", version + 1000, &[9; 16], ShardState::Pending)
                .await;
            assert!(!stale.unwrap());
            let unknown = store
                .set_shard_state("b", "k", version, &[7; 16], ShardState::Pending)
                .await;
            assert!(!unknown.unwrap());
            let same = store
                .set_shard_state("b", "k", version, &[9; 16], ShardState::Durable)
                .await;
            assert!(!same.unwrap());
        }
    });
}

/// A completion and a PUT of the same key, started together in every interleaving: each
/// answers the other's record as the one it replaced when it committed second (so exactly
/// the loser's record is purged), and a completion that requires the key to be empty
/// (`If-None-Match: *`) commits only when it comes first.
#[test]
fn completion_and_put_on_one_key_see_each_other() {
    run(async {
        let (store, _) = MetaStore::open(MemStorage::new(), StoreConfig::default())
            .await
            .unwrap();
        store.put_bucket(testkit::bucket("b")).await.unwrap();
        for round in 0..12_u64 {
            store
                .commit(vec![Op::DeleteObject(Tombstone {
                    bucket: "b".to_owned(),
                    key: "k".to_owned(),
                    version_id: 0,
                    mtime_ms: 1,
                })])
                .await
                .unwrap();
            let id = format!("u{round}");
            store
                .commit(vec![Op::PutUpload(upload(&id))])
                .await
                .unwrap();
            let p = part(&id, 1, round as u8 + 1);
            store.commit(vec![Op::PutPart(p.clone())]).await.unwrap();
            let exclusive = round % 2 == 1;
            let complete = {
                let store = store.clone();
                let condition = UploadCondition {
                    parts: vec![UploadCondition::part_identity(&p)],
                    object: Some(if exclusive {
                        ObjectExpect::At(None)
                    } else {
                        ObjectExpect::Any
                    }),
                    ..UploadCondition::exists("b", "k", &id)
                };
                let ops = vec![
                    Op::PutObject(object_of(std::slice::from_ref(&p), 1000 + round)),
                    delete_upload(&id),
                ];
                let yields = round % 3;
                monoio::spawn(async move {
                    for _ in 0..yields {
                        common::yield_once().await;
                    }
                    store.commit_if_upload(&condition, ops).await.unwrap()
                })
            };
            let put = {
                let store = store.clone();
                let yields = (round / 3) % 2;
                monoio::spawn(async move {
                    for _ in 0..yields {
                        common::yield_once().await;
                    }
                    let ops = vec![Op::PutObject(testkit::typical_object(
                        "b",
                        "k",
                        2000 + round,
                    ))];
                    store.commit_object("b", "k", None, ops).await.unwrap()
                })
            };
            let completed = complete.await;
            let (_, put_replaced) = put.await.unwrap();
            let current = store.object("b", "k").unwrap().version_id;
            match completed {
                Ok(UploadCommit { previous, .. }) => {
                    let previous = previous.map(|o| o.version_id);
                    let put_previous = put_replaced.map(|o| o.version_id);
                    if current == 2000 + round {
                        // The completion went first: it replaced nothing; the PUT replaced it.
                        assert_eq!((previous, put_previous), (None, Some(1000 + round)));
                    } else {
                        assert_eq!(current, 1000 + round);
                        assert_eq!((previous, put_previous), (Some(2000 + round), None));
                        assert!(!exclusive, "an exclusive completion replaced an object");
                    }
                }
                Err(mismatch) => {
                    assert!(
                        exclusive,
                        "an unconditional completion failed: {mismatch:?}"
                    );
                    assert_eq!(mismatch, UploadMismatch::ObjectChanged(Some(2000 + round)));
                    assert_eq!(current, 2000 + round);
                    assert!(put_replaced.is_none());
                }
            }
        }
    });
}
